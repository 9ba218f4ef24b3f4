//! Dates as an assistant sends them ("2026-11-23", "yesterday", "last Monday", "3 days ago",
//! "last week"), resolved against today in the organization's time zone into `YYYY-MM-DD`.
//! Anything else is refused with the forms that are understood, never guessed.

use chrono::{Datelike, Days, Months, NaiveDate, Weekday};
use timix_engine::access::auth::Actor;
use timix_engine::store::clock::{
    date_in_zone, format_date, now_ms, parse_date, week_start, weekday,
};
use timix_engine::store::json::quote;

use super::api::Failure;
use super::tools::invalid_arguments;

/// What every date argument's schema says it takes.
pub const DAY_WORDS: &str = "YYYY-MM-DD, or in the organization's time zone: today, yesterday, tomorrow, \"N days ago\", a weekday (\"monday\": the latest Monday up to and including today), \"last monday\" (the latest Monday strictly before today), \"this monday\" (the Monday of the current week, which may be ahead)";

/// What a date bound (`from`, `to`) takes besides [`DAY_WORDS`].
pub const PERIOD_WORDS: &str = "\"this week\", \"last week\" (weeks start on the organization's weekStartsOn), \"this month\", \"last month\": a period is its first day as `from` and its last day as `to`, so send it as both for the whole period";

/// Today and the first day of the week, in the organization's calendar.
#[derive(Debug, Clone, Copy)]
pub struct Calendar {
    pub today: NaiveDate,
    pub week_starts_on: Weekday,
}

impl Calendar {
    pub fn of(actor: &Actor) -> Self {
        let organization = &actor.organization;
        Self {
            today: date_in_zone(now_ms(), &organization.timezone),
            week_starts_on: weekday(&organization.week_starts_on).unwrap_or(Weekday::Mon),
        }
    }

    /// The one day `text` names, as `YYYY-MM-DD`.
    pub fn day(self, text: &str) -> Result<String, String> {
        match self.read(text) {
            Some((first, last)) if first == last => Ok(format_date(first)),
            Some(_) => Err(format!(
                "{} is a period, not a day; send {DAY_WORDS}",
                quote(text)
            )),
            None => Err(refusal(text, false)),
        }
    }

    /// The first day of what `text` names (a day is its own first day).
    pub fn first_day(self, text: &str) -> Result<String, String> {
        self.read(text)
            .map(|(first, _)| format_date(first))
            .ok_or_else(|| refusal(text, true))
    }

    /// The last day of what `text` names.
    pub fn last_day(self, text: &str) -> Result<String, String> {
        self.read(text)
            .map(|(_, last)| format_date(last))
            .ok_or_else(|| refusal(text, true))
    }

    /// The first and last day `text` names (the same for one day).
    fn read(self, text: &str) -> Option<(NaiveDate, NaiveDate)> {
        let today = self.today;
        let cleaned = text.trim().to_lowercase();
        if let Some(date) = parse_date(&cleaned) {
            return Some((date, date));
        }
        let words: Vec<&str> = cleaned.split_whitespace().collect();
        let day = match words.as_slice() {
            ["today"] => today,
            ["yesterday"] => today.pred_opt()?,
            ["tomorrow"] => today.succ_opt()?,
            [n, "day" | "days", "ago"] => today.checked_sub_days(Days::new(n.parse().ok()?))?,
            [name] => today - Days::new(days_back(today, weekday(name)?)),
            ["last", "week"] => {
                let start = week_start(today, self.week_starts_on) - Days::new(7);
                return Some((start, start + Days::new(6)));
            }
            ["this", "week"] => {
                let start = week_start(today, self.week_starts_on);
                return Some((start, start + Days::new(6)));
            }
            ["this", "month"] => return Some(month_of(today)),
            ["last", "month"] => return Some(month_of(today.checked_sub_months(Months::new(1))?)),
            ["last", name] => {
                let back = match days_back(today, weekday(name)?) {
                    0 => 7,
                    back => back,
                };
                today - Days::new(back)
            }
            ["this", name] => {
                let wanted = weekday(name)?;
                let start = week_start(today, self.week_starts_on);
                let ahead = (7 + wanted.num_days_from_monday()
                    - self.week_starts_on.num_days_from_monday())
                    % 7;
                start + Days::new(u64::from(ahead))
            }
            _ => return None,
        };
        Some((day, day))
    }
}

/// A `from` or `to` argument as `YYYY-MM-DD` (empty when left out), or `validation_failed`
/// naming it with the forms understood.
pub fn date_bound(
    text: &Option<String>,
    field: &str,
    read: impl Fn(&str) -> Result<String, String>,
) -> Result<String, Failure> {
    match text {
        Some(text) => {
            read(text).map_err(|message| invalid_arguments(vec![(format!("/{field}"), message)]))
        }
        None => Ok(String::new()),
    }
}

/// Days from the latest `wanted` weekday up to `today` (0 when today is one).
fn days_back(today: NaiveDate, wanted: Weekday) -> u64 {
    u64::from((7 + today.weekday().num_days_from_monday() - wanted.num_days_from_monday()) % 7)
}

/// The first and last day of `date`'s month.
fn month_of(date: NaiveDate) -> (NaiveDate, NaiveDate) {
    let first = date.with_day(1).unwrap_or(date);
    let last = first
        .checked_add_months(Months::new(1))
        .and_then(|next| next.pred_opt())
        .unwrap_or(date);
    (first, last)
}

fn refusal(text: &str, periods: bool) -> String {
    let mut message = format!("cannot read {} as a date; send {DAY_WORDS}", quote(text));
    if periods {
        message.push_str(", or ");
        message.push_str(PERIOD_WORDS);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wednesday 2026-11-25, weeks starting on Monday.
    fn calendar() -> Calendar {
        Calendar {
            today: parse_date("2026-11-25").unwrap(),
            week_starts_on: Weekday::Mon,
        }
    }

    #[test]
    fn days_are_read_against_the_calendar() {
        let c = calendar();
        for (text, day) in [
            ("2026-11-03", "2026-11-03"),
            ("today", "2026-11-25"),
            (" Yesterday ", "2026-11-24"),
            ("tomorrow", "2026-11-26"),
            ("3 days ago", "2026-11-22"),
            ("1 day ago", "2026-11-24"),
            ("0 days ago", "2026-11-25"),
            ("monday", "2026-11-23"),
            ("wednesday", "2026-11-25"),
            ("thursday", "2026-11-19"),
            ("last Monday", "2026-11-23"),
            ("last wednesday", "2026-11-18"),
            ("last thursday", "2026-11-19"),
            ("this monday", "2026-11-23"),
            ("this friday", "2026-11-27"),
        ] {
            assert_eq!(c.day(text).as_deref(), Ok(day), "{text}");
        }
    }

    #[test]
    fn periods_give_their_first_and_last_day() {
        let c = calendar();
        for (text, first, last) in [
            ("this week", "2026-11-23", "2026-11-29"),
            ("last week", "2026-11-16", "2026-11-22"),
            ("this month", "2026-11-01", "2026-11-30"),
            ("last month", "2026-10-01", "2026-10-31"),
            ("yesterday", "2026-11-24", "2026-11-24"),
        ] {
            assert_eq!(c.first_day(text).as_deref(), Ok(first), "{text}");
            assert_eq!(c.last_day(text).as_deref(), Ok(last), "{text}");
        }
        let march = Calendar {
            today: parse_date("2026-03-31").unwrap(),
            ..c
        };
        assert_eq!(march.first_day("last month").as_deref(), Ok("2026-02-01"));
        assert_eq!(march.last_day("last month").as_deref(), Ok("2026-02-28"));
    }

    #[test]
    fn weeks_follow_the_organization() {
        let sunday_weeks = Calendar {
            week_starts_on: Weekday::Sun,
            ..calendar()
        };
        assert_eq!(
            sunday_weeks.first_day("this week").as_deref(),
            Ok("2026-11-22")
        );
        assert_eq!(
            sunday_weeks.first_day("last week").as_deref(),
            Ok("2026-11-15")
        );
        assert_eq!(sunday_weeks.day("this monday").as_deref(), Ok("2026-11-23"));
    }

    #[test]
    fn on_a_monday_a_monday_is_today_or_a_week_ago() {
        let monday = Calendar {
            today: parse_date("2026-11-23").unwrap(),
            ..calendar()
        };
        for (text, day) in [
            ("monday", "2026-11-23"),
            ("last monday", "2026-11-16"),
            ("this monday", "2026-11-23"),
            ("sunday", "2026-11-22"),
            ("this sunday", "2026-11-29"),
        ] {
            assert_eq!(monday.day(text).as_deref(), Ok(day), "{text}");
        }
        assert_eq!(monday.first_day("this week").as_deref(), Ok("2026-11-23"));
        assert_eq!(monday.first_day("last week").as_deref(), Ok("2026-11-16"));
    }

    #[test]
    fn on_the_sunday_that_starts_a_week() {
        let sunday = Calendar {
            today: parse_date("2026-11-29").unwrap(),
            week_starts_on: Weekday::Sun,
        };
        for (text, day) in [
            ("sunday", "2026-11-29"),
            ("last sunday", "2026-11-22"),
            ("this sunday", "2026-11-29"),
            // The current week runs Sunday 29 to Saturday 5: its Monday is ahead.
            ("this monday", "2026-11-30"),
            ("monday", "2026-11-23"),
            ("last saturday", "2026-11-28"),
        ] {
            assert_eq!(sunday.day(text).as_deref(), Ok(day), "{text}");
        }
        for (text, first, last) in [
            ("this week", "2026-11-29", "2026-12-05"),
            ("last week", "2026-11-22", "2026-11-28"),
        ] {
            assert_eq!(sunday.first_day(text).as_deref(), Ok(first), "{text}");
            assert_eq!(sunday.last_day(text).as_deref(), Ok(last), "{text}");
        }
    }

    #[test]
    fn a_bound_left_out_is_empty_and_a_bad_one_names_its_field() {
        let c = calendar();
        assert_eq!(
            date_bound(&None, "from", |t| c.first_day(t)),
            Ok(String::new())
        );
        assert_eq!(
            date_bound(&Some("last week".into()), "to", |t| c.last_day(t)),
            Ok("2026-11-22".into())
        );
        let refused = date_bound(&Some("soon".into()), "to", |t| c.last_day(t)).unwrap_err();
        assert_eq!(refused["details"][0]["field"], "to", "{refused}");
    }

    #[test]
    fn anything_else_is_refused_with_what_is_understood() {
        let c = calendar();
        for text in [
            "",
            "next monday",
            "2026-13-01",
            "25/11/2026",
            "a day ago",
            "-3 days ago",
            "mon",
            "last",
            "last year",
        ] {
            let refused = c.day(text).unwrap_err();
            assert!(refused.contains("last monday"), "{text}: {refused}");
        }
        let refused = c.day("last week").unwrap_err();
        assert!(refused.contains("is a period"), "{refused}");
        let refused = c.first_day("fortnight").unwrap_err();
        assert!(refused.contains("last week"), "{refused}");
    }
}
