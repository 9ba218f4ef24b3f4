//! The API's refusals and warnings in plain words for the builder: what to do at the field,
//! and which field a path (`steps[0].input.name`) is. The API's own text stays on the page in
//! a detail, for support.

use serde_json::Value;

use crate::ui::ApiFailure;

/// A field error of the API, said as what to do.
pub fn message(api: &str) -> String {
    let lower = api.to_lowercase();
    if lower.contains("is not an action") {
        "Choose an action for this step.".into()
    } else if lower.contains("required") {
        "Fill this in: the action needs it.".into()
    } else if lower.contains("template") && !lower.contains("this template") {
        format!("This template is not right: {api}. Each variable is written {{{{name}}}}.")
    } else if lower.contains("not found") || lower.contains("no such") {
        "Nothing with this id exists here: pick one from the list.".into()
    } else if lower.contains("cron") {
        format!("This schedule is not a cron expression: {api}.")
    } else {
        capitalized(api)
    }
}

/// A draft's warning: the variable, and what to do about it.
pub fn warning(warning: &Value) -> String {
    let text = warning["message"].as_str().unwrap_or_default();
    match text.split_once(": ") {
        Some((variable, why)) => format!(
            "{{{{{variable}}}}} is not in the data ({why}). Check its spelling, or insert it from the data panel."
        ),
        None => capitalized(text),
    }
}

/// The line above a refused form.
pub fn summary(failure: &ApiFailure) -> String {
    match failure.fields.len() {
        0 => capitalized(&failure.message),
        1 => "The flow was not saved: one field needs attention (marked below).".into(),
        n => format!("The flow was not saved: {n} fields need attention (marked below)."),
    }
}

/// `steps[1].input.name` → `Step 2 › name`; `trigger.schedule` → `Trigger › schedule`.
pub fn field_name(path: &str) -> String {
    let mut out = Vec::new();
    for part in path.split('.') {
        if let Some(rest) = part.strip_prefix("steps[")
            && let Some(n) = rest.strip_suffix(']').and_then(|n| n.parse::<usize>().ok())
        {
            out.push(format!("Step {}", n + 1));
        } else if part != "input" {
            out.push(part.to_owned());
        }
    }
    capitalized(&out.join(" › "))
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
        .unwrap_or_default()
}

/// A schedule in words, by the schedule editor's kinds: `*/15 * * * *` is "Every 15 minutes",
/// `15 8 * * 1-5` "Weekdays at 08:15"; any other expression is shown as its cron text.
pub fn schedule_words(cron: &str) -> String {
    let cron = cron.trim();
    if cron.is_empty() {
        return "No schedule yet".into();
    }
    let editor = crate::ui::schedule::Editor::from_cron(cron);
    match editor.kind.as_str() {
        "minutes" => match editor.every.as_str() {
            "1" => "Every minute".into(),
            "60" => "Every hour".into(),
            n => format!("Every {n} minutes"),
        },
        "daily" => format!("Daily at {}", editor.time),
        "weekdays" => format!("Weekdays at {}", editor.time),
        "monthly" => format!("Monthly on day {} at {}", editor.day, editor.time),
        _ => format!("Cron {cron}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn api_words_become_plain_ones() {
        assert_eq!(
            message("\"\" is not an action; see GET /manifests"),
            "Choose an action for this step."
        );
        assert_eq!(field_name("steps[1].input.name"), "Step 2 › name");
        let w = json!({"message": "trigger.nme: the trigger's sample has no nme"});
        assert!(warning(&w).starts_with("{{trigger.nme}} is not in the data"));
    }

    #[test]
    fn schedules_are_said_in_words() {
        assert_eq!(schedule_words("*/15 * * * *"), "Every 15 minutes");
        assert_eq!(schedule_words("15 8 * * 1-5"), "Weekdays at 08:15");
        assert_eq!(schedule_words("0 9 * * *"), "Daily at 09:00");
        assert_eq!(schedule_words("30 7 1 * *"), "Monthly on day 1 at 07:30");
        assert_eq!(schedule_words("0 * * * *"), "Every hour");
        assert_eq!(schedule_words("0 * * * * *"), "Cron 0 * * * * *");
    }
}
