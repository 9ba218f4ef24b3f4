//! A flow's versions: every change of its trigger, steps or settings is kept as the next
//! version, so a run executes the definition it started with (also when retried or resumed
//! after the flow changed), and an earlier definition can be looked at and restored.

use serde::Serialize;
use serde_json::Value;

use super::check::Record;
use super::settings::Settings;
use super::{FlowInput, NOUN, json_column, shown_trigger};
use crate::access::auth::{Actor, Permission};
use crate::error::{Error, Result};
use crate::store::clock::{format_ms, now_ms};
use crate::store::db::{Db, QueryTarget, Sql, Tx, row};
use crate::store::patch::Patch;
use crate::store::rows;

/// One version of a flow's definition.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlowVersion {
    /// 1 for the flow as created, then one more for each change of its definition.
    pub version: i64,
    /// Whether this is the version new runs start with.
    pub is_live: bool,
    #[schema(value_type = Object)]
    pub trigger: Value,
    #[schema(value_type = Vec<Object>)]
    pub steps: Value,
    pub settings: Settings,
    /// The user who made it.
    pub created_by: String,
    pub created_at: String,
}

/// The definition of a version, as stored.
#[derive(Debug, Clone)]
pub struct Definition {
    pub trigger: Value,
    pub steps: Value,
    pub settings: Settings,
}

/// Keeps `rec`'s definition as version `version` of flow `flow_id`.
pub(super) async fn keep(
    tx: &mut Tx,
    flow_id: &str,
    version: i64,
    rec: &Record,
    by: &str,
) -> Result<()> {
    Sql::new(
        "INSERT INTO flow_versions (flow_id, version, trigger, steps, settings, created_by, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .arg(flow_id)
    .arg(version)
    .arg(rec.trigger.stored.to_string())
    .arg(rec.steps.to_string())
    .arg(rec.settings.to_stored())
    .arg(by)
    .arg(now_ms())
    .execute(tx)
    .await
    .map(drop)
}

/// Whether two records differ in what a version holds (not the name, not being enabled).
pub(super) fn differs(a: &Record, b: &Record) -> bool {
    // A new webhook secret is no new definition: the secret is the flow's, not a version's.
    a.trigger.stored != b.trigger.stored || a.steps != b.steps || a.settings != b.settings
}

fn from_row(r: &row::Row, live: &Current) -> Result<FlowVersion> {
    let version = row::get_i64(r, "version")?;
    Ok(FlowVersion {
        version,
        is_live: version == live.version,
        trigger: shown_trigger(
            &json_column(r, "trigger")?,
            live.token.as_deref(),
            live.has_secret,
        ),
        steps: json_column(r, "steps")?,
        settings: Settings::from_stored(&row::get_str(r, "settings")?),
        created_by: row::get_str(r, "created_by")?,
        created_at: format_ms(row::get_i64(r, "created_at")?),
    })
}

/// What a version shows of the flow as it is now: which version is live, and the inbound URL
/// and secret every version of a webhook flow shares.
struct Current {
    version: i64,
    token: Option<String>,
    has_secret: bool,
}

/// The live version of a flow of the actor's organization.
async fn live_version(db: &Db, actor: &Actor, flow_id: &str) -> Result<Current> {
    let flow = rows::live_row(db, "flows", actor.org_id(), flow_id)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    Ok(Current {
        version: row::get_i64(&flow, "version")?,
        token: row::get_opt_str(&flow, "webhook_token")?,
        has_secret: row::get_opt_str(&flow, "webhook_secret")?.is_some(),
    })
}

/// `GET /flows/{id}/versions`: newest first.
pub async fn list(db: &Db, actor: &Actor, flow_id: &str) -> Result<Vec<FlowVersion>> {
    actor.require(Permission::ReadFlows)?;
    let live = live_version(db, actor, flow_id).await?;
    Sql::new("SELECT * FROM flow_versions WHERE flow_id = ? ORDER BY version DESC LIMIT 200")
        .arg(flow_id)
        .fetch_all(db)
        .await?
        .iter()
        .map(|r| from_row(r, &live))
        .collect()
}

/// `GET /flows/{id}/versions/{n}`.
pub async fn get(db: &Db, actor: &Actor, flow_id: &str, version: i64) -> Result<FlowVersion> {
    actor.require(Permission::ReadFlows)?;
    let live = live_version(db, actor, flow_id).await?;
    let row = Sql::new("SELECT * FROM flow_versions WHERE flow_id = ? AND version = ?")
        .arg(flow_id)
        .arg(version)
        .fetch_optional(db)
        .await?
        .ok_or(Error::NotFound("flow version"))?;
    from_row(&row, &live)
}

/// A version's definition, for executing a run pinned to it.
pub async fn definition(
    conn: impl QueryTarget,
    flow_id: &str,
    version: i64,
) -> Result<Option<Definition>> {
    Sql::new("SELECT trigger, steps, settings FROM flow_versions WHERE flow_id = ? AND version = ?")
        .arg(flow_id)
        .arg(version)
        .fetch_optional(conn)
        .await?
        .map(|r| {
            Ok(Definition {
                trigger: json_column(&r, "trigger")?,
                steps: json_column(&r, "steps")?,
                settings: Settings::from_stored(&row::get_str(&r, "settings")?),
            })
        })
        .transpose()
}

/// The change that makes a version's definition live again (as the next version).
pub async fn restoring(db: &Db, actor: &Actor, flow_id: &str, version: i64) -> Result<FlowInput> {
    let kept = get(db, actor, flow_id, version).await?;
    let mut trigger = kept.trigger;
    if let Some(object) = trigger.as_object_mut() {
        // What the API adds when showing a webhook trigger; the secret stays the flow's own.
        object.remove("hasSecret");
        object.remove("webhookUrl");
        if object.get("signature") == Some(&Value::Null) {
            object.remove("signature");
        }
    }
    Ok(FlowInput {
        trigger: Patch::Value(trigger),
        steps: Patch::Value(kept.steps),
        settings: Patch::Value(serde_json::to_value(kept.settings).unwrap_or_default()),
        ..FlowInput::default()
    })
}
