//! Connections: how a flow reaches a system. `self` is this instance (in-process, as the flow's
//! owner); `api_key` another instance of this API or any API taking a key in a header; `basic`
//! a user name and password; `oauth2` tokens from an authorization-code grant. Credentials are
//! write-only: sealed with AES-256-GCM (the connection's id as associated data, so a sealed
//! value moved to another row does not open) and never shown.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::access::auth::{Actor, Permission};
use crate::automation::saving::Saving;
use crate::error::{Error, Result};
use crate::store::clock::{format_ms, format_opt, now_ms};
use crate::store::db::{Db, QueryTarget, Sql, Tx, row};
use crate::store::events;
use crate::store::ids;
use crate::store::list::{self, FilterKind, ListParams, ListSpec, Page};
use crate::store::patch::Patch;
use crate::store::rows;

pub const NOUN: &str = "connection";
pub const TYPES: [&str; 7] = [
    ConnectionKind::This.as_str(),
    ConnectionKind::ApiKey.as_str(),
    ConnectionKind::Basic.as_str(),
    ConnectionKind::OAuth2.as_str(),
    ConnectionKind::Bearer.as_str(),
    ConnectionKind::OAuth2ClientCredentials.as_str(),
    ConnectionKind::NoAuth.as_str(),
];
/// The header an `api_key` connection sends its key in unless told otherwise.
pub const DEFAULT_KEY_HEADER: &str = "X-Api-Key";
/// What `POST /connections/{id}/test` reads unless the settings name another path.
pub const DEFAULT_TEST_PATH: &str = "/me";
/// The file under the data directory holding the key credentials are sealed with.
pub const KEY_FILE: &str = "secret.key";

pub const LIST: ListSpec = ListSpec {
    table: "connections",
    sorts: &[("name", "name")],
    filters: &[
        ("name", "name", FilterKind::Text),
        ("type", "type", FilterKind::Text),
        ("status", "status", FilterKind::Text),
        ("connector", "connector", FilterKind::Text),
    ],
    search: Some("name"),
    soft_delete: true,
};
mod check;
mod kind;
mod oauth;
mod vault;

use check::{Record, SecretChange, apply};
pub use kind::{ConnectionKind, ConnectionStatus};
pub use oauth::*;
pub use vault::*;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// `con_…`
    pub id: String,
    #[schema(example = "Acme's timix")]
    pub name: String,
    /// `self`, `api_key`, `basic`, `bearer`, `oauth2`, `oauth2_client_credentials` or `none`.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "api_key")]
    pub kind: ConnectionKind,
    /// The connector it was made for (`slack`); none for a connection by type.
    pub connector: Option<String>,
    /// Where its requests go (`https://timix.acme.example/api/integration/v1`); none for `self`.
    pub base_url: Option<String>,
    /// What is not secret: `header`, `prefix`, `testPath`; OAuth2 `authorizeUrl`, `tokenUrl`,
    /// `clientId`, `scopes`, `authorizeParams`.
    #[schema(value_type = Object)]
    pub settings: Value,
    /// Whether credentials are stored (they are never shown).
    pub has_credentials: bool,
    /// OAuth2: whether tokens were obtained.
    pub is_authorized: bool,
    /// `ok`, `error` or `untested`.
    #[schema(value_type = String)]
    pub status: ConnectionStatus,
    pub last_error: Option<String>,
    pub last_tested_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The body of `POST /connections` and `PATCH /connections/{id}`. `credentials` by type:
/// `api_key` `{apiKey}`, `bearer` `{token}`, `basic` `{username, password}`, `oauth2` and
/// `oauth2_client_credentials` `{clientSecret}`. A connection for a connector names it
/// (`connector: "slack"`): its type, base URL and auth come from the connector.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionInput {
    /// A connector's key (see `GET /connectors`); it cannot change once made.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "slack")]
    pub connector: Patch<String>,
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 200,
             pattern = r"^[\s\u0085]*[^\s\u0000\u0085][^\u0000]*$")]
    pub name: Patch<String>,
    /// Required unless `connector` gives it; it cannot change once made.
    #[serde(default, rename = "type")]
    #[schema(value_type = ConnectionType)]
    pub kind: Patch<String>,
    /// An absolute http(s) URL without credentials, query or fragment; none for `self`, and
    /// required otherwise unless `connector` gives it. The schema keeps to host names; a
    /// public IP address is accepted too, a private one or `localhost` only if the operator
    /// allows private targets.
    #[serde(default)]
    #[schema(value_type = Option<String>,
             pattern = r"^https?://(?![^/]*\.[Ll][Oo][Cc][Aa][Ll][Hh][Oo][Ss][Tt](:|/|$))([A-Za-z0-9]+(-[A-Za-z0-9]+)*\.)+[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*(:[0-9]{1,4})?(/[A-Za-z0-9._~!$&'()*+,;=:@%-]*)*$")]
    pub base_url: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub settings: Patch<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>, example = json!({"apiKey": "bbl_…"}))]
    pub credentials: Patch<Value>,
}

/// The schema of a connection's `type`: one of [`TYPES`].
pub struct ConnectionType;

impl utoipa::PartialSchema for ConnectionType {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::store::checks::one_of_schema("How a connection reaches its system.", TYPES)
    }
}

impl utoipa::ToSchema for ConnectionType {}

/// A connection as the action performer uses it, credentials opened.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub id: String,
    pub org_id: String,
    pub kind: ConnectionKind,
    pub base_url: Option<String>,
    pub settings: Value,
    pub secret: Value,
}

impl Resolved {
    /// Where the connection's test request goes, below its base URL.
    pub fn test_path(&self) -> String {
        self.settings["testPath"]
            .as_str()
            .unwrap_or(DEFAULT_TEST_PATH)
            .to_owned()
    }
}

fn settings_of(r: &row::Row) -> Result<Value> {
    serde_json::from_str(&row::get_str(r, "settings")?)
        .map_err(|e| Error::Internal(format!("stored connection settings: {e}")))
}

pub(crate) fn from_row(vault: Option<&Vault>, r: &row::Row) -> Result<Connection> {
    let id = row::get_str(r, "id")?;
    let sealed = row::get_opt_str(r, "secret")?;
    let kind: ConnectionKind = row::get_str(r, "type")?.parse()?;
    let is_authorized = match (&sealed, vault, kind) {
        (Some(s), Some(v), ConnectionKind::OAuth2) => v
            .open(&id, s)
            .map(|secret| secret["accessToken"].is_string())
            .unwrap_or(false),
        _ => false,
    };
    let connector = row::get_opt_str(r, "connector")?;
    Ok(Connection {
        name: row::get_str(r, "name")?,
        base_url: row::get_opt_str(r, "base_url")?,
        settings: settings_of(r)?,
        has_credentials: sealed.is_some() && kind != ConnectionKind::OAuth2 || is_authorized,
        is_authorized,
        kind,
        connector,
        status: row::get_str(r, "status")?.parse()?,
        last_error: row::get_opt_str(r, "last_error")?,
        last_tested_at: format_opt(row::get_opt_i64(r, "last_tested_at")?),
        created_at: format_ms(row::get_i64(r, "created_at")?),
        updated_at: format_ms(row::get_i64(r, "updated_at")?),
        id,
    })
}

fn record_of(r: &row::Row) -> Result<Record> {
    Ok(Record {
        name: row::get_str(r, "name")?,
        kind: row::get_str(r, "type")?.parse()?,
        base_url: row::get_opt_str(r, "base_url")?,
        settings: settings_of(r)?,
        connector: row::get_opt_str(r, "connector")?,
    })
}

/// The connector a connection is made for, from the manifests the organization sees.
fn connector_named<'m>(
    saving: &Saving<'m>,
    given: &Patch<String>,
    current: Option<&Record>,
) -> Result<Option<&'m crate::automation::connectors::Connector>> {
    let key = match (given, current) {
        (Patch::Value(key), Some(c)) if c.connector.as_deref() != Some(key.as_str()) => {
            return Err(Error::validation(
                "connector",
                "immutable",
                "the connector of a connection cannot change; create another",
            ));
        }
        (Patch::Value(key), _) => Some(key.as_str()),
        (_, Some(c)) => c.connector.as_deref(),
        (_, None) => None,
    };
    let Some(key) = key else {
        return Ok(None);
    };
    match saving.manifests.connectors.get(key) {
        Some(loaded) => Ok(Some(&loaded.connector)),
        // A connection outlives the connector it was made for: it keeps working as made.
        None if current.is_some() => Ok(None),
        None => Err(Error::validation(
            "connector",
            "unknown_connector",
            format!(
                "{} is not a connector; see GET /connectors",
                crate::store::json::quote(key)
            ),
        )),
    }
}

pub async fn list(
    db: &Db,
    vault: &Vault,
    actor: &Actor,
    params: &ListParams,
) -> Result<Page<Connection>> {
    actor.require(Permission::ReadFlows)?;
    list::list(db, actor.org_id(), &LIST, params, |r| {
        from_row(Some(vault), r)
    })
    .await
}

pub async fn get(db: &Db, vault: &Vault, actor: &Actor, id: &str) -> Result<Connection> {
    actor.require(Permission::ReadFlows)?;
    let row = rows::live_row(db, LIST.table, actor.org_id(), id)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    from_row(Some(vault), &row)
}

async fn reload(tx: &mut Tx, vault: &Vault, id: &str) -> Result<Connection> {
    let row = Sql::new("SELECT * FROM connections WHERE id = ?")
        .arg(id)
        .fetch_one(&mut *tx)
        .await?;
    from_row(Some(vault), &row)
}

pub async fn create(
    db: &Db,
    saving: Saving<'_>,
    actor: &Actor,
    input: ConnectionInput,
) -> Result<Connection> {
    actor.require(Permission::ManageFlows)?;
    let vault = saving.vault;
    let connector = connector_named(&saving, &input.connector, None)?;
    let (rec, secret) = apply(input, None, saving.targets, connector)?;
    let id = ids::new_id(ids::CONNECTION);
    let sealed = match secret {
        SecretChange::Replace(value) => Some(vault.seal(&id, &value)?),
        SecretChange::Keep => None,
    };
    let now = now_ms();
    // A self connection needs no test: it is this instance.
    let status = if rec.kind == ConnectionKind::This {
        ConnectionStatus::Ok
    } else {
        ConnectionStatus::Untested
    };
    let mut tx = events::begin_write(db).await?;
    Sql::new(
        "INSERT INTO connections (id, org_id, name, type, connector, base_url, settings, secret, status, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .arg(&id)
    .arg(actor.org_id())
    .arg(&rec.name)
    .arg(rec.kind.as_str())
    .arg(rec.connector.clone())
    .arg(rec.base_url.clone())
    .arg(rec.settings.to_string())
    .arg(sealed)
    .arg(status.as_str())
    .arg(now)
    .arg(now)
    .execute(&mut tx)
    .await?;
    let created = reload(&mut tx, vault, &id).await?;
    events::created(&mut tx, actor.org_id(), NOUN, &id, &created).await?;
    crate::access::idempotency::record(
        &mut tx,
        actor,
        crate::access::idempotency::Answer::Created,
        &created,
    )
    .await?;
    tx.commit().await?;
    Ok(created)
}

pub async fn update(
    db: &Db,
    saving: Saving<'_>,
    actor: &Actor,
    id: &str,
    input: ConnectionInput,
) -> Result<Connection> {
    let vault = saving.vault;
    actor.require(Permission::ManageFlows)?;
    let mut tx = events::begin_write(db).await?;
    let row = rows::live_row(&mut tx, LIST.table, actor.org_id(), id)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    let before = from_row(Some(vault), &row)?;
    actor.check_if_match(&before)?;
    let current = record_of(&row)?;
    let connector = connector_named(&saving, &input.connector, Some(&current))?;
    let (rec, secret) = apply(input, Some(&current), saving.targets, connector)?;
    let endpoints_changed = rec.base_url != current.base_url || rec.settings != current.settings;
    let mut sealed = row::get_opt_str(&row, "secret")?;
    let mut secret_changed = false;
    if let SecretChange::Replace(value) = secret {
        sealed = Some(vault.seal(id, &value)?);
        secret_changed = true;
    } else if endpoints_changed && rec.kind.is_oauth() {
        // Tokens belong to the provider, client and API they came from; the client secret to
        // the provider and client.
        let mut kept = match &sealed {
            Some(s) => vault.open(id, s)?,
            None => json!({}),
        };
        let same_client = ["authorizeUrl", "tokenUrl", "clientId"]
            .iter()
            .all(|k| rec.settings[k] == current.settings[k]);
        if let Some(object) = kept.as_object_mut() {
            object.retain(|k, _| same_client && k == "clientSecret");
        }
        sealed = Some(vault.seal(id, &kept)?);
        secret_changed = true;
    }
    if rec == current && !secret_changed {
        return Ok(before);
    }
    let retest = (endpoints_changed || secret_changed) && rec.kind != ConnectionKind::This;
    Sql::new(
        "UPDATE connections SET name = ?, base_url = ?, settings = ?, secret = ?, status = ?, last_error = ?, \
         updated_at = ? WHERE id = ?",
    )
    .arg(&rec.name)
    .arg(rec.base_url.clone())
    .arg(rec.settings.to_string())
    .arg(sealed)
    .arg(if retest { ConnectionStatus::Untested } else { before.status }.as_str())
    .arg(if retest { None } else { before.last_error.clone() })
    .arg(now_ms())
    .arg(id)
    .execute(&mut tx)
    .await?;
    let after = reload(&mut tx, vault, id).await?;
    events::updated(&mut tx, actor.org_id(), NOUN, id, (&before, &after)).await?;
    crate::access::idempotency::record(
        &mut tx,
        actor,
        crate::access::idempotency::Answer::Changed,
        &after,
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// The live flows of an organization that name a connection (in their trigger or a step).
async fn flows_using(conn: impl QueryTarget, org_id: &str, id: &str) -> Result<Vec<String>> {
    let needle = format!("%\"{id}\"%");
    Sql::new(
        "SELECT id FROM flows WHERE org_id = ? AND deleted_at IS NULL AND (trigger LIKE ? OR steps LIKE ?) ORDER BY id",
    )
    .arg(org_id)
    .arg(needle.as_str())
    .arg(needle.as_str())
    .fetch_all(conn)
    .await?
    .iter()
    .map(|r| row::get_str(r, "id"))
    .collect()
}

pub async fn delete(db: &Db, vault: &Vault, actor: &Actor, id: &str) -> Result<()> {
    actor.require(Permission::ManageFlows)?;
    let mut tx = events::begin_write(db).await?;
    let row = rows::live_row(&mut tx, LIST.table, actor.org_id(), id)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    let last = from_row(Some(vault), &row)?;
    actor.check_if_match(&last)?;
    let users = flows_using(&mut tx, actor.org_id(), id).await?;
    if !users.is_empty() {
        return Err(Error::Conflict {
            code: "in_use",
            message: format!(
                "the connection is used by {} flow(s) ({}); change or delete them first",
                users.len(),
                users.join(", ")
            ),
        });
    }
    let now = now_ms();
    // The credentials go with it: a tombstone keeps no secret.
    Sql::new("UPDATE connections SET secret = NULL, oauth_state = NULL, deleted_at = ?, updated_at = ? WHERE id = ?")
        .arg(now)
        .arg(now)
        .arg(id)
        .execute(&mut tx)
        .await?;
    events::deleted(&mut tx, actor.org_id(), NOUN, id, &last).await?;
    tx.commit().await
}

fn resolved_of(vault: &Vault, r: &row::Row) -> Result<Resolved> {
    let id = row::get_str(r, "id")?;
    let secret = match row::get_opt_str(r, "secret")? {
        Some(sealed) => vault.open(&id, &sealed)?,
        None => json!({}),
    };
    Ok(Resolved {
        org_id: row::get_str(r, "org_id")?,
        kind: row::get_str(r, "type")?.parse()?,
        base_url: row::get_opt_str(r, "base_url")?,
        settings: settings_of(r)?,
        secret,
        id,
    })
}

/// A live connection of an organization with its credentials opened (for the action performer).
pub async fn resolve(db: &Db, vault: &Vault, org_id: &str, id: &str) -> Result<Option<Resolved>> {
    rows::live_row(db, LIST.table, org_id, id)
        .await?
        .as_ref()
        .map(|r| resolved_of(vault, r))
        .transpose()
}

/// What a flow's check needs to know of a connection it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRef {
    pub kind: ConnectionKind,
    /// The connector it was made for.
    pub connector: Option<String>,
}

/// The live connections of an organization, by id (flows check the ids they name).
pub async fn kinds(
    conn: impl QueryTarget,
    org_id: &str,
) -> Result<crate::automation::flows::ConnectionKinds> {
    Sql::new("SELECT id, type, connector FROM connections WHERE org_id = ? AND deleted_at IS NULL")
        .arg(org_id)
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| {
            Ok((
                row::get_str(r, "id")?,
                ConnectionRef {
                    kind: row::get_str(r, "type")?.parse()?,
                    connector: row::get_opt_str(r, "connector")?,
                },
            ))
        })
        .collect()
}

/// Records what a test, a refresh or a request found: `ok`, or `error` with the reason.
pub async fn set_status(db: &Db, id: &str, error: Option<&str>, tested: bool) -> Result<()> {
    let status = if error.is_some() {
        ConnectionStatus::Error
    } else {
        ConnectionStatus::Ok
    }
    .as_str();
    let mut sql = Sql::new("UPDATE connections SET status = ?, last_error = ?");
    sql.bind(status).bind(error);
    if tested {
        sql.push(", last_tested_at = ?").bind(now_ms());
    }
    // Unchanged outcomes are not written again: a busy connection costs no extra writes.
    sql.push(" WHERE id = ? AND deleted_at IS NULL").bind(id);
    if !tested {
        sql.push(" AND (status <> ? OR COALESCE(last_error, '') <> COALESCE(?, ''))")
            .bind(status)
            .bind(error);
    }
    db.write_count(&sql).await.map(drop)
}

/// Replaces a connection's opened secret (new OAuth2 tokens).
pub async fn save_secret(db: &Db, vault: &Vault, id: &str, secret: &Value) -> Result<()> {
    let sealed = vault.seal(id, secret)?;
    db.write_count(
        &Sql::new(
            "UPDATE connections SET secret = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL",
        )
        .arg(sealed)
        .arg(now_ms())
        .arg(id),
    )
    .await
    .map(drop)
}
