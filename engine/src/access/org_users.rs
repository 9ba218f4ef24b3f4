//! Org users: the people of an organization, their roles, capacity and rates.

use serde::{Deserialize, Serialize};

use crate::access::auth::{Actor, Permission, Role};
use crate::access::idempotency::{self, Answer};
use crate::billing::time_entries;
use crate::error::{Error, Problems, Result};
use crate::store::checks::{self, SHORT_TEXT};
use crate::store::clock::{format_ms, now_ms};
use crate::store::db::{Db, Sql, Tx, row};
use crate::store::events;
use crate::store::ids;
use crate::store::list::{self, FilterKind, ListParams, ListSpec, Page};
use crate::store::money::{Amount, format_amount, patch_amount};
use crate::store::patch::Patch;
use crate::store::rows;

pub const NOUN: &str = "org_user";

pub const LIST: ListSpec = ListSpec {
    table: "org_users",
    sorts: &[("name", "name"), ("email", "email")],
    filters: &[
        ("email", "email", FilterKind::TextLower),
        ("name", "name", FilterKind::Text),
        ("role", "role", FilterKind::Text),
        ("isActive", "is_active", FilterKind::Bool),
        ("externalId", "external_id", FilterKind::Text),
    ],
    search: Some("name"),
    soft_delete: true,
};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrgUser {
    /// `usr_…`
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub is_active: bool,
    pub weekly_capacity_hours: Option<f64>,
    /// In the organization's currency.
    pub cost_rate: Option<String>,
    pub billable_rate: Option<String>,
    pub currency: String,
    pub holiday_profile_id: Option<String>,
    pub external_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The body of `POST` and `PATCH`. On create `email` and `name` are required; `role` defaults
/// to `member`. Nobody grants a role above their own. Rates are in the organization's
/// currency: decimal strings with at most two decimals (none for a currency without minor
/// units, such as JPY).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrgUserInput {
    /// One `@`, and a domain with a dot inside it; stored in lower case.
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 200,
             pattern = r"^[^@\s\u0000\u0085]+@[^@\s\u0000\u0085.][^@\s\u0000\u0085]*\.[^@\s\u0000\u0085]*[^@\s\u0000\u0085.]$",
             example = "ada@example.com")]
    pub email: Patch<String>,
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 200,
             pattern = r"^[\s\u0085]*[^\s\u0000\u0085][^\u0000]*$", example = "Ada Lovelace")]
    pub name: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Role)]
    pub role: Patch<String>,
    #[serde(default)]
    #[schema(value_type = bool)]
    pub is_active: Patch<bool>,
    #[serde(default)]
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 168)]
    pub weekly_capacity_hours: Patch<f64>,
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{1,13}(\.[0-9]{1,2}0*)?$")]
    pub cost_rate: Patch<Amount>,
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{1,13}(\.[0-9]{1,2}0*)?$")]
    pub billable_rate: Patch<Amount>,
    /// A holiday profile (`hol_…`) of the organization.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub holiday_profile_id: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 200, pattern = r"^[^\u0000]*$")]
    pub external_id: Patch<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct Record {
    email: String,
    name: String,
    role: Role,
    is_active: bool,
    weekly_capacity_seconds: Option<i64>,
    cost_rate: Option<i64>,
    billable_rate: Option<i64>,
    holiday_profile_id: Option<String>,
    external_id: Option<String>,
}

impl Record {
    fn from_row(r: &row::Row) -> Result<Self> {
        let role = row::get_str(r, "role")?;
        Ok(Self {
            email: row::get_str(r, "email")?,
            name: row::get_str(r, "name")?,
            role: Role::parse(&role)
                .ok_or_else(|| Error::Internal(format!("stored role {role}")))?,
            is_active: row::get_bool(r, "is_active")?,
            weekly_capacity_seconds: row::get_opt_i64(r, "weekly_capacity_seconds")?,
            cost_rate: row::get_opt_i64(r, "cost_rate")?,
            billable_rate: row::get_opt_i64(r, "billable_rate")?,
            holiday_profile_id: row::get_opt_str(r, "holiday_profile_id")?,
            external_id: row::get_opt_str(r, "external_id")?,
        })
    }

    fn apply(input: OrgUserInput, current: Option<&Record>, currency: &str) -> Result<Self> {
        let mut p = Problems::default();
        let cur = |f: fn(&Record) -> Option<String>| current.and_then(f);
        let email =
            checks::patch_required(&mut p, "email", input.email, cur(|c| Some(c.email.clone())));
        let email = match email.map(|e| p.take(checks::opt_email("email", Some(e)))) {
            Some(Some(Some(e))) => Some(e),
            // Malformed: already recorded.
            Some(None) => None,
            // Blank, or absent from a create: a user cannot be without one.
            Some(Some(None)) | None if !p.has("email") => {
                p.add("email", "required", "email is required");
                None
            }
            _ => None,
        };
        let name =
            checks::patch_required(&mut p, "name", input.name, cur(|c| Some(c.name.clone())));
        let name = p.take(checks::required_text("name", name, SHORT_TEXT));
        let role = checks::patch_required(
            &mut p,
            "role",
            input.role,
            Some(current.map_or("member".to_owned(), |c| c.role.as_str().to_owned())),
        )
        .and_then(|r| {
            let parsed = Role::parse(&r);
            if parsed.is_none() {
                p.add(
                    "role",
                    "invalid",
                    "role must be one of owner, admin, manager, member, viewer",
                );
            }
            parsed
        });
        let is_active = checks::patch_required(
            &mut p,
            "isActive",
            input.is_active,
            Some(current.is_none_or(|c| c.is_active)),
        );
        let weekly_capacity_seconds = match input.weekly_capacity_hours {
            Patch::Absent => Some(current.and_then(|c| c.weekly_capacity_seconds)),
            Patch::Null => Some(None),
            Patch::Value(h) if h > 168.0 => {
                p.add(
                    "weeklyCapacityHours",
                    "invalid",
                    "weeklyCapacityHours must be from 0 to 168",
                );
                None
            }
            Patch::Value(h) => p.take(checks::opt_hours("weeklyCapacityHours", Some(h))),
        };
        let cost_rate = p.take(patch_amount(
            "costRate",
            input.cost_rate,
            current.and_then(|c| c.cost_rate),
            currency,
            currency,
        ));
        let billable_rate = p.take(patch_amount(
            "billableRate",
            input.billable_rate,
            current.and_then(|c| c.billable_rate),
            currency,
            currency,
        ));
        let external_id = p.take(checks::opt_text(
            "externalId",
            input.external_id.apply(cur(|c| c.external_id.clone())),
            SHORT_TEXT,
        ));
        let ok = p.finish("user")?;
        Ok(Record {
            email: ok.get(email)?,
            name: ok.get(name)?,
            role: ok.get(role)?,
            is_active: ok.get(is_active)?,
            weekly_capacity_seconds: ok.get(weekly_capacity_seconds)?,
            cost_rate: ok.get(cost_rate)?,
            billable_rate: ok.get(billable_rate)?,
            holiday_profile_id: input
                .holiday_profile_id
                .apply(cur(|c| c.holiday_profile_id.clone())),
            external_id: ok.get(external_id)?,
        })
    }
}

fn from_row_in(r: &row::Row, currency: &str) -> Result<OrgUser> {
    let rec = Record::from_row(r)?;
    Ok(OrgUser {
        id: row::get_str(r, "id")?,
        cost_rate: rec.cost_rate.map(|m| format_amount(m, currency)),
        billable_rate: rec.billable_rate.map(|m| format_amount(m, currency)),
        currency: currency.to_owned(),
        weekly_capacity_hours: checks::hours(rec.weekly_capacity_seconds),
        email: rec.email,
        name: rec.name,
        role: rec.role,
        is_active: rec.is_active,
        holiday_profile_id: rec.holiday_profile_id,
        external_id: rec.external_id,
        created_at: format_ms(row::get_i64(r, "created_at")?),
        updated_at: format_ms(row::get_i64(r, "updated_at")?),
    })
}

pub async fn list(db: &Db, actor: &Actor, params: &ListParams) -> Result<Page<OrgUser>> {
    actor.require(Permission::ReadAll)?;
    let currency = actor.organization.currency.clone();
    list::list(db, actor.org_id(), &LIST, params, |r| {
        from_row_in(r, &currency)
    })
    .await
}

pub async fn get(db: &Db, actor: &Actor, id: &str) -> Result<OrgUser> {
    actor.require(Permission::ReadAll)?;
    let row = rows::live_row(db, LIST.table, actor.org_id(), id)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    from_row_in(&row, &actor.organization.currency)
}

fn check_grant(actor: &Actor, role: Role) -> Result<()> {
    if role > actor.role {
        return Err(Error::forbidden(format!(
            "a {} cannot give the {} role",
            actor.role.as_str(),
            role.as_str()
        )));
    }
    Ok(())
}

pub async fn create(db: &Db, actor: &Actor, input: OrgUserInput) -> Result<OrgUser> {
    actor.require(Permission::WriteOrgUsers)?;
    let rec = Record::apply(input, None, &actor.organization.currency)?;
    check_grant(actor, rec.role)?;
    let mut tx = events::begin_write(db).await?;
    check_holiday_profile(&mut tx, actor.org_id(), rec.holiday_profile_id.as_deref()).await?;
    let id = insert(&mut tx, actor.org_id(), &rec, None).await?;
    let user = reload(&mut tx, &id, &actor.organization.currency).await?;
    events::created(&mut tx, actor.org_id(), NOUN, &id, &user).await?;
    idempotency::record(&mut tx, actor, Answer::Created, &user).await?;
    tx.commit().await?;
    Ok(user)
}

async fn insert(
    tx: &mut Tx,
    org_id: &str,
    rec: &Record,
    password_hash: Option<String>,
) -> Result<String> {
    let id = ids::new_id(ids::USER);
    let now = now_ms();
    Sql::new(
        "INSERT INTO org_users (id, org_id, email, name, role, is_active, weekly_capacity_seconds, cost_rate, \
         billable_rate, holiday_profile_id, password_hash, external_id, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .arg(&id)
    .arg(org_id)
    .arg(&rec.email)
    .arg(&rec.name)
    .arg(rec.role.as_str())
    .arg(rec.is_active)
    .arg(rec.weekly_capacity_seconds)
    .arg(rec.cost_rate)
    .arg(rec.billable_rate)
    .arg(&rec.holiday_profile_id)
    .arg(password_hash)
    .arg(&rec.external_id)
    .arg(now)
    .arg(now)
    .execute(&mut *tx)
    .await
    .map_err(|e| rows::external_id_conflict(e, "user"))?;
    Ok(id)
}

async fn reload(tx: &mut Tx, id: &str, currency: &str) -> Result<OrgUser> {
    let row = Sql::new("SELECT * FROM org_users WHERE id = ?")
        .arg(id)
        .fetch_one(&mut *tx)
        .await?;
    from_row_in(&row, currency)
}

/// Whether removing `user_id` from the active owners would leave the organization without one.
async fn is_last_owner(tx: &mut Tx, org_id: &str, user_id: &str) -> Result<bool> {
    let row = Sql::new(
        "SELECT COUNT(*) FROM org_users WHERE org_id = ? AND role = 'owner' AND is_active = 1 \
         AND deleted_at IS NULL AND id <> ?",
    )
    .arg(org_id)
    .arg(user_id)
    .fetch_one(&mut *tx)
    .await?;
    Ok(row::get_i64(&row, 0)? == 0)
}

pub async fn update(db: &Db, actor: &Actor, id: &str, input: OrgUserInput) -> Result<OrgUser> {
    actor.require(Permission::WriteOrgUsers)?;
    let currency = actor.organization.currency.clone();
    let mut tx = events::begin_write(db).await?;
    let row = rows::live_row(&mut tx, LIST.table, actor.org_id(), id)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    let before = from_row_in(&row, &currency)?;
    if before.role > actor.role {
        return Err(Error::forbidden(format!(
            "a {} cannot change an {}",
            actor.role.as_str(),
            before.role.as_str()
        )));
    }
    actor.check_if_match(&before)?;
    let profile_patched = !input.holiday_profile_id.is_absent();
    let current = Record::from_row(&row)?;
    let rec = Record::apply(input, Some(&current), &currency)?;
    if rec == current {
        return Ok(before);
    }
    check_grant(actor, rec.role)?;
    if before.role == Role::Owner
        && before.is_active
        && (rec.role != Role::Owner || !rec.is_active)
        && is_last_owner(&mut tx, actor.org_id(), id).await?
    {
        return Err(Error::conflict(
            "the organization needs at least one active owner",
        ));
    }
    if profile_patched {
        check_holiday_profile(&mut tx, actor.org_id(), rec.holiday_profile_id.as_deref()).await?;
    }
    Sql::new(
        "UPDATE org_users SET email = ?, name = ?, role = ?, is_active = ?, weekly_capacity_seconds = ?, \
         cost_rate = ?, billable_rate = ?, holiday_profile_id = ?, external_id = ?, updated_at = ? WHERE id = ?",
    )
    .arg(rec.email)
    .arg(rec.name)
    .arg(rec.role.as_str())
    .arg(rec.is_active)
    .arg(rec.weekly_capacity_seconds)
    .arg(rec.cost_rate)
    .arg(rec.billable_rate)
    .arg(rec.holiday_profile_id)
    .arg(rec.external_id)
    .arg(now_ms())
    .arg(id)
    .execute(&mut tx)
    .await
    .map_err(|e| rows::external_id_conflict(e, "user"))?;
    let after = reload(&mut tx, id, &currency).await?;
    events::updated(&mut tx, actor.org_id(), NOUN, id, (&before, &after)).await?;
    if before.billable_rate != after.billable_rate {
        time_entries::reprice(&mut tx, actor.org_id(), "user_id", id).await?;
    }
    idempotency::record(&mut tx, actor, Answer::Changed, &after).await?;
    tx.commit().await?;
    Ok(after)
}

/// Removes a user; their API keys stop working on the next request.
pub async fn delete(db: &Db, actor: &Actor, id: &str) -> Result<()> {
    actor.require(Permission::WriteOrgUsers)?;
    let mut tx = events::begin_write(db).await?;
    let row = rows::live_row(&mut tx, LIST.table, actor.org_id(), id)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    let last = from_row_in(&row, &actor.organization.currency)?;
    if last.role > actor.role {
        return Err(Error::forbidden(format!(
            "a {} cannot remove an {}",
            actor.role.as_str(),
            last.role.as_str()
        )));
    }
    if last.role == Role::Owner && is_last_owner(&mut tx, actor.org_id(), id).await? {
        return Err(Error::conflict(
            "the organization needs at least one active owner",
        ));
    }
    let now = now_ms();
    rows::soft_delete(&mut tx, LIST.table, id, now).await?;
    Sql::new("UPDATE api_keys SET revoked_at = ?, updated_at = ? WHERE user_id = ? AND revoked_at IS NULL")
        .arg(now)
        .arg(now)
        .arg(id)
        .execute(&mut tx)
        .await?;
    events::deleted(&mut tx, actor.org_id(), NOUN, id, &last).await?;
    tx.commit().await
}

/// An assignee must be a live, active user of the organization.
pub(crate) async fn check_assignee(tx: &mut Tx, org_id: &str, user_id: Option<&str>) -> Result<()> {
    let Some(user_id) = user_id else {
        return Ok(());
    };
    let row = rows::live_row(&mut *tx, LIST.table, org_id, user_id).await?;
    match row {
        Some(r) if row::get_bool(&r, "is_active")? => Ok(()),
        Some(_) => Err(Error::validation(
            "assigneeId",
            "inactive",
            "assigneeId names a deactivated user",
        )),
        None => Err(Error::validation(
            "assigneeId",
            "not_found",
            "assigneeId does not name a user of this organization",
        )),
    }
}

async fn check_holiday_profile(tx: &mut Tx, org_id: &str, id: Option<&str>) -> Result<()> {
    let Some(id) = id else { return Ok(()) };
    match rows::live_row(&mut *tx, "holiday_profiles", org_id, id).await? {
        Some(_) => Ok(()),
        None => Err(Error::validation(
            "holidayProfileId",
            "not_found",
            "holidayProfileId does not name a holiday profile of this organization",
        )),
    }
}

/// What an operator gives to create a user (`timix bootstrap`).
pub struct NewUser<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub role: Role,
    pub password_hash: Option<String>,
}

/// Creates a user inside `tx` without an acting user (operator path), logging `org_user.created`.
pub async fn insert_operator(
    tx: &mut Tx,
    org_id: &str,
    currency: &str,
    new: NewUser<'_>,
) -> Result<String> {
    let input = OrgUserInput {
        email: Patch::Value(new.email.to_owned()),
        name: Patch::Value(new.name.to_owned()),
        role: Patch::Value(new.role.as_str().to_owned()),
        ..Default::default()
    };
    let rec = Record::apply(input, None, currency)?;
    let id = insert(tx, org_id, &rec, new.password_hash).await?;
    let user = reload(tx, &id, currency).await?;
    events::created(tx, org_id, NOUN, &id, &user).await?;
    Ok(id)
}

/// Hashes a password for storage (argon2id, random salt).
pub fn hash_password(password: &str) -> Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    if password.chars().count() < 8 {
        return Err(Error::validation(
            "password",
            "too_short",
            "password must be at least 8 characters",
        ));
    }
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| Error::Internal(format!("cannot encode salt: {e}")))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("cannot hash password: {e}")))
}
