//! QuickBooks Online: a stand-in for the parts of Intuit's Accounting API the `quickbooks`
//! connector uses, and the tests of the connector through timix's API.
//!
//! The stand-in follows Intuit's documentation:
//! - <https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/oauth-2.0>
//!   and <https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/faq>:
//!   OAuth 2.0 authorization code (the provider's side is `OAuth` of mod.rs); access tokens last
//!   3,600 seconds, and a call with an expired one is a 401 `AuthenticationFailed` (3200).
//! - <https://developer.intuit.com/app/developer/qbo/docs/learn/explore-the-quickbooks-online-api/data-queries>:
//!   `GET /v3/company/<realmId>/query?query=<select>`: WHERE with `=`, `<`, `>`, `<=`, `>=`, `IN`
//!   and `LIKE` (`%` only) joined by AND, ORDERBY, STARTPOSITION (from 1), MAXRESULTS (100 by
//!   default, 1000 at most); a backslash escapes a quote. The answer is `{QueryResponse:
//!   {<Entity>: [...], startPosition, maxResults}, time}`, with the entity left out when nothing
//!   matches.
//! - <https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/customer>,
//!   `.../invoice` and `.../preferences`: a create answers `{<Entity>: {...}, time}`; display
//!   names are unique; an invoice needs a CustomerRef and a Line, and a line's Amount must be Qty
//!   × UnitPrice; `POST /invoice/<id>/send?sendTo=` emails it.
//! - <https://developer.intuit.com/app/developer/qbo/docs/develop/troubleshooting/handling-common-errors>:
//!   failures are `{Fault: {Error: [{Message, Detail, code, element}], type}, time}`; a property
//!   the entity does not have is refused.
//! - Answers are JSON for `Accept: application/json` and XML otherwise, as QuickBooks does.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use super::{Call, Calls, OAuth, connect, eventually, finished_runs, run_action, serve, server};
use crate::harness::{Client, Server};

/// The company's ID (realm ID).
const REALM: &str = "123";
/// The company's clock at the start: 2026-03-02T09:00:00-08:00. Each entity made moves it on
/// by a minute.
const EPOCH: i64 = 1_772_470_800;
/// The company's time zone (Pacific, winter time), in seconds east of UTC.
const OFFSET: i64 = -8 * 3600;

/// One QuickBooks company with its OAuth provider, and what it was asked.
#[derive(Clone)]
struct QuickBooks {
    company: Arc<Mutex<Company>>,
    calls: Calls,
    oauth: OAuth,
}

struct Company {
    customers: Vec<Value>,
    invoices: Vec<Value>,
    items: Vec<Value>,
    /// The last Id given: entities of every kind count on from it, as in QuickBooks.
    last_id: u64,
    /// Now, in seconds since the epoch.
    clock: i64,
    /// Calls refused for their access token.
    refused: usize,
}

/// A request as the handlers read it.
struct Incoming {
    method: &'static str,
    path: String,
    realm: String,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Value,
}

/// A failure, as QuickBooks reports it.
#[derive(Debug)]
struct Fault {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
    message: String,
    detail: String,
}

/// A 400 `ValidationFault`.
fn validation(code: &'static str, message: &str, detail: String) -> Fault {
    Fault {
        status: StatusCode::BAD_REQUEST,
        kind: "ValidationFault",
        code,
        message: message.to_owned(),
        detail,
    }
}

fn required(parameter: &str) -> Fault {
    validation(
        "2020",
        "Required param missing, need to supply the required value for the API",
        format!("Required parameter {parameter} is missing in the request"),
    )
}

fn not_found() -> Fault {
    validation(
        "610",
        "Object Not Found",
        "Object Not Found : Something you're trying to use has been made inactive. Check the fields with accounts, customers, items, vendors or employees.".into(),
    )
}

fn unsupported(entity: &str, property: &str) -> Fault {
    validation(
        "2010",
        "Request has invalid or unsupported property",
        format!(
            "Property Name:Unrecognized field \"{property}\" (class com.intuit.schema.finance.v3.{entity}), not marked as ignorable specified is unsupported or invalid"
        ),
    )
}

impl QuickBooks {
    /// Checks the token and the company, answers with `handle` (JSON or XML as asked), records
    /// the call.
    fn answer(
        &self,
        request: Incoming,
        handle: impl FnOnce(&mut Company, &Incoming) -> Result<Value, Fault>,
    ) -> Response {
        let mut company = self.company.lock().unwrap();
        let result = if !self.oauth.valid(&request.headers) {
            company.refused += 1;
            Err(Fault {
                status: StatusCode::UNAUTHORIZED,
                kind: "AUTHENTICATION",
                code: "3200",
                message: "message=AuthenticationFailed; errorCode=003200; statusCode=401".into(),
                detail: "Token expired: the access token is no longer valid; refresh it".into(),
            })
        } else if request.realm != REALM {
            Err(Fault {
                status: StatusCode::FORBIDDEN,
                kind: "AUTHORIZATION",
                code: "3100",
                message: "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403"
                    .into(),
                detail: String::new(),
            })
        } else {
            handle(&mut company, &request)
        };
        let now = timestamp(company.clock);
        drop(company);
        let (status, body) = match result {
            Ok(body) => (StatusCode::OK, body),
            Err(fault) => (
                fault.status,
                json!({"Fault": {"Error": [{"Message": fault.message, "Detail": fault.detail,
                                            "code": fault.code, "element": ""}],
                                 "type": fault.kind},
                       "time": now}),
            ),
        };
        let wants_json = request
            .headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json"));
        let mut response = if wants_json {
            (status, axum::Json(body)).into_response()
        } else {
            (status, [("content-type", "application/xml")], xml(&body)).into_response()
        };
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                "www-authenticate",
                "Bearer realm=\"Intuit\", error=\"invalid_token\""
                    .parse()
                    .unwrap(),
            );
        }
        self.calls.push(Call {
            method: request.method.to_owned(),
            path: request.path,
            query: request.query,
            headers: request.headers,
            body: request.body,
        });
        response
    }

    /// A customer made in QuickBooks itself.
    fn add_customer(&self, name: &str, email: &str) -> Value {
        let mut company = self.company.lock().unwrap();
        let made = company
            .create_customer(&json!({"DisplayName": name, "PrimaryEmailAddr": {"Address": email}}));
        made.unwrap()["Customer"].clone()
    }

    /// An invoice made in QuickBooks itself: one line of the item "Services".
    fn add_invoice(&self, customer: &Value, amount: f64, description: &str) -> Value {
        let mut company = self.company.lock().unwrap();
        let made = company.create_invoice(&json!({
            "CustomerRef": {"value": customer["Id"]},
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": amount,
                      "Description": description,
                      "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]
        }));
        made.unwrap()["Invoice"].clone()
    }

    fn refused(&self) -> usize {
        self.company.lock().unwrap().refused
    }

    /// The select statements the company was asked, in order.
    fn queries(&self) -> Vec<String> {
        self.calls
            .to("GET", &at("/query"))
            .iter()
            .map(|c| c.query.get("query").cloned().unwrap_or_default())
            .collect()
    }
}

impl Company {
    fn new() -> Company {
        let mut company = Company {
            customers: Vec::new(),
            invoices: Vec::new(),
            items: Vec::new(),
            last_id: 0,
            clock: EPOCH,
            refused: 0,
        };
        for (name, price) in [("Services", 0.0), ("Hours", 120.0), ("Design", 95.0)] {
            let (id, meta) = company.made_now();
            company.items.push(json!({
                "Id": id, "SyncToken": "0", "MetaData": meta, "Name": name,
                "FullyQualifiedName": name, "Active": true, "Type": "Service", "Taxable": false,
                "UnitPrice": price, "IncomeAccountRef": {"value": "1", "name": "Services"},
                "PurchaseCost": 0, "TrackQtyOnHand": false, "domain": "QBO", "sparse": false
            }));
        }
        company
    }

    /// A new Id and the MetaData of an entity made now.
    fn made_now(&mut self) -> (String, Value) {
        self.last_id += 1;
        self.clock += 60;
        let at = timestamp(self.clock);
        (
            self.last_id.to_string(),
            json!({"CreateTime": at, "LastUpdatedTime": at}),
        )
    }

    /// An answer holding one entity.
    fn reply(&self, entity: &str, value: Value) -> Value {
        let mut body = Map::new();
        body.insert(entity.to_owned(), value);
        body.insert("time".into(), json!(timestamp_ms(self.clock)));
        Value::Object(body)
    }

    fn preferences(&self) -> Value {
        let preferences = json!({
            "Id": "1", "SyncToken": "5",
            "MetaData": {"CreateTime": "2025-11-03T12:24:07-08:00",
                         "LastUpdatedTime": "2026-02-11T08:10:44-08:00"},
            "AccountingInfoPrefs": {"TrackDepartments": false, "ClassTrackingPerTxn": false,
                                    "ClassTrackingPerTxnLine": false,
                                    "CustomerTerminology": "Customers"},
            "SalesFormsPrefs": {"CustomTxnNumbers": false, "AllowDeposit": true,
                                "AllowDiscount": true, "DefaultTerms": {"value": "3"},
                                "UsingProgressInvoicing": false},
            "CurrencyPrefs": {"MultiCurrencyEnabled": false,
                              "HomeCurrency": {"value": "USD"}},
            "EmailMessagesPrefs": {"InvoiceMessage": {
                "Subject": "Invoice from Timix Stand-in Landscaping",
                "Message": "Your invoice is attached. Please remit payment at your earliest convenience."}},
            "domain": "QBO", "sparse": false
        });
        self.reply("Preferences", preferences)
    }

    fn create_customer(&mut self, body: &Value) -> Result<Value, Fault> {
        const PROPERTIES: [&str; 18] = [
            "DisplayName",
            "Title",
            "GivenName",
            "MiddleName",
            "FamilyName",
            "Suffix",
            "CompanyName",
            "PrimaryEmailAddr",
            "PrimaryPhone",
            "Mobile",
            "Fax",
            "WebAddr",
            "BillAddr",
            "ShipAddr",
            "Notes",
            "Taxable",
            "Active",
            "PrintOnCheckName",
        ];
        let Some(fields) = body.as_object() else {
            return Err(unsupported("Customer", "<body>"));
        };
        if let Some(key) = fields.keys().find(|k| !PROPERTIES.contains(&k.as_str())) {
            return Err(unsupported("Customer", key));
        }
        // Without a display name, QuickBooks makes one of the name's parts.
        let parts: Vec<&str> = ["Title", "GivenName", "MiddleName", "FamilyName", "Suffix"]
            .iter()
            .filter_map(|k| text(body, k))
            .collect();
        let name = match text(body, "DisplayName") {
            Some(name) => name.to_owned(),
            None if !parts.is_empty() => parts.join(" "),
            None => return Err(required("Name")),
        };
        if self.customers.iter().any(|c| {
            c["DisplayName"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(&name))
        }) {
            return Err(validation(
                "6240",
                "Duplicate Name Exists Error",
                "The name supplied already exists. : Another customer, vendor or employee is already using this name. Please use a different name.".into(),
            ));
        }
        let (id, meta) = self.made_now();
        let mut customer = json!({
            "Id": id, "SyncToken": "0", "MetaData": meta, "DisplayName": name,
            "FullyQualifiedName": name, "PrintOnCheckName": name, "Active": true,
            "Job": false, "BillWithParent": false, "Taxable": false, "Balance": 0,
            "BalanceWithJobs": 0, "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
            "PreferredDeliveryMethod": "Print", "IsProject": false, "domain": "QBO",
            "sparse": false
        });
        for key in [
            "CompanyName",
            "GivenName",
            "MiddleName",
            "FamilyName",
            "Title",
            "Notes",
        ] {
            if let Some(value) = text(body, key) {
                customer[key] = json!(value);
            }
        }
        // An address object without its value says nothing: it is not kept.
        for (key, inner) in [
            ("PrimaryEmailAddr", "Address"),
            ("PrimaryPhone", "FreeFormNumber"),
        ] {
            if let Some(value) = body.get(key).and_then(|v| text(v, inner)) {
                let mut object = Map::new();
                object.insert(inner.to_owned(), json!(value));
                customer[key] = Value::Object(object);
            }
        }
        self.customers.push(customer.clone());
        Ok(self.reply("Customer", customer))
    }

    fn create_invoice(&mut self, body: &Value) -> Result<Value, Fault> {
        const PROPERTIES: [&str; 9] = [
            "CustomerRef",
            "Line",
            "TxnDate",
            "DueDate",
            "DocNumber",
            "BillEmail",
            "CustomerMemo",
            "PrivateNote",
            "SalesTermRef",
        ];
        let Some(fields) = body.as_object() else {
            return Err(unsupported("Invoice", "<body>"));
        };
        if let Some(key) = fields.keys().find(|k| !PROPERTIES.contains(&k.as_str())) {
            return Err(unsupported("Invoice", key));
        }
        let customer_id =
            text(&body["CustomerRef"], "value").ok_or_else(|| required("CustomerRef"))?;
        let customer = self
            .customers
            .iter()
            .find(|c| c["Id"] == customer_id)
            .cloned()
            .ok_or_else(|| {
                validation(
                    "2500",
                    "Invalid Reference Id",
                    format!("Invalid Reference Id : Names element id {customer_id} not found"),
                )
            })?;
        let given = body["Line"]
            .as_array()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| required("Line"))?;
        let mut lines = Vec::new();
        let mut total = 0.0;
        for (n, line) in given.iter().enumerate() {
            if line["DetailType"] != "SalesItemLineDetail" {
                return Err(required("Line.DetailType"));
            }
            let amount = number(&line["Amount"]).ok_or_else(|| required("Line.Amount"))?;
            let detail = &line["SalesItemLineDetail"];
            // A line without an item sells the default one, "Services".
            let item_id = text(&detail["ItemRef"], "value").unwrap_or("1");
            let item = self
                .items
                .iter()
                .find(|i| i["Id"] == item_id)
                .ok_or_else(|| {
                    validation(
                        "2500",
                        "Invalid Reference Id",
                        format!("Invalid Reference Id : Item element id {item_id} not found"),
                    )
                })?;
            let qty = number(&detail["Qty"]);
            let price = number(&detail["UnitPrice"]);
            if let (Some(qty), Some(price)) = (qty, price)
                && (qty * price - amount).abs() > 0.005
            {
                return Err(validation(
                    "6070",
                    "Amount calculation incorrect in the request",
                    format!("Amount is not equal to UnitPrice * Qty. Supplied value:{amount}"),
                ));
            }
            let mut sold = json!({"ItemRef": {"value": item["Id"], "name": item["Name"]},
                                  "TaxCodeRef": {"value": "NON"}});
            if let Some(qty) = qty {
                sold["Qty"] = json!(qty);
            }
            if let Some(price) = price {
                sold["UnitPrice"] = json!(price);
            }
            let mut made = json!({"Id": (n + 1).to_string(), "LineNum": n + 1, "Amount": amount,
                                  "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": sold});
            if let Some(description) = text(line, "Description") {
                made["Description"] = json!(description);
            }
            lines.push(made);
            total += amount;
        }
        lines.push(json!({"Amount": total, "DetailType": "SubTotalLineDetail",
                          "SubTotalLineDetail": {}}));
        let today = (self.clock + OFFSET).div_euclid(86_400);
        let txn = match text(body, "TxnDate") {
            None => today,
            Some(date) => day(date).ok_or_else(|| invalid_date("TxnDate", date))?,
        };
        // Net 30, the default terms.
        let due = match text(body, "DueDate") {
            None => txn + 30,
            Some(date) => day(date).ok_or_else(|| invalid_date("DueDate", date))?,
        };
        let doc_number = text(body, "DocNumber")
            .map(str::to_owned)
            .unwrap_or_else(|| (1001 + self.invoices.len()).to_string());
        let (id, meta) = self.made_now();
        let mut invoice = json!({
            "Id": id, "SyncToken": "0", "MetaData": meta, "CustomField": [],
            "DocNumber": doc_number, "TxnDate": date(txn), "DueDate": date(due),
            "CurrencyRef": {"value": "USD", "name": "United States Dollar"}, "LinkedTxn": [],
            "Line": lines, "TxnTaxDetail": {"TotalTax": 0},
            "CustomerRef": {"value": customer["Id"], "name": customer["DisplayName"]},
            "TotalAmt": total, "Balance": total, "ApplyTaxAfterDiscount": false,
            "PrintStatus": "NeedToPrint", "EmailStatus": "NotSet",
            "AllowOnlineCreditCardPayment": false, "AllowOnlineACHPayment": false,
            "domain": "QBO", "sparse": false
        });
        if let Some(address) = body.get("BillEmail").and_then(|v| text(v, "Address")) {
            invoice["BillEmail"] = json!({ "Address": address });
        }
        self.invoices.push(invoice.clone());
        Ok(self.reply("Invoice", invoice))
    }

    fn send_invoice(&mut self, id: &str, send_to: Option<&str>) -> Result<Value, Fault> {
        let customers = &self.customers;
        let invoice = self
            .invoices
            .iter_mut()
            .find(|i| i["Id"] == id)
            .ok_or_else(not_found)?;
        let on_file = |invoice: &Value| {
            text(&invoice["BillEmail"], "Address")
                .or_else(|| {
                    customers
                        .iter()
                        .find(|c| c["Id"] == invoice["CustomerRef"]["value"])
                        .and_then(|c| text(&c["PrimaryEmailAddr"], "Address"))
                })
                .map(str::to_owned)
        };
        let to = send_to
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .or_else(|| on_file(invoice))
            .ok_or_else(|| {
                validation(
                    "6000",
                    "A business validation error has occurred while processing your request",
                    "Business Validation Error: The invoice has no email address to send it to."
                        .into(),
                )
            })?;
        let now = timestamp(self.clock);
        let sync = invoice["SyncToken"]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or_default();
        invoice["SyncToken"] = json!((sync + 1).to_string());
        invoice["MetaData"]["LastUpdatedTime"] = json!(now);
        invoice["BillEmail"] = json!({ "Address": to });
        invoice["EmailStatus"] = json!("EmailSent");
        invoice["DeliveryInfo"] = json!({"DeliveryType": "Email", "DeliveryTime": now});
        let sent = invoice.clone();
        Ok(self.reply("Invoice", sent))
    }

    fn query(&self, sql: &str) -> Result<Value, Fault> {
        let select = parse(sql).map_err(|reason| {
            validation(
                "4000",
                "Error parsing query",
                format!("QueryParserError: {reason}"),
            )
        })?;
        let list = match select.entity.as_str() {
            "Customer" => &self.customers,
            "Invoice" => &self.invoices,
            "Item" => &self.items,
            other => {
                return Err(validation(
                    "4001",
                    "Invalid query",
                    format!("QueryValidationError: value {other} is not a valid entity"),
                ));
            }
        };
        let mut found: Vec<&Value> = list
            .iter()
            .filter(|&e| select.filters.iter().all(|f| f.holds_for(e)))
            .collect();
        if let Some((field, descending)) = &select.order {
            found.sort_by(|a, b| {
                let order =
                    compare(dig(a, field), &text_of(dig(b, field))).unwrap_or(Ordering::Equal);
                if *descending { order.reverse() } else { order }
            });
        }
        let page: Vec<Value> = found
            .into_iter()
            .skip(select.start - 1)
            .take(select.max)
            .cloned()
            .collect();
        let mut response = Map::new();
        if !page.is_empty() {
            response.insert("startPosition".into(), json!(select.start));
            response.insert("maxResults".into(), json!(page.len()));
            response.insert(select.entity.clone(), Value::Array(page));
        }
        Ok(json!({"QueryResponse": response, "time": timestamp_ms(self.clock)}))
    }
}

fn invalid_date(field: &str, value: &str) -> Fault {
    validation(
        "2080",
        "Date is invalid",
        format!("{field} {value} is not a date of the form yyyy-MM-dd"),
    )
}

/// A text property of `value`, when there and not empty.
fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value[key].as_str().map(str::trim).filter(|s| !s.is_empty())
}

/// A decimal, sent as a number or as a numeric text (QuickBooks reads both).
fn number(value: &Value) -> Option<f64> {
    value
        .as_f64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A property by its dotted path, whatever the case of its names (`MetaData.CreateTime`).
fn dig<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(value, |v, key| {
        v.as_object()
            .and_then(|m| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)))
            .map_or(&Value::Null, |(_, inner)| inner)
    })
}

/// A select statement, read.
struct Select {
    entity: String,
    filters: Vec<Filter>,
    /// The property to sort by, and whether descending.
    order: Option<(String, bool)>,
    /// From 1.
    start: usize,
    max: usize,
}

struct Filter {
    property: String,
    /// `=`, `<`, `>`, `<=`, `>=`, `like` or `in`.
    operator: String,
    values: Vec<String>,
}

impl Filter {
    fn holds_for(&self, entity: &Value) -> bool {
        let left = dig(entity, &self.property);
        match self.operator.as_str() {
            "like" => left.as_str().is_some_and(|t| like(t, &self.values[0])),
            "in" => self
                .values
                .iter()
                .any(|v| compare(left, v) == Some(Ordering::Equal)),
            operator => compare(left, &self.values[0]).is_some_and(|o| match operator {
                "=" => o == Ordering::Equal,
                "<" => o == Ordering::Less,
                ">" => o == Ordering::Greater,
                "<=" => o != Ordering::Greater,
                _ => o != Ordering::Less,
            }),
        }
    }
}

/// Compares a property with a value of a query: as instants when both are times or dates, as
/// numbers when both are numbers, else as text without regard to case.
fn compare(left: &Value, right: &str) -> Option<Ordering> {
    if left.is_null() || left.is_array() || left.is_object() {
        return None;
    }
    let left = text_of(left);
    if let (Some(a), Some(b)) = (instant(&left), instant(right)) {
        return Some(a.cmp(&b));
    }
    if let (Ok(a), Ok(b)) = (left.parse::<f64>(), right.parse::<f64>()) {
        return a.partial_cmp(&b);
    }
    Some(left.to_lowercase().cmp(&right.to_lowercase()))
}

/// LIKE: `%` stands for any characters; case does not matter.
fn like(text: &str, pattern: &str) -> bool {
    let text = text.to_lowercase();
    let pattern = pattern.to_lowercase();
    let parts: Vec<&str> = pattern.split('%').collect();
    if parts.len() == 1 {
        return text == pattern;
    }
    let mut at = 0;
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            continue;
        }
        if i == 0 {
            if !text.starts_with(part) {
                return false;
            }
            at = part.len();
        } else if i == parts.len() - 1 {
            return text[at..].ends_with(part);
        } else {
            match text[at..].find(part) {
                Some(found) => at += found + part.len(),
                None => return false,
            }
        }
    }
    true
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Symbol(String),
}

fn tokens(sql: &str) -> Result<Vec<Token>, String> {
    const SYMBOLS: &str = "'<>=(),*";
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut value = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("Lexical error: a quoted value is not closed".into()),
                    Some('\\') if i + 1 < chars.len() => {
                        value.push(chars[i + 1]);
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(other) => {
                        value.push(*other);
                        i += 1;
                    }
                }
            }
            out.push(Token::Quoted(value));
        } else if c == '<' || c == '>' {
            if chars.get(i + 1) == Some(&'=') {
                out.push(Token::Symbol(format!("{c}=")));
                i += 2;
            } else {
                out.push(Token::Symbol(c.to_string()));
                i += 1;
            }
        } else if SYMBOLS.contains(c) {
            out.push(Token::Symbol(c.to_string()));
            i += 1;
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !SYMBOLS.contains(chars[i]) {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
        }
    }
    Ok(out)
}

/// Reads tokens of a select statement one by one.
struct Reader {
    tokens: Vec<Token>,
    at: usize,
}

impl Reader {
    /// Takes the keyword when it is next (any case).
    fn keyword(&mut self, keyword: &str) -> bool {
        match self.tokens.get(self.at) {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword) => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    fn symbol(&mut self, symbol: &str) -> bool {
        match self.tokens.get(self.at) {
            Some(Token::Symbol(s)) if s == symbol => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    fn word(&mut self) -> Result<String, String> {
        match self.tokens.get(self.at) {
            Some(Token::Word(w)) => {
                self.at += 1;
                Ok(w.clone())
            }
            other => Err(format!("Encountered {other:?} where a name was expected")),
        }
    }

    /// A value: quoted, or a bare word (a number, true, false).
    fn value(&mut self) -> Result<String, String> {
        match self.tokens.get(self.at) {
            Some(Token::Quoted(v) | Token::Word(v)) => {
                self.at += 1;
                Ok(v.clone())
            }
            other => Err(format!("Encountered {other:?} where a value was expected")),
        }
    }

    fn count(&mut self) -> Result<usize, String> {
        let word = self.word()?;
        word.parse()
            .map_err(|_| format!("Encountered \"{word}\" where a number was expected"))
    }
}

fn parse(sql: &str) -> Result<Select, String> {
    let mut read = Reader {
        tokens: tokens(sql)?,
        at: 0,
    };
    if !read.keyword("select") || !read.symbol("*") {
        return Err("a query starts with select * (count(*) is not served here)".into());
    }
    if !read.keyword("from") {
        return Err("Encountered a name where from was expected".into());
    }
    let entity = read.word()?;
    let mut filters = Vec::new();
    if read.keyword("where") {
        loop {
            let property = read.word()?;
            let operator = ["<=", ">=", "=", "<", ">"]
                .into_iter()
                .find(|s| read.symbol(s))
                .map(str::to_owned)
                .or_else(|| read.keyword("like").then(|| "like".to_owned()))
                .or_else(|| read.keyword("in").then(|| "in".to_owned()))
                .ok_or_else(|| {
                    format!("Encountered an operator QuickBooks does not know after {property}")
                })?;
            let mut values = Vec::new();
            if operator == "in" {
                if !read.symbol("(") {
                    return Err("IN needs a list in parentheses".into());
                }
                loop {
                    values.push(read.value()?);
                    if !read.symbol(",") {
                        break;
                    }
                }
                if !read.symbol(")") {
                    return Err("IN's list is not closed".into());
                }
            } else {
                values.push(read.value()?);
            }
            filters.push(Filter {
                property,
                operator,
                values,
            });
            if !read.keyword("and") {
                break;
            }
        }
    }
    let mut order = None;
    if read.keyword("orderby") || (read.keyword("order") && read.keyword("by")) {
        let property = read.word()?;
        let descending = read.keyword("desc");
        if !descending {
            read.keyword("asc");
        }
        order = Some((property, descending));
    }
    let mut start = 1;
    if read.keyword("startposition") {
        start = read.count()?.max(1);
    }
    let mut max = 100;
    if read.keyword("maxresults") {
        max = read.count()?.min(1000);
    }
    if let Some(extra) = read.tokens.get(read.at) {
        return Err(format!(
            "Encountered {extra:?} after the end of the statement"
        ));
    }
    Ok(Select {
        entity,
        filters,
        order,
        start,
        max,
    })
}

/// Days since 1970-01-01 of a date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01 (`civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `2026-03-02`, a day since 1970-01-01.
fn date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day of `2026-03-02`.
fn day(text: &str) -> Option<i64> {
    let mut parts = text.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d) = (
        y.parse::<i64>().ok()?,
        m.parse::<i64>().ok()?,
        d.parse::<i64>().ok()?,
    );
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then(|| days_from_civil(y, m, d))
}

/// `2026-03-02T09:00:00-08:00`: an instant as QuickBooks shows it, in the company's zone.
fn timestamp(at: i64) -> String {
    let local = at + OFFSET;
    let second = local.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}-08:00",
        date(local.div_euclid(86_400)),
        second / 3600,
        second / 60 % 60,
        second % 60
    )
}

/// The same with milliseconds, as the `time` of an answer.
fn timestamp_ms(at: i64) -> String {
    timestamp(at).replace("-08:00", ".000-08:00")
}

/// Seconds since the epoch of `2026-03-02T09:00:00-08:00`, `…Z`, `…+0100`, `…` (in the
/// company's zone), with or without a fraction of a second, or of a date (its midnight there).
fn instant(text: &str) -> Option<i64> {
    let text = text.trim();
    let days = day(text.get(..10)?)?;
    let rest = &text[10..];
    if rest.is_empty() {
        return Some(days * 86_400 - OFFSET);
    }
    let clock = rest.strip_prefix('T')?;
    let (hms, zone) = (clock.get(..8)?, &clock[8..]);
    let mut parts = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
    let zone = zone.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let offset = match zone {
        "" => OFFSET,
        "Z" => 0,
        _ => {
            let sign = match zone.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 {
                return None;
            }
            sign * (digits.get(..2)?.parse::<i64>().ok()? * 3600
                + digits.get(2..)?.parse::<i64>().ok()? * 60)
        }
    };
    Some(days * 86_400 + h * 3600 + m * 60 + s - offset)
}

/// An answer as QuickBooks writes it in XML.
fn xml(body: &Value) -> String {
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\
         <IntuitResponse xmlns=\"http://schema.intuit.com/finance/v3\" time=\"{}\">",
        body["time"].as_str().unwrap_or_default()
    );
    for (name, value) in body.as_object().into_iter().flatten() {
        if name != "time" {
            element(name, value, &mut out);
        }
    }
    out.push_str("</IntuitResponse>");
    out
}

fn element(name: &str, value: &Value, out: &mut String) {
    match value {
        Value::Null => {}
        Value::Array(list) => {
            for item in list {
                element(name, item, out);
            }
        }
        Value::Object(map) => {
            out.push_str(&format!("<{name}>"));
            for (key, inner) in map {
                element(key, inner, out);
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::String(s) => {
            let escaped = s
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            out.push_str(&format!("<{name}>{escaped}</{name}>"));
        }
        other => out.push_str(&format!("<{name}>{other}</{name}>")),
    }
}

/// A path below the company's base (`/v3/company/123/customer`).
fn at(path: &str) -> String {
    format!("/v3/company/{REALM}{path}")
}

/// A body read as JSON; an empty one as null, one that is not JSON as its text.
fn json_of(body: &Bytes) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn preferences(
    State(qb): State<QuickBooks>,
    Path(realm): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let request = Incoming {
        method: "GET",
        path: format!("/v3/company/{realm}/preferences"),
        realm,
        query,
        headers,
        body: Value::Null,
    };
    qb.answer(request, |company, _| Ok(company.preferences()))
}

async fn create_customer(
    State(qb): State<QuickBooks>,
    Path(realm): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = Incoming {
        method: "POST",
        path: format!("/v3/company/{realm}/customer"),
        realm,
        query,
        headers,
        body: json_of(&body),
    };
    qb.answer(request, |company, request| {
        company.create_customer(&request.body)
    })
}

async fn create_invoice(
    State(qb): State<QuickBooks>,
    Path(realm): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = Incoming {
        method: "POST",
        path: format!("/v3/company/{realm}/invoice"),
        realm,
        query,
        headers,
        body: json_of(&body),
    };
    qb.answer(request, |company, request| {
        company.create_invoice(&request.body)
    })
}

async fn send_invoice(
    State(qb): State<QuickBooks>,
    Path((realm, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = Incoming {
        method: "POST",
        path: format!("/v3/company/{realm}/invoice/{id}/send"),
        realm,
        query,
        headers,
        body: json_of(&body),
    };
    qb.answer(request, |company, request| {
        company.send_invoice(&id, request.query.get("sendTo").map(String::as_str))
    })
}

async fn run_query(
    State(qb): State<QuickBooks>,
    Path(realm): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let request = Incoming {
        method: "GET",
        path: format!("/v3/company/{realm}/query"),
        realm,
        query,
        headers,
        body: Value::Null,
    };
    qb.answer(request, |company, request| {
        match request.query.get("query") {
            Some(sql) => company.query(sql),
            None => Err(validation(
                "4000",
                "Error parsing query",
                "QueryParserError: Encountered \"<EOF>\" at line 1, column 0.".into(),
            )),
        }
    })
}

/// A company with three products on a free local port, and its OAuth provider at Intuit's
/// paths: the handle and the base URL.
async fn start() -> (QuickBooks, String) {
    let qb = QuickBooks {
        company: Arc::new(Mutex::new(Company::new())),
        calls: Calls::default(),
        oauth: OAuth::new(3600),
    };
    let router = Router::new()
        .route("/v3/company/{realm}/preferences", get(preferences))
        .route("/v3/company/{realm}/customer", post(create_customer))
        .route("/v3/company/{realm}/invoice", post(create_invoice))
        .route("/v3/company/{realm}/invoice/{id}/send", post(send_invoice))
        .route("/v3/company/{realm}/query", get(run_query))
        .with_state(qb.clone())
        .merge(
            qb.oauth
                .routes("/connect/oauth2", "/oauth2/v1/tokens/bearer"),
        );
    let url = serve(router).await;
    (qb, url)
}

/// A QuickBooks connection of `c`'s organization to the stand-in at `url`, authorized.
async fn connection(c: &Client, url: &str) -> String {
    let id = c
        .post(
            "/connections",
            json!({
                "name": "QuickBooks (sandbox company)", "connector": "quickbooks",
                "baseUrl": format!("{url}/v3/company/{REALM}"),
                "settings": {"realmId": REALM, "clientId": "ABq0TimixStandInClientId",
                             "authorizeUrl": format!("{url}/connect/oauth2"),
                             "tokenUrl": format!("{url}/oauth2/v1/tokens/bearer")},
                "credentials": {"clientSecret": "stand-in-client-secret"}
            }),
        )
        .await
        .expect(201)
        .id();
    connect(c, &id).await;
    id
}

/// A flow started by a webhook with these `steps`, run once on `payload`: the finished run.
async fn run_steps(server: &Server, c: &Client, steps: Value, payload: Value) -> Value {
    let flow = c
        .post(
            "/flows",
            json!({"name": "Invoice in QuickBooks", "trigger": {"type": "webhook"}, "steps": steps}),
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

/// What every call of the connector sends besides its own: JSON asked for, minor version 75,
/// a token the company knows.
fn assert_usual(call: &Call) {
    assert!(
        header(call, "accept").contains("application/json"),
        "{} {}: {:?}",
        call.method,
        call.path,
        call.headers
    );
    assert_eq!(
        call.query.get("minorversion").map(String::as_str),
        Some("75"),
        "{} {}",
        call.method,
        call.path
    );
    assert!(header(call, "authorization").starts_with("Bearer access-"));
}

/// A lookup's items as (label, value), sorted.
async fn lookup(c: &Client, name: &str, connection: &str, q: &str) -> Vec<(String, String)> {
    let found = c
        .get(&format!(
            "/connectors/quickbooks/lookups/{name}?connectionId={connection}&q={q}"
        ))
        .await
        .expect(200);
    assert_eq!(found.body["hasMore"], false, "{}", found.body);
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
    items
}

#[tokio::test]
async fn customers_and_invoices_are_created_in_the_company_and_emailed() {
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (qb, url) = start().await;
    let con = connection(&c, &url).await;

    // The connection test reads the company's preferences, with the token of the authorization.
    let info = || qb.calls.to("GET", &at("/preferences"));
    let before = info().len();
    let tested = c
        .post(&format!("/connections/{con}/test"), json!({}))
        .await
        .expect(200);
    assert_eq!(tested.body["status"], "ok", "{}", tested.body);
    let read = info();
    assert_eq!(read.len(), before + 1, "{:?}", qb.calls.all());
    assert!(header(&read[before], "authorization").starts_with("Bearer access-"));

    let run = run_action(
        &c,
        "quickbooks.create_customer",
        &con,
        json!({"displayName": "{{trigger.name}}", "companyName": "Acme Ltd",
               "email": "billing@acme.example", "phone": "+1 415 555 0100"}),
        json!({"name": "Acme Ltd"}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let customer = run["steps"][0]["output"].clone();
    assert_eq!(
        customer["DisplayName"], "Acme Ltd",
        "the Customer of the answer"
    );
    assert_eq!(
        customer["PrimaryEmailAddr"]["Address"],
        "billing@acme.example"
    );
    assert_eq!(
        customer["PrimaryPhone"]["FreeFormNumber"],
        "+1 415 555 0100"
    );
    assert_eq!(customer["Active"], true);
    let customer_id = customer["Id"].as_str().unwrap().to_owned();
    let sent = qb.calls.to("POST", &at("/customer"));
    assert_eq!(sent.len(), 1);
    assert_usual(&sent[0]);
    assert_eq!(sent[0].body["DisplayName"], "Acme Ltd");
    assert_eq!(sent[0].body["CompanyName"], "Acme Ltd");
    assert_eq!(
        sent[0].body["PrimaryEmailAddr"],
        json!({"Address": "billing@acme.example"})
    );
    assert!(
        sent[0].body.get("GivenName").is_none() && sent[0].body.get("Notes").is_none(),
        "inputs not given are left out: {}",
        sent[0].body
    );

    // An invoice of ten hours of design for it, then emailed.
    let run = run_steps(
        &server,
        &c,
        json!([
            {"key": "invoice", "action": "quickbooks.create_invoice", "connectionId": con,
             "input": {"customerId": "{{trigger.customerId}}", "itemId": "{{trigger.itemId}}",
                       "description": "Design work, March", "quantity": "{{trigger.hours}}",
                       "unitPrice": 95, "amount": 950, "dueDate": "2026-04-30"}},
            {"key": "email", "action": "quickbooks.send_invoice", "connectionId": con,
             "input": {"invoiceId": "{{steps.invoice.Id}}", "email": "ap@acme.example"}}
        ]),
        json!({"customerId": customer_id, "itemId": "3", "hours": 10}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let invoice = &run["steps"][0]["output"];
    assert_eq!(
        invoice["CustomerRef"],
        json!({"value": customer_id, "name": "Acme Ltd"})
    );
    assert_eq!(invoice["TotalAmt"].as_f64(), Some(950.0));
    assert_eq!(invoice["DueDate"], "2026-04-30");
    assert_eq!(
        invoice["Line"][0]["SalesItemLineDetail"]["ItemRef"]["name"],
        "Design"
    );
    assert_eq!(invoice["Line"][0]["Description"], "Design work, March");
    assert!(invoice["DocNumber"].is_string(), "{invoice}");
    let sent = qb.calls.to("POST", &at("/invoice"));
    assert_eq!(sent.len(), 1);
    assert_usual(&sent[0]);
    let line = &sent[0].body["Line"][0];
    assert_eq!(
        line["DetailType"], "SalesItemLineDetail",
        "{}",
        sent[0].body
    );
    assert_eq!(line["Amount"].as_f64(), Some(950.0));
    assert_eq!(line["SalesItemLineDetail"]["ItemRef"]["value"], "3");
    assert_eq!(line["SalesItemLineDetail"]["Qty"].as_f64(), Some(10.0));
    assert_eq!(
        line["SalesItemLineDetail"]["UnitPrice"].as_f64(),
        Some(95.0)
    );
    assert_eq!(sent[0].body["CustomerRef"]["value"], customer_id.as_str());
    assert!(sent[0].body.get("TxnDate").is_none(), "{}", sent[0].body);

    let emailed = &run["steps"][1]["output"];
    assert_eq!(emailed["Id"], invoice["Id"]);
    assert_eq!(emailed["EmailStatus"], "EmailSent");
    assert_eq!(emailed["BillEmail"]["Address"], "ap@acme.example");
    let id = invoice["Id"].as_str().unwrap();
    let send = qb.calls.to("POST", &at(&format!("/invoice/{id}/send")));
    assert_eq!(send.len(), 1);
    assert_usual(&send[0]);
    assert_eq!(
        send[0].query.get("sendTo").map(String::as_str),
        Some("ap@acme.example")
    );

    // A second customer of the same name: QuickBooks' reason, at once.
    let refused = run_action(
        &c,
        "quickbooks.create_customer",
        &con,
        json!({"displayName": "acme ltd"}),
        json!({}),
    )
    .await;
    assert_eq!(refused["status"], "failed", "{refused}");
    let step = &refused["steps"][0];
    assert_eq!(step["attempts"], 1, "{step}");
    assert_eq!(step["error"]["status"], 400, "{step}");
    assert!(
        step["error"]["message"].as_str().is_some_and(
            |m| m.contains("Another customer, vendor or employee is already using this name")
        ),
        "{step}"
    );
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_once_and_the_call_goes_through() {
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (qb, url) = start().await;
    let con = connection(&c, &url).await;
    let create = |name: &str| {
        run_action(
            &c,
            "quickbooks.create_customer",
            &con,
            json!({"displayName": name}),
            json!({}),
        )
    };

    let first = create("Globex Corporation").await;
    assert_eq!(first["status"], "succeeded", "{first}");
    // The hour is up: QuickBooks refuses the token with a 401 until it is refreshed.
    qb.oauth.expire_all();
    let second = create("Initech").await;
    assert_eq!(second["status"], "succeeded", "{second}");
    assert_eq!(second["steps"][0]["output"]["DisplayName"], "Initech");
    assert_eq!(qb.oauth.refreshes(), 1);
    assert_eq!(qb.refused(), 1);
    let sent = qb.calls.to("POST", &at("/customer"));
    assert_eq!(sent.len(), 3, "Globex; Initech refused; Initech again");
    assert_eq!(sent[1].body["DisplayName"], "Initech");
    assert_eq!(sent[2].body["DisplayName"], "Initech");
    assert_eq!(
        header(&sent[0], "authorization"),
        header(&sent[1], "authorization"),
        "the expired token was tried first"
    );
    assert_ne!(
        header(&sent[1], "authorization"),
        header(&sent[2], "authorization"),
        "then the fresh one"
    );

    // The fresh token serves the next call without another refresh.
    let third = create("Umbrella Corporation").await;
    assert_eq!(third["status"], "succeeded", "{third}");
    assert_eq!(qb.oauth.refreshes(), 1);
    assert_eq!(qb.refused(), 1);
    let names: Vec<String> = qb
        .company
        .lock()
        .unwrap()
        .customers
        .iter()
        .map(|c| c["DisplayName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        vec!["Globex Corporation", "Initech", "Umbrella Corporation"]
    );
}

#[tokio::test]
async fn each_new_invoice_runs_once() {
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (qb, url) = start().await;
    let acme = qb.add_customer("Acme Ltd", "billing@acme.example");
    let globex = qb.add_customer("Globex Corporation", "ap@globex.example");
    let old = qb.add_invoice(&acme, 400.0, "Retainer, February");
    let con = connection(&c, &url).await;
    let flow = c
        .post(
            "/flows",
            json!({
                "name": "Follow new invoices",
                "trigger": {"type": "poll", "connectionId": con, "source": "quickbooks.new_invoice",
                            "schedule": "* * * * * *"},
                "steps": [{"key": "note", "action": "create_customer",
                           "input": {"name": "Invoice {{trigger.DocNumber}} for {{trigger.CustomerRef.name}}",
                                     "externalId": "qbo:{{trigger.Id}}"}}]
            }),
        )
        .await
        .expect(201)
        .id();
    // The first poll takes the invoice already there as seen.
    eventually(
        "the first poll",
        || async { json!(qb.queries().len()) },
        |n| n.as_u64() >= Some(1),
    )
    .await;
    let new = [
        qb.add_invoice(&globex, 1250.0, "Design work, March"),
        qb.add_invoice(&acme, 95.5, "Hosting, March"),
    ];

    let runs = finished_runs(&c, &flow, 2).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    let mut seen = Vec::new();
    for run in &runs {
        assert_eq!(run["status"], "succeeded", "{run}");
        let id = run["trigger"]["Id"].as_str().unwrap();
        let invoice = new
            .iter()
            .find(|i| i["Id"] == id)
            .unwrap_or_else(|| panic!("{id} is not a new invoice: {run}"));
        assert_eq!(
            run["trigger"]["TotalAmt"].as_f64(),
            invoice["TotalAmt"].as_f64()
        );
        assert_eq!(
            run["steps"][0]["output"]["name"],
            format!(
                "Invoice {} for {}",
                invoice["DocNumber"].as_str().unwrap(),
                invoice["CustomerRef"]["name"].as_str().unwrap()
            )
        );
        assert_eq!(run["steps"][0]["output"]["externalId"], format!("qbo:{id}"));
        seen.push(id.to_owned());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 2, "each new invoice ran once");

    // The first poll read the newest invoices; the next ones what came since the newest seen,
    // oldest first.
    let queries = qb.queries();
    assert!(
        queries[0].to_lowercase().contains(" desc") && queries[0].contains("1970-01-01T00:00:00Z"),
        "{}",
        queries[0]
    );
    let since = old["MetaData"]["CreateTime"].as_str().unwrap();
    assert!(
        queries[1..]
            .iter()
            .any(|q| q.contains(&format!(">= '{since}'")) && q.to_lowercase().contains(" asc")),
        "{queries:#?}"
    );
    qb.calls
        .to("GET", &at("/query"))
        .iter()
        .for_each(assert_usual);

    // Later polls start nothing again.
    let polled = queries.len() as u64;
    eventually(
        "two more polls",
        || async { json!(qb.queries().len()) },
        |n| n.as_u64() >= Some(polled + 2),
    )
    .await;
    let all = c
        .get(&format!("/runs?flowId={flow}"))
        .await
        .expect(200)
        .items();
    assert_eq!(all.len(), 2, "no invoice ran twice");
}

#[tokio::test]
async fn dropdowns_and_the_search_find_customers_by_name() {
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (qb, url) = start().await;
    let made: Vec<Value> = [
        ("Acme Ltd", "billing@acme.example"),
        ("Globex Corporation", "ap@globex.example"),
        ("Acme Robotics", "hello@acmerobotics.example"),
        ("O'Brien Plumbing", "office@obrien.example"),
    ]
    .iter()
    .map(|(name, email)| qb.add_customer(name, email))
    .collect();
    let id = |i: usize| made[i]["Id"].as_str().unwrap().to_owned();
    let con = connection(&c, &url).await;

    assert_eq!(
        lookup(&c, "customers", &con, "acme").await,
        vec![
            ("Acme Ltd".to_owned(), id(0)),
            ("Acme Robotics".to_owned(), id(2))
        ]
    );
    let asked = qb.queries();
    assert!(
        asked
            .last()
            .is_some_and(|q| q.to_lowercase().contains("displayname like '%acme%'")),
        "{asked:?}"
    );
    // A quote in the term is escaped for the query language.
    assert_eq!(
        lookup(&c, "customers", &con, "o%27brien").await,
        vec![("O'Brien Plumbing".to_owned(), id(3))]
    );
    assert!(
        qb.queries().last().unwrap().contains(r"'%o\'brien%'"),
        "{:?}",
        qb.queries().last()
    );
    // Nothing matches: QuickBooks leaves Customer out of QueryResponse altogether.
    assert!(lookup(&c, "customers", &con, "zzz").await.is_empty());
    // Every product and service when there is no term.
    let items: Vec<String> = lookup(&c, "items", &con, "")
        .await
        .into_iter()
        .map(|(label, _)| label)
        .collect();
    assert_eq!(items, vec!["Design", "Hours", "Services"]);
    qb.calls
        .to("GET", &at("/query"))
        .iter()
        .for_each(assert_usual);

    // The search action: the customer of exactly that name, capital letters aside.
    let found = run_action(
        &c,
        "quickbooks.find_customer",
        &con,
        json!({"displayName": "o'brien plumbing"}),
        json!({}),
    )
    .await;
    assert_eq!(found["status"], "succeeded", "{found}");
    assert_eq!(found["steps"][0]["output"]["Id"], id(3).as_str());
    assert_eq!(
        found["steps"][0]["output"]["DisplayName"],
        "O'Brien Plumbing"
    );
}
