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
use super::dates::{Calendar, DAY_WORDS, PERIOD_WORDS};
use super::lookup::{self, Kind};
use super::tools::{date_bound, invalid_arguments, tool};

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
    let customer = lookup::resolve(api, Kind::Customer, args.customer.as_deref(), None).await?;
    let customer_id = customer
        .as_ref()
        .and_then(|c| c["id"].as_str())
        .unwrap_or_default()
        .to_owned();
    // "overdue" is not a status, but an assistant may well send it as one.
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
    let overdue = overdue.map(|o| o.to_string()).unwrap_or_default();
    let page_size = PAGE_SIZE.to_string();

    let mut invoices = Vec::new();
    let mut total_count = 0;
    for page in 1..=MAX_PAGES {
        let page = page.to_string();
        let path = with_query(
            "/invoices",
            &[
                ("status", &status),
                ("customerId", &customer_id),
                ("overdue", &overdue),
                ("from", &from),
                ("to", &to),
                ("pageSize", &page_size),
                ("page", &page),
            ],
        );
        let body = api.get(&path).await?;
        total_count = body["totalCount"].as_u64().unwrap_or_default();
        invoices.extend(body["items"].as_array().into_iter().flatten().cloned());
        if body["hasMore"] != true {
            break;
        }
    }

    let customer_ids: BTreeSet<&str> = invoices
        .iter()
        .filter_map(|invoice| invoice["customerId"].as_str())
        .collect();
    let mut names = BTreeMap::new();
    for id in customer_ids {
        // A customer deleted since is shown without its name rather than failing the list.
        let name = match api.get(&format!("/customers/{id}")).await {
            Ok(customer) => customer["name"].clone(),
            Err(_) => Value::Null,
        };
        names.insert(id.to_owned(), name);
    }

    let today = format_date(calendar.today);
    let mut sums: BTreeMap<String, Sums> = BTreeMap::new();
    let listed: Vec<Value> = invoices
        .iter()
        .map(|invoice| {
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
            let due = minor("amountDue");
            sum.due += due;
            // Overdue as the `overdue` filter has it, in the organization's time zone.
            let overdue = invoice["status"] == "issued"
                && due > 0
                && invoice["dueDate"]
                    .as_str()
                    .is_some_and(|date| date < today.as_str());
            let customer_id = invoice["customerId"].as_str().unwrap_or_default();
            json!({
                "id": invoice["id"],
                "number": invoice["number"],
                "customer": {"id": customer_id, "name": names.get(customer_id)},
                "status": invoice["status"],
                "issueDate": invoice["issueDate"],
                "dueDate": invoice["dueDate"],
                "currency": currency,
                "total": invoice["total"],
                "amountPaid": invoice["amountPaid"],
                "amountDue": invoice["amountDue"],
                "isOverdue": overdue,
            })
        })
        .collect();
    let totals: Vec<Value> = sums
        .into_iter()
        .map(|(currency, s)| {
            json!({
                "currency": currency,
                "count": s.count,
                "total": format_amount(s.total, &currency),
                "amountPaid": format_amount(s.paid, &currency),
                "amountDue": format_amount(s.due, &currency),
            })
        })
        .collect();
    let mut answer = json!({
        "invoices": listed,
        "count": invoices.len(),
        "totalCount": total_count,
        "totals": totals,
        "today": today,
    });
    if (invoices.len() as u64) < total_count {
        answer["message"] = json!(format!(
            "Only the newest {} of {total_count} invoices are listed, and the totals are theirs: narrow the filters for the rest.",
            invoices.len()
        ));
    }
    Ok(answer)
}
