//! `Idempotency-Key`: the first request with a key runs and its answer is stored in the same
//! transaction as its change; a retry with the same body gets that answer again, a retry with
//! another body is refused, and a retry while the first still runs is told so.

use serde::Serialize;

use crate::access::auth::Actor;
use crate::error::{Error, Result};
use crate::store::clock::{Millis, now_ms};
use crate::store::db::{Db, Sql, Tx, row};

/// A running request that holds an idempotency key.
#[derive(Debug, Clone)]
pub struct Claim {
    pub api_key_id: String,
    pub key: String,
    /// The request path, which `Location` of a replayed 201 is built from.
    pub path: String,
}

/// What an idempotent request did, which decides how its answer is replayed (the web layer
/// maps it to a status: 201 with `Location`, or 200).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A record was created.
    Created,
    /// A record was changed, or an action taken on it.
    Changed,
}

impl Answer {
    /// The `status` column keeps the codes earlier versions wrote there, so answers recorded
    /// before an upgrade replay unchanged.
    fn stored(self) -> i64 {
        match self {
            Answer::Created => 201,
            Answer::Changed => 200,
        }
    }

    fn from_stored(value: i64) -> Self {
        if value == 201 {
            Answer::Created
        } else {
            Answer::Changed
        }
    }
}

/// A stored answer.
#[derive(Debug, Clone)]
pub struct Stored {
    pub answer: Answer,
    pub location: Option<String>,
    pub body: String,
}

pub enum Outcome {
    /// First use: run the request, then [`record`] its answer.
    Fresh(Claim),
    /// Seen before with the same body: answer this.
    Replay(Stored),
}

/// A claim left `running` this long is taken to be abandoned (its process died) and may be
/// taken over by a retry.
const ABANDONED_AFTER_MS: i64 = 60_000;

/// Checks an `Idempotency-Key` header value: 1–255 printable ASCII characters.
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    {
        return Err(Error::InvalidParameter(
            "Idempotency-Key must be 1 to 255 printable ASCII characters".into(),
        ));
    }
    Ok(())
}

/// Claims `key` for a request whose method, path and body hash to `request_hash`.
pub async fn claim(
    db: &Db,
    api_key_id: &str,
    key: &str,
    request_hash: &str,
    path: &str,
) -> Result<Outcome> {
    check_key(key)?;
    let fresh = || {
        Outcome::Fresh(Claim {
            api_key_id: api_key_id.to_owned(),
            key: key.to_owned(),
            path: path.to_owned(),
        })
    };
    // The key is either inserted here or read back; a row purged in between (its retention
    // ended) is inserted again.
    let mut attempts = 0;
    let (now, row) = loop {
        let now = now_ms();
        let inserted = Sql::new(
            "INSERT INTO idempotency_keys (api_key_id, idem_key, request_hash, state, created_at, updated_at) \
             VALUES (?, ?, ?, 'running', ?, ?) ON CONFLICT (api_key_id, idem_key) DO NOTHING",
        )
        .arg(api_key_id)
        .arg(key)
        .arg(request_hash)
        .arg(now)
        .arg(now)
        .execute(db)
        .await?;
        if inserted == 1 {
            return Ok(fresh());
        }
        let row = Sql::new("SELECT * FROM idempotency_keys WHERE api_key_id = ? AND idem_key = ?")
            .arg(api_key_id)
            .arg(key)
            .fetch_optional(db)
            .await?;
        match row {
            Some(row) => break (now, row),
            None if attempts < 3 => attempts += 1,
            None => return Err(Error::conflict("the idempotency key changed hands; retry")),
        }
    };
    if row::get_str(&row, "request_hash")? != request_hash {
        return Err(Error::IdempotencyKeyReused);
    }
    if row::get_str(&row, "state")? == "done" {
        return Ok(Outcome::Replay(Stored {
            answer: Answer::from_stored(row::get_i64(&row, "status")?),
            location: row::get_opt_str(&row, "location")?,
            body: row::get_opt_str(&row, "body")?.unwrap_or_default(),
        }));
    }
    let updated_at = row::get_i64(&row, "updated_at")?;
    if now - updated_at < ABANDONED_AFTER_MS {
        return Err(Error::Conflict {
            code: "idempotency_key_in_use",
            message: "a request with this Idempotency-Key is still running; retry when it is done"
                .into(),
        });
    }
    let taken = Sql::new(
        "UPDATE idempotency_keys SET updated_at = ? WHERE api_key_id = ? AND idem_key = ? \
         AND state = 'running' AND updated_at = ?",
    )
    .arg(now)
    .arg(api_key_id)
    .arg(key)
    .arg(updated_at)
    .execute(db)
    .await?;
    if taken == 1 {
        Ok(fresh())
    } else {
        Err(Error::Conflict {
            code: "idempotency_key_in_use",
            message: "a request with this Idempotency-Key is still running; retry when it is done"
                .into(),
        })
    }
}

/// Stores the answer of the caller's idempotent request inside the transaction of its change.
/// Does nothing for a request without an `Idempotency-Key`.
pub async fn record<T: Serialize>(
    tx: &mut Tx,
    actor: &Actor,
    answer: Answer,
    body: &T,
) -> Result<()> {
    let Some(claim) = &actor.conditions.idempotency else {
        return Ok(());
    };
    let body = serde_json::to_value(body).map_err(|e| Error::Internal(e.to_string()))?;
    let location = match (answer, body.get("id").and_then(|v| v.as_str())) {
        (Answer::Created, Some(id)) => Some(format!("{}/{id}", claim.path.trim_end_matches('/'))),
        _ => None,
    };
    Sql::new(
        "UPDATE idempotency_keys SET state = 'done', status = ?, location = ?, body = ?, updated_at = ? \
         WHERE api_key_id = ? AND idem_key = ?",
    )
    .arg(answer.stored())
    .arg(location)
    .arg(body.to_string())
    .arg(now_ms())
    .arg(&claim.api_key_id)
    .arg(&claim.key)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Frees a claim whose request failed, so the client may retry with the same key.
pub async fn release(db: &Db, claim: &Claim) -> Result<()> {
    Sql::new(
        "DELETE FROM idempotency_keys WHERE api_key_id = ? AND idem_key = ? AND state = 'running'",
    )
    .arg(&claim.api_key_id)
    .arg(&claim.key)
    .execute(db)
    .await
    .map(drop)
}

/// Forgets keys older than `retention_ms`.
pub async fn purge(db: &Db, retention_ms: Millis) -> Result<u64> {
    Sql::new("DELETE FROM idempotency_keys WHERE created_at < ?")
        .arg(now_ms() - retention_ms)
        .execute(db)
        .await
}
