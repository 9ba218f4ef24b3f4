//! The condition language shared by `filter`, `if`, `switch` and event triggers: `{all: [...]}`,
//! `{any: [...]}`, `{not: c}` or a leaf `{left, op, right?}` whose sides are templates.
//! Comparisons are typed: numbers and decimal strings compare exactly as numbers, instants and
//! dates as time, booleans with the texts `true` and `false`, anything else as text.

use std::cmp::Ordering;

use serde_json::{Map, Value, json};

use crate::automation::template;
use crate::error::Problems;
use crate::store::json;

/// Conditions nest at most this deep (`all` in `any` in `not` …).
pub const MAX_CONDITION_DEPTH: usize = 8;
/// Leaves in one condition.
pub const MAX_LEAVES: usize = 100;
/// The largest compiled form a `matches` pattern may take: a pattern needing more is refused
/// (matching itself is linear in the text with this engine; only the size is bounded).
const REGEX_SIZE_LIMIT: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Leaf(Leaf),
}

/// One comparison: `left op right`, each side a template (or a plain JSON value).
#[derive(Debug, Clone, PartialEq)]
pub struct Leaf {
    pub left: Value,
    pub op: Op,
    pub right: Option<Value>,
}

macro_rules! ops {
    ($($variant:ident = $text:literal),* $(,)?) => {
        /// A comparison operator, as written in a leaf's `op`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Op { $($variant),* }

        impl Op {
            pub const ALL: &[Op] = &[$(Op::$variant),*];

            pub const fn as_str(self) -> &'static str {
                match self { $(Op::$variant => $text),* }
            }
        }
    };
}

ops! {
    Equals = "equals",
    NotEquals = "notEquals",
    Contains = "contains",
    NotContains = "notContains",
    StartsWith = "startsWith",
    EndsWith = "endsWith",
    Matches = "matches",
    Gt = "gt",
    Gte = "gte",
    Lt = "lt",
    Lte = "lte",
    Before = "before",
    After = "after",
    Exists = "exists",
    NotExists = "notExists",
    IsEmpty = "isEmpty",
    IsNotEmpty = "isNotEmpty",
    In = "in",
    NotIn = "notIn",
}

impl Op {
    fn parse(text: &str) -> Option<Op> {
        Op::ALL.iter().copied().find(|op| op.as_str() == text)
    }

    /// Whether the operator looks at the left side only.
    fn is_unary(self) -> bool {
        matches!(
            self,
            Op::Exists | Op::NotExists | Op::IsEmpty | Op::IsNotEmpty
        )
    }
}

/// Parses a condition at `at`, recording every problem in `p`.
pub fn parse(p: &mut Problems, value: &Value, at: &str) -> Option<Condition> {
    let mut leaves = 0;
    let condition = parse_at(p, value, at, 1, &mut leaves);
    if leaves > MAX_LEAVES {
        p.add(
            at,
            "too_large",
            format!("a condition has at most {MAX_LEAVES} comparisons"),
        );
        return None;
    }
    condition
}

fn parse_at(
    p: &mut Problems,
    value: &Value,
    at: &str,
    depth: usize,
    leaves: &mut usize,
) -> Option<Condition> {
    let Some(object) = value.as_object() else {
        p.add(
            at,
            "invalid",
            "a condition is {all: [...]}, {any: [...]}, {not: ...} or {left, op, right}",
        );
        return None;
    };
    if depth > MAX_CONDITION_DEPTH {
        p.add(
            at,
            "too_deep",
            format!("conditions nest at most {MAX_CONDITION_DEPTH} deep"),
        );
        return None;
    }
    for group in ["all", "any"] {
        if let Some(list) = object.get(group) {
            only_fields(p, object, at, &[group]);
            let Some(list) = list.as_array().filter(|l| !l.is_empty()) else {
                p.add(
                    &format!("{at}.{group}"),
                    "invalid",
                    format!("{group} must be a non-empty list of conditions"),
                );
                return None;
            };
            let parts: Vec<Option<Condition>> = list
                .iter()
                .enumerate()
                .map(|(i, c)| parse_at(p, c, &format!("{at}.{group}[{i}]"), depth + 1, leaves))
                .collect();
            let parts: Option<Vec<Condition>> = parts.into_iter().collect();
            return parts.map(|parts| {
                if group == "all" {
                    Condition::All(parts)
                } else {
                    Condition::Any(parts)
                }
            });
        }
    }
    if let Some(inner) = object.get("not") {
        only_fields(p, object, at, &["not"]);
        return parse_at(p, inner, &format!("{at}.not"), depth + 1, leaves)
            .map(|c| Condition::Not(Box::new(c)));
    }
    *leaves += 1;
    parse_leaf(p, object, at).map(Condition::Leaf)
}

fn only_fields(p: &mut Problems, object: &Map<String, Value>, at: &str, allowed: &[&str]) {
    for key in object.keys() {
        if !allowed.contains(&key.as_str()) {
            let key = json::shorten(key);
            p.add(
                &format!("{at}.{key}"),
                "unknown_field",
                format!("{key} is not a field of this condition"),
            );
        }
    }
}

fn parse_leaf(p: &mut Problems, object: &Map<String, Value>, at: &str) -> Option<Leaf> {
    let before = p.len();
    only_fields(p, object, at, &["left", "op", "right"]);
    let op_text = object.get("op").and_then(Value::as_str).unwrap_or_default();
    let op = Op::parse(op_text);
    if op.is_none() {
        let known: Vec<&str> = Op::ALL.iter().map(|op| op.as_str()).collect();
        p.add(
            &format!("{at}.op"),
            if object.contains_key("op") {
                "invalid"
            } else {
                "required"
            },
            format!(
                "{} is not an operator; use one of {}",
                json::quote(op_text),
                known.join(", ")
            ),
        );
    }
    let left = object.get("left").cloned();
    if left.is_none() {
        p.add(
            &format!("{at}.left"),
            "required",
            "left is required: the value to compare, such as {{trigger.amount}}",
        );
    }
    let right = object.get("right").cloned();
    for (side, value) in [("left", &left), ("right", &right)] {
        if let Some(value) = value
            && let Err((path, e)) = template::check_value(value, &format!("{at}.{side}"))
        {
            p.add(&path, "template", e.0);
        }
    }
    if let Some(op) = op {
        if !op.is_unary() && right.is_none() {
            p.add(
                &format!("{at}.right"),
                "required",
                format!("{} compares with right, which is missing", op.as_str()),
            );
        }
        if op == Op::Matches
            && let Some(Value::String(pattern)) = &right
            && !pattern.contains("{{")
            && let Err(message) = compile_pattern(pattern)
        {
            p.add(&format!("{at}.right"), "invalid", message);
        }
    }
    (p.len() == before).then(|| Leaf {
        left: left.unwrap_or(Value::Null),
        op: op.unwrap_or(Op::Exists),
        right,
    })
}

fn compile_pattern(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => format!(
                "the pattern {} is too costly to match; simplify it",
                json::quote(pattern)
            ),
            other => format!(
                "{} is not a regular expression: {}",
                json::quote(pattern),
                json::shorten(&other.to_string())
            ),
        })
}

impl Condition {
    /// The condition as stored (the shape it was written in).
    pub fn to_json(&self) -> Value {
        match self {
            Condition::All(parts) => {
                json!({"all": parts.iter().map(Condition::to_json).collect::<Vec<_>>()})
            }
            Condition::Any(parts) => {
                json!({"any": parts.iter().map(Condition::to_json).collect::<Vec<_>>()})
            }
            Condition::Not(inner) => json!({"not": inner.to_json()}),
            Condition::Leaf(leaf) => {
                let mut map = Map::new();
                map.insert("left".into(), leaf.left.clone());
                map.insert("op".into(), json!(leaf.op.as_str()));
                if let Some(right) = &leaf.right {
                    map.insert("right".into(), right.clone());
                }
                Value::Object(map)
            }
        }
    }

    /// Whether rendering the condition's sides runs the template engine (see
    /// [`template::needs_engine`]).
    pub fn needs_engine(&self) -> bool {
        match self {
            Condition::All(parts) | Condition::Any(parts) => {
                parts.iter().any(Condition::needs_engine)
            }
            Condition::Not(inner) => inner.needs_engine(),
            Condition::Leaf(leaf) => {
                template::needs_engine(&leaf.left)
                    || leaf.right.as_ref().is_some_and(template::needs_engine)
            }
        }
    }

    /// Evaluates the condition against `data` (what templates see). `all` and `any` stop at
    /// the first leaf that decides them; the trace has every leaf evaluated, with its values.
    pub fn evaluate(&self, data: &Value) -> Result<Evaluation, String> {
        let mut trace = Vec::new();
        let result = self.evaluate_into(data, &mut trace)?;
        Ok(Evaluation { result, trace })
    }

    fn evaluate_into(&self, data: &Value, trace: &mut Vec<Value>) -> Result<bool, String> {
        match self {
            Condition::All(parts) => {
                for part in parts {
                    if !part.evaluate_into(data, trace)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Condition::Any(parts) => {
                for part in parts {
                    if part.evaluate_into(data, trace)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Condition::Not(inner) => inner.evaluate_into(data, trace).map(|r| !r),
            Condition::Leaf(leaf) => {
                let left = side(&leaf.left, data)?;
                let right = leaf.right.as_ref().map(|r| side(r, data)).transpose()?;
                let result = compare(&left, leaf.op, right.as_ref().unwrap_or(&Value::Null))?;
                trace.push(json!({
                    "left": shown(&left),
                    "op": leaf.op.as_str(),
                    "right": right.as_ref().map(shown),
                    "result": result,
                }));
                Ok(result)
            }
        }
    }
}

/// What a condition came to, and each leaf evaluated on the way (`{left, op, right, result}`
/// with the values compared).
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub result: bool,
    pub trace: Vec<Value>,
}

/// A side rendered: a sole `{{path}}` that is missing is null (so `exists` can ask), any other
/// template renders as in an input.
fn side(value: &Value, data: &Value) -> Result<Value, String> {
    match value {
        Value::String(text) => template::render_optional(text, data)
            .map(|v| v.unwrap_or(Value::Null))
            .map_err(|e| e.0),
        other => {
            template::render_value(other, data, "").map_err(|(path, e)| format!("{path}: {}", e.0))
        }
    }
}

/// A compared value as a trace shows it: long texts and large lists or objects shortened.
fn shown(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(json::shorten_to(s, 200)),
        Value::Array(_) | Value::Object(_) if value.to_string().len() > 1_000 => {
            Value::String(json::shorten_to(&value.to_string(), 200))
        }
        other => other.clone(),
    }
}

/// A value as text for text comparisons: strings as they are, others as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

/// Compares two values by their type: numbers exactly, times as time, booleans, else text.
/// None when they have no order (two booleans that differ, say).
fn order(left: &Value, right: &Value) -> Option<Ordering> {
    if let (Some(a), Some(b)) = (Number::of(left), Number::of(right)) {
        return a.cmp_to(&b);
    }
    if let (Some(a), Some(b)) = (instant(left), instant(right)) {
        return Some(a.cmp(&b));
    }
    if let (Some(a), Some(b)) = (boolean(left), boolean(right)) {
        return (a == b).then_some(Ordering::Equal);
    }
    match (left, right) {
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => {
            (left == right).then_some(Ordering::Equal)
        }
        _ => Some(text(left).cmp(&text(right))),
    }
}

fn equal(left: &Value, right: &Value) -> bool {
    if left.is_null() != right.is_null() {
        return false;
    }
    order(left, right) == Some(Ordering::Equal)
}

fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

/// An instant (RFC 3339) or a date (its midnight, UTC), in milliseconds.
fn instant(value: &Value) -> Option<i64> {
    let text = value.as_str()?.trim();
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(at.timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp_millis())
}

/// A number as written: plain decimals compare exactly (no binary rounding), others (with an
/// exponent) as floating point.
#[derive(Debug, Clone, PartialEq)]
enum Number {
    Exact {
        negative: bool,
        whole: String,
        fraction: String,
    },
    Float(f64),
}

impl Number {
    fn of(value: &Value) -> Option<Number> {
        match value {
            Value::Number(n) => Number::parse(&n.to_string()),
            Value::String(s) => Number::parse(s.trim()),
            _ => None,
        }
    }

    fn parse(text: &str) -> Option<Number> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let plain = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if !whole.is_empty() && plain(whole) && plain(fraction) && digits.len() <= 400 {
            let whole = whole.trim_start_matches('0').to_owned();
            let fraction = fraction.trim_end_matches('0').to_owned();
            let zero = whole.is_empty() && fraction.is_empty();
            return Some(Number::Exact {
                negative: negative && !zero,
                whole,
                fraction,
            });
        }
        // Only numbers spelled with an exponent; not "inf" or "NaN".
        if text.contains(['e', 'E'])
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
        {
            return text
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(Number::Float);
        }
        None
    }

    fn as_f64(&self) -> f64 {
        match self {
            Number::Float(f) => *f,
            Number::Exact {
                negative,
                whole,
                fraction,
            } => {
                let text = format!(
                    "{}{}.{}0",
                    if *negative { "-" } else { "" },
                    whole,
                    fraction
                );
                text.parse().unwrap_or(0.0)
            }
        }
    }

    fn cmp_to(&self, other: &Number) -> Option<Ordering> {
        match (self, other) {
            (
                Number::Exact {
                    negative: n1,
                    whole: w1,
                    fraction: f1,
                },
                Number::Exact {
                    negative: n2,
                    whole: w2,
                    fraction: f2,
                },
            ) => {
                let magnitude = w1
                    .len()
                    .cmp(&w2.len())
                    .then_with(|| w1.cmp(w2))
                    .then_with(|| f1.cmp(f2));
                Some(match (n1, n2) {
                    (false, false) => magnitude,
                    (true, true) => magnitude.reverse(),
                    (false, true) => Ordering::Greater,
                    (true, false) => Ordering::Less,
                })
            }
            _ => self.as_f64().partial_cmp(&other.as_f64()),
        }
    }
}

/// The list `in` looks in: a list, or a text of comma-separated values.
fn members(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        Value::String(s) => s.split(',').map(|part| json!(part.trim())).collect(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

fn compare(left: &Value, op: Op, right: &Value) -> Result<bool, String> {
    let ordered = |wanted: &[Ordering]| -> Result<bool, String> {
        match order(left, right) {
            Some(o) => Ok(wanted.contains(&o)),
            None => Err(format!(
                "{} cannot compare {} with {}",
                op.as_str(),
                json::quote(&text(left)),
                json::quote(&text(right))
            )),
        }
    };
    let timed = |wanted: Ordering| -> Result<bool, String> {
        match (instant(left), instant(right)) {
            (Some(a), Some(b)) => Ok(a.cmp(&b) == wanted),
            _ => Err(format!(
                "{} compares dates or instants (2026-12-06, 2026-12-06T09:30:00Z), not {} and {}",
                op.as_str(),
                json::quote(&text(left)),
                json::quote(&text(right))
            )),
        }
    };
    Ok(match op {
        Op::Equals => equal(left, right),
        Op::NotEquals => !equal(left, right),
        Op::Contains | Op::NotContains => {
            let found = match left {
                Value::Array(items) => items.iter().any(|item| equal(item, right)),
                Value::Object(map) => map.contains_key(&text(right)),
                Value::Null => false,
                other => text(other).contains(&text(right)),
            };
            found == (op == Op::Contains)
        }
        Op::StartsWith => text(left).starts_with(&text(right)),
        Op::EndsWith => text(left).ends_with(&text(right)),
        Op::Matches => compile_pattern(&text(right))?.is_match(&text(left)),
        Op::Gt => ordered(&[Ordering::Greater])?,
        Op::Gte => ordered(&[Ordering::Greater, Ordering::Equal])?,
        Op::Lt => ordered(&[Ordering::Less])?,
        Op::Lte => ordered(&[Ordering::Less, Ordering::Equal])?,
        Op::Before => timed(Ordering::Less)?,
        Op::After => timed(Ordering::Greater)?,
        Op::Exists => !left.is_null(),
        Op::NotExists => left.is_null(),
        Op::IsEmpty => is_empty(left),
        Op::IsNotEmpty => !is_empty(left),
        Op::In | Op::NotIn => {
            let found = members(right).iter().any(|m| equal(left, m));
            found == (op == Op::In)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(condition: Value, data: Value) -> bool {
        let mut p = Problems::default();
        let c = parse(&mut p, &condition, "condition").expect("parses");
        c.evaluate(&data).expect("evaluates").result
    }

    fn problems(condition: Value) -> Vec<(String, String)> {
        let mut p = Problems::default();
        assert!(
            parse(&mut p, &condition, "c").is_none(),
            "{condition} parsed"
        );
        match p.into_result() {
            Err(crate::error::Error::Validation(errors)) => errors
                .into_iter()
                .map(|e| (e.field, e.code.to_string()))
                .collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn numbers_and_decimal_strings_compare_exactly() {
        let data = json!({"trigger": {"amount": "1000.10", "n": 7, "tiny": "0.1"}});
        let leaf = |left: &str, op: &str, right: Value| {
            eval(
                json!({"left": left, "op": op, "right": right}),
                data.clone(),
            )
        };
        assert!(leaf("{{trigger.amount}}", "gt", json!(1000)));
        assert!(leaf("{{trigger.amount}}", "equals", json!("1000.1")));
        assert!(!leaf("{{trigger.amount}}", "gt", json!("1000.10000")));
        assert!(
            leaf("{{trigger.n}}", "lt", json!("10")),
            "7 < 10 as numbers, not text"
        );
        assert!(leaf("{{trigger.tiny}}", "equals", json!(0.1)));
        assert!(leaf("-5", "lt", json!("-4.99")));
        assert!(leaf("-0", "equals", json!(0)));
        assert!(leaf("1e3", "equals", json!(1000)));
    }

    #[test]
    fn times_dates_booleans_and_text() {
        let data = json!({"trigger": {"at": "2026-12-06T10:00:00+01:00", "day": "2026-12-06", "paid": true}});
        let leaf = |left: &str, op: &str, right: Value| {
            eval(
                json!({"left": left, "op": op, "right": right}),
                data.clone(),
            )
        };
        assert!(leaf(
            "{{trigger.at}}",
            "equals",
            json!("2026-12-06T09:00:00Z")
        ));
        assert!(leaf("{{trigger.at}}", "after", json!("{{trigger.day}}")));
        assert!(leaf("{{trigger.day}}", "before", json!("2026-12-07")));
        assert!(leaf("{{trigger.paid}}", "equals", json!("true")));
        assert!(leaf("Acme Ltd", "startsWith", json!("Acme")));
        assert!(leaf("Acme Ltd", "matches", json!("^A.*d$")));
        assert!(leaf("EUR", "in", json!(["USD", "EUR"])));
        assert!(leaf("EUR", "in", json!("USD, EUR")));
        assert!(leaf("GBP", "notIn", json!(["USD", "EUR"])));
    }

    #[test]
    fn missing_values_are_null_for_presence_checks() {
        let data = json!({"trigger": {"tags": [], "name": "x"}});
        assert!(eval(
            json!({"left": "{{trigger.nope}}", "op": "notExists"}),
            data.clone()
        ));
        assert!(eval(
            json!({"left": "{{trigger.tags}}", "op": "isEmpty"}),
            data.clone()
        ));
        assert!(eval(
            json!({"left": "{{trigger.name}}", "op": "exists"}),
            data.clone()
        ));
        assert!(eval(
            json!({"all": [{"left": "{{trigger.name}}", "op": "equals", "right": "x"}, {"not": {"left": "{{trigger.nope}}", "op": "exists"}}]}),
            data.clone()
        ));
        assert!(!eval(
            json!({"any": [{"left": "{{trigger.name}}", "op": "equals", "right": "y"}, {"left": "{{trigger.tags}}", "op": "isNotEmpty"}]}),
            data
        ));
    }

    #[test]
    fn contains_looks_in_lists_texts_and_objects() {
        let data = json!({"event": {"changedFields": ["status", "paidAt"]}});
        assert!(eval(
            json!({"left": "{{event.changedFields}}", "op": "contains", "right": "status"}),
            data.clone()
        ));
        assert!(eval(
            json!({"left": "{{event.changedFields}}", "op": "notContains", "right": "total"}),
            data
        ));
    }

    #[test]
    fn the_trace_shows_each_leaf_with_its_values() {
        let mut p = Problems::default();
        let c = parse(
            &mut p,
            &json!({"all": [{"left": "{{trigger.currency}}", "op": "equals", "right": "EUR"}, {"left": "{{trigger.total}}", "op": "gt", "right": 1000}]}),
            "c",
        )
        .unwrap();
        let e = c
            .evaluate(&json!({"trigger": {"currency": "EUR", "total": "900"}}))
            .unwrap();
        assert!(!e.result);
        assert_eq!(e.trace.len(), 2);
        assert_eq!(
            e.trace[1],
            json!({"left": "900", "op": "gt", "right": 1000, "result": false})
        );
    }

    #[test]
    fn wrong_conditions_are_refused_with_paths_all_at_once() {
        let found = problems(json!({"all": [
            {"left": "{{trigger.x}}", "op": "bigger", "right": 1},
            {"left": "{{trigger.x}}", "op": "matches", "right": "(unclosed"},
            {"left": "{{trigger.x}}", "op": "equals"},
            {"op": "exists", "colour": "red"},
        ]}));
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert!(fields.contains(&"c.all[0].op"), "{found:?}");
        assert!(fields.contains(&"c.all[1].right"), "{found:?}");
        assert!(fields.contains(&"c.all[2].right"), "{found:?}");
        assert!(fields.contains(&"c.all[3].left"), "{found:?}");
        assert!(fields.contains(&"c.all[3].colour"), "{found:?}");
        let costly =
            problems(json!({"left": "x", "op": "matches", "right": "\\w{500}\\w{500}\\w{500}"}));
        assert_eq!(costly[0].0, "c.right");
        let mut deep = json!({"left": "x", "op": "exists"});
        for _ in 0..MAX_CONDITION_DEPTH {
            deep = json!({"not": deep});
        }
        assert_eq!(problems(deep)[0].1, "too_deep");
    }

    #[test]
    fn incomparable_values_fail_with_a_reason() {
        let mut p = Problems::default();
        let c = parse(
            &mut p,
            &json!({"left": "soon", "op": "before", "right": "2026-01-01"}),
            "c",
        )
        .unwrap();
        let error = c.evaluate(&json!({})).unwrap_err();
        assert!(error.contains("before compares dates"), "{error}");
    }
}
