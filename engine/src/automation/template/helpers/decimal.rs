//! Exact decimals for the number helpers: a number or a decimal text (`"12.50"`, `"-3"`,
//! `"1e3"`) is read as a count of units and a scale (`12.50` is 1250 hundredths) in an `i128`,
//! so sums and products of money stay exact (`0.1 × 3` is `0.3`, never `0.30000000000000004`);
//! only division can need more places than it has, and is rounded at [`DIVISION_PLACES`].

use std::cmp::Ordering;
use std::fmt;

use serde_json::{Number, Value};

/// Most decimal places a number keeps (more are rounded away when read or multiplied).
pub(super) const MAX_SCALE: u32 = 30;
/// Longest text read as a number: reading one is not counted as work, so it stays short.
const MAX_NUMBER_TEXT: usize = 1_000;
/// Decimal places of a quotient that does not end sooner (`1/3`).
const DIVISION_PLACES: u32 = 20;

/// An exact decimal: `units / 10^scale`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decimal {
    units: i128,
    scale: u32,
}

/// Why a value is not a decimal: says so after the value in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unfit {
    NotANumber,
    TooLarge,
    TooLong,
}

impl fmt::Display for Unfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unfit::NotANumber => "is not a number",
            Unfit::TooLarge => "has too many digits (at most 38)",
            Unfit::TooLong => "is too long to be a number (at most 1000 characters)",
        })
    }
}

/// How rounding treats what it drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rounding {
    /// Half away from zero: 2.5 → 3, -2.5 → -3.
    HalfAway,
    Floor,
    Ceil,
}

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

impl Decimal {
    pub(super) const ZERO: Decimal = Decimal { units: 0, scale: 0 };

    pub(super) fn is_zero(self) -> bool {
        self.units == 0
    }

    /// The size of this number, None when it does not fit (the most negative `i128`).
    pub(super) fn checked_abs(self) -> Option<Decimal> {
        Some(Decimal {
            units: self.units.checked_abs()?,
            scale: self.scale,
        })
    }

    /// A JSON number or a decimal text; anything else (booleans, null, lists) is not a number.
    pub(crate) fn of(value: &Value) -> Result<Decimal, Unfit> {
        match value {
            Value::Number(n) => Decimal::parse(&n.to_string()),
            Value::String(text) => Decimal::parse(text.trim()),
            _ => Err(Unfit::NotANumber),
        }
    }

    /// `12.50`, `-3`, `+.5`, `1e-3`: digits with an optional sign, point and exponent.
    pub(crate) fn parse(text: &str) -> Result<Decimal, Unfit> {
        if text.len() > MAX_NUMBER_TEXT {
            return Err(Unfit::TooLong);
        }
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match rest.split_once(['e', 'E']) {
            Some((mantissa, exponent)) => {
                let exponent = exponent.strip_prefix('+').unwrap_or(exponent);
                let digits = exponent.strip_prefix('-').unwrap_or(exponent);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Unfit::NotANumber);
                }
                (
                    mantissa,
                    exponent.parse::<i64>().map_err(|_| Unfit::TooLarge)?,
                )
            }
            None => (rest, 0),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if (whole.is_empty() && fraction.is_empty())
            || !whole
                .bytes()
                .chain(fraction.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return Err(Unfit::NotANumber);
        }
        let digits: Vec<u8> = whole
            .bytes()
            .chain(fraction.bytes())
            .skip_while(|&b| b == b'0')
            .collect();
        let mut scale = (fraction.len() as i64).saturating_sub(exponent);
        // Places beyond MAX_SCALE are rounded away (half away from zero).
        let mut kept = digits.as_slice();
        let mut round_up = false;
        if scale > i64::from(MAX_SCALE) {
            let drop = scale - i64::from(MAX_SCALE);
            let keep = (digits.len() as i64 - drop).max(0) as usize;
            round_up = drop <= digits.len() as i64 && digits[keep] >= b'5';
            kept = &digits[..keep];
            scale = i64::from(MAX_SCALE);
        }
        let mut units: i128 = 0;
        for &digit in kept {
            units = units
                .checked_mul(10)
                .and_then(|u| u.checked_add(i128::from(digit - b'0')))
                .ok_or(Unfit::TooLarge)?;
        }
        if round_up {
            units = units.checked_add(1).ok_or(Unfit::TooLarge)?;
        }
        if scale < 0 {
            let factor = u32::try_from(-scale)
                .ok()
                .and_then(pow10)
                .ok_or(Unfit::TooLarge);
            units = match units {
                0 => 0,
                _ => units.checked_mul(factor?).ok_or(Unfit::TooLarge)?,
            };
            scale = 0;
        }
        Ok(Decimal {
            units: if negative { -units } else { units },
            scale: scale as u32,
        })
    }

    /// The same number written with `scale` places (only ever more places).
    fn with_scale(self, scale: u32) -> Option<Decimal> {
        let factor = pow10(scale.checked_sub(self.scale)?)?;
        Some(Decimal {
            units: self.units.checked_mul(factor)?,
            scale,
        })
    }

    /// Both numbers written with the same number of places.
    fn aligned(self, other: Decimal) -> Option<(i128, i128, u32)> {
        let scale = self.scale.max(other.scale);
        Some((
            self.with_scale(scale)?.units,
            other.with_scale(scale)?.units,
            scale,
        ))
    }

    pub(super) fn checked_add(self, other: Decimal) -> Option<Decimal> {
        let (a, b, scale) = self.aligned(other)?;
        Some(Decimal {
            units: a.checked_add(b)?,
            scale,
        })
    }

    pub(super) fn checked_sub(self, other: Decimal) -> Option<Decimal> {
        let (a, b, scale) = self.aligned(other)?;
        Some(Decimal {
            units: a.checked_sub(b)?,
            scale,
        })
    }

    pub(super) fn checked_mul(self, other: Decimal) -> Option<Decimal> {
        let (a, b) = (self.normalized(), other.normalized());
        let product = Decimal {
            units: a.units.checked_mul(b.units)?,
            scale: a.scale + b.scale,
        };
        if product.scale > MAX_SCALE {
            return product.round(MAX_SCALE as i32, Rounding::HalfAway);
        }
        Some(product)
    }

    /// `self / other`, exact when it ends within [`DIVISION_PLACES`] places, else rounded
    /// there (half away from zero). None when `other` is zero or the quotient too large.
    pub(super) fn checked_div(self, other: Decimal) -> Option<Decimal> {
        if other.units == 0 {
            return None;
        }
        let mut divisor = other.units.unsigned_abs();
        // The quotient of the units has scale self.scale - other.scale; each digit added
        // below is one more place. With more places than kept, the divisor takes them
        // instead, so that the quotient is rounded once.
        let mut scale = i64::from(self.scale) - i64::from(other.scale);
        if scale > i64::from(DIVISION_PLACES) {
            let factor = pow10((scale - i64::from(DIVISION_PLACES)) as u32)?;
            match divisor.checked_mul(factor.unsigned_abs()) {
                Some(larger) => divisor = larger,
                // Larger than twice any i128: the quotient rounds to zero.
                None => return Some(Decimal::ZERO),
            }
            scale = i64::from(DIVISION_PLACES);
        }
        let mut remainder = self.units.unsigned_abs();
        let mut quotient = remainder / divisor;
        remainder %= divisor;
        while scale < i64::from(DIVISION_PLACES) && (remainder != 0 || scale < 0) {
            remainder = remainder.checked_mul(10)?;
            quotient = quotient.checked_mul(10)?.checked_add(remainder / divisor)?;
            remainder %= divisor;
            scale += 1;
        }
        if remainder != 0 && remainder >= divisor - remainder {
            quotient = quotient.checked_add(1)?;
        }
        let units = i128::try_from(quotient).ok()?;
        let negative = (self.units < 0) != (other.units < 0);
        Some(Decimal {
            units: if negative { -units } else { units },
            scale: u32::try_from(scale).ok()?,
        })
    }

    /// Rounded to `places` decimal places (negative: to tens, hundreds…), written with
    /// exactly `places` places when positive.
    pub(super) fn round(self, places: i32, mode: Rounding) -> Option<Decimal> {
        let target = places.max(0) as u32;
        if places >= self.scale as i32 {
            return self.with_scale(target);
        }
        let dropped = (self.scale as i32 - places) as u32;
        let (mut units, remainder, divisor) = match pow10(dropped) {
            Some(d) => (self.units / d, self.units % d, Some(d)),
            // More places dropped than an i128 has digits: nothing is left.
            None => (0, self.units, None),
        };
        let away = match mode {
            Rounding::HalfAway => {
                divisor.is_some_and(|d| remainder.unsigned_abs() * 2 >= d.unsigned_abs())
            }
            Rounding::Floor => remainder < 0,
            Rounding::Ceil => remainder > 0,
        };
        if away {
            let step = match mode {
                Rounding::HalfAway => self.units.signum(),
                Rounding::Floor => -1,
                Rounding::Ceil => 1,
            };
            units = units.checked_add(step)?;
        }
        if places < 0 {
            units = units.checked_mul(pow10(places.unsigned_abs())?)?;
        }
        Some(Decimal {
            units,
            scale: target,
        })
    }

    /// Without trailing zeros in its places: `12.50` → `12.5`, `3.00` → `3`.
    pub(crate) fn normalized(self) -> Decimal {
        let mut d = self;
        while d.scale > 0 && d.units % 10 == 0 {
            d.units /= 10;
            d.scale -= 1;
        }
        d
    }

    /// Compares by value: `1.50` equals `1.5`.
    pub(crate) fn compare(self, other: Decimal) -> Ordering {
        let (low, high, flipped) = if self.scale <= other.scale {
            (self, other, false)
        } else {
            (other, self, true)
        };
        let order = match low.with_scale(high.scale) {
            Some(low) => low.units.cmp(&high.units),
            // Written with as many places as `high` it overflows: it is the larger in size.
            None => low.units.cmp(&0),
        };
        if flipped { order.reverse() } else { order }
    }

    /// The whole number this is, clamped to `i64`; None when it has a fraction.
    pub(crate) fn saturating_whole(self) -> Option<i64> {
        let d = self.normalized();
        (d.scale == 0).then(|| d.units.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
    }

    /// As a template value: a JSON number when that number prints exactly as this decimal
    /// does, else the decimal's text (so `25.00` keeps its zeros and nothing is rounded).
    pub(crate) fn to_value(self) -> Value {
        if self.scale == 0
            && let Ok(whole) = i64::try_from(self.units)
        {
            return Value::from(whole);
        }
        let text = self.to_string();
        if let Some(number) = text.parse::<f64>().ok().and_then(Number::from_f64)
            && number.to_string() == text
        {
            return Value::Number(number);
        }
        Value::String(text)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.units < 0 { "-" } else { "" };
        let digits = self.units.unsigned_abs().to_string();
        let scale = self.scale as usize;
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let digits = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = digits.split_at(digits.len() - scale);
        write!(f, "{sign}{whole}.{fraction}")
    }
}

/// The sum of `numbers`, None when it overflows.
pub(crate) fn sum(numbers: impl IntoIterator<Item = Decimal>) -> Option<Decimal> {
    numbers
        .into_iter()
        .try_fold(Decimal::ZERO, Decimal::checked_add)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::parse(text).unwrap()
    }

    #[test]
    fn decimals_read_and_print_exactly() {
        for (text, printed) in [
            ("12.50", "12.50"),
            ("-3", "-3"),
            ("+.5", "0.5"),
            ("5.", "5"),
            ("1e3", "1000"),
            ("1.5E-3", "0.0015"),
            ("-0.000", "0.000"),
            ("007", "7"),
        ] {
            assert_eq!(d(text).to_string(), printed, "{text}");
        }
        for text in [
            "", ".", "-", "abc", "1,5", "1.2.3", "NaN", "inf", "1e", "0x10", "1 2",
        ] {
            assert_eq!(
                Decimal::parse(text).unwrap_err(),
                Unfit::NotANumber,
                "{text}"
            );
        }
        assert_eq!(
            Decimal::parse(&"9".repeat(39)).unwrap_err(),
            Unfit::TooLarge
        );
        assert_eq!(Decimal::parse("1e40").unwrap_err(), Unfit::TooLarge);
        assert_eq!(
            Decimal::parse(&"0".repeat(1_001)).unwrap_err(),
            Unfit::TooLong
        );
        // Places beyond the 30 kept are rounded away, however many there are.
        assert_eq!(
            d(&format!("0.{}6", "0".repeat(30))).to_string(),
            format!("0.{}1", "0".repeat(29))
        );
        assert_eq!(
            d(&format!("0.{}4", "0".repeat(30))).to_string(),
            format!("0.{}", "0".repeat(30))
        );
        assert_eq!(
            d(&format!("0.{}1", "0".repeat(200)))
                .normalized()
                .to_string(),
            "0"
        );
        assert_eq!(d("1e-999").normalized().to_string(), "0");
    }

    #[test]
    fn decimals_compare_by_value_whatever_their_size() {
        let max = i128::MAX.to_string();
        let min = format!("-{max}");
        assert_eq!(d(&max).compare(d("1e-30")), Ordering::Greater);
        assert_eq!(d(&min).compare(d("1e-30")), Ordering::Less);
        assert_eq!(d("1e-30").compare(d(&min)), Ordering::Greater);
        assert_eq!(d("1.50").compare(d("1.5")), Ordering::Equal);
    }

    proptest! {
        // Failures are reported with their input; no files are written beside the sources.
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn sums_differences_and_products_of_decimal_texts_are_exact(
            a in -1_000_000_000_000i64..1_000_000_000_000,
            b in -1_000_000_000_000i64..1_000_000_000_000,
            scale_a in 0u32..5,
            scale_b in 0u32..5,
        ) {
            let (x, y) = (
                Decimal { units: a.into(), scale: scale_a },
                Decimal { units: b.into(), scale: scale_b },
            );
            // Read back from the text a flow would carry.
            let (x2, y2) = (d(&x.to_string()), d(&y.to_string()));
            prop_assert_eq!(x2.compare(x), Ordering::Equal);
            let scale = scale_a.max(scale_b);
            let wide = |units: i64, from: u32| i128::from(units) * 10i128.pow(scale - from);
            let exact_sum = Decimal { units: wide(a, scale_a) + wide(b, scale_b), scale };
            let exact_difference = Decimal { units: wide(a, scale_a) - wide(b, scale_b), scale };
            let exact_product = Decimal {
                units: i128::from(a) * i128::from(b),
                scale: scale_a + scale_b,
            };
            prop_assert_eq!(x2.checked_add(y2).unwrap().compare(exact_sum), Ordering::Equal);
            prop_assert_eq!(x2.checked_sub(y2).unwrap().compare(exact_difference), Ordering::Equal);
            prop_assert_eq!(x2.checked_mul(y2).unwrap().compare(exact_product), Ordering::Equal);
        }
    }
}
