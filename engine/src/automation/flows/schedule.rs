//! Cron schedules: five fields as crontab writes them, or six and seven with seconds.

use std::str::FromStr;

use crate::store::json;

/// A cron expression: five fields (minute first) or six and seven (seconds first).
pub fn parse_schedule(text: &str) -> std::result::Result<cron::Schedule, String> {
    let fields = text.split_whitespace().count();
    let full = if fields == 5 {
        // Classic crontab: weekdays 0–7 with Sunday 0 (and 7); the parser counts 1–7 from Sunday.
        let mut parts: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
        parts[4] = crontab_weekdays(&parts[4]);
        format!("0 {}", parts.join(" "))
    } else {
        text.to_owned()
    };
    if !(5..=7).contains(&fields) {
        return Err(format!(
            "{} is not a cron expression: give 5 fields (minute hour day month weekday)",
            json::quote(text)
        ));
    }
    cron::Schedule::from_str(&full).map_err(|e| {
        format!(
            "{} is not a cron expression: {}",
            json::quote(text),
            json::shorten(&e.to_string())
        )
    })
}

/// Renumbers the numeric weekdays of a crontab day-of-week field (`1-5`, `0,6`, `*/2`) from
/// Sunday = 0 to the parser's Sunday = 1; names (`Mon-Fri`) and `*` stay as they are.
fn crontab_weekdays(field: &str) -> String {
    let shift = |n: &str| match n.parse::<u8>() {
        Ok(d) if d <= 7 => ((d % 7) + 1).to_string(),
        _ => n.to_owned(),
    };
    field
        .split(',')
        .map(|item| {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (item, None),
            };
            let range = match range.split_once('-') {
                Some((a, b)) => format!("{}-{}", shift(a), shift(b)),
                None => shift(range),
            };
            match step {
                Some(s) => format!("{range}/{s}"),
                None => range,
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use chrono::{Datelike, TimeZone, Utc, Weekday};

    use super::*;

    #[test]
    fn five_field_weekdays_count_from_sunday_zero() {
        let weekdays = |text: &str| -> Vec<Weekday> {
            let from = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap();
            parse_schedule(text)
                .unwrap()
                .after(&from)
                .take(7)
                .map(|t| t.weekday())
                .collect()
        };
        use Weekday::*;
        assert_eq!(
            weekdays("0 9 * * 1-5"),
            vec![Mon, Tue, Wed, Thu, Fri, Mon, Tue]
        );
        assert_eq!(weekdays("0 9 * * 0")[..2], [Sun, Sun]);
        assert_eq!(weekdays("0 9 * * 7")[..2], [Sun, Sun]);
        assert_eq!(weekdays("0 9 * * Mon-Fri")[..2], [Mon, Tue]);
        assert_eq!(crontab_weekdays("*/2"), "*/2");
        assert_eq!(crontab_weekdays("0,6"), "1,7");
        assert!(parse_schedule("every tuesday").is_err());
    }
}
