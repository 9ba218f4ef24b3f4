//! What JSON this service accepts and keeps: how deep it may nest ([`MAX_DEPTH`]), and the one
//! character Postgres cannot store in text (NUL, U+0000), found with the path of its field.
//!
//! The nesting limit exists so that everything accepted can be read back: a stored payload is
//! parsed again (with `serde_json`'s fixed recursion limit of 128) and wrapped in answers
//! (`{"items": [{"trigger": …}]}`) that add levels of their own.

use serde_json::Value;

/// The most levels of objects and arrays accepted in a JSON body or payload: `{"a":{"b":1}}`
/// is 2 levels.
pub const MAX_DEPTH: usize = 64;

/// How many quoted characters of a caller's input an error message repeats.
pub const QUOTE_CHARS: usize = 64;

/// What stands in for a value nested deeper than [`MAX_DEPTH`] in something kept from outside
/// (an answer of another service stored as a step's output).
pub const CLIPPED: &str = "(nested deeper than 64 levels: not kept)";

/// How many levels of objects and arrays `value` nests: 0 for a scalar, 1 for `{}` or `[1]`.
pub fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((value, above)) = stack.pop() {
        let level = above + 1;
        match value {
            Value::Object(map) => {
                deepest = deepest.max(level);
                stack.extend(map.values().map(|v| (v, level)));
            }
            Value::Array(items) => {
                deepest = deepest.max(level);
                stack.extend(items.iter().map(|v| (v, level)));
            }
            _ => {}
        }
    }
    deepest
}

/// Whether a `serde_json` error is its recursion limit (a document nested deeper than 128).
pub fn is_too_deep(error: &serde_json::Error) -> bool {
    error.to_string().starts_with("recursion limit exceeded")
}

/// The message of a document nested too deep.
pub fn too_deep_message() -> String {
    format!(
        "the JSON nests objects and arrays more than {MAX_DEPTH} levels deep; at most {MAX_DEPTH} are accepted"
    )
}

/// The path (`steps[0].input.name`) of the first string or key holding a NUL character, if any.
/// A key with a NUL ends the path, shown with `\u0000`.
pub fn find_nul(value: &Value) -> Option<String> {
    let mut stack = vec![(value, String::new())];
    while let Some((value, path)) = stack.pop() {
        match value {
            Value::String(text) if text.contains('\0') => return Some(path),
            Value::Object(map) => {
                // Reversed so that the first field is looked at first.
                for (key, inner) in map.iter().rev() {
                    let name = shorten(&key.replace('\0', "\\u0000"));
                    let at = if path.is_empty() {
                        name
                    } else {
                        format!("{path}.{name}")
                    };
                    if key.contains('\0') {
                        return Some(at);
                    }
                    stack.push((inner, at));
                }
            }
            Value::Array(items) => {
                for (index, inner) in items.iter().enumerate().rev() {
                    stack.push((inner, format!("{path}[{index}]")));
                }
            }
            _ => {}
        }
    }
    None
}

/// `value` with every object or array below [`MAX_DEPTH`] levels replaced by [`CLIPPED`], so
/// that what is kept from outside can always be read back and shown.
pub fn clip(value: &mut Value) {
    clip_below(value, MAX_DEPTH);
}

fn clip_below(value: &mut Value, levels_left: usize) {
    if !(value.is_object() || value.is_array()) {
        return;
    }
    if levels_left == 0 {
        *value = Value::String(CLIPPED.into());
        return;
    }
    match value {
        Value::Object(map) => map
            .values_mut()
            .for_each(|child| clip_below(child, levels_left - 1)),
        Value::Array(items) => items
            .iter_mut()
            .for_each(|child| clip_below(child, levels_left - 1)),
        _ => {}
    }
}

/// The first [`QUOTE_CHARS`] characters of a caller's text, with `…` when there was more: what
/// an error message may repeat of it.
pub fn shorten(text: &str) -> String {
    shorten_to(text, QUOTE_CHARS)
}

/// The first `chars` characters of `text`, with `…` when there was more.
pub fn shorten_to(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A caller's text quoted for an error message (`"crate_customer"`), shortened like
/// [`shorten`].
pub fn quote(text: &str) -> String {
    format!("{:?}", shorten(text))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn nested(levels: usize) -> Value {
        let mut value = json!(1);
        for _ in 0..levels {
            value = json!({ "a": value });
        }
        value
    }

    #[test]
    fn depth_counts_objects_and_arrays() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!({})), 1);
        assert_eq!(depth(&json!({"a": [1, {"b": []}], "c": 2})), 4);
        assert_eq!(depth(&nested(100)), 100);
    }

    #[test]
    fn nul_is_found_with_its_path() {
        assert_eq!(find_nul(&json!({"name": "ok", "tags": ["a", "b"]})), None);
        assert_eq!(find_nul(&json!({"name": "a\u{0}b"})), Some("name".into()));
        assert_eq!(
            find_nul(&json!({"steps": [{"input": {"x": "ok"}}, {"input": {"x": "\u{0}"}}]})),
            Some("steps[1].input.x".into())
        );
        assert_eq!(
            find_nul(&json!({"input": {"a\u{0}": 1}})),
            Some("input.a\\u0000".into())
        );
        assert_eq!(find_nul(&json!(["\u{0}"])), Some("[0]".into()));
    }

    #[test]
    fn clipping_keeps_the_first_levels() {
        let mut value = nested(70);
        clip(&mut value);
        assert_eq!(depth(&value), MAX_DEPTH);
        let mut inner = &value;
        for _ in 0..MAX_DEPTH {
            inner = &inner["a"];
        }
        assert_eq!(inner, &json!(CLIPPED));
        let mut shallow = nested(MAX_DEPTH);
        clip(&mut shallow);
        assert_eq!(shallow, nested(MAX_DEPTH));
    }

    #[test]
    fn quotes_are_short() {
        assert_eq!(quote("abc"), "\"abc\"");
        let long = "é".repeat(1000);
        assert_eq!(shorten(&long).chars().count(), QUOTE_CHARS + 1);
        assert!(shorten(&long).ends_with('…'));
    }
}
