//! HubSpot stand-in and the `hubspot` connector's tests. The stand-in answers as HubSpot's public
//! reference describes (pages cited in manifests/connectors/hubspot/connector.yaml):
//! - CRM v3 contacts: create (`POST /crm/v3/objects/contacts` → 201), update (`PATCH …/{id}`;
//!   an empty text clears a property), list (`GET`, `limit`/`after`), and search
//!   (`POST …/contacts/search`: `filterGroups` (OR of ANDs), `sorts`, `properties`, `limit` ≤ 200,
//!   `after` → `{total, results, paging.next.after}`, default properties createdate, email,
//!   firstname, hs_object_id, lastmodifieddate, lastname);
//! - owners: `GET /crm/v3/owners` (`limit` ≤ 500, opaque `after`, `email`, `archived`);
//! - OAuth 2: `/oauth/authorize` and `/oauth/v1/token` (the shared [`OAuth`] provider), Bearer
//!   tokens on every call;
//! - errors `{status: "error", message, correlationId, category}`: 401 EXPIRED_AUTHENTICATION for a
//!   stale token (INVALID_AUTHENTICATION without one), 400 VALIDATION_ERROR, 404
//!   OBJECT_NOT_FOUND, 409 CONFLICT for a second contact with the same email, and 429
//!   `{errorType: RATE_LIMIT, policyName: SECONDLY}` with `Retry-After`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::{
    Call, Calls, OAuth, connect, eventually, finished_runs, percent_decoded, query_of, run_action,
    serve, server,
};
use crate::harness::{Client, Server};

const CONTACTS: &str = "/crm/v3/objects/contacts";
const SEARCH: &str = "/crm/v3/objects/contacts/search";
const OWNERS: &str = "/crm/v3/owners";
/// What a search returns for a contact when the request names no properties.
const DEFAULT_PROPERTIES: [&str; 6] = [
    "createdate",
    "email",
    "firstname",
    "hs_object_id",
    "lastmodifieddate",
    "lastname",
];
/// The contact properties of a portal without custom ones (those the connector writes, and a few
/// more); HubSpot refuses any other name.
const WRITABLE: [&str; 14] = [
    "email",
    "firstname",
    "lastname",
    "phone",
    "company",
    "jobtitle",
    "website",
    "lifecyclestage",
    "hubspot_owner_id",
    "address",
    "city",
    "state",
    "zip",
    "country",
];
const READ_ONLY: [&str; 3] = ["createdate", "lastmodifieddate", "hs_object_id"];
const LIFECYCLE_STAGES: [&str; 8] = [
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
];
/// Seconds a rate-limited caller is told to wait.
const RETRY_AFTER: u64 = 1;

/// A HubSpot portal: contacts, owners, an OAuth provider and the record of the calls.
#[derive(Clone)]
pub struct HubSpot {
    pub oauth: OAuth,
    pub calls: Calls,
    crm: Arc<Mutex<Crm>>,
    /// Requests still to be answered 429.
    throttled: Arc<AtomicUsize>,
    /// 401s answered.
    refused: Arc<AtomicUsize>,
}

struct Crm {
    contacts: Vec<Contact>,
    owners: Vec<Value>,
    next_id: u64,
    /// The time the next write happens at, in ms: each write is a minute after the last.
    clock: i64,
}

struct Contact {
    id: String,
    created: i64,
    updated: i64,
    properties: Map<String, Value>,
}

impl Contact {
    fn property(&self, name: &str) -> Value {
        match name {
            "createdate" => json!(iso(self.created)),
            "lastmodifieddate" => json!(iso(self.updated)),
            "hs_object_id" => json!(self.id),
            _ => self.properties.get(name).cloned().unwrap_or(Value::Null),
        }
    }

    /// The contact as the API shows it, with these properties.
    fn object<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Value {
        let properties: Map<String, Value> = names
            .into_iter()
            .map(|name| (name.to_owned(), self.property(name)))
            .collect();
        json!({"id": self.id, "properties": properties, "createdAt": iso(self.created),
               "updatedAt": iso(self.updated), "archived": false})
    }

    /// The answer to a create or an update: the defaults and every property that has a value.
    fn written(&self) -> Value {
        let mut names: Vec<&str> = DEFAULT_PROPERTIES.to_vec();
        names.extend(self.properties.keys().map(String::as_str));
        self.object(names)
    }
}

impl HubSpot {
    pub fn new(oauth: OAuth) -> HubSpot {
        HubSpot {
            oauth,
            calls: Calls::default(),
            crm: Arc::new(Mutex::new(Crm {
                contacts: Vec::new(),
                owners: Vec::new(),
                next_id: 151,
                clock: iso_ms("2026-11-20T09:00:00.000Z").unwrap(),
            })),
            throttled: Arc::default(),
            refused: Arc::default(),
        }
    }

    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .route(CONTACTS, get(list_contacts).post(create_contact))
            .route(SEARCH, post(search_contacts))
            .route(&format!("{CONTACTS}/{{contact_id}}"), patch(update_contact))
            .route(OWNERS, get(list_owners))
            .with_state(self.clone())
            .merge(self.oauth.routes("/oauth/authorize", "/oauth/v1/token"))
    }

    /// A contact created in HubSpot itself (a form, a person): its id.
    pub fn add_contact(&self, properties: Value) -> String {
        let Value::Object(properties) = properties else {
            panic!("properties are an object")
        };
        self.crm.lock().unwrap().insert(properties)
    }

    /// A contact as `GET /crm/v3/objects/contacts/{id}` shows it with every property it has.
    pub fn contact(&self, id: &str) -> Value {
        let crm = self.crm.lock().unwrap();
        let contact = crm
            .contacts
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no contact {id}"));
        contact.written()
    }

    pub fn contact_count(&self) -> usize {
        self.crm.lock().unwrap().contacts.len()
    }

    /// A user of the portal who can own records: the owner's id.
    pub fn add_owner(&self, first: &str, last: &str, email: &str) -> String {
        let mut crm = self.crm.lock().unwrap();
        let n = crm.owners.len() as u64;
        let id = (41_629_779 + n).to_string();
        let at = iso(crm.tick());
        crm.owners.push(json!({
            "id": id, "email": email, "type": "PERSON", "firstName": first, "lastName": last,
            "userId": 9_586_504 + n, "userIdIncludingInactive": 9_586_504 + n,
            "createdAt": at, "updatedAt": at, "archived": false, "teams": []
        }));
        id
    }

    /// The next `n` requests are answered 429.
    pub fn throttle(&self, n: usize) {
        self.throttled.store(n, Ordering::SeqCst);
    }

    /// How many requests were refused with a 401.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// Records the request, then checks its token and the rate limit: the JSON body, or the
    /// answer HubSpot gives instead.
    async fn admit(&self, request: Request) -> Result<(Value, HashMap<String, String>), Response> {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20)
            .await
            .unwrap_or_default();
        let query = query_of(&parts.uri);
        let json: Option<Value> = if bytes.is_empty() {
            Some(Value::Null)
        } else {
            serde_json::from_slice(&bytes).ok()
        };
        self.calls.push(Call {
            method: parts.method.to_string(),
            path: percent_decoded(parts.uri.path()),
            query: query.clone(),
            headers: parts.headers.clone(),
            body: json.clone().unwrap_or(Value::Null),
        });
        if !self.oauth.valid(&parts.headers) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(unauthorized(&parts.headers));
        }
        if self
            .throttled
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(
                    json!({"status": "error", "message": "You have reached your secondly limit.",
                            "errorType": "RATE_LIMIT", "correlationId": correlation_id(),
                            "policyName": "SECONDLY", "requestId": correlation_id()}),
                ),
            )
                .into_response();
            response
                .headers_mut()
                .insert("retry-after", RETRY_AFTER.to_string().parse().unwrap());
            return Err(response);
        }
        match json {
            Some(json) => Ok((json, query)),
            None => Err(error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                "Invalid input JSON on line 1: the body is not JSON",
            )),
        }
    }
}

impl Crm {
    fn tick(&mut self) -> i64 {
        let now = self.clock;
        self.clock += 60_000;
        now
    }

    fn insert(&mut self, properties: Map<String, Value>) -> String {
        let id = self.next_id.to_string();
        self.next_id += 1;
        let created = self.tick();
        self.contacts.push(Contact {
            id: id.clone(),
            created,
            updated: created,
            properties: properties
                .into_iter()
                .map(|(k, v)| (k, json!(text(&v))))
                .collect(),
        });
        id
    }

    /// The contact (other than `except`) that has this email already.
    fn with_email(&self, email: &str, except: Option<&str>) -> Option<&Contact> {
        self.contacts.iter().find(|c| {
            Some(c.id.as_str()) != except
                && c.property("email")
                    .as_str()
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
    }
}

async fn create_contact(State(hs): State<HubSpot>, request: Request) -> Response {
    let (body, _) = match hs.admit(request).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let Some(properties) = body.get("properties").and_then(Value::as_object) else {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "Invalid input JSON on line 1: properties is required",
        );
    };
    if let Err(refused) = check_properties(properties) {
        return refused;
    }
    let mut crm = hs.crm.lock().unwrap();
    if let Some(email) = properties.get("email").map(text).filter(|e| !e.is_empty())
        && let Some(existing) = crm.with_email(&email, None)
    {
        return error(
            StatusCode::CONFLICT,
            "CONFLICT",
            &format!("Contact already exists. Existing ID: {}", existing.id),
        );
    }
    let properties: Map<String, Value> = properties
        .iter()
        .filter(|(_, v)| !text(v).is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let id = crm.insert(properties);
    let contact = crm.contacts.iter().find(|c| c.id == id).unwrap();
    (StatusCode::CREATED, Json(contact.written())).into_response()
}

async fn update_contact(
    State(hs): State<HubSpot>,
    Path(contact_id): Path<String>,
    request: Request,
) -> Response {
    let (body, _) = match hs.admit(request).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let Some(properties) = body.get("properties").and_then(Value::as_object) else {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "Invalid input JSON on line 1: properties is required",
        );
    };
    if let Err(refused) = check_properties(properties) {
        return refused;
    }
    let mut crm = hs.crm.lock().unwrap();
    if !crm.contacts.iter().any(|c| c.id == contact_id) {
        return error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "resource not found",
        );
    }
    if let Some(email) = properties.get("email").map(text).filter(|e| !e.is_empty())
        && let Some(existing) = crm.with_email(&email, Some(contact_id.as_str()))
    {
        return error(
            StatusCode::CONFLICT,
            "CONFLICT",
            &format!("Contact already exists. Existing ID: {}", existing.id),
        );
    }
    let now = crm.tick();
    let contact = crm
        .contacts
        .iter_mut()
        .find(|c| c.id == contact_id)
        .unwrap();
    for (name, value) in properties {
        let value = text(value);
        if value.is_empty() {
            contact.properties.remove(name);
        } else {
            contact.properties.insert(name.clone(), json!(value));
        }
    }
    contact.updated = now;
    Json(contact.written()).into_response()
}

/// `GET /crm/v3/objects/contacts`: a page of contacts by id (the connection test).
async fn list_contacts(State(hs): State<HubSpot>, request: Request) -> Response {
    let (_, query) = match hs.admit(request).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let limit = match page_size(query.get("limit").map(|l| json!(l)).as_ref(), 10, 100) {
        Ok(limit) => limit,
        Err(refused) => return refused,
    };
    let start = match opaque_offset(query.get("after")) {
        Ok(start) => start,
        Err(refused) => return refused,
    };
    let crm = hs.crm.lock().unwrap();
    let results: Vec<Value> = crm
        .contacts
        .iter()
        .skip(start)
        .take(limit)
        .map(|c| {
            c.object([
                "createdate",
                "email",
                "firstname",
                "hs_object_id",
                "lastmodifieddate",
                "lastname",
            ])
        })
        .collect();
    let mut answer = json!({"results": results});
    if start + limit < crm.contacts.len() {
        let after = opaque_cursor(start + limit);
        answer["paging"] = json!({"next": {"after": after,
            "link": format!("https://api.hubapi.com{CONTACTS}?after={after}")}});
    }
    Json(answer).into_response()
}

async fn search_contacts(State(hs): State<HubSpot>, request: Request) -> Response {
    let (body, _) = match hs.admit(request).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let limit = match page_size(body.get("limit"), 10, 200) {
        Ok(limit) => limit,
        Err(refused) => return refused,
    };
    // Search pages are numbered by plain offsets ("after": "100").
    let start = match body.get("after").map(text) {
        None => 0,
        Some(after) if after.is_empty() => 0,
        Some(after) => match after.parse::<usize>() {
            Ok(start) => start,
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    &format!("Invalid input JSON on line 1: after must be a number, not {after:?}"),
                );
            }
        },
    };
    let groups = body["filterGroups"].as_array().cloned().unwrap_or_default();
    let filter_count: usize = groups
        .iter()
        .map(|g| g["filters"].as_array().map_or(0, Vec::len))
        .sum();
    if groups.len() > 5
        || filter_count > 25
        || groups
            .iter()
            .any(|g| g["filters"].as_array().map_or(0, Vec::len) > 10)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "There can be at most 5 filterGroups, 10 filters in a group and 25 filters in all",
        );
    }
    let wanted: Vec<String> = match body.get("properties").and_then(Value::as_array) {
        Some(names) if !names.is_empty() => names.iter().map(text).collect(),
        _ => DEFAULT_PROPERTIES.iter().map(|p| p.to_string()).collect(),
    };
    let sort = match body["sorts"].as_array().and_then(|s| s.first()) {
        None => None,
        // Either {"propertyName": "createdate", "direction": "DESCENDING"} or "-createdate".
        Some(Value::String(s)) => Some(match s.strip_prefix('-') {
            Some(name) => (name.to_owned(), false),
            None => (s.clone(), true),
        }),
        Some(sort) => Some((
            text(&sort["propertyName"]),
            sort["direction"].as_str() != Some("DESCENDING"),
        )),
    };
    let query = body["query"].as_str().unwrap_or_default().to_lowercase();

    let crm = hs.crm.lock().unwrap();
    let mut found: Vec<&Contact> = Vec::new();
    for contact in &crm.contacts {
        let mut matched = groups.is_empty();
        for group in &groups {
            let mut all = true;
            for filter in group["filters"].as_array().into_iter().flatten() {
                match passes(contact, filter) {
                    Ok(true) => {}
                    Ok(false) => all = false,
                    Err(message) => {
                        return error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &message);
                    }
                }
            }
            matched |= all;
        }
        let in_query = query.is_empty()
            || ["firstname", "lastname", "email", "phone", "company"]
                .iter()
                .any(|p| text(&contact.property(p)).to_lowercase().contains(&query));
        if matched && in_query {
            found.push(contact);
        }
    }
    if let Some((name, ascending)) = sort {
        found.sort_by(|a, b| {
            let order =
                order_key(&name, &a.property(&name)).cmp(&order_key(&name, &b.property(&name)));
            if ascending { order } else { order.reverse() }
        });
    }
    let results: Vec<Value> = found
        .iter()
        .skip(start)
        .take(limit)
        .map(|c| c.object(wanted.iter().map(String::as_str)))
        .collect();
    let mut answer = json!({"total": found.len(), "results": results});
    if start + limit < found.len() {
        answer["paging"] = json!({"next": {"after": (start + limit).to_string()}});
    }
    Json(answer).into_response()
}

async fn list_owners(State(hs): State<HubSpot>, request: Request) -> Response {
    let (_, query) = match hs.admit(request).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let limit = match page_size(query.get("limit").map(|l| json!(l)).as_ref(), 100, 500) {
        Ok(limit) => limit,
        Err(refused) => return refused,
    };
    let start = match opaque_offset(query.get("after")) {
        Ok(start) => start,
        Err(refused) => return refused,
    };
    let archived = query.get("archived").map(String::as_str) == Some("true");
    let crm = hs.crm.lock().unwrap();
    let owners: Vec<&Value> = crm
        .owners
        .iter()
        .filter(|o| o["archived"] == archived)
        .filter(|o| {
            query.get("email").is_none_or(|e| {
                o["email"]
                    .as_str()
                    .is_some_and(|oe| oe.eq_ignore_ascii_case(e))
            })
        })
        .collect();
    let results: Vec<&Value> = owners.iter().skip(start).take(limit).copied().collect();
    let mut answer = json!({"results": results});
    if start + limit < owners.len() {
        let after = opaque_cursor(start + limit);
        answer["paging"] = json!({"next": {"after": after,
            "link": format!("https://api.hubapi.com{OWNERS}/?after={after}")}});
    }
    Json(answer).into_response()
}

/// Whether a contact passes one search filter; the reason when the filter is not valid.
fn passes(contact: &Contact, filter: &Value) -> Result<bool, String> {
    let Some(name) = filter["propertyName"].as_str() else {
        return Err("Invalid input JSON on line 1: a filter needs a propertyName".into());
    };
    if !WRITABLE.contains(&name) && !READ_ONLY.contains(&name) {
        return Err(format!("Property \"{name}\" does not exist"));
    }
    let actual = contact.property(name);
    let value = filter.get("value").map(text).unwrap_or_default();
    let compare = |value: &str| -> Result<std::cmp::Ordering, String> {
        if actual.is_null() {
            return Err(String::new());
        }
        let (a, b) = (order_key(name, &actual), order_key(name, &json!(value)));
        if is_date(name) && b == Key::Text(value.to_owned()) {
            return Err(format!("{value} is not a valid date for {name}"));
        }
        Ok(a.cmp(&b))
    };
    let ordered = |test: fn(std::cmp::Ordering) -> bool| match compare(&value) {
        Ok(order) => Ok(test(order)),
        Err(reason) if reason.is_empty() => Ok(false),
        Err(reason) => Err(reason),
    };
    let equal = |value: &str| text(&actual).eq_ignore_ascii_case(value) && !actual.is_null();
    match filter["operator"].as_str().unwrap_or("EQ") {
        "EQ" => Ok(equal(&value)),
        "NEQ" => Ok(!equal(&value)),
        "GT" => ordered(|o| o.is_gt()),
        "GTE" => ordered(|o| o.is_ge()),
        "LT" => ordered(|o| o.is_lt()),
        "LTE" => ordered(|o| o.is_le()),
        "HAS_PROPERTY" => Ok(!actual.is_null()),
        "NOT_HAS_PROPERTY" => Ok(actual.is_null()),
        "CONTAINS_TOKEN" => Ok(text(&actual)
            .to_lowercase()
            .contains(value.trim_matches('*').to_lowercase().as_str())),
        "IN" => Ok(filter["values"]
            .as_array()
            .is_some_and(|vs| vs.iter().any(|v| equal(&text(v))))),
        "NOT_IN" => Ok(!filter["values"]
            .as_array()
            .is_some_and(|vs| vs.iter().any(|v| equal(&text(v))))),
        other => Err(format!(
            "Invalid input JSON on line 1: Cannot deserialize value of type `FilterOperatorEnum` from String \"{other}\""
        )),
    }
}

fn is_date(name: &str) -> bool {
    matches!(name, "createdate" | "lastmodifieddate")
}

/// How values of a property compare: dates by instant (ms or ISO 8601), numbers as numbers.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Missing,
    Number(i64),
    Text(String),
}

fn order_key(name: &str, value: &Value) -> Key {
    if value.is_null() {
        return Key::Missing;
    }
    let value = text(value);
    if is_date(name) {
        if let Ok(ms) = value.parse::<i64>() {
            return Key::Number(ms);
        }
        if let Some(ms) = iso_ms(&value) {
            return Key::Number(ms);
        }
    } else if let Ok(n) = value.parse::<i64>() {
        return Key::Number(n);
    }
    Key::Text(value)
}

/// Refuses unknown, read-only and invalid property values as HubSpot does.
fn check_properties(properties: &Map<String, Value>) -> Result<(), Response> {
    let mut problems = Vec::new();
    for (name, value) in properties {
        let value = text(value);
        let problem = if READ_ONLY.contains(&name.as_str()) {
            Some((
                "READ_ONLY_VALUE",
                format!("{name} is a read only property; its value cannot be set."),
            ))
        } else if !WRITABLE.contains(&name.as_str()) {
            Some((
                "PROPERTY_DOESNT_EXIST",
                format!("Property \"{name}\" does not exist"),
            ))
        } else if name == "lifecyclestage"
            && !value.is_empty()
            && !LIFECYCLE_STAGES.contains(&value.as_str())
        {
            Some((
                "INVALID_OPTION",
                format!("{value} was not one of the allowed options: {LIFECYCLE_STAGES:?}"),
            ))
        } else if name == "email" && !value.is_empty() && !value.contains('@') {
            Some(("INVALID_EMAIL", format!("Email address {value} is invalid")))
        } else {
            None
        };
        if let Some((code, message)) = problem {
            problems.push(
                json!({"isValid": false, "message": message, "error": code, "name": name,
                                 "localizedErrorMessage": message}),
            );
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            &format!("Property values were not valid: {}", Value::Array(problems)),
        ))
    }
}

/// `limit` as a number of items: the default when absent, refused above `max`.
fn page_size(limit: Option<&Value>, default: usize, max: usize) -> Result<usize, Response> {
    let Some(limit) = limit else {
        return Ok(default);
    };
    match text(limit).parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            &format!("limit must be between 1 and {max}, not {limit}"),
        )),
    }
}

/// List pages name their next page by an opaque token (base64 of the offset, "MTAwCg==").
fn opaque_cursor(offset: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{offset}\n"))
}

fn opaque_offset(after: Option<&String>) -> Result<usize, Response> {
    let Some(after) = after else {
        return Ok(0);
    };
    base64::engine::general_purpose::STANDARD
        .decode(after)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.trim_end().parse().ok())
        .ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                &format!("Invalid after token: {after}"),
            )
        })
}

/// HubSpot's error envelope.
fn error(status: StatusCode, category: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"status": "error", "message": message,
                    "correlationId": correlation_id(), "category": category})),
    )
        .into_response()
}

fn unauthorized(headers: &HeaderMap) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer "));
    if bearer {
        error(
            StatusCode::UNAUTHORIZED,
            "EXPIRED_AUTHENTICATION",
            "The OAuth token used to make this call expired 0 second(s) ago.",
        )
    } else {
        error(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        )
    }
}

/// A UUID-shaped id, as HubSpot's correlation ids are.
fn correlation_id() -> String {
    let n = ulid::Ulid::generate().0;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        (n >> 96) as u32,
        (n >> 80) as u16,
        (n >> 64) as u16,
        (n >> 48) as u16,
        n & 0xffff_ffff_ffff
    )
}

/// A JSON value as HubSpot stores property values: text.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Milliseconds since 1970 of `2026-11-20T09:00:00.000Z` (the form HubSpot writes dates in).
fn iso_ms(s: &str) -> Option<i64> {
    let (date, time) = s.strip_suffix('Z')?.split_once('T')?;
    let mut ymd = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut hms = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min, sec) = (hms.next()??, hms.next()??, hms.next()??);
    let ms: i64 = format!("{fraction:0<3}").get(..3)?.parse().ok()?;
    Some(((days_from_civil(y, m, d) * 24 + h) * 60 + min) * 60_000 + sec * 1000 + ms)
}

fn iso(ms: i64) -> String {
    let (days, rest) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

/// Days since 1970-01-01 of a date of the proleptic Gregorian calendar (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = (if y >= 0 { y } else { y - 399 }) / 400;
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = (if z >= 0 { z } else { z - 146_096 }) / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Encodes a query parameter's value.
fn escaped(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests, through timix's API only.

/// A HubSpot stand-in, a timix server and an authorized `hubspot` connection to the stand-in.
struct Setup {
    _server: Server,
    c: Client,
    hubspot: HubSpot,
    connection: String,
}

async fn setup(oauth: OAuth) -> Setup {
    let hubspot = HubSpot::new(oauth);
    let url = serve(hubspot.router()).await;
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let created = c
        .post(
            "/connections",
            json!({"name": "HubSpot (stand-in)", "connector": "hubspot", "baseUrl": url,
                   "settings": {"clientId": "hubspot-client-id",
                                "authorizeUrl": format!("{url}/oauth/authorize"),
                                "tokenUrl": format!("{url}/oauth/v1/token")},
                   "credentials": {"clientSecret": "hubspot-client-secret"}}),
        )
        .await
        .expect(201);
    assert_eq!(created.body["connector"], "hubspot", "{}", created.body);
    assert_eq!(created.body["type"], "oauth2", "{}", created.body);
    let connection = created.id();
    connect(&c, &connection).await;
    Setup {
        _server: server,
        c,
        hubspot,
        connection,
    }
}

fn bearer(call: &Call) -> String {
    call.headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn each_new_contact_starts_one_run() {
    let s = setup(OAuth::default()).await;
    s.hubspot.add_contact(
        json!({"email": "ann.lee@acme.example", "firstname": "Ann", "lastname": "Lee"}),
    );
    let newest = s.hubspot.add_contact(
        json!({"email": "bruno.diaz@globex.example", "firstname": "Bruno", "lastname": "Diaz"}),
    );
    let newest_date = s.hubspot.contact(&newest)["properties"]["createdate"].clone();
    let flow = s
        .c
        .post(
            "/flows",
            json!({
                "name": "HubSpot contacts become customers",
                "trigger": {"type": "poll", "connectionId": s.connection,
                            "source": "hubspot.new_contact", "schedule": "* * * * * *"},
                "steps": [{"key": "customer", "action": "create_customer",
                           "input": {"name": "{{trigger.properties.firstname}} {{trigger.properties.lastname}}",
                                     "email": "{{trigger.properties.email}}"}}]
            }),
        )
        .await
        .expect(201)
        .id();
    // The first poll takes the two contacts as seen; a second poll means it is done.
    eventually(
        "two polls of the search endpoint",
        || async { json!(s.hubspot.calls.to("POST", SEARCH).len()) },
        |n| n.as_u64().unwrap() >= 2,
    )
    .await;
    let searches = s.hubspot.calls.to("POST", SEARCH);
    let first = &searches[0];
    assert!(
        bearer(first).starts_with("Bearer access-"),
        "{:?}",
        first.headers
    );
    let filter = &first.body["filterGroups"][0]["filters"][0];
    assert_eq!(
        *filter,
        json!({"propertyName": "createdate", "operator": "GTE", "value": "0"}),
        "the first poll has no date to start from: {}",
        first.body
    );
    assert_eq!(
        first.body["sorts"],
        json!([{"propertyName": "createdate", "direction": "ASCENDING"}])
    );
    assert_eq!(text(&first.body["limit"]), "100");

    s.hubspot.add_contact(json!({"email": "maria.garcia@initech.example",
                                 "firstname": "Maria", "lastname": "Garcia", "company": "Initech"}));
    s.hubspot.add_contact(
        json!({"email": "li.wei@umbrella.example", "firstname": "Li", "lastname": "Wei"}),
    );
    let runs = finished_runs(&s.c, &flow, 2).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    let mut names = Vec::new();
    let mut emails = Vec::new();
    for run in &runs {
        assert_eq!(run["status"], "succeeded", "{run}");
        names.push(
            run["steps"][0]["output"]["name"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        emails.push(
            run["trigger"]["properties"]["email"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        assert!(
            run["trigger"]["id"].is_string(),
            "the trigger is HubSpot's contact: {run}"
        );
    }
    names.sort();
    emails.sort();
    assert_eq!(names, ["Li Wei", "Maria Garcia"]);
    assert_eq!(
        emails,
        ["li.wei@umbrella.example", "maria.garcia@initech.example"]
    );
    let maria = runs
        .iter()
        .find(|r| r["trigger"]["properties"]["firstname"] == "Maria")
        .unwrap();
    assert_eq!(maria["trigger"]["properties"]["company"], "Initech");

    // Later polls ask for what was created after the newest contact seen.
    assert!(
        s.hubspot
            .calls
            .to("POST", SEARCH)
            .iter()
            .any(|call| call.body["filterGroups"][0]["filters"][0]["value"] == newest_date),
        "no poll asked for contacts created after {newest_date}"
    );
    // Polling goes on without starting a run twice.
    let polls = s.hubspot.calls.to("POST", SEARCH).len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        s.hubspot.calls.to("POST", SEARCH).len() > polls,
        "it kept polling"
    );
    let all =
        s.c.get(&format!("/runs?flowId={flow}"))
            .await
            .expect(200)
            .items();
    assert_eq!(all.len(), 2, "{all:?}");
}

#[tokio::test]
async fn contact_actions_send_hubspots_documented_requests() {
    let s = setup(OAuth::default()).await;
    let ann = s
        .hubspot
        .add_owner("Ann", "Lee", "ann.lee@northwind.example");

    // Create: POST /crm/v3/objects/contacts {properties}, only the fields given.
    let run = run_action(
        &s.c,
        "hubspot.create_contact",
        &s.connection,
        json!({"email": "maria.garcia@initech.example", "firstname": "Maria", "lastname": "Garcia",
               "company": "Initech", "lifecyclestage": "lead", "hubspot_owner_id": ann}),
        json!({}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let calls = s.hubspot.calls.to("POST", CONTACTS);
    assert_eq!(calls.len(), 1);
    assert!(
        s.hubspot.oauth.valid(&calls[0].headers),
        "{:?}",
        calls[0].headers
    );
    assert_eq!(
        calls[0].body,
        json!({"properties": {"email": "maria.garcia@initech.example", "firstname": "Maria",
                              "lastname": "Garcia", "company": "Initech",
                              "lifecyclestage": "lead", "hubspot_owner_id": ann}})
    );
    let created = &run["steps"][0]["output"];
    let id = created["id"].as_str().expect("the contact's id").to_owned();
    assert_eq!(
        created["properties"]["email"],
        "maria.garcia@initech.example"
    );
    assert_eq!(created["properties"]["hs_object_id"], id.as_str());
    assert_eq!(s.hubspot.contact(&id)["properties"]["company"], "Initech");

    // Update: PATCH /crm/v3/objects/contacts/{id} with the changed fields only.
    let run = run_action(
        &s.c,
        "hubspot.update_contact",
        &s.connection,
        json!({"contactId": id, "lifecyclestage": "customer", "phone": "+1 555 0100"}),
        json!({}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let calls = s.hubspot.calls.to("PATCH", &format!("{CONTACTS}/{id}"));
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].body,
        json!({"properties": {"lifecyclestage": "customer", "phone": "+1 555 0100"}})
    );
    let updated = &run["steps"][0]["output"];
    assert_eq!(updated["properties"]["lifecyclestage"], "customer");
    let stored = s.hubspot.contact(&id);
    assert_eq!(stored["properties"]["phone"], "+1 555 0100");
    assert_eq!(stored["properties"]["firstname"], "Maria", "left as it was");

    // Find: a search on the email, the first result.
    let run = run_action(
        &s.c,
        "hubspot.find_contact",
        &s.connection,
        json!({"email": "maria.garcia@initech.example"}),
        json!({}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let search = s.hubspot.calls.to("POST", SEARCH);
    assert_eq!(search.len(), 1);
    assert_eq!(
        search[0].body["filterGroups"],
        json!([{"filters": [{"propertyName": "email", "operator": "EQ",
                             "value": "maria.garcia@initech.example"}]}])
    );
    let found = &run["steps"][0]["output"];
    assert_eq!(found["id"], id.as_str(), "{run}");
    assert_eq!(found["properties"]["lifecyclestage"], "customer");

    // A second contact with the same email: HubSpot's 409 and its message fail the step.
    let run = run_action(
        &s.c,
        "hubspot.create_contact",
        &s.connection,
        json!({"email": "maria.garcia@initech.example", "firstname": "Maria"}),
        json!({}),
    )
    .await;
    assert_eq!(run["status"], "failed", "{run}");
    let error = &run["steps"][0]["error"];
    assert_eq!(error["status"], 409, "{run}");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("Contact already exists. Existing ID: {id}")),
        "{run}"
    );
    assert_eq!(s.hubspot.calls.to("POST", CONTACTS).len(), 2, "not retried");
    assert_eq!(s.hubspot.contact_count(), 1);
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_the_call_repeated() {
    let s = setup(OAuth::default()).await;
    // HubSpot's tokens last 30 minutes; this one ran out early.
    s.hubspot.oauth.expire_all();
    let run = run_action(
        &s.c,
        "hubspot.create_contact",
        &s.connection,
        json!({"email": "li.wei@umbrella.example", "firstname": "Li"}),
        json!({}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(s.hubspot.oauth.refreshes(), 1);
    assert_eq!(s.hubspot.refused(), 1, "one 401 for the stale token");
    let calls = s.hubspot.calls.to("POST", CONTACTS);
    assert_eq!(calls.len(), 2, "refused, then repeated with the new token");
    assert!(!s.hubspot.oauth.valid(&calls[0].headers));
    assert!(s.hubspot.oauth.valid(&calls[1].headers));
    assert_ne!(bearer(&calls[0]), bearer(&calls[1]));
    assert_eq!(s.hubspot.contact_count(), 1);
    assert_eq!(
        run["steps"][0]["output"]["properties"]["email"],
        "li.wei@umbrella.example"
    );

    // The new token is kept: the next step uses it without another refresh.
    let run = run_action(
        &s.c,
        "hubspot.find_contact",
        &s.connection,
        json!({"email": "li.wei@umbrella.example"}),
        json!({}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(s.hubspot.oauth.refreshes(), 1);
    assert_eq!(s.hubspot.refused(), 1);
}

#[tokio::test]
async fn a_token_about_to_expire_is_refreshed_before_use() {
    // Tokens that last 30 seconds: the one from connecting expires within the minute.
    let s = setup(OAuth::new(30)).await;
    let before = s.hubspot.oauth.refreshes();
    let run = run_action(
        &s.c,
        "hubspot.create_contact",
        &s.connection,
        json!({"email": "ann.lee@acme.example", "firstname": "Ann"}),
        json!({}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(
        s.hubspot.oauth.refreshes() > before,
        "refreshed before the call"
    );
    let calls = s.hubspot.calls.to("POST", CONTACTS);
    assert_eq!(calls.len(), 1, "no call was refused");
    assert_eq!(s.hubspot.refused(), 0);
    assert!(
        !bearer(&calls[0]).starts_with("Bearer access-1-"),
        "the call carried a refreshed token, not the first one: {}",
        bearer(&calls[0])
    );
    assert!(s.hubspot.oauth.valid(&calls[0].headers));
}

#[tokio::test]
async fn a_rate_limited_call_waits_for_retry_after_and_succeeds() {
    let s = setup(OAuth::default()).await;
    s.hubspot.throttle(1);
    let started = Instant::now();
    let run = run_action(
        &s.c,
        "hubspot.create_contact",
        &s.connection,
        json!({"email": "maria.garcia@initech.example", "firstname": "Maria"}),
        json!({}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["steps"][0]["attempts"], 2, "{run}");
    assert!(
        started.elapsed() >= Duration::from_secs(RETRY_AFTER),
        "waited Retry-After"
    );
    assert_eq!(s.hubspot.calls.to("POST", CONTACTS).len(), 2);
    assert_eq!(s.hubspot.contact_count(), 1);
}

#[tokio::test]
async fn owners_lookup_searches_and_pages() {
    let s = setup(OAuth::default()).await;
    let ann = s
        .hubspot
        .add_owner("Ann", "Lee", "ann.lee@northwind.example");
    s.hubspot
        .add_owner("Bruno", "Diaz", "bruno.diaz@northwind.example");
    for n in 1..=150 {
        s.hubspot.add_owner(
            "User",
            &format!("{n:03}"),
            &format!("user{n:03}@northwind.example"),
        );
    }
    let lookup = format!(
        "/connectors/hubspot/lookups/owners?connectionId={}",
        s.connection
    );

    // A search term: HubSpot's owners endpoint has none, so timix filters by the email shown.
    let found = s.c.get(&format!("{lookup}&q=ann")).await.expect(200);
    let items: Vec<(Value, Value)> = found
        .items()
        .iter()
        .map(|i| (i["value"].clone(), i["label"].clone()))
        .collect();
    assert_eq!(
        items,
        vec![(json!(ann), json!("ann.lee@northwind.example"))],
        "{}",
        found.body
    );
    let owners_calls = s.hubspot.calls.to("GET", OWNERS);
    assert!(!owners_calls.is_empty());
    assert!(s.hubspot.oauth.valid(&owners_calls[0].headers));
    assert_eq!(
        owners_calls[0].query.get("limit").map(String::as_str),
        Some("100")
    );
    assert_eq!(
        owners_calls[0].query.get("archived").map(String::as_str),
        Some("false")
    );

    // No term: pages of 100, the next one asked for with HubSpot's `after` token.
    let first = s.c.get(&lookup).await.expect(200);
    assert_eq!(first.items().len(), 100, "{}", first.body);
    assert_eq!(first.body["hasMore"], true, "{}", first.body);
    assert_eq!(first.items()[0]["value"], ann.as_str());
    let cursor = first.body["nextCursor"]
        .as_str()
        .expect("a next cursor")
        .to_owned();
    let second =
        s.c.get(&format!("{lookup}&cursor={}", escaped(&cursor)))
            .await
            .expect(200);
    assert_eq!(second.items().len(), 52, "{}", second.body);
    assert_eq!(second.body["hasMore"], false, "{}", second.body);
    assert!(second.body["nextCursor"].is_null(), "{}", second.body);
    let mut values: Vec<String> = first
        .items()
        .iter()
        .chain(second.items().iter())
        .map(|i| i["value"].as_str().unwrap().to_owned())
        .collect();
    values.sort();
    values.dedup();
    assert_eq!(values.len(), 152);
    assert!(
        s.hubspot
            .calls
            .to("GET", OWNERS)
            .iter()
            .any(|call| call.query.get("after") == Some(&opaque_cursor(100))),
        "the second page was asked for with paging.next.after"
    );
}

#[tokio::test]
async fn the_connection_asks_for_the_crm_scopes_and_tests_ok() {
    let s = setup(OAuth::default()).await;
    let start =
        s.c.get(&format!("/connections/{}/authorize", s.connection))
            .await
            .expect(302);
    let location = reqwest::Url::parse(start.header("location").unwrap()).unwrap();
    assert_eq!(location.path(), "/oauth/authorize");
    let params: HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(params["client_id"], "hubspot-client-id");
    let mut scopes: Vec<&str> = params["scope"].split(' ').collect();
    scopes.sort();
    assert_eq!(
        scopes,
        [
            "crm.objects.contacts.read",
            "crm.objects.contacts.write",
            "crm.objects.owners.read"
        ]
    );
    assert_eq!(params["code_challenge_method"], "S256");

    // The test lists contacts with the token.
    let before = s.hubspot.calls.to("GET", CONTACTS).len();
    let tested =
        s.c.post(&format!("/connections/{}/test", s.connection), json!({}))
            .await
            .expect(200);
    assert_eq!(tested.body["status"], "ok", "{}", tested.body);
    let calls = s.hubspot.calls.to("GET", CONTACTS);
    assert_eq!(calls.len(), before + 1);
    assert!(s.hubspot.oauth.valid(&calls[before].headers));
}
