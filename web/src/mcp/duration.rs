//! Durations as people write them ("3h", "90m", "1:30", "1h30m", "2.5h", "45 min"), read
//! into whole seconds for `durationSeconds`.

/// Seconds in `text`, or a message saying which forms are understood.
pub fn parse(text: &str) -> Result<i64, String> {
    let cleaned: String = text
        .trim()
        .to_ascii_lowercase()
        .replace(',', ".")
        .split_whitespace()
        .collect();
    let seconds = match cleaned.split_once(':') {
        Some((hours, minutes)) => clock(hours, minutes),
        None => units(&cleaned),
    }
    .ok_or_else(|| {
        format!(
            "cannot read {} as a duration; write it like \"3h\", \"90m\", \"1:30\", \"1h30m\" or \"2.5h\"",
            timix_engine::store::json::quote(text)
        )
    })?;
    if seconds < 1.0 {
        return Err(format!(
            "{} is not a positive duration",
            timix_engine::store::json::quote(text)
        ));
    }
    Ok(seconds.round() as i64)
}

/// `H:MM`.
fn clock(hours: &str, minutes: &str) -> Option<f64> {
    let hours: u32 = hours.parse().ok()?;
    let minutes: u32 = minutes.parse().ok()?;
    (minutes < 60).then(|| f64::from(hours) * 3600.0 + f64::from(minutes) * 60.0)
}

/// A sequence of number + unit (`1h30m`, `2.5h`, `45min`); a bare number is refused, since
/// nobody can tell hours from minutes.
fn units(text: &str) -> Option<f64> {
    let mut rest = text;
    let mut total = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        total += number * unit_seconds(&rest[..unit_end])?;
        rest = &rest[unit_end..];
    }
    Some(total)
}

fn unit_seconds(unit: &str) -> Option<f64> {
    match unit {
        "h" | "hr" | "hrs" | "hour" | "hours" => Some(3600.0),
        "m" | "min" | "mins" | "minute" | "minutes" => Some(60.0),
        "s" | "sec" | "secs" | "second" | "seconds" => Some(1.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn natural_durations_are_read() {
        for (text, seconds) in [
            ("3h", 10_800),
            ("90m", 5_400),
            ("1:30", 5_400),
            ("1h30m", 5_400),
            ("1h 30m", 5_400),
            ("2.5h", 9_000),
            ("2,5 h", 9_000),
            ("45 min", 2_700),
            ("3 hours", 10_800),
            ("0:05", 300),
            ("1H15M", 4_500),
        ] {
            assert_eq!(parse(text), Ok(seconds), "{text}");
        }
    }

    #[test]
    fn unclear_durations_are_refused() {
        for text in [
            "", "3", "abc", "1:75", "1:5:0", "h", "3 days", "-2h", "0h", "1..5h",
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
    }
}
