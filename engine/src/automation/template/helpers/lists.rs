//! List helpers: `first`, `last`, `length`, `pluck` and `sum`. `first`, `last` and `pluck`
//! give values from the data as they are (an item may be an object); every value copied is
//! measured against the render's budget first, and every item gone through counts as work.

use handlebars::RenderError;
use serde_json::Value;

use super::super::{BYTES_LEFT, ensure_fits, lookup, size_within, spend, spend_on_text};
use super::decimal::{Decimal, sum as total};
use super::{Args, shown, spec};

pub(super) const HELPERS: &[super::Spec] = &[
    spec("first", 1, 1, first),
    spec("last", 1, 1, last),
    spec("length", 1, 1, length),
    spec("pluck", 2, 2, pluck),
    spec("sum", 1, 2, sum),
];

/// A copy of `value` from the data, when it fits in the budget.
pub(super) fn copied(value: &Value) -> Result<Value, RenderError> {
    let size = size_within(value, BYTES_LEFT.get());
    ensure_fits(size)?;
    spend_on_text(size)?;
    Ok(value.clone())
}

fn list<'a>(args: &Args<'a, '_>, i: usize) -> Result<&'a [Value], RenderError> {
    match args.value(i)? {
        Value::Array(items) => {
            spend(items.len() as u64)?;
            Ok(items)
        }
        Value::Null => Ok(&[]),
        other => Err(args.fail(format!("{} is not a list", shown(other)))),
    }
}

fn end(args: &Args, last: bool) -> Result<Value, RenderError> {
    match args.value(0)? {
        Value::Array(items) => {
            let item = if last { items.last() } else { items.first() };
            item.map_or(Ok(Value::Null), copied)
        }
        Value::String(text) => {
            let c = if last {
                text.chars().next_back()
            } else {
                text.chars().next()
            };
            Ok(c.map_or(Value::Null, |c| Value::String(c.into())))
        }
        Value::Null => Ok(Value::Null),
        other => Err(args.fail(format!("{} is neither a list nor a text", shown(other)))),
    }
}

/// `{{first list}}`: the first item (null for an empty list); of a text, its first character.
fn first(args: &Args) -> Result<Value, RenderError> {
    end(args, false)
}

/// `{{last list}}`: the last item; of a text, its last character.
fn last(args: &Args) -> Result<Value, RenderError> {
    end(args, true)
}

/// `{{length x}}`: items of a list, characters of a text, fields of an object; 0 for null.
fn length(args: &Args) -> Result<Value, RenderError> {
    let n = match args.value(0)? {
        Value::Array(items) => items.len(),
        Value::Object(fields) => fields.len(),
        Value::String(text) => {
            spend_on_text(text.len())?;
            text.chars().count()
        }
        Value::Null => 0,
        other => {
            return Err(args.fail(format!(
                "{} is neither a list, a text nor an object",
                shown(other)
            )));
        }
    };
    Ok(Value::from(n))
}

/// `{{pluck list "field"}}`: each item's field (a dotted path such as `customer.name`), null
/// where an item has none.
fn pluck(args: &Args) -> Result<Value, RenderError> {
    let items = list(args, 0)?;
    let field = args.text(1)?;
    let mut size = 2usize;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let value = lookup(item, &field).unwrap_or(&Value::Null);
        size = size.saturating_add(size_within(value, BYTES_LEFT.get()) + 1);
        ensure_fits(size)?;
        out.push(value.clone());
    }
    spend_on_text(size)?;
    Ok(Value::Array(out))
}

/// `{{sum list}}` or `{{sum list "field"}}`: the exact total of the numbers (or of each item's
/// field); null and empty items are left out.
fn sum(args: &Args) -> Result<Value, RenderError> {
    let items = list(args, 0)?;
    let field = args.optional(1)?.map(super::text_of);
    let mut numbers = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let value = match &field {
            Some(field) => lookup(item, field).unwrap_or(&Value::Null),
            None => item,
        };
        if value.is_null() || value.as_str() == Some("") {
            continue;
        }
        let number = Decimal::of(value)
            .map_err(|unfit| args.fail(format!("item {} ({}) {unfit}", i + 1, shown(value))))?;
        numbers.push(number);
    }
    total(numbers)
        .map(|d| d.normalized().to_value())
        .ok_or_else(|| args.fail("the result has too many digits (at most 38)"))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::super::{OUTPUT_EXCEEDED, render, render_value};
    use super::super::testing::{data, fails, r};

    #[test]
    fn first_last_and_length() {
        assert_eq!(
            r("{{first trigger.lines}}"),
            Ok(json!({"sku": "A", "qty": 2, "price": "0.10"}))
        );
        assert_eq!(r("{{last (split trigger.tags)}}"), Ok(json!("c")));
        assert_eq!(r("{{first (split \"\")}}"), Ok(Value::Null));
        assert_eq!(r("[{{first (split \"\")}}]"), Ok(json!("[]")));
        assert_eq!(r("{{first \"élan\"}}{{last \"élan\"}}"), Ok(json!("én")));
        assert_eq!(
            r("{{#with (first trigger.lines)}}{{sku}}×{{qty}}{{/with}}"),
            Ok(json!("A×2"))
        );
        assert_eq!(r("{{length trigger.lines}}"), Ok(json!(3)));
        assert_eq!(r("{{length \"héllo\"}}"), Ok(json!(5)));
        assert_eq!(r("{{length trigger}}"), Ok(json!(11)));
        assert_eq!(r("{{length trigger.email}}"), Ok(json!(0)));
        assert_eq!(
            fails("{{length trigger.amount}}"),
            "length: 1250 is neither a list, a text nor an object"
        );
        assert_eq!(
            fails("{{first 3}}"),
            "first: 3 is neither a list nor a text"
        );
    }

    #[test]
    fn pluck_and_sum_work_through_lists_of_objects() {
        assert_eq!(
            r("{{pluck trigger.lines \"sku\"}}"),
            Ok(json!(["A", "B", "C"]))
        );
        assert_eq!(r("{{pluck trigger.people \"middle\"}}"), Ok(json!([null])));
        assert_eq!(
            render(
                "{{pluck items \"customer.name\"}}",
                &json!({"items": [{"customer": {"name": "Acme"}}, {}]})
            ),
            Ok(json!(["Acme", null]))
        );
        assert_eq!(r("{{sum trigger.lines \"price\"}}"), Ok(json!(0.3)));
        assert_eq!(r("{{sum (pluck trigger.lines \"qty\")}}"), Ok(json!(6)));
        assert_eq!(r("{{sum trigger.email}}"), Ok(json!(0)));
        assert_eq!(
            fails("{{sum trigger.lines \"sku\"}}"),
            r#"sum: item 1 ("A") is not a number"#
        );
        assert_eq!(
            fails("{{pluck trigger.name \"x\"}}"),
            r#"pluck: "  Acme Corp  " is not a list"#
        );
    }

    #[test]
    fn list_values_stay_lists_as_the_whole_template_and_in_an_input() {
        let input = json!({
            "skus": "{{pluck trigger.lines \"sku\"}}",
            "tags": "{{split trigger.tags}}",
            "firstLine": "{{first trigger.lines}}",
            "count": "{{length trigger.lines}}",
            "big": "{{gt trigger.amount 1000}}",
            "text": "{{length trigger.lines}} lines"
        });
        assert_eq!(
            render_value(&input, &data(), "input"),
            Ok(json!({
                "skus": ["A", "B", "C"],
                "tags": ["a", "b", "", "c"],
                "firstLine": {"sku": "A", "qty": 2, "price": "0.10"},
                "count": 3,
                "big": true,
                "text": "3 lines"
            }))
        );
    }

    #[test]
    fn copies_of_large_items_count_against_the_budget() {
        let item = json!({"text": "x".repeat(400_000)});
        let data = json!({"items": [item.clone(), item.clone()]});
        // Each copy is 400 KB: three of them do not fit in one input.
        let input = json!(["{{first items}}", "{{last items}}", "{{first items}}"]);
        let (path, e) = render_value(&input, &data, "input").unwrap_err();
        assert_eq!((path.as_str(), e.0.as_str()), ("input[2]", OUTPUT_EXCEEDED));
        let three = json!({"items": [item.clone(), item.clone(), item]});
        let e = render("{{length (pluck items \"text\")}}", &three).unwrap_err();
        assert_eq!(e.0, OUTPUT_EXCEEDED);
    }
}
