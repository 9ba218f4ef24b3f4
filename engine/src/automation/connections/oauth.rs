//! OAuth2 authorization state: the `state` and PKCE verifier remembered between sending
//! the user to the provider and its callback.

use base64::Engine as _;
use rand::RngExt;
use serde_json::json;

use super::{ConnectionKind, LIST, NOUN, Resolved, Vault, resolved_of};
use crate::access::auth::{Actor, Permission};
use crate::error::{Error, Result};
use crate::store::clock::now_ms;
use crate::store::db::{Db, Sql};
use crate::store::rows;

/// What an OAuth2 authorization waits with until the provider calls back: the `state` it sent
/// and the PKCE verifier that goes with it.
#[derive(Debug, Clone, Copy)]
pub struct PendingAuthorization<'a> {
    pub state: &'a str,
    pub verifier: &'a str,
}

/// Starts an OAuth2 authorization of connection `id`: remembers its `state` and PKCE verifier.
pub async fn begin_authorization(
    db: &Db,
    vault: &Vault,
    actor: &Actor,
    id: &str,
    pending: PendingAuthorization<'_>,
) -> Result<Resolved> {
    let PendingAuthorization { state, verifier } = pending;
    actor.require(Permission::ManageFlows)?;
    let mut tx = db.begin().await?;
    let row = rows::live_row(&mut tx, LIST.table, actor.org_id(), id)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    let mut resolved = resolved_of(vault, &row)?;
    if resolved.kind != ConnectionKind::OAuth2 {
        return Err(Error::conflict("only oauth2 connections are authorized"));
    }
    if let Some(object) = resolved.secret.as_object_mut() {
        object.insert("verifier".into(), json!(verifier));
        object.insert("verifierAt".into(), json!(now_ms()));
    }
    Sql::new("UPDATE connections SET secret = ?, oauth_state = ? WHERE id = ?")
        .arg(vault.seal(id, &resolved.secret)?)
        .arg(state)
        .arg(id)
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(resolved)
}

/// The connection an OAuth2 `state` belongs to; the state is used up.
pub async fn take_authorization(db: &Db, vault: &Vault, state: &str) -> Result<Option<Resolved>> {
    let mut tx = db.begin().await?;
    let Some(row) =
        Sql::new("SELECT * FROM connections WHERE oauth_state = ? AND deleted_at IS NULL")
            .arg(state)
            .fetch_optional(&mut tx)
            .await?
    else {
        return Ok(None);
    };
    let resolved = resolved_of(vault, &row)?;
    Sql::new("UPDATE connections SET oauth_state = NULL WHERE id = ?")
        .arg(&resolved.id)
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(Some(resolved))
}

/// A random token for OAuth2 `state`.
pub fn random_state() -> String {
    let bytes: [u8; 24] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
