//! Customers: the top of the work hierarchy.

use serde::{Deserialize, Serialize};

use crate::access::auth::{Actor, Permission};
use crate::billing::time_entries;
use crate::error::{Error, Problems, Result};
use crate::store::checks::{self, LONG_TEXT, SHORT_TEXT};
use crate::store::clock::{format_ms, now_ms};
use crate::store::db::{Sql, Tx, row};
use crate::store::events;
use crate::store::ids;
use crate::store::list::{FilterKind, ListSpec};
use crate::store::money::{Amount, format_amount, parse_currency, patch_amount};
use crate::store::patch::Patch;
use crate::store::resource::{self, Resource};
use crate::store::rows;

pub const NOUN: &str = "customer";

pub const LIST: ListSpec = ListSpec {
    table: "customers",
    sorts: &[("name", "name")],
    filters: &[
        ("name", "name", FilterKind::Text),
        ("email", "email", FilterKind::TextLower),
        ("externalId", "external_id", FilterKind::Text),
        ("isArchived", "is_archived", FilterKind::Bool),
    ],
    search: Some("name"),
    soft_delete: true,
};

/// The shared operations ([`resource`]) for this resource.
pub struct Customers;

impl Resource for Customers {
    type Item = Customer;
    type Input = CustomerInput;
    const NOUN: &'static str = NOUN;
    const LIST: ListSpec = LIST;
    const WRITE: Permission = Permission::WriteCustomers;
    const CHILDREN: &'static [(&'static str, &'static str, &'static str)] = &[
        ("projects", "customer_id", "project(s)"),
        ("invoices", "customer_id", "invoice(s)"),
    ];

    fn decode(_actor: &Actor, row: &row::Row) -> Result<Customer> {
        from_row(row)
    }

    fn external_id(input: &mut CustomerInput) -> &mut Patch<String> {
        &mut input.external_id
    }

    async fn insert(tx: &mut Tx, actor: &Actor, input: CustomerInput) -> Result<Customer> {
        insert(tx, actor, input).await
    }

    async fn update(
        tx: &mut Tx,
        actor: &Actor,
        row: &row::Row,
        input: CustomerInput,
    ) -> Result<Customer> {
        apply_update(tx, actor, row, input).await
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    /// `cus_…`
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    /// ISO 4217; defaults to the organization's currency.
    pub currency: String,
    /// Decimal string in `currency`, e.g. `"125.00"`.
    pub hourly_rate: Option<String>,
    pub notes: Option<String>,
    /// Your own id for this customer, unique in the organization.
    pub external_id: Option<String>,
    pub is_archived: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// The body of `POST`, `PATCH` and `PUT /by-external-id`. On create `name` is required; on
/// update every field is optional and `null` clears an optional field. Texts are trimmed; a
/// blank optional text means none.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomerInput {
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 200,
             pattern = r"^[\s\u0085]*[^\s\u0000\u0085][^\u0000]*$", example = "Acme Corp")]
    pub name: Patch<String>,
    /// One `@`, and a domain with a dot inside it; stored in lower case.
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 200,
             pattern = r"^[^@\s\u0000\u0085]+@[^@\s\u0000\u0085.][^@\s\u0000\u0085]*\.[^@\s\u0000\u0085]*[^@\s\u0000\u0085.]$",
             example = "billing@acme.example")]
    pub email: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 200, pattern = r"^[^\u0000]*$")]
    pub phone: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 10000, pattern = r"^[^\u0000]*$")]
    pub address: Patch<String>,
    /// ISO 4217; defaults to the organization's currency. It cannot change once the customer
    /// has projects or invoices.
    #[serde(default)]
    #[schema(value_type = String, pattern = "^[A-Z]{3}$", example = "EUR")]
    pub currency: Patch<String>,
    /// A decimal string in `currency` with at most two decimals (none for a currency without
    /// minor units, such as JPY).
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{1,13}(\.[0-9]{1,2}0*)?$", example = "125.00")]
    pub hourly_rate: Patch<Amount>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 10000, pattern = r"^[^\u0000]*$")]
    pub notes: Patch<String>,
    /// Your own id for this customer, unique in the organization.
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 200, pattern = r"^[^\u0000]*$")]
    pub external_id: Patch<String>,
    #[serde(default)]
    #[schema(value_type = bool)]
    pub is_archived: Patch<bool>,
}

/// A customer as stored.
#[derive(Debug, Clone, PartialEq)]
struct Record {
    name: String,
    email: Option<String>,
    phone: Option<String>,
    address: Option<String>,
    currency: String,
    hourly_rate: Option<i64>,
    notes: Option<String>,
    external_id: Option<String>,
    is_archived: bool,
}

impl Record {
    fn from_row(r: &row::Row) -> Result<Self> {
        Ok(Self {
            name: row::get_str(r, "name")?,
            email: row::get_opt_str(r, "email")?,
            phone: row::get_opt_str(r, "phone")?,
            address: row::get_opt_str(r, "address")?,
            currency: row::get_str(r, "currency")?,
            hourly_rate: row::get_opt_i64(r, "hourly_rate")?,
            notes: row::get_opt_str(r, "notes")?,
            external_id: row::get_opt_str(r, "external_id")?,
            is_archived: row::get_bool(r, "is_archived")?,
        })
    }

    /// The record after `input`, checked. `current` is `None` on create.
    fn apply(
        input: CustomerInput,
        current: Option<&Record>,
        default_currency: &str,
    ) -> Result<Self> {
        let mut p = Problems::default();
        let cur = |f: fn(&Record) -> Option<String>| current.and_then(f);
        let name =
            checks::patch_required(&mut p, "name", input.name, cur(|c| Some(c.name.clone())));
        let name = p.take(checks::required_text("name", name, SHORT_TEXT));
        let email = p.take(checks::opt_email(
            "email",
            input.email.apply(cur(|c| c.email.clone())),
        ));
        let phone = p.take(checks::opt_text(
            "phone",
            input.phone.apply(cur(|c| c.phone.clone())),
            SHORT_TEXT,
        ));
        let address = p.take(checks::opt_text(
            "address",
            input.address.apply(cur(|c| c.address.clone())),
            LONG_TEXT,
        ));
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
        let old_currency = current.map_or(default_currency, |c| &c.currency).to_owned();
        let currency = checks::patch_required(
            &mut p,
            "currency",
            input.currency,
            Some(old_currency.clone()),
        )
        .and_then(|c| p.take(parse_currency("currency", &c)));
        let hourly_rate = currency.as_ref().and_then(|new| {
            p.take(patch_amount(
                "hourlyRate",
                input.hourly_rate,
                current.and_then(|c| c.hourly_rate),
                &old_currency,
                new,
            ))
        });
        let is_archived = checks::patch_required(
            &mut p,
            "isArchived",
            input.is_archived,
            Some(current.is_some_and(|c| c.is_archived)),
        );
        let ok = p.finish("customer")?;
        Ok(Record {
            name: ok.get(name)?,
            email: ok.get(email)?,
            phone: ok.get(phone)?,
            address: ok.get(address)?,
            currency: ok.get(currency)?,
            hourly_rate: ok.get(hourly_rate)?,
            notes: ok.get(notes)?,
            external_id: ok.get(external_id)?,
            is_archived: ok.get(is_archived)?,
        })
    }
}

pub(crate) fn from_row(r: &row::Row) -> Result<Customer> {
    let rec = Record::from_row(r)?;
    Ok(Customer {
        id: row::get_str(r, "id")?,
        hourly_rate: rec.hourly_rate.map(|m| format_amount(m, &rec.currency)),
        name: rec.name,
        email: rec.email,
        phone: rec.phone,
        address: rec.address,
        currency: rec.currency,
        notes: rec.notes,
        external_id: rec.external_id,
        is_archived: rec.is_archived,
        created_at: format_ms(row::get_i64(r, "created_at")?),
        updated_at: format_ms(row::get_i64(r, "updated_at")?),
    })
}

async fn insert(tx: &mut Tx, actor: &Actor, input: CustomerInput) -> Result<Customer> {
    let rec = Record::apply(input, None, &actor.organization.currency)?;
    let id = ids::new_id(ids::CUSTOMER);
    let now = now_ms();
    Sql::new(
        "INSERT INTO customers (id, org_id, name, email, phone, address, currency, hourly_rate, notes, \
         external_id, is_archived, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .arg(&id)
    .arg(actor.org_id())
    .arg(rec.name)
    .arg(rec.email)
    .arg(rec.phone)
    .arg(rec.address)
    .arg(rec.currency)
    .arg(rec.hourly_rate)
    .arg(rec.notes)
    .arg(rec.external_id)
    .arg(rec.is_archived)
    .arg(now)
    .arg(now)
    .execute(&mut *tx)
    .await
    .map_err(|e| rows::external_id_conflict(e, NOUN))?;
    let customer = resource::reload::<Customers>(tx, actor, &id).await?;
    events::created(tx, actor.org_id(), NOUN, &id, &customer).await?;
    Ok(customer)
}

async fn apply_update(
    tx: &mut Tx,
    actor: &Actor,
    row: &row::Row,
    input: CustomerInput,
) -> Result<Customer> {
    let before = from_row(row)?;
    let current = Record::from_row(row)?;
    let rec = Record::apply(input, Some(&current), &actor.organization.currency)?;
    if rec == current {
        // Nothing changes: no write, no event, `updatedAt` stays.
        return Ok(before);
    }
    if rec.currency != current.currency {
        // Projects, their time and invoices keep the currency they were made in.
        for (table, what) in [("projects", "projects"), ("invoices", "invoices")] {
            if rows::count_live_children(&mut *tx, table, "customer_id", &before.id).await? > 0 {
                return Err(Error::validation(
                    "currency",
                    "in_use",
                    format!(
                        "the customer has {what} in {}: its currency cannot change",
                        current.currency
                    ),
                ));
            }
        }
    }
    Sql::new(
        "UPDATE customers SET name = ?, email = ?, phone = ?, address = ?, currency = ?, hourly_rate = ?, \
         notes = ?, external_id = ?, is_archived = ?, updated_at = ? WHERE id = ?",
    )
    .arg(rec.name)
    .arg(rec.email)
    .arg(rec.phone)
    .arg(rec.address)
    .arg(rec.currency)
    .arg(rec.hourly_rate)
    .arg(rec.notes)
    .arg(rec.external_id)
    .arg(rec.is_archived)
    .arg(now_ms())
    .arg(&before.id)
    .execute(&mut *tx)
    .await
    .map_err(|e| rows::external_id_conflict(e, NOUN))?;
    let after = resource::reload::<Customers>(tx, actor, &before.id).await?;
    events::updated(tx, actor.org_id(), NOUN, &before.id, (&before, &after)).await?;
    if before.hourly_rate != after.hourly_rate {
        time_entries::reprice(tx, actor.org_id(), "customer_id", &before.id).await?;
    }
    Ok(after)
}

/// The parent check used by projects: a live, not archived customer of the organization.
pub(crate) async fn parent(tx: &mut Tx, org_id: &str, id: &str, field: &str) -> Result<Customer> {
    let row = rows::live_row(&mut *tx, LIST.table, org_id, id)
        .await?
        .ok_or_else(|| {
            Error::validation(
                field,
                "not_found",
                format!("{field} does not name a customer of this organization"),
            )
        })?;
    let customer = from_row(&row)?;
    if customer.is_archived {
        return Err(Error::validation(
            field,
            "archived",
            format!("{field} names an archived customer"),
        ));
    }
    Ok(customer)
}
