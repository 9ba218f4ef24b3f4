//! Money: integer minor units in storage, decimal strings in the API, never floats.

use crate::error::FieldError;

/// Digits after the decimal point for an ISO 4217 currency.
pub fn minor_digits(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// A three-letter upper-case code. The list of codes changes; the shape does not.
pub fn parse_currency(field: &str, text: &str) -> Result<String, FieldError> {
    if text.len() == 3 && text.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(text.to_owned())
    } else {
        Err(FieldError::new(
            field,
            "invalid",
            format!("{field} must be an ISO 4217 code such as EUR"),
        ))
    }
}

/// Whole digits an amount may have (what [`parse_amount`] reads back).
pub const MAX_WHOLE_DIGITS: u32 = 13;

/// The largest amount of `currency` accepted, in minor units: 9 999 999 999 999.99 for EUR.
pub fn max_amount(currency: &str) -> i64 {
    10i64.pow(MAX_WHOLE_DIGITS + minor_digits(currency)) - 1
}

/// Parses a non-negative decimal string (`"1250.5"`) into minor units of `currency`.
/// More decimals than the currency has is an error, not a rounding.
pub fn parse_amount(field: &str, text: &str, currency: &str) -> Result<i64, FieldError> {
    parse_decimal(field, text, minor_digits(currency))
}

/// Parses a non-negative decimal string with at most `digits` decimals into an integer scaled
/// by `10^digits` (`"7.5"` with 3 digits → 7500).
pub fn parse_decimal(field: &str, text: &str, digits: u32) -> Result<i64, FieldError> {
    let invalid = || {
        FieldError::new(
            field,
            "invalid",
            format!(
                "{field} must be a non-negative decimal string with at most {digits} decimals, e.g. \"125.00\""
            ),
        )
    };
    let (whole, raw_fraction) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    if text.contains('.') && raw_fraction.is_empty() {
        return Err(invalid());
    }
    let fraction = raw_fraction;
    // Trailing zeros beyond the currency's digits change nothing: "125.00" is 125 JPY.
    let significant = fraction.trim_end_matches('0');
    let fraction = if significant.len() <= digits as usize && fraction.len() > digits as usize {
        &fraction[..digits as usize]
    } else {
        fraction
    };
    if whole.is_empty()
        || whole.len() > MAX_WHOLE_DIGITS as usize
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > digits as usize
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(invalid());
    }
    let whole: i64 = whole.parse().map_err(|_| invalid())?;
    let mut minor = whole * 10i64.pow(digits);
    if !fraction.is_empty() {
        let padded = format!("{fraction:0<width$}", width = digits as usize);
        minor += padded.parse::<i64>().map_err(|_| invalid())?;
    }
    Ok(minor)
}

/// Formats minor units as a decimal string with the currency's digits: `125000` → `"1250.00"`.
pub fn format_amount(minor: impl Into<i128>, currency: &str) -> String {
    format_decimal(minor, minor_digits(currency))
}

/// Formats an integer scaled by `10^digits` as a decimal string: `(7500, 2)` → `"75.00"`.
pub fn format_decimal(minor: impl Into<i128>, digits: u32) -> String {
    let minor: i128 = minor.into();
    if digits == 0 {
        return minor.to_string();
    }
    let scale = 10u128.pow(digits);
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!(
        "{sign}{}.{:0width$}",
        abs / scale,
        abs % scale,
        width = digits as usize
    )
}

/// An amount as clients send it: a decimal string (the documented form) or a JSON number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount(pub String);

impl<'de> serde::Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(s) => Ok(Amount(s.trim().to_owned())),
            serde_json::Value::Number(n) => Ok(Amount(n.to_string())),
            _ => Err(serde::de::Error::custom(
                "expected a decimal string such as \"125.00\"",
            )),
        }
    }
}

/// The new minor-unit value of a money field after a patch. An untouched amount keeps its
/// decimal value when the currency changes ("125.00" EUR becomes "125" JPY), or is reported if
/// the new currency cannot hold it exactly.
pub fn patch_amount(
    field: &str,
    patch: crate::store::patch::Patch<Amount>,
    current: Option<i64>,
    old_currency: &str,
    new_currency: &str,
) -> Result<Option<i64>, FieldError> {
    use crate::store::patch::Patch;
    match patch {
        Patch::Null => Ok(None),
        Patch::Value(a) => parse_amount(field, &a.0, new_currency).map(Some),
        Patch::Absent => match current {
            Some(minor) if old_currency != new_currency => {
                parse_amount(field, &format_amount(minor, old_currency), new_currency)
                    .map(Some)
                    .map_err(|_| {
                        FieldError::new(
                            field,
                            "invalid",
                            format!("{field} cannot be expressed in {new_currency}; send it again with the new currency"),
                        )
                    })
            }
            other => Ok(other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_exactly() {
        assert_eq!(parse_amount("a", "1250.5", "EUR").unwrap(), 125050);
        assert_eq!(parse_amount("a", "0.07", "EUR").unwrap(), 7);
        assert_eq!(parse_amount("a", "12", "JPY").unwrap(), 12);
        assert_eq!(parse_amount("a", "1.234", "KWD").unwrap(), 1234);
        assert_eq!(format_amount(125050, "EUR"), "1250.50");
        assert_eq!(format_amount(7, "EUR"), "0.07");
        assert_eq!(format_amount(-7, "EUR"), "-0.07");
        assert_eq!(format_amount(1234, "KWD"), "1.234");
        assert_eq!(format_amount(12, "JPY"), "12");
    }

    #[test]
    fn refuses_what_is_not_an_exact_amount() {
        for bad in [
            "",
            "-1",
            "1.",
            ".5",
            "1.005",
            "1e3",
            "abc",
            "1,5",
            "99999999999999",
        ] {
            assert!(parse_amount("a", bad, "EUR").is_err(), "{bad}");
        }
        assert!(parse_amount("a", "1.5", "JPY").is_err());
        assert_eq!(parse_amount("a", "125.00", "JPY").unwrap(), 125);
        assert_eq!(parse_amount("a", "1.500", "EUR").unwrap(), 150);
    }
}
