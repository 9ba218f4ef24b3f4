//! Cron schedules: five fields as crontab writes them, or six and seven with seconds, read in a
//! time zone: a 09:00 schedule in Europe/Berlin fires at 09:00 Berlin time, winter and summer.

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

/// How far local clocks jump at most (a daylight-saving change), for looking around a window.
const MAX_SHIFT_MS: i64 = 3 * 3_600_000;

/// The instants after `from_ms` up to `to_ms` (milliseconds) at which `schedule` fires when read
/// in `zone`. The schedule matches wall-clock times: a time the clocks skip (02:30 on the night
/// they spring forward) fires once, at the first instant after the gap; a time that happens twice
/// (02:30 on the night they fall back) fires once, the first time.
pub fn fire_times(
    schedule: &cron::Schedule,
    zone: chrono_tz::Tz,
    from_ms: i64,
    to_ms: i64,
) -> Vec<i64> {
    use chrono::{LocalResult, TimeZone, Utc};
    let (Some(from), Some(to)) = (
        Utc.timestamp_millis_opt(from_ms - MAX_SHIFT_MS).single(),
        Utc.timestamp_millis_opt(to_ms + MAX_SHIFT_MS).single(),
    ) else {
        return Vec::new();
    };
    // Wall-clock times, walked as if they were UTC (which has no gaps or folds)…
    let local_from = from.with_timezone(&zone).naive_local().and_utc();
    let local_to = to.with_timezone(&zone).naive_local();
    let mut fires: Vec<i64> = schedule
        .after(&local_from)
        .map(|t| t.naive_utc())
        .take_while(|wall| *wall <= local_to)
        // …then placed on the zone's clock.
        .filter_map(|wall| match zone.from_local_datetime(&wall) {
            LocalResult::Single(at) => Some(at.timestamp_millis()),
            LocalResult::Ambiguous(first, _) => Some(first.timestamp_millis()),
            LocalResult::None => (1..=MAX_SHIFT_MS / 60_000)
                .map(|minutes| wall + chrono::Duration::minutes(minutes))
                .find_map(|later| zone.from_local_datetime(&later).earliest())
                .map(|at| {
                    // The first instant the clocks show after the gap.
                    let minute = at.timestamp_millis();
                    minute - minute.rem_euclid(60_000)
                }),
        })
        .filter(|at| *at > from_ms && *at <= to_ms)
        .collect();
    fires.sort_unstable();
    fires.dedup();
    fires
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

    fn berlin(schedule: &str, from: &str, to: &str) -> Vec<String> {
        let at = |text: &str| {
            chrono::DateTime::parse_from_rfc3339(text)
                .unwrap()
                .timestamp_millis()
        };
        fire_times(
            &parse_schedule(schedule).unwrap(),
            chrono_tz::Europe::Berlin,
            at(from),
            at(to),
        )
        .into_iter()
        .map(|ms| Utc.timestamp_millis_opt(ms).unwrap().to_rfc3339())
        .collect()
    }

    #[test]
    fn a_berlin_schedule_keeps_its_local_time_across_daylight_saving() {
        // Winter (UTC+1) and summer (UTC+2).
        assert_eq!(
            berlin("0 9 * * *", "2026-01-14T00:00:00Z", "2026-01-15T00:00:00Z"),
            ["2026-01-14T08:00:00+00:00"]
        );
        assert_eq!(
            berlin("0 9 * * *", "2026-07-14T00:00:00Z", "2026-07-15T00:00:00Z"),
            ["2026-07-14T07:00:00+00:00"]
        );
        // Across the spring-forward night, every day at 09:00 local.
        assert_eq!(
            berlin("0 9 * * *", "2026-03-28T00:00:00Z", "2026-03-30T23:00:00Z"),
            [
                "2026-03-28T08:00:00+00:00",
                "2026-03-29T07:00:00+00:00",
                "2026-03-30T07:00:00+00:00"
            ]
        );
    }

    #[test]
    fn skipped_and_repeated_local_times_fire_once() {
        // 2026-03-29 02:30 does not exist in Berlin (02:00 → 03:00): once, at 03:00 local.
        assert_eq!(
            berlin("30 2 * * *", "2026-03-28T12:00:00Z", "2026-03-29T12:00:00Z"),
            ["2026-03-29T01:00:00+00:00"]
        );
        // Half-hourly through the gap: 02:00 and 02:30 both become 03:00, which fires once.
        assert_eq!(
            berlin(
                "*/30 * * * *",
                "2026-03-29T00:15:00Z",
                "2026-03-29T01:45:00Z"
            ),
            [
                "2026-03-29T00:30:00+00:00",
                "2026-03-29T01:00:00+00:00",
                "2026-03-29T01:30:00+00:00"
            ]
        );
        // 2026-10-25 02:30 happens twice (03:00 → 02:00): once, the first time (CEST).
        assert_eq!(
            berlin("30 2 * * *", "2026-10-24T12:00:00Z", "2026-10-25T12:00:00Z"),
            ["2026-10-25T00:30:00+00:00"]
        );
        // UTC is UTC.
        let at = |text: &str| {
            chrono::DateTime::parse_from_rfc3339(text)
                .unwrap()
                .timestamp_millis()
        };
        assert_eq!(
            fire_times(
                &parse_schedule("0 9 * * *").unwrap(),
                chrono_tz::UTC,
                at("2026-03-29T00:00:00Z"),
                at("2026-03-30T00:00:00Z")
            ),
            [at("2026-03-29T09:00:00Z")]
        );
    }

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
