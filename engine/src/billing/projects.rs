//! Projects: work for one customer, billed hourly, at a fixed fee, or not at all.

use serde::{Deserialize, Serialize};

use crate::access::auth::{Actor, Permission};
use crate::billing::customers;
use crate::billing::time_entries;
use crate::error::{Error, FieldError, Problems, Result};
use crate::store::checks::{self, LONG_TEXT, SHORT_TEXT};
use crate::store::clock::{format_ms, now_ms, parse_date_field};
use crate::store::db::{Sql, Tx, row};
use crate::store::events;
use crate::store::ids;
use crate::store::list::{FilterKind, ListSpec};
use crate::store::money::{Amount, format_amount, patch_amount};
use crate::store::patch::Patch;
use crate::store::resource::{self, Resource};
use crate::store::rows;

pub const NOUN: &str = "project";
pub const BILLING_METHODS: [&str; 3] = ["hourly", "fixed_fee", "non_billable"];

pub const LIST: ListSpec = ListSpec {
    table: "projects",
    sorts: &[("name", "name")],
    filters: &[
        ("customerId", "customer_id", FilterKind::Text),
        ("name", "name", FilterKind::Text),
        ("code", "code", FilterKind::Text),
        ("externalId", "external_id", FilterKind::Text),
        ("billingMethod", "billing_method", FilterKind::Text),
        ("isArchived", "is_archived", FilterKind::Bool),
    ],
    search: Some("name"),
    soft_delete: true,
};

/// The shared operations ([`resource`]) for this resource.
pub struct Projects;

impl Resource for Projects {
    type Item = Project;
    type Input = ProjectInput;
    const NOUN: &'static str = NOUN;
    const LIST: ListSpec = LIST;
    const WRITE: Permission = Permission::WriteProjects;
    const CHILDREN: &'static [(&'static str, &'static str, &'static str)] =
        &[("tasks", "project_id", "task(s)")];

    fn decode(_actor: &Actor, row: &row::Row) -> Result<Project> {
        from_row(row)
    }

    fn external_id(input: &mut ProjectInput) -> &mut Patch<String> {
        &mut input.external_id
    }

    async fn insert(tx: &mut Tx, actor: &Actor, input: ProjectInput) -> Result<Project> {
        insert(tx, actor, input).await
    }

    async fn update(
        tx: &mut Tx,
        actor: &Actor,
        row: &row::Row,
        input: ProjectInput,
    ) -> Result<Project> {
        apply_update(tx, actor, row, input).await
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    /// `prj_…`
    pub id: String,
    pub customer_id: String,
    pub name: String,
    pub code: Option<String>,
    /// `hourly`, `fixed_fee` or `non_billable`.
    pub billing_method: String,
    /// The customer's currency when the project was created; all amounts below are in it.
    pub currency: String,
    pub hourly_rate: Option<String>,
    pub fixed_fee: Option<String>,
    pub budget_hours: Option<f64>,
    pub budget_amount: Option<String>,
    /// `YYYY-MM-DD`
    pub starts_on: Option<String>,
    pub ends_on: Option<String>,
    pub notes: Option<String>,
    pub external_id: Option<String>,
    pub is_archived: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// The body of `POST`, `PATCH` and `PUT /by-external-id`. On create `customerId` and `name` are
/// required; `billingMethod` defaults to `hourly`, and `fixed_fee` needs `fixedFee`. Amounts
/// are in the customer's currency: decimal strings with at most two decimals (none for a
/// currency without minor units, such as JPY).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectInput {
    /// A live, not archived customer (`cus_…`) of the organization.
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    pub customer_id: Patch<String>,
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 200,
             pattern = r"^[\s\u0085]*[^\s\u0000\u0085][^\u0000]*$", example = "Website relaunch")]
    pub name: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 200, pattern = r"^[^\u0000]*$")]
    pub code: Patch<String>,
    #[serde(default)]
    #[schema(value_type = BillingMethod)]
    pub billing_method: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{1,13}(\.[0-9]{1,2}0*)?$", example = "110.00")]
    pub hourly_rate: Patch<Amount>,
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{1,13}(\.[0-9]{1,2}0*)?$")]
    pub fixed_fee: Patch<Amount>,
    #[serde(default)]
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 1000000)]
    pub budget_hours: Patch<f64>,
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{1,13}(\.[0-9]{1,2}0*)?$")]
    pub budget_amount: Patch<Amount>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date, example = "2026-01-01")]
    pub starts_on: Patch<String>,
    /// Not before `startsOn`.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub ends_on: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 10000, pattern = r"^[^\u0000]*$")]
    pub notes: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 200, pattern = r"^[^\u0000]*$")]
    pub external_id: Patch<String>,
    #[serde(default)]
    #[schema(value_type = bool)]
    pub is_archived: Patch<bool>,
}

/// The schema of a project's `billingMethod`: one of [`BILLING_METHODS`].
pub struct BillingMethod;

impl utoipa::PartialSchema for BillingMethod {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        checks::one_of_schema(
            "How the project is billed; `hourly` unless said.",
            BILLING_METHODS,
        )
    }
}

impl utoipa::ToSchema for BillingMethod {}

#[derive(Debug, Clone, PartialEq)]
struct Record {
    customer_id: String,
    name: String,
    code: Option<String>,
    billing_method: String,
    currency: String,
    hourly_rate: Option<i64>,
    fixed_fee: Option<i64>,
    budget_seconds: Option<i64>,
    budget_amount: Option<i64>,
    starts_on: Option<String>,
    ends_on: Option<String>,
    notes: Option<String>,
    external_id: Option<String>,
    is_archived: bool,
}

impl Record {
    fn from_row(r: &row::Row) -> Result<Self> {
        Ok(Self {
            customer_id: row::get_str(r, "customer_id")?,
            name: row::get_str(r, "name")?,
            code: row::get_opt_str(r, "code")?,
            billing_method: row::get_str(r, "billing_method")?,
            currency: row::get_str(r, "currency")?,
            hourly_rate: row::get_opt_i64(r, "hourly_rate")?,
            fixed_fee: row::get_opt_i64(r, "fixed_fee")?,
            budget_seconds: row::get_opt_i64(r, "budget_seconds")?,
            budget_amount: row::get_opt_i64(r, "budget_amount")?,
            starts_on: row::get_opt_str(r, "starts_on")?,
            ends_on: row::get_opt_str(r, "ends_on")?,
            notes: row::get_opt_str(r, "notes")?,
            external_id: row::get_opt_str(r, "external_id")?,
            is_archived: row::get_bool(r, "is_archived")?,
        })
    }

    /// The record after `input`, checked. The parent customer (already resolved) gives the
    /// currency of a new project.
    fn apply(
        input: ProjectInput,
        current: Option<&Record>,
        customer_id: String,
        currency: String,
    ) -> Result<Self> {
        let mut p = Problems::default();
        let cur = |f: fn(&Record) -> Option<String>| current.and_then(f);
        let name =
            checks::patch_required(&mut p, "name", input.name, cur(|c| Some(c.name.clone())));
        let name = p.take(checks::required_text("name", name, SHORT_TEXT));
        let code = p.take(checks::opt_text(
            "code",
            input.code.apply(cur(|c| c.code.clone())),
            SHORT_TEXT,
        ));
        let billing_method = checks::patch_required(
            &mut p,
            "billingMethod",
            input.billing_method,
            Some(current.map_or("hourly".to_owned(), |c| c.billing_method.clone())),
        )
        .and_then(|m| p.take(checks::one_of("billingMethod", m, &BILLING_METHODS)));
        let money = |p: &mut Problems, field: &str, patch: Patch<Amount>, old: Option<i64>| {
            p.take(patch_amount(field, patch, old, &currency, &currency))
        };
        let hourly_rate = money(
            &mut p,
            "hourlyRate",
            input.hourly_rate,
            current.and_then(|c| c.hourly_rate),
        );
        let fixed_fee = money(
            &mut p,
            "fixedFee",
            input.fixed_fee,
            current.and_then(|c| c.fixed_fee),
        );
        let budget_amount = money(
            &mut p,
            "budgetAmount",
            input.budget_amount,
            current.and_then(|c| c.budget_amount),
        );
        let budget_seconds = match input.budget_hours {
            Patch::Absent => Some(current.and_then(|c| c.budget_seconds)),
            Patch::Null => Some(None),
            Patch::Value(h) => p.take(checks::opt_hours("budgetHours", Some(h))),
        };
        let date =
            |p: &mut Problems, field: &str, patch: Patch<String>, old: Option<String>| match patch
                .apply(old)
            {
                None => Some(None),
                Some(d) => p.take(parse_date_field(field, &d)).map(Some),
            };
        let starts_on = date(
            &mut p,
            "startsOn",
            input.starts_on,
            cur(|c| c.starts_on.clone()),
        );
        let ends_on = date(&mut p, "endsOn", input.ends_on, cur(|c| c.ends_on.clone()));
        if let (Some(Some(s)), Some(Some(e))) = (&starts_on, &ends_on)
            && e < s
        {
            p.push(FieldError::new(
                "endsOn",
                "invalid",
                "endsOn must not be before startsOn",
            ));
        }
        if billing_method.as_deref() == Some("fixed_fee") && fixed_fee == Some(None) {
            p.push(FieldError::new(
                "fixedFee",
                "required",
                "fixedFee is required when billingMethod is fixed_fee",
            ));
        }
        let notes = p.take(checks::opt_text(
            "notes",
            input.notes.apply(cur(|c| c.notes.clone())),
            LONG_TEXT,
        ));
        let external_id = p.take(checks::opt_text(
            "externalId",
            input.external_id.apply(cur(|c| c.external_id.clone())),
            SHORT_TEXT,
        ));
        let is_archived = checks::patch_required(
            &mut p,
            "isArchived",
            input.is_archived,
            Some(current.is_some_and(|c| c.is_archived)),
        );
        let ok = p.finish("project")?;
        Ok(Record {
            customer_id,
            name: ok.get(name)?,
            code: ok.get(code)?,
            billing_method: ok.get(billing_method)?,
            currency,
            hourly_rate: ok.get(hourly_rate)?,
            fixed_fee: ok.get(fixed_fee)?,
            budget_seconds: ok.get(budget_seconds)?,
            budget_amount: ok.get(budget_amount)?,
            starts_on: ok.get(starts_on)?,
            ends_on: ok.get(ends_on)?,
            notes: ok.get(notes)?,
            external_id: ok.get(external_id)?,
            is_archived: ok.get(is_archived)?,
        })
    }
}

pub(crate) fn from_row(r: &row::Row) -> Result<Project> {
    let rec = Record::from_row(r)?;
    let money = |m: Option<i64>| m.map(|m| format_amount(m, &rec.currency));
    Ok(Project {
        id: row::get_str(r, "id")?,
        hourly_rate: money(rec.hourly_rate),
        fixed_fee: money(rec.fixed_fee),
        budget_amount: money(rec.budget_amount),
        budget_hours: checks::hours(rec.budget_seconds),
        customer_id: rec.customer_id,
        name: rec.name,
        code: rec.code,
        billing_method: rec.billing_method,
        currency: rec.currency,
        starts_on: rec.starts_on,
        ends_on: rec.ends_on,
        notes: rec.notes,
        external_id: rec.external_id,
        is_archived: rec.is_archived,
        created_at: format_ms(row::get_i64(r, "created_at")?),
        updated_at: format_ms(row::get_i64(r, "updated_at")?),
    })
}

async fn insert(tx: &mut Tx, actor: &Actor, mut input: ProjectInput) -> Result<Project> {
    let customer_id = match std::mem::take(&mut input.customer_id) {
        Patch::Value(id) => id,
        _ => {
            // Report every other problem of the body with the missing parent.
            let mut errors = vec![FieldError::required("customerId")];
            if let Err(Error::Validation(more)) =
                Record::apply(input, None, String::new(), "EUR".into())
            {
                errors.extend(more);
            }
            return Err(Error::Validation(errors));
        }
    };
    let customer = customers::parent(tx, actor.org_id(), &customer_id, "customerId").await?;
    let rec = Record::apply(input, None, customer.id, customer.currency)?;
    let id = ids::new_id(ids::PROJECT);
    let now = now_ms();
    Sql::new(
        "INSERT INTO projects (id, org_id, customer_id, name, code, billing_method, currency, hourly_rate, \
         fixed_fee, budget_seconds, budget_amount, starts_on, ends_on, notes, external_id, is_archived, \
         created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .arg(&id)
    .arg(actor.org_id())
    .arg(rec.customer_id)
    .arg(rec.name)
    .arg(rec.code)
    .arg(rec.billing_method)
    .arg(rec.currency)
    .arg(rec.hourly_rate)
    .arg(rec.fixed_fee)
    .arg(rec.budget_seconds)
    .arg(rec.budget_amount)
    .arg(rec.starts_on)
    .arg(rec.ends_on)
    .arg(rec.notes)
    .arg(rec.external_id)
    .arg(rec.is_archived)
    .arg(now)
    .arg(now)
    .execute(&mut *tx)
    .await
    .map_err(|e| rows::external_id_conflict(e, NOUN))?;
    let project = resource::reload::<Projects>(tx, actor, &id).await?;
    events::created(tx, actor.org_id(), NOUN, &id, &project).await?;
    Ok(project)
}

async fn apply_update(
    tx: &mut Tx,
    actor: &Actor,
    row: &row::Row,
    mut input: ProjectInput,
) -> Result<Project> {
    let before = from_row(row)?;
    let current = Record::from_row(row)?;
    let customer_id = match std::mem::take(&mut input.customer_id) {
        Patch::Absent => current.customer_id.clone(),
        Patch::Null => {
            return Err(Error::validation(
                "customerId",
                "required",
                "customerId cannot be null",
            ));
        }
        Patch::Value(id) if id == current.customer_id => id,
        Patch::Value(id) => {
            time_entries::refuse_move(tx, "project_id", &before.id, "project", "customerId")
                .await?;
            let customer = customers::parent(tx, actor.org_id(), &id, "customerId").await?;
            if customer.currency != current.currency {
                return Err(Error::validation(
                    "customerId",
                    "currency_mismatch",
                    format!(
                        "the project's amounts are in {}, the new customer bills in {}",
                        current.currency, customer.currency
                    ),
                ));
            }
            customer.id
        }
    };
    let currency = current.currency.clone();
    let rec = Record::apply(input, Some(&current), customer_id, currency)?;
    if rec == current {
        return Ok(before);
    }
    Sql::new(
        "UPDATE projects SET customer_id = ?, name = ?, code = ?, billing_method = ?, hourly_rate = ?, \
         fixed_fee = ?, budget_seconds = ?, budget_amount = ?, starts_on = ?, ends_on = ?, notes = ?, \
         external_id = ?, is_archived = ?, updated_at = ? WHERE id = ?",
    )
    .arg(rec.customer_id)
    .arg(rec.name)
    .arg(rec.code)
    .arg(rec.billing_method)
    .arg(rec.hourly_rate)
    .arg(rec.fixed_fee)
    .arg(rec.budget_seconds)
    .arg(rec.budget_amount)
    .arg(rec.starts_on)
    .arg(rec.ends_on)
    .arg(rec.notes)
    .arg(rec.external_id)
    .arg(rec.is_archived)
    .arg(now_ms())
    .arg(&before.id)
    .execute(&mut *tx)
    .await
    .map_err(|e| rows::external_id_conflict(e, NOUN))?;
    let after = resource::reload::<Projects>(tx, actor, &before.id).await?;
    events::updated(tx, actor.org_id(), NOUN, &before.id, (&before, &after)).await?;
    if before.hourly_rate != after.hourly_rate || before.billing_method != after.billing_method {
        time_entries::reprice(tx, actor.org_id(), "project_id", &before.id).await?;
    }
    Ok(after)
}

/// The parent check used by tasks: a live, not archived project of the organization.
pub(crate) async fn parent(tx: &mut Tx, org_id: &str, id: &str, field: &str) -> Result<Project> {
    let row = rows::live_row(&mut *tx, LIST.table, org_id, id)
        .await?
        .ok_or_else(|| {
            Error::validation(
                field,
                "not_found",
                format!("{field} does not name a project of this organization"),
            )
        })?;
    let project = from_row(&row)?;
    if project.is_archived {
        return Err(Error::validation(
            field,
            "archived",
            format!("{field} names an archived project"),
        ));
    }
    Ok(project)
}
