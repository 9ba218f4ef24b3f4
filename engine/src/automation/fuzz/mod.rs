//! Property tests (proptest) that feed the parsers and the template renderer what no one would
//! write: arbitrary text, arbitrary JSON, deep nesting, huge inputs. They must answer every one
//! with a value or an error that names where the problem is, never a panic. Case counts are
//! bounded so the suite stays fast; `PROPTEST_CASES` raises them for a longer hunt.

mod manifests;
mod templates;

use proptest::prelude::*;
use serde_json::Value;

/// Cases per property unless `PROPTEST_CASES` says otherwise.
pub const CASES: u32 = 128;

pub fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES);
    ProptestConfig {
        cases,
        // Failures are reported with their input; no files are written beside the sources.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Short strings drawn from what trips parsers: template and YAML punctuation, keys the
/// parsers look for, and arbitrary characters.
pub fn tricky_text() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("{{".to_owned()),
        Just("}}".to_owned()),
        Just("{{#if a}}".to_owned()),
        Just("{{/if}}".to_owned()),
        Just("{{#each items}}".to_owned()),
        Just("{{/each}}".to_owned()),
        Just("{{else}}".to_owned()),
        Just("{{{".to_owned()),
        Just("}}}".to_owned()),
        Just("{{!--".to_owned()),
        Just("--}}".to_owned()),
        Just("{{> partial}}".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("trigger.name".to_owned()),
        Just("steps.a.id".to_owned()),
        Just("[0]".to_owned()),
        Just("@index".to_owned()),
        Just("../".to_owned()),
        Just("~".to_owned()),
        Just("\"".to_owned()),
        Just("\\".to_owned()),
        Just(": ".to_owned()),
        Just("- ".to_owned()),
        Just("\n".to_owned()),
        Just("  ".to_owned()),
        Just("&a".to_owned()),
        Just("*a".to_owned()),
        Just("!!".to_owned()),
        Just("key".to_owned()),
        Just("type".to_owned()),
        Just("default".to_owned()),
        Just("date".to_owned()),
        Just("json".to_owned()),
        any::<char>().prop_map(String::from),
        "[a-z]{1,8}",
    ];
    prop::collection::vec(token, 0..40).prop_map(|parts| parts.concat())
}

/// Arbitrary JSON, nested up to a few levels, with strings from [`tricky_text`].
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        tricky_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_]{0,10}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
