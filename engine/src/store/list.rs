//! Listing any resource the same way: filters, sort, page or cursor pagination, sync by
//! `updatedSince` with tombstones. Each resource describes itself with a [`ListSpec`].

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::store::clock::{Millis, format_ms, now_ms, parse_instant};
use crate::store::db::{Arg, Db, Sql, row};

/// How long deleted records are remembered for sync clients (`includeDeleted=true`).
pub const TOMBSTONE_RETENTION_DAYS: i64 = 30;
const TOMBSTONE_RETENTION_MS: i64 = TOMBSTONE_RETENTION_DAYS * 24 * 3600 * 1000;
/// A sync watermark never moves closer to "now" than this, so a write still committing when the
/// page was read is seen by the next sync.
const SYNC_SAFETY_LAG_MS: i64 = 2_000;

pub const DEFAULT_PAGE_SIZE: i64 = 50;
pub const MAX_PAGE_SIZE: i64 = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    Text,
    Bool,
    /// Compared lower-cased (emails).
    TextLower,
    /// A lower bound, inclusive (`from` on dates).
    Min,
    /// An upper bound, inclusive (`to` on dates).
    Max,
    /// A lower bound on an instant column (milliseconds), given as RFC 3339 or a date.
    Since,
    /// An upper bound on an instant column, inclusive.
    Until,
}

fn list_instant(name: &str, value: &str) -> Result<Millis> {
    parse_instant(value)
        .ok_or_else(|| bad(format!("{name} must be an RFC 3339 timestamp or a date")))
}

/// How a resource can be listed.
pub struct ListSpec {
    pub table: &'static str,
    /// API field → column, for `sort`. `createdAt` and `updatedAt` are always allowed. The
    /// columns must be `NOT NULL`; integer ones must be named in `INTEGER_COLUMNS`.
    pub sorts: &'static [(&'static str, &'static str)],
    /// Query parameter → column, for exact-match filters.
    pub filters: &'static [(&'static str, &'static str, FilterKind)],
    /// Column matched by `q` (contains, case-insensitive), if any.
    pub search: Option<&'static str>,
    /// Whether rows are soft-deleted (and so have tombstones).
    pub soft_delete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SortKey {
    field: String,
    column: &'static str,
    descending: bool,
}

/// A parsed list request.
#[derive(Debug, Clone)]
pub struct ListParams {
    page: i64,
    page_size: i64,
    cursor: Option<Vec<Value>>,
    sort: Vec<SortKey>,
    sort_text: String,
    updated_since: Option<Millis>,
    created_since: Option<Millis>,
    include_deleted: bool,
    q: Option<String>,
    filters: Vec<(&'static str, &'static str, Arg)>,
    /// Conditions a resource adds itself ([`ListParams::and_where`]).
    conditions: Vec<(&'static str, Vec<Arg>)>,
    paging_by_cursor: bool,
}

fn bad(message: impl Into<String>) -> Error {
    Error::InvalidParameter(message.into())
}

/// `true`/`1` or `false`/`0`, else a 400 naming the parameter.
pub fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(bad(format!("{name} must be true or false"))),
    }
}

fn list_date(name: &str, value: &str) -> Result<String> {
    crate::store::clock::parse_date_field(name, value).map_err(|e| bad(e.message))
}

impl ListParams {
    /// Reads the query parameters of a list request. Unknown parameters are refused, so a typo
    /// (`customer_id`) is an error rather than a silently unfiltered list.
    pub fn parse(spec: &ListSpec, params: &[(String, String)]) -> Result<Self> {
        let mut out = ListParams {
            page: 1,
            page_size: DEFAULT_PAGE_SIZE,
            cursor: None,
            sort: Vec::new(),
            sort_text: String::new(),
            updated_since: None,
            created_since: None,
            include_deleted: false,
            q: None,
            filters: Vec::new(),
            conditions: Vec::new(),
            paging_by_cursor: false,
        };
        let mut page_given = false;
        let mut cursor_text = None;
        let mut sort_text = None;
        for (name, value) in params {
            match name.as_str() {
                "page" => {
                    page_given = true;
                    out.page = value
                        .parse()
                        .ok()
                        .filter(|p| *p >= 1)
                        .ok_or_else(|| bad("page must be an integer of at least 1"))?;
                }
                "pageSize" | "limit" => {
                    out.page_size = value
                        .parse()
                        .ok()
                        .filter(|p| (1..=MAX_PAGE_SIZE).contains(p))
                        .ok_or_else(|| {
                            bad(format!(
                                "{name} must be an integer from 1 to {MAX_PAGE_SIZE}"
                            ))
                        })?;
                }
                "cursor" => cursor_text = Some(value.clone()),
                "sort" => sort_text = Some(value.clone()),
                "updatedSince" => {
                    out.updated_since = Some(parse_instant(value).ok_or_else(|| {
                        bad("updatedSince must be an RFC 3339 timestamp or a date")
                    })?)
                }
                "createdSince" => {
                    out.created_since = Some(parse_instant(value).ok_or_else(|| {
                        bad("createdSince must be an RFC 3339 timestamp or a date")
                    })?)
                }
                "includeDeleted" if spec.soft_delete => {
                    out.include_deleted = parse_bool(name, value)?
                }
                "q" if spec.search.is_some() => {
                    if !value.is_empty() {
                        out.q = Some(value.to_lowercase());
                    }
                }
                other => {
                    let Some((_, column, kind)) = spec.filters.iter().find(|f| f.0 == other) else {
                        return Err(bad(format!(
                            "unknown parameter {}",
                            crate::store::json::quote(other)
                        )));
                    };
                    let (operator, arg) = match kind {
                        FilterKind::Text => (" = ?", Arg::from(value.as_str())),
                        FilterKind::TextLower => (" = ?", Arg::from(value.to_lowercase())),
                        FilterKind::Bool => (" = ?", Arg::from(parse_bool(other, value)?)),
                        FilterKind::Min => (" >= ?", Arg::from(list_date(other, value)?)),
                        FilterKind::Max => (" <= ?", Arg::from(list_date(other, value)?)),
                        FilterKind::Since => (" >= ?", Arg::from(list_instant(other, value)?)),
                        FilterKind::Until => (" <= ?", Arg::from(list_instant(other, value)?)),
                    };
                    out.filters.push((column, operator, arg));
                }
            }
        }
        if out.include_deleted && out.updated_since.is_none() {
            return Err(bad("includeDeleted=true needs updatedSince"));
        }
        if out.include_deleted
            && out
                .updated_since
                .is_some_and(|t| t < now_ms() - TOMBSTONE_RETENTION_MS)
        {
            return Err(Error::SyncWindowExpired(format!(
                "deleted records are kept for {TOMBSTONE_RETENTION_DAYS} days; updatedSince is older: run a full sync"
            )));
        }
        if out.updated_since.is_some() {
            if sort_text.is_some() {
                return Err(bad(
                    "sort cannot be combined with updatedSince (sync order is updatedAt,id)",
                ));
            }
            out.sort = vec![SortKey {
                field: "updatedAt".into(),
                column: "updated_at",
                descending: false,
            }];
            out.sort_text = "updatedAt".into();
        } else {
            let text = sort_text.unwrap_or_else(|| "-createdAt".into());
            out.sort = parse_sort(spec, &text)?;
            out.sort_text = text;
        }
        if let Some(cursor) = cursor_text {
            if page_given {
                return Err(bad("use either page or cursor, not both"));
            }
            out.paging_by_cursor = true;
            if !cursor.is_empty() {
                out.cursor = Some(decode_cursor(&cursor, &out.sort_text, out.sort.len())?);
            }
        }
        Ok(out)
    }

    /// Narrows the list by a condition of the resource's own (a parameter the generic filters
    /// cannot express, such as invoices' `overdue`); its `?`s take `args` in order.
    pub fn and_where(&mut self, condition: &'static str, args: Vec<Arg>) {
        self.conditions.push((condition, args));
    }
}

fn parse_sort(spec: &ListSpec, text: &str) -> Result<Vec<SortKey>> {
    let mut keys: Vec<SortKey> = Vec::new();
    for part in text.split(',').map(str::trim) {
        let (descending, field) = match part.strip_prefix('-') {
            Some(f) => (true, f),
            None => (false, part.strip_prefix('+').unwrap_or(part)),
        };
        if field == "id" {
            // The tie-breaker is always there; naming it ends the list.
            break;
        }
        let column = match field {
            "createdAt" => "created_at",
            "updatedAt" => "updated_at",
            _ => spec
                .sorts
                .iter()
                .find(|(f, _)| *f == field)
                .map(|(_, c)| *c)
                .ok_or_else(|| {
                    let allowed: Vec<&str> = ["createdAt", "updatedAt"]
                        .into_iter()
                        .chain(spec.sorts.iter().map(|(f, _)| *f))
                        .collect();
                    bad(format!(
                        "cannot sort by {}; sortable fields: {}",
                        crate::store::json::quote(field),
                        allowed.join(", ")
                    ))
                })?,
        };
        if keys.iter().any(|k| k.column == column) {
            return Err(bad(format!(
                "sort names {} twice",
                crate::store::json::quote(field)
            )));
        }
        keys.push(SortKey {
            field: field.to_owned(),
            column,
            descending,
        });
    }
    if keys.is_empty() {
        return Err(bad("sort needs at least one field"));
    }
    Ok(keys)
}

fn decode_cursor(text: &str, sort_text: &str, keys: usize) -> Result<Vec<Value>> {
    let invalid =
        || bad("cursor is not valid for this list (pass nextCursor unchanged, with the same sort)");
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let (Some(sort), Some(values)) = (
        value.get("s").and_then(Value::as_str),
        value.get("v").and_then(Value::as_array),
    ) else {
        return Err(invalid());
    };
    // The sort keys plus the id tie-breaker; no value the store would refuse to compare.
    let storable = |v: &Value| v.as_str().is_none_or(|s| !s.contains('\0'));
    if sort != sort_text || values.len() != keys + 1 || !values.iter().all(storable) {
        return Err(invalid());
    }
    Ok(values.clone())
}

fn encode_cursor(sort_text: &str, values: Vec<Value>) -> String {
    URL_SAFE_NO_PAD.encode(json!({"s": sort_text, "v": values}).to_string())
}

/// Sort columns that hold integers (instants, durations, amounts); every other one holds text.
/// A cursor's value must be of its column's kind: Postgres refuses to compare across kinds.
const INTEGER_COLUMNS: &[&str] = &["created_at", "updated_at", "duration_seconds", "total"];

fn value_to_arg(column: &str, v: &Value) -> Result<Arg> {
    let integer = INTEGER_COLUMNS.contains(&column);
    match v {
        Value::String(s) if !integer => Ok(Arg::from(s.as_str())),
        Value::Number(n) if integer => n
            .as_i64()
            .map(Arg::from)
            .ok_or_else(|| bad("cursor is not valid")),
        _ => Err(bad("cursor is not valid")),
    }
}

/// A deleted record, as sync clients see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tombstone {
    pub id: String,
    pub is_deleted: bool,
    pub deleted_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Item<T> {
    Live(T),
    Deleted(Tombstone),
}

/// One page of a list, in the API's envelope.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<Item<T>>,
    pub total_count: i64,
    /// The page number; null when paging by cursor.
    pub page: Option<i64>,
    pub page_size: i64,
    pub has_more: bool,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// With `updatedSince`: the value to pass as `updatedSince` next time.
    #[serde(skip)]
    pub sync_watermark: Option<String>,
}

impl<T> Page<T> {
    /// A short list shown whole, as one page (no paging parameters apply).
    pub fn whole(items: Vec<T>) -> Page<T> {
        let count = items.len() as i64;
        Page {
            items: items.into_iter().map(Item::Live).collect(),
            total_count: count,
            page: Some(1),
            page_size: count.max(1),
            has_more: false,
            next_cursor: None,
            sync_watermark: None,
        }
    }

    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self
                .items
                .into_iter()
                .map(|i| match i {
                    Item::Live(t) => Item::Live(f(t)),
                    Item::Deleted(d) => Item::Deleted(d),
                })
                .collect(),
            total_count: self.total_count,
            page: self.page,
            page_size: self.page_size,
            has_more: self.has_more,
            next_cursor: self.next_cursor,
            sync_watermark: self.sync_watermark,
        }
    }
}

/// Lists rows of `spec.table` in `org_id`, decoding live rows with `decode`.
pub async fn list<T>(
    db: &Db,
    org_id: &str,
    spec: &ListSpec,
    params: &ListParams,
    decode: impl Fn(&row::Row) -> Result<T>,
) -> Result<Page<T>> {
    let scope = Scope { org_id, fixed: &[] };
    list_where(db, scope, spec, params, decode).await
}

/// The rows a listing may show: an organization's, narrowed by fixed conditions
/// `column = value` besides the request's (a webhook's deliveries).
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub org_id: &'a str,
    pub fixed: &'a [(&'a str, Arg)],
}

/// [`list`] within a [`Scope`] narrower than the organization.
pub async fn list_where<T>(
    db: &Db,
    scope: Scope<'_>,
    spec: &ListSpec,
    params: &ListParams,
    decode: impl Fn(&row::Row) -> Result<T>,
) -> Result<Page<T>> {
    let Scope { org_id, fixed } = scope;
    let mut filter = Sql::new("");
    filter.and(" WHERE org_id = ?", org_id);
    for (column, arg) in fixed {
        filter
            .push(" AND ")
            .push(column)
            .push(" = ?")
            .bind(arg.clone());
    }
    if spec.soft_delete && !params.include_deleted {
        filter.push(" AND deleted_at IS NULL");
    }
    for (column, operator, arg) in &params.filters {
        filter
            .push(" AND ")
            .push(column)
            .push(operator)
            .bind(arg.clone());
    }
    for (condition, args) in &params.conditions {
        filter.push(" AND (").push(condition).push(")");
        for arg in args {
            filter.bind(arg.clone());
        }
    }
    if let (Some(q), Some(column)) = (&params.q, spec.search) {
        let escaped = q
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        filter
            .push(" AND LOWER(")
            .push(column)
            .push(") LIKE ? ESCAPE '\\'")
            .bind(format!("%{escaped}%"));
    }
    if let Some(t) = params.updated_since {
        filter.and(" AND updated_at >= ?", t);
    }
    if let Some(t) = params.created_since {
        filter.and(" AND created_at >= ?", t);
    }

    let mut count = Sql::new("SELECT COUNT(*) FROM ");
    count.push(spec.table).push(filter.text());
    let count = with_args(count, &filter);
    let total_count = row::get_i64(&count.fetch_one(db).await?, 0)?;

    let mut select = Sql::new("SELECT * FROM ");
    select.push(spec.table).push(filter.text());
    let mut select = with_args(select, &filter);
    let id_descending = params.sort.last().is_some_and(|k| k.descending);
    if let Some(values) = &params.cursor {
        keyset_condition(&mut select, &params.sort, id_descending, values)?;
    }
    select.push(" ORDER BY ");
    for key in &params.sort {
        select
            .push(key.column)
            .push(if key.descending { " DESC, " } else { " ASC, " });
    }
    select.push(if id_descending { "id DESC" } else { "id ASC" });
    select.push(" LIMIT ?").bind(params.page_size + 1);
    if !params.paging_by_cursor {
        select
            .push(" OFFSET ?")
            .bind((params.page - 1).saturating_mul(params.page_size));
    }
    let rows = select.fetch_all(db).await?;
    let has_more = rows.len() as i64 > params.page_size;
    let rows = &rows[..rows.len().min(params.page_size as usize)];

    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        match row::get_opt_i64(r, "deleted_at").ok().flatten() {
            Some(deleted_at) if spec.soft_delete => items.push(Item::Deleted(Tombstone {
                id: row::get_str(r, "id")?,
                is_deleted: true,
                deleted_at: format_ms(deleted_at),
                updated_at: format_ms(row::get_i64(r, "updated_at")?),
            })),
            _ => items.push(Item::Live(decode(r)?)),
        }
    }
    let next_cursor = match (has_more, rows.last()) {
        (true, Some(last)) => {
            let mut values = Vec::new();
            for key in &params.sort {
                values.push(column_value(last, key.column)?);
            }
            values.push(Value::String(row::get_str(last, "id")?));
            Some(encode_cursor(&params.sort_text, values))
        }
        _ => None,
    };
    let sync_watermark = match params.updated_since {
        Some(since) => {
            let last = rows
                .last()
                .map(|r| row::get_i64(r, "updated_at"))
                .transpose()?;
            let mark = match last {
                Some(t) if has_more => t,
                Some(t) => t.min(now_ms() - SYNC_SAFETY_LAG_MS).max(since),
                None => since,
            };
            Some(format_ms(mark))
        }
        None => None,
    };
    Ok(Page {
        items,
        total_count,
        page: (!params.paging_by_cursor).then_some(params.page),
        page_size: params.page_size,
        has_more,
        next_cursor,
        sync_watermark,
    })
}

fn with_args(mut sql: Sql, from: &Sql) -> Sql {
    for arg in from.args() {
        sql.bind(arg.clone());
    }
    sql
}

/// Rows strictly after the cursor in the list's order.
fn keyset_condition(
    sql: &mut Sql,
    sort: &[SortKey],
    id_descending: bool,
    values: &[Value],
) -> Result<()> {
    let mut columns: Vec<(&str, bool)> = sort.iter().map(|k| (k.column, k.descending)).collect();
    columns.push(("id", id_descending));
    sql.push(" AND (");
    for i in 0..columns.len() {
        if i > 0 {
            sql.push(" OR ");
        }
        sql.push("(");
        for (j, (column, _)) in columns[..i].iter().enumerate() {
            sql.push(column)
                .push(" = ? AND ")
                .bind(value_to_arg(column, &values[j])?);
        }
        let (column, descending) = columns[i];
        sql.push(column)
            .push(if descending { " < ?" } else { " > ?" })
            .bind(value_to_arg(column, &values[i])?);
        sql.push(")");
    }
    sql.push(")");
    Ok(())
}

/// A sort column's value for a cursor: an integer for [`INTEGER_COLUMNS`], else text. Sort
/// columns are never null (a `NULL` has no place in a keyset order both stores agree on).
fn column_value(r: &row::Row, column: &str) -> Result<Value> {
    if INTEGER_COLUMNS.contains(&column) {
        Ok(Value::from(row::get_i64(r, column)?))
    } else {
        Ok(Value::String(row::get_str(r, column)?))
    }
}

/// Forgets deleted records older than the retention window, children before parents.
pub async fn purge_tombstones(db: &Db, tables_children_first: &[&str]) -> Result<u64> {
    let cutoff = now_ms() - TOMBSTONE_RETENTION_MS;
    let mut purged = 0;
    for table in tables_children_first {
        let mut sql = Sql::new("DELETE FROM ");
        sql.push(table)
            .push(" WHERE deleted_at IS NOT NULL AND deleted_at < ?")
            .bind(cutoff);
        purged += sql.execute(db).await?;
    }
    Ok(purged)
}
