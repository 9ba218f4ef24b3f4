//! Browser sessions of the web UI: logins with e-mail and password (argon2id), throttled by
//! address and by e-mail; sessions kept as the SHA-256 of a random cookie value with the CSRF
//! token of their forms; and invitations that let a new user set a password.
//!
//! A session acts as its user with the user's current role, exactly as an API key of an admin,
//! manager or member would: the web UI calls the same API in-process.

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::access::auth::{Actor, ApiKeyRef, Permission, acting_user, hash_key};
use crate::error::{Error, Result};
use crate::store::clock::{Millis, now_ms};
use crate::store::db::{Db, Sql, row};

/// A session ends after this long without a request…
pub const IDLE_TIMEOUT_MS: Millis = 12 * 60 * 60 * 1000;
/// …and in any case this long after the login.
pub const ABSOLUTE_TIMEOUT_MS: Millis = 7 * 24 * 60 * 60 * 1000;
/// `last_seen_at` is written at most this often (a page view is not a write).
const SEEN_RESOLUTION_MS: Millis = 5 * 60 * 1000;
/// An invitation link serves for this long.
pub const INVITE_TTL_MS: Millis = 7 * 24 * 60 * 60 * 1000;

/// Failed logins counted over this window…
const THROTTLE_WINDOW_MS: Millis = 15 * 60 * 1000;
/// …at most this many for one e-mail…
const MAX_FAILURES_PER_EMAIL: i64 = 5;
/// …and this many from one address (several people behind one NAT).
const MAX_FAILURES_PER_ADDRESS: i64 = 30;

/// A session just opened: the cookie value (shown to the browser only) and its CSRF token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub csrf: String,
    pub expires_at: Millis,
}

/// A live session: who it acts as and the token its forms must carry.
#[derive(Debug, Clone)]
pub struct Session {
    pub actor: Actor,
    pub csrf: String,
    pub expires_at: Millis,
}

/// What a correct password opens.
#[derive(Debug)]
pub enum Login {
    Opened(NewSession),
    /// The e-mail and password match in several organizations: the user picks one.
    ChooseOrganization(Vec<OrganizationChoice>),
}

#[derive(Debug, Clone)]
pub struct OrganizationChoice {
    pub id: String,
    pub name: String,
}

/// What a login attempt carries.
pub struct Credentials<'a> {
    pub email: &'a str,
    pub password: &'a str,
    /// The organization picked when the e-mail is in several.
    pub organization_id: Option<&'a str>,
    /// The address the attempt came from, for throttling.
    pub client: &'a str,
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

fn wrong_credentials() -> Error {
    Error::unauthenticated("invalid_credentials", "the e-mail or the password is wrong")
}

/// Checks e-mail and password and opens a session. Refused with 429 `rate_limited` after too many
/// failures for the e-mail or from the address, without looking at the password; an e-mail
/// with a NUL character is a 422 before anything is written.
pub async fn log_in(db: &Db, credentials: Credentials<'_>) -> Result<Login> {
    // No account has one, and it could not be counted against the e-mail: refused unread.
    if credentials.email.contains('\0') {
        return Err(Error::validation(
            "email",
            "invalid_character",
            "the e-mail contains a NUL character (U+0000)",
        ));
    }
    let email = credentials.email.trim().to_lowercase();
    let subjects = [
        (format!("email:{email}"), MAX_FAILURES_PER_EMAIL),
        (
            format!("ip:{}", credentials.client),
            MAX_FAILURES_PER_ADDRESS,
        ),
    ];
    // At most a few verifications at once: each takes a core and 19 MiB for a moment.
    let _permit = verification_slot().await?;
    // The attempt is written before it is counted and counts as failed until it succeeds: of
    // any number of attempts at once, at most the limit see a count within it.
    let attempt = random_token();
    let now = now_ms();
    for (subject, _) in &subjects {
        Sql::new("INSERT INTO login_failures (subject, attempt, at) VALUES (?, ?, ?)")
            .arg(subject.as_str())
            .arg(attempt.as_str())
            .arg(now)
            .execute(db)
            .await?;
    }
    for (subject, limit) in &subjects {
        if let Err(refused) = check_throttle(db, subject, *limit, now).await {
            // Refused unread, the attempt was no guess: it does not prolong the lock.
            forget_attempt(db, &attempt).await?;
            return Err(refused);
        }
    }
    let candidates = candidates(db, &email, credentials.organization_id).await?;
    let matched = verify_against(credentials.password, &candidates).await?;
    match matched.as_slice() {
        [] => Err(wrong_credentials()),
        [one] => {
            let candidate = &candidates[*one];
            forget_attempt(db, &attempt).await?;
            Sql::new("DELETE FROM login_failures WHERE subject = ?")
                .arg(subjects[0].0.as_str())
                .execute(db)
                .await?;
            open(db, &candidate.org_id, &candidate.user_id)
                .await
                .map(Login::Opened)
        }
        several => {
            forget_attempt(db, &attempt).await?;
            Ok(Login::ChooseOrganization(
                several
                    .iter()
                    .map(|i| OrganizationChoice {
                        id: candidates[*i].org_id.clone(),
                        name: candidates[*i].org_name.clone(),
                    })
                    .collect(),
            ))
        }
    }
}

async fn forget_attempt(db: &Db, attempt: &str) -> Result<()> {
    Sql::new("DELETE FROM login_failures WHERE attempt = ?")
        .arg(attempt)
        .execute(db)
        .await?;
    Ok(())
}

/// How many password verifications may run at once in this process.
const VERIFICATION_SLOTS: usize = 4;

async fn verification_slot() -> Result<tokio::sync::SemaphorePermit<'static>> {
    static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(VERIFICATION_SLOTS);
    match tokio::time::timeout(std::time::Duration::from_secs(2), SLOTS.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(Error::RateLimited {
            message: "too many logins at this moment; try again in a few seconds".into(),
            retry_after_secs: 2,
        }),
    }
}

/// A user whose e-mail was given, with their organization and password hash.
struct Candidate {
    user_id: String,
    org_id: String,
    org_name: String,
    password_hash: String,
}

async fn candidates(db: &Db, email: &str, organization: Option<&str>) -> Result<Vec<Candidate>> {
    let rows = Sql::new(
        "SELECT u.id, u.org_id, u.password_hash, o.name AS org_name FROM org_users u \
         JOIN organizations o ON o.id = u.org_id \
         WHERE lower(u.email) = ? AND u.deleted_at IS NULL AND u.is_active = ? \
         AND u.password_hash IS NOT NULL ORDER BY o.name, u.org_id",
    )
    .arg(email)
    .arg(true)
    .fetch_all(db)
    .await?;
    let mut out = Vec::new();
    for r in &rows {
        let org_id = row::get_str(r, "org_id")?;
        if organization.is_some_and(|wanted| wanted != org_id) {
            continue;
        }
        out.push(Candidate {
            user_id: row::get_str(r, "id")?,
            org_id,
            org_name: row::get_str(r, "org_name")?,
            password_hash: row::get_str(r, "password_hash")?,
        });
    }
    Ok(out)
}

/// The candidates whose hash the password matches. Verifying is slow on purpose: it runs off
/// the request threads, and with no candidate a dummy verification makes an unknown e-mail as
/// slow as a wrong password.
async fn verify_against(password: &str, candidates: &[Candidate]) -> Result<Vec<usize>> {
    let password = password.to_owned();
    let hashes: Vec<String> = candidates.iter().map(|c| c.password_hash.clone()).collect();
    tokio::task::spawn_blocking(move || {
        if hashes.is_empty() {
            let _ = verify_password(&password, dummy_hash());
            return Vec::new();
        }
        hashes
            .iter()
            .enumerate()
            .filter(|(_, hash)| verify_password(&password, hash))
            .map(|(i, _)| i)
            .collect()
    })
    .await
    .map_err(|e| Error::Internal(format!("password check failed: {e}")))
}

/// Refuses when `subject` has more than `limit` failed attempts in the window (this one counted).
async fn check_throttle(db: &Db, subject: &str, limit: i64, now: Millis) -> Result<()> {
    let since = now - THROTTLE_WINDOW_MS;
    let r = Sql::new(
        "SELECT COUNT(*) AS n, MIN(at) AS oldest FROM login_failures WHERE subject = ? AND at > ?",
    )
    .arg(subject)
    .arg(since)
    .fetch_one(db)
    .await?;
    let count = row::get_i64(&r, "n")?;
    if count <= limit {
        return Ok(());
    }
    let oldest = row::get_opt_i64(&r, "oldest")?.unwrap_or(now);
    let wait_ms = (oldest + THROTTLE_WINDOW_MS - now).max(1000);
    Err(Error::RateLimited {
        message: format!(
            "too many failed logins; try again in {} minute(s)",
            (wait_ms + 59_999) / 60_000
        ),
        retry_after_secs: (wait_ms / 1000) as u64,
    })
}

/// A hash of a random password, verified when the e-mail is unknown.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        crate::access::org_users::hash_password(&random_token()).unwrap_or_default()
    })
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Opens a session for a user (after a login or an accepted invitation).
async fn open(db: &Db, org_id: &str, user_id: &str) -> Result<NewSession> {
    let now = now_ms();
    let session = NewSession {
        token: random_token(),
        csrf: random_token(),
        expires_at: now + IDLE_TIMEOUT_MS,
    };
    Sql::new(
        "INSERT INTO web_sessions (id_hash, org_id, user_id, csrf_token, created_at, last_seen_at, expires_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .arg(hash_key(&session.token))
    .arg(org_id)
    .arg(user_id)
    .arg(session.csrf.as_str())
    .arg(now)
    .arg(now)
    .arg(session.expires_at)
    .execute(db)
    .await?;
    Ok(session)
}

/// The session a cookie value names, if it is live and its user still may log in.
pub async fn resolve(db: &Db, token: &str) -> Result<Option<Session>> {
    let id_hash = hash_key(token);
    let Some(r) = Sql::new(
        "SELECT org_id, user_id, csrf_token, created_at, last_seen_at, expires_at FROM web_sessions WHERE id_hash = ?",
    )
    .arg(id_hash.as_str())
    .fetch_optional(db)
    .await?
    else {
        return Ok(None);
    };
    let now = now_ms();
    let created_at = row::get_i64(&r, "created_at")?;
    let mut expires_at = row::get_i64(&r, "expires_at")?;
    if expires_at <= now || created_at + ABSOLUTE_TIMEOUT_MS <= now {
        log_out(db, token).await?;
        return Ok(None);
    }
    let (org_id, user_id) = (row::get_str(&r, "org_id")?, row::get_str(&r, "user_id")?);
    let on_behalf = ApiKeyRef {
        id: format!("web:{}", &id_hash[..16]),
        name: "web session".into(),
        prefix: String::new(),
        expires_at: Some(expires_at),
    };
    let actor = match acting_user(db, &org_id, &user_id, on_behalf).await {
        Ok(actor) => actor,
        // A removed or deactivated user's sessions end.
        Err(Error::Forbidden { .. }) => {
            log_out(db, token).await?;
            return Ok(None);
        }
        Err(other) => return Err(other),
    };
    if now - row::get_i64(&r, "last_seen_at")? >= SEEN_RESOLUTION_MS {
        expires_at = (now + IDLE_TIMEOUT_MS).min(created_at + ABSOLUTE_TIMEOUT_MS);
        Sql::new("UPDATE web_sessions SET last_seen_at = ?, expires_at = ? WHERE id_hash = ?")
            .arg(now)
            .arg(expires_at)
            .arg(id_hash.as_str())
            .execute(db)
            .await?;
    }
    Ok(Some(Session {
        actor,
        csrf: row::get_str(&r, "csrf_token")?,
        expires_at,
    }))
}

/// Ends the session a cookie value names (nothing happens for an unknown one).
pub async fn log_out(db: &Db, token: &str) -> Result<()> {
    Sql::new("DELETE FROM web_sessions WHERE id_hash = ?")
        .arg(hash_key(token))
        .execute(db)
        .await?;
    Ok(())
}

/// Deletes expired sessions and invitations and old failed logins.
pub async fn purge_expired(db: &Db) -> Result<u64> {
    let now = now_ms();
    let mut removed = Sql::new("DELETE FROM web_sessions WHERE expires_at <= ?")
        .arg(now)
        .execute(db)
        .await?;
    removed += Sql::new("DELETE FROM login_failures WHERE at <= ?")
        .arg(now - THROTTLE_WINDOW_MS)
        .execute(db)
        .await?;
    removed += Sql::new("DELETE FROM web_invites WHERE expires_at <= ?")
        .arg(now)
        .execute(db)
        .await?;
    Ok(removed)
}

/// An invitation just made: the link's token, shown once.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub token: String,
    pub expires_at: Millis,
}

/// Invites a user of the caller's organization to set a password (admins; needs the same
/// permission as managing users). A new invitation replaces the user's earlier ones.
pub async fn invite(db: &Db, actor: &Actor, user_id: &str) -> Result<Invitation> {
    actor.require(Permission::WriteOrgUsers)?;
    let target = Sql::new(
        "SELECT role FROM org_users WHERE id = ? AND org_id = ? AND deleted_at IS NULL AND is_active = ?",
    )
    .arg(user_id)
    .arg(actor.org_id())
    .arg(true)
    .fetch_optional(db)
    .await?
    .ok_or(Error::NotFound("user"))?;
    // A link sets the password: nobody may get one for a role above their own (as the API
    // refuses changing such a user).
    let role = crate::access::auth::Role::parse(&row::get_str(&target, "role")?)
        .ok_or_else(|| Error::Internal("unknown role stored".into()))?;
    if role > actor.role {
        return Err(Error::forbidden(format!(
            "a {} cannot invite an {}",
            actor.role.as_str(),
            role.as_str()
        )));
    }
    let now = now_ms();
    let invitation = Invitation {
        token: random_token(),
        expires_at: now + INVITE_TTL_MS,
    };
    let mut tx = db.begin().await?;
    Sql::new("DELETE FROM web_invites WHERE user_id = ?")
        .arg(user_id)
        .execute(&mut tx)
        .await?;
    Sql::new(
        "INSERT INTO web_invites (token_hash, org_id, user_id, created_by, created_at, expires_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .arg(hash_key(&invitation.token))
    .arg(actor.org_id())
    .arg(user_id)
    .arg(actor.user_id.as_str())
    .arg(now)
    .arg(invitation.expires_at)
    .execute(&mut tx)
    .await?;
    tx.commit().await?;
    Ok(invitation)
}

/// Who an open invitation is for: `(organization name, user e-mail)`.
pub async fn invitation(db: &Db, token: &str) -> Result<(String, String)> {
    let r = Sql::new(
        "SELECT o.name, u.email FROM web_invites i JOIN org_users u ON u.id = i.user_id \
         JOIN organizations o ON o.id = i.org_id \
         WHERE i.token_hash = ? AND i.accepted_at IS NULL AND i.expires_at > ? AND u.deleted_at IS NULL",
    )
    .arg(hash_key(token))
    .arg(now_ms())
    .fetch_optional(db)
    .await?
    .ok_or(Error::NotFound("invitation"))?;
    Ok((row::get_str(&r, "name")?, row::get_str(&r, "email")?))
}

/// Sets the invited user's password and opens a session; the link serves once.
pub async fn accept_invitation(db: &Db, token: &str, password: &str) -> Result<NewSession> {
    let password_hash = {
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || crate::access::org_users::hash_password(&password))
            .await
            .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))??
    };
    let now = now_ms();
    let mut tx = db.begin().await?;
    let r = Sql::new(
        "UPDATE web_invites SET accepted_at = ? WHERE token_hash = ? AND accepted_at IS NULL AND expires_at > ? \
         RETURNING org_id, user_id",
    )
    .arg(now)
    .arg(hash_key(token))
    .arg(now)
    .fetch_optional(&mut tx)
    .await?
    .ok_or(Error::NotFound("invitation"))?;
    let (org_id, user_id) = (row::get_str(&r, "org_id")?, row::get_str(&r, "user_id")?);
    let updated = Sql::new(
        "UPDATE org_users SET password_hash = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL AND is_active = ?",
    )
    .arg(password_hash)
    .arg(now)
    .arg(user_id.as_str())
    .arg(true)
    .execute(&mut tx)
    .await?;
    if updated != 1 {
        return Err(Error::NotFound("invitation"));
    }
    // A new password ends every session opened with the old one.
    Sql::new("DELETE FROM web_sessions WHERE user_id = ?")
        .arg(user_id.as_str())
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    open(db, &org_id, &user_id).await
}
