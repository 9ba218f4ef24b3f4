//! A small SQL builder: text with `?` placeholders plus its arguments, run on either backend.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{Backend, QueryTarget};
use crate::error::{Error, Result};

/// A value bound to a placeholder. Only types every backend stores the same way.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_owned()))
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(Some(v.clone()))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::Text(v.map(str::to_owned))
    }
}
impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Self {
        Arg::Text(v.clone())
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
/// Flags are stored as 0/1 integers on both backends.
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Int(Some(v as i64))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            args: Vec::new(),
        }
    }

    /// Binds the next `?`.
    pub fn arg(mut self, value: impl Into<Arg>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Appends text (with its own `?`s, bound by following [`Sql::arg`] or [`Sql::bind`] calls).
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    pub fn bind(&mut self, value: impl Into<Arg>) -> &mut Self {
        self.args.push(value.into());
        self
    }

    /// Appends another statement, its arguments with it.
    pub fn append(&mut self, other: &Sql) -> &mut Self {
        self.text.push_str(&other.text);
        self.args.extend(other.args.iter().cloned());
        self
    }

    /// Appends `text` with one argument, e.g. `and(" AND name = ?", name)`.
    pub fn and(&mut self, text: &str, value: impl Into<Arg>) -> &mut Self {
        self.push(text).bind(value)
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn args(&self) -> &[Arg] {
        &self.args
    }

    /// The statement in the backend's placeholder syntax.
    fn render(&self, backend: Backend) -> String {
        match backend {
            Backend::Sqlite => self.text.clone(),
            Backend::Postgres => {
                let mut out = String::with_capacity(self.text.len() + 8);
                let mut n = 0;
                for ch in self.text.chars() {
                    if ch == '?' {
                        n += 1;
                        out.push('$');
                        out.push_str(&n.to_string());
                    } else {
                        out.push(ch);
                    }
                }
                out
            }
        }
    }

    /// The statement with its arguments written in as literals of the types they would be
    /// bound as (Postgres: `text`, `int8`), for statements sent together in one message, which
    /// carries no parameters. Text is an escape string (`E'…'`, its quotes and backslashes
    /// doubled), so no value can end it early or be read as SQL. None when the placeholders
    /// and the arguments do not pair up (the statement is then sent on its own, and refused
    /// there).
    pub(super) fn inlined_for_postgres(&self) -> Option<String> {
        use std::fmt::Write;
        let mut out = String::with_capacity(self.text.len() + 32 * self.args.len());
        let mut args = self.args.iter();
        for ch in self.text.chars() {
            if ch != '?' {
                out.push(ch);
                continue;
            }
            match args.next()? {
                Arg::Text(Some(text)) => {
                    out.push_str("E'");
                    for c in storable(text).chars() {
                        match c {
                            '\'' => out.push_str("''"),
                            '\\' => out.push_str("\\\\"),
                            c => out.push(c),
                        }
                    }
                    out.push_str("'::text");
                }
                Arg::Text(None) => out.push_str("NULL::text"),
                Arg::Int(Some(n)) => {
                    let _ = write!(out, "({n})::int8");
                }
                Arg::Int(None) => out.push_str("NULL::int8"),
            }
        }
        args.next().is_none().then_some(out)
    }

    fn query(
        &self,
        backend: Backend,
    ) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
        let mut query = sqlx::query(AssertSqlSafe(self.render(backend)));
        for arg in &self.args {
            query = match arg {
                Arg::Text(v) => query.bind(v.as_deref().map(storable)),
                Arg::Int(v) => query.bind(*v),
            };
        }
        query
    }

    pub async fn fetch_all(&self, mut target: impl QueryTarget) -> Result<Vec<AnyRow>> {
        let query = self.query(target.backend());
        let mut conn = target.connection().await?;
        let outcome = query.fetch_all(conn.get()).await;
        conn.settle(outcome)
    }

    pub async fn fetch_optional(&self, mut target: impl QueryTarget) -> Result<Option<AnyRow>> {
        let query = self.query(target.backend());
        let mut conn = target.connection().await?;
        let outcome = query.fetch_optional(conn.get()).await;
        conn.settle(outcome)
    }

    pub async fn fetch_one(&self, mut target: impl QueryTarget) -> Result<AnyRow> {
        let query = self.query(target.backend());
        let mut conn = target.connection().await?;
        let outcome = query.fetch_one(conn.get()).await;
        conn.settle(outcome)
    }

    /// Runs the statement and returns the number of rows it changed.
    pub async fn execute(&self, mut target: impl QueryTarget) -> Result<u64> {
        let query = self.query(target.backend());
        let mut conn = target.connection().await?;
        let outcome = query
            .execute(conn.get())
            .await
            .map(|done| done.rows_affected());
        conn.settle(outcome)
    }
}

/// Text as both backends store it. Postgres refuses a NUL character (U+0000) in any text,
/// the whole statement with it; the API refuses NUL at the door, so what still carries one
/// comes from outside (another service's answer, an error it sent) and is kept with U+FFFD in
/// its place, on SQLite too. A lookup by such a text finds nothing, as it should.
fn storable(text: &str) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text.to_owned()
    }
}

fn decode_error(column: &str, e: sqlx::Error) -> Error {
    Error::Internal(format!("cannot read column {column}: {e}"))
}

pub fn get_str(row: &AnyRow, column: &str) -> Result<String> {
    row.try_get::<String, _>(column)
        .map_err(|e| decode_error(column, e))
}

pub fn get_opt_str(row: &AnyRow, column: &str) -> Result<Option<String>> {
    row.try_get::<Option<String>, _>(column)
        .map_err(|e| decode_error(column, e))
}

pub fn get_i64<I: sqlx::ColumnIndex<AnyRow> + std::fmt::Debug + Copy>(
    row: &AnyRow,
    column: I,
) -> Result<i64> {
    row.try_get::<i64, _>(column)
        .map_err(|e| decode_error(&format!("{column:?}"), e))
}

pub fn get_opt_i64(row: &AnyRow, column: &str) -> Result<Option<i64>> {
    row.try_get::<Option<i64>, _>(column)
        .map_err(|e| decode_error(column, e))
}

pub fn get_bool(row: &AnyRow, column: &str) -> Result<bool> {
    Ok(get_i64(row, column)? != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_never_bound() {
        assert_eq!(storable("a\0b"), "a\u{FFFD}b");
        assert_eq!(storable("plain"), "plain");
    }

    #[test]
    fn arguments_written_in_cannot_end_their_literal() {
        let sql = Sql::new("UPDATE t SET a = ?, b = ?, c = ?, d = ? WHERE e = ?")
            .arg("it's \\'; DROP TABLE t; --")
            .arg(-7i64)
            .arg(None::<String>)
            .arg(None::<i64>)
            .arg("nul\0here");
        assert_eq!(
            sql.inlined_for_postgres().unwrap(),
            "UPDATE t SET a = E'it''s \\\\''; DROP TABLE t; --'::text, b = (-7)::int8, \
             c = NULL::text, d = NULL::int8 WHERE e = E'nul\u{FFFD}here'::text"
        );
        // Placeholders and arguments that do not pair up are not written in.
        assert_eq!(Sql::new("SELECT ?").inlined_for_postgres(), None);
        assert_eq!(Sql::new("SELECT 1").arg(1i64).inlined_for_postgres(), None);
    }

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        let mut sql = Sql::new("SELECT * FROM t WHERE a = ?").arg(1i64);
        sql.and(" AND b = ?", "x");
        assert_eq!(
            sql.render(Backend::Sqlite),
            "SELECT * FROM t WHERE a = ? AND b = ?"
        );
        assert_eq!(
            sql.render(Backend::Postgres),
            "SELECT * FROM t WHERE a = $1 AND b = $2"
        );
    }
}
