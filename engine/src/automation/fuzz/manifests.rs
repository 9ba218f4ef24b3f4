//! The manifest parser: arbitrary text, arbitrary JSON, and real manifests with one part
//! replaced by anything. Every problem names its file, and its path when the text parsed.

use proptest::prelude::*;
use serde_json::Value;

use super::{config, json_value, tricky_text};
use crate::automation::manifest::{ManifestProblem, Manifests};

const BUILT_IN: &[&str] = &[
    "actions/create_customer.yaml",
    "actions/find_customer.yaml",
    "actions/http_request.yaml",
    "triggers/new_customer.yaml",
    "triggers/updated_project.yaml",
];

fn built_in(file: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests/connectors/timix")
        .join(file);
    let text = std::fs::read_to_string(path).expect("the built-in manifest is readable");
    yaml_serde::from_str(&text).expect("the built-in manifest parses")
}

fn check_problems(file: &str, problems: &[ManifestProblem]) -> Result<(), TestCaseError> {
    prop_assert!(!problems.is_empty());
    for problem in problems {
        prop_assert_eq!(&problem.file, file);
        prop_assert!(!problem.message.is_empty());
        prop_assert!(
            problem.path.is_empty() || problem.path.starts_with('/'),
            "{:?}",
            problem
        );
    }
    Ok(())
}

/// Replaces one value of `value`, chosen by the bits of `pick`, with `with`.
fn replace_somewhere(value: &mut Value, pick: usize, with: Value) {
    let mut pointer = String::new();
    let mut at = &*value;
    for step in 0..4 {
        let choice = pick >> (step * 4);
        let next = match at {
            Value::Object(map) if !map.is_empty() => map
                .iter()
                .nth(choice % map.len())
                .map(|(k, v)| (k.replace('~', "~0").replace('/', "~1"), v)),
            Value::Array(items) if !items.is_empty() => {
                let i = choice % items.len();
                Some((i.to_string(), &items[i]))
            }
            _ => None,
        };
        let Some((key, next)) = next else { break };
        pointer.push('/');
        pointer.push_str(&key);
        at = next;
        if (pick >> (16 + step)) & 1 == 0 {
            break;
        }
    }
    if let Some(slot) = value.pointer_mut(&pointer) {
        *slot = with;
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_text_is_a_manifest_or_a_list_of_problems(text in tricky_text(), action in any::<bool>()) {
        let file = if action { "actions/fuzz.yaml" } else { "triggers/fuzz.yaml" };
        if let Err(problems) = Manifests::parse([(file.to_owned(), text)]) {
            check_problems(file, &problems)?;
        }
    }

    #[test]
    fn any_json_is_a_manifest_or_a_list_of_problems(value in json_value(), action in any::<bool>()) {
        let file = if action { "actions/fuzz.yaml" } else { "triggers/fuzz.yaml" };
        if let Err(problems) = Manifests::parse([(file.to_owned(), value.to_string())]) {
            check_problems(file, &problems)?;
        }
    }

    #[test]
    fn a_real_manifest_with_any_part_replaced_never_panics(
        which in 0..BUILT_IN.len(),
        pick in any::<usize>(),
        with in json_value(),
    ) {
        let file = BUILT_IN[which];
        let mut value = built_in(file);
        replace_somewhere(&mut value, pick, with);
        if let Err(problems) = Manifests::parse([(file.to_owned(), value.to_string())]) {
            check_problems(file, &problems)?;
        }
    }
}
