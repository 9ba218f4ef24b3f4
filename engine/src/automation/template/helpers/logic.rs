//! Comparisons and logic for inline conditions (`{{#if (gt trigger.amount 1000)}}`), and the
//! helpers that choose among values (`default`, `coalesce`). Comparisons give booleans, so a
//! block sees `false` as false (a text `"false"` would be true).
//!
//! Two values compare as numbers when both are numbers or decimal texts (`"12.50"` equals
//! `12.5`), as time when both are instants or dates (`…T10:30:00+01:00` equals `…T09:30:00Z`),
//! else as text; `eq` and `ne` compare lists and objects by their content.

use std::cmp::Ordering;

use handlebars::{JsonTruthy, RenderError};
use serde_json::Value;

use super::super::{MAX_OUTPUT_BYTES, size_within, spend_on_text};
use super::dates::Moment;
use super::decimal::Decimal;
use super::lists::copied;
use super::{Args, MANY, spec, text_of};

pub(super) const HELPERS: &[super::Spec] = &[
    spec("eq", 2, 2, eq),
    spec("ne", 2, 2, ne),
    spec("gt", 2, 2, gt),
    spec("gte", 2, 2, gte),
    spec("lt", 2, 2, lt),
    spec("lte", 2, 2, lte),
    spec("and", 1, MANY, and),
    spec("or", 1, MANY, or),
    spec("not", 1, 1, not),
    spec("default", 0, MANY, default),
    spec("coalesce", 1, MANY, coalesce),
];

/// `a` and `b` as numbers, when both are.
fn numbers(a: &Value, b: &Value) -> Option<(Decimal, Decimal)> {
    let number = |v: &Value| match v {
        Value::Number(_) | Value::String(_) => Decimal::of(v).ok(),
        _ => None,
    };
    Some((number(a)?, number(b)?))
}

/// `a` and `b` as instants or dates, when both are.
fn moments(a: &Value, b: &Value) -> Option<(Moment, Moment)> {
    Some((Moment::parse(a.as_str()?)?, Moment::parse(b.as_str()?)?))
}

fn is_structured(value: &Value) -> bool {
    matches!(value, Value::Array(_) | Value::Object(_))
}

/// How `a` orders against `b`: as numbers, as time, else as text.
fn order(args: &Args, a: &Value, b: &Value) -> Result<Ordering, RenderError> {
    if let Some((x, y)) = numbers(a, b) {
        return Ok(x.compare(y));
    }
    if let Some((x, y)) = moments(a, b) {
        return Ok(x.utc().cmp(&y.utc()));
    }
    if is_structured(a) || is_structured(b) {
        return Err(args.fail("lists and objects have no order (compare a field or a length)"));
    }
    let (a, b) = (text_of(a), text_of(b));
    spend_on_text(a.len().min(b.len()))?;
    Ok(a.cmp(&b))
}

fn equal(args: &Args) -> Result<bool, RenderError> {
    let (a, b) = (args.value(0)?, args.value(1)?);
    if is_structured(a) || is_structured(b) {
        // Comparing goes through at most the smaller of the two.
        let size = |v: &Value| size_within(v, MAX_OUTPUT_BYTES);
        spend_on_text(size(a).min(size(b)))?;
        return Ok(a == b);
    }
    order(args, a, b).map(Ordering::is_eq)
}

fn ordered(args: &Args, accept: fn(Ordering) -> bool) -> Result<Value, RenderError> {
    let (a, b) = (args.value(0)?, args.value(1)?);
    order(args, a, b).map(|o| Value::Bool(accept(o)))
}

/// `{{eq a b}}`.
fn eq(args: &Args) -> Result<Value, RenderError> {
    equal(args).map(Value::Bool)
}

/// `{{ne a b}}`.
fn ne(args: &Args) -> Result<Value, RenderError> {
    equal(args).map(|e| Value::Bool(!e))
}

/// `{{gt a b}}`: a > b.
fn gt(args: &Args) -> Result<Value, RenderError> {
    ordered(args, Ordering::is_gt)
}

/// `{{gte a b}}`: a ≥ b.
fn gte(args: &Args) -> Result<Value, RenderError> {
    ordered(args, Ordering::is_ge)
}

/// `{{lt a b}}`: a < b.
fn lt(args: &Args) -> Result<Value, RenderError> {
    ordered(args, Ordering::is_lt)
}

/// `{{lte a b}}`: a ≤ b.
fn lte(args: &Args) -> Result<Value, RenderError> {
    ordered(args, Ordering::is_le)
}

/// Whether a value counts as true, as `{{#if}}` sees it: not false, null, 0, empty.
fn truthy(value: &Value) -> bool {
    value.is_truthy(false)
}

/// `{{and a b …}}`: whether every argument is true.
fn and(args: &Args) -> Result<Value, RenderError> {
    for i in 0..args.len() {
        if !truthy(args.value(i)?) {
            return Ok(Value::Bool(false));
        }
    }
    Ok(Value::Bool(true))
}

/// `{{or a b …}}`: whether any argument is true.
fn or(args: &Args) -> Result<Value, RenderError> {
    for i in 0..args.len() {
        if truthy(args.value(i)?) {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

/// `{{not a}}`.
fn not(args: &Args) -> Result<Value, RenderError> {
    Ok(Value::Bool(!truthy(args.value(0)?)))
}

/// `{{default input.email "none"}}`: the first argument that is there, not null and not empty,
/// as text (a missing variable is fine here).
fn default(args: &Args) -> Result<Value, RenderError> {
    let chosen = args
        .lenient()
        .find(|v| !v.is_null() && v.as_str() != Some(""));
    match chosen {
        Some(Value::String(text)) => copied(&Value::String(text.clone())),
        Some(other) => super::printed(other).map(|text| Value::String(text.into_owned())),
        None => Ok(Value::String(String::new())),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.is_empty(),
        _ => false,
    }
}

/// `{{coalesce a b …}}`: the first argument that is there and not null or empty (text, list or
/// object), as the value it is; null when none is.
fn coalesce(args: &Args) -> Result<Value, RenderError> {
    args.lenient()
        .find(|v| !is_empty(v))
        .map_or(Ok(Value::Null), copied)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::testing::{fails, r};

    #[test]
    fn comparisons_are_numeric_for_numbers_and_decimal_texts() {
        for (template, expected) in [
            ("{{gt trigger.amount 1000}}", true),
            ("{{gt trigger.amount \"1250.00\"}}", false),
            ("{{gte trigger.amount \"1250.00\"}}", true),
            ("{{eq trigger.price 12.5}}", true),
            ("{{lt \"9\" \"10\"}}", true),
            ("{{lt \"9\" \"10a\"}}", false),
            ("{{lte -1 0}}", true),
            ("{{ne trigger.hours \"1.50\"}}", false),
            ("{{eq \"Acme\" \"Acme\"}}", true),
            ("{{gt \"b\" \"a\"}}", true),
            ("{{eq true \"true\"}}", true),
            ("{{eq trigger.email \"\"}}", true),
            ("{{eq trigger.lines trigger.lines}}", true),
            ("{{eq trigger.lines \"x\"}}", false),
            (
                "{{eq \"2026-11-22T10:30:00+01:00\" trigger.createdAt}}",
                true,
            ),
            ("{{lt trigger.day trigger.createdAt}}", true),
            ("{{gt \"2026-11-22\" \"2026-11-21T23:00:00-02:00\"}}", false),
        ] {
            assert_eq!(r(template), Ok(json!(expected)), "{template}");
        }
        assert_eq!(
            fails("{{gt trigger.lines 1}}"),
            "gt: lists and objects have no order (compare a field or a length)"
        );
        assert_eq!(
            fails("{{gt trigger.nope 1}}"),
            "trigger.nope is missing (no such variable)"
        );
    }

    #[test]
    fn conditions_read_comparisons_as_booleans() {
        assert_eq!(
            r("{{#if (gt trigger.amount 1000)}}big{{else}}small{{/if}}"),
            Ok(json!("big"))
        );
        assert_eq!(
            r("{{#if (lt trigger.amount 1000)}}small{{else}}big{{/if}}"),
            Ok(json!("big"))
        );
        assert_eq!(
            r("{{#if (and (gt trigger.amount 1000) (not trigger.email))}}y{{else}}n{{/if}}"),
            Ok(json!("y"))
        );
        assert_eq!(
            r("{{#unless (or trigger.email trigger.empty 0)}}none{{/unless}}"),
            Ok(json!("none"))
        );
        assert_eq!(
            r("{{#each trigger.lines}}{{#if (gte qty 2)}}{{sku}}{{/if}}{{/each}}"),
            Ok(json!("AC"))
        );
        assert_eq!(r("{{and 1 \"x\" trigger.lines}}"), Ok(json!(true)));
        assert_eq!(r("{{or 0 \"\" trigger.email}}"), Ok(json!(false)));
        assert_eq!(r("{{not trigger.email}} {{not 0}}"), Ok(json!("true true")));
    }

    #[test]
    fn default_gives_text_and_coalesce_keeps_the_value() {
        assert_eq!(r("{{default trigger.email \"none\"}}"), Ok(json!("none")));
        assert_eq!(
            r("{{default trigger.nope trigger.amount}}"),
            Ok(json!("1250"))
        );
        assert_eq!(r("{{default trigger.email}}"), Ok(json!("")));
        assert_eq!(
            r("{{coalesce trigger.nope trigger.email trigger.empty trigger.amount}}"),
            Ok(json!(1250))
        );
        assert_eq!(
            r("{{coalesce (split \"\") trigger.lines}}").map(|v| v.is_array()),
            Ok(true)
        );
        assert_eq!(r("{{coalesce trigger.email}}"), Ok(Value::Null));
        assert_eq!(r("[{{coalesce trigger.email}}]"), Ok(json!("[]")));
        assert_eq!(
            fails("{{coalesce}}"),
            "coalesce: takes at least 1 argument, not 0"
        );
    }
}
