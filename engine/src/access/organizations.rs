//! Organizations: plan, billing state and the settings every other resource reads.

use serde::{Deserialize, Serialize};

use crate::access::auth::{Actor, Permission};
use crate::error::{Error, FieldError, Problems, Result};
use crate::store::clock::{format_ms, now_ms};
use crate::store::db::{Db, Sql, Tx, row};
use crate::store::events;
use crate::store::ids;
use crate::store::money::parse_currency;
use crate::store::patch::Patch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    Free,
    Starter,
    Professional,
    Business,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Starter => "starter",
            Plan::Professional => "professional",
            Plan::Business => "business",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Plan::Free,
            Plan::Starter,
            Plan::Professional,
            Plan::Business,
        ]
        .into_iter()
        .find(|p| p.as_str() == text)
    }

    /// Whether the organization may create API keys through the API.
    pub fn allows_api_keys(self) -> bool {
        matches!(self, Plan::Professional | Plan::Business)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BillingState {
    Active,
    PastDue,
    ReadOnly,
}

impl BillingState {
    pub fn as_str(self) -> &'static str {
        match self {
            BillingState::Active => "active",
            BillingState::PastDue => "past_due",
            BillingState::ReadOnly => "read_only",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            BillingState::Active,
            BillingState::PastDue,
            BillingState::ReadOnly,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

pub const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub plan: Plan,
    pub billing_state: BillingState,
    /// Default currency (ISO 4217) of customers and of users' rates.
    pub currency: String,
    /// IANA time zone, e.g. `Europe/Berlin`.
    pub timezone: String,
    /// First day of a timesheet week: `monday` … `sunday`.
    pub week_starts_on: String,
    pub created_at: String,
    pub updated_at: String,
}

impl Organization {
    pub(crate) fn from_row(r: &row::Row) -> Result<Self> {
        Self::from_columns(r, "")
    }

    /// From a row whose organization columns are named with `prefix` (`org_id`, `org_name`…:
    /// joined to another table's row).
    pub(crate) fn from_columns(r: &row::Row, prefix: &str) -> Result<Self> {
        let column = |name: &str| format!("{prefix}{name}");
        let plan = row::get_str(r, &column("plan"))?;
        let state = row::get_str(r, &column("billing_state"))?;
        Ok(Self {
            id: row::get_str(r, &column("id"))?,
            name: row::get_str(r, &column("name"))?,
            plan: Plan::parse(&plan)
                .ok_or_else(|| Error::Internal(format!("stored plan {plan}")))?,
            billing_state: BillingState::parse(&state)
                .ok_or_else(|| Error::Internal(format!("stored billing state {state}")))?,
            currency: row::get_str(r, &column("currency"))?,
            timezone: row::get_str(r, &column("timezone"))?,
            week_starts_on: row::get_str(r, &column("week_starts_on"))?,
            created_at: format_ms(row::get_i64(r, column("created_at").as_str())?),
            updated_at: format_ms(row::get_i64(r, column("updated_at").as_str())?),
        })
    }
}

/// `PATCH /organization`. Plan and billing state are named only to be refused with a clear
/// message: the operator changes them (`timix org update`); the schema leaves them out.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrganizationPatch {
    #[serde(default)]
    #[schema(value_type = String, max_length = 200,
             pattern = r"^[\s\u0085]*[^\s\u0000\u0085][^\u0000]*$")]
    pub name: Patch<String>,
    /// ISO 4217: the default currency of new customers and of users' rates.
    #[serde(default)]
    #[schema(value_type = String, pattern = "^[A-Z]{3}$", example = "EUR")]
    pub currency: Patch<String>,
    #[serde(default)]
    #[schema(value_type = TimeZoneName)]
    pub timezone: Patch<String>,
    #[serde(default)]
    #[schema(value_type = WeekdayName)]
    pub week_starts_on: Patch<String>,
    #[serde(default)]
    #[schema(ignore)]
    pub plan: Patch<serde_json::Value>,
    #[serde(default)]
    #[schema(ignore)]
    pub billing_state: Patch<serde_json::Value>,
}

/// The schema of a weekday: one of [`WEEKDAYS`].
pub struct WeekdayName;

impl utoipa::PartialSchema for WeekdayName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::store::checks::one_of_schema("A weekday, by its lower-case English name.", WEEKDAYS)
    }
}

impl utoipa::ToSchema for WeekdayName {}

/// The schema of a time zone: one of the IANA names the time zone database knows.
pub struct TimeZoneName;

impl utoipa::PartialSchema for TimeZoneName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::store::checks::one_of_schema(
            "An IANA time zone, e.g. `Europe/Berlin`.",
            chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()),
        )
    }
}

impl utoipa::ToSchema for TimeZoneName {}

pub async fn get(db: &Db, actor: &Actor) -> Result<Organization> {
    actor.require(Permission::ReadAll)?;
    find(db, actor.org_id()).await
}

pub async fn find(db: &Db, org_id: &str) -> Result<Organization> {
    let row = Sql::new("SELECT * FROM organizations WHERE id = ?")
        .arg(org_id)
        .fetch_optional(db)
        .await?
        .ok_or(Error::NotFound("organization"))?;
    Organization::from_row(&row)
}

pub fn check_name(field: &str, name: &str) -> Result<String, FieldError> {
    let name = name.trim();
    if name.is_empty() {
        Err(FieldError::new(
            field,
            "required",
            format!("{field} must not be empty"),
        ))
    } else if name.chars().count() > 200 {
        Err(FieldError::new(
            field,
            "too_long",
            format!("{field} must be at most 200 characters"),
        ))
    } else {
        Ok(name.to_owned())
    }
}

fn check_timezone(tz: &str) -> Result<String, FieldError> {
    tz.parse::<chrono_tz::Tz>()
        .map(|_| tz.to_owned())
        .map_err(|_| {
            FieldError::new(
                "timezone",
                "invalid",
                "timezone must be an IANA time zone such as Europe/Berlin",
            )
        })
}

fn check_weekday(day: &str) -> Result<String, FieldError> {
    if WEEKDAYS.contains(&day) {
        Ok(day.to_owned())
    } else {
        Err(FieldError::new(
            "weekStartsOn",
            "invalid",
            "weekStartsOn must be one of monday, tuesday, wednesday, thursday, friday, saturday, sunday",
        ))
    }
}

pub async fn update(db: &Db, actor: &Actor, patch: OrganizationPatch) -> Result<Organization> {
    actor.require(Permission::WriteOrganization)?;
    let mut problems = Problems::default();
    if !patch.plan.is_absent() {
        problems.add(
            "plan",
            "read_only",
            "the plan is changed by the operator (timix org update)",
        );
    }
    if !patch.billing_state.is_absent() {
        problems.add(
            "billingState",
            "read_only",
            "the billing state is changed by the operator (timix org update)",
        );
    }
    let current = find(db, actor.org_id()).await?;
    let name = match patch.name {
        Patch::Absent => Some(current.name.clone()),
        Patch::Null => problems.take(Err(FieldError::required("name"))),
        Patch::Value(n) => problems.take(check_name("name", &n)),
    };
    let currency = match patch.currency {
        Patch::Absent => Some(current.currency.clone()),
        Patch::Null => problems.take(Err(FieldError::required("currency"))),
        Patch::Value(c) => problems.take(parse_currency("currency", &c)),
    };
    let timezone = match patch.timezone {
        Patch::Absent => Some(current.timezone.clone()),
        Patch::Null => problems.take(Err(FieldError::required("timezone"))),
        Patch::Value(t) => problems.take(check_timezone(&t)),
    };
    let week = match patch.week_starts_on {
        Patch::Absent => Some(current.week_starts_on.clone()),
        Patch::Null => problems.take(Err(FieldError::required("weekStartsOn"))),
        Patch::Value(d) => problems.take(check_weekday(&d)),
    };
    let ok = problems.finish("organization")?;
    actor.check_if_match(&current)?;
    let (name, currency, timezone, week) = (
        ok.get(name)?,
        ok.get(currency)?,
        ok.get(timezone)?,
        ok.get(week)?,
    );
    let mut tx = events::begin_write(db).await?;
    Sql::new(
        "UPDATE organizations SET name = ?, currency = ?, timezone = ?, week_starts_on = ?, updated_at = ? WHERE id = ?",
    )
    .arg(name)
    .arg(currency)
    .arg(timezone)
    .arg(week)
    .arg(now_ms())
    .arg(actor.org_id())
    .execute(&mut tx)
    .await?;
    let row = Sql::new("SELECT * FROM organizations WHERE id = ?")
        .arg(actor.org_id())
        .fetch_one(&mut tx)
        .await?;
    let updated = Organization::from_row(&row)?;
    crate::access::idempotency::record(
        &mut tx,
        actor,
        crate::access::idempotency::Answer::Changed,
        &updated,
    )
    .await?;
    tx.commit().await?;
    Ok(updated)
}

/// What an operator gives to create an organization.
pub struct NewOrganization<'a> {
    pub name: &'a str,
    pub plan: Plan,
    pub currency: &'a str,
    pub timezone: &'a str,
}

/// Creates an organization inside `tx` (operator path: `timix bootstrap`).
pub async fn insert(tx: &mut Tx, new: NewOrganization<'_>) -> Result<String> {
    let id = ids::new_id(ids::ORGANIZATION);
    let name = check_name("org", new.name).map_err(|e| Error::Validation(vec![e]))?;
    let currency =
        parse_currency("currency", new.currency).map_err(|e| Error::Validation(vec![e]))?;
    let timezone = check_timezone(new.timezone).map_err(|e| Error::Validation(vec![e]))?;
    let now = now_ms();
    Sql::new(
        "INSERT INTO organizations (id, name, plan, billing_state, currency, timezone, week_starts_on, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .arg(&id)
    .arg(name)
    .arg(new.plan.as_str())
    .arg(BillingState::Active.as_str())
    .arg(currency)
    .arg(timezone)
    .arg("monday")
    .arg(now)
    .arg(now)
    .execute(&mut *tx)
    .await?;
    Ok(id)
}

/// The operator's change of plan or billing state (`timix org update`). Takes effect on the
/// organization's next request.
pub async fn operator_update(
    db: &Db,
    org_id: &str,
    plan: Option<Plan>,
    billing_state: Option<BillingState>,
) -> Result<Organization> {
    let current = find(db, org_id).await?;
    let mut tx = events::begin_write(db).await?;
    Sql::new("UPDATE organizations SET plan = ?, billing_state = ?, updated_at = ? WHERE id = ?")
        .arg(plan.unwrap_or(current.plan).as_str())
        .arg(billing_state.unwrap_or(current.billing_state).as_str())
        .arg(now_ms())
        .arg(org_id)
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    find(db, org_id).await
}
