//! API keys: created by a user for themself (or by the operator), shown once, stored as SHA-256.

use serde::{Deserialize, Serialize};

use crate::access::auth::{Actor, Permission, Role, hash_key, key_format};
use crate::access::idempotency::{self, Answer};
use crate::error::{Error, Problems, Result};
use crate::store::checks::{self, SHORT_TEXT};
use crate::store::clock::{Millis, format_ms, format_opt, now_ms, parse_instant_field};
use crate::store::db::{Db, Sql, Tx, row};
use crate::store::events;
use crate::store::ids;
use crate::store::list::{self, FilterKind, ListParams, ListSpec, Page};

pub const NOUN: &str = "api_key";

pub const LIST: ListSpec = ListSpec {
    table: "api_keys",
    sorts: &[("name", "name")],
    filters: &[
        ("userId", "user_id", FilterKind::Text),
        ("name", "name", FilterKind::Text),
        ("prefix", "prefix", FilterKind::Text),
    ],
    search: Some("name"),
    soft_delete: false,
};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    /// `key_…`
    pub id: String,
    pub name: String,
    /// The first 12 characters of the key, to recognise it.
    pub prefix: String,
    /// The role given at creation; the key acts with the lower of this and its owner's role.
    pub role: Role,
    pub user_id: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The answer to a key's creation: the only time the full key is shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub api_key: ApiKey,
    /// The full key (`bbl_…`). Store it now: it cannot be shown again.
    pub key: String,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeyInput {
    /// What the key is for.
    #[schema(value_type = String, required = true, max_length = 200,
             pattern = r"^[\s\u0085]*[^\s\u0000\u0085][^\u0000]*$", example = "Zapier")]
    pub name: Option<String>,
    /// At most the creator's role; defaults to it.
    #[schema(value_type = Option<Role>)]
    pub role: Option<String>,
    /// RFC 3339; must be in the future. None: the key does not expire.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

fn from_row(r: &row::Row) -> Result<ApiKey> {
    let role = row::get_str(r, "role")?;
    Ok(ApiKey {
        id: row::get_str(r, "id")?,
        name: row::get_str(r, "name")?,
        prefix: row::get_str(r, "prefix")?,
        role: Role::parse(&role).ok_or_else(|| Error::Internal(format!("stored role {role}")))?,
        user_id: row::get_str(r, "user_id")?,
        expires_at: format_opt(row::get_opt_i64(r, "expires_at")?),
        last_used_at: format_opt(row::get_opt_i64(r, "last_used_at")?),
        revoked_at: format_opt(row::get_opt_i64(r, "revoked_at")?),
        created_at: format_ms(row::get_i64(r, "created_at")?),
        updated_at: format_ms(row::get_i64(r, "updated_at")?),
    })
}

pub async fn list(db: &Db, actor: &Actor, params: &ListParams) -> Result<Page<ApiKey>> {
    actor.require(Permission::ManageApiKeys)?;
    list::list(db, actor.org_id(), &LIST, params, from_row).await
}

pub async fn get(db: &Db, actor: &Actor, id: &str) -> Result<ApiKey> {
    actor.require(Permission::ManageApiKeys)?;
    let row = Sql::new("SELECT * FROM api_keys WHERE id = ? AND org_id = ?")
        .arg(id)
        .arg(actor.org_id())
        .fetch_optional(db)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    from_row(&row)
}

/// Creates a key for the calling user. Needs the professional plan or higher.
pub async fn create(db: &Db, actor: &Actor, input: ApiKeyInput) -> Result<CreatedApiKey> {
    actor.require(Permission::ManageApiKeys)?;
    if !actor.organization.plan.allows_api_keys() {
        return Err(Error::Forbidden {
            code: "plan_required",
            message: "creating API keys needs the professional or business plan".into(),
        });
    }
    let mut p = Problems::default();
    let name = p.take(checks::required_text("name", input.name, SHORT_TEXT));
    let role = match input.role.as_deref().map(Role::parse) {
        None => Some(actor.role),
        Some(Some(role)) => Some(role),
        Some(None) => {
            p.add(
                "role",
                "invalid",
                "role must be one of owner, admin, manager, member, viewer",
            );
            None
        }
    };
    let expires_at = match input.expires_at {
        None => Some(None),
        Some(text) => p.take(parse_instant_field("expiresAt", &text)).map(Some),
    };
    if let Some(Some(t)) = expires_at
        && t <= now_ms()
    {
        p.add("expiresAt", "invalid", "expiresAt must be in the future");
    }
    let ok = p.finish("key")?;
    let (name, role, expires_at) = (ok.get(name)?, ok.get(role)?, ok.get(expires_at)?);
    if role > actor.role {
        return Err(Error::forbidden(format!(
            "a {} cannot create a key with the {} role",
            actor.role.as_str(),
            role.as_str()
        )));
    }
    let mut tx = events::begin_write(db).await?;
    let new = NewApiKey {
        org_id: actor.org_id(),
        user_id: &actor.user_id,
        name: &name,
        role,
        expires_at,
    };
    let created = insert(&mut tx, new).await?;
    // A replay of this request does not show the key again: only its hash is ever stored.
    idempotency::record(&mut tx, actor, Answer::Created, &created.api_key).await?;
    tx.commit().await?;
    Ok(created)
}

/// A key about to be created: whose it is, what it is called, the role it acts with and when
/// it expires (never when `None`).
#[derive(Debug, Clone, Copy)]
pub struct NewApiKey<'a> {
    pub org_id: &'a str,
    pub user_id: &'a str,
    pub name: &'a str,
    pub role: Role,
    pub expires_at: Option<Millis>,
}

/// Creates a key inside `tx` and logs `api_key.created` (operator paths use this directly).
pub async fn insert(tx: &mut Tx, new: NewApiKey<'_>) -> Result<CreatedApiKey> {
    let NewApiKey {
        org_id,
        user_id,
        name,
        role,
        expires_at,
    } = new;
    let key = key_format::generate();
    let id = ids::new_id(ids::API_KEY);
    let now = now_ms();
    Sql::new(
        "INSERT INTO api_keys (id, org_id, user_id, name, prefix, key_hash, role, expires_at, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .arg(&id)
    .arg(org_id)
    .arg(user_id)
    .arg(name)
    .arg(key_format::display_prefix(&key))
    .arg(hash_key(&key))
    .arg(role.as_str())
    .arg(expires_at)
    .arg(now)
    .arg(now)
    .execute(&mut *tx)
    .await?;
    let row = Sql::new("SELECT * FROM api_keys WHERE id = ?")
        .arg(&id)
        .fetch_one(&mut *tx)
        .await?;
    let api_key = from_row(&row)?;
    events::created(tx, org_id, NOUN, &id, &api_key).await?;
    Ok(CreatedApiKey { api_key, key })
}

/// Operator path (`timix keys create`): a key for any user, acting with that user's role.
pub async fn create_for_user(
    db: &Db,
    user_id: &str,
    name: &str,
    expires_at: Option<Millis>,
) -> Result<CreatedApiKey> {
    let mut tx = events::begin_write(db).await?;
    let user = Sql::new("SELECT org_id, role FROM org_users WHERE id = ? AND deleted_at IS NULL")
        .arg(user_id)
        .fetch_optional(&mut tx)
        .await?
        .ok_or(Error::NotFound("user"))?;
    let role = row::get_str(&user, "role")?;
    let role = Role::parse(&role).ok_or_else(|| Error::Internal(format!("stored role {role}")))?;
    let org_id = row::get_str(&user, "org_id")?;
    let new = NewApiKey {
        org_id: &org_id,
        user_id,
        name,
        role,
        expires_at,
    };
    let created = insert(&mut tx, new).await?;
    tx.commit().await?;
    Ok(created)
}

/// Revokes a key: the very next request with it is refused. Revoking twice is fine.
pub async fn revoke(db: &Db, actor: &Actor, id: &str) -> Result<()> {
    actor.require(Permission::ManageApiKeys)?;
    let mut tx = events::begin_write(db).await?;
    let row = Sql::new("SELECT * FROM api_keys WHERE id = ? AND org_id = ?")
        .arg(id)
        .arg(actor.org_id())
        .fetch_optional(&mut tx)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    if row::get_opt_i64(&row, "revoked_at")?.is_some() {
        return Ok(());
    }
    let now = now_ms();
    Sql::new("UPDATE api_keys SET revoked_at = ?, updated_at = ? WHERE id = ?")
        .arg(now)
        .arg(now)
        .arg(id)
        .execute(&mut tx)
        .await?;
    let row = Sql::new("SELECT * FROM api_keys WHERE id = ?")
        .arg(id)
        .fetch_one(&mut tx)
        .await?;
    let revoked = from_row(&row)?;
    events::append(
        &mut tx,
        events::NewEvent {
            org_id: actor.org_id(),
            kind: "api_key.revoked".into(),
            resource_id: id,
            data: serde_json::to_value(&revoked).map_err(|e| Error::Internal(e.to_string()))?,
            changed: None,
        },
    )
    .await?;
    tx.commit().await
}
