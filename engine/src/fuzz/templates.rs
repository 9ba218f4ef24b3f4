//! The template check and renderer: any text, any data, deep nesting, huge inputs.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{config, json_value, tricky_text};
use crate::template::{self, MAX_TEMPLATE_BYTES};

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
