//! Connectors in the database: an organization's own (each with its current version and a
//! revision counter), and every version a flow was saved with, so a flow runs the connector it
//! was saved with until it is saved again, whatever happened to the connector since.

use serde_json::Value;

use super::{Loaded, Source, load_checked};
use crate::access::auth::{Actor, Permission};
use crate::error::{Error, FieldError, Result};
use crate::store::clock::now_ms;
use crate::store::db::{Db, QueryTarget, Sql, Tx, row};
use crate::store::events;
use crate::store::ids;

const NOUN: &str = "connector";
/// Connectors one organization may install.
pub const MAX_PER_ORGANIZATION: usize = 50;

/// An organization's connector as stored.
#[derive(Debug, Clone)]
pub struct Installed {
    pub key: String,
    pub version_id: String,
    /// 1 when installed, one more with every new version.
    pub revision: i64,
    pub created_at: i64,
    pub updated_at: i64,
    document: String,
}

impl Installed {
    /// Its current version, read again (stored documents were checked when they came in).
    pub fn parse(&self, org_id: &str) -> Result<Loaded> {
        parse_stored(&self.document, Source::Organization, Some(org_id))
    }
}

/// A version as stored.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub org_id: Option<String>,
    document: String,
}

impl StoredVersion {
    pub fn parse(&self, org_id: Option<&str>) -> Result<Loaded> {
        let source = if org_id.is_some() {
            Source::Organization
        } else {
            Source::Instance
        };
        parse_stored(&self.document, source, org_id)
    }
}

fn parse_stored(document: &str, source: Source, org_id: Option<&str>) -> Result<Loaded> {
    let value: Value = serde_json::from_str(document)
        .map_err(|e| Error::Internal(format!("stored connector: {e}")))?;
    load_checked(value, source, org_id).map_err(|problems| {
        Error::Internal(format!(
            "a stored connector no longer reads: {}",
            problems
                .iter()
                .map(|(p, m)| format!("{p}: {m}"))
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })
}

fn installed_of(r: &row::Row) -> Result<Installed> {
    Ok(Installed {
        key: row::get_str(r, "key")?,
        version_id: row::get_str(r, "version_id")?,
        revision: row::get_i64(r, "revision")?,
        created_at: row::get_i64(r, "created_at")?,
        updated_at: row::get_i64(r, "updated_at")?,
        document: row::get_str(r, "document")?,
    })
}

const SELECT_INSTALLED: &str = "SELECT c.key, c.version_id, c.revision, c.created_at, c.updated_at, v.document \
     FROM connectors c JOIN connector_versions v ON v.id = c.version_id \
     WHERE c.org_id = ? AND c.deleted_at IS NULL";

/// The organization's own connectors, by key.
pub async fn installed(conn: impl QueryTarget, org_id: &str) -> Result<Vec<Installed>> {
    Sql::new(&format!("{SELECT_INSTALLED} ORDER BY c.key"))
        .arg(org_id)
        .fetch_all(conn)
        .await?
        .iter()
        .map(installed_of)
        .collect()
}

async fn installed_one(
    conn: impl QueryTarget,
    org_id: &str,
    key: &str,
) -> Result<Option<Installed>> {
    Sql::new(&format!("{SELECT_INSTALLED} AND c.key = ?"))
        .arg(org_id)
        .arg(key)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(installed_of)
        .transpose()
}

/// A version by its id.
pub async fn version(db: &Db, id: &str) -> Result<Option<StoredVersion>> {
    Sql::new("SELECT org_id, document FROM connector_versions WHERE id = ?")
        .arg(id)
        .fetch_optional(db)
        .await?
        .map(|r| {
            Ok(StoredVersion {
                org_id: row::get_opt_str(&r, "org_id")?,
                document: row::get_str(&r, "document")?,
            })
        })
        .transpose()
}

/// Keeps versions (once each) so that flows saved with them can run them later.
pub async fn remember(tx: &mut Tx, versions: &[&Loaded]) -> Result<()> {
    for loaded in versions {
        Sql::new(
            "INSERT INTO connector_versions (id, org_id, key, version, document, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .arg(&loaded.version_id)
        .arg(loaded.org_id.clone())
        .arg(&loaded.connector.key)
        .arg(&loaded.connector.version)
        .arg(loaded.document.to_string())
        .arg(now_ms())
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Installs a connector for the actor's organization (`taken`: keys the instance already
/// uses).
pub async fn install(db: &Db, actor: &Actor, loaded: &Loaded, taken: bool) -> Result<Installed> {
    actor.require(Permission::ManageFlows)?;
    let key = &loaded.connector.key;
    if taken {
        return Err(key_taken(key));
    }
    let mut tx = events::begin_write(db).await?;
    if installed_one(&mut tx, actor.org_id(), key).await?.is_some() {
        return Err(Error::Conflict {
            code: "already_exists",
            message: format!(
                "{key} is installed already; PUT /connectors/{key} makes a new version"
            ),
        });
    }
    if installed(&mut tx, actor.org_id()).await?.len() >= MAX_PER_ORGANIZATION {
        return Err(Error::Conflict {
            code: "limit_reached",
            message: format!(
                "an organization installs at most {MAX_PER_ORGANIZATION} connectors; delete one first"
            ),
        });
    }
    remember(&mut tx, &[loaded]).await?;
    let now = now_ms();
    Sql::new(
        "INSERT INTO connectors (id, org_id, key, version_id, revision, created_at, updated_at) \
         VALUES (?, ?, ?, ?, 1, ?, ?)",
    )
    .arg(ids::new_id("cnr"))
    .arg(actor.org_id())
    .arg(key.as_str())
    .arg(&loaded.version_id)
    .arg(now)
    .arg(now)
    .execute(&mut tx)
    .await?;
    let out = installed_one(&mut tx, actor.org_id(), key)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    tx.commit().await?;
    Ok(out)
}

fn key_taken(key: &str) -> Error {
    Error::Conflict {
        code: "key_taken",
        message: format!("{key} is a connector of this instance; choose another key"),
    }
}

/// A new version of an organization's connector (`key`: the one in the URL).
pub async fn replace(db: &Db, actor: &Actor, key: &str, loaded: &Loaded) -> Result<Installed> {
    actor.require(Permission::ManageFlows)?;
    if loaded.connector.key != key {
        return Err(Error::Validation(vec![FieldError::new(
            "/key",
            "immutable",
            format!("the key is {key}, as in the URL; install another connector for a new key"),
        )]));
    }
    let mut tx = events::begin_write(db).await?;
    let current = installed_one(&mut tx, actor.org_id(), key)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    if current.version_id != loaded.version_id {
        remember(&mut tx, &[loaded]).await?;
        Sql::new(
            "UPDATE connectors SET version_id = ?, revision = revision + 1, updated_at = ? \
             WHERE org_id = ? AND key = ? AND deleted_at IS NULL",
        )
        .arg(&loaded.version_id)
        .arg(now_ms())
        .arg(actor.org_id())
        .arg(key)
        .execute(&mut tx)
        .await?;
    }
    let out = installed_one(&mut tx, actor.org_id(), key)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    tx.commit().await?;
    Ok(out)
}

/// The live flows of an organization that name a connector's actions or triggers.
pub async fn flows_using(conn: impl QueryTarget, org_id: &str, key: &str) -> Result<Vec<String>> {
    let needle = format!("%\"{key}.%");
    Sql::new(
        "SELECT id FROM flows WHERE org_id = ? AND deleted_at IS NULL \
         AND (steps LIKE ? OR trigger LIKE ? OR COALESCE(draft, '') LIKE ?) ORDER BY id",
    )
    .arg(org_id)
    .arg(needle.as_str())
    .arg(needle.as_str())
    .arg(needle.as_str())
    .fetch_all(conn)
    .await?
    .iter()
    .map(|r| row::get_str(r, "id"))
    .collect()
}

/// Removes an organization's connector; refused while a flow uses it. Its versions stay for
/// the runs that name them.
pub async fn remove(db: &Db, actor: &Actor, key: &str) -> Result<()> {
    actor.require(Permission::ManageFlows)?;
    let mut tx = events::begin_write(db).await?;
    installed_one(&mut tx, actor.org_id(), key)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    let users = flows_using(&mut tx, actor.org_id(), key).await?;
    if !users.is_empty() {
        return Err(Error::Conflict {
            code: "in_use",
            message: format!(
                "the connector is used by {} flow(s) ({}); change or delete them first",
                users.len(),
                users.join(", ")
            ),
        });
    }
    let now = now_ms();
    Sql::new("UPDATE connectors SET deleted_at = ?, updated_at = ? WHERE org_id = ? AND key = ? AND deleted_at IS NULL")
        .arg(now)
        .arg(now)
        .arg(actor.org_id())
        .arg(key)
        .execute(&mut tx)
        .await?;
    tx.commit().await
}
