//! What timesheets, invoices and the hierarchy do to entries: approval, invoicing, moves.

use super::{LIST, NOUN, from_row};
use crate::error::{Error, Result};
use crate::store::clock::now_ms;
use crate::store::db::{Sql, Tx, row};
use crate::store::events;
use crate::store::resource;

/// Sets the approval status of a timesheet's entries, each with its `time_entry.updated`.
pub(crate) async fn set_approval_status(
    tx: &mut Tx,
    org_id: &str,
    timesheet_id: &str,
    status: &str,
) -> Result<()> {
    let rows = Sql::new(
        "SELECT * FROM time_entries WHERE timesheet_id = ? AND deleted_at IS NULL AND approval_status <> ?",
    )
    .arg(timesheet_id)
    .arg(status)
    .fetch_all(&mut *tx)
    .await?;
    for r in rows {
        let before = from_row(&r)?;
        Sql::new("UPDATE time_entries SET approval_status = ?, updated_at = ? WHERE id = ?")
            .arg(status)
            .arg(now_ms())
            .arg(&before.id)
            .execute(&mut *tx)
            .await?;
        let after = from_row(&resource::reload_row(tx, LIST.table, &before.id).await?)?;
        events::updated(tx, org_id, NOUN, &before.id, (&before, &after)).await?;
    }
    Ok(())
}

/// Links entries to an invoice (or frees them with `None`), each with its `time_entry.updated`.
pub(crate) async fn set_invoice(
    tx: &mut Tx,
    org_id: &str,
    entry_ids: &[String],
    invoice: Option<(&str, &str)>,
) -> Result<()> {
    for id in entry_ids {
        let r = Sql::new("SELECT * FROM time_entries WHERE id = ?")
            .arg(id.as_str())
            .fetch_one(&mut *tx)
            .await?;
        let before = from_row(&r)?;
        Sql::new(
            "UPDATE time_entries SET invoice_id = ?, invoice_line_id = ?, updated_at = ? WHERE id = ?",
        )
        .arg(invoice.map(|i| i.0))
        .arg(invoice.map(|i| i.1))
        .arg(now_ms())
        .arg(id.as_str())
        .execute(&mut *tx)
        .await?;
        let after = from_row(&resource::reload_row(tx, LIST.table, id).await?)?;
        events::updated(tx, org_id, NOUN, id, (&before, &after)).await?;
    }
    Ok(())
}

/// Refuses to move a record with logged time to another parent (`column` is `subtask_id`,
/// `task_id` or `project_id`): its entries' customer and project would change under billed or
/// approved history.
pub(crate) async fn refuse_move(
    tx: &mut Tx,
    column: &str,
    id: &str,
    noun: &str,
    field: &str,
) -> Result<()> {
    let mut sql = Sql::new("SELECT COUNT(*) FROM time_entries WHERE ");
    sql.push(column)
        .push(" = ? AND deleted_at IS NULL")
        .bind(id);
    let entries = row::get_i64(&sql.fetch_one(&mut *tx).await?, 0)?;
    if entries > 0 {
        return Err(Error::Conflict {
            code: "has_time_entries",
            message: format!(
                "the {noun} has {entries} time entries: it cannot change {field}; create a new {noun} instead"
            ),
        });
    }
    Ok(())
}
