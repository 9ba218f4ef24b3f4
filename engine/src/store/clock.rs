//! Instants are stored as Unix milliseconds and shown as RFC 3339 UTC with milliseconds;
//! calendar dates of work are `YYYY-MM-DD` text.

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Utc, Weekday};

use crate::error::FieldError;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

pub fn now_ms() -> Millis {
    Utc::now().timestamp_millis()
}

/// `2026-11-22T20:33:43.123Z`
pub fn format_ms(ms: Millis) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn format_opt(ms: Option<Millis>) -> Option<String> {
    ms.map(format_ms)
}

/// Parses an RFC 3339 instant (any offset), or a plain date meaning its UTC midnight.
pub fn parse_instant(text: &str) -> Option<Millis> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_millis());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

pub fn parse_instant_field(field: &str, text: &str) -> Result<Millis, FieldError> {
    parse_instant(text).ok_or_else(|| {
        FieldError::new(
            field,
            "invalid",
            format!("{field} must be an RFC 3339 timestamp such as 2026-01-31T09:00:00Z"),
        )
    })
}

/// Checks a `YYYY-MM-DD` date and returns it normalised.
pub fn parse_date_field(field: &str, text: &str) -> Result<String, FieldError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| d.format("%Y-%m-%d").to_string())
        .map_err(|_| {
            FieldError::new(
                field,
                "invalid",
                format!("{field} must be a date YYYY-MM-DD"),
            )
        })
}

/// The calendar date of an instant in an IANA time zone (UTC when the zone is unknown).
pub fn date_in_zone(ms: Millis, zone: &str) -> NaiveDate {
    let utc = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    match zone.parse::<chrono_tz::Tz>() {
        Ok(tz) => utc.with_timezone(&tz).date_naive(),
        Err(_) => utc.date_naive(),
    }
}

pub fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

pub fn format_date(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

/// A weekday by its lower-case English name (`monday`).
pub fn weekday(name: &str) -> Option<Weekday> {
    Some(match name {
        "monday" => Weekday::Mon,
        "tuesday" => Weekday::Tue,
        "wednesday" => Weekday::Wed,
        "thursday" => Weekday::Thu,
        "friday" => Weekday::Fri,
        "saturday" => Weekday::Sat,
        "sunday" => Weekday::Sun,
        _ => return None,
    })
}

/// The first day of the week holding `date`, for weeks starting on `starts_on`.
pub fn week_start(date: NaiveDate, starts_on: Weekday) -> NaiveDate {
    let back = (date.weekday().num_days_from_monday() + 7 - starts_on.num_days_from_monday()) % 7;
    date - chrono::Days::new(u64::from(back))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip_with_milliseconds() {
        let ms = parse_instant("2026-01-31T09:00:00.250+01:00").unwrap();
        assert_eq!(format_ms(ms), "2026-01-31T08:00:00.250Z");
        assert_eq!(
            parse_instant("2026-01-31"),
            parse_instant("2026-01-31T00:00:00Z")
        );
        assert_eq!(parse_instant("yesterday"), None);
    }

    #[test]
    fn weeks_start_on_the_organization_day() {
        let sunday = parse_date("2026-11-22").unwrap();
        assert_eq!(format_date(week_start(sunday, Weekday::Mon)), "2026-11-16");
        assert_eq!(format_date(week_start(sunday, Weekday::Sun)), "2026-11-22");
        let monday = parse_date("2026-11-23").unwrap();
        assert_eq!(format_date(week_start(monday, Weekday::Sun)), "2026-11-22");
        assert_eq!(format_date(week_start(monday, Weekday::Mon)), "2026-11-23");
    }
}
