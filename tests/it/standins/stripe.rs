//! Stripe: a stand-in for the parts of Stripe's API the `stripe` connector uses, and the tests
//! of the connector through timix's API.
//!
//! The stand-in follows Stripe's API reference:
//! - <https://docs.stripe.com/api/authentication>: the secret key as `Authorization: Bearer sk_…`
//!   (or as the Basic user name); none or a wrong one is a 401 `invalid_request_error`.
//! - <https://docs.stripe.com/api/errors>: `{error: {type, code, message, param, doc_url}}`; 400
//!   for a missing, unknown or invalid parameter or an unknown object, 404 for an unknown URL.
//! - <https://docs.stripe.com/api/pagination>: lists are `{object: "list", url, has_more, data}`,
//!   newest first, `limit` 1 to 100 (10 by default), `starting_after` an object's id.
//! - <https://docs.stripe.com/api/payment_intents/list>, <https://docs.stripe.com/api/customers/list>:
//!   the `created[gt|gte|lt|lte]`, `customer` and `email` filters.
//! - <https://docs.stripe.com/api/customers/create>, <https://docs.stripe.com/api/invoiceitems/create>,
//!   <https://docs.stripe.com/api/invoices/create>: form-encoded bodies with nested values in
//!   brackets (`metadata[plan]=pro`); a body of another type is not read. The answer is the
//!   object made. Invoices take the customer's pending items with
//!   `pending_invoice_items_behavior=include` (`exclude` by default).
//! - <https://docs.stripe.com/rate-limits>: a 429 with code `rate_limit`. Stripe's pages do not
//!   promise a `Retry-After`; this stand-in sends one, to check that timix waits as told.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use super::{Call, Calls, eventually, finished_runs, run_action, serve, server};
use crate::harness::{Client, Server};

/// The account's secret key (test mode).
const SECRET: &str = "sk_test_51PqTimixStandInSecretKey4242";
/// When the account's first object was made (2026-01-05T09:00:00Z); each next one a minute later.
const EPOCH: i64 = 1_767_603_600;

/// One Stripe account: its objects, and what it was asked.
#[derive(Clone, Default)]
struct Stripe {
    account: Arc<Mutex<Account>>,
    calls: Calls,
}

#[derive(Default)]
struct Account {
    payment_intents: Vec<Value>,
    customers: Vec<Value>,
    invoice_items: Vec<Value>,
    invoices: Vec<Value>,
    /// Objects made so far: their `created` times count from it.
    made: i64,
    /// 429s still to give before answering, by "METHOD /path".
    throttle: HashMap<String, usize>,
    /// Every answer: "METHOD /path", its status and when it was given.
    answered: Vec<(String, u16, Instant)>,
}

/// A request as the handlers read it: the query's pairs, or the form body's.
struct Incoming {
    method: &'static str,
    path: &'static str,
    query: HashMap<String, String>,
    headers: HeaderMap,
    form: Vec<(String, String)>,
}

impl Stripe {
    /// Checks the key, gives a scripted 429, or answers with `handle`; records the call.
    fn answer(
        &self,
        request: Incoming,
        handle: impl FnOnce(&mut Account, &Incoming) -> Result<Value, Response>,
    ) -> Response {
        let route = format!("{} {}", request.method, request.path);
        let mut account = self.account.lock().unwrap();
        let throttled = account.throttle.get_mut(&route).filter(|n| **n > 0);
        let response = if let Err(refusal) = authorized(&request.headers) {
            refusal
        } else if let Some(left) = throttled {
            *left -= 1;
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"code": "rate_limit", "type": "invalid_request_error",
                       "message": "Request rate limit exceeded. You can learn more about rate limits here https://stripe.com/docs/rate-limits.",
                       "doc_url": "https://stripe.com/docs/error-codes/rate-limit"}),
            );
            response
                .headers_mut()
                .insert("retry-after", "1".parse().unwrap());
            response
        } else {
            match handle(&mut account, &request) {
                Ok(object) => axum::Json(object).into_response(),
                Err(refusal) => refusal,
            }
        };
        account
            .answered
            .push((route, response.status().as_u16(), Instant::now()));
        drop(account);
        let body = if request.method == "GET" {
            Value::Null
        } else {
            Value::Object(
                request
                    .form
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            )
        };
        self.calls.push(Call {
            method: request.method.to_owned(),
            path: request.path.to_owned(),
            query: request.query,
            headers: request.headers,
            body,
        });
        response
    }

    /// Payments made now, all at once: `(amount in cents, description)`, oldest first.
    fn add_payments(&self, payments: &[(i64, &str)]) -> Vec<Value> {
        let mut account = self.account.lock().unwrap();
        payments
            .iter()
            .map(|(amount, description)| account.payment_intent(*amount, description))
            .collect()
    }

    /// Customers made now: `(name, email)`, oldest first.
    fn add_customers(&self, customers: &[(&str, &str)]) -> Vec<Value> {
        let mut account = self.account.lock().unwrap();
        customers
            .iter()
            .map(|(name, email)| {
                let form = vec![
                    ("name".to_owned(), (*name).to_owned()),
                    ("email".to_owned(), (*email).to_owned()),
                ];
                account.create_customer(&form).unwrap()
            })
            .collect()
    }

    /// The next `times` calls of `route` ("POST /v1/invoiceitems") are answered 429.
    fn throttle(&self, route: &str, times: usize) {
        self.account
            .lock()
            .unwrap()
            .throttle
            .insert(route.to_owned(), times);
    }

    /// The statuses `route` was answered with, and when.
    fn answered(&self, route: &str) -> Vec<(u16, Instant)> {
        self.account
            .lock()
            .unwrap()
            .answered
            .iter()
            .filter(|(r, _, _)| r == route)
            .map(|(_, status, at)| (*status, *at))
            .collect()
    }
}

impl Account {
    /// The `created` time of an object made now, and a new id with its prefix.
    fn made_now(&mut self, prefix: &str) -> (i64, String) {
        self.made += 1;
        let id = format!("{prefix}_{}", ulid::Ulid::generate());
        (EPOCH + 60 * self.made, id)
    }

    fn payment_intent(&mut self, amount: i64, description: &str) -> Value {
        let (created, id) = self.made_now("pi");
        let intent = json!({
            "id": id, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
            "amount_details": {"tip": {}}, "amount_received": amount, "application": null,
            "application_fee_amount": null, "automatic_payment_methods": {"enabled": true},
            "canceled_at": null, "cancellation_reason": null, "capture_method": "automatic",
            "client_secret": format!("{id}_secret_{}", ulid::Ulid::generate()),
            "confirmation_method": "automatic", "created": created, "currency": "eur",
            "customer": null, "description": description, "last_payment_error": null,
            "latest_charge": format!("ch_{}", ulid::Ulid::generate()), "livemode": false,
            "metadata": {}, "next_action": null, "on_behalf_of": null,
            "payment_method": format!("pm_{}", ulid::Ulid::generate()),
            "payment_method_types": ["card"], "processing": null, "receipt_email": null,
            "review": null, "setup_future_usage": null, "shipping": null,
            "statement_descriptor": null, "statement_descriptor_suffix": null,
            "status": "succeeded", "transfer_data": null, "transfer_group": null
        });
        self.payment_intents.push(intent.clone());
        intent
    }

    fn customer(&self, id: &str) -> Option<&Value> {
        self.customers.iter().find(|c| c["id"] == id)
    }

    fn create_customer(&mut self, form: &[(String, String)]) -> Result<Value, Response> {
        allow_only(
            form,
            &["name", "email", "phone", "description"],
            &["metadata", "address"],
        )?;
        let address = nested(form, "address")?;
        for key in address.keys() {
            if !["line1", "line2", "city", "state", "postal_code", "country"]
                .contains(&key.as_str())
            {
                return Err(unknown_parameter(&format!("address[{key}]")));
            }
        }
        let email = field(form, "email");
        if let Some(email) = email
            && !email.contains('@')
        {
            return Err(error(
                StatusCode::BAD_REQUEST,
                json!({"code": "email_invalid", "param": "email", "type": "invalid_request_error",
                       "message": format!("Invalid email address: {email}"),
                       "doc_url": "https://stripe.com/docs/error-codes/email-invalid"}),
            ));
        }
        let metadata = nested(form, "metadata")?;
        let (created, id) = self.made_now("cus");
        let address = if address.is_empty() {
            Value::Null
        } else {
            let mut full: Map<String, Value> =
                ["city", "country", "line1", "line2", "postal_code", "state"]
                    .iter()
                    .map(|k| ((*k).to_owned(), Value::Null))
                    .collect();
            full.extend(address);
            Value::Object(full)
        };
        let customer = json!({
            "id": id, "object": "customer", "address": address, "balance": 0,
            "created": created, "currency": null, "default_source": null, "delinquent": false,
            "description": field(form, "description"), "email": email,
            "invoice_prefix": format!("{:08X}", created % 0xFFFF_FFFF),
            "invoice_settings": {"custom_fields": null, "default_payment_method": null,
                                 "footer": null, "rendering_options": null},
            "livemode": false, "metadata": metadata, "name": field(form, "name"),
            "next_invoice_sequence": 1, "phone": field(form, "phone"), "preferred_locales": [],
            "shipping": null, "tax_exempt": "none", "test_clock": null
        });
        self.customers.push(customer.clone());
        Ok(customer)
    }

    fn create_invoice_item(&mut self, form: &[(String, String)]) -> Result<Value, Response> {
        allow_only(
            form,
            &["customer", "amount", "currency", "description", "invoice"],
            &["metadata"],
        )?;
        let customer = self.known_customer(form)?;
        let amount = integer(form, "amount")?.ok_or_else(|| missing("amount"))?;
        let currency = field(form, "currency")
            .ok_or_else(|| missing("currency"))?
            .to_lowercase();
        let invoice = match field(form, "invoice") {
            Some(id)
                if !self
                    .invoices
                    .iter()
                    .any(|i| i["id"] == id && i["status"] == "draft") =>
            {
                return Err(no_such("invoice", id, "invoice"));
            }
            other => other,
        };
        let metadata = nested(form, "metadata")?;
        let (created, id) = self.made_now("ii");
        let item = json!({
            "id": id, "object": "invoiceitem", "amount": amount, "currency": currency,
            "customer": customer, "date": created, "description": field(form, "description"),
            "discountable": true, "discounts": [], "invoice": invoice, "livemode": false,
            "metadata": metadata, "period": {"end": created, "start": created},
            "proration": false, "quantity": 1, "subscription": null, "tax_rates": [],
            "test_clock": null, "unit_amount_decimal": amount.to_string()
        });
        self.invoice_items.push(item.clone());
        Ok(item)
    }

    fn create_invoice(&mut self, form: &[(String, String)]) -> Result<Value, Response> {
        allow_only(
            form,
            &[
                "customer",
                "collection_method",
                "days_until_due",
                "description",
                "auto_advance",
                "pending_invoice_items_behavior",
            ],
            &["metadata"],
        )?;
        let customer = self.known_customer(form)?;
        let method = field(form, "collection_method").unwrap_or("charge_automatically");
        if !["charge_automatically", "send_invoice"].contains(&method) {
            return Err(invalid(
                "collection_method",
                "Invalid collection_method: must be one of charge_automatically or send_invoice",
            ));
        }
        let days = integer(form, "days_until_due")?;
        match (method, days) {
            ("send_invoice", None) => {
                return Err(invalid(
                    "days_until_due",
                    "Invoices with collection_method=send_invoice need a due_date or days_until_due.",
                ));
            }
            ("charge_automatically", Some(_)) => {
                return Err(invalid(
                    "days_until_due",
                    "days_until_due can only be set when collection_method=send_invoice.",
                ));
            }
            _ => {}
        }
        let auto_advance = match field(form, "auto_advance") {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(invalid(
                    "auto_advance",
                    &format!("Invalid boolean: {other}"),
                ));
            }
        };
        let include = match field(form, "pending_invoice_items_behavior") {
            None | Some("exclude") => false,
            Some("include") => true,
            Some(other) => {
                return Err(invalid(
                    "pending_invoice_items_behavior",
                    &format!(
                        "Invalid pending_invoice_items_behavior: must be one of include or exclude (got {other})"
                    ),
                ));
            }
        };
        let metadata = nested(form, "metadata")?;
        let (created, id) = self.made_now("in");
        let mut lines = Vec::new();
        if include {
            for item in &mut self.invoice_items {
                if item["customer"] == customer.as_str() && item["invoice"].is_null() {
                    item["invoice"] = json!(id);
                    lines.push(json!({
                        "id": format!("il_{}", ulid::Ulid::generate()), "object": "line_item",
                        "amount": item["amount"], "currency": item["currency"],
                        "description": item["description"], "invoice": id,
                        "invoice_item": item["id"], "metadata": item["metadata"],
                        "period": item["period"], "quantity": 1, "type": "invoiceitem"
                    }));
                }
            }
        }
        let total: i64 = lines.iter().filter_map(|l| l["amount"].as_i64()).sum();
        let currency = lines
            .first()
            .map_or_else(|| json!("usd"), |l| l["currency"].clone());
        let holder = self.customer(&customer).cloned().unwrap_or_default();
        let invoice = json!({
            "id": id, "object": "invoice", "account_country": "DE",
            "account_name": "Timix Stand-in Shop", "amount_due": total, "amount_paid": 0,
            "amount_remaining": total, "attempt_count": 0, "attempted": false,
            "auto_advance": auto_advance, "billing_reason": "manual",
            "collection_method": method, "created": created, "currency": currency,
            "customer": customer, "customer_email": holder["email"],
            "customer_name": holder["name"], "days_until_due": days,
            "description": field(form, "description"),
            "due_date": days.map(|d| created + d * 86_400), "hosted_invoice_url": null,
            "invoice_pdf": null,
            "lines": {"object": "list", "data": lines, "has_more": false,
                      "url": format!("/v1/invoices/{id}/lines")},
            "livemode": false, "metadata": metadata, "number": null, "period_end": created,
            "period_start": created, "status": "draft", "subtotal": total, "total": total
        });
        self.invoices.push(invoice.clone());
        Ok(invoice)
    }

    /// The `customer` parameter, naming a customer of this account.
    fn known_customer(&self, form: &[(String, String)]) -> Result<String, Response> {
        let id = field(form, "customer").ok_or_else(|| missing("customer"))?;
        if self.customer(id).is_none() {
            return Err(no_such("customer", id, "customer"));
        }
        Ok(id.to_owned())
    }
}

/// A page of a list, newest first, as every Stripe list answers.
fn list(
    url: &str,
    objects: &[Value],
    query: &HashMap<String, String>,
    keep: impl Fn(&Value) -> bool,
) -> Result<Value, Response> {
    let limit = match query.get("limit") {
        None => 10,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            Ok(_) => {
                return Err(invalid(
                    "limit",
                    "This value must be greater than or equal to 1 and less than or equal to 100.",
                ));
            }
            Err(_) => return Err(invalid("limit", &format!("Invalid integer: {text}"))),
        },
    };
    let mut bounds = Vec::new();
    for op in ["gt", "gte", "lt", "lte"] {
        let param = format!("created[{op}]");
        if let Some(text) = query.get(&param) {
            let at = text
                .parse::<i64>()
                .map_err(|_| invalid(&param, &format!("Invalid integer: {text}")))?;
            bounds.push((op, at));
        }
    }
    let within = |object: &Value| {
        let created = object["created"].as_i64().unwrap_or_default();
        bounds.iter().all(|(op, at)| match *op {
            "gt" => created > *at,
            "gte" => created >= *at,
            "lt" => created < *at,
            _ => created <= *at,
        })
    };
    let matching: Vec<&Value> = objects
        .iter()
        .rev()
        .filter(|&o| within(o) && keep(o))
        .collect();
    let start = match query.get("starting_after") {
        None => 0,
        Some(id) => {
            let at = matching.iter().position(|o| o["id"] == id.as_str());
            let object = objects
                .first()
                .and_then(|o| o["object"].as_str())
                .unwrap_or("object");
            at.ok_or_else(|| no_such(object, id, "starting_after"))? + 1
        }
    };
    let page: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(limit)
        .copied()
        .cloned()
        .collect();
    Ok(json!({
        "object": "list",
        "data": page,
        "has_more": matching.len() > start + limit,
        "url": url,
    }))
}

/// The secret key, as a Bearer token or as the Basic user name.
fn authorized(headers: &HeaderMap) -> Result<(), Response> {
    use base64::Engine as _;
    let header = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let key = if let Some(token) = header.strip_prefix("Bearer ") {
        token.to_owned()
    } else if let Some(basic) = header.strip_prefix("Basic ") {
        base64::engine::general_purpose::STANDARD
            .decode(basic)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|pair| pair.split(':').next().map(str::to_owned))
            .unwrap_or_default()
    } else {
        String::new()
    };
    if key.is_empty() {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            json!({"type": "invalid_request_error",
                   "message": "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/."}),
        ));
    }
    if key != SECRET {
        let chars: Vec<char> = key.chars().collect();
        let shown: String = if chars.len() > 12 {
            let head: String = chars[..8].iter().collect();
            let tail: String = chars[chars.len() - 4..].iter().collect();
            format!("{head}{}{tail}", "*".repeat(chars.len() - 12))
        } else {
            "*".repeat(chars.len())
        };
        return Err(error(
            StatusCode::UNAUTHORIZED,
            json!({"type": "invalid_request_error",
                   "message": format!("Invalid API Key provided: {shown}")}),
        ));
    }
    Ok(())
}

/// Stripe's error envelope.
fn error(status: StatusCode, error: Value) -> Response {
    (status, axum::Json(json!({ "error": error }))).into_response()
}

fn invalid(param: &str, message: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        json!({"type": "invalid_request_error", "param": param, "message": message}),
    )
}

fn missing(param: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        json!({"code": "parameter_missing", "param": param, "type": "invalid_request_error",
               "message": format!("Missing required param: {param}."),
               "doc_url": "https://stripe.com/docs/error-codes/parameter-missing"}),
    )
}

fn unknown_parameter(param: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        json!({"code": "parameter_unknown", "param": param, "type": "invalid_request_error",
               "message": format!("Received unknown parameter: {param}"),
               "doc_url": "https://stripe.com/docs/error-codes/parameter-unknown"}),
    )
}

fn no_such(object: &str, id: &str, param: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        json!({"code": "resource_missing", "param": param, "type": "invalid_request_error",
               "message": format!("No such {object}: '{id}'"),
               "doc_url": "https://stripe.com/docs/error-codes/resource-missing"}),
    )
}

/// Refuses a parameter that is neither a plain one of `plain` nor in brackets below one of
/// `nested` (`metadata[plan]`); a nested one given flat (`metadata={…}`) is not an object.
fn allow_only(form: &[(String, String)], plain: &[&str], nested: &[&str]) -> Result<(), Response> {
    for (key, _) in form {
        let root = key.split('[').next().unwrap_or_default();
        let bracketed = key.len() > root.len();
        if nested.contains(&root) && !bracketed {
            return Err(invalid(key, "Invalid object"));
        }
        if !(plain.contains(&key.as_str()) || (nested.contains(&root) && bracketed)) {
            return Err(unknown_parameter(key));
        }
    }
    Ok(())
}

/// A plain parameter's value, if given and not empty.
fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

fn integer(form: &[(String, String)], name: &str) -> Result<Option<i64>, Response> {
    match field(form, name) {
        None => Ok(None),
        Some(text) => text
            .parse::<i64>()
            .map(Some)
            .map_err(|_| invalid(name, &format!("Invalid integer: {text}"))),
    }
}

/// The values below `root` in brackets (`metadata[plan]=pro` → `{plan: "pro"}`); one level deep.
fn nested(form: &[(String, String)], root: &str) -> Result<Map<String, Value>, Response> {
    let mut values = Map::new();
    let prefix = format!("{root}[");
    for (key, value) in form {
        if let Some(rest) = key.strip_prefix(&prefix) {
            let Some(name) = rest.strip_suffix(']').filter(|n| !n.contains('[')) else {
                return Err(unknown_parameter(key));
            };
            values.insert(name.to_owned(), Value::String(value.clone()));
        }
    }
    Ok(values)
}

/// The pairs of an `application/x-www-form-urlencoded` body; any other body is not read.
fn form_of(headers: &HeaderMap, body: &Bytes) -> Vec<(String, String)> {
    let form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Vec::new();
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decoded(k), decoded(v))
        })
        .collect()
}

/// Percent-decoding, `+` as a space.
fn decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn balance(
    State(stripe): State<Stripe>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let request = Incoming {
        method: "GET",
        path: "/v1/balance",
        query,
        headers,
        form: Vec::new(),
    };
    stripe.answer(request, |_, _| {
        Ok(json!({
            "object": "balance",
            "available": [{"amount": 0, "currency": "eur", "source_types": {"card": 0}}],
            "connect_reserved": [{"amount": 0, "currency": "eur"}],
            "livemode": false,
            "pending": [{"amount": 0, "currency": "eur", "source_types": {"card": 0}}],
        }))
    })
}

async fn list_payment_intents(
    State(stripe): State<Stripe>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let request = Incoming {
        method: "GET",
        path: "/v1/payment_intents",
        query,
        headers,
        form: Vec::new(),
    };
    stripe.answer(request, |account, request| {
        let customer = request.query.get("customer");
        list(
            "/v1/payment_intents",
            &account.payment_intents,
            &request.query,
            |pi| customer.is_none_or(|c| pi["customer"] == c.as_str()),
        )
    })
}

async fn list_customers(
    State(stripe): State<Stripe>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let request = Incoming {
        method: "GET",
        path: "/v1/customers",
        query,
        headers,
        form: Vec::new(),
    };
    stripe.answer(request, |account, request| {
        // Stripe compares emails exactly, case included.
        let email = request.query.get("email");
        list("/v1/customers", &account.customers, &request.query, |c| {
            email.is_none_or(|e| c["email"] == e.as_str())
        })
    })
}

async fn create_customer(
    State(stripe): State<Stripe>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = form_of(&headers, &body);
    let request = Incoming {
        method: "POST",
        path: "/v1/customers",
        query: HashMap::new(),
        headers,
        form,
    };
    stripe.answer(request, |account, request| {
        account.create_customer(&request.form)
    })
}

async fn create_invoice_item(
    State(stripe): State<Stripe>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = form_of(&headers, &body);
    let request = Incoming {
        method: "POST",
        path: "/v1/invoiceitems",
        query: HashMap::new(),
        headers,
        form,
    };
    stripe.answer(request, |account, request| {
        account.create_invoice_item(&request.form)
    })
}

async fn create_invoice(State(stripe): State<Stripe>, headers: HeaderMap, body: Bytes) -> Response {
    let form = form_of(&headers, &body);
    let request = Incoming {
        method: "POST",
        path: "/v1/invoices",
        query: HashMap::new(),
        headers,
        form,
    };
    stripe.answer(request, |account, request| {
        account.create_invoice(&request.form)
    })
}

async fn unknown_url(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        json!({"type": "invalid_request_error",
               "message": format!("Unrecognized request URL ({method}: {}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.", uri.path())}),
    )
}

/// A Stripe account on a free local port: its handle and its base URL.
async fn start() -> (Stripe, String) {
    let stripe = Stripe::default();
    let router = Router::new()
        .route("/v1/balance", get(balance))
        .route("/v1/payment_intents", get(list_payment_intents))
        .route("/v1/customers", get(list_customers).post(create_customer))
        .route("/v1/invoiceitems", post(create_invoice_item))
        .route("/v1/invoices", post(create_invoice))
        .fallback(unknown_url)
        .with_state(stripe.clone());
    let url = serve(router).await;
    (stripe, url)
}

/// A Stripe connection of `c`'s organization to the stand-in at `url`, with `key`.
async fn connection(c: &Client, url: &str, key: &str) -> String {
    c.post(
        "/connections",
        json!({"name": "Stripe (test mode)", "connector": "stripe", "baseUrl": url,
               "credentials": {"token": key}}),
    )
    .await
    .expect(201)
    .id()
}

/// A flow started by a webhook with these `steps`, run once on `payload`: the finished run.
async fn run_steps(server: &Server, c: &Client, steps: Value, payload: Value) -> Value {
    let flow = c
        .post(
            "/flows",
            json!({"name": "Bill through Stripe", "trigger": {"type": "webhook"}, "steps": steps}),
        )
        .await
        .expect(201);
    let url = flow.body["trigger"]["webhookUrl"].as_str().unwrap();
    let anonymous = server.anonymous();
    let accepted = anonymous
        .send(anonymous.request(reqwest::Method::POST, url).json(&payload))
        .await
        .expect(202);
    c.finished_run(accepted.body["runId"].as_str().unwrap())
        .await
}

fn header(call: &Call, name: &str) -> String {
    call.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn names(values: &[Value]) -> Vec<String> {
    values
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn the_catalogue_has_stripe_and_its_connection_test_uses_the_secret_key() {
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (stripe, url) = start().await;

    let listed = c.get("/connectors").await.expect(200).items();
    let entry = listed
        .iter()
        .find(|e| e["key"] == "stripe")
        .unwrap_or_else(|| panic!("stripe is not listed: {listed:?}"));
    assert_eq!(entry["source"], "catalogue");
    assert_eq!(entry["auth"]["type"], "bearer");
    let actions = names(entry["actions"].as_array().unwrap());
    for action in [
        "create_customer",
        "create_invoice_item",
        "create_invoice",
        "find_customer",
    ] {
        let action = format!("stripe.{action}");
        assert!(actions.contains(&action), "{entry}");
    }
    let triggers = names(entry["triggers"].as_array().unwrap());
    assert!(
        triggers.iter().any(|t| t == "stripe.new_payment"),
        "{entry}"
    );
    assert_eq!(entry["lookups"], json!(["customers"]));

    let balance_reads = || stripe.answered("GET /v1/balance");
    let id = connection(&c, &url, SECRET).await;
    let shown = c.get(&format!("/connections/{id}")).await.expect(200).body;
    assert_eq!(shown["connector"], "stripe");
    assert_eq!(shown["type"], "bearer");
    assert!(!shown.to_string().contains(SECRET), "never shown: {shown}");
    let before = balance_reads().len();
    let tested = c
        .post(&format!("/connections/{id}/test"), json!({}))
        .await
        .expect(200);
    assert_eq!(tested.body["status"], "ok", "{}", tested.body);
    let calls = stripe.calls.to("GET", "/v1/balance");
    assert_eq!(calls.len(), before + 1);
    assert_eq!(
        header(&calls[before], "authorization"),
        format!("Bearer {SECRET}")
    );
    assert_eq!(balance_reads()[before].0, 200);

    // A wrong key: Stripe's 401, kept as the connection's error.
    let wrong = connection(&c, &url, "sk_test_51PqSomeoneElsesKey00000000").await;
    let tested = c
        .post(&format!("/connections/{wrong}/test"), json!({}))
        .await
        .expect(200);
    assert_eq!(tested.body["status"], "error", "{}", tested.body);
    assert!(
        tested.body["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("401")),
        "{}",
        tested.body
    );
    let last = balance_reads();
    assert_eq!(last.last().map(|(status, _)| *status), Some(401));
    let refused = stripe.calls.to("GET", "/v1/balance");
    assert_eq!(
        header(refused.last().unwrap(), "authorization"),
        "Bearer sk_test_51PqSomeoneElsesKey00000000"
    );
}

#[tokio::test]
async fn each_new_payment_runs_once_read_across_three_pages() {
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (stripe, url) = start().await;
    let before = stripe.add_payments(&[(4900, "Order #998"), (1200, "Order #999")]);
    let con = connection(&c, &url, SECRET).await;
    let flow = c
        .post(
            "/flows",
            json!({
                "name": "Record Stripe payments",
                "trigger": {"type": "poll", "connectionId": con, "source": "stripe.new_payment",
                            "input": {"pageSize": 3}, "schedule": "* * * * * *"},
                "steps": [{"key": "record", "action": "create_customer",
                           "input": {"name": "{{trigger.description}}",
                                     "notes": "{{trigger.id}} {{trigger.amount}} {{trigger.currency}}"}}]
            }),
        )
        .await
        .expect(201)
        .id();
    let polls = || async { json!(stripe.calls.to("GET", "/v1/payment_intents").len()) };
    // The first poll takes the two payments already there as seen.
    eventually("the first poll", polls, |n| n.as_u64() >= Some(1)).await;

    // Seven new payments at once: with three a page and the newest one seen again (created[gte]),
    // the next poll reads them over three pages.
    let orders: Vec<(i64, String)> = (1..=7)
        .map(|n| (1000 + 250 * n, format!("Order #{}", 1000 + n)))
        .collect();
    let orders: Vec<(i64, &str)> = orders.iter().map(|(a, d)| (*a, d.as_str())).collect();
    let new = stripe.add_payments(&orders);
    let runs = finished_runs(&c, &flow, 7).await;
    assert_eq!(runs.len(), 7, "{runs:?}");
    let mut seen: Vec<String> = Vec::new();
    for run in &runs {
        assert_eq!(run["status"], "succeeded", "{run}");
        let id = run["trigger"]["id"].as_str().unwrap().to_owned();
        let payment = new
            .iter()
            .find(|p| p["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} is not one of the new payments"));
        assert_eq!(run["trigger"]["amount"], payment["amount"]);
        assert_eq!(run["trigger"]["status"], "succeeded");
        assert_eq!(run["steps"][0]["output"]["name"], payment["description"]);
        assert_eq!(
            run["steps"][0]["output"]["notes"],
            format!("{id} {} eur", payment["amount"])
        );
        seen.push(id);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 7, "each new payment ran once");

    // The pages: every request asked for three; the second and third started after the last
    // payment of the page before (newest first: 7 6 5 | 4 3 2 | 1 and the one seen before).
    let calls = stripe.calls.to("GET", "/v1/payment_intents");
    assert!(
        calls
            .iter()
            .all(|c| c.query.get("limit").map(String::as_str) == Some("3"))
    );
    let after: Vec<&str> = calls
        .iter()
        .filter_map(|c| c.query.get("starting_after").map(String::as_str))
        .collect();
    let ids: Vec<&str> = new.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(
        after,
        vec![ids[4], ids[1]],
        "pages after the 5th and 2nd newest"
    );
    let third = calls
        .iter()
        .find(|c| c.query.get("starting_after").map(String::as_str) == Some(ids[1]))
        .unwrap();
    assert_eq!(
        third.query.get("created[gte]").cloned(),
        Some(before[1]["created"].to_string()),
        "the poll asked for what came since the newest payment seen"
    );
    assert!(
        calls
            .iter()
            .all(|c| header(c, "authorization") == format!("Bearer {SECRET}"))
    );

    // Later polls start nothing again.
    let first_pages = |calls: Vec<Call>| {
        calls
            .iter()
            .filter(|c| !c.query.contains_key("starting_after"))
            .count() as u64
    };
    let now = first_pages(stripe.calls.to("GET", "/v1/payment_intents"));
    eventually(
        "two more polls",
        || async { json!(first_pages(stripe.calls.to("GET", "/v1/payment_intents"))) },
        |n| n.as_u64() >= Some(now + 2),
    )
    .await;
    let all = c
        .get(&format!("/runs?flowId={flow}"))
        .await
        .expect(200)
        .items();
    assert_eq!(all.len(), 7, "no payment ran twice");
}

#[tokio::test]
async fn a_customer_is_created_form_encoded_and_a_refusal_fails_the_step_at_once() {
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (stripe, url) = start().await;
    let con = connection(&c, &url, SECRET).await;

    let run = run_action(
        &c,
        "stripe.create_customer",
        &con,
        json!({
            "name": "{{trigger.company}}", "email": "billing@acme.example",
            "description": "Signed up on the website",
            "address": {"line1": "Friedrichstraße 12", "postal_code": "10117", "city": "Berlin",
                        "country": "DE"},
            "metadata": {"timixCustomerId": "{{trigger.id}}", "plan": "pro"}
        }),
        json!({"id": "cus_01JTIMIXACME", "company": "Acme Ltd"}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let customer = &run["steps"][0]["output"];
    assert!(
        customer["id"].as_str().unwrap().starts_with("cus_"),
        "{customer}"
    );
    assert_eq!(customer["object"], "customer");
    assert_eq!(customer["name"], "Acme Ltd");
    assert_eq!(
        customer["metadata"],
        json!({"timixCustomerId": "cus_01JTIMIXACME", "plan": "pro"})
    );
    assert_eq!(customer["address"]["line1"], "Friedrichstraße 12");
    assert_eq!(customer["address"]["line2"], Value::Null);
    let sent = stripe.calls.to("POST", "/v1/customers");
    assert_eq!(sent.len(), 1);
    assert!(
        header(&sent[0], "content-type").starts_with("application/x-www-form-urlencoded"),
        "{:?}",
        sent[0].headers
    );
    assert_eq!(
        header(&sent[0], "authorization"),
        format!("Bearer {SECRET}")
    );
    let form = sent[0].body.as_object().unwrap();
    assert_eq!(form["name"], "Acme Ltd");
    assert_eq!(form["email"], "billing@acme.example");
    assert_eq!(form["metadata[plan]"], "pro");
    assert_eq!(form["metadata[timixCustomerId]"], "cus_01JTIMIXACME");
    assert_eq!(form["address[city]"], "Berlin");
    assert_eq!(form["address[line1]"], "Friedrichstraße 12");
    assert!(
        !form.contains_key("metadata") && !form.contains_key("phone"),
        "{form:?}"
    );

    // Found again by its email.
    let found = run_action(
        &c,
        "stripe.find_customer",
        &con,
        json!({"email": "billing@acme.example"}),
        json!({}),
    )
    .await;
    assert_eq!(found["status"], "succeeded", "{found}");
    assert_eq!(found["steps"][0]["output"]["id"], customer["id"]);
    let asked = stripe.calls.to("GET", "/v1/customers");
    assert_eq!(
        asked[0].query.get("email").map(String::as_str),
        Some("billing@acme.example")
    );

    // Stripe refuses an item for a customer it does not know: the step fails with Stripe's
    // message, at once (a 400 is not tried again).
    let refused = run_action(
        &c,
        "stripe.create_invoice_item",
        &con,
        json!({"customer": "cus_doesnotexist", "amount": 1500, "currency": "eur",
               "description": "Setup fee"}),
        json!({}),
    )
    .await;
    assert_eq!(refused["status"], "failed", "{refused}");
    let step = &refused["steps"][0];
    assert_eq!(step["attempts"], 1, "{step}");
    assert_eq!(step["error"]["status"], 400, "{step}");
    assert_eq!(
        step["error"]["message"], "No such customer: 'cus_doesnotexist'",
        "{step}"
    );
    assert_eq!(stripe.calls.to("POST", "/v1/invoiceitems").len(), 1);
}

#[tokio::test]
async fn a_rate_limited_item_waits_as_told_and_then_goes_on_the_invoice() {
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (stripe, url) = start().await;
    let con = connection(&c, &url, SECRET).await;
    let acme = stripe.add_customers(&[("Acme Ltd", "billing@acme.example")]);
    let acme = acme[0]["id"].as_str().unwrap().to_owned();
    stripe.throttle("POST /v1/invoiceitems", 1);

    let run = run_steps(
        &server,
        &c,
        json!([
            {"key": "item", "action": "stripe.create_invoice_item", "connectionId": con,
             "input": {"customer": "{{trigger.customer}}", "amount": "{{trigger.cents}}",
                       "currency": "eur", "description": "{{trigger.hours}} hours of design work",
                       "metadata": {"project": "{{trigger.project}}"}}},
            {"key": "invoice", "action": "stripe.create_invoice", "connectionId": con,
             "input": {"customer": "{{steps.item.customer}}", "collection_method": "send_invoice",
                       "days_until_due": 14, "description": "Design work, March"}}
        ]),
        json!({"customer": acme, "cents": 120000, "hours": 10, "project": "prj_42"}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["steps"][0]["attempts"], 2, "the 429, then the item");
    assert_eq!(run["steps"][1]["attempts"], 1);
    let answered = stripe.answered("POST /v1/invoiceitems");
    let statuses: Vec<u16> = answered.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, vec![429, 200]);
    let waited = answered[1].1.duration_since(answered[0].1);
    assert!(
        waited >= Duration::from_millis(900),
        "Retry-After: 1 was honoured ({waited:?})"
    );

    let item = &run["steps"][0]["output"];
    assert_eq!(item["object"], "invoiceitem");
    assert_eq!(item["amount"], 120000);
    assert_eq!(item["metadata"]["project"], "prj_42");
    let invoice = &run["steps"][1]["output"];
    assert_eq!(invoice["object"], "invoice");
    assert_eq!(invoice["customer"], acme.as_str());
    assert_eq!(invoice["status"], "draft");
    assert_eq!(invoice["collection_method"], "send_invoice");
    assert_eq!(invoice["amount_due"], 120000);
    assert_eq!(invoice["lines"]["data"][0]["invoice_item"], item["id"]);
    assert_eq!(
        invoice["lines"]["data"][0]["description"],
        "10 hours of design work"
    );
    assert_eq!(
        invoice["due_date"].as_i64(),
        invoice["created"].as_i64().map(|t| t + 14 * 86_400)
    );
    let sent = stripe.calls.to("POST", "/v1/invoices");
    assert_eq!(sent.len(), 1);
    let form = sent[0].body.as_object().unwrap();
    assert_eq!(
        form["pending_invoice_items_behavior"], "include",
        "{form:?}"
    );
    assert_eq!(form["days_until_due"], "14");
    assert_eq!(form["customer"], acme.as_str());
    assert!(
        !form.contains_key("auto_advance"),
        "left out when not given: {form:?}"
    );
}

#[tokio::test]
async fn the_customer_dropdown_finds_by_name_and_pages() {
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (stripe, url) = start().await;
    let con = connection(&c, &url, SECRET).await;
    let made = stripe.add_customers(&[
        ("Acme Ltd", "billing@acme.example"),
        ("Globex Corporation", "ap@globex.example"),
        ("Acme Robotics", "hello@acmerobotics.example"),
        ("Initech", "finance@initech.example"),
    ]);

    let found = c
        .get(&format!(
            "/connectors/stripe/lookups/customers?connectionId={con}&q=acme"
        ))
        .await
        .expect(200);
    let mut items: Vec<(String, String)> = found
        .items()
        .iter()
        .map(|i| {
            (
                i["label"].as_str().unwrap().to_owned(),
                i["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    items.sort();
    assert_eq!(
        items,
        vec![
            (
                "Acme Ltd".to_owned(),
                made[0]["id"].as_str().unwrap().to_owned()
            ),
            (
                "Acme Robotics".to_owned(),
                made[2]["id"].as_str().unwrap().to_owned()
            ),
        ]
    );
    assert_eq!(found.body["hasMore"], false);
    let asked = stripe.calls.to("GET", "/v1/customers");
    assert!(!asked.is_empty());
    assert!(
        asked
            .iter()
            .all(|c| header(c, "authorization") == format!("Bearer {SECRET}"))
    );

    // 120 more: the first page holds the 100 newest, the next the rest.
    let more: Vec<(String, String)> = (1..=120)
        .map(|n| (format!("Customer {n:03}"), format!("c{n}@example.com")))
        .collect();
    let more: Vec<(&str, &str)> = more.iter().map(|(n, e)| (n.as_str(), e.as_str())).collect();
    stripe.add_customers(&more);
    let first = c
        .get(&format!(
            "/connectors/stripe/lookups/customers?connectionId={con}"
        ))
        .await
        .expect(200);
    assert_eq!(first.items().len(), 100, "{}", first.body);
    assert_eq!(first.items()[0]["label"], "Customer 120", "newest first");
    assert_eq!(first.body["hasMore"], true);
    let cursor = first.body["nextCursor"].as_str().unwrap().to_owned();
    let second = c
        .get(&format!(
            "/connectors/stripe/lookups/customers?connectionId={con}&cursor={cursor}"
        ))
        .await
        .expect(200);
    assert_eq!(second.items().len(), 24, "{}", second.body);
    assert_eq!(second.items()[23]["label"], "Acme Ltd", "oldest last");
    assert_eq!(second.body["hasMore"], false);
    let last = stripe.calls.to("GET", "/v1/customers");
    let last = last.last().unwrap();
    assert_eq!(
        last.query.get("starting_after").map(String::as_str),
        Some(first.items()[99]["value"].as_str().unwrap()),
        "the next page starts after the last customer shown"
    );
    assert_eq!(last.query.get("limit").map(String::as_str), Some("100"));
}
