//! Row helpers every resource uses: a live row by id or external id (locked in a Postgres write
//! transaction), children that block a delete, soft deletes, and unique-index conflicts.

use crate::error::{Error, Result};
use crate::store::db::{QueryTarget, Sql, row};

/// Maps a unique-index violation on the `(org_id, external_id)` index to a 409.
pub fn external_id_conflict(error: Error, noun: &str) -> Error {
    match &error {
        Error::Database(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            let message = db.message();
            if message.contains("external_id") {
                Error::Conflict {
                    code: "conflict",
                    message: format!("another {noun} already has this externalId"),
                }
            } else if message.contains("email") {
                Error::Conflict {
                    code: "conflict",
                    message: format!("another {noun} already has this email"),
                }
            } else {
                Error::conflict(format!("the {noun} conflicts with an existing one"))
            }
        }
        _ => error,
    }
}

/// The live (not deleted) row `id` of `table` in `org_id`. In a Postgres write transaction the
/// row stays locked until commit, so concurrent changes of one record (or of a parent and a new
/// child) apply one after the other instead of overwriting each other.
pub async fn live_row(
    conn: impl QueryTarget,
    table: &str,
    org_id: &str,
    id: &str,
) -> Result<Option<row::Row>> {
    let mut sql = Sql::new("SELECT * FROM ");
    sql.push(table)
        .push(" WHERE id = ? AND org_id = ? AND deleted_at IS NULL")
        .bind(id)
        .bind(org_id);
    if conn.locks_rows() {
        sql.push(" FOR UPDATE");
    }
    sql.fetch_optional(conn).await
}

/// The live row of `table` with this external id.
pub async fn live_row_by_external_id(
    conn: impl QueryTarget,
    table: &str,
    org_id: &str,
    external_id: &str,
) -> Result<Option<row::Row>> {
    let mut sql = Sql::new("SELECT * FROM ");
    sql.push(table)
        .push(" WHERE external_id = ? AND org_id = ? AND deleted_at IS NULL")
        .bind(external_id)
        .bind(org_id);
    if conn.locks_rows() {
        sql.push(" FOR UPDATE");
    }
    sql.fetch_optional(conn).await
}

/// Counts the live rows of `table` whose `column` is `id` (children that block a delete).
pub async fn count_live_children(
    conn: impl QueryTarget,
    table: &str,
    column: &str,
    id: &str,
) -> Result<i64> {
    let mut sql = Sql::new("SELECT COUNT(*) FROM ");
    sql.push(table)
        .push(" WHERE ")
        .push(column)
        .push(" = ? AND deleted_at IS NULL")
        .bind(id);
    row::get_i64(&sql.fetch_one(conn).await?, 0)
}

/// Marks a row deleted; its tombstone keeps `id`, `deletedAt` and `updatedAt`.
pub async fn soft_delete(conn: impl QueryTarget, table: &str, id: &str, now: i64) -> Result<()> {
    let mut sql = Sql::new("UPDATE ");
    sql.push(table)
        .push(" SET deleted_at = ?, updated_at = ? WHERE id = ?")
        .bind(now)
        .bind(now)
        .bind(id);
    sql.execute(conn).await.map(drop)
}
