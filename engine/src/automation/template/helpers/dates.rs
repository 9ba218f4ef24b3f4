//! Date helpers on RFC 3339 instants (`2026-11-22T09:30:00Z`, `…+01:00`) and calendar dates
//! (`2026-11-22`), with chrono's strftime formats and IANA time zones (chrono-tz). An instant
//! keeps its offset through `dateAdd`; a date stays a date. Formats are checked before use and
//! formatted text is bounded by the render's budget.

use std::fmt::{self, Write as _};

use chrono::format::{Item, StrftimeItems};
use chrono::{
    DateTime, Datelike, FixedOffset, Months, NaiveDate, NaiveDateTime, SecondsFormat, TimeDelta,
    TimeZone, Utc,
};
use chrono_tz::Tz;
use handlebars::RenderError;
use serde_json::Value;

use super::super::{BYTES_LEFT, OUTPUT_EXCEEDED, spend_on_text};
use super::{Args, shown, spec};
use handlebars::RenderErrorReason;

pub(super) const HELPERS: &[super::Spec] = &[
    spec("date", 1, 2, date),
    spec("formatDate", 2, 3, format_date),
    spec("parseDate", 2, 3, parse_date),
    spec("dateAdd", 3, 3, date_add),
    spec("dateDiff", 3, 3, date_diff),
    spec("toTimezone", 2, 2, to_timezone),
];

/// A point in time with its offset, or a calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Moment {
    Instant(DateTime<FixedOffset>),
    Date(NaiveDate),
}

impl Moment {
    /// An RFC 3339 instant or a `YYYY-MM-DD` date.
    pub(crate) fn parse(text: &str) -> Option<Moment> {
        let text = text.trim();
        DateTime::parse_from_rfc3339(text)
            .map(Moment::Instant)
            .ok()
            .or_else(|| {
                NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .ok()
                    .map(Moment::Date)
            })
    }

    /// The instant in UTC; a date is its midnight in UTC.
    pub(crate) fn utc(self) -> NaiveDateTime {
        match self {
            Moment::Instant(t) => t.naive_utc(),
            Moment::Date(d) => d.and_time(chrono::NaiveTime::MIN),
        }
    }
}

/// A unit of time, as `dateAdd` and `dateDiff` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Seconds,
    Minutes,
    Hours,
    Days,
    Weeks,
    Months,
    Years,
}

const UNITS: &str = "seconds, minutes, hours, days, weeks, months, years";

impl Unit {
    fn seconds(self) -> Option<i64> {
        match self {
            Unit::Seconds => Some(1),
            Unit::Minutes => Some(60),
            Unit::Hours => Some(3_600),
            Unit::Days => Some(86_400),
            Unit::Weeks => Some(604_800),
            Unit::Months | Unit::Years => None,
        }
    }
}

fn moment(args: &Args, i: usize) -> Result<Moment, RenderError> {
    let value = args.value(i)?;
    let text = super::text_of(value);
    Moment::parse(&text).ok_or_else(|| {
        args.fail(format!(
            "{} is not a date (2026-11-22) or an RFC 3339 instant (2026-11-22T09:30:00Z)",
            shown(value)
        ))
    })
}

fn unit(args: &Args, i: usize) -> Result<Unit, RenderError> {
    let value = args.value(i)?;
    let text = super::text_of(value).to_ascii_lowercase();
    Ok(match text.trim().trim_end_matches('s') {
        "second" => Unit::Seconds,
        "minute" => Unit::Minutes,
        "hour" => Unit::Hours,
        "day" => Unit::Days,
        "week" => Unit::Weeks,
        "month" => Unit::Months,
        "year" => Unit::Years,
        _ => {
            return Err(args.fail(format!("unit {} is not one of {UNITS}", shown(value))));
        }
    })
}

fn zone(args: &Args, i: usize) -> Result<Option<Tz>, RenderError> {
    let Some(value) = args.optional(i)? else {
        return Ok(None);
    };
    let name = super::text_of(value);
    name.trim().parse::<Tz>().map(Some).map_err(|_| {
        args.fail(format!(
            "{} is not a time zone (an IANA name such as Europe/Berlin)",
            shown(value)
        ))
    })
}

/// A strftime format, refused when chrono cannot read it.
fn format_items<'f>(args: &Args, format: &'f str) -> Result<Vec<Item<'f>>, RenderError> {
    spend_on_text(format.len())?;
    let items: Vec<Item> = StrftimeItems::new(format).collect();
    if items.iter().any(|item| matches!(item, Item::Error)) {
        return Err(args.fail(format!(
            "{} is not a valid format (chrono's strftime: %d.%m.%Y %H:%M)",
            shown(&Value::String(format.to_owned()))
        )));
    }
    Ok(items)
}

/// Text that stops growing at what the render has left.
struct Capped {
    text: String,
    over: bool,
}

impl fmt::Write for Capped {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.text.len() + s.len() > BYTES_LEFT.get() {
            self.over = true;
            return Err(fmt::Error);
        }
        self.text.push_str(s);
        Ok(())
    }
}

/// `moment` formatted with `items`, within the budget.
fn formatted<Z: TimeZone>(
    args: &Args,
    moment: &DateTime<Z>,
    items: &[Item],
) -> Result<Value, RenderError>
where
    Z::Offset: fmt::Display,
{
    let mut out = Capped {
        text: String::new(),
        over: false,
    };
    match write!(out, "{}", moment.format_with_items(items.iter())) {
        Ok(()) => Ok(Value::String(out.text)),
        Err(_) if out.over => Err(RenderErrorReason::Other(OUTPUT_EXCEEDED.into()).into()),
        Err(_) => Err(args.fail("cannot format this date with that format")),
    }
}

/// `{{date x "%d.%m.%Y"}}`: an instant (in UTC) or a date, formatted; the format defaults to
/// `%Y-%m-%d`.
fn date(args: &Args) -> Result<Value, RenderError> {
    let value = args.value(0)?;
    let moment = Moment::parse(&super::text_of(value)).ok_or_else(|| {
        args.fail(format!(
            "{} is not a date or an RFC 3339 instant",
            shown(value)
        ))
    })?;
    let format = args.text_or(1, "%Y-%m-%d")?;
    let items = format_items(args, &format)?;
    formatted(args, &moment.utc().and_utc(), &items)
}

/// `{{formatDate x "%d.%m.%Y %H:%M" "Europe/Berlin"}}`: an instant shown in the zone (default:
/// its own offset), or a date (taken as its midnight in the zone, else in UTC).
fn format_date(args: &Args) -> Result<Value, RenderError> {
    let moment = moment(args, 0)?;
    let format = args.text(1)?;
    let zone = zone(args, 2)?;
    let items = format_items(args, &format)?;
    match (moment, zone) {
        (Moment::Instant(t), None) => formatted(args, &t, &items),
        (Moment::Instant(t), Some(zone)) => formatted(args, &t.with_timezone(&zone), &items),
        (Moment::Date(_), None) => formatted(args, &moment.utc().and_utc(), &items),
        (Moment::Date(d), Some(zone)) => {
            let midnight = d.and_time(chrono::NaiveTime::MIN);
            match zone.from_local_datetime(&midnight).earliest() {
                Some(local) => formatted(args, &local, &items),
                // Midnight skipped by a clock change: the date in UTC says the same day.
                None => formatted(args, &midnight.and_utc(), &items),
            }
        }
    }
}

/// `{{parseDate "22.11.2026 10:30" "%d.%m.%Y %H:%M" "Europe/Berlin"}}`: text read with a
/// format, as an RFC 3339 instant in UTC. Without an offset in the text, it is local time in
/// the zone (default UTC); a date alone is its midnight.
fn parse_date(args: &Args) -> Result<Value, RenderError> {
    let value = args.value(0)?;
    let text = super::text_of(value);
    spend_on_text(text.len())?;
    let format = args.text(1)?;
    format_items(args, &format)?;
    let zone = zone(args, 2)?;
    let utc = if let Ok(t) = DateTime::parse_from_str(&text, &format) {
        t.with_timezone(&Utc)
    } else {
        let local = NaiveDateTime::parse_from_str(&text, &format)
            .or_else(|_| {
                NaiveDate::parse_from_str(&text, &format)
                    .map(|d| d.and_time(chrono::NaiveTime::MIN))
            })
            .map_err(|_| {
                args.fail(format!(
                    "{} does not match the format {}",
                    shown(value),
                    shown(&Value::String(format.clone().into_owned()))
                ))
            })?;
        match zone {
            None => local.and_utc(),
            Some(zone) => zone
                .from_local_datetime(&local)
                .earliest()
                .ok_or_else(|| {
                    args.fail(format!(
                        "{local} does not exist in {} (the clocks skip it)",
                        zone.name()
                    ))
                })?
                .with_timezone(&Utc),
        }
    };
    Ok(Value::String(
        utc.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    ))
}

/// `n` whole months later (earlier when negative), the day cut to the month's last.
fn add_months<T>(
    at: T,
    n: i64,
    add: fn(T, Months) -> Option<T>,
    sub: fn(T, Months) -> Option<T>,
) -> Option<T> {
    let months = Months::new(u32::try_from(n.unsigned_abs()).ok()?);
    if n >= 0 {
        add(at, months)
    } else {
        sub(at, months)
    }
}

/// `{{dateAdd x 3 "days"}}`: later by the amount (earlier when negative). A date moves by days,
/// weeks, months or years; months keep the day where the month has it, else take its last.
fn date_add(args: &Args) -> Result<Value, RenderError> {
    let moment = moment(args, 0)?;
    let amount = args.whole(1, "amount")?;
    let unit = unit(args, 2)?;
    let out_of_range = || args.fail("the result is out of range");
    let months = match unit {
        Unit::Months => Some(amount),
        Unit::Years => Some(amount.checked_mul(12).ok_or_else(out_of_range)?),
        _ => None,
    };
    let delta = match unit.seconds() {
        Some(seconds) => Some(
            amount
                .checked_mul(seconds)
                .and_then(TimeDelta::try_seconds)
                .ok_or_else(out_of_range)?,
        ),
        None => None,
    };
    let moved = match (moment, months, delta) {
        (Moment::Instant(t), Some(n), _) => add_months(
            t,
            n,
            DateTime::checked_add_months,
            DateTime::checked_sub_months,
        )
        .map(Moment::Instant),
        (Moment::Instant(t), None, Some(delta)) => t.checked_add_signed(delta).map(Moment::Instant),
        (Moment::Date(d), Some(n), _) => add_months(
            d,
            n,
            NaiveDate::checked_add_months,
            NaiveDate::checked_sub_months,
        )
        .map(Moment::Date),
        (Moment::Date(d), None, Some(delta)) if matches!(unit, Unit::Days | Unit::Weeks) => {
            d.checked_add_signed(delta).map(Moment::Date)
        }
        (Moment::Date(_), _, _) => {
            return Err(args.fail(
                "a date moves by days, weeks, months or years; give an instant (2026-11-22T00:00:00Z) to move it by hours",
            ));
        }
        (Moment::Instant(_), None, None) => None,
    };
    match moved.ok_or_else(out_of_range)? {
        Moment::Instant(t) => Ok(Value::String(
            t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        )),
        Moment::Date(d) => Ok(Value::String(d.format("%Y-%m-%d").to_string())),
    }
}

/// Whole calendar months from `from` to `to` (negative when `to` is earlier), in UTC.
fn months_between(from: NaiveDateTime, to: NaiveDateTime) -> Option<i64> {
    let months = |t: NaiveDateTime| i64::from(t.year()) * 12 + i64::from(t.month0());
    let mut n = months(to) - months(from);
    let reached = |n: i64| {
        add_months(
            from,
            n,
            NaiveDateTime::checked_add_months,
            NaiveDateTime::checked_sub_months,
        )
    };
    if n > 0 && reached(n)? > to {
        n -= 1;
    } else if n < 0 && reached(n)? < to {
        n += 1;
    }
    Some(n)
}

/// `{{dateDiff from to "days"}}`: how many whole units from `from` to `to` (negative when `to`
/// is earlier); months and years are calendar months, counted in UTC.
fn date_diff(args: &Args) -> Result<Value, RenderError> {
    let from = moment(args, 0)?.utc();
    let to = moment(args, 1)?.utc();
    let unit = unit(args, 2)?;
    let n = match unit.seconds() {
        Some(seconds) => (to - from).num_seconds() / seconds,
        None => {
            let months =
                months_between(from, to).ok_or_else(|| args.fail("the dates are out of range"))?;
            if unit == Unit::Years {
                months / 12
            } else {
                months
            }
        }
    };
    Ok(Value::from(n))
}

/// `{{toTimezone x "Europe/Berlin"}}`: the same instant with the zone's offset.
fn to_timezone(args: &Args) -> Result<Value, RenderError> {
    let Moment::Instant(t) = moment(args, 0)? else {
        return Err(args.fail(format!(
            "{} is a date without a time",
            shown(args.value(0)?)
        )));
    };
    let zone = zone(args, 1)?.unwrap_or(Tz::UTC);
    Ok(Value::String(
        t.with_timezone(&zone)
            .to_rfc3339_opts(SecondsFormat::AutoSi, true),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::super::{OUTPUT_EXCEEDED, render};
    use super::super::testing::{fails, r};

    #[test]
    fn the_date_helper_keeps_working() {
        assert_eq!(
            r(r#"{{date trigger.createdAt "%d.%m.%Y"}}"#),
            Ok(json!("22.11.2026"))
        );
        assert_eq!(r("{{date trigger.day}}"), Ok(json!("2026-01-31")));
        assert_eq!(
            r(r#"{{date "2026-11-22T00:30:00+02:00" "%d %H:%M"}}"#),
            Ok(json!("21 22:30"))
        );
        assert_eq!(
            fails("{{date trigger.name}}"),
            r#"date: "  Acme Corp  " is not a date or an RFC 3339 instant"#
        );
    }

    #[test]
    fn format_date_shows_an_instant_in_a_time_zone() {
        assert_eq!(
            r(r#"{{formatDate trigger.createdAt "%d.%m.%Y %H:%M" "Europe/Berlin"}}"#),
            Ok(json!("22.11.2026 10:30"))
        );
        // Summer time.
        assert_eq!(
            r(r#"{{formatDate "2026-07-01T09:30:00Z" "%H:%M %Z" "Europe/Berlin"}}"#),
            Ok(json!("11:30 CEST"))
        );
        assert_eq!(
            r(r#"{{formatDate "2026-07-01T09:30:00+05:30" "%H:%M %:z"}}"#),
            Ok(json!("09:30 +05:30"))
        );
        // A date stays on its day in any zone.
        assert_eq!(
            r(r#"{{formatDate trigger.day "%A %d %B" "America/Los_Angeles"}}"#),
            Ok(json!("Saturday 31 January"))
        );
        assert_eq!(
            r(r#"{{formatDate trigger.day "%d.%m.%Y %H:%M"}}"#),
            Ok(json!("31.01.2026 00:00"))
        );
    }

    #[test]
    fn parse_date_reads_local_time_into_utc() {
        assert_eq!(
            r(r#"{{parseDate "22.11.2026 10:30" "%d.%m.%Y %H:%M" "Europe/Berlin"}}"#),
            Ok(json!("2026-11-22T09:30:00Z"))
        );
        assert_eq!(
            r(r#"{{parseDate "22.11.2026 10:30" "%d.%m.%Y %H:%M"}}"#),
            Ok(json!("2026-11-22T10:30:00Z"))
        );
        assert_eq!(
            r(r#"{{parseDate "11/22/2026" "%m/%d/%Y" "America/New_York"}}"#),
            Ok(json!("2026-11-22T05:00:00Z"))
        );
        assert_eq!(
            r(r#"{{parseDate "2026-11-22 10:30 +0100" "%Y-%m-%d %H:%M %z"}}"#),
            Ok(json!("2026-11-22T09:30:00Z"))
        );
        assert_eq!(
            fails(r#"{{parseDate "2026-03-29 02:30" "%Y-%m-%d %H:%M" "Europe/Berlin"}}"#),
            "parseDate: 2026-03-29 02:30:00 does not exist in Europe/Berlin (the clocks skip it)"
        );
        assert_eq!(
            fails(r#"{{parseDate "tomorrow" "%d.%m.%Y"}}"#),
            r#"parseDate: "tomorrow" does not match the format "%d.%m.%Y""#
        );
    }

    #[test]
    fn date_add_moves_instants_and_dates() {
        for (template, expected) in [
            (
                r#"{{dateAdd trigger.createdAt 90 "minutes"}}"#,
                "2026-11-22T11:00:00Z",
            ),
            (
                r#"{{dateAdd trigger.createdAt -1 "hour"}}"#,
                "2026-11-22T08:30:00Z",
            ),
            (
                r#"{{dateAdd trigger.createdAt 2 "weeks"}}"#,
                "2026-12-06T09:30:00Z",
            ),
            (
                r#"{{dateAdd "2026-01-31T12:00:00+01:00" 1 "months"}}"#,
                "2026-02-28T12:00:00+01:00",
            ),
            (r#"{{dateAdd trigger.day 1 "months"}}"#, "2026-02-28"),
            (r#"{{dateAdd trigger.day -2 "years"}}"#, "2024-01-31"),
            (r#"{{dateAdd "2024-02-29" 1 "year"}}"#, "2025-02-28"),
            (r#"{{dateAdd trigger.day 1 "Days"}}"#, "2026-02-01"),
            (r#"{{dateAdd trigger.day "7" "days"}}"#, "2026-02-07"),
        ] {
            assert_eq!(r(template), Ok(json!(expected)), "{template}");
        }
        assert_eq!(
            fails(r#"{{dateAdd trigger.day 3 "hours"}}"#),
            "dateAdd: a date moves by days, weeks, months or years; give an instant (2026-11-22T00:00:00Z) to move it by hours"
        );
        assert_eq!(
            fails(r#"{{dateAdd trigger.day 3 "fortnights"}}"#),
            r#"dateAdd: unit "fortnights" is not one of seconds, minutes, hours, days, weeks, months, years"#
        );
        assert_eq!(
            fails(r#"{{dateAdd trigger.day 1.5 "days"}}"#),
            "dateAdd: amount 1.5 is not a whole number"
        );
        assert_eq!(
            fails(r#"{{dateAdd "next week" 1 "days"}}"#),
            r#"dateAdd: "next week" is not a date (2026-11-22) or an RFC 3339 instant (2026-11-22T09:30:00Z)"#
        );
        for template in [
            r#"{{dateAdd trigger.day 99999999999 "years"}}"#,
            r#"{{dateAdd trigger.createdAt 9223372036854775807 "weeks"}}"#,
            r#"{{dateAdd trigger.createdAt -99999999999 "months"}}"#,
            r#"{{dateAdd trigger.day "1e30" "days"}}"#,
        ] {
            assert_eq!(
                fails(template),
                "dateAdd: the result is out of range",
                "{template}"
            );
        }
    }

    #[test]
    fn date_diff_counts_whole_units() {
        for (template, expected) in [
            (
                r#"{{dateDiff trigger.createdAt "2026-11-23T09:29:00Z" "days"}}"#,
                0,
            ),
            (
                r#"{{dateDiff trigger.createdAt "2026-11-23T09:30:00Z" "days"}}"#,
                1,
            ),
            (
                r#"{{dateDiff trigger.createdAt "2026-11-22T08:00:00Z" "minutes"}}"#,
                -90,
            ),
            // Like dateAdd, a month from the 31st ends on the month's last day.
            (r#"{{dateDiff "2026-01-31" "2026-02-27" "months"}}"#, 0),
            (r#"{{dateDiff "2026-01-31" "2026-02-28" "months"}}"#, 1),
            (r#"{{dateDiff "2026-01-31" "2026-03-01" "months"}}"#, 1),
            (r#"{{dateDiff "2026-03-31" "2026-01-31" "months"}}"#, -2),
            (r#"{{dateDiff "2020-03-01" "2026-02-28" "years"}}"#, 5),
            (r#"{{dateDiff "2020-03-01" "2026-03-01" "years"}}"#, 6),
            (r#"{{dateDiff trigger.day trigger.createdAt "weeks"}}"#, 42),
            (
                r#"{{dateDiff "2026-11-22T10:30:00+01:00" trigger.createdAt "seconds"}}"#,
                0,
            ),
        ] {
            assert_eq!(r(template), Ok(json!(expected)), "{template}");
        }
        assert!(
            r(r#"{{#if (gt (dateDiff trigger.day trigger.createdAt "days") 30)}}late{{/if}}"#)
                == Ok(json!("late"))
        );
    }

    #[test]
    fn to_timezone_gives_the_same_instant_with_the_zones_offset() {
        assert_eq!(
            r(r#"{{toTimezone trigger.createdAt "Asia/Kolkata"}}"#),
            Ok(json!("2026-11-22T15:00:00+05:30"))
        );
        assert_eq!(
            r(r#"{{toTimezone "2026-11-22T10:30:00+01:00" "UTC"}}"#),
            Ok(json!("2026-11-22T09:30:00Z"))
        );
        assert_eq!(
            fails(r#"{{toTimezone trigger.day "UTC"}}"#),
            r#"toTimezone: "2026-01-31" is a date without a time"#
        );
        assert_eq!(
            fails(r#"{{toTimezone trigger.createdAt "Europe/Berln"}}"#),
            r#"toTimezone: "Europe/Berln" is not a time zone (an IANA name such as Europe/Berlin)"#
        );
    }

    #[test]
    fn bad_formats_and_huge_output_fail_plainly() {
        assert_eq!(
            fails(r#"{{formatDate trigger.createdAt "%Q"}}"#),
            r#"formatDate: "%Q" is not a valid format (chrono's strftime: %d.%m.%Y %H:%M)"#
        );
        assert_eq!(
            fails(r#"{{date trigger.createdAt "%"}}"#),
            r#"date: "%" is not a valid format (chrono's strftime: %d.%m.%Y %H:%M)"#
        );
        // `%c` writes 24 bytes for 2: a format from the data cannot blow up the output.
        let data = json!({"at": "2026-11-22T09:30:00Z", "format": "%c".repeat(100_000)});
        for template in ["{{formatDate at format}}", "{{date at format}}"] {
            assert_eq!(
                render(template, &data).unwrap_err().0,
                OUTPUT_EXCEEDED,
                "{template}"
            );
        }
    }
}
