//! Google Sheets stand-in and the `google_sheets` connector's tests. The stand-in answers as the
//! Sheets API v4 reference describes (pages cited in
//! manifests/connectors/google_sheets/connector.yaml):
//! - `GET /v4/spreadsheets/{id}` → `{spreadsheetId, properties, sheets: [{properties: {sheetId,
//!   title, index, sheetType, gridProperties}}], spreadsheetUrl}`, or only `sheets.properties`
//!   with `fields=sheets.properties`;
//! - `GET …/values/{range}` → ValueRange `{range, majorDimension, values}` (formatted text;
//!   trailing empty rows and cells left out, `values` left out when there are none);
//! - `PUT …/values/{range}` (values.update) and `POST …/values/{range}:append` (values.append),
//!   both needing `valueInputOption`, answering `{spreadsheetId, updatedRange, updatedRows, …}`
//!   and `{spreadsheetId, tableRange, updates}`; a write outside the range is refused;
//! - ranges in A1 notation: `Leads`, `'Archive 2025'!A1:C`, `Leads!2:2`, `A1:B2`;
//! - OAuth 2 (the shared [`OAuth`] provider at `/o/oauth2/v2/auth` and `/token`), Bearer tokens;
//! - errors `{error: {code, message, status}}`: 401 UNAUTHENTICATED, 400 INVALID_ARGUMENT, 404
//!   NOT_FOUND, 429 RESOURCE_EXHAUSTED (per-minute quota; `Retry-After` here, so tests need not
//!   wait out Google's minute).
//!
//! A path segment holds the range and, for append, `:append`: the route captures the whole
//! segment (percent-decoded by axum) and the handler splits the suffix off.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::{
    Call, Calls, OAuth, connect, eventually, finished_runs, percent_decoded, query_of, run_action,
    serve, server,
};
use crate::harness::{Client, Server};

/// Google's public sample spreadsheet (its quickstarts read it); the connection test reads it.
const CLASS_DATA: &str = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms";
const CLASS_DATA_ROWS: &[&[&str]] = &[
    &[
        "Student Name",
        "Gender",
        "Class Level",
        "Home State",
        "Major",
    ],
    &["Alexandra", "Female", "4. Senior", "CA", "English"],
];
/// The grid of a new sheet: 1000 rows, columns A to Z.
const ROWS: usize = 1000;
const COLUMNS: usize = 26;
const RETRY_AFTER: u64 = 1;

/// Spreadsheets of one Google account, its OAuth provider and the record of the calls.
#[derive(Clone)]
pub struct Sheets {
    pub oauth: OAuth,
    pub calls: Calls,
    books: Arc<Mutex<HashMap<String, Book>>>,
    throttled: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

struct Book {
    title: String,
    tabs: Vec<Tab>,
}

struct Tab {
    id: i64,
    title: String,
    /// Rows from row 1; cells from column A.
    rows: Vec<Vec<Value>>,
}

/// A block of cells, 1-based and inclusive.
#[derive(Debug, Clone, Copy)]
struct Cells {
    c1: usize,
    r1: usize,
    c2: usize,
    r2: usize,
}

impl Sheets {
    pub fn new(oauth: OAuth) -> Sheets {
        let sheets = Sheets {
            oauth,
            calls: Calls::default(),
            books: Arc::default(),
            throttled: Arc::default(),
            refused: Arc::default(),
        };
        sheets.insert(
            CLASS_DATA,
            "Example Spreadsheet",
            &[("Class Data", CLASS_DATA_ROWS)],
        );
        sheets
    }

    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .route("/v4/spreadsheets/{spreadsheet_id}", get(get_spreadsheet))
            .route(
                "/v4/spreadsheets/{spreadsheet_id}/values/{range}",
                get(get_values).put(update_values).post(append_values),
            )
            .with_state(self.clone())
            .merge(self.oauth.routes("/o/oauth2/v2/auth", "/token"))
    }

    /// A new spreadsheet with these sheets and rows: its id.
    pub fn add_spreadsheet(&self, title: &str, tabs: &[(&str, &[&[&str]])]) -> String {
        let id = format!("1{}", ulid::Ulid::generate());
        self.insert(&id, title, tabs);
        id
    }

    fn insert(&self, id: &str, title: &str, tabs: &[(&str, &[&[&str]])]) {
        let tabs = tabs
            .iter()
            .enumerate()
            .map(|(i, (title, rows))| Tab {
                id: if i == 0 { 0 } else { 1_000_000 + i as i64 },
                title: (*title).to_owned(),
                rows: rows
                    .iter()
                    .map(|row| row.iter().map(|cell| json!(cell)).collect())
                    .collect(),
            })
            .collect();
        self.books.lock().unwrap().insert(
            id.to_owned(),
            Book {
                title: title.to_owned(),
                tabs,
            },
        );
    }

    /// Someone types a row under the last one.
    pub fn type_row(&self, id: &str, tab: &str, row: &[&str]) {
        let mut books = self.books.lock().unwrap();
        let tab = books
            .get_mut(id)
            .and_then(|b| b.tabs.iter_mut().find(|t| t.title == tab))
            .expect("the sheet exists");
        let last = last_filled(&tab.rows);
        tab.rows.truncate(last);
        tab.rows.push(row.iter().map(|cell| json!(cell)).collect());
    }

    /// The sheet's rows as text, without trailing empty cells.
    pub fn rows(&self, id: &str, tab: &str) -> Vec<Vec<String>> {
        let books = self.books.lock().unwrap();
        let tab = books[id].tabs.iter().find(|t| t.title == tab).unwrap();
        tab.rows
            .iter()
            .map(|row| {
                let mut row: Vec<String> = row.iter().map(formatted).collect();
                while row.last().is_some_and(String::is_empty) {
                    row.pop();
                }
                row
            })
            .collect()
    }

    /// The next `n` requests are answered 429.
    pub fn throttle(&self, n: usize) {
        self.throttled.store(n, Ordering::SeqCst);
    }

    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// Records the request, then checks its token and the quota: the JSON body and the query, or
    /// Google's answer instead.
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
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            );
            response.headers_mut().insert(
                "www-authenticate",
                "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\""
                    .parse()
                    .unwrap(),
            );
            return Err(response);
        }
        if self
            .throttled
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per minute per user' of service 'sheets.googleapis.com' for consumer 'project_number:123456789012'.",
            );
            response
                .headers_mut()
                .insert("retry-after", RETRY_AFTER.to_string().parse().unwrap());
            return Err(response);
        }
        match json {
            Some(json) => Ok((json, query)),
            None => Err(error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                "Invalid JSON payload received.",
            )),
        }
    }
}

async fn get_spreadsheet(
    State(sheets): State<Sheets>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let (_, query) = match sheets.admit(request).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let books = sheets.books.lock().unwrap();
    let Some(book) = books.get(&id) else {
        return not_found();
    };
    let tabs: Vec<Value> = book
        .tabs
        .iter()
        .enumerate()
        .map(|(index, tab)| {
            json!({"properties": {"sheetId": tab.id, "title": tab.title, "index": index,
                                  "sheetType": "GRID",
                                  "gridProperties": {"rowCount": ROWS.max(tab.rows.len()),
                                                     "columnCount": COLUMNS}}})
        })
        .collect();
    // A field mask keeps only what it names (the two masks a client of this connector sends).
    let answer = match query.get("fields").map(String::as_str) {
        Some("sheets.properties") => json!({"sheets": tabs}),
        Some("sheets.properties.title") => json!({"sheets": tabs.iter()
            .map(|t| json!({"properties": {"title": t["properties"]["title"]}}))
            .collect::<Vec<_>>()}),
        _ => json!({
            "spreadsheetId": id,
            "properties": {"title": book.title, "locale": "en_US", "autoRecalc": "ON_CHANGE",
                           "timeZone": "Europe/London"},
            "sheets": tabs,
            "spreadsheetUrl": format!("https://docs.google.com/spreadsheets/d/{id}/edit"),
        }),
    };
    Json(answer).into_response()
}

/// values.get
async fn get_values(
    State(sheets): State<Sheets>,
    Path((id, range)): Path<(String, String)>,
    request: Request,
) -> Response {
    let (_, query) = match sheets.admit(request).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let columns = match query.get("majorDimension").map(String::as_str) {
        None | Some("ROWS") => false,
        Some("COLUMNS") => true,
        Some(other) => {
            return invalid(&format!(
                "Invalid value at 'major_dimension' (type.googleapis.com/google.apps.sheets.v4.Dimension), \"{other}\""
            ));
        }
    };
    let books = sheets.books.lock().unwrap();
    let Some(book) = books.get(&id) else {
        return not_found();
    };
    let (tab, cells) = match resolve(book, &range) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let mut values: Vec<Vec<String>> = Vec::new();
    for r in cells.r1..=cells.r2.min(tab.rows.len()) {
        let row = &tab.rows[r - 1];
        let mut out: Vec<String> = (cells.c1..=cells.c2.min(row.len()))
            .map(|c| formatted(&row[c - 1]))
            .collect();
        while out.last().is_some_and(String::is_empty) {
            out.pop();
        }
        values.push(out);
    }
    while values.last().is_some_and(Vec::is_empty) {
        values.pop();
    }
    if columns {
        values = transposed(&values);
    }
    let shown = Cells {
        c2: cells.c2.min(COLUMNS),
        r2: cells.r2.min(ROWS.max(tab.rows.len())),
        ..cells
    };
    let dimension = if columns { "COLUMNS" } else { "ROWS" };
    let mut answer = json!({"range": a1(&tab.title, shown), "majorDimension": dimension});
    if !values.is_empty() {
        answer["values"] = json!(values);
    }
    Json(answer).into_response()
}

/// values.update
async fn update_values(
    State(sheets): State<Sheets>,
    Path((id, range)): Path<(String, String)>,
    request: Request,
) -> Response {
    let (body, query) = match sheets.admit(request).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    if let Err(refused) = input_option(&query) {
        return refused;
    }
    let values = match rows_of(&body) {
        Ok(values) => values,
        Err(refused) => return refused,
    };
    if let Some(given) = body.get("range").and_then(Value::as_str)
        && given != range
    {
        return invalid(&format!(
            "Requested range [{given}] does not match the range in the URL [{range}]"
        ));
    }
    let mut books = sheets.books.lock().unwrap();
    let Some(book) = books.get_mut(&id) else {
        return not_found();
    };
    let (index, cells) = match resolve(book, &range) {
        Ok((tab, cells)) => (
            book.tabs.iter().position(|t| t.id == tab.id).unwrap(),
            cells,
        ),
        Err(refused) => return refused,
    };
    let height = values.len();
    let width = values.iter().map(Vec::len).max().unwrap_or(0);
    if cells.r1 + height > cells.r2 + 1 {
        return invalid(&format!(
            "Requested writing within range [{range}], but tried writing to row [{}]",
            cells.r2 + 1
        ));
    }
    if cells.c1 + width > cells.c2 + 1 {
        return invalid(&format!(
            "Requested writing within range [{range}], but tried writing to column [{}]",
            column(cells.c2 + 1)
        ));
    }
    let tab = &mut book.tabs[index];
    write(tab, cells.r1, cells.c1, &values);
    Json(json!({
        "spreadsheetId": id,
        "updatedRange": a1(&tab.title, Cells {c1: cells.c1, r1: cells.r1,
                                              c2: cells.c1 + width.max(1) - 1,
                                              r2: cells.r1 + height.max(1) - 1}),
        "updatedRows": height,
        "updatedColumns": width,
        "updatedCells": values.iter().map(Vec::len).sum::<usize>(),
    }))
    .into_response()
}

/// values.append: `{range}:append` — the values go under the table found in the range.
async fn append_values(
    State(sheets): State<Sheets>,
    Path((id, segment)): Path<(String, String)>,
    request: Request,
) -> Response {
    let (body, query) = match sheets.admit(request).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let Some(range) = segment.strip_suffix(":append") else {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", "Method not found.");
    };
    if let Err(refused) = input_option(&query) {
        return refused;
    }
    match query.get("insertDataOption").map(String::as_str) {
        None | Some("OVERWRITE" | "INSERT_ROWS") => {}
        Some(other) => {
            return invalid(&format!(
                "Invalid value at 'insert_data_option' (type.googleapis.com/google.apps.sheets.v4.SpreadsheetsValuesAppendRequest.InsertDataOption), \"{other}\""
            ));
        }
    }
    let values = match rows_of(&body) {
        Ok(values) => values,
        Err(refused) => return refused,
    };
    let mut books = sheets.books.lock().unwrap();
    let Some(book) = books.get_mut(&id) else {
        return not_found();
    };
    let (index, cells) = match resolve(book, range) {
        Ok((tab, cells)) => (
            book.tabs.iter().position(|t| t.id == tab.id).unwrap(),
            cells,
        ),
        Err(refused) => return refused,
    };
    let tab = &mut book.tabs[index];
    // The table: the filled rows from the range's first row down to the last filled one.
    let last = last_filled(&tab.rows);
    let table = (last >= cells.r1).then(|| {
        let width = tab.rows[cells.r1 - 1..last]
            .iter()
            .map(Vec::len)
            .max()
            .unwrap_or(1)
            .max(cells.c1);
        a1(
            &tab.title,
            Cells {
                c1: cells.c1,
                r1: cells.r1,
                c2: width,
                r2: last,
            },
        )
    });
    let start = (last + 1).max(cells.r1);
    let height = values.len();
    let width = values.iter().map(Vec::len).max().unwrap_or(0);
    write(tab, start, cells.c1, &values);
    let mut answer = json!({
        "spreadsheetId": id,
        "updates": {
            "spreadsheetId": id,
            "updatedRange": a1(&tab.title, Cells {c1: cells.c1, r1: start,
                                                  c2: cells.c1 + width.max(1) - 1,
                                                  r2: start + height.max(1) - 1}),
            "updatedRows": height,
            "updatedColumns": width,
            "updatedCells": values.iter().map(Vec::len).sum::<usize>(),
        }
    });
    if let Some(table) = table {
        answer["tableRange"] = json!(table);
    }
    Json(answer).into_response()
}

/// The sheet and cells a range names: `Leads`, `'Archive 2025'!A1:C`, `Leads!2:2`, or cells of
/// the first sheet (`A1:C3`).
fn resolve<'a>(book: &'a Book, range: &str) -> Result<(&'a Tab, Cells), Response> {
    let unparsable = || invalid(&format!("Unable to parse range: {range}"));
    let (title, cells) = if let Some(rest) = range.strip_prefix('\'') {
        // A quoted title; '' stands for one quote.
        let mut title = String::new();
        let mut chars = rest.chars().peekable();
        loop {
            match chars.next() {
                None => return Err(unparsable()),
                Some('\'') if chars.peek() == Some(&'\'') => {
                    chars.next();
                    title.push('\'');
                }
                Some('\'') => break,
                Some(c) => title.push(c),
            }
        }
        let after: String = chars.collect();
        match after.strip_prefix('!') {
            Some(cells) => (Some(title), cells.to_owned()),
            None if after.is_empty() => (Some(title), String::new()),
            None => return Err(unparsable()),
        }
    } else if let Some((title, cells)) = range.split_once('!') {
        (Some(title.to_owned()), cells.to_owned())
    } else if book.tabs.iter().any(|t| t.title == range) {
        (Some(range.to_owned()), String::new())
    } else {
        (None, range.to_owned())
    };
    let tab = match title {
        Some(title) => book.tabs.iter().find(|t| t.title == title),
        None => book.tabs.first(),
    }
    .ok_or_else(unparsable)?;
    let cells = parse_cells(&cells).ok_or_else(unparsable)?;
    Ok((tab, cells))
}

/// `A1`, `A1:C`, `A:C`, `2:2`, `B3:D10`, or nothing (the whole grid).
fn parse_cells(text: &str) -> Option<Cells> {
    if text.is_empty() {
        return Some(Cells {
            c1: 1,
            r1: 1,
            c2: COLUMNS,
            r2: usize::MAX,
        });
    }
    let corner = |text: &str| -> Option<(Option<usize>, Option<usize>)> {
        let letters: String = text.chars().take_while(char::is_ascii_alphabetic).collect();
        let digits = &text[letters.len()..];
        if (letters.is_empty() && digits.is_empty()) || !digits.chars().all(|c| c.is_ascii_digit())
        {
            return None;
        }
        let col = (!letters.is_empty()).then(|| {
            letters
                .to_ascii_uppercase()
                .bytes()
                .fold(0, |n, b| n * 26 + usize::from(b - b'A' + 1))
        });
        let row = if digits.is_empty() {
            None
        } else {
            Some(digits.parse::<usize>().ok().filter(|r| *r > 0)?)
        };
        Some((col, row))
    };
    let cells = match text.split_once(':') {
        None => {
            let (col, row) = corner(text)?;
            let (col, row) = (col?, row?);
            Cells {
                c1: col,
                r1: row,
                c2: col,
                r2: row,
            }
        }
        Some((from, to)) => {
            let (c1, r1) = corner(from)?;
            let (c2, r2) = corner(to)?;
            Cells {
                c1: c1.unwrap_or(1),
                r1: r1.unwrap_or(1),
                c2: c2.unwrap_or(COLUMNS),
                r2: r2.unwrap_or(usize::MAX),
            }
        }
    };
    (cells.c1 <= cells.c2 && cells.r1 <= cells.r2).then_some(cells)
}

/// A range in A1 notation as Google writes it back: `Leads!A1:C3`, `'Archive 2025'!A2`.
fn a1(title: &str, cells: Cells) -> String {
    let plain = title.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !title.starts_with(|c: char| c.is_ascii_digit());
    let sheet = if plain {
        title.to_owned()
    } else {
        format!("'{}'", title.replace('\'', "''"))
    };
    let from = format!("{}{}", column(cells.c1), cells.r1);
    if cells.c1 == cells.c2 && cells.r1 == cells.r2 {
        format!("{sheet}!{from}")
    } else {
        format!("{sheet}!{from}:{}{}", column(cells.c2), cells.r2)
    }
}

/// 1 → A, 26 → Z, 27 → AA.
fn column(mut n: usize) -> String {
    let mut letters = Vec::new();
    while n > 0 {
        letters.push(b'A' + ((n - 1) % 26) as u8);
        n = (n - 1) / 26;
    }
    letters.reverse();
    String::from_utf8(letters).unwrap()
}

/// How many rows there are down to the last one with a value.
fn last_filled(rows: &[Vec<Value>]) -> usize {
    rows.iter()
        .rposition(|row| row.iter().any(|cell| !formatted(cell).is_empty()))
        .map_or(0, |i| i + 1)
}

fn write(tab: &mut Tab, r1: usize, c1: usize, values: &[Vec<Value>]) {
    for (i, row) in values.iter().enumerate() {
        let r = r1 + i;
        if tab.rows.len() < r {
            tab.rows.resize(r, Vec::new());
        }
        let cells = &mut tab.rows[r - 1];
        if cells.len() < c1 - 1 + row.len() {
            cells.resize(c1 - 1 + row.len(), Value::Null);
        }
        for (j, value) in row.iter().enumerate() {
            cells[c1 - 1 + j] = value.clone();
        }
    }
}

/// `valueInputOption` is required for writes: RAW or USER_ENTERED.
fn input_option(query: &HashMap<String, String>) -> Result<(), Response> {
    match query.get("valueInputOption").map(String::as_str) {
        Some("RAW" | "USER_ENTERED") => Ok(()),
        None => Err(invalid("'valueInputOption' is required but not specified")),
        Some(other) => Err(invalid(&format!(
            "Invalid value at 'value_input_option' (type.googleapis.com/google.apps.sheets.v4.ValueInputOption), \"{other}\""
        ))),
    }
}

/// The rows of a ValueRange body (`majorDimension` ROWS, or COLUMNS turned into rows).
fn rows_of(body: &Value) -> Result<Vec<Vec<Value>>, Response> {
    let Some(values) = body.get("values").and_then(Value::as_array) else {
        return Err(invalid(
            "Invalid JSON payload received. 'values' must be a list of lists.",
        ));
    };
    let mut rows = Vec::new();
    for row in values {
        match row.as_array() {
            Some(cells) if cells.iter().all(|c| !c.is_array() && !c.is_object()) => {
                rows.push(cells.clone());
            }
            _ => {
                return Err(invalid(&format!("Invalid values[{}]: {row}", rows.len())));
            }
        }
    }
    match body.get("majorDimension").and_then(Value::as_str) {
        None | Some("ROWS") => Ok(rows),
        Some("COLUMNS") => {
            let text: Vec<Vec<String>> = rows
                .iter()
                .map(|r| r.iter().map(formatted).collect())
                .collect();
            Ok(transposed(&text)
                .into_iter()
                .map(|r| r.into_iter().map(Value::String).collect())
                .collect())
        }
        Some(other) => Err(invalid(&format!(
            "Invalid value at 'data.major_dimension' (type.googleapis.com/google.apps.sheets.v4.Dimension), \"{other}\""
        ))),
    }
}

fn transposed(rows: &[Vec<String>]) -> Vec<Vec<String>> {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    (0..width)
        .map(|c| {
            let mut column: Vec<String> = rows
                .iter()
                .map(|r| r.get(c).cloned().unwrap_or_default())
                .collect();
            while column.last().is_some_and(String::is_empty) {
                column.pop();
            }
            column
        })
        .collect()
}

/// A cell as FORMATTED_VALUE shows it.
fn formatted(cell: &Value) -> String {
    match cell {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(true) => "TRUE".into(),
        Value::Bool(false) => "FALSE".into(),
        other => other.to_string(),
    }
}

/// Google's error envelope.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": status.as_u16(), "message": message, "status": code}})),
    )
        .into_response()
}

fn invalid(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
}

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "Requested entity was not found.",
    )
}

// ---------------------------------------------------------------------------------------------
// Tests, through timix's API only.

/// A Sheets stand-in with a "Sales leads" spreadsheet, a timix server and an authorized
/// `google_sheets` connection to the stand-in.
struct Setup {
    _server: Server,
    c: Client,
    sheets: Sheets,
    connection: String,
    spreadsheet: String,
}

const LEADS: &[&[&str]] = &[
    &["Name", "Email", "Company"],
    &["Ann Lee", "ann.lee@acme.example", "Acme"],
    &["Bruno Diaz", "bruno@globex.example", "Globex"],
];

async fn setup(oauth: OAuth) -> Setup {
    let sheets = Sheets::new(oauth);
    let spreadsheet = sheets.add_spreadsheet(
        "Sales leads",
        &[("Leads", LEADS), ("Archive 2025", &LEADS[..1])],
    );
    let url = serve(sheets.router()).await;
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let created = c
        .post(
            "/connections",
            json!({"name": "Google Sheets (stand-in)", "connector": "google_sheets", "baseUrl": url,
                   "settings": {"clientId": "1234567890-standin.apps.googleusercontent.com",
                                "authorizeUrl": format!("{url}/o/oauth2/v2/auth"),
                                "tokenUrl": format!("{url}/token")},
                   "credentials": {"clientSecret": "GOCSPX-standin-secret"}}),
        )
        .await
        .expect(201);
    assert_eq!(
        created.body["connector"], "google_sheets",
        "{}",
        created.body
    );
    assert_eq!(created.body["type"], "oauth2", "{}", created.body);
    let connection = created.id();
    connect(&c, &connection).await;
    Setup {
        _server: server,
        c,
        sheets,
        connection,
        spreadsheet,
    }
}

#[tokio::test]
async fn each_new_row_starts_one_run() {
    let s = setup(OAuth::default()).await;
    let flow = s
        .c
        .post(
            "/flows",
            json!({
                "name": "New leads become customers",
                "trigger": {"type": "poll", "connectionId": s.connection,
                            "source": "google_sheets.new_row",
                            "input": {"spreadsheetId": s.spreadsheet, "sheet": "Leads"},
                            "schedule": "* * * * * *"},
                "steps": [{"key": "customer", "action": "create_customer",
                           "input": {"name": "{{trigger.0}} ({{trigger.2}})", "email": "{{trigger.1}}"}}]
            }),
        )
        .await
        .expect(201)
        .id();
    let read = format!("/v4/spreadsheets/{}/values/'Leads'", s.spreadsheet);
    // The first read takes the heading and the two rows as seen; a second read means it is done.
    eventually(
        "two reads of the sheet",
        || async { json!(s.sheets.calls.to("GET", &read).len()) },
        |n| n.as_u64().unwrap() >= 2,
    )
    .await;
    let reads = s.sheets.calls.to("GET", &read);
    assert!(
        s.sheets.oauth.valid(&reads[0].headers),
        "{:?}",
        reads[0].headers
    );
    assert_eq!(
        reads[0].query.get("majorDimension").map(String::as_str),
        Some("ROWS")
    );

    s.sheets.type_row(
        &s.spreadsheet,
        "Leads",
        &["Maria Garcia", "maria@initech.example", "Initech"],
    );
    s.sheets.type_row(
        &s.spreadsheet,
        "Leads",
        &["Li Wei", "li.wei@umbrella.example", "Umbrella"],
    );
    let runs = finished_runs(&s.c, &flow, 2).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    let mut triggers: Vec<Value> = runs.iter().map(|r| r["trigger"].clone()).collect();
    triggers.sort_by_key(|t| t[0].as_str().unwrap_or_default().to_owned());
    assert_eq!(
        triggers,
        [
            json!(["Li Wei", "li.wei@umbrella.example", "Umbrella"]),
            json!(["Maria Garcia", "maria@initech.example", "Initech"])
        ],
        "each run has its row's values"
    );
    let mut names: Vec<String> = runs
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "succeeded", "{r}");
            r["steps"][0]["output"]["name"].as_str().unwrap().to_owned()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["Li Wei (Umbrella)", "Maria Garcia (Initech)"]);

    // The sheet is read again and again; no row starts a second run.
    let count = s.sheets.calls.to("GET", &read).len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        s.sheets.calls.to("GET", &read).len() > count,
        "it kept reading"
    );
    let all =
        s.c.get(&format!("/runs?flowId={flow}"))
            .await
            .expect(200)
            .items();
    assert_eq!(all.len(), 2, "{all:?}");
}

#[tokio::test]
async fn row_actions_send_the_documented_requests() {
    let s = setup(OAuth::default()).await;
    let id = s.spreadsheet.clone();

    // Append: POST …/values/{range}:append?valueInputOption=USER_ENTERED {values: [[row]]}.
    let run = run_action(
        &s.c,
        "google_sheets.append_row",
        &s.connection,
        json!({"spreadsheetId": id, "sheet": "Leads",
               "values": ["Eve Moneypenny", "eve@mi6.example", "MI6"]}),
        json!({}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let calls = s.sheets.calls.to(
        "POST",
        &format!("/v4/spreadsheets/{id}/values/'Leads'!A1:append"),
    );
    assert_eq!(calls.len(), 1, "{:?}", s.sheets.calls.all());
    assert!(s.sheets.oauth.valid(&calls[0].headers));
    assert_eq!(
        calls[0].query.get("valueInputOption").map(String::as_str),
        Some("USER_ENTERED")
    );
    assert_eq!(
        calls[0].query.get("insertDataOption").map(String::as_str),
        Some("INSERT_ROWS")
    );
    assert_eq!(
        calls[0].body,
        json!({"majorDimension": "ROWS", "values": [["Eve Moneypenny", "eve@mi6.example", "MI6"]]})
    );
    let appended = &run["steps"][0]["output"];
    assert_eq!(appended["tableRange"], "Leads!A1:C3", "{run}");
    assert_eq!(appended["updates"]["updatedRange"], "Leads!A4:C4", "{run}");
    assert_eq!(appended["updates"]["updatedRows"], 1);
    assert_eq!(
        s.sheets.rows(&id, "Leads")[3],
        ["Eve Moneypenny", "eve@mi6.example", "MI6"]
    );

    // Update: PUT …/values/'Leads'!2:2?valueInputOption=USER_ENTERED, the whole of row 2.
    let run = run_action(
        &s.c,
        "google_sheets.update_row",
        &s.connection,
        json!({"spreadsheetId": id, "sheet": "Leads", "row": 2,
               "values": ["Ann Lee", "ann.lee@acme.example", "Acme Corp"]}),
        json!({}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let calls = s
        .sheets
        .calls
        .to("PUT", &format!("/v4/spreadsheets/{id}/values/'Leads'!2:2"));
    assert_eq!(calls.len(), 1, "{:?}", s.sheets.calls.all());
    assert_eq!(
        calls[0].query.get("valueInputOption").map(String::as_str),
        Some("USER_ENTERED")
    );
    assert_eq!(
        calls[0].body,
        json!({"majorDimension": "ROWS", "values": [["Ann Lee", "ann.lee@acme.example", "Acme Corp"]]})
    );
    let updated = &run["steps"][0]["output"];
    assert_eq!(updated["updatedRange"], "Leads!A2:C2", "{run}");
    assert_eq!(updated["updatedCells"], 3);
    let rows = s.sheets.rows(&id, "Leads");
    assert_eq!(rows[1], ["Ann Lee", "ann.lee@acme.example", "Acme Corp"]);
    assert_eq!(
        rows[2],
        ["Bruno Diaz", "bruno@globex.example", "Globex"],
        "untouched"
    );

    // Read: GET …/values/{range}, the ValueRange as the output.
    let run = run_action(
        &s.c,
        "google_sheets.get_range",
        &s.connection,
        json!({"spreadsheetId": id, "range": "Leads!A1:C2"}),
        json!({}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        s.sheets
            .calls
            .to("GET", &format!("/v4/spreadsheets/{id}/values/Leads!A1:C2"))
            .len(),
        1
    );
    assert_eq!(
        run["steps"][0]["output"],
        json!({"range": "Leads!A1:C2", "majorDimension": "ROWS",
               "values": [["Name", "Email", "Company"], ["Ann Lee", "ann.lee@acme.example", "Acme Corp"]]})
    );

    // A spreadsheet that does not exist: Google's 404 and its message fail the step.
    let run = run_action(
        &s.c,
        "google_sheets.append_row",
        &s.connection,
        json!({"spreadsheetId": "1NoSuchSpreadsheet", "sheet": "Leads", "values": ["x"]}),
        json!({}),
    )
    .await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["steps"][0]["error"]["status"], 404, "{run}");
    assert!(
        run["steps"][0]["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Requested entity was not found."),
        "{run}"
    );
}

#[tokio::test]
async fn an_expired_token_is_refreshed_and_a_full_quota_waited_out() {
    let s = setup(OAuth::default()).await;
    let id = s.spreadsheet.clone();
    s.sheets.oauth.expire_all();
    let run = run_action(
        &s.c,
        "google_sheets.get_range",
        &s.connection,
        json!({"spreadsheetId": id, "range": "Leads"}),
        json!({}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(s.sheets.oauth.refreshes(), 1);
    assert_eq!(s.sheets.refused(), 1, "one 401 for the stale token");
    assert_eq!(
        run["steps"][0]["output"]["range"], "Leads!A1:Z1000",
        "{run}"
    );
    assert_eq!(
        run["steps"][0]["output"]["values"][2][0], "Bruno Diaz",
        "{run}"
    );

    // Over the per-minute quota: a 429, then the same append once more.
    s.sheets.throttle(1);
    let started = Instant::now();
    let run = run_action(
        &s.c,
        "google_sheets.append_row",
        &s.connection,
        json!({"spreadsheetId": id, "sheet": "Leads", "values": ["Q", "q@mi6.example", "MI6"]}),
        json!({}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["steps"][0]["attempts"], 2, "{run}");
    assert!(started.elapsed() >= Duration::from_secs(RETRY_AFTER));
    let appends = s.sheets.calls.to(
        "POST",
        &format!("/v4/spreadsheets/{id}/values/'Leads'!A1:append"),
    );
    assert_eq!(appends.len(), 2);
    let rows = s.sheets.rows(&id, "Leads");
    assert_eq!(rows.len(), 4, "appended once: {rows:?}");
    assert_eq!(rows[3], ["Q", "q@mi6.example", "MI6"]);
    assert_eq!(
        s.sheets.oauth.refreshes(),
        1,
        "the refreshed token was kept"
    );
}

#[tokio::test]
async fn sheets_lookup_lists_the_sheets_of_a_spreadsheet() {
    let s = setup(OAuth::default()).await;
    let lookup = format!(
        "/connectors/google_sheets/lookups/sheets?connectionId={}&spreadsheetId={}",
        s.connection, s.spreadsheet
    );
    let found = s.c.get(&lookup).await.expect(200);
    let items: Vec<(Value, Value)> = found
        .items()
        .iter()
        .map(|i| (i["value"].clone(), i["label"].clone()))
        .collect();
    assert_eq!(
        items,
        vec![
            (json!("Leads"), json!("Leads")),
            (json!("Archive 2025"), json!("Archive 2025"))
        ],
        "{}",
        found.body
    );
    assert_eq!(found.body["hasMore"], false, "{}", found.body);
    let calls = s
        .sheets
        .calls
        .to("GET", &format!("/v4/spreadsheets/{}", s.spreadsheet));
    assert_eq!(calls.len(), 1);
    assert!(s.sheets.oauth.valid(&calls[0].headers));
    assert_eq!(
        calls[0].query.get("fields").map(String::as_str),
        Some("sheets.properties")
    );

    // A search term keeps the sheets whose name has it.
    let found = s.c.get(&format!("{lookup}&q=Arch")).await.expect(200);
    let labels: Vec<Value> = found.items().iter().map(|i| i["label"].clone()).collect();
    assert_eq!(labels, [json!("Archive 2025")], "{}", found.body);
}

#[tokio::test]
async fn the_connection_asks_for_offline_access_and_tests_ok() {
    let s = setup(OAuth::default()).await;
    let start =
        s.c.get(&format!("/connections/{}/authorize", s.connection))
            .await
            .expect(302);
    let location = reqwest::Url::parse(start.header("location").unwrap()).unwrap();
    assert_eq!(location.path(), "/o/oauth2/v2/auth");
    let params: HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(
        params["client_id"],
        "1234567890-standin.apps.googleusercontent.com"
    );
    assert_eq!(
        params["scope"],
        "https://www.googleapis.com/auth/spreadsheets"
    );
    assert_eq!(
        params["access_type"], "offline",
        "a refresh token is issued"
    );
    assert_eq!(params["prompt"], "consent");
    assert_eq!(params["response_type"], "code");

    // The test reads Google's public sample spreadsheet with the token.
    let before = s
        .sheets
        .calls
        .to("GET", &format!("/v4/spreadsheets/{CLASS_DATA}"))
        .len();
    let tested =
        s.c.post(&format!("/connections/{}/test", s.connection), json!({}))
            .await
            .expect(200);
    assert_eq!(tested.body["status"], "ok", "{}", tested.body);
    let calls = s
        .sheets
        .calls
        .to("GET", &format!("/v4/spreadsheets/{CLASS_DATA}"));
    assert_eq!(calls.len(), before + 1);
    assert!(s.sheets.oauth.valid(&calls[before].headers));
}
