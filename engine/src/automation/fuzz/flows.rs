//! The flow parser and validator (`POST /flows` bodies): any trigger, any steps, and valid
//! flows with one part replaced by anything. Refusals name the field.

use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{ConnectionKinds, FlowInput, Record};
use crate::automation::connections::ConnectionKind;
use crate::automation::fuzz::{config, json_value, tricky_text};
use crate::automation::manifest::Manifests;
use crate::error::Error;
use crate::store::patch::Patch;

fn manifests() -> &'static Manifests {
    static M: OnceLock<Manifests> = OnceLock::new();
    M.get_or_init(|| Manifests::built_in().expect("the built-in manifests are valid"))
}

fn connections() -> ConnectionKinds {
    [(
        "con_1".to_owned(),
        crate::automation::connections::ConnectionRef {
            kind: ConnectionKind::This,
            connector: None,
        },
    )]
    .into_iter()
    .collect()
}

fn valid() -> Value {
    json!({
        "name": "Onboarding",
        "trigger": {"type": "poll", "connectionId": "con_1", "source": "new_customer", "schedule": "*/5 * * * *"},
        "steps": [
            {"key": "project", "action": "create_project", "connectionId": "con_1",
             "input": {"customerId": "{{trigger.id}}", "name": "Onboarding {{trigger.name}}"}},
            {"key": "task", "action": "create_task",
             "input": {"projectId": "{{steps.project.id}}", "name": "Kick-off"}}
        ]
    })
}

/// Checks `body` as `POST /flows` would: a Record, or a validation error naming fields.
fn apply(body: Value) -> Result<(), TestCaseError> {
    let input: FlowInput = match serde_json::from_value(body) {
        Ok(input) => input,
        // The web layer answers these with the serde path; nothing reaches the engine.
        Err(_) => return Ok(()),
    };
    match Record::apply(manifests(), &connections(), input, None) {
        Ok(_) => Ok(()),
        Err(Error::Validation(details)) => {
            prop_assert!(!details.is_empty());
            for d in &details {
                prop_assert!(
                    ["name", "isEnabled", "trigger", "steps"]
                        .iter()
                        .any(|f| d.field.starts_with(f)),
                    "{:?}",
                    d
                );
                prop_assert!(!d.message.is_empty());
            }
            Ok(())
        }
        Err(other) => Err(TestCaseError::fail(format!(
            "not a validation error: {other}"
        ))),
    }
}

fn set(body: &mut Value, pointer: &str, with: Value) {
    if let Some(slot) = body.pointer_mut(pointer) {
        *slot = with;
    }
}

const PARTS: &[&str] = &[
    "/name",
    "/trigger",
    "/trigger/type",
    "/trigger/source",
    "/trigger/schedule",
    "/trigger/connectionId",
    "/steps",
    "/steps/0",
    "/steps/0/key",
    "/steps/0/action",
    "/steps/0/input",
    "/steps/0/input/name",
    "/steps/1/key",
    "/steps/1/input/projectId",
];

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_trigger_and_steps_are_a_flow_or_named_problems(
        trigger in json_value(),
        steps in json_value(),
        name in tricky_text(),
    ) {
        apply(json!({"name": name, "trigger": trigger, "steps": steps}))?;
    }

    #[test]
    fn a_valid_flow_with_any_part_replaced_is_a_flow_or_named_problems(
        part in 0..PARTS.len(),
        with in json_value(),
    ) {
        let mut body = valid();
        set(&mut body, PARTS[part], with);
        apply(body)?;
    }

    #[test]
    fn any_schedule_text_is_parsed_or_refused(text in tricky_text()) {
        let mut body = valid();
        set(&mut body, "/trigger/schedule", Value::String(text.clone()));
        apply(body)?;
        let _ = super::parse_schedule(&text);
    }
}

#[test]
fn the_valid_flow_is_valid() {
    let input: FlowInput = serde_json::from_value(valid()).unwrap();
    Record::apply(manifests(), &connections(), input, None).unwrap();
    let _ = Patch::<Value>::Absent;
}
