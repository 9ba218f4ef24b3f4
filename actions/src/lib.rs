//! Running an action manifest: the request it describes is built from a step's input and
//! performed, on this instance in-process (same validation, roles and events as the API) or
//! over HTTP; the output is read from the answer; a failure is told retryable or permanent by
//! the manifest.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use timix_connectors::connection as connecting;
use timix_connectors::outbound::Outbound;
use timix_connectors::request::{self as sending, Request, SendError};
use timix_engine::Db;
use timix_engine::access::auth::Actor;
use timix_engine::automation::connections::{self, ConnectionKind, Resolved, Vault};
use timix_engine::automation::connectors::dig;
use timix_engine::automation::manifest::{ActionManifest, Encoding, Mapping, Select};
use timix_engine::automation::template;

pub use timix_connectors as connectors;

pub mod lookup;
pub mod paging;

/// The largest answer an `http_request` step reads.
pub const MAX_RESPONSE_BYTES: usize = 5 * 1024 * 1024;

/// A call of this instance's API, made in-process.
#[derive(Debug, Clone)]
pub struct ApiCall {
    pub method: String,
    /// Below the API base, with its query string: `/customers?q=acme`.
    pub path: String,
    pub body: Option<Value>,
}

/// What an HTTP answer says.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// This instance, called in-process as an actor: the web layer's API client implements it, so
/// a step on this instance runs through the same router as a request over HTTP.
pub trait ThisInstance: Send + Sync {
    fn call(&self, actor: Actor, call: ApiCall)
    -> Pin<Box<dyn Future<Output = Reply> + Send + '_>>;
}

/// Who an action is performed as: the actor, and this instance to reach for steps on it.
#[derive(Clone, Copy)]
pub struct Caller<'a> {
    pub this: &'a dyn ThisInstance,
    pub actor: &'a Actor,
}

/// How an attempt to perform an action ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionResult {
    /// The output the manifest selects.
    Done(Value),
    /// Worth another attempt (network, 429, 5xx…), after `after` if the target said so.
    Retry {
        error: Value,
        after: Option<Duration>,
    },
    /// Another attempt would fail the same way (4xx, a bad template, an invalid input).
    Fail(Value),
}

fn failure(code: &str, message: impl Into<String>) -> Value {
    json!({"code": code, "message": message.into()})
}

/// Performs actions: on this instance in-process (through the [`ThisInstance`] each call is
/// handed), anything else through the guarded client with a connection's credentials.
///
/// It holds no handle on this instance: the in-process client is built from the finished
/// application state, which itself holds the performer (for connection tests and OAuth2), so
/// the caller hands the client to each call that may reach this instance.
pub struct Performer {
    outbound: Outbound,
    db: Db,
    vault: Vault,
    /// Where OAuth2 providers send users back (`…/oauth2/callback`).
    oauth_redirect: String,
    /// One lock per OAuth2 connection being refreshed.
    refreshing: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Per connection with a rate limit: when its window began, and requests in it.
    pacing: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, u64)>>,
}

/// The longest a request waits in place for its connector's rate limit.
const MAX_PACING_WAIT: Duration = Duration::from_secs(2);

/// A request through a connection, described (a poll source's page, a lookup's list).
#[derive(Debug, Clone, Default)]
pub struct Call {
    pub method: String,
    /// Below the connection's base URL, or an absolute URL on it.
    pub target: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    pub encoding: Encoding,
}

impl Call {
    /// The request a connector describes (a lookup, a subscription), its templates rendered
    /// with `data`; query values that render empty are left out.
    pub fn described(
        spec: &timix_engine::automation::connectors::HttpRequest,
        data: &Value,
    ) -> Result<Call, String> {
        let render = |text: &str| -> Result<String, String> {
            render_tree(&Value::String(text.to_owned()), data, "request").map(|v| text_of(&v))
        };
        let target = render_tree(&Value::String(spec.path.clone()), &path_data(data), "path")
            .map(|v| text_of(&v))?;
        let mut call = Call {
            method: spec.method.clone(),
            target,
            encoding: spec.encoding,
            ..Call::default()
        };
        for (name, text) in &spec.query {
            let value = render(text)?;
            if !value.is_empty() && value != "null" {
                call.query.push((name.clone(), value));
            }
        }
        for (name, text) in &spec.headers {
            let value = render(text)?;
            if !value.is_empty() && value != "null" {
                call.headers.push((name.clone(), value));
            }
        }
        if let Some(body) = &spec.body {
            call.body = Some(render_tree(body, data, "request.body")?);
        }
        Ok(call)
    }
}

/// The error a connection's connector reads in an answer: any answer that is not 2xx, and a
/// 2xx the connector says is a failure (`errors.failWhen`, as Slack's `{ok: false}`), with its
/// message from `errors.message`. None for a 2xx that is fine.
pub fn refusal(connection: &Resolved, reply: &Reply) -> Option<Value> {
    let errors = &connection.settings["errors"];
    let fails = errors["failWhen"]
        .as_object()
        .is_some_and(|w| dig(&reply.body, w["field"].as_str().unwrap_or_default()) == &w["equals"]);
    if (200..300).contains(&reply.status) && !fails {
        return None;
    }
    let message = errors["message"]
        .as_str()
        .map(|path| dig(&reply.body, path))
        .filter(|m| !m.is_null())
        .or_else(|| Some(&reply.body["error"]["message"]).filter(|m| !m.is_null()))
        .or_else(|| Some(&reply.body["message"]).filter(|m| !m.is_null()))
        .map_or_else(|| truncate(&text_of(&reply.body), 300), text_of);
    Some(json!({"code": "http_error", "message": message, "status": reply.status}))
}

impl Performer {
    pub fn new(outbound: Outbound, db: Db, vault: Vault, oauth_redirect: String) -> Self {
        Self {
            outbound,
            db,
            vault,
            oauth_redirect,
            refreshing: Default::default(),
            pacing: Default::default(),
        }
    }

    /// Holds a request to the pace its connector asks for (`rateLimit`: so many requests per so
    /// many seconds, per connection, in this process): a short wait here, a longer one as a
    /// retry later (a worker is not held for it).
    async fn pace(&self, connection: &Resolved) -> Result<(), ActionResult> {
        let limit = &connection.settings["rateLimit"];
        let (Some(requests), Some(seconds)) =
            (limit["requests"].as_u64(), limit["perSeconds"].as_u64())
        else {
            return Ok(());
        };
        let window = Duration::from_secs(seconds.max(1));
        let wait = {
            let mut pacing = self.pacing.lock().unwrap_or_else(|e| e.into_inner());
            let now = std::time::Instant::now();
            let entry = pacing.entry(connection.id.clone()).or_insert((now, 0));
            if now.duration_since(entry.0) >= window {
                *entry = (now, 0);
            }
            entry.1 += 1;
            if entry.1 <= requests {
                Duration::ZERO
            } else {
                let slot = (entry.1 - 1) / requests.max(1);
                (entry.0 + window * u32::try_from(slot).unwrap_or(u32::MAX))
                    .saturating_duration_since(now)
            }
        };
        if wait.is_zero() {
            Ok(())
        } else if wait <= MAX_PACING_WAIT {
            tokio::time::sleep(wait).await;
            Ok(())
        } else {
            Err(ActionResult::Retry {
                error: failure(
                    "rate_limited",
                    "the connector's rate limit is reached: tried again later",
                ),
                after: Some(wait),
            })
        }
    }

    pub fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    /// One attempt of `action` with an input already rendered and validated, through
    /// `connection` (none or `self`: this instance, or a URL without credentials).
    pub async fn perform(
        &self,
        caller: Caller<'_>,
        action: &ActionManifest,
        input: &Value,
        connection: Option<&Resolved>,
    ) -> ActionResult {
        let Caller { this, actor } = caller;
        let request = match build(action, input) {
            Ok(r) => r,
            Err(message) => return ActionResult::Fail(failure("template", message)),
        };
        let remote = connection.filter(|c| c.kind != ConnectionKind::This);
        let url = match (&request.target, remote) {
            (Target::Api(path), None) => {
                let call = ApiCall {
                    method: request.method,
                    path: with_query(path, &request.query),
                    body: request.body,
                };
                return read(action, this.call(actor.clone(), call).await, None);
            }
            (Target::Api(path) | Target::Url(path), Some(c)) => match connecting::url_on(c, path) {
                Ok(url) => url,
                Err(message) => return ActionResult::Fail(failure("invalid_input", message)),
            },
            (Target::Url(url), None) => url.clone(),
        };
        let sent = self
            .send(
                Request {
                    method: &request.method,
                    url: &url,
                    query: &request.query,
                    headers: &request.headers,
                    body: request.body.as_ref(),
                    encoding: action.request.encoding,
                },
                remote,
            )
            .await;
        match sent {
            Ok(reply) => read(action, reply, remote),
            Err(outcome) => outcome,
        }
    }

    /// Any request through a connection (`self`: this instance as the caller's actor), for
    /// poll sources and lookups. An answer that is not 2xx, or that the connector says is a
    /// failure, is returned as the reply: the caller reads it.
    pub async fn call(
        &self,
        caller: Caller<'_>,
        connection: &Resolved,
        call: &Call,
    ) -> Result<Reply, ActionResult> {
        let Caller { this, actor } = caller;
        if connection.kind == ConnectionKind::This {
            let call = ApiCall {
                method: call.method.clone(),
                path: with_query(&call.target, &call.query),
                body: call.body.clone(),
            };
            return Ok(this.call(actor.clone(), call).await);
        }
        let url = connecting::url_on(connection, &call.target)
            .map_err(|message| ActionResult::Fail(failure("invalid_input", message)))?;
        let request = Request {
            method: &call.method,
            url: &url,
            query: &call.query,
            headers: &call.headers,
            body: call.body.as_ref(),
            encoding: call.encoding,
        };
        self.send(request, Some(connection)).await
    }

    /// A request through a connection to another system (never `self`), made on nobody's
    /// behalf: a subscription made or ended for a flow.
    pub async fn call_out(
        &self,
        connection: &Resolved,
        call: &Call,
    ) -> Result<Reply, ActionResult> {
        if connection.kind == ConnectionKind::This {
            return Err(ActionResult::Fail(failure(
                "invalid_input",
                "this instance is not reached through a subscription",
            )));
        }
        let url = connecting::url_on(connection, &call.target)
            .map_err(|message| ActionResult::Fail(failure("invalid_input", message)))?;
        let request = Request {
            method: &call.method,
            url: &url,
            query: &call.query,
            headers: &call.headers,
            body: call.body.as_ref(),
            encoding: call.encoding,
        };
        self.send(request, Some(connection)).await
    }

    /// A GET through a connection (`self`: this instance as `actor`), for poll triggers.
    pub async fn get(
        &self,
        caller: Caller<'_>,
        connection: &Resolved,
        target: &str,
        query: &[(String, String)],
    ) -> Result<Reply, ActionResult> {
        let call = Call {
            method: "GET".into(),
            target: target.to_owned(),
            query: query.to_vec(),
            ..Call::default()
        };
        self.call(caller, connection, &call).await
    }

    /// Tests a connection: its test request (a GET of its test path unless its connector says
    /// otherwise) must answer 2xx, and not a failure by the connector's rules. Records the
    /// outcome on it.
    pub async fn test(
        &self,
        this: &dyn ThisInstance,
        actor: &Actor,
        connection: &Resolved,
    ) -> Result<(), String> {
        let method = connection.settings["testMethod"]
            .as_str()
            .unwrap_or("GET")
            .to_owned();
        let call = Call {
            method: method.clone(),
            target: connection.test_path(),
            ..Call::default()
        };
        let result = match self.call(Caller { this, actor }, connection, &call).await {
            Ok(reply) if (200..300).contains(&reply.status) => match refusal(connection, &reply) {
                Some(error) => Err(format!(
                    "{method} {} answered {}: {}",
                    connection.test_path(),
                    reply.status,
                    text_of(&error["message"])
                )),
                None => Ok(()),
            },
            Ok(reply) => Err(format!(
                "{method} {} answered {}: {}",
                connection.test_path(),
                reply.status,
                text_of(&refusal(connection, &reply).map_or(Value::Null, |e| e["message"].clone()))
            )),
            Err(ActionResult::Fail(e) | ActionResult::Retry { error: e, .. }) => Err(e["message"]
                .as_str()
                .unwrap_or("the request failed")
                .to_owned()),
            Err(ActionResult::Done(_)) => Ok(()),
        };
        let error: Option<String> = result.as_ref().err().map(|e| truncate(e, 500));
        if let Err(e) =
            connections::set_status(&self.db, &connection.id, error.as_deref(), true).await
        {
            tracing::warn!(connection = %connection.id, error = %e, "Could not record a connection test.");
        }
        result
    }

    /// New OAuth2 tokens for a connection, saved; a refresh the provider refuses marks it
    /// `error`. One refresh at a time per connection: a caller that waited takes the tokens the
    /// one before it got (a provider that rotates refresh tokens accepts each once).
    async fn refreshed(&self, connection: &Resolved) -> Result<Resolved, ActionResult> {
        let lock = {
            let mut locks = self.refreshing.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(connection.id.clone()).or_default().clone()
        };
        let _turn = lock.lock().await;
        let current =
            connections::resolve(&self.db, &self.vault, &connection.org_id, &connection.id)
                .await
                .map_err(|e| ActionResult::Retry {
                    error: failure("internal", e.to_string()),
                    after: None,
                })?
                .ok_or_else(|| {
                    ActionResult::Fail(failure(
                        "connection_not_found",
                        "the connection was deleted",
                    ))
                })?;
        if current.secret["accessToken"] != connection.secret["accessToken"]
            && !connecting::token_expiring(&current)
        {
            return Ok(current);
        }
        match connecting::refresh(&self.outbound, &current, &self.oauth_redirect).await {
            Ok(secret) => {
                connections::save_secret(&self.db, &self.vault, &current.id, &secret)
                    .await
                    .map_err(|e| ActionResult::Retry {
                        error: failure("internal", e.to_string()),
                        after: None,
                    })?;
                Ok(Resolved { secret, ..current })
            }
            Err(connecting::RefreshError::Refused(message)) => {
                let _ = connections::set_status(&self.db, &current.id, Some(&message), false).await;
                Err(ActionResult::Fail(failure("connection_error", message)))
            }
            Err(connecting::RefreshError::Unavailable(message)) => Err(ActionResult::Retry {
                error: failure("connection_unavailable", message),
                after: None,
            }),
        }
    }

    /// Sends a request with the connection's credentials. OAuth2 tokens are refreshed when they
    /// expire, and once on a 401.
    async fn send(
        &self,
        request: Request<'_>,
        connection: Option<&Resolved>,
    ) -> Result<Reply, ActionResult> {
        if let Some(c) = connection {
            self.pace(c).await?;
        }
        let mut current = connection.cloned();
        if let Some(c) = connection.filter(|c| connecting::token_expiring(c)) {
            let grant = c.kind == ConnectionKind::OAuth2ClientCredentials;
            if !grant && c.secret["refreshToken"].is_null() && c.secret["accessToken"].is_null() {
                return Err(ActionResult::Fail(failure(
                    "connection_error",
                    "the OAuth2 connection is not authorized yet: connect it first",
                )));
            }
            if grant || !c.secret["refreshToken"].is_null() {
                current = Some(self.refreshed(c).await?);
            }
        }
        let reply = self.send_once(&request, current.as_ref()).await?;
        match current {
            Some(c) if reply.status == 401 && c.kind.is_oauth() => {
                let fresh = self.refreshed(&c).await?;
                self.send_once(&request, Some(&fresh)).await
            }
            _ => Ok(reply),
        }
    }

    async fn send_once(
        &self,
        request: &Request<'_>,
        connection: Option<&Resolved>,
    ) -> Result<Reply, ActionResult> {
        let sent = sending::send(&self.outbound, *request, connection, MAX_RESPONSE_BYTES).await;
        let response = sent.map_err(|e| match e {
            SendError::Refused(reason) => ActionResult::Fail(failure("target_refused", reason)),
            SendError::Invalid(reason) => ActionResult::Fail(failure("invalid_input", reason)),
            SendError::Network(reason) => ActionResult::Retry {
                error: failure("network", reason),
                after: None,
            },
            // A step's output is stored with its run: it has a size limit.
            e @ SendError::TooLarge(_) => {
                ActionResult::Fail(failure("response_too_large", e.to_string()))
            }
        })?;
        let bytes = response.body;
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok(Reply {
            status: response.status,
            retry_after: response.retry_after,
            headers: response.headers,
            body,
        })
    }
}

/// `text` cut to `max` characters, with an ellipsis when cut.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

enum Target {
    Api(String),
    Url(String),
}

struct Built {
    method: String,
    target: Target,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Option<Value>,
}

/// A value as text: a string as it is, anything else as JSON.
pub fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The pairs of a query or headers mapping; absent and empty values are left out.
fn pairs(mapping: Option<&Mapping>, data: &Value) -> Result<Vec<(String, String)>, String> {
    let Some(object) = mapped(mapping, data)? else {
        return Ok(Vec::new());
    };
    Ok(object
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| !v.is_null() && *v != &Value::String(String::new()))
        .map(|(k, v)| (k.clone(), text_of(v)))
        .collect())
}

/// A mapping's value: part of the input as is, or the object its templates render.
fn mapped(mapping: Option<&Mapping>, data: &Value) -> Result<Option<Value>, String> {
    match mapping {
        None => Ok(None),
        Some(Mapping::Input(reference)) => Ok(match reference.strip_prefix("input.") {
            Some(field) => data["input"].get(field).cloned(),
            None => Some(data["input"].clone()),
        }),
        Some(Mapping::Templates(map)) => {
            let mut out = Map::new();
            for (key, text) in map {
                if let Some(value) =
                    template::render_optional(text, data).map_err(|e| format!("{key}: {e}"))?
                {
                    out.insert(key.clone(), value);
                }
            }
            Ok(Some(Value::Object(out)))
        }
        Some(Mapping::Tree(map)) => render_tree(&Value::Object(map.clone()), data, "").map(Some),
    }
}

/// Renders every string of a body at any depth; a field whose sole variable is absent is left
/// out (an item of a list becomes null).
pub fn render_tree(value: &Value, data: &Value, at: &str) -> Result<Value, String> {
    match value {
        Value::String(text) => Ok(template::render_optional(text, data)
            .map_err(|e| format!("{at}: {e}"))?
            .unwrap_or(Value::Null)),
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, inner) in map {
                let rendered = render_tree(inner, data, &format!("{at}.{key}"))?;
                if !(rendered.is_null() && inner.is_string()) {
                    out.insert(key.clone(), rendered);
                }
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, inner)| render_tree(inner, data, &format!("{at}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Ok(other.clone()),
    }
}

/// A text percent-encoded as one path segment (RFC 3986 unreserved characters kept).
fn encode_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The input with each text value percent-encoded as a path segment.
fn segments(input: &Value) -> Value {
    match input {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| match v {
                    Value::String(s) => (k.clone(), Value::String(encode_segment(s))),
                    other => (k.clone(), other.clone()),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// What a path template sees: `data` with every text one level down (`input.folder`,
/// `subscription.id`) or at the top (`q`) encoded as one segment, so that a value cannot reach
/// another endpoint.
pub fn path_data(data: &Value) -> Value {
    match data {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => Value::String(encode_segment(s)),
                        Value::Object(_) => segments(v),
                        other => other.clone(),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn build(action: &ActionManifest, input: &Value) -> Result<Built, String> {
    let data = json!({"input": input});
    let spec = &action.request;
    let render = |text: &str| {
        template::render(text, &data)
            .map(|v| text_of(&v))
            .map_err(|e| e.0)
    };
    let method = render(&spec.method)?.to_uppercase();
    let target = match (&spec.path, &spec.url) {
        // Values go into a path as one segment each: `a/b?c` cannot reach another endpoint.
        (Some(path), _) => Target::Api(
            template::render(path, &json!({"input": segments(input)}))
                .map(|v| text_of(&v))
                .map_err(|e| e.0)?,
        ),
        (None, Some(url)) => Target::Url(render(url)?),
        (None, None) => return Err("the manifest's request has neither path nor url".into()),
    };
    let mut body = mapped(spec.body.as_ref(), &data)?;
    if let (Some(Value::Object(object)), false) = (&mut body, spec.exclude.is_empty()) {
        for field in &spec.exclude {
            object.remove(field);
        }
    }
    Ok(Built {
        method,
        target,
        query: pairs(spec.query.as_ref(), &data)?,
        headers: pairs(spec.headers.as_ref(), &data)?,
        body,
    })
}

/// A path with more query pairs (after those it already has: `/invoices?status=issued`).
fn with_query(path: &str, query: &[(String, String)]) -> String {
    if query.is_empty() {
        return path.to_owned();
    }
    let (path, existing) = path.split_once('?').unwrap_or((path, ""));
    let mut url = url::Url::parse("http://instance").expect("a valid base");
    url.set_path(path);
    if !existing.is_empty() {
        url.set_query(Some(existing));
    }
    url.query_pairs_mut().extend_pairs(query);
    match url.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    }
}

/// Reads an answer: the selected output, or a failure the manifest calls retryable or not.
fn read(action: &ActionManifest, reply: Reply, connection: Option<&Resolved>) -> ActionResult {
    // What the connector says of the answer: a 2xx that is a failure, a message where its
    // errors keep it.
    if let Some(mut error) = connection.and_then(|c| refusal(c, &reply)) {
        if (200..300).contains(&reply.status) {
            return ActionResult::Fail(error);
        }
        if connection.is_some_and(|c| c.settings["errors"]["message"].is_string()) {
            error["status"] = json!(reply.status);
            return if action.retry.statuses.contains(&reply.status) {
                ActionResult::Retry {
                    error,
                    after: reply.retry_after,
                }
            } else {
                ActionResult::Fail(error)
            };
        }
    }
    if (200..300).contains(&reply.status) {
        let output = match action.output.select {
            Select::Item if action.request.url.is_some() => {
                json!({"status": reply.status, "body": reply.body})
            }
            Select::Item => match &action.output.field {
                Some(path) => dig(&reply.body, path).clone(),
                None => reply.body,
            },
            Select::First => dig(
                &reply.body,
                action.output.items.as_deref().unwrap_or("items"),
            )
            .get(0)
            .cloned()
            .unwrap_or(Value::Null),
            Select::Items => dig(
                &reply.body,
                action.output.items.as_deref().unwrap_or("items"),
            )
            .clone(),
        };
        return ActionResult::Done(output);
    }
    let envelope = &reply.body["error"];
    let mut error = if envelope.is_object() {
        envelope.clone()
    } else {
        json!({"code": "http_error", "message": text_of(&reply.body)})
    };
    if let Some(object) = error.as_object_mut() {
        object.insert("status".into(), json!(reply.status));
        object.remove("requestId");
    }
    if action.retry.statuses.contains(&reply.status) {
        ActionResult::Retry {
            error,
            after: reply.retry_after,
        }
    } else {
        ActionResult::Fail(error)
    }
}

#[cfg(test)]
mod tests {
    use timix_engine::automation::manifest::Manifests;

    use super::*;

    #[test]
    fn requests_are_built_from_the_input() {
        let manifests = Manifests::built_in().unwrap();
        let update = &manifests.actions["update_customer"];
        let built = build(update, &json!({"id": "cus_1", "name": "Acme"})).unwrap();
        assert_eq!(built.method, "PATCH");
        assert!(matches!(built.target, Target::Api(ref p) if p == "/customers/cus_1"));
        assert_eq!(
            built.body,
            Some(json!({"name": "Acme"})),
            "the id goes in the path only"
        );
        let find = &manifests.actions["find_customer"];
        let built = build(find, &json!({"q": "acme"})).unwrap();
        assert_eq!(built.method, "GET");
        assert_eq!(built.body, None);
        assert_eq!(
            built.query,
            vec![
                ("pageSize".to_owned(), "1".to_owned()),
                ("q".to_owned(), "acme".to_owned())
            ]
        );
        assert_eq!(
            with_query("/customers", &built.query),
            "/customers?pageSize=1&q=acme"
        );
        assert_eq!(
            with_query(
                "/invoices?status=issued",
                &[("pageSize".into(), "5".into())]
            ),
            "/invoices?status=issued&pageSize=5"
        );
        // An id in the middle of a path, and a request without a body.
        let issue = &manifests.actions["issue_invoice"];
        let built = build(issue, &json!({"id": "inv_1", "issueDate": "2026-12-01"})).unwrap();
        assert_eq!(built.method, "POST");
        assert!(matches!(built.target, Target::Api(ref p) if p == "/invoices/inv_1/issue"));
        assert_eq!(built.body, Some(json!({"issueDate": "2026-12-01"})));
        let stop = &manifests.actions["stop_timer"];
        let built = build(stop, &json!({"id": "te_1/../x"})).unwrap();
        assert!(
            matches!(built.target, Target::Api(ref p) if p == "/time-entries/te_1%2F..%2Fx/stop")
        );
        assert_eq!(built.body, None);
        let http = &manifests.actions["http_request"];
        let built = build(http, &json!({"method": "post", "url": "https://example.com/x", "body": {"a": 1}, "headers": {"X-A": "b"}})).unwrap();
        assert_eq!(built.method, "POST");
        assert!(matches!(built.target, Target::Url(ref u) if u == "https://example.com/x"));
        assert_eq!(built.body, Some(json!({"a": 1})));
        assert_eq!(built.headers, vec![("X-A".to_owned(), "b".to_owned())]);
    }

    fn read_plain(action: &ActionManifest, reply: Reply) -> ActionResult {
        read(action, reply, None)
    }

    #[test]
    fn answers_are_read_by_the_manifest() {
        let manifests = Manifests::built_in().unwrap();
        let create = &manifests.actions["create_customer"];
        let reply = |status: u16, body: Value| Reply {
            status,
            retry_after: None,
            headers: Vec::new(),
            body,
        };
        assert_eq!(
            read_plain(create, reply(201, json!({"id": "cus_1"}))),
            ActionResult::Done(json!({"id": "cus_1"}))
        );
        assert!(matches!(
            read_plain(create, reply(503, json!("busy"))),
            ActionResult::Retry { .. }
        ));
        assert!(matches!(
            read_plain(create, reply(429, json!({}))),
            ActionResult::Retry { .. }
        ));
        let refused = read_plain(
            create,
            reply(
                422,
                json!({"error": {"code": "validation_failed", "message": "no", "requestId": "r"}}),
            ),
        );
        assert_eq!(
            refused,
            ActionResult::Fail(
                json!({"code": "validation_failed", "message": "no", "status": 422})
            )
        );
        let find = &manifests.actions["find_customer"];
        assert_eq!(
            read_plain(find, reply(200, json!({"items": []}))),
            ActionResult::Done(Value::Null)
        );
    }
}
