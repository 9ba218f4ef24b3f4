//! Poll triggers: each enabled poll flow reads its source on its cron schedule, through its
//! connection, and starts a run for every item it has not seen. A lease on the flow keeps it
//! to one poller across processes; the cursor (where the source was read up to) and the seen
//! items are saved with the runs they start, in one transaction, so a crash or a restart
//! neither loses an item nor starts one twice. A failing source (network, 429, 5xx, 4xx) is
//! tried again after a backoff that grows with each failure (or its `Retry-After`), and the
//! error is shown on the flow.
//!
//! Sources: a trigger manifest (`new_customer`) reads this API's list (on this instance or
//! another) with `updatedSince` and its sync watermark; an HTTP source reads any JSON API
//! (`{url, query, items, id, version, since: {param, field}, next: {param, field}}`); what it
//! holds at the first poll is taken as already seen.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use timix_actions::paging::{self, Page};
use timix_actions::{ActionResult, Call, path_data, render_tree, text_of, truncate};
use timix_actions::{Performer, ThisInstance};
use timix_engine::access::auth::Actor;
use timix_engine::automation::connections::Vault;
use timix_engine::automation::connections::{self, Resolved};
use timix_engine::automation::connectors::{
    INDEX_ID, Pagination, PollSource, Registry, Since, TriggerHow, dig,
};
use timix_engine::automation::flows::{self, LiveFlow};
use timix_engine::automation::manifest::Manifests;
use timix_engine::automation::manifest::TriggerManifest;
use timix_engine::automation::polls::{self, Item, PollState, Polled};
use timix_engine::error::Result;
use timix_engine::store::clock::{Millis, format_ms, now_ms};
use timix_engine::store::db::Db;
use timix_engine::store::jobs::Queues;

use crate::executor::{FlowExecutor, RunLane, backoff, dispatch_runs};

/// Pages one poll reads at most; the rest waits for the next fire time.
const PAGES_PER_POLL: usize = 10;
const PAGE_SIZE: &str = "100";
/// The first wait after a failed poll; each next failure doubles it.
const FAILURE_BACKOFF: Duration = Duration::from_secs(5);

/// Polls the due poll flows.
pub struct Poller {
    pub executor: Arc<FlowExecutor>,
    pub lane: Option<RunLane>,
    pub queues: Option<Queues>,
    /// How long one poll may hold a flow before another process may take it.
    pub lease: Duration,
}

/// Why a poll failed, and when the source asked to be called again.
struct PollError {
    message: String,
    retry_after: Option<Duration>,
}

impl From<timix_engine::Error> for PollError {
    fn from(error: timix_engine::Error) -> Self {
        PollError {
            message: error.to_string(),
            retry_after: None,
        }
    }
}

fn poll_error(message: impl Into<String>) -> PollError {
    PollError {
        message: message.into(),
        retry_after: None,
    }
}

/// Polls due flows, at most `concurrency` at a time; when none is due, looks again after
/// `every`.
pub async fn run(poller: Arc<Poller>, every: Duration, concurrency: usize) {
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let lease_ms = poller.lease.as_millis() as Millis;
    let db = poller.executor.db.clone();
    loop {
        let free = slots.available_permits();
        if free == 0 {
            // Wait for one poll to end.
            drop(slots.acquire().await);
            continue;
        }
        let batch = match polls::any_due(&db).await {
            Ok(true) => polls::lease_due(&db, free as i64, lease_ms).await,
            Ok(false) => Ok(Vec::new()),
            Err(error) => Err(error),
        };
        let batch = match batch {
            Ok(batch) if !batch.is_empty() => batch,
            Ok(_) => {
                tokio::time::sleep(every).await;
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "Could not look for due polls.");
                tokio::time::sleep(every).await;
                continue;
            }
        };
        for state in batch {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let poller = poller.clone();
            tokio::spawn(async move {
                let flow_id = state.flow_id.clone();
                if let Err(error) = poller.poll(state).await {
                    tracing::warn!(flow = %flow_id, %error, "A poll could not be saved.");
                }
                drop(permit);
            });
        }
    }
}

impl Poller {
    /// Polls one flow whose lease this poller holds.
    pub async fn poll(&self, state: PollState) -> Result<()> {
        let db = &self.executor.db;
        let Some(flow) = flows::live(db, &state.flow_id).await? else {
            return Ok(());
        };
        let next_fire = flow.trigger["schedule"]
            .as_str()
            .and_then(|s| flows::parse_schedule(s).ok())
            .and_then(|s| s.upcoming(Utc).next())
            .map_or(now_ms() + 60_000, |t| t.timestamp_millis());
        match self.reader(PAGES_PER_POLL).read(&flow, &state).await {
            Ok(mut polled) => {
                polled.next_poll_at = next_fire;
                let started =
                    polls::save(db, &self.executor.admission, &flow, &state, &polled).await?;
                if flow.last_error.is_some() {
                    flows::note_error(db, &flow.id, None).await?;
                }
                dispatch_runs(db, self.lane.as_ref(), self.queues.as_ref(), started).await;
            }
            Err(error) => {
                let wait = backoff(FAILURE_BACKOFF, state.failures + 1, error.retry_after);
                let at = next_fire.max(now_ms() + wait.as_millis() as Millis);
                let message = format!("poll failed: {}", error.message);
                // The flow shows the failure by the time the poll's state does.
                flows::note_error(db, &flow.id, Some(&message)).await?;
                polls::failed(db, &state, &message, at).await?;
            }
        }
        Ok(())
    }

    fn reader(&self, pages: usize) -> SourceReader<'_> {
        let executor = &*self.executor;
        SourceReader {
            db: &executor.db,
            vault: &executor.vault,
            manifests: &executor.manifests,
            connectors: &executor.connectors,
            performer: &executor.performer,
            this_instance: &*executor.this_instance,
            pages,
        }
    }
}

/// Reads a poll flow's source through its connection, as the flow's owner.
pub struct SourceReader<'a> {
    pub db: &'a Db,
    pub vault: &'a Vault,
    pub manifests: &'a Manifests,
    pub connectors: &'a Registry,
    pub performer: &'a Performer,
    pub this_instance: &'a dyn ThisInstance,
    /// Pages one read takes at most.
    pub pages: usize,
}

/// Records a sample fetch keeps at most (the newest of the first page).
const SAMPLES_FETCHED: usize = 3;

impl SourceReader<'_> {
    /// Reads the source of a poll flow once, without remembering anything, for samples: the
    /// newest records (at most three) of this API's list, or of the first page of another.
    pub async fn sample(&self, flow: &LiveFlow) -> std::result::Result<Vec<Value>, String> {
        // This API's lists come newest first without a cursor: ask for the newest directly.
        if let Value::String(key) = &flow.trigger["source"]
            && !key.contains('.')
        {
            return self.newest_of_api(flow, key).await.map_err(|e| e.message);
        }
        let state = PollState {
            flow_id: flow.id.clone(),
            cursor: None,
            failures: 0,
            token: String::new(),
            basis: String::new(),
            basis_at: 0,
        };
        let polled = self.read(flow, &state).await.map_err(|e| e.message)?;
        let records: Vec<Value> = polled.items.into_iter().map(|i| i.record).collect();
        let skip = records.len().saturating_sub(SAMPLES_FETCHED);
        Ok(records.into_iter().skip(skip).collect())
    }

    /// The newest records of a trigger manifest's list, oldest of them first.
    async fn newest_of_api(
        &self,
        flow: &LiveFlow,
        key: &str,
    ) -> std::result::Result<Vec<Value>, PollError> {
        let manifest = self
            .manifests
            .triggers
            .get(key)
            .ok_or_else(|| poll_error(format!("{key} is no longer a trigger")))?;
        let connection_id = flow.trigger["connectionId"].as_str().unwrap_or_default();
        let connection = connections::resolve(self.db, self.vault, &flow.org_id, connection_id)
            .await?
            .ok_or_else(|| poll_error(format!("the connection {connection_id} was deleted")))?;
        let actor = crate::executor::acting_for(self.db, flow).await?;
        let query = [("pageSize".to_owned(), SAMPLES_FETCHED.to_string())];
        let reply = self
            .get(&actor, &connection, &manifest.list, &query)
            .await?;
        let mut records: Vec<Value> = reply.body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["isDeleted"] != json!(true))
            .cloned()
            .collect();
        records.reverse();
        Ok(records)
    }

    async fn read(
        &self,
        flow: &LiveFlow,
        state: &PollState,
    ) -> std::result::Result<Polled, PollError> {
        let connection_id = flow.trigger["connectionId"].as_str().unwrap_or_default();
        let connection = connections::resolve(self.db, self.vault, &flow.org_id, connection_id)
            .await?
            .ok_or_else(|| poll_error(format!("the connection {connection_id} was deleted")))?;
        let actor = crate::executor::acting_for(self.db, flow).await?;
        match &flow.trigger["source"] {
            Value::String(key) if key.contains('.') => {
                let source = self.connector_source(flow, key).await?;
                let listing = Listing {
                    source: &source,
                    input: &flow.trigger["input"],
                    templated: true,
                };
                self.read_http(&actor, &connection, listing, state).await
            }
            Value::String(key) => {
                let manifest = self
                    .manifests
                    .triggers
                    .get(key)
                    .ok_or_else(|| poll_error(format!("{key} is no longer a trigger")))?;
                self.read_api(&actor, &connection, manifest, state).await
            }
            source => {
                let source = http_source(source);
                let listing = Listing {
                    source: &source,
                    input: &Value::Null,
                    templated: false,
                };
                self.read_http(&actor, &connection, listing, state).await
            }
        }
    }

    /// The source of a connector's poll trigger, in the version the flow was saved with.
    async fn connector_source(
        &self,
        flow: &LiveFlow,
        key: &str,
    ) -> std::result::Result<PollSource, PollError> {
        let version = flow.trigger["connector"].as_str().unwrap_or_default();
        let loaded = self
            .connectors
            .version(self.db, &flow.org_id, version)
            .await?
            .ok_or_else(|| poll_error(format!("the connector version of {key} is gone")))?;
        let name = key.split_once('.').map_or(key, |(_, n)| n);
        match loaded.trigger(name).map(|t| &t.how) {
            Some(TriggerHow::Poll { source }) => Ok(source.clone()),
            _ => Err(poll_error(format!("{key} is no longer a poll trigger"))),
        }
    }

    async fn get(
        &self,
        actor: &Actor,
        connection: &Resolved,
        path: &str,
        query: &[(String, String)],
    ) -> std::result::Result<timix_actions::Reply, PollError> {
        let call = Call {
            method: "GET".into(),
            target: path.to_owned(),
            query: query.to_vec(),
            ..Call::default()
        };
        self.request(actor, connection, &call).await
    }

    /// A request through the connection; an answer that is not 2xx (or that the connector
    /// says is a failure) is the poll's error.
    async fn request(
        &self,
        actor: &Actor,
        connection: &Resolved,
        call: &Call,
    ) -> std::result::Result<timix_actions::Reply, PollError> {
        let path = call.target.as_str();
        let reply = self
            .performer
            .call(
                timix_actions::Caller {
                    this: self.this_instance,
                    actor,
                },
                connection,
                call,
            )
            .await
            .map_err(|outcome| match outcome {
                ActionResult::Retry { error, after } => PollError {
                    message: error["message"]
                        .as_str()
                        .unwrap_or("the source failed")
                        .to_owned(),
                    retry_after: after,
                },
                ActionResult::Fail(error) | ActionResult::Done(error) => {
                    poll_error(error["message"].as_str().unwrap_or("the source failed"))
                }
            })?;
        let Some(error) = timix_actions::refusal(connection, &reply) else {
            return Ok(reply);
        };
        let detail = truncate(&text_of(&error["message"]), 300);
        Err(PollError {
            message: format!("{} {path} answered {}: {detail}", call.method, reply.status),
            retry_after: reply.retry_after,
        })
    }

    /// This API's list, changes since the cursor (`updatedSince`, oldest first), page by page;
    /// the next cursor is the last page's sync watermark.
    async fn read_api(
        &self,
        actor: &Actor,
        connection: &Resolved,
        manifest: &TriggerManifest,
        state: &PollState,
    ) -> std::result::Result<Polled, PollError> {
        // Records changed from the moment this trigger began (enabled, or given a new source).
        let enabled_at = state.basis_at;
        let mut since = state
            .cursor
            .as_ref()
            .and_then(|c| c["updatedSince"].as_str())
            .map_or_else(|| format_ms(enabled_at), str::to_owned);
        let mut page_cursor = String::new();
        let mut items = Vec::new();
        for _ in 0..self.pages {
            let query = vec![
                ("updatedSince".to_owned(), since.clone()),
                ("pageSize".to_owned(), PAGE_SIZE.to_owned()),
                ("cursor".to_owned(), page_cursor.clone()),
            ];
            let reply = self.get(actor, connection, &manifest.list, &query).await?;
            for record in reply.body["items"].as_array().into_iter().flatten() {
                if let Some(item) = api_item(manifest, record, enabled_at) {
                    items.push(item);
                }
            }
            if let Some(mark) = reply.header("x-sync-watermark") {
                since = mark.to_owned();
            }
            match (
                reply.body["nextCursor"].as_str(),
                reply.body["hasMore"].as_bool(),
            ) {
                (Some(next), Some(true)) => page_cursor = next.to_owned(),
                _ => break,
            }
        }
        Ok(Polled {
            items,
            baseline: false,
            cursor: json!({"updatedSince": since}),
            next_poll_at: 0,
        })
    }

    /// Any JSON API: its request (the cursor's `since` as a parameter or to templates), page
    /// by page in its pagination style; each item by its id (and version).
    async fn read_http(
        &self,
        actor: &Actor,
        connection: &Resolved,
        listing: Listing<'_>,
        state: &PollState,
    ) -> std::result::Result<Polled, PollError> {
        let source = listing.source;
        let pagination = source.pagination.as_ref();
        // What a source holds at the first poll was there before: it is marked seen, not run.
        // (The first poll follows the enabling at once.)
        let baseline = state.cursor.is_none();
        // The cursor sent is the same on every page of a poll (page tokens often belong to
        // their query); it moves once all pages are read.
        let since: Option<Value> = state
            .cursor
            .as_ref()
            .map(|c| c["since"].clone())
            .filter(|v| !v.is_null());
        let mut highest = since.clone();
        let mut page = paging::first(pagination);
        let mut items = Vec::new();
        let mut position = 0usize;
        for _ in 0..self.pages {
            let call = listing.call(since.as_ref(), &page).map_err(poll_error)?;
            let reply = self.request(actor, connection, &call).await?;
            // Some APIs leave an empty list out (Google Sheets' `values`).
            let found = dig(&reply.body, &source.items);
            let list = match found {
                Value::Null => &Vec::new(),
                other => other.as_array().ok_or_else(|| {
                    poll_error(format!("the answer has no list at {:?}", source.items))
                })?,
            };
            for record in list {
                position += 1;
                let id = if source.id == INDEX_ID {
                    json!(position)
                } else {
                    dig(record, &source.id).clone()
                };
                if id.is_null() {
                    continue;
                }
                let mut key = text_of(&id);
                if let Some(field) = &source.version {
                    key = format!("{key}@{}", text_of(dig(record, field)));
                }
                if let Some(spec) = &source.since {
                    let value = dig(record, &spec.field);
                    if !value.is_null() && highest.as_ref().is_none_or(|h| later(value, h)) {
                        highest = Some(value.clone());
                    }
                }
                items.push(Item {
                    key,
                    record: record.clone(),
                });
            }
            match paging::next(pagination, &page, &reply, list.len()) {
                Some(next) => page = next,
                None => break,
            }
        }
        Ok(Polled {
            items,
            baseline,
            cursor: json!({"since": highest}),
            next_poll_at: 0,
        })
    }
}

/// A list to read: its source, the trigger's input, and whether its query and body are
/// templates (a connector's) or fixed texts (a flow's own HTTP source).
#[derive(Clone, Copy)]
struct Listing<'a> {
    source: &'a PollSource,
    input: &'a Value,
    templated: bool,
}

impl Listing<'_> {
    /// The request for one page.
    fn call(&self, since: Option<&Value>, page: &Page) -> std::result::Result<Call, String> {
        let source = self.source;
        let data = json!({"input": self.input, "since": since, "next": page.as_template_value()});
        let render = |text: &str| -> std::result::Result<String, String> {
            if !self.templated {
                return Ok(text.to_owned());
            }
            render_tree(&Value::String(text.to_owned()), &data, "source").map(|v| text_of(&v))
        };
        let target = if self.templated {
            render_tree(
                &Value::String(source.path.clone()),
                &path_data(&data),
                "source.path",
            )
            .map(|v| text_of(&v))?
        } else {
            source.path.clone()
        };
        let mut call = Call {
            method: source.method.clone(),
            target,
            ..Call::default()
        };
        for (name, text) in &source.query {
            let value = render(text)?;
            if !value.is_empty() && value != "null" {
                call.query.push((name.clone(), value));
            }
        }
        for (name, text) in &source.headers {
            let value = render(text)?;
            if !value.is_empty() && value != "null" {
                call.headers.push((name.clone(), value));
            }
        }
        if let Some(body) = &source.body {
            call.body = Some(if self.templated {
                render_tree(body, &data, "source.body")?
            } else {
                body.clone()
            });
        }
        if let (Some(param), Some(value)) =
            (source.since.as_ref().and_then(|s| s.param.as_ref()), since)
        {
            call.query.push((param.clone(), text_of(value)));
        }
        paging::apply(source.pagination.as_ref(), page, &mut call);
        Ok(call)
    }
}

/// A flow's own HTTP source (`{url, query, items, id, version, since: {param, field}, next:
/// {param, field}}`, as checked when the flow was saved) as a source.
fn http_source(source: &Value) -> PollSource {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let pair = |v: &Value| Some((text(&v["param"])?, text(&v["field"])?));
    PollSource {
        method: "GET".into(),
        path: text(&source["url"]).unwrap_or_default(),
        query: source["query"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect(),
        headers: Default::default(),
        body: None,
        items: text(&source["items"]).unwrap_or_else(|| "items".into()),
        id: text(&source["id"]).unwrap_or_else(|| "id".into()),
        version: text(&source["version"]),
        since: pair(&source["since"]).map(|(param, field)| Since {
            param: Some(param),
            field,
        }),
        pagination: pair(&source["next"]).map(|(param, field)| Pagination::Cursor {
            param: Some(param),
            field,
            more: None,
        }),
    }
}

/// The item of a record of this API's list for a trigger: new records made since the trigger
/// began (by id), changes of records (by id and version), or, for a filtered list
/// (`/invoices?status=issued`), records that entered the state since (by id, cut by
/// `updatedAt`: an invoice made last month and issued today fires).
fn api_item(manifest: &TriggerManifest, record: &Value, enabled_at: Millis) -> Option<Item> {
    if record["isDeleted"] == json!(true) {
        return None;
    }
    let id = record["id"].as_str()?;
    let instant = |field: &str| {
        record[field]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_millis())
    };
    let key = if manifest.updated {
        let updated = record["updatedAt"].as_str()?;
        // A record never changed since its creation is new, not updated.
        if instant("updatedAt")? <= instant("createdAt")? || instant("updatedAt")? < enabled_at {
            return None;
        }
        format!("{id}@{updated}")
    } else if manifest.list.contains('?') {
        if instant("updatedAt")? < enabled_at {
            return None;
        }
        id.to_owned()
    } else {
        if instant("createdAt")? < enabled_at {
            return None;
        }
        id.to_owned()
    };
    Some(Item {
        key,
        record: record.clone(),
    })
}

/// Whether a cursor value comes after another: numbers (or numeric texts) by value, RFC 3339
/// instants by time, anything else as text.
fn later(a: &Value, b: &Value) -> bool {
    let number = |v: &Value| {
        v.as_f64()
            .or_else(|| v.as_str()?.trim().parse::<f64>().ok())
    };
    let instant = |v: &Value| DateTime::parse_from_rfc3339(v.as_str()?).ok();
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        return x > y;
    }
    if let (Some(x), Some(y)) = (instant(a), instant(b)) {
        return x > y;
    }
    text_of(a) > text_of(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_paths_and_cursor_order() {
        let body = json!({"data": {"items": [{"id": 7}]}, "n": null});
        assert_eq!(dig(&body, "data.items.0.id"), &json!(7));
        assert_eq!(dig(&body, ""), &body);
        assert!(dig(&body, "data.nothing.here").is_null());
        assert!(later(&json!(10), &json!(9)));
        assert!(later(&json!("10"), &json!("9")), "numeric texts by value");
        assert!(later(
            &json!("2026-01-01T00:00:00.5Z"),
            &json!("2026-01-01T00:00:00Z")
        ));
        assert!(!later(
            &json!("2026-01-01T00:00:00Z"),
            &json!("2026-02-01T00:00:00Z")
        ));
    }

    #[test]
    fn new_and_updated_records_from_this_api() {
        let manifests = timix_engine::automation::manifest::Manifests::built_in().unwrap();
        let enabled = DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .timestamp_millis();
        let record = |created: &str, updated: &str| json!({"id": "cus_1", "createdAt": created, "updatedAt": updated});
        let new = &manifests.triggers["new_customer"];
        let updated = &manifests.triggers["updated_customer"];
        let before = record("2026-11-22T09:59:59.000Z", "2026-11-22T10:05:00.000Z");
        let after = record("2026-11-22T10:01:00.000Z", "2026-11-22T10:01:00.000Z");
        assert!(
            api_item(new, &before, enabled).is_none(),
            "made before the flow was enabled"
        );
        assert_eq!(api_item(new, &after, enabled).unwrap().key, "cus_1");
        assert!(
            api_item(updated, &after, enabled).is_none(),
            "new, not changed"
        );
        assert_eq!(
            api_item(updated, &before, enabled).unwrap().key,
            "cus_1@2026-11-22T10:05:00.000Z"
        );
        assert!(api_item(new, &json!({"id": "cus_1", "isDeleted": true}), enabled).is_none());
        let issued = &manifests.triggers["invoice_issued"];
        let invoice = json!({"id": "inv_1", "createdAt": "2026-11-01T10:00:00.000Z", "updatedAt": "2026-11-22T10:30:00.000Z"});
        assert_eq!(
            api_item(issued, &invoice, enabled).unwrap().key,
            "inv_1",
            "made before, issued after: fires"
        );
    }
}
