//! `list_invoices`: invoices by status, customer (an id or a name), overdue and issue dates, each
//! with its number, customer, amounts, due date and status, and totals per currency. Read
//! through `GET /invoices` as the key's actor, so only roles that read invoices can.

use std::collections::{BTreeMap, BTreeSet};

use rmcp::model::Tool;
use serde::Deserialize;
use serde_json::{Value, json};
use timix_engine::billing::invoices::STATUSES;
use timix_engine::store::clock::format_date;
use timix_engine::store::money::{format_amount, parse_amount};

use super::api::{Api, Failure, with_query};
use super::dates::{Calendar, DAY_WORDS, PERIOD_WORDS, date_bound};
use super::lookup::{self, Kind};
use super::tools::{invalid_arguments, tool};

/// Invoices read per page, and the most pages read: totals cover at most 1,000 invoices.
const PAGE_SIZE: usize = 200;
const MAX_PAGES: usize = 5;

pub fn list_invoices_tool() -> Tool {
    tool(
        "list_invoices",
        "List invoices",
        "Lists invoices, newest first, each with its number, customer (id and name), status (draft, issued, paid, void), issue and due dates, currency, total, amount paid, amount due and whether it is overdue; and totals per currency (amounts in different currencies are never added). Filters: status; customer (an id or a name); overdue: true keeps the issued invoices not fully paid whose due date is before today in the organization's time zone (false keeps all others), so it answers \"which invoices are overdue?\"; from and to bound the issue date. Drafts have no number yet.",
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "status": {"type": "string", "enum": ["draft", "issued", "paid", "void"], "description": "Only invoices of this status; for overdue ones, use overdue."},
                "customer": {"type": "string", "description": "The customer's id, or its name (or a unique part of it)."},
                "overdue": {"type": "boolean", "description": "true: only overdue invoices (issued, not fully paid, due before today); false: only the others."},
                "from": {"type": "string", "description": format!("Issued on or after: {DAY_WORDS}; or {PERIOD_WORDS}.")},
                "to": {"type": "string", "description": "Issued on or before; the same forms as from."}
            }
        }),
        true,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListInvoicesArgs {
    status: Option<String>,
    customer: Option<String>,
    overdue: Option<bool>,
    from: Option<String>,
    to: Option<String>,
}

/// Sums of one currency, in minor units.
#[derive(Default)]
struct Sums {
    count: u64,
    total: i128,
    paid: i128,
    due: i128,
}

pub async fn list_invoices(api: &Api<'_>, args: ListInvoicesArgs) -> Result<Value, Failure> {
    let calendar = Calendar::of(api.actor);
    let from = date_bound(&args.from, "from", |t| calendar.first_day(t))?;
    let to = date_bound(&args.to, "to", |t| calendar.last_day(t))?;
    let (status, overdue) = status_and_overdue(&args)?;
    let customer = lookup::resolve(api, Kind::Customer, args.customer.as_deref(), None).await?;
    let customer_id = customer
        .as_ref()
        .and_then(|c| c["id"].as_str())
        .unwrap_or_default();
    let filters = [
        ("status", status.as_str()),
        ("customerId", customer_id),
        ("overdue", overdue.as_str()),
        ("from", from.as_str()),
        ("to", to.as_str()),
    ];
    let (invoices, total_count) = read_invoices(api, &filters).await?;
    let names = customer_names(api, &invoices).await?;

    let mut sums: BTreeMap<String, Sums> = BTreeMap::new();
    let listed: Vec<Value> = invoices
        .iter()
        .map(|invoice| add_up(invoice, &mut sums))
        .map(|invoice| shown(invoice, &names))
        .collect();
    let mut answer = json!({
        "invoices": listed,
        "count": invoices.len(),
        "totalCount": total_count,
        "totals": totals(sums),
        "today": format_date(calendar.today),
    });
    if (invoices.len() as u64) < total_count {
        answer["message"] = json!(format!(
            "Only the newest {} of {total_count} invoices are listed, and the totals are theirs: narrow the filters for the rest.",
            invoices.len()
        ));
    }
    Ok(answer)
}

/// The `status` and `overdue` query values (empty when left out). "overdue" is not a status,
/// but an assistant may well send it as one.
fn status_and_overdue(args: &ListInvoicesArgs) -> Result<(String, String), Failure> {
    let (status, overdue) = match args.status.as_deref().map(str::trim) {
        Some("overdue") if args.overdue != Some(false) => (String::new(), Some(true)),
        Some(status) if !STATUSES.contains(&status) => {
            return Err(invalid_arguments(vec![(
                "/status".into(),
                format!("status must be one of {}", STATUSES.join(", ")),
            )]));
        }
        status => (status.unwrap_or_default().to_owned(), args.overdue),
    };
    Ok((status, overdue.map(|o| o.to_string()).unwrap_or_default()))
}

/// The newest invoices that pass `filters`, at most [`MAX_PAGES`] pages of them, and how many
/// pass in all.
async fn read_invoices(
    api: &Api<'_>,
    filters: &[(&str, &str)],
) -> Result<(Vec<Value>, u64), Failure> {
    let page_size = PAGE_SIZE.to_string();
    let mut invoices = Vec::new();
    let mut total_count = 0;
    for page in 1..=MAX_PAGES {
        let page = page.to_string();
        let mut query = filters.to_vec();
        query.extend([("pageSize", page_size.as_str()), ("page", page.as_str())]);
        let body = api.get(&with_query("/invoices", &query)).await?;
        total_count = body["totalCount"].as_u64().unwrap_or_default();
        invoices.extend(body["items"].as_array().into_iter().flatten().cloned());
        if body["hasMore"] != true {
            break;
        }
    }
    Ok((invoices, total_count))
}

/// The names of the invoices' customers, by id, from one paged read of `/customers` that stops
/// once every one is named. A customer deleted since is left out (its invoices show no name);
/// a failure of the read is the tool's.
async fn customer_names(
    api: &Api<'_>,
    invoices: &[Value],
) -> Result<BTreeMap<String, Value>, Failure> {
    let mut wanted: BTreeSet<&str> = invoices
        .iter()
        .filter_map(|invoice| invoice["customerId"].as_str())
        .collect();
    let page_size = PAGE_SIZE.to_string();
    let mut names = BTreeMap::new();
    let mut page = 1;
    while !wanted.is_empty() {
        let number = page.to_string();
        let path = with_query(
            "/customers",
            &[
                ("pageSize", &page_size),
                ("page", &number),
                ("sort", "createdAt"),
            ],
        );
        let body = api.get(&path).await?;
        for customer in body["items"].as_array().into_iter().flatten() {
            let id = customer["id"].as_str().unwrap_or_default();
            if wanted.remove(id) {
                names.insert(id.to_owned(), customer["name"].clone());
            }
        }
        if body["hasMore"] != true {
            break;
        }
        page += 1;
    }
    Ok(names)
}

/// Adds `invoice` to its currency's sums; the invoice.
fn add_up<'a>(invoice: &'a Value, sums: &mut BTreeMap<String, Sums>) -> &'a Value {
    let currency = invoice["currency"].as_str().unwrap_or_default();
    let minor = |field: &str| {
        invoice[field]
            .as_str()
            .and_then(|a| parse_amount(field, a, currency).ok())
            .map_or(0, i128::from)
    };
    let sum = sums.entry(currency.to_owned()).or_default();
    sum.count += 1;
    sum.total += minor("total");
    sum.paid += minor("amountPaid");
    sum.due += minor("amountDue");
    invoice
}

/// What the tool shows of an invoice. `isOverdue` is the API's, judged like the `overdue`
/// filter in the organization's time zone.
fn shown(invoice: &Value, names: &BTreeMap<String, Value>) -> Value {
    let customer_id = invoice["customerId"].as_str().unwrap_or_default();
    json!({
        "id": invoice["id"],
        "number": invoice["number"],
        "customer": {"id": customer_id, "name": names.get(customer_id)},
        "status": invoice["status"],
        "issueDate": invoice["issueDate"],
        "dueDate": invoice["dueDate"],
        "currency": invoice["currency"],
        "total": invoice["total"],
        "amountPaid": invoice["amountPaid"],
        "amountDue": invoice["amountDue"],
        "isOverdue": invoice["isOverdue"] == true,
    })
}

/// The sums per currency, as decimal amounts.
fn totals(sums: BTreeMap<String, Sums>) -> Vec<Value> {
    sums.into_iter()
        .map(|(currency, s)| {
            json!({
                "currency": currency,
                "count": s.count,
                "total": format_amount(s.total, &currency),
                "amountPaid": format_amount(s.paid, &currency),
                "amountDue": format_amount(s.due, &currency),
            })
        })
        .collect()
}
