//! Text helpers. Positions and lengths count characters, never bytes, so `é` or `😀` is never
//! cut in half. Every result is measured against the render's budget before it is built: a
//! `{{padStart x 1000000000}}` fails with the budget's message and allocates nothing.

use handlebars::RenderError;
use serde_json::Value;

use super::super::{BYTES_LEFT, ensure_fits, size_within, spend, spend_on_text};
use super::{Args, printed, spec};

pub(super) const HELPERS: &[super::Spec] = &[
    spec("upper", 1, 1, upper),
    spec("lower", 1, 1, lower),
    spec("capitalize", 1, 1, capitalize),
    spec("trim", 1, 1, trim),
    spec("replace", 3, 3, replace),
    spec("split", 1, 2, split),
    spec("join", 1, 2, join),
    spec("slice", 2, 3, slice),
    spec("padStart", 2, 3, pad_start),
    spec("padEnd", 2, 3, pad_end),
    spec("truncate", 2, 3, truncate),
    spec("json", 1, 1, json),
];

/// Argument `i` as text, its length counted as work.
fn text<'a>(args: &Args<'a, '_>, i: usize) -> Result<std::borrow::Cow<'a, str>, RenderError> {
    let text = args.text(i)?;
    spend_on_text(text.len())?;
    Ok(text)
}

/// `{{upper x}}`.
fn upper(args: &Args) -> Result<Value, RenderError> {
    let text = text(args, 0)?;
    ensure_fits(text.len())?;
    let upper = text.to_uppercase();
    // Some letters grow when upper-cased (ß → SS).
    ensure_fits(upper.len())?;
    Ok(Value::String(upper))
}

/// `{{lower x}}`.
fn lower(args: &Args) -> Result<Value, RenderError> {
    let text = text(args, 0)?;
    ensure_fits(text.len())?;
    let lower = text.to_lowercase();
    ensure_fits(lower.len())?;
    Ok(Value::String(lower))
}

/// `{{capitalize x}}`: the first character upper-cased, the rest as it is.
fn capitalize(args: &Args) -> Result<Value, RenderError> {
    let text = text(args, 0)?;
    let mut chars = text.chars();
    let Some(first) = chars.next() else {
        return Ok(Value::String(String::new()));
    };
    let rest = chars.as_str();
    ensure_fits(text.len() + 8)?;
    Ok(Value::String(
        first.to_uppercase().chain(rest.chars()).collect(),
    ))
}

/// `{{trim x}}`: without the white space around it.
fn trim(args: &Args) -> Result<Value, RenderError> {
    let text = text(args, 0)?;
    let trimmed = text.trim();
    ensure_fits(trimmed.len())?;
    Ok(Value::String(trimmed.to_owned()))
}

/// `{{replace x "search" "with"}}`: every occurrence.
fn replace(args: &Args) -> Result<Value, RenderError> {
    let text = text(args, 0)?;
    let search = args.text(1)?;
    let with = args.text(2)?;
    if search.is_empty() {
        return Err(args.fail("the text to replace is empty"));
    }
    let count = text.matches(search.as_ref()).count();
    let len = (text.len() - count * search.len()).saturating_add(count.saturating_mul(with.len()));
    ensure_fits(len)?;
    spend_on_text(len)?;
    Ok(Value::String(text.replace(search.as_ref(), &with)))
}

/// `{{split x ","}}`: a list of the pieces between separators (default `,`); an empty
/// separator splits into characters, an empty text gives an empty list.
fn split(args: &Args) -> Result<Value, RenderError> {
    let text = text(args, 0)?;
    let separator = args.text_or(1, ",")?;
    if text.is_empty() {
        return Ok(Value::Array(Vec::new()));
    }
    let pieces = if separator.is_empty() {
        text.chars().count()
    } else {
        text.matches(separator.as_ref()).count() + 1
    };
    // As JSON each piece takes its text, two quotes and a comma.
    ensure_fits(text.len().saturating_add(pieces.saturating_mul(3)))?;
    spend(pieces as u64)?;
    let strings: Vec<Value> = if separator.is_empty() {
        text.chars().map(|c| Value::String(c.into())).collect()
    } else {
        text.split(separator.as_ref())
            .map(|piece| Value::String(piece.to_owned()))
            .collect()
    };
    Ok(Value::Array(strings))
}

/// `{{join list ", "}}`: the items as text between separators (default `, `).
fn join(args: &Args) -> Result<Value, RenderError> {
    let list = args.value(0)?;
    let separator = args.text_or(1, ", ")?;
    let items = match list {
        Value::Array(items) => items,
        Value::Null => return Ok(Value::String(String::new())),
        other => {
            return Err(args.fail(format!("{} is not a list", super::shown(other))));
        }
    };
    spend(items.len() as u64)?;
    let mut joined = String::new();
    for (i, item) in items.iter().enumerate() {
        let piece = match item {
            Value::Array(_) | Value::Object(_) => {
                ensure_fits(
                    joined
                        .len()
                        .saturating_add(size_within(item, BYTES_LEFT.get())),
                )?;
                printed(item)?
            }
            other => printed(other)?,
        };
        let sep = if i == 0 { "" } else { separator.as_ref() };
        ensure_fits(joined.len() + sep.len() + piece.len())?;
        joined.push_str(sep);
        joined.push_str(&piece);
    }
    spend_on_text(joined.len())?;
    Ok(Value::String(joined))
}

/// Where character index `i` falls in a text of `len` characters: negative counts from the
/// end, and anything past either end stops there.
fn position(i: i64, len: usize) -> usize {
    let len_i = i64::try_from(len).unwrap_or(i64::MAX);
    let at = if i < 0 { len_i.saturating_add(i) } else { i };
    at.clamp(0, len_i) as usize
}

/// `{{slice x start end}}`: the characters from `start` up to (not including) `end`, which
/// defaults to the end; negative positions count from the end.
fn slice(args: &Args) -> Result<Value, RenderError> {
    let text = text(args, 0)?;
    let len = text.chars().count();
    let start = position(args.whole(1, "start")?, len);
    let end = match args.optional(2)? {
        None => len,
        Some(_) => position(args.whole(2, "end")?, len),
    };
    if start >= end {
        return Ok(Value::String(String::new()));
    }
    // Byte offsets of the characters, so the slice is measured before it is copied.
    let byte_at = |chars: usize| {
        text.char_indices()
            .nth(chars)
            .map_or(text.len(), |(at, _)| at)
    };
    let (from, to) = (byte_at(start), byte_at(end));
    ensure_fits(to - from)?;
    Ok(Value::String(text[from..to].to_owned()))
}

/// `text` padded with `pad` repeated (cut to fit) to `width` characters, at the start or end.
fn pad(args: &Args, at_start: bool) -> Result<Value, RenderError> {
    let text = text(args, 0)?;
    let width = args.count_or(1, "width", 0)?;
    let pad = args.text_or(2, " ")?;
    if pad.is_empty() {
        return Err(args.fail("the padding is empty"));
    }
    let missing = width.saturating_sub(text.chars().count());
    let pad_chars = pad.chars().count();
    let (whole, part) = (missing / pad_chars, missing % pad_chars);
    let part_bytes: usize = pad.chars().take(part).map(char::len_utf8).sum();
    let padding_bytes = whole.saturating_mul(pad.len()).saturating_add(part_bytes);
    // Measured before anything is built: a width of a billion fails here.
    ensure_fits(text.len().saturating_add(padding_bytes))?;
    spend_on_text(padding_bytes)?;
    let mut padding = pad.repeat(whole);
    padding.extend(pad.chars().take(part));
    Ok(Value::String(if at_start {
        padding + &text
    } else {
        text.into_owned() + &padding
    }))
}

/// `{{padStart x 5 "0"}}`: `42` → `00042`.
fn pad_start(args: &Args) -> Result<Value, RenderError> {
    pad(args, true)
}

/// `{{padEnd x 5 "."}}`: `42` → `42...`.
fn pad_end(args: &Args) -> Result<Value, RenderError> {
    pad(args, false)
}

/// `{{truncate x 10 "…"}}`: at most `length` characters, the suffix (default none) included
/// when the text was cut.
fn truncate(args: &Args) -> Result<Value, RenderError> {
    let text = text(args, 0)?;
    let length = args.count_or(1, "length", 0)?;
    let suffix = args.text_or(2, "")?;
    if text.chars().count() <= length {
        return Ok(Value::String(text.into_owned()));
    }
    let suffix: String = suffix.chars().take(length).collect();
    let keep = length - suffix.chars().count();
    let mut cut: String = text.chars().take(keep).collect();
    cut.push_str(&suffix);
    Ok(Value::String(cut))
}

/// `{{json x}}`: the value as JSON text.
fn json(args: &Args) -> Result<Value, RenderError> {
    let value = args.value(0)?;
    // Measured before it is built, then again as built (escaping lengthens it).
    ensure_fits(size_within(value, BYTES_LEFT.get()))?;
    let text = value.to_string();
    ensure_fits(text.len())?;
    spend_on_text(text.len())?;
    Ok(Value::String(text))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::super::{OUTPUT_EXCEEDED, render};
    use super::super::testing::{fails, r};

    #[test]
    fn text_is_cleaned_and_changed() {
        assert_eq!(r("[{{trim trigger.name}}]"), Ok(json!("[Acme Corp]")));
        assert_eq!(r("{{upper (trim trigger.name)}}"), Ok(json!("ACME CORP")));
        assert_eq!(r(r#"{{capitalize "élan vital"}}"#), Ok(json!("Élan vital")));
        assert_eq!(r(r#"{{capitalize ""}}"#), Ok(json!("")));
        assert_eq!(r(r#"{{upper "straße"}}"#), Ok(json!("STRASSE")));
        assert_eq!(
            r(r#"{{replace "a-b-c" "-" " / "}}"#),
            Ok(json!("a / b / c"))
        );
        assert_eq!(r(r#"{{replace "aaa" "a" ""}}"#), Ok(json!("")));
        assert_eq!(
            fails(r#"{{replace "abc" "" "x"}}"#),
            "replace: the text to replace is empty"
        );
    }

    #[test]
    fn split_gives_a_list_and_join_makes_it_text() {
        assert_eq!(r("{{split trigger.tags}}"), Ok(json!(["a", "b", "", "c"])));
        assert_eq!(r(r#"{{split "a; b" "; "}}"#), Ok(json!(["a", "b"])));
        assert_eq!(r(r#"{{split "hé!" ""}}"#), Ok(json!(["h", "é", "!"])));
        assert_eq!(r(r#"{{split "" ","}}"#), Ok(json!([])));
        // Printed among text, a list is JSON.
        assert_eq!(
            r(r#"tags: {{split "a,b"}}"#),
            Ok(json!(r#"tags: ["a","b"]"#))
        );
        assert_eq!(
            r(r#"{{#each (split trigger.tags ",")}}<{{this}}>{{/each}}"#),
            Ok(json!("<a><b><><c>"))
        );
        assert_eq!(
            r(r#"{{join (split trigger.tags ",") " | "}}"#),
            Ok(json!("a | b |  | c"))
        );
        assert_eq!(
            r(r#"{{join (pluck trigger.lines "sku")}}"#),
            Ok(json!("A, B, C"))
        );
        assert_eq!(
            r(r#"{{join (pluck trigger.lines "price") "+"}}"#),
            Ok(json!("0.10+0.20+"))
        );
        assert_eq!(
            r(r#"{{join trigger.people}}"#),
            Ok(json!(r#"{"first":"Ada","last":"Lovelace"}"#))
        );
        assert_eq!(r("{{join trigger.email}}"), Ok(json!("")));
        assert_eq!(
            fails("{{join trigger.name}}"),
            r#"join: "  Acme Corp  " is not a list"#
        );
    }

    #[test]
    fn slice_pad_and_truncate_count_characters() {
        assert_eq!(r(r#"{{slice "héllo wörld" 0 5}}"#), Ok(json!("héllo")));
        assert_eq!(r(r#"{{slice "héllo wörld" -5}}"#), Ok(json!("wörld")));
        assert_eq!(r(r#"{{slice "héllo wörld" 1 -1}}"#), Ok(json!("éllo wörl")));
        assert_eq!(r(r#"{{slice "abc" 5}}"#), Ok(json!("")));
        assert_eq!(r(r#"{{slice "abc" -99 99}}"#), Ok(json!("abc")));
        assert_eq!(r(r#"{{slice "abc" 2 1}}"#), Ok(json!("")));
        assert_eq!(r(r#"{{slice "abc" "1" "1e30"}}"#), Ok(json!("bc")));
        assert_eq!(r(r#"{{padStart 42 5 "0"}}"#), Ok(json!("00042")));
        assert_eq!(r(r#"{{padStart "x" 6 "ab"}}"#), Ok(json!("ababax")));
        assert_eq!(r(r#"{{padEnd "é" 3 "·"}}"#), Ok(json!("é··")));
        assert_eq!(r(r#"{{padEnd "abc" 2}}"#), Ok(json!("abc")));
        assert_eq!(r(r#"[{{padEnd "a" 3}}]"#), Ok(json!("[a  ]")));
        assert_eq!(r(r#"{{truncate "abcdef" 4}}"#), Ok(json!("abcd")));
        assert_eq!(r(r#"{{truncate "abcdef" 4 "…"}}"#), Ok(json!("abc…")));
        assert_eq!(r(r#"{{truncate "abcdef" 1 "..."}}"#), Ok(json!(".")));
        assert_eq!(r(r#"{{truncate "abc" 4 "…"}}"#), Ok(json!("abc")));
    }

    #[test]
    fn bad_positions_and_widths_name_the_helper() {
        assert_eq!(
            fails(r#"{{slice "abc" "x"}}"#),
            r#"slice: "x" is not a number"#
        );
        assert_eq!(
            fails(r#"{{slice "abc" 1.5}}"#),
            "slice: start 1.5 is not a whole number"
        );
        assert_eq!(
            fails(r#"{{padStart "a" -1}}"#),
            "padStart: width -1 is negative (a count of characters or places)"
        );
        assert_eq!(
            fails(r#"{{padStart "a" 3 ""}}"#),
            "padStart: the padding is empty"
        );
        assert_eq!(
            fails(r#"{{truncate "a" "ten"}}"#),
            r#"truncate: "ten" is not a number"#
        );
        assert_eq!(fails("{{split}}"), "split: takes 1 to 2 arguments, not 0");
        assert_eq!(fails("{{ length }}"), "length: takes 1 argument, not 0");
        assert_eq!(
            fails(r#"{{#eq trigger.amount 1250}}big{{/eq}}"#),
            "eq: is not a block; write {{#if (eq …)}}…{{/if}}"
        );
    }

    #[test]
    fn huge_results_fail_with_the_budget_message_before_they_are_built() {
        for template in [
            r#"{{padStart "x" 1000000000}}"#,
            r#"{{padEnd "x" 1000000000000000000000000 "ab"}}"#,
            r#"{{length (padStart "x" 1000000000)}}"#,
        ] {
            assert_eq!(fails(template), OUTPUT_EXCEEDED, "{template}");
        }
        let big = json!({"text": "ab".repeat(300_000)});
        for template in [
            // Each piece of a split grows by its quotes as JSON: 600,000 pieces do not fit.
            r#"{{length (split text "")}}"#,
            r#"{{replace text "a" "aaaa"}}"#,
            r#"{{join (split text "b") "----"}}"#,
        ] {
            assert_eq!(
                render(template, &big).unwrap_err().0,
                OUTPUT_EXCEEDED,
                "{template}"
            );
        }
        // What fits still renders.
        assert_eq!(
            render(r#"{{length (padStart "x" 500000)}}"#, &big),
            Ok(json!(500_000))
        );
    }

    #[test]
    fn helpers_going_through_large_texts_count_as_work() {
        // 5,000 loop items, each trimming 100 KiB: far beyond a million steps.
        let items: Vec<u32> = (0..5_000).collect();
        let data = json!({"items": items, "big": "x".repeat(100 * 1024)});
        let e = render(
            "{{#each items}}{{#if (trim ../big)}}{{/if}}{{/each}}",
            &data,
        )
        .unwrap_err();
        assert!(e.0.contains("more than 1000000 steps"), "{e}");
    }

    #[test]
    fn fields_named_like_helpers_still_read_as_fields() {
        assert_eq!(
            r("{{#each trigger.people}}{{first}} {{last}}{{/each}}"),
            Ok(json!("Ada Lovelace"))
        );
        assert_eq!(
            r("{{#with trigger}}{{#each people}}{{upper last}}{{/each}}{{/with}}"),
            Ok(json!("LOVELACE"))
        );
        assert_eq!(
            fails("{{#each trigger.people}}{{trim}}{{/each}}"),
            "this.trim is missing (no such variable)"
        );
    }
}
