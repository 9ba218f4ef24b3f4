//! Samples of what starts a flow: inbound calls of a webhook flow captured while someone
//! listens for a test event (they start no run), kept a few at a time. Tests and drafts use
//! the latest; without one, an event or poll trigger's manifest sample stands in.

use serde::Serialize;
use serde_json::Value;

use super::{NOUN, json_column};
use crate::access::auth::{Actor, Permission};
use crate::automation::manifest::Manifests;
use crate::error::{Error, Result};
use crate::store::clock::{format_ms, now_ms};
use crate::store::db::{Db, QueryTarget, Sql, row};
use crate::store::ids;
use crate::store::rows;

/// How long `POST /flows/{id}/samples/listen` listens.
pub const LISTEN_MS: i64 = 5 * 60 * 1000;
/// Samples kept per flow (older ones are dropped).
pub const KEPT: i64 = 5;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// `smp_…`
    pub id: String,
    /// `webhook` (a captured inbound call), `poll` (an item read from the source) or `test`
    /// (a record a test was given).
    pub source: String,
    /// The record or payload, as a run would get it as `trigger`.
    #[schema(value_type = Object)]
    pub data: Value,
    pub created_at: String,
}

/// The answer of `POST /flows/{id}/samples/listen`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Listening {
    /// Inbound calls until then are kept as samples and start no run.
    pub listening_until: String,
    /// Where the sender calls.
    pub webhook_url: String,
}

/// Keeps `data` as the newest sample of a flow, dropping the oldest beyond [`KEPT`].
pub async fn keep(
    conn: &mut crate::store::db::Tx,
    flow_id: &str,
    source: &str,
    data: &Value,
) -> Result<()> {
    keep_at(conn, flow_id, source, data, now_ms()).await
}

/// [`keep`] as of `at` (records kept together are ordered by it).
async fn keep_at(
    conn: &mut crate::store::db::Tx,
    flow_id: &str,
    source: &str,
    data: &Value,
    at: crate::store::clock::Millis,
) -> Result<()> {
    Sql::new(
        "INSERT INTO flow_samples (id, flow_id, source, data, created_at) VALUES (?, ?, ?, ?, ?)",
    )
    .arg(ids::new_id(ids::SAMPLE))
    .arg(flow_id)
    .arg(source)
    .arg(data.to_string())
    .arg(at)
    .execute(&mut *conn)
    .await?;
    Sql::new(
        "DELETE FROM flow_samples WHERE flow_id = ? AND id NOT IN \
         (SELECT id FROM flow_samples WHERE flow_id = ? ORDER BY created_at DESC, id DESC LIMIT ?)",
    )
    .arg(flow_id)
    .arg(flow_id)
    .arg(KEPT)
    .execute(conn)
    .await
    .map(drop)
}

/// `GET /flows/{id}/samples`: newest first.
pub async fn list(db: &Db, actor: &Actor, flow_id: &str) -> Result<Vec<Sample>> {
    actor.require(Permission::ReadFlows)?;
    rows::live_row(db, "flows", actor.org_id(), flow_id)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    Sql::new("SELECT * FROM flow_samples WHERE flow_id = ? ORDER BY created_at DESC, id DESC")
        .arg(flow_id)
        .fetch_all(db)
        .await?
        .iter()
        .map(|r| {
            Ok(Sample {
                id: row::get_str(r, "id")?,
                source: row::get_str(r, "source")?,
                data: json_column(r, "data")?,
                created_at: format_ms(row::get_i64(r, "created_at")?),
            })
        })
        .collect()
}

/// The newest captured sample of a flow.
pub async fn latest(conn: impl QueryTarget, flow_id: &str) -> Result<Option<Value>> {
    Sql::new(
        "SELECT data FROM flow_samples WHERE flow_id = ? ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .arg(flow_id)
    .fetch_optional(conn)
    .await?
    .map(|r| json_column(&r, "data"))
    .transpose()
}

/// What a flow's trigger gives as its record: the newest captured sample, else the sample of
/// the trigger manifest an event or poll trigger names; none when nothing is known.
pub async fn of_trigger(
    db: &Db,
    manifests: &Manifests,
    flow_id: &str,
    trigger: &Value,
) -> Result<Option<Value>> {
    if let Some(sample) = latest(db, flow_id).await? {
        return Ok(Some(sample));
    }
    let manifest = match (trigger["event"].as_str(), trigger["source"].as_str()) {
        (Some(event), _) => manifests.triggers.values().find(|t| t.event == event),
        (None, Some(source)) => manifests.triggers.get(source),
        _ => None,
    };
    Ok(manifest.map(|m| m.sample.clone()))
}

/// `POST /flows/{id}/samples/listen`: the next inbound calls of a webhook flow (for
/// [`LISTEN_MS`]) become samples instead of runs, enabled or not.
pub async fn listen(db: &Db, actor: &Actor, flow_id: &str) -> Result<Listening> {
    actor.require(Permission::ManageFlows)?;
    let flow = rows::live_row(db, "flows", actor.org_id(), flow_id)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    let Some(token) = row::get_opt_str(&flow, "webhook_token")? else {
        return Err(Error::Conflict {
            code: "invalid_state",
            message: "only a webhook flow listens for samples; a poll flow fetches one with POST /flows/{id}/samples/fetch".into(),
        });
    };
    let until = now_ms() + LISTEN_MS;
    db.write_count(
        &Sql::new("UPDATE flows SET listen_until = ? WHERE id = ?")
            .arg(until)
            .arg(flow_id),
    )
    .await?;
    Ok(Listening {
        listening_until: format_ms(until),
        webhook_url: format!("{}{token}", super::INBOUND_PATH),
    })
}

/// `DELETE /flows/{id}/samples/listen`: inbound calls start runs again (when enabled).
pub async fn stop_listening(db: &Db, actor: &Actor, flow_id: &str) -> Result<()> {
    actor.require(Permission::ManageFlows)?;
    rows::live_row(db, "flows", actor.org_id(), flow_id)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    db.write_count(&Sql::new("UPDATE flows SET listen_until = NULL WHERE id = ?").arg(flow_id))
        .await
        .map(drop)
}

/// The poll flow `POST /flows/{id}/samples/fetch` reads the source of.
pub async fn poll_flow(db: &Db, actor: &Actor, flow_id: &str) -> Result<super::LiveFlow> {
    actor.require(Permission::ManageFlows)?;
    let flow = super::live(db, flow_id)
        .await?
        .filter(|f| f.org_id == actor.org_id())
        .ok_or(Error::NotFound(NOUN))?;
    if flow.trigger["type"] != "poll" {
        return Err(Error::Conflict {
            code: "invalid_state",
            message: "only a poll flow fetches samples from its source; a webhook flow listens for them with POST /flows/{id}/samples/listen".into(),
        });
    }
    Ok(flow)
}

/// Keeps records read from a poll flow's source as its newest samples (the last one newest);
/// answers the samples the flow has now.
pub async fn keep_fetched(
    db: &Db,
    actor: &Actor,
    flow_id: &str,
    records: &[Value],
) -> Result<Vec<Sample>> {
    let mut tx = db.begin().await?;
    // Oldest first, a millisecond apart: the source's last record is the newest sample.
    let now = now_ms();
    for (i, record) in records.iter().enumerate() {
        keep_at(&mut tx, flow_id, "poll", record, now + i as i64).await?;
    }
    tx.commit().await?;
    list(db, actor, flow_id).await
}
