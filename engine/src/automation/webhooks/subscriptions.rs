//! Storing subscriptions: webhooks and REST hooks created, changed, rotated and removed by
//! their owners, read by the dispatcher and the deliverer, and marked failing, recovered or
//! ended by what their deliveries come to.

use serde_json::Value;

use super::{
    Hook, HookInput, LIST, ROTATION_OVERLAP_MS, Subscription, Webhook, WebhookInput,
    WebhookWithSecret, check_events, check_url, hook_from_row, live_subscription, new_secret,
    webhook_from_row,
};
use crate::access::auth::{Actor, Permission};
use crate::automation::connections::{SEALED_PREFIX, Vault};
use crate::automation::quotas::Counted;
use crate::automation::saving::Saving;
use crate::automation::targets::Targets;
use crate::error::{Error, FieldError, Problems, Result};
use crate::store::checks::{self, LONG_TEXT};
use crate::store::clock::{Millis, now_ms};
use crate::store::db::{Arg, Db, Sql, Tx, row};
use crate::store::events;
use crate::store::ids;
use crate::store::list::{self, ListParams, Page};
use crate::store::patch::Patch;
use crate::store::rows;

pub async fn list_webhooks(db: &Db, actor: &Actor, params: &ListParams) -> Result<Page<Webhook>> {
    actor.require(Permission::ManageWebhooks)?;
    // Hooks live in the same table; this list shows webhooks only.
    let fixed = [("kind", Arg::from("webhook"))];
    let scope = list::Scope {
        org_id: actor.org_id(),
        fixed: &fixed,
    };
    list::list_where(db, scope, &LIST, params, webhook_from_row).await
}

pub async fn get_webhook(db: &Db, actor: &Actor, id: &str) -> Result<Webhook> {
    actor.require(Permission::ManageWebhooks)?;
    webhook_from_row(&live_subscription(db, actor, "webhook", id).await?)
}

pub async fn create_webhook(
    db: &Db,
    saving: Saving<'_>,
    actor: &Actor,
    input: WebhookInput,
) -> Result<WebhookWithSecret> {
    actor.require(Permission::ManageWebhooks)?;
    let mut p = Problems::default();
    let url = match input.url {
        Patch::Value(u) => p.take(check_url(saving.targets, "url", &u)),
        _ => {
            p.push(FieldError::required("url"));
            None
        }
    };
    let events = input
        .events
        .into_option()
        .unwrap_or_else(|| vec!["*".to_owned()]);
    p.take(check_events("events", &events));
    let description = p
        .take(checks::opt_text(
            "description",
            input.description.into_option(),
            LONG_TEXT,
        ))
        .flatten();
    let is_enabled = input.is_enabled.into_option().unwrap_or(true);
    p.into_result()?;
    let url = url.ok_or_else(|| Error::Internal("url missing after validation".into()))?;
    let secret = new_secret();
    let mut tx = db.begin().await?;
    saving
        .quotas
        .check(&mut tx, actor.org_id(), Counted::Webhooks)
        .await?;
    let id = insert(
        &mut tx,
        saving.vault,
        actor,
        NewSubscription {
            kind: "webhook",
            url: &url,
            events: &events,
            description,
            filters: None,
            is_enabled,
            secret: &secret,
        },
    )
    .await?;
    let row = Sql::new("SELECT * FROM subscriptions WHERE id = ?")
        .arg(&id)
        .fetch_one(&mut tx)
        .await?;
    let webhook = webhook_from_row(&row)?;
    crate::access::idempotency::record(
        &mut tx,
        actor,
        crate::access::idempotency::Answer::Created,
        &webhook,
    )
    .await?;
    tx.commit().await?;
    Ok(WebhookWithSecret { webhook, secret })
}

/// A subscription about to be stored.
struct NewSubscription<'a> {
    kind: &'a str,
    url: &'a str,
    events: &'a [String],
    description: Option<String>,
    filters: Option<&'a Value>,
    is_enabled: bool,
    /// In the clear: sealed on the way in.
    secret: &'a str,
}

async fn insert(
    tx: &mut Tx,
    vault: &Vault,
    actor: &Actor,
    new: NewSubscription<'_>,
) -> Result<String> {
    let NewSubscription {
        kind,
        url,
        events,
        description,
        filters,
        is_enabled,
        secret,
    } = new;
    let id = ids::new_id(if kind == "hook" { "hook" } else { "whk" });
    let sealed = vault.seal_text(&id, secret)?;
    let now = now_ms();
    Sql::new(
        "INSERT INTO subscriptions (id, org_id, kind, url, events, description, filters, is_enabled, secret, \
         created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .arg(&id)
    .arg(actor.org_id())
    .arg(kind)
    .arg(url)
    .arg(serde_json::to_string(events).map_err(|e| Error::Internal(e.to_string()))?)
    .arg(description)
    .arg(filters.map(Value::to_string))
    .arg(is_enabled)
    .arg(sealed)
    .arg(&actor.user_id)
    .arg(now)
    .arg(now)
    .execute(&mut *tx)
    .await?;
    Ok(id)
}

pub async fn update_webhook(
    db: &Db,
    targets: Targets,
    actor: &Actor,
    id: &str,
    input: WebhookInput,
) -> Result<Webhook> {
    actor.require(Permission::ManageWebhooks)?;
    let mut tx = db.begin().await?;
    let row = live_subscription(&mut tx, actor, "webhook", id).await?;
    let before = webhook_from_row(&row)?;
    actor.check_if_match(&before)?;
    let mut p = Problems::default();
    let url = match input.url {
        Patch::Absent => Some(before.url.clone()),
        Patch::Null => {
            p.push(FieldError::required("url"));
            None
        }
        Patch::Value(u) => p.take(check_url(targets, "url", &u)),
    };
    let events =
        checks::patch_required(&mut p, "events", input.events, Some(before.events.clone()));
    if let Some(events) = &events {
        p.take(check_events("events", events));
    }
    let description = p.take(checks::opt_text(
        "description",
        input.description.apply(before.description.clone()),
        LONG_TEXT,
    ));
    let is_enabled = checks::patch_required(
        &mut p,
        "isEnabled",
        input.is_enabled,
        Some(before.is_enabled),
    );
    p.into_result()?;
    let (Some(url), Some(events), Some(description), Some(is_enabled)) =
        (url, events, description, is_enabled)
    else {
        return Err(Error::Internal(
            "webhook fields missing after validation".into(),
        ));
    };
    // Re-enabling clears timix's reason and the failure streak.
    Sql::new(
        "UPDATE subscriptions SET url = ?, events = ?, description = ?, is_enabled = ?, \
         disabled_reason = CASE WHEN ? = 1 THEN NULL ELSE disabled_reason END, \
         failing_since = CASE WHEN ? = 1 THEN NULL ELSE failing_since END, updated_at = ? WHERE id = ?",
    )
    .arg(url)
    .arg(serde_json::to_string(&events).map_err(|e| Error::Internal(e.to_string()))?)
    .arg(description)
    .arg(is_enabled)
    .arg(is_enabled && !before.is_enabled)
    .arg(is_enabled && !before.is_enabled)
    .arg(now_ms())
    .arg(id)
    .execute(&mut tx)
    .await?;
    let row = Sql::new("SELECT * FROM subscriptions WHERE id = ?")
        .arg(id)
        .fetch_one(&mut tx)
        .await?;
    let after = webhook_from_row(&row)?;
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

pub async fn delete_webhook(db: &Db, actor: &Actor, id: &str) -> Result<()> {
    actor.require(Permission::ManageWebhooks)?;
    let mut tx = db.begin().await?;
    live_subscription(&mut tx, actor, "webhook", id).await?;
    rows::soft_delete(&mut tx, LIST.table, id, now_ms()).await?;
    tx.commit().await
}

/// A new secret; the old one keeps signing (a second signature) for 24 hours.
pub async fn rotate_secret(
    db: &Db,
    vault: &Vault,
    actor: &Actor,
    id: &str,
) -> Result<WebhookWithSecret> {
    actor.require(Permission::ManageWebhooks)?;
    let mut tx = db.begin().await?;
    let row = live_subscription(&mut tx, actor, "webhook", id).await?;
    // Sealed for this row, it moves to the other column as it is.
    let old = row::get_str(&row, "secret")?;
    let secret = new_secret();
    let now = now_ms();
    Sql::new(
        "UPDATE subscriptions SET secret = ?, previous_secret = ?, previous_secret_until = ?, updated_at = ? WHERE id = ?",
    )
    .arg(vault.seal_text(id, &secret)?)
    .arg(old)
    .arg(now + ROTATION_OVERLAP_MS)
    .arg(now)
    .arg(id)
    .execute(&mut tx)
    .await?;
    let row = Sql::new("SELECT * FROM subscriptions WHERE id = ?")
        .arg(id)
        .fetch_one(&mut tx)
        .await?;
    let webhook = webhook_from_row(&row)?;
    tx.commit().await?;
    Ok(WebhookWithSecret { webhook, secret })
}

/// Logs a `webhook.test` event that only this webhook receives.
pub async fn send_test(db: &Db, actor: &Actor, id: &str) -> Result<Value> {
    actor.require(Permission::ManageWebhooks)?;
    let mut tx = events::begin_write(db).await?;
    live_subscription(&mut tx, actor, "webhook", id).await?;
    let data = serde_json::json!({"webhookId": id, "message": "This is a test event from timix."});
    let seq = events::append(
        &mut tx,
        events::NewEvent {
            org_id: actor.org_id(),
            kind: "webhook.test".into(),
            resource_id: id,
            data: data.clone(),
            changed: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(serde_json::json!({"webhookId": id, "eventSeq": seq}))
}

/// `POST /hooks`: the same target and event again answers the existing hook (`false`: not created).
pub async fn subscribe(
    db: &Db,
    saving: Saving<'_>,
    actor: &Actor,
    input: HookInput,
) -> Result<(Hook, bool)> {
    actor.require(Permission::ManageWebhooks)?;
    let mut p = Problems::default();
    let url = match input.target_url {
        Some(u) => p.take(check_url(saving.targets, "targetUrl", &u)),
        None => {
            p.push(FieldError::required("targetUrl"));
            None
        }
    };
    let event = match input.event {
        Some(e) => p.take(check_events("event", std::slice::from_ref(&e)).map(|_| e)),
        None => {
            p.push(FieldError::required("event"));
            None
        }
    };
    if let Some(filters) = &input.filters
        && !filters.is_object()
        && !filters.is_null()
    {
        p.add(
            "filters",
            "invalid",
            "filters must be an object of field: value conditions",
        );
    }
    p.into_result()?;
    let (Some(url), Some(event)) = (url, event) else {
        return Err(Error::Internal(
            "hook fields missing after validation".into(),
        ));
    };
    let filters = input.filters.filter(|f| !f.is_null());
    let events = vec![event];
    let events_json = serde_json::to_string(&events).map_err(|e| Error::Internal(e.to_string()))?;
    let mut tx = db.begin().await?;
    let existing = Sql::new(
        "SELECT * FROM subscriptions WHERE org_id = ? AND kind = 'hook' AND url = ? AND events = ? AND deleted_at IS NULL",
    )
    .arg(actor.org_id())
    .arg(&url)
    .arg(&events_json)
    .fetch_optional(&mut tx)
    .await?;
    if let Some(row) = existing {
        return Ok((hook_from_row(&row)?, false));
    }
    saving
        .quotas
        .check(&mut tx, actor.org_id(), Counted::Hooks)
        .await?;
    let id = insert(
        &mut tx,
        saving.vault,
        actor,
        NewSubscription {
            kind: "hook",
            url: &url,
            events: &events,
            description: None,
            filters: filters.as_ref(),
            is_enabled: true,
            secret: &new_secret(),
        },
    )
    .await?;
    let row = Sql::new("SELECT * FROM subscriptions WHERE id = ?")
        .arg(&id)
        .fetch_one(&mut tx)
        .await?;
    let hook = hook_from_row(&row)?;
    crate::access::idempotency::record(
        &mut tx,
        actor,
        crate::access::idempotency::Answer::Created,
        &hook,
    )
    .await?;
    tx.commit().await?;
    Ok((hook, true))
}

pub async fn list_hooks(db: &Db, actor: &Actor) -> Result<Vec<Hook>> {
    actor.require(Permission::ManageWebhooks)?;
    let rows = Sql::new(
        "SELECT * FROM subscriptions WHERE org_id = ? AND kind = 'hook' AND deleted_at IS NULL ORDER BY created_at DESC, id DESC",
    )
    .arg(actor.org_id())
    .fetch_all(db)
    .await?;
    rows.iter().map(hook_from_row).collect()
}

/// `DELETE /hooks/{id}`: succeeds also when the hook is already gone.
pub async fn unsubscribe(db: &Db, actor: &Actor, id: &str) -> Result<()> {
    actor.require(Permission::ManageWebhooks)?;
    let mut tx = db.begin().await?;
    if live_subscription(&mut tx, actor, "hook", id).await.is_ok() {
        rows::soft_delete(&mut tx, LIST.table, id, now_ms()).await?;
    }
    tx.commit().await
}

/// Seals the signing secrets (current and previous) earlier versions kept in plaintext.
/// Idempotent; answers how many subscriptions it changed.
pub async fn seal_plaintext_secrets(db: &Db, vault: &Vault) -> Result<u64> {
    // Every secret here was made by timix (`whsec_…`), so the mark alone tells sealed ones.
    let sealed_like = format!("{SEALED_PREFIX}%");
    let rows = Sql::new(
        "SELECT id, secret, previous_secret FROM subscriptions WHERE secret NOT LIKE ? \
         OR previous_secret NOT LIKE ?",
    )
    .arg(sealed_like.as_str())
    .arg(sealed_like.as_str())
    .fetch_all(db)
    .await?;
    let mut changed = 0;
    for r in &rows {
        let id = row::get_str(r, "id")?;
        let secret = row::get_str(r, "secret")?;
        let previous = row::get_opt_str(r, "previous_secret")?;
        let seal = |value: &str| -> Result<String> {
            if value.starts_with(SEALED_PREFIX) {
                Ok(value.to_owned())
            } else {
                vault.seal_text(&id, value)
            }
        };
        let sealed_previous = previous.as_deref().map(seal).transpose()?;
        // Only the row as read: a rotation meanwhile (by a process already sealing) stays.
        changed += db
            .write_count(
                &Sql::new(
                    "UPDATE subscriptions SET secret = ?, previous_secret = ? WHERE id = ? AND secret = ? \
                     AND COALESCE(previous_secret, '') = COALESCE(?, '')",
                )
                .arg(seal(&secret)?)
                .arg(sealed_previous)
                .arg(&id)
                .arg(&secret)
                .arg(previous),
            )
            .await?;
    }
    Ok(changed)
}

/// Every enabled subscription of an organization (for the dispatcher).
pub async fn enabled_for(
    conn: impl crate::store::db::QueryTarget,
    org_id: &str,
) -> Result<Vec<Subscription>> {
    let rows = Sql::new(
        "SELECT * FROM subscriptions WHERE org_id = ? AND is_enabled = 1 AND deleted_at IS NULL",
    )
    .arg(org_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(Subscription::from_row).collect()
}

pub async fn subscription(db: &Db, id: &str) -> Result<Option<Subscription>> {
    Sql::new("SELECT * FROM subscriptions WHERE id = ? AND deleted_at IS NULL")
        .arg(id)
        .fetch_optional(db)
        .await?
        .map(|r| Subscription::from_row(&r))
        .transpose()
}

/// A delivery to the subscription failed: its failure streak starts now unless it already
/// runs. Returns when the streak started.
pub async fn mark_failing(db: &Db, subscription: &Subscription, at: Millis) -> Result<Millis> {
    match subscription.failing_since {
        Some(since) => Ok(since),
        None => {
            Sql::new("UPDATE subscriptions SET failing_since = ? WHERE id = ?")
                .arg(at)
                .arg(&subscription.id)
                .execute(db)
                .await?;
            Ok(at)
        }
    }
}

/// A delivery to the subscription succeeded: its failure streak (if any) ends.
pub async fn mark_recovered(db: &Db, subscription: &Subscription) -> Result<()> {
    if subscription.failing_since.is_none() {
        return Ok(());
    }
    Sql::new("UPDATE subscriptions SET failing_since = NULL WHERE id = ?")
        .arg(&subscription.id)
        .execute(db)
        .await
        .map(drop)
}

/// Ends a subscription its receiver no longer takes: a REST hook is removed; a webhook is
/// disabled with `reason`, with a `webhook_endpoint.disabled` event.
pub async fn end_subscription(db: &Db, subscription: &Subscription, reason: &str) -> Result<()> {
    let now = now_ms();
    let mut tx = events::begin_write(db).await?;
    if subscription.kind == "hook" {
        Sql::new("UPDATE subscriptions SET deleted_at = ?, updated_at = ? WHERE id = ?")
            .arg(now)
            .arg(now)
            .arg(&subscription.id)
            .execute(&mut tx)
            .await?;
    } else {
        Sql::new("UPDATE subscriptions SET is_enabled = 0, disabled_reason = ?, updated_at = ? WHERE id = ?")
            .arg(reason)
            .arg(now)
            .arg(&subscription.id)
            .execute(&mut tx)
            .await?;
        events::append(
            &mut tx,
            events::NewEvent {
                org_id: &subscription.org_id,
                kind: "webhook_endpoint.disabled".into(),
                resource_id: &subscription.id,
                data: serde_json::json!({"id": subscription.id, "url": subscription.url, "reason": reason}),
                changed: None,
            },
        )
        .await?;
    }
    tx.commit().await
}
