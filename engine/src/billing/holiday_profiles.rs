//! Holiday profiles: a calendar of working days and public holidays that sets the expected
//! capacity of the users who follow it.

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::access::auth::{Actor, Permission};
use crate::access::organizations::{WEEKDAYS, WeekdayName};
use crate::error::{Error, Problems, Result};
use crate::store::checks::{self, SHORT_TEXT};
use crate::store::clock::{format_ms, now_ms, parse_date, parse_date_field};
use crate::store::db::{Sql, Tx, row};
use crate::store::events;
use crate::store::ids;
use crate::store::list::{FilterKind, ListSpec};
use crate::store::patch::Patch;
use crate::store::resource::{self, Resource};
use crate::store::rows;

pub const NOUN: &str = "holiday_profile";
const DEFAULT_WORKING_DAYS: [&str; 5] = ["monday", "tuesday", "wednesday", "thursday", "friday"];
const DEFAULT_SECONDS_PER_DAY: i64 = 8 * 3600;
const MAX_HOLIDAYS: usize = 400;

pub const LIST: ListSpec = ListSpec {
    table: "holiday_profiles",
    sorts: &[("name", "name")],
    filters: &[
        ("name", "name", FilterKind::Text),
        ("countryCode", "country_code", FilterKind::Text),
        ("externalId", "external_id", FilterKind::Text),
    ],
    search: Some("name"),
    soft_delete: true,
};

/// The shared operations ([`resource`]) for this resource.
pub struct HolidayProfiles;

impl Resource for HolidayProfiles {
    type Item = HolidayProfile;
    type Input = HolidayProfileInput;
    const NOUN: &'static str = NOUN;
    const LIST: ListSpec = LIST;
    const WRITE: Permission = Permission::WriteHolidayProfiles;
    const CHILDREN: &'static [(&'static str, &'static str, &'static str)] =
        &[("org_users", "holiday_profile_id", "user(s) following it")];

    fn decode(_actor: &Actor, row: &row::Row) -> Result<HolidayProfile> {
        from_row(row)
    }

    fn external_id(input: &mut HolidayProfileInput) -> &mut Patch<String> {
        &mut input.external_id
    }

    async fn insert(
        tx: &mut Tx,
        actor: &Actor,
        input: HolidayProfileInput,
    ) -> Result<HolidayProfile> {
        let rec = Record::apply(input, None)?;
        let id = ids::new_id(ids::HOLIDAY_PROFILE);
        let now = now_ms();
        Sql::new(
            "INSERT INTO holiday_profiles (id, org_id, name, country_code, holidays, working_days, \
             seconds_per_day, external_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .arg(&id)
        .arg(actor.org_id())
        .arg(&rec.name)
        .arg(&rec.country_code)
        .arg(rec.holidays_json()?)
        .arg(rec.working_days_json()?)
        .arg(rec.seconds_per_day)
        .arg(rec.external_id)
        .arg(now)
        .arg(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| rows::external_id_conflict(e, NOUN))?;
        let profile = resource::reload::<HolidayProfiles>(tx, actor, &id).await?;
        events::created(tx, actor.org_id(), NOUN, &id, &profile).await?;
        Ok(profile)
    }

    async fn update(
        tx: &mut Tx,
        actor: &Actor,
        row: &row::Row,
        input: HolidayProfileInput,
    ) -> Result<HolidayProfile> {
        let before = from_row(row)?;
        let current = Record::from_row(row)?;
        let rec = Record::apply(input, Some(&current))?;
        if rec == current {
            return Ok(before);
        }
        Sql::new(
            "UPDATE holiday_profiles SET name = ?, country_code = ?, holidays = ?, working_days = ?, \
             seconds_per_day = ?, external_id = ?, updated_at = ? WHERE id = ?",
        )
        .arg(&rec.name)
        .arg(&rec.country_code)
        .arg(rec.holidays_json()?)
        .arg(rec.working_days_json()?)
        .arg(rec.seconds_per_day)
        .arg(&rec.external_id)
        .arg(now_ms())
        .arg(&before.id)
        .execute(&mut *tx)
        .await
        .map_err(|e| rows::external_id_conflict(e, NOUN))?;
        let after = resource::reload::<HolidayProfiles>(tx, actor, &before.id).await?;
        events::updated(tx, actor.org_id(), NOUN, &before.id, (&before, &after)).await?;
        Ok(after)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Holiday {
    /// `YYYY-MM-DD`, once per profile.
    #[schema(format = Date, example = "2026-12-25")]
    pub date: String,
    #[schema(
        max_length = 200,
        pattern = r"^[\s\u0085]*[^\s\u0000\u0085][^\u0000]*$",
        example = "Christmas Day"
    )]
    pub name: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HolidayProfile {
    /// `hol_…`
    pub id: String,
    pub name: String,
    /// ISO 3166-1 alpha-2.
    pub country_code: Option<String>,
    /// Sorted by date.
    pub holidays: Vec<Holiday>,
    /// Lower-case weekday names, Monday first.
    pub working_days: Vec<String>,
    pub hours_per_day: f64,
    pub external_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The body of `POST`, `PATCH` and `PUT /by-external-id`. `name` is required on create;
/// `workingDays` defaults to Monday to Friday and `hoursPerDay` to 8 (`null` restores them).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HolidayProfileInput {
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 200,
             pattern = r"^[\s\u0085]*[^\s\u0000\u0085][^\u0000]*$", example = "Germany (Berlin)")]
    pub name: Patch<String>,
    /// ISO 3166-1 alpha-2; stored in upper case.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^[A-Za-z]{2}$", example = "DE")]
    pub country_code: Patch<String>,
    /// At most 400, each date once; `null` empties the list.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Holiday>>, max_items = 400)]
    pub holidays: Patch<Vec<Holiday>>,
    /// Weekday names, in any case; a day named twice counts once.
    #[serde(default)]
    #[schema(value_type = Option<Vec<WeekdayName>>, example = json!(["monday", "tuesday", "wednesday", "thursday", "friday"]))]
    pub working_days: Patch<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 24, example = 8)]
    pub hours_per_day: Patch<f64>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 200, pattern = r"^[^\u0000]*$")]
    pub external_id: Patch<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct Record {
    name: String,
    country_code: Option<String>,
    holidays: Vec<Holiday>,
    working_days: Vec<String>,
    seconds_per_day: i64,
    external_id: Option<String>,
}

fn json_list<T: for<'de> Deserialize<'de>>(r: &row::Row, column: &str) -> Result<Vec<T>> {
    serde_json::from_str(&row::get_str(r, column)?)
        .map_err(|e| Error::Internal(format!("stored {column}: {e}")))
}

impl Record {
    fn from_row(r: &row::Row) -> Result<Self> {
        Ok(Self {
            name: row::get_str(r, "name")?,
            country_code: row::get_opt_str(r, "country_code")?,
            holidays: json_list(r, "holidays")?,
            working_days: json_list(r, "working_days")?,
            seconds_per_day: row::get_i64(r, "seconds_per_day")?,
            external_id: row::get_opt_str(r, "external_id")?,
        })
    }

    fn holidays_json(&self) -> Result<String> {
        serde_json::to_string(&self.holidays).map_err(|e| Error::Internal(e.to_string()))
    }

    fn working_days_json(&self) -> Result<String> {
        serde_json::to_string(&self.working_days).map_err(|e| Error::Internal(e.to_string()))
    }

    fn apply(input: HolidayProfileInput, current: Option<&Record>) -> Result<Self> {
        let mut p = Problems::default();
        let cur = |f: fn(&Record) -> Option<String>| current.and_then(f);
        let name =
            checks::patch_required(&mut p, "name", input.name, cur(|c| Some(c.name.clone())));
        let name = p.take(checks::required_text("name", name, SHORT_TEXT));
        let country_code = input
            .country_code
            .apply(cur(|c| c.country_code.clone()))
            .map(|c| c.trim().to_uppercase());
        if let Some(code) = &country_code
            && !(code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()))
        {
            p.add(
                "countryCode",
                "invalid",
                "countryCode must be an ISO 3166-1 alpha-2 code such as DE",
            );
        }
        let holidays = match input.holidays {
            Patch::Absent => current.map(|c| c.holidays.clone()).unwrap_or_default(),
            Patch::Null => Vec::new(),
            Patch::Value(list) => check_holidays(&mut p, list),
        };
        let working_days = match input.working_days {
            Patch::Absent => current.map_or_else(
                || DEFAULT_WORKING_DAYS.map(String::from).to_vec(),
                |c| c.working_days.clone(),
            ),
            Patch::Null => DEFAULT_WORKING_DAYS.map(String::from).to_vec(),
            Patch::Value(days) => check_working_days(&mut p, days),
        };
        let seconds_per_day = match input.hours_per_day {
            Patch::Absent => current.map_or(DEFAULT_SECONDS_PER_DAY, |c| c.seconds_per_day),
            Patch::Null => DEFAULT_SECONDS_PER_DAY,
            Patch::Value(h) if h.is_finite() && (0.0..=24.0).contains(&h) => {
                (h * 3600.0).round() as i64
            }
            Patch::Value(_) => {
                p.add(
                    "hoursPerDay",
                    "invalid",
                    "hoursPerDay must be a number from 0 to 24",
                );
                0
            }
        };
        let external_id = p.take(checks::opt_text(
            "externalId",
            input.external_id.apply(cur(|c| c.external_id.clone())),
            SHORT_TEXT,
        ));
        let ok = p.finish("holiday profile")?;
        Ok(Record {
            name: ok.get(name)?,
            country_code,
            holidays,
            working_days,
            seconds_per_day,
            external_id: ok.get(external_id)?,
        })
    }
}

fn check_holidays(p: &mut Problems, list: Vec<Holiday>) -> Vec<Holiday> {
    if list.len() > MAX_HOLIDAYS {
        p.add(
            "holidays",
            "too_long",
            format!("a profile holds at most {MAX_HOLIDAYS} holidays"),
        );
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(list.len());
    for (i, holiday) in list.into_iter().enumerate() {
        let date = p.take(parse_date_field(
            &format!("holidays[{i}].date"),
            &holiday.date,
        ));
        let name = p.take(checks::required_text(
            &format!("holidays[{i}].name"),
            Some(holiday.name),
            SHORT_TEXT,
        ));
        if let Some(date) = &date
            && !seen.insert(date.clone())
        {
            p.add(
                &format!("holidays[{i}].date"),
                "duplicate",
                format!("{date} is listed twice"),
            );
        }
        if let (Some(date), Some(name)) = (date, name) {
            out.push(Holiday { date, name });
        }
    }
    out.sort_by(|a, b| a.date.cmp(&b.date));
    out
}

fn check_working_days(p: &mut Problems, days: Vec<String>) -> Vec<String> {
    let mut chosen = BTreeSet::new();
    for (i, day) in days.iter().enumerate() {
        match WEEKDAYS.iter().position(|d| *d == day.to_lowercase()) {
            Some(index) => {
                chosen.insert(index);
            }
            None => p.add(
                &format!("workingDays[{i}]"),
                "invalid",
                format!("workingDays[{i}] must be a weekday name such as monday"),
            ),
        }
    }
    chosen.into_iter().map(|i| WEEKDAYS[i].to_owned()).collect()
}

fn from_row(r: &row::Row) -> Result<HolidayProfile> {
    let rec = Record::from_row(r)?;
    Ok(HolidayProfile {
        id: row::get_str(r, "id")?,
        hours_per_day: checks::hours(Some(rec.seconds_per_day)).unwrap_or_default(),
        name: rec.name,
        country_code: rec.country_code,
        holidays: rec.holidays,
        working_days: rec.working_days,
        external_id: rec.external_id,
        created_at: format_ms(row::get_i64(r, "created_at")?),
        updated_at: format_ms(row::get_i64(r, "updated_at")?),
    })
}

/// A user's expected working seconds from `first` to `last` (inclusive): their working days
/// that are not holidays, at their weekly capacity spread over the profile's working days (or
/// the profile's hours per day when they have no weekly capacity). Without a profile a user
/// works Monday to Friday, eight hours a day, with no holidays.
pub async fn expected_seconds(
    tx: &mut Tx,
    org_id: &str,
    user_id: &str,
    first: NaiveDate,
    last: NaiveDate,
) -> Result<i64> {
    let user = Sql::new(
        "SELECT u.weekly_capacity_seconds, h.working_days, h.holidays, h.seconds_per_day \
         FROM org_users u LEFT JOIN holiday_profiles h ON h.id = u.holiday_profile_id AND h.deleted_at IS NULL \
         WHERE u.id = ? AND u.org_id = ?",
    )
    .arg(user_id)
    .arg(org_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound("user"))?;
    let weekly = row::get_opt_i64(&user, "weekly_capacity_seconds")?;
    let calendar = match row::get_opt_str(&user, "working_days")? {
        Some(_) => Calendar {
            working_days: json_list::<String>(&user, "working_days")?,
            holidays: json_list::<Holiday>(&user, "holidays")?,
            seconds_per_day: row::get_i64(&user, "seconds_per_day")?,
        },
        None => Calendar {
            working_days: DEFAULT_WORKING_DAYS.map(String::from).to_vec(),
            holidays: Vec::new(),
            seconds_per_day: DEFAULT_SECONDS_PER_DAY,
        },
    };
    Ok(calendar.capacity(first, last, weekly))
}

/// The working week a user follows: their profile's, or the default one.
struct Calendar {
    working_days: Vec<String>,
    holidays: Vec<Holiday>,
    seconds_per_day: i64,
}

impl Calendar {
    /// Working seconds from `first` to `last` (inclusive), at `weekly_capacity` spread over the
    /// working days when there is one.
    fn capacity(&self, first: NaiveDate, last: NaiveDate, weekly_capacity: Option<i64>) -> i64 {
        let works = |d: NaiveDate| {
            let name = WEEKDAYS[d.weekday().num_days_from_monday() as usize];
            self.working_days.iter().any(|w| w == name)
        };
        let holiday_dates: BTreeSet<NaiveDate> = self
            .holidays
            .iter()
            .filter_map(|h| parse_date(&h.date))
            .collect();
        let days = first
            .iter_days()
            .take_while(|d| *d <= last)
            .filter(|d| works(*d) && !holiday_dates.contains(d))
            .count() as i64;
        match weekly_capacity {
            Some(weekly) if !self.working_days.is_empty() => {
                weekly * days / self.working_days.len() as i64
            }
            _ => self.seconds_per_day * days,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        parse_date(text).unwrap()
    }

    fn calendar(working_days: &[String], holidays: &[Holiday], seconds_per_day: i64) -> Calendar {
        Calendar {
            working_days: working_days.to_vec(),
            holidays: holidays.to_vec(),
            seconds_per_day,
        }
    }

    #[test]
    fn holidays_on_working_days_reduce_capacity() {
        let weekdays = DEFAULT_WORKING_DAYS.map(String::from).to_vec();
        let christmas = vec![
            Holiday {
                date: "2026-12-25".into(),
                name: "Christmas Day".into(),
            },
            // A Saturday: not a working day, so it changes nothing.
            Holiday {
                date: "2026-12-26".into(),
                name: "Boxing Day".into(),
            },
        ];
        let (mon, sun) = (day("2026-12-21"), day("2026-12-27"));
        assert_eq!(
            calendar(&weekdays, &[], 28_800).capacity(mon, sun, None),
            5 * 28_800
        );
        assert_eq!(
            calendar(&weekdays, &christmas, 28_800).capacity(mon, sun, None),
            4 * 28_800
        );
        // 32 h a week over five working days, one of them a holiday.
        assert_eq!(
            calendar(&weekdays, &christmas, 28_800).capacity(mon, sun, Some(32 * 3600)),
            4 * 32 * 3600 / 5
        );
        let four_days = vec![
            "monday".into(),
            "tuesday".into(),
            "wednesday".into(),
            "thursday".into(),
        ];
        assert_eq!(
            calendar(&four_days, &christmas, 36_000).capacity(mon, sun, None),
            4 * 36_000
        );
    }
}
