//! The template check and renderer: any text, any data, deep nesting, huge inputs.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{config, json_value, tricky_text};
use crate::automation::template::{self, MAX_TEMPLATE_BYTES};

/// What a flow's templates see, around an arbitrary trigger record.
fn context(trigger: Value) -> Value {
    json!({"trigger": trigger, "steps": {"a": {"id": 1, "items": [1, 2]}}, "flow": {"id": "flw_1"},
           "now": "2026-11-24T00:00:00.000Z"})
}

/// A template nested `depth` deep, in one of the ways the grammar allows.
fn nested(kind: usize, depth: usize) -> String {
    let (open, middle, close) = match kind % 8 {
        0 => ("{{#if a}}", "x", "{{/if}}"),
        1 => ("{{~#if a~}}", "x", "{{~/if~}}"),
        2 => ("{{^a}}", "x", "{{/a}}"),
        3 => ("{{#each items}}", "{{this}}", "{{/each}}"),
        4 => ("(lower ", "x", ")"),
        5 => ("{{#if a}}{{else if b}}", "x", "{{/if}}"),
        6 => ("{{#with trigger}}", "{{name}}", "{{/with}}"),
        _ => ("{{{{raw}}}}", "x", "{{{{/raw}}}}"),
    };
    let body = format!("{}{middle}{}", open.repeat(depth), close.repeat(depth));
    if kind % 8 == 4 {
        format!("{{{{lower {body}}}}}")
    } else {
        body
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn checking_any_text_never_panics(text in tricky_text()) {
        if let Err(e) = template::check(&text) {
            prop_assert!(!e.0.is_empty());
        }
    }

    #[test]
    fn rendering_any_text_against_any_record_never_panics(
        text in tricky_text(),
        trigger in json_value(),
    ) {
        let data = context(trigger);
        if let Err(e) = template::render(&text, &data) {
            prop_assert!(!e.0.is_empty());
        }
        let _ = template::render_optional(&text, &data);
    }

    #[test]
    fn errors_of_a_structured_input_name_the_field(input in json_value(), trigger in json_value()) {
        let at = "steps[0].input";
        if let Err((path, e)) = template::check_value(&input, at) {
            prop_assert!(path.starts_with(at), "{path}");
            prop_assert!(!e.0.is_empty());
        }
        if let Err((path, e)) = template::render_value(&input, &context(trigger), at) {
            prop_assert!(path.starts_with(at), "{path}");
            prop_assert!(!e.0.is_empty());
        }
    }

    #[test]
    fn huge_templates_are_refused(extra in 1usize..200_000, sole in any::<bool>()) {
        let text = if sole {
            format!("{{{{trigger.{}}}}}", "a".repeat(MAX_TEMPLATE_BYTES + extra))
        } else {
            format!("{{{{trigger.name}}}} {}", "x".repeat(MAX_TEMPLATE_BYTES + extra))
        };
        let data = context(json!({"name": "n"}));
        prop_assert!(template::check(&text).is_err());
        prop_assert!(template::render(&text, &data).is_err());
    }
}

proptest! {
    // Each case parses thousands of tokens: fewer of them.
    #![proptest_config(ProptestConfig { cases: config().cases / 4, ..config() })]

    #[test]
    fn deep_nesting_is_refused_or_rendered_never_overflows(kind in 0usize..8, depth in 0usize..3000) {
        let text = nested(kind, depth);
        let checked = template::check(&text);
        if depth > 200 {
            prop_assert!(checked.is_err(), "{} deep passed the check", depth);
        }
        let _ = template::render(&text, &context(json!({"name": "n"})));
    }
}

/// A well-formed template built from the pieces a flow uses: loops over the record's arrays
/// (often nested, the costly case), conditions, helpers, variables, text, and the partials and
/// decorators that must be refused.
fn composed_template() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("{{this}}".to_owned()),
        Just("{{@index}}".to_owned()),
        Just("{{trigger.name}}".to_owned()),
        Just("{{json trigger}}".to_owned()),
        Just("{{upper trigger.name}}".to_owned()),
        Just("{{default trigger.none \"d\"}}".to_owned()),
        Just("{{> p}}".to_owned()),
        Just("{{#*inline \"p\"}}x{{> p}}{{/inline}}".to_owned()),
        "[a-z ]{0,8}",
    ];
    leaf.prop_recursive(6, 64, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(|parts| parts.concat()),
            inner
                .clone()
                .prop_map(|body| format!("{{{{#each @root.trigger.items}}}}{body}{{{{/each}}}}")),
            (inner.clone(), inner.clone()).prop_map(|(then, otherwise)| format!(
                "{{{{#if @root.trigger.flag}}}}{then}{{{{else}}}}{otherwise}{{{{/if}}}}"
            )),
            inner
                .clone()
                .prop_map(|body| format!("{{{{#with @root.trigger}}}}{body}{{{{/with}}}}")),
            inner.prop_map(|body| format!(
                "{{{{#unless @root.trigger.flag}}}}{body}{{{{/unless}}}}"
            )),
        ]
    })
}

proptest! {
    // Each case may render up to the whole budget: fewer of them.
    #![proptest_config(ProptestConfig { cases: config().cases / 4, ..config() })]

    #[test]
    fn composed_templates_render_within_the_budget_or_say_why(
        text in composed_template(),
        items in prop::collection::vec(json_value(), 0..60),
        name in "[a-zA-Z]{0,2000}",
        flag in any::<bool>(),
    ) {
        let data = context(json!({"items": items, "name": name, "flag": flag}));
        let input = json!({"a": text, "b": [text, text]});
        match template::render_value(&input, &data, "steps[0].input") {
            Ok(rendered) => {
                let size = rendered.to_string().len();
                prop_assert!(size <= template::MAX_OUTPUT_BYTES + 64, "{} bytes", size);
                prop_assert!(!text.contains("{{>") && !text.contains("{{#*"));
            }
            Err((path, e)) => {
                prop_assert!(path.starts_with("steps[0].input"), "{}", path);
                prop_assert!(!e.0.is_empty() && e.0.len() < 1000, "{}", e);
                if text.contains("{{>") || text.contains("{{#*") {
                    prop_assert!(e.0.contains("not available"), "{}", e);
                }
            }
        }
    }
}

/// What a helper may be handed: the record's fields (any JSON), literals that trip the number,
/// date, unit, zone and format readers, and subexpressions that give lists.
fn helper_argument() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("trigger.a".to_owned()),
        Just("trigger.b".to_owned()),
        Just("trigger.c".to_owned()),
        Just("trigger.missing".to_owned()),
        prop::sample::select(vec![
            "0",
            "-1",
            "1.5",
            "1000000000",
            "true",
            "null",
            "\"12.50\"",
            "\"1e30\"",
            "\"-170141183460469231731687303715884105728\"",
            "\"0.000000000000000000000000000000001\"",
            "\"%Q\"",
            "\"%\"",
            "\"%d.%m.%Y %H:%M %Z\"",
            "\"Europe/Berlin\"",
            "\"Mars/Base\"",
            "\"days\"",
            "\"months\"",
            "\"years\"",
            "\"fortnights\"",
            "\"2024-02-29\"",
            "\"2026-03-29T01:30:00+01:00\"",
            "\"\"",
            "\",\"",
            "\"é😀\"",
        ])
        .prop_map(str::to_owned),
        Just("(split trigger.a \",\")".to_owned()),
        Just("(pluck trigger.b \"a\")".to_owned()),
        Just("(padStart trigger.c 2000 \"ab\")".to_owned()),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_helper_takes_any_arguments_without_panicking(
        helper in prop::sample::select(template::helper_names().collect::<Vec<_>>()),
        args in prop::collection::vec(helper_argument(), 0..4),
        way in 0usize..3,
        a in json_value(),
        b in json_value(),
        c in json_value(),
    ) {
        let call = format!("{helper} {}", args.join(" "));
        let text = match way {
            0 => format!("{{{{{call}}}}}"),
            1 => format!("x{{{{{call}}}}}y"),
            _ => format!("{{{{#if ({call})}}}}y{{{{else}}}}n{{{{/if}}}}"),
        };
        let data = context(json!({"a": a, "b": b, "c": c}));
        match template::render(&text, &data) {
            Ok(value) => {
                let size = value.to_string().len();
                prop_assert!(size <= template::MAX_OUTPUT_BYTES + 64, "{} bytes", size);
            }
            Err(e) => {
                // The helper (or one in its arguments) names itself; else it is a missing
                // variable or a limit of the budget.
                let named = template::helper_names().any(|name| e.0.starts_with(&format!("{name}: ")));
                prop_assert!(
                    named || e.0.contains("is missing") || e.0.contains("more than"),
                    "{}: {}", text, e
                );
                prop_assert!(e.0.len() < 1000, "{}", e);
            }
        }
    }
}
