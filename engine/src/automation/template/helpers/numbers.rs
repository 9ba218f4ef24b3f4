//! Arithmetic and rounding helpers on exact decimals ([`Decimal`]): `{{multiply "0.1" 3}}` is
//! `0.3`. Results are JSON numbers when they print exactly as the decimal does, else decimal
//! texts; `round`, `floor` and `ceil` with places give text with exactly that many (`"12.50"`).

use std::cmp::Ordering;

use handlebars::RenderError;
use serde_json::Value;

use super::decimal::{Decimal, MAX_SCALE, Rounding};
use super::{Args, MANY, spec};

pub(super) const HELPERS: &[super::Spec] = &[
    spec("add", 2, MANY, add),
    spec("subtract", 2, 2, subtract),
    spec("multiply", 2, MANY, multiply),
    spec("divide", 2, 2, divide),
    spec("round", 1, 2, round),
    spec("floor", 1, 2, floor),
    spec("ceil", 1, 2, ceil),
    spec("abs", 1, 1, abs),
    spec("min", 1, MANY, min),
    spec("max", 1, MANY, max),
];

/// Every argument as a number, a sole list argument as its items (`{{max (pluck …)}}`).
fn numbers(args: &Args) -> Result<Vec<Decimal>, RenderError> {
    if args.len() == 1
        && let Value::Array(items) = args.value(0)?
    {
        super::super::spend(items.len() as u64)?;
        if items.is_empty() {
            return Err(args.fail("the list is empty"));
        }
        return items.iter().map(|item| args.number_of(item)).collect();
    }
    (0..args.len()).map(|i| args.number(i)).collect()
}

fn too_large(args: &Args) -> RenderError {
    args.fail("the result has too many digits (at most 38)")
}

fn fold(args: &Args, step: fn(Decimal, Decimal) -> Option<Decimal>) -> Result<Value, RenderError> {
    let mut numbers = numbers(args)?.into_iter();
    let first = numbers.next().unwrap_or(Decimal::ZERO);
    numbers
        .try_fold(first, step)
        .map(|d| d.normalized().to_value())
        .ok_or_else(|| too_large(args))
}

/// `{{add a b …}}`.
fn add(args: &Args) -> Result<Value, RenderError> {
    fold(args, Decimal::checked_add)
}

/// `{{subtract a b}}`: a − b.
fn subtract(args: &Args) -> Result<Value, RenderError> {
    fold(args, Decimal::checked_sub)
}

/// `{{multiply a b …}}`.
fn multiply(args: &Args) -> Result<Value, RenderError> {
    fold(args, Decimal::checked_mul)
}

/// `{{divide a b}}`: a ÷ b; dividing by zero fails the render.
fn divide(args: &Args) -> Result<Value, RenderError> {
    let (a, b) = (args.number(0)?, args.number(1)?);
    if b.is_zero() {
        return Err(args.fail(format!(
            "cannot divide {} by zero",
            super::shown(args.value(0)?)
        )));
    }
    a.checked_div(b)
        .map(|d| d.normalized().to_value())
        .ok_or_else(|| too_large(args))
}

fn rounded(args: &Args, mode: Rounding) -> Result<Value, RenderError> {
    let number = args.number(0)?;
    let places = match args.optional(1)? {
        None => 0,
        Some(_) => args.whole(1, "places")?,
    };
    let limit = i64::from(MAX_SCALE);
    if !(-limit..=limit).contains(&places) {
        return Err(args.fail(format!(
            "places {places} is out of range (-{limit} to {limit})"
        )));
    }
    let rounded = number
        .round(places as i32, mode)
        .ok_or_else(|| too_large(args))?;
    // With places, the result is money-style text that keeps them ("12.50"); without, a
    // whole number.
    Ok(if places > 0 {
        Value::String(rounded.to_string())
    } else {
        rounded.to_value()
    })
}

/// `{{round x places}}`: half away from zero, with exactly `places` decimals (default 0).
fn round(args: &Args) -> Result<Value, RenderError> {
    rounded(args, Rounding::HalfAway)
}

/// `{{floor x places}}`: towards minus infinity.
fn floor(args: &Args) -> Result<Value, RenderError> {
    rounded(args, Rounding::Floor)
}

/// `{{ceil x places}}`: towards plus infinity.
fn ceil(args: &Args) -> Result<Value, RenderError> {
    rounded(args, Rounding::Ceil)
}

/// `{{abs x}}`.
fn abs(args: &Args) -> Result<Value, RenderError> {
    args.number(0)?
        .checked_abs()
        .map(|d| d.normalized().to_value())
        .ok_or_else(|| too_large(args))
}

fn extreme(args: &Args, wanted: Ordering) -> Result<Value, RenderError> {
    let mut numbers = numbers(args)?.into_iter();
    let first = numbers.next().unwrap_or(Decimal::ZERO);
    let best = numbers.fold(
        first,
        |best, d| {
            if d.compare(best) == wanted { d } else { best }
        },
    );
    Ok(best.normalized().to_value())
}

/// `{{min a b …}}` or `{{min list}}`.
fn min(args: &Args) -> Result<Value, RenderError> {
    extreme(args, Ordering::Less)
}

/// `{{max a b …}}` or `{{max list}}`.
fn max(args: &Args) -> Result<Value, RenderError> {
    extreme(args, Ordering::Greater)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{fails, r};

    #[test]
    fn arithmetic_on_decimal_texts_has_no_float_noise() {
        assert_eq!(r(r#"{{multiply "0.1" 3}}"#), Ok(json!(0.3)));
        assert_eq!(r(r#"{{add "0.1" "0.2"}}"#), Ok(json!(0.3)));
        assert_eq!(r(r#"x{{add "0.1" "0.2"}}"#), Ok(json!("x0.3")));
        assert_eq!(r(r#"{{subtract "1.10" "0.10"}}"#), Ok(json!(1)));
        assert_eq!(r("{{multiply trigger.price 3}}"), Ok(json!(37.5)));
        // A JSON float is read as the decimal it prints as.
        assert_eq!(r("{{multiply trigger.hours 3}}"), Ok(json!(4.5)));
        assert_eq!(r("{{add 1 2 3 trigger.amount}}"), Ok(json!(1256)));
        assert_eq!(r(r#"{{divide 10 4}}"#), Ok(json!(2.5)));
        assert_eq!(r(r#"{{divide 1 3}}"#), Ok(json!("0.33333333333333333333")));
        assert_eq!(
            r(r#"{{divide -2 3}}"#),
            Ok(json!("-0.66666666666666666667"))
        );
        assert_eq!(r(r#"{{divide "0.001" "0.000001"}}"#), Ok(json!(1000)));
        assert_eq!(r(r#"{{divide 1000000 "0.5"}}"#), Ok(json!(2000000)));
        // Past what a float holds exactly, the result stays exact as text.
        assert_eq!(
            r(r#"{{add "12345678901234567890.12" "0.01"}}"#),
            Ok(json!("12345678901234567890.13"))
        );
        assert_eq!(r(r#"{{abs "-12.50"}}"#), Ok(json!(12.5)));
        assert_eq!(r(r#"{{min 3 "2.5" 7}}"#), Ok(json!(2.5)));
        assert_eq!(r(r#"{{max 3 "2.5" 7}}"#), Ok(json!(7)));
        assert_eq!(r(r#"{{max (pluck trigger.lines "qty")}}"#), Ok(json!(3)));
    }

    #[test]
    fn rounding_is_half_away_from_zero_with_fixed_places() {
        for (template, expected) in [
            ("{{round 2.5}}", json!(3)),
            ("{{round -2.5}}", json!(-3)),
            ("{{round \"2.4999\"}}", json!(2)),
            ("{{round \"1.005\" 2}}", json!("1.01")),
            ("{{round 1.005 2}}", json!("1.01")),
            ("{{round \"12.5\" 2}}", json!("12.50")),
            ("{{round 1234 -2}}", json!(1200)),
            ("{{round 1250 -2}}", json!(1300)),
            ("{{floor \"-1.2\"}}", json!(-2)),
            ("{{floor \"1.99\" 1}}", json!("1.9")),
            ("{{ceil \"1.01\"}}", json!(2)),
            ("{{ceil \"-1.99\"}}", json!(-1)),
            ("{{ceil \"0.001\" 2}}", json!("0.01")),
            ("{{floor 7}}", json!(7)),
        ] {
            assert_eq!(r(template), Ok(expected), "{template}");
        }
        assert_eq!(
            r("Total: {{round (multiply trigger.price 3) 2}} EUR"),
            Ok(json!("Total: 37.50 EUR"))
        );
    }

    #[test]
    fn bad_numbers_fail_naming_the_helper_and_the_value() {
        assert_eq!(
            fails("{{divide trigger.amount 0}}"),
            "divide: cannot divide 1250 by zero"
        );
        assert_eq!(
            fails(r#"{{divide 1 "0.00"}}"#),
            "divide: cannot divide 1 by zero"
        );
        assert_eq!(fails(r#"{{add 1 "abc"}}"#), r#"add: "abc" is not a number"#);
        assert_eq!(
            fails("{{add 1 trigger.email}}"),
            "add: null is not a number"
        );
        assert_eq!(
            fails("{{multiply trigger.lines 2}}"),
            "multiply: a list is not a number"
        );
        assert_eq!(
            fails("{{add 1 trigger.nope}}"),
            "trigger.nope is missing (no such variable)"
        );
        assert_eq!(fails("{{round 1 \"x\"}}"), r#"round: "x" is not a number"#);
        assert_eq!(
            fails("{{round 1 1.5}}"),
            "round: places 1.5 is not a whole number"
        );
        assert_eq!(
            fails("{{round 1 99}}"),
            "round: places 99 is out of range (-30 to 30)"
        );
        assert_eq!(
            fails("{{subtract 1}}"),
            "subtract: takes 2 arguments, not 1"
        );
        assert_eq!(
            fails("{{round 1 2 3}}"),
            "round: takes 1 to 2 arguments, not 3"
        );
        assert_eq!(fails("{{add 1}}"), "add: takes at least 2 arguments, not 1");
        assert_eq!(
            fails("{{round 1 places=2}}"),
            "round: takes no named arguments (name=value)"
        );
        let huge = "9".repeat(30);
        assert_eq!(
            fails(&format!(r#"{{{{multiply "{huge}" "{huge}"}}}}"#)),
            "multiply: the result has too many digits (at most 38)"
        );
        assert_eq!(
            fails(&format!(r#"{{{{add "{}" 1}}}}"#, "9".repeat(41))),
            format!(
                r#"add: "{}…" has too many digits (at most 38)"#,
                "9".repeat(40)
            )
        );
        assert_eq!(
            fails(r#"{{max (pluck trigger.lines "nope")}}"#),
            "max: null is not a number"
        );
        assert_eq!(fails(r#"{{min (split "" ",")}}"#), "min: the list is empty");
    }

    #[test]
    fn extreme_values_do_not_overflow_or_panic() {
        let max = i128::MAX.to_string();
        let min = format!("-{max}");
        for template in [
            format!(r#"{{{{abs "{min}"}}}}"#),
            format!(r#"{{{{add "{max}" 1}}}}"#),
            format!(r#"{{{{subtract "{min}" 1}}}}"#),
            format!(r#"{{{{divide "{max}" "0.000000000000000000000000000001"}}}}"#),
            format!(r#"{{{{divide "{min}" -1}}}}"#),
            format!(r#"{{{{divide 1 "{max}"}}}}"#),
            format!(r#"{{{{ceil "{max}" -30}}}}"#),
            format!(r#"{{{{round "{max}" 30}}}}"#),
            format!(r#"{{{{floor "{min}" -30}}}}"#),
            format!(r#"{{{{round "0.{}" -30}}}}"#, "9".repeat(30)),
            format!(r#"{{{{max "{max}" "{min}" "1e-30"}}}}"#),
        ] {
            match r(&template) {
                Ok(value) => assert!(!value.is_null(), "{template}"),
                Err(e) => assert!(e.0.contains("too many digits"), "{template}: {e}"),
            }
        }
        assert_eq!(r(&format!(r#"{{{{divide 1 "{max}"}}}}"#)), Ok(json!(0)));
    }
}
