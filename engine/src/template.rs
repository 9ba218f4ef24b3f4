//! Templates: handlebars in strict mode, so a missing variable fails with its path instead of
//! rendering an empty string. A template that is exactly one `{{path}}` yields the value itself
//! (a number stays a number, an object an object); anything else renders to a string.
//! Helpers: `default`, `upper`, `lower`, `json`, `date`.

use std::sync::OnceLock;

use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason, Template,
};
use serde_json::Value;

/// A template that does not parse, or that failed to render, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

fn registry() -> &'static Handlebars<'static> {
    static REGISTRY: OnceLock<Handlebars<'static>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        // Values go into JSON as values, never as HTML.
        hb.register_escape_fn(handlebars::no_escape);
        hb.register_helper("default", Box::new(default_helper));
        hb.register_helper("upper", Box::new(upper_helper));
        hb.register_helper("lower", Box::new(lower_helper));
        hb.register_helper("json", Box::new(json_helper));
        hb.register_helper("date", Box::new(date_helper));
        hb
    })
}

/// Longest template accepted, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 10_000;
/// Deepest nesting of blocks and subexpressions accepted (the parser recurses on them).
const MAX_NESTING: usize = 32;

/// Checks that `text` parses as a template.
pub fn check(text: &str) -> Result<(), TemplateError> {
    if text.len() > MAX_TEMPLATE_BYTES {
        return Err(TemplateError(format!(
            "a template is at most {MAX_TEMPLATE_BYTES} bytes"
        )));
    }
    if block_openings(text) > MAX_NESTING || text.matches('(').count() > MAX_NESTING * 4 {
        return Err(TemplateError(format!(
            "a template nests at most {MAX_NESTING} blocks"
        )));
    }
    // The parser's own message for an unclosed `{{` names grammar rules; say it plainly.
    if text.matches("{{").count() > text.matches("}}").count() {
        return Err(TemplateError(
            "the template does not parse: a {{ is not closed with }}".into(),
        ));
    }
    Template::compile(text)
        .map(drop)
        .map_err(|e| TemplateError(format!("the template does not parse: {}", e.reason())))
}

/// How many blocks a template opens (`{{#if}}`, `{{~#each}}`, `{{^x}}`, `{{else if}}`…): an
/// upper bound of how deep the parser recurses, counted without parsing.
fn block_openings(text: &str) -> usize {
    text.match_indices("{{")
        .filter(|(i, _)| {
            let rest = text[i + 2..]
                .trim_start_matches(|c: char| c == '{' || c == '~' || c.is_whitespace());
            rest.starts_with(['#', '^']) || rest.starts_with("else")
        })
        .count()
}

/// The single variable path of a template like `{{ trigger.name }}`, if that is all it is.
fn sole_path(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let simple = !inner.is_empty()
        && inner
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '[' | ']'))
        && !inner.starts_with(['.', '['])
        && !inner.contains("..");
    simple.then_some(inner)
}

/// Looks a dotted path (`steps.project.id`, `trigger.items.[0]`) up in `data`.
fn lookup<'a>(data: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .map(|part| part.trim_start_matches('[').trim_end_matches(']'))
        .try_fold(data, |value, part| match value {
            Value::Object(map) => map.get(part),
            Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
}

/// Renders one template against `data`.
pub fn render(text: &str, data: &Value) -> Result<Value, TemplateError> {
    if let Some(path) = sole_path(text) {
        return lookup(data, path)
            .cloned()
            .ok_or_else(|| TemplateError(format!("{path} is missing (no such variable)")));
    }
    if !text.contains("{{") {
        return Ok(Value::String(text.to_owned()));
    }
    check(text)?;
    registry()
        .render_template(text, data)
        .map(Value::String)
        .map_err(|e| TemplateError(describe(&e)))
}

fn describe(error: &RenderError) -> String {
    match error.reason() {
        RenderErrorReason::MissingVariable(Some(path)) => {
            format!("{path} is missing (no such variable)")
        }
        RenderErrorReason::TemplateError(e) => {
            format!("the template does not parse: {}", e.reason())
        }
        other => other.to_string(),
    }
}

/// Renders a template whose variables may be absent (a manifest's optional inputs): a sole
/// `{{path}}` that is missing gives None; anything else renders as [`render`] does.
pub fn render_optional(text: &str, data: &Value) -> Result<Option<Value>, TemplateError> {
    if let Some(path) = sole_path(text) {
        return Ok(lookup(data, path).cloned());
    }
    render(text, data).map(Some)
}

/// Renders every string of `value` that is a template (object values, array items), keeping
/// its shape. Errors carry the path below `at`, e.g. `steps[0].input.name`.
pub fn render_value(
    value: &Value,
    data: &Value,
    at: &str,
) -> Result<Value, (String, TemplateError)> {
    match value {
        Value::String(text) => render(text, data).map_err(|e| (at.to_owned(), e)),
        Value::Object(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (key, inner) in map {
                out.insert(
                    key.clone(),
                    render_value(inner, data, &format!("{at}.{key}"))?,
                );
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, inner)| render_value(inner, data, &format!("{at}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Ok(other.clone()),
    }
}

/// Checks that every string of `value` parses as a template; the first failure with its path.
pub fn check_value(value: &Value, at: &str) -> Result<(), (String, TemplateError)> {
    match value {
        Value::String(text) => check(text).map_err(|e| (at.to_owned(), e)),
        Value::Object(map) => map
            .iter()
            .try_for_each(|(key, inner)| check_value(inner, &format!("{at}.{key}"))),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, inner)| check_value(inner, &format!("{at}[{i}]"))),
        _ => Ok(()),
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `{{default input.email "none"}}`: the first parameter unless it is missing, null or empty.
fn default_helper(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let chosen = h
        .params()
        .iter()
        .map(|p| p.value())
        .find(|v| !matches!(v, Value::Null) && *v != &Value::String(String::new()));
    out.write(&chosen.map(text_of).unwrap_or_default())?;
    Ok(())
}

fn first_param<'a>(h: &'a Helper, name: &'static str) -> Result<&'a Value, RenderError> {
    h.param(0)
        .map(|p| p.value())
        .ok_or_else(|| RenderErrorReason::ParamNotFoundForIndex(name, 0).into())
}

fn upper_helper(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    out.write(&text_of(first_param(h, "upper")?).to_uppercase())?;
    Ok(())
}

fn lower_helper(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    out.write(&text_of(first_param(h, "lower")?).to_lowercase())?;
    Ok(())
}

fn json_helper(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    out.write(&first_param(h, "json")?.to_string())?;
    Ok(())
}

/// `{{date trigger.createdAt "%Y-%m-%d"}}`: an RFC 3339 instant or a date, formatted with
/// chrono's strftime; the format defaults to `%Y-%m-%d`.
fn date_helper(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let text = text_of(first_param(h, "date")?);
    let format = h
        .param(1)
        .map(|p| text_of(p.value()))
        .unwrap_or_else(|| "%Y-%m-%d".to_owned());
    let instant = chrono::DateTime::parse_from_rfc3339(&text)
        .map(|t| t.naive_utc())
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
        })
        .map_err(|_| {
            RenderErrorReason::Other(format!(
                "date: {text:?} is not a date or an RFC 3339 instant"
            ))
        })?;
    let mut formatted = String::new();
    std::fmt::Write::write_fmt(&mut formatted, format_args!("{}", instant.format(&format)))
        .map_err(|_| RenderErrorReason::Other(format!("date: {format:?} is not a valid format")))?;
    out.write(&formatted)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn data() -> Value {
        json!({"trigger": {"name": "Acme", "rate": 120, "tags": ["a", "b"], "createdAt": "2026-11-22T09:30:00Z", "email": null},
               "steps": {"project": {"id": "prj_1"}}})
    }

    #[test]
    fn an_unclosed_variable_is_named_plainly() {
        assert_eq!(
            check("Project for {{trigger.name"),
            Err(TemplateError(
                "the template does not parse: a {{ is not closed with }}".into()
            ))
        );
        assert_eq!(check("{{{trigger.name}}}"), Ok(()));
    }

    #[test]
    fn a_sole_variable_keeps_its_type() {
        assert_eq!(render("{{trigger.rate}}", &data()), Ok(json!(120)));
        assert_eq!(render("{{ trigger.tags }}", &data()), Ok(json!(["a", "b"])));
        assert_eq!(render("{{trigger.tags.[1]}}", &data()), Ok(json!("b")));
        assert_eq!(render("{{steps.project.id}}", &data()), Ok(json!("prj_1")));
        assert_eq!(render("plain", &data()), Ok(json!("plain")));
    }

    #[test]
    fn text_templates_render_and_helpers_apply() {
        assert_eq!(
            render("Project for {{trigger.name}}", &data()),
            Ok(json!("Project for Acme"))
        );
        assert_eq!(render("{{upper trigger.name}}", &data()), Ok(json!("ACME")));
        assert_eq!(
            render("{{lower trigger.name}}!", &data()),
            Ok(json!("acme!"))
        );
        assert_eq!(
            render("{{default trigger.email \"none\"}}", &data()),
            Ok(json!("none"))
        );
        // `default` is the one place a missing variable is fine.
        assert_eq!(
            render("{{default trigger.nickname trigger.name}}", &data()),
            Ok(json!("Acme"))
        );
        assert_eq!(
            render("{{date trigger.createdAt \"%d.%m.%Y\"}}", &data()),
            Ok(json!("22.11.2026"))
        );
        assert_eq!(
            render("{{json trigger.tags}}", &data()),
            Ok(json!("[\"a\",\"b\"]"))
        );
    }

    #[test]
    fn a_missing_variable_fails_with_its_path() {
        let e = render("{{trigger.nope}}", &data()).unwrap_err();
        assert!(e.0.contains("trigger.nope"), "{e}");
        let e = render("Hello {{trigger.nope}}", &data()).unwrap_err();
        assert!(e.0.contains("trigger.nope"), "{e}");
        let e = render_value(
            &json!({"name": "{{trigger.missing}}"}),
            &data(),
            "steps[0].input",
        )
        .unwrap_err();
        assert_eq!(e.0, "steps[0].input.name");
    }

    #[test]
    fn templates_that_do_not_parse_are_found() {
        assert!(check("{{trigger.name").is_err());
        assert!(check("{{#if x}}no end").is_err());
        assert!(check("{{trigger.name}} ok").is_ok());
        let e = check_value(&json!({"a": ["ok", "{{bad"]}), "input").unwrap_err();
        assert_eq!(e.0, "input.a[1]");
    }
}
