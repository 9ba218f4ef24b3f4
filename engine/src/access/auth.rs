//! Who is calling and what they may do: roles, plans, the permission matrix (the one place where
//! access is decided), the API key format, and authentication of a key.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::access::organizations::{BillingState, Organization, Plan};
use crate::error::{Error, Result};
use crate::store::clock::{Millis, now_ms};
use crate::store::db::{Db, Sql, row};

/// Roles from least to most powerful; the derived order is the hierarchy.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Member,
    Manager,
    Admin,
    Owner,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Member,
        Role::Manager,
        Role::Admin,
        Role::Owner,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Manager => "manager",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// Everything a caller can be allowed to do. Each names the resource and whether it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    ReadAll,
    WriteOrganization,
    WriteOrgUsers,
    ManageApiKeys,
    WriteCustomers,
    WriteProjects,
    WriteTasks,
    WriteSubtasks,
    ManageWebhooks,
    /// Log, edit and time one's own entries, and submit one's own timesheets.
    WriteOwnTime,
    /// The same for anyone's entries and timesheets.
    WriteAnyTime,
    /// Approve and reject timesheets.
    ApproveTimesheets,
    /// Read invoices and the financial reports.
    ReadFinancials,
    /// Create, issue, pay and void invoices.
    WriteInvoices,
    /// Holiday profiles, which set users' expected capacity.
    WriteHolidayProfiles,
    /// Flows and their runs.
    ManageFlows,
    /// Reading flows and runs (their inbound URLs, trigger records and step inputs).
    ReadFlows,
}

impl Permission {
    pub const ALL: [Permission; 17] = [
        Permission::ReadAll,
        Permission::WriteOrganization,
        Permission::WriteOrgUsers,
        Permission::ManageApiKeys,
        Permission::WriteCustomers,
        Permission::WriteProjects,
        Permission::WriteTasks,
        Permission::WriteSubtasks,
        Permission::ManageWebhooks,
        Permission::WriteOwnTime,
        Permission::WriteAnyTime,
        Permission::ApproveTimesheets,
        Permission::ReadFinancials,
        Permission::WriteInvoices,
        Permission::WriteHolidayProfiles,
        Permission::ManageFlows,
        Permission::ReadFlows,
    ];

    /// The permission matrix: the least role that holds each permission.
    pub fn least_role(self) -> Role {
        match self {
            Permission::ReadAll => Role::Viewer,
            Permission::WriteTasks | Permission::WriteSubtasks | Permission::WriteOwnTime => {
                Role::Member
            }
            Permission::WriteCustomers
            | Permission::WriteProjects
            | Permission::WriteAnyTime
            | Permission::ApproveTimesheets
            | Permission::ReadFinancials
            | Permission::WriteInvoices => Role::Manager,
            Permission::WriteOrgUsers
            | Permission::ManageApiKeys
            | Permission::ManageWebhooks
            | Permission::WriteHolidayProfiles
            | Permission::ManageFlows
            | Permission::ReadFlows => Role::Admin,
            Permission::WriteOrganization => Role::Owner,
        }
    }

    pub fn writes(self) -> bool {
        !matches!(
            self,
            Permission::ReadAll | Permission::ReadFinancials | Permission::ReadFlows
        )
    }

    /// The name shown in `/me`'s `permissions`.
    pub fn name(self) -> &'static str {
        match self {
            Permission::ReadAll => "read",
            Permission::WriteOrganization => "organization:write",
            Permission::WriteOrgUsers => "org_users:write",
            Permission::ManageApiKeys => "api_keys:write",
            Permission::WriteCustomers => "customers:write",
            Permission::WriteProjects => "projects:write",
            Permission::WriteTasks => "tasks:write",
            Permission::WriteSubtasks => "subtasks:write",
            Permission::ManageWebhooks => "webhooks:write",
            Permission::WriteOwnTime => "time_entries:write_own",
            Permission::WriteAnyTime => "time_entries:write",
            Permission::ApproveTimesheets => "timesheets:approve",
            Permission::ReadFinancials => "financials:read",
            Permission::WriteInvoices => "invoices:write",
            Permission::WriteHolidayProfiles => "holiday_profiles:write",
            Permission::ManageFlows => "flows:write",
            Permission::ReadFlows => "flows:read",
        }
    }
}

/// An authenticated caller: a key, its owner and their organization.
#[derive(Debug, Clone)]
pub struct Actor {
    pub organization: Organization,
    pub user_id: String,
    pub user_email: String,
    pub user_name: String,
    /// The key's effective role: the lower of its role at creation and its owner's current role.
    pub role: Role,
    pub api_key: ApiKeyRef,
    /// Conditions the request carries, applied inside its write.
    pub conditions: Conditions,
}

/// `If-Match` and `Idempotency-Key` of the current request.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    /// The ETag the resource must still have.
    pub if_match: Option<String>,
    pub idempotency: Option<crate::access::idempotency::Claim>,
}

impl Actor {
    /// Refuses with 412 when `If-Match` was given and `current` no longer has that tag.
    pub fn check_if_match<T: Serialize>(&self, current: &T) -> Result<()> {
        match &self.conditions.if_match {
            Some(tag) if !crate::store::etag::matches(tag, &crate::store::etag::of(current)) => {
                Err(Error::PreconditionFailed)
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiKeyRef {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub expires_at: Option<Millis>,
}

impl Actor {
    pub fn org_id(&self) -> &str {
        &self.organization.id
    }

    pub fn can(&self, permission: Permission) -> bool {
        self.role >= permission.least_role()
    }

    /// The single gate every service passes through before it reads or writes.
    pub fn require(&self, permission: Permission) -> Result<()> {
        if !self.can(permission) {
            return Err(Error::forbidden(format!(
                "the {} role cannot do this (needs {} or higher)",
                self.role.as_str(),
                permission.least_role().as_str()
            )));
        }
        if permission.writes() && self.organization.billing_state == BillingState::ReadOnly {
            return Err(Error::Forbidden {
                code: "organization_read_only",
                message: "the organization is read-only: reads work, writes are refused".into(),
            });
        }
        Ok(())
    }

    /// Names of every permission this caller holds.
    pub fn permissions(&self) -> Vec<&'static str> {
        Permission::ALL
            .into_iter()
            .filter(|p| self.can(*p))
            .filter(|p| !p.writes() || self.organization.billing_state != BillingState::ReadOnly)
            .map(Permission::name)
            .collect()
    }
}

/// The key format: `bbl_` + 32 random base62 characters + 6 base62 characters of CRC32 over them.
pub mod key_format {
    use rand::RngExt;

    pub const PREFIX: &str = "bbl_";
    const RANDOM_LEN: usize = 32;
    const CHECKSUM_LEN: usize = 6;
    pub const LEN: usize = PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;
    /// How many leading characters are kept in clear to recognise a key.
    pub const DISPLAY_PREFIX_LEN: usize = 12;
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    fn checksum(random: &str) -> String {
        let mut n = crc32fast::hash(random.as_bytes()) as u64;
        let mut out = [b'0'; CHECKSUM_LEN];
        for slot in out.iter_mut().rev() {
            *slot = ALPHABET[(n % 62) as usize];
            n /= 62;
        }
        String::from_utf8(out.to_vec()).expect("alphabet is ASCII")
    }

    /// A fresh random key.
    pub fn generate() -> String {
        let mut rng = rand::rng();
        let random: String = (0..RANDOM_LEN)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        let check = checksum(&random);
        format!("{PREFIX}{random}{check}")
    }

    /// True when `key` has the format and its checksum matches; no database involved.
    pub fn is_well_formed(key: &str) -> bool {
        let Some(body) = key.strip_prefix(PREFIX) else {
            return false;
        };
        if body.len() != RANDOM_LEN + CHECKSUM_LEN
            || !body.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return false;
        }
        let (random, check) = body.split_at(RANDOM_LEN);
        checksum(random) == check
    }

    pub fn display_prefix(key: &str) -> String {
        key.chars().take(DISPLAY_PREFIX_LEN).collect()
    }
}

/// SHA-256 of a key, hex: the only form in which keys are stored.
pub fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// How long `lastUsedAt` may lag behind the true last use; saves a write on every request.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

/// Resolves a presented key to an [`Actor`]. `org_header` is the optional
/// `X-Organization-Id`/`X-Workspace-Id` value the caller sent.
pub async fn authenticate(db: &Db, key: &str, org_header: Option<&str>) -> Result<Actor> {
    if !key_format::is_well_formed(key) {
        return Err(Error::unauthenticated(
            "unauthenticated",
            "the API key is malformed (bad format or checksum)",
        ));
    }
    let row = Sql::new(
        "SELECT k.id AS key_id, k.name AS key_name, k.prefix, k.role AS key_role, k.expires_at, \
         k.revoked_at, k.last_used_at, u.id AS user_id, u.email, u.name AS user_name, \
         u.role AS user_role, u.is_active, u.deleted_at AS user_deleted_at, o.* \
         FROM api_keys k JOIN org_users u ON u.id = k.user_id \
         JOIN organizations o ON o.id = k.org_id WHERE k.key_hash = ?",
    )
    .arg(hash_key(key))
    .fetch_optional(db)
    .await?
    .ok_or_else(|| Error::unauthenticated("unauthenticated", "the API key is not valid"))?;

    let now = now_ms();
    if row::get_opt_i64(&row, "revoked_at")?.is_some() {
        return Err(Error::unauthenticated(
            "api_key_revoked",
            "the API key has been revoked",
        ));
    }
    let expires_at = row::get_opt_i64(&row, "expires_at")?;
    if expires_at.is_some_and(|t| t <= now) {
        return Err(Error::unauthenticated(
            "api_key_expired",
            "the API key has expired",
        ));
    }
    if !row::get_bool(&row, "is_active")? || row::get_opt_i64(&row, "user_deleted_at")?.is_some() {
        return Err(Error::unauthenticated(
            "unauthenticated",
            "the owner of this API key is deactivated",
        ));
    }
    let organization = Organization::from_row(&row)?;
    if let Some(wanted) = org_header
        && wanted != organization.id
    {
        return Err(Error::Forbidden {
            code: "organization_mismatch",
            message: "X-Organization-Id does not match the API key's organization".into(),
        });
    }
    let key_role = Role::parse(&row::get_str(&row, "key_role")?);
    let user_role = Role::parse(&row::get_str(&row, "user_role")?);
    let (Some(key_role), Some(user_role)) = (key_role, user_role) else {
        return Err(Error::Internal("unknown role stored".into()));
    };
    let key_id = row::get_str(&row, "key_id")?;
    let last_used = row::get_opt_i64(&row, "last_used_at")?;
    if last_used.is_none_or(|t| now - t >= LAST_USED_RESOLUTION_MS) {
        touch_key(db, &key_id, now).await;
    }
    Ok(Actor {
        user_id: row::get_str(&row, "user_id")?,
        user_email: row::get_str(&row, "email")?,
        user_name: row::get_str(&row, "user_name")?,
        role: key_role.min(user_role),
        api_key: ApiKeyRef {
            id: key_id,
            name: row::get_str(&row, "key_name")?,
            prefix: row::get_str(&row, "prefix")?,
            expires_at,
        },
        organization,
        conditions: Conditions::default(),
    })
}

/// The actor a flow's steps act as: the flow's owner with their current role, on behalf of
/// `on_behalf` (the flow, in place of a key). A removed or deactivated owner acts no more.
pub async fn acting_user(
    db: &Db,
    org_id: &str,
    user_id: &str,
    on_behalf: ApiKeyRef,
) -> Result<Actor> {
    let organization = crate::access::organizations::find(db, org_id).await?;
    let owner = Sql::new(
        "SELECT email AS owner_email, name AS owner_name, role AS owner_role, \
         is_active AS owner_is_active FROM org_users WHERE id = ? AND org_id = ? AND deleted_at IS NULL",
    )
    .arg(user_id)
    .arg(org_id)
    .fetch_optional(db)
    .await?;
    acting_as(organization, user_id, owner.as_ref(), on_behalf)
}

/// [`acting_user`] from rows read already: the owner's columns named `owner_email`,
/// `owner_name`, `owner_role` and `owner_is_active` (none when the owner is removed).
pub(crate) fn acting_as(
    organization: Organization,
    user_id: &str,
    owner: Option<&row::Row>,
    on_behalf: ApiKeyRef,
) -> Result<Actor> {
    let owner = owner.ok_or_else(|| Error::forbidden("the flow's owner no longer exists"))?;
    if !row::get_bool(owner, "owner_is_active")? {
        return Err(Error::forbidden("the flow's owner is deactivated"));
    }
    let role = Role::parse(&row::get_str(owner, "owner_role")?)
        .ok_or_else(|| Error::Internal("unknown role stored".into()))?;
    Ok(Actor {
        organization,
        user_id: user_id.to_owned(),
        user_email: row::get_str(owner, "owner_email")?,
        user_name: row::get_str(owner, "owner_name")?,
        role,
        api_key: on_behalf,
        conditions: Conditions::default(),
    })
}

/// Records a use of the key. A failure here must not fail the request it belongs to.
async fn touch_key(db: &Db, key_id: &str, now: Millis) {
    let result = Sql::new("UPDATE api_keys SET last_used_at = ? WHERE id = ?")
        .arg(now)
        .arg(key_id)
        .execute(db)
        .await;
    if let Err(error) = result {
        tracing::warn!(%key_id, %error, "Could not record the API key's last use.");
    }
}

/// Per-minute request budget of a key on each plan.
pub fn rate_limit_per_minute(plan: Plan) -> u32 {
    match plan {
        Plan::Free | Plan::Starter => 120,
        Plan::Professional => 300,
        Plan::Business => 1000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_well_formed_and_a_changed_character_is_caught() {
        for _ in 0..100 {
            let key = key_format::generate();
            assert_eq!(key.len(), key_format::LEN);
            assert!(key_format::is_well_formed(&key), "{key}");
            let mut bytes = key.into_bytes();
            bytes[10] = if bytes[10] == b'a' { b'b' } else { b'a' };
            assert!(!key_format::is_well_formed(
                &String::from_utf8(bytes).unwrap()
            ));
        }
        assert!(!key_format::is_well_formed("bbl_short"));
        assert!(!key_format::is_well_formed(
            "xyz_0123456789012345678901234567890123456"
        ));
    }

    #[test]
    fn the_matrix_orders_roles() {
        assert!(Role::Owner > Role::Admin && Role::Member > Role::Viewer);
        assert_eq!(Permission::WriteCustomers.least_role(), Role::Manager);
        assert_eq!(Permission::WriteTasks.least_role(), Role::Member);
        assert_eq!(Permission::ManageApiKeys.least_role(), Role::Admin);
        assert_eq!(Permission::WriteOrganization.least_role(), Role::Owner);
    }
}
