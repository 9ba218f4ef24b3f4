//! A stand-in for Slack's Web API, for the `slack` connector of the catalogue. It answers the
//! methods the connector calls (auth.test, conversations.list, conversations.history,
//! chat.postMessage, chat.update) in the shapes of docs.slack.dev/reference/methods/<method>
//! and the example bodies of slackapi/slack-api-specs: every failure, a missing or unknown token
//! included (`not_authed`, `invalid_auth`), is HTTP 200 with `{ok: false, error}`
//! (docs.slack.dev/apis/web-api); lists page through `response_metadata.next_cursor`, empty on
//! the last page (docs.slack.dev/apis/web-api/pagination); a rate limit is a 429 with
//! `Retry-After` (docs.slack.dev/apis/web-api/rate-limits). Its OAuth v2 pages
//! (docs.slack.dev/authentication/installing-with-oauth) are the shared provider's, at Slack's
//! paths. As Slack allows ("fewer than the requested number of items may be returned"), a page
//! holds at most 3 channels or 2 messages, so that a few of them span pages.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};

use super::{
    Call, Calls, Incoming, OAuth, connect, eventually, finished_runs, run_action, serve, server,
};
use crate::harness::Client;

const CHANNEL_PAGE: usize = 3;
const HISTORY_PAGE: usize = 2;
const TEAM: &str = "T0TIMIX01";
const BOT_USER: &str = "U0TIMIXBOT";
const BOT_ID: &str = "B0TIMIXBOT";

const GENERAL: &str = "C0100000001";
const HISTORY: &str = "/api/conversations.history";

/// The workspace: channels, their messages, and what was asked of it.
#[derive(Clone)]
struct Slack {
    oauth: OAuth,
    calls: Calls,
    state: Arc<Workspace>,
}

#[derive(Default)]
struct Workspace {
    channels: Mutex<Vec<Value>>,
    /// Messages by channel id, oldest first.
    messages: Mutex<HashMap<String, Vec<Value>>>,
    clock: AtomicU64,
    /// How many chat.postMessage calls to answer with a 429 before serving them.
    rate_limited: AtomicUsize,
    /// When each chat.postMessage call arrived.
    posted_at: Mutex<Vec<Instant>>,
}

impl Slack {
    /// A workspace with these channels (id, name, archived), served on a local port.
    async fn start(channels: &[(&str, &str, bool)]) -> (Slack, String) {
        let slack = Slack {
            oauth: OAuth::new(3600),
            calls: Calls::default(),
            state: Arc::default(),
        };
        for (n, (id, name, archived)) in channels.iter().enumerate() {
            slack
                .state
                .channels
                .lock()
                .unwrap()
                .push(channel(id, name, *archived, n as u64));
            slack
                .state
                .messages
                .lock()
                .unwrap()
                .insert((*id).to_owned(), Vec::new());
        }
        let api = Router::new()
            .route("/api/auth.test", get(auth_test).post(auth_test))
            .route("/api/conversations.list", get(conversations_list))
            .route("/api/conversations.history", get(conversations_history))
            .route("/api/chat.postMessage", post(post_message))
            .route("/api/chat.update", post(update_message))
            .with_state(slack.clone());
        let oauth = slack
            .oauth
            .routes("/oauth/v2/authorize", "/api/oauth.v2.access")
            .layer(axum::middleware::from_fn_with_state(
                slack.calls.clone(),
                record_oauth,
            ));
        let url = serve(api.merge(oauth)).await;
        (slack, url)
    }

    /// Someone posts in a channel; the message's `ts`.
    fn say(&self, channel: &str, user: &str, text: &str) -> String {
        let ts = self.next_ts();
        self.state
            .messages
            .lock()
            .unwrap()
            .get_mut(channel)
            .expect("a channel of the workspace")
            .push(json!({"type": "message", "user": user, "text": text, "ts": ts}));
        ts
    }

    fn messages(&self, channel: &str) -> Vec<Value> {
        self.state.messages.lock().unwrap()[channel].clone()
    }

    /// The next `n` chat.postMessage calls are answered with a 429 and `Retry-After: 1`.
    fn rate_limit_posts(&self, n: usize) {
        self.state.rate_limited.store(n, Ordering::SeqCst);
    }

    /// Message timestamps as Slack writes them: seconds, a dot, six digits; always increasing.
    fn next_ts(&self) -> String {
        let n = self.state.clock.fetch_add(1, Ordering::SeqCst) + 1;
        format!("{}.{:06}", 1_700_000_000 + n, n * 100)
    }

    /// The id of a channel named by id, by name or by #name.
    fn find_channel(&self, wanted: &str) -> Option<String> {
        let wanted = wanted.trim_start_matches('#');
        self.state
            .channels
            .lock()
            .unwrap()
            .iter()
            .find(|c| c["id"] == wanted || c["name"] == wanted)
            .map(|c| c["id"].as_str().unwrap().to_owned())
    }

    fn record(&self, incoming: &Incoming, body: Value) {
        self.calls.push(Call {
            method: incoming.method.clone(),
            path: incoming.path.clone(),
            query: incoming.query.clone(),
            headers: incoming.headers.clone(),
            body,
        });
    }

    /// Slack answers a missing or unknown token like any other failure (HTTP 200, `ok: false`):
    /// the error code.
    fn check_token(&self, headers: &HeaderMap) -> Result<(), &'static str> {
        if !headers.contains_key("authorization") {
            return Err("not_authed");
        }
        if !self.oauth.valid(headers) {
            return Err("invalid_auth");
        }
        Ok(())
    }
}

impl Incoming {
    fn flag(&self, name: &str) -> bool {
        matches!(self.query.get(name).map(String::as_str), Some("true" | "1"))
    }

    /// The `limit` argument, or Slack's default; `invalid_limit` for what is not one.
    fn limit(&self, default: usize) -> Result<usize, &'static str> {
        match self.query.get("limit") {
            None => Ok(default),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => Ok(n),
                _ => Err("invalid_limit"),
            },
        }
    }

    /// The JSON arguments of a POST (`Content-Type: application/json`, what the connector
    /// sends). Slack also reads form-encoded arguments; this stand-in does not, and answers
    /// them as Slack answers form data it cannot read.
    fn json_args(&self) -> Result<Value, &'static str> {
        let content_type = header(&self.headers, "content-type");
        if !content_type.starts_with("application/json") {
            return Err("invalid_form_data");
        }
        serde_json::from_slice(&self.body).map_err(|_| "invalid_json")
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn ok(mut body: Value) -> Response {
    body["ok"] = json!(true);
    Json(body).into_response()
}

fn failure(error: &str) -> Response {
    Json(json!({"ok": false, "error": error})).into_response()
}

/// A channel as conversations.list describes it.
fn channel(id: &str, name: &str, archived: bool, n: u64) -> Value {
    json!({
        "id": id, "name": name, "name_normalized": name, "created": 1_449_252_889 + n,
        "creator": "U012A3CDE", "is_channel": true, "is_group": false, "is_im": false,
        "is_mpim": false, "is_private": false, "is_archived": archived,
        "is_general": name == "general", "unlinked": 0, "is_shared": false,
        "is_ext_shared": false, "is_org_shared": false, "is_pending_ext_shared": false,
        "pending_shared": [], "is_member": true, "num_members": 4, "previous_names": [],
        "topic": {"value": "", "creator": "", "last_set": 0},
        "purpose": {"value": "", "creator": "", "last_set": 0}
    })
}

/// Slack's cursors are opaque base64 (`dGVhbTpDMDYxRkE1UEI=` is `team:C061FA5PB`).
fn cursor(prefix: &str, at: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{prefix}{at}"))
}

fn uncursor(prefix: &str, cursor: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(cursor)
        .ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix(prefix)
        .map(str::to_owned)
}

/// A `ts` as a number that orders: (seconds, microseconds).
fn ts_key(ts: &str) -> (u64, u64) {
    let (seconds, micros) = ts.split_once('.').unwrap_or((ts, "0"));
    (seconds.parse().unwrap_or(0), micros.parse().unwrap_or(0))
}

async fn record_oauth(
    State(calls): State<Calls>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    calls.push(Call {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        query: Query::<HashMap<String, String>>::try_from_uri(request.uri())
            .map(|q| q.0)
            .unwrap_or_default(),
        headers: request.headers().clone(),
        body: Value::Null,
    });
    next.run(request).await
}

async fn auth_test(State(slack): State<Slack>, incoming: Incoming) -> Response {
    slack.record(&incoming, Value::Null);
    if let Err(error) = slack.check_token(&incoming.headers) {
        return failure(error);
    }
    ok(json!({
        "url": "https://timix-test.slack.com/", "team": "Timix Test", "user": "timix",
        "team_id": TEAM, "user_id": BOT_USER, "bot_id": BOT_ID, "is_enterprise_install": false
    }))
}

async fn conversations_list(State(slack): State<Slack>, incoming: Incoming) -> Response {
    slack.record(&incoming, Value::Null);
    if let Err(error) = slack.check_token(&incoming.headers) {
        return failure(error);
    }
    let limit = match incoming.limit(100) {
        Ok(limit) => limit,
        Err(error) => return failure(error),
    };
    // Every channel here is public; `types` defaults to public_channel.
    let public = incoming
        .query
        .get("types")
        .is_none_or(|types| types.split(',').any(|t| t == "public_channel"));
    let exclude_archived = incoming.flag("exclude_archived");
    let channels: Vec<Value> = slack
        .state
        .channels
        .lock()
        .unwrap()
        .iter()
        .filter(|c| public && !(exclude_archived && c["is_archived"] == true))
        .cloned()
        .collect();
    let start = match incoming.query.get("cursor").filter(|c| !c.is_empty()) {
        None => 0,
        Some(at) => match uncursor("team:", at)
            .and_then(|id| channels.iter().position(|c| c["id"] == id.as_str()))
        {
            Some(start) => start,
            None => return failure("invalid_cursor"),
        },
    };
    let size = limit.min(CHANNEL_PAGE);
    let page: Vec<Value> = channels.iter().skip(start).take(size).cloned().collect();
    let next = channels
        .get(start + size)
        .map(|c| cursor("team:", c["id"].as_str().unwrap()))
        .unwrap_or_default();
    ok(json!({"channels": page, "response_metadata": {"next_cursor": next}}))
}

async fn conversations_history(State(slack): State<Slack>, incoming: Incoming) -> Response {
    slack.record(&incoming, Value::Null);
    if let Err(error) = slack.check_token(&incoming.headers) {
        return failure(error);
    }
    let Some(all) = incoming
        .query
        .get("channel")
        .and_then(|id| slack.state.messages.lock().unwrap().get(id).cloned())
    else {
        return failure("channel_not_found");
    };
    let limit = match incoming.limit(100) {
        Ok(limit) => limit,
        Err(error) => return failure(error),
    };
    // `oldest` and `latest` bound the range, themselves left out unless `inclusive`.
    let inclusive = incoming.flag("inclusive");
    let oldest = ts_key(incoming.query.get("oldest").map_or("0", String::as_str));
    let latest = incoming.query.get("latest").map(|t| ts_key(t.as_str()));
    let mut messages: Vec<Value> = all
        .into_iter()
        .filter(|m| {
            let ts = ts_key(m["ts"].as_str().unwrap());
            let after = if inclusive { ts >= oldest } else { ts > oldest };
            let before = latest.is_none_or(|l| if inclusive { ts <= l } else { ts < l });
            after && before
        })
        .collect();
    // Newest first.
    messages.reverse();
    let start = match incoming.query.get("cursor").filter(|c| !c.is_empty()) {
        None => 0,
        Some(at) => match uncursor("next_ts:", at)
            .and_then(|ts| messages.iter().position(|m| m["ts"] == ts.as_str()))
        {
            Some(start) => start,
            None => return failure("invalid_cursor"),
        },
    };
    let size = limit.min(HISTORY_PAGE);
    let page: Vec<Value> = messages.iter().skip(start).take(size).cloned().collect();
    let next = messages
        .get(start + size)
        .map(|m| cursor("next_ts:", m["ts"].as_str().unwrap()))
        .unwrap_or_default();
    ok(json!({
        "messages": page, "has_more": !next.is_empty(), "pin_count": 0,
        "channel_actions_ts": null, "channel_actions_count": 0,
        "response_metadata": {"next_cursor": next}
    }))
}

async fn post_message(State(slack): State<Slack>, incoming: Incoming) -> Response {
    let args = incoming.json_args();
    slack.record(&incoming, args.as_ref().ok().cloned().unwrap_or_default());
    slack.state.posted_at.lock().unwrap().push(Instant::now());
    if let Err(error) = slack.check_token(&incoming.headers) {
        return failure(error);
    }
    let limited = slack
        .state
        .rate_limited
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    if limited.is_ok() {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            Json(json!({"ok": false, "error": "ratelimited"})),
        )
            .into_response();
    }
    let args = match args {
        Ok(args) => args,
        Err(error) => return failure(error),
    };
    let Some(channel) = args["channel"].as_str().and_then(|c| slack.find_channel(c)) else {
        return failure("channel_not_found");
    };
    let text = args["text"].as_str().unwrap_or_default();
    if text.is_empty() && args.get("blocks").is_none() && args.get("attachments").is_none() {
        return failure("no_text");
    }
    let ts = slack.next_ts();
    let mut message = json!({
        "type": "message", "user": BOT_USER, "bot_id": BOT_ID, "app_id": "A0TIMIXAPP",
        "team": TEAM, "text": text, "ts": ts
    });
    let thread = args["thread_ts"].as_str().filter(|t| !t.is_empty());
    if let Some(thread) = thread {
        message["thread_ts"] = json!(thread);
    }
    // A reply stays in its thread unless broadcast; conversations.history lists the channel.
    if thread.is_none() || args["reply_broadcast"] == true {
        slack
            .state
            .messages
            .lock()
            .unwrap()
            .get_mut(&channel)
            .unwrap()
            .push(message.clone());
    }
    ok(json!({"channel": channel, "ts": ts, "message": message}))
}

async fn update_message(State(slack): State<Slack>, incoming: Incoming) -> Response {
    let args = incoming.json_args();
    slack.record(&incoming, args.as_ref().ok().cloned().unwrap_or_default());
    if let Err(error) = slack.check_token(&incoming.headers) {
        return failure(error);
    }
    let args = match args {
        Ok(args) => args,
        Err(error) => return failure(error),
    };
    let Some(channel) = args["channel"].as_str().and_then(|c| slack.find_channel(c)) else {
        return failure("channel_not_found");
    };
    let Some(text) = args["text"].as_str().filter(|t| !t.is_empty()) else {
        return failure("no_text");
    };
    let edited_ts = slack.next_ts();
    let mut messages = slack.state.messages.lock().unwrap();
    let Some(message) = messages
        .get_mut(&channel)
        .unwrap()
        .iter_mut()
        .find(|m| m["ts"] == args["ts"])
    else {
        return failure("message_not_found");
    };
    if message["user"] != BOT_USER {
        return failure("cant_update_message");
    }
    message["text"] = json!(text);
    message["edited"] = json!({"user": BOT_USER, "ts": edited_ts});
    ok(json!({
        "channel": channel, "ts": message["ts"], "text": text,
        "message": {"type": "message", "text": text, "user": BOT_USER, "edited": message["edited"]}
    }))
}

#[tokio::test]
async fn the_builder_finds_a_slack_channel_by_searching_the_workspace() {
    let (slack, url) = workspace().await;
    let server = server().await;
    let (email, key, _) = crate::ui::bootstrap_with_password(&server.db, "Acme Ltd");
    let c = server.as_key(&key);
    let connection = connection(&c, &url).await;
    let mut browser = crate::ui::Browser::new(&server);
    browser.log_in(&email, crate::ui::PASSWORD).await;

    // A Slack step's channel is a picker whose search asks the connector's lookup with the
    // step's connection.
    let csrf = browser.get("/flows/new").await.csrf();
    let form = browser
        .post(
            "/flows/new",
            &[
                ("_csrf", &csrf),
                ("name", "Tell sales"),
                ("trigger", "event:customer.created"),
                ("op", "refresh"),
                ("steps[0].action", "slack.post_message"),
                ("steps[0].connectionId", &connection),
            ],
        )
        .await;
    assert_eq!(form.status, reqwest::StatusCode::OK, "{}", form.body);
    // (Handlebars writes `=` in attributes as `&#x3D;`.)
    assert!(
        form.body.contains(
            "data-lookup-url=\"/flows/lookup?connector&#x3D;slack&amp;name&#x3D;channels\" data-for=\"s0-channel\""
        ),
        "{}",
        form.body
    );
    assert!(
        form.body
            .contains("<optgroup label=\"Slack\"><option value=\"slack.post_message\" selected>")
    );
    assert!(
        form.body
            .contains("name=\"steps[0].key\" class=\"mono\" value=\"post_message\"")
    );
    assert!(form.body.contains("name=\"steps[0].pick.channel\""));

    // Typing "gen" in it: the workspace's channels whose name holds it, across its pages.
    let found = browser
        .get(&format!(
            "/flows/lookup?connector=slack&name=channels&connectionId={connection}&q=gen"
        ))
        .await;
    assert_eq!(found.status, reqwest::StatusCode::OK, "{}", found.body);
    let found: Value = serde_json::from_str(&found.body).unwrap();
    let mut labels: Vec<(&str, &str)> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["label"].as_str().unwrap(), i["value"].as_str().unwrap()))
        .collect();
    labels.sort_unstable();
    assert_eq!(
        labels,
        [
            ("design-general", "C0100000007"),
            ("gen-ai", "C0100000005"),
            ("general", GENERAL)
        ]
    );
    let lists = slack.calls.to("GET", "/api/conversations.list");
    assert!(lists.iter().all(|l| slack.oauth.valid(&l.headers)));

    // Without a connection the picker has nothing to ask: an empty list with the reason.
    let none = browser
        .get("/flows/lookup?connector=slack&name=channels&q=gen")
        .await;
    let none: Value = serde_json::from_str(&none.body).unwrap();
    assert_eq!(none["items"], json!([]));
    assert!(none["error"].is_string(), "{none}");
}

// ---------------------------------------------------------------------------------------------
// The connector, end to end through timix's API.

/// A workspace of seven public channels and an archived one.
async fn workspace() -> (Slack, String) {
    Slack::start(&[
        (GENERAL, "general", false),
        ("C0100000002", "random", false),
        ("C0100000003", "engineering", false),
        ("C0100000009", "old-general", true),
        ("C0100000004", "marketing", false),
        ("C0100000005", "gen-ai", false),
        ("C0100000006", "support", false),
        ("C0100000007", "design-general", false),
    ])
    .await
}

/// A Slack connection, authorized the way a person would: timix's authorize link, the
/// stand-in's approval, timix's callback.
async fn connection(c: &Client, url: &str) -> String {
    let created = c
        .post(
            "/connections",
            json!({
                "name": "Acme workspace",
                "connector": "slack",
                "baseUrl": format!("{url}/api"),
                "settings": {
                    "clientId": "3336676.569200954261",
                    "authorizeUrl": format!("{url}/oauth/v2/authorize"),
                    "tokenUrl": format!("{url}/api/oauth.v2.access")
                },
                "credentials": {"clientSecret": "2141029472.691202649728-secret"}
            }),
        )
        .await
        .expect(201);
    assert_eq!(created.body["connector"], "slack", "{}", created.body);
    assert_eq!(created.body["type"], "oauth2", "{}", created.body);
    let id = created.id();
    connect(c, &id).await;
    id
}

/// Runs of a flow, each as `GET /runs/{id}` shows it.
async fn runs_of(c: &Client, flow: &str, n: usize) -> Vec<Value> {
    let mut runs = Vec::new();
    for run in finished_runs(c, flow, n).await {
        runs.push(c.finished_run(run["id"].as_str().unwrap()).await);
    }
    runs
}

/// conversations.history calls that began a poll (no cursor).
fn polls(calls: &Calls) -> usize {
    calls
        .to("GET", HISTORY)
        .iter()
        .filter(|c| !c.query.contains_key("cursor"))
        .count()
}

/// Every item of a lookup, following its `nextCursor` while `hasMore`.
async fn lookup_all(c: &Client, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut next: Option<String> = None;
    for _ in 0..20 {
        let url = match &next {
            Some(at) => format!("{path}&cursor={}", percent(at)),
            None => path.to_owned(),
        };
        let page = c.get(&url).await.expect(200);
        items.extend(page.items());
        if page.body["hasMore"] != true {
            return items;
        }
        next = Some(
            page.body["nextCursor"]
                .as_str()
                .unwrap_or_else(|| panic!("hasMore without a nextCursor: {}", page.body))
                .to_owned(),
        );
    }
    panic!("the lookup {path} did not end in 20 pages");
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn slack_new_message_starts_one_run_per_new_message() {
    let (slack, url) = workspace().await;
    slack.say(GENERAL, "U061F7AUR", "Welcome to the team");
    slack.say(GENERAL, "U061F7AUR", "Standup at 10");
    slack.say(GENERAL, "U012AB3CDE", "Invoices go out on Friday");
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let connection = connection(&c, &url).await;

    // The person was sent to Slack's page with the app's client id and the connector's scopes.
    let authorize = slack.calls.to("GET", "/oauth/v2/authorize");
    assert_eq!(authorize.len(), 1);
    assert_eq!(authorize[0].query["client_id"], "3336676.569200954261");
    let mut scopes: Vec<&str> = authorize[0].query["scope"]
        .split([',', ' '])
        .filter(|s| !s.is_empty())
        .collect();
    scopes.sort_unstable();
    assert_eq!(scopes, ["channels:history", "channels:read", "chat:write"]);

    let flow = c
        .post(
            "/flows",
            json!({
                "name": "Slack messages become customers",
                "trigger": {"type": "poll", "connectionId": connection, "source": "slack.new_message",
                            "input": {"channel": GENERAL}, "schedule": "* * * * * *"},
                "steps": [{"key": "customer", "action": "create_customer",
                           "input": {"name": "{{trigger.text}}"}}]
            }),
        )
        .await
        .expect(201)
        .id();
    // The first poll reads the whole history (two pages) and takes it as seen; the next poll
    // begins once it is done.
    let calls = &slack.calls;
    eventually(
        "the first poll and the start of the second",
        || async move { json!(polls(calls)) },
        |n| n.as_u64().unwrap() >= 2,
    )
    .await;
    let history = calls.to("GET", HISTORY);
    assert_eq!(history[0].query["channel"], GENERAL);
    assert_eq!(history[0].query["limit"], "100");
    assert!(
        !history[0].query.contains_key("oldest"),
        "the first poll reads it all"
    );
    assert!(
        history[1]
            .query
            .get("cursor")
            .is_some_and(|c| !c.is_empty()),
        "the second page through next_cursor: {:?}",
        history[1].query
    );
    assert!(history.iter().all(|h| slack.oauth.valid(&h.headers)));

    let deploy = slack.say(GENERAL, "U012AB3CDE", "Deploy finished");
    let lunch = slack.say(GENERAL, "U061F7AUR", "Lunch at noon?");
    let mut fired: Vec<(String, String, String)> = runs_of(&c, &flow, 2)
        .await
        .iter()
        .map(|run| {
            assert_eq!(run["status"], "succeeded", "{run}");
            assert_eq!(run["steps"][0]["output"]["name"], run["trigger"]["text"]);
            assert_eq!(run["trigger"]["type"], "message");
            let field = |name: &str| run["trigger"][name].as_str().unwrap_or_default().to_owned();
            (field("ts"), field("text"), field("user"))
        })
        .collect();
    fired.sort();
    assert_eq!(
        fired,
        [
            (
                deploy,
                "Deploy finished".to_owned(),
                "U012AB3CDE".to_owned()
            ),
            (
                lunch.clone(),
                "Lunch at noon?".to_owned(),
                "U061F7AUR".to_owned()
            )
        ]
    );

    // Later polls ask only for what follows the newest message seen.
    let lunch = &lunch;
    eventually(
        "a poll from the newest message",
        || async move {
            json!(
                calls
                    .to("GET", HISTORY)
                    .iter()
                    .any(|h| h.query.get("oldest") == Some(lunch))
            )
        },
        |asked| asked == &json!(true),
    )
    .await;
    // Two more polls: nothing runs twice, and the three earlier messages never ran.
    let before = polls(calls) as u64;
    eventually(
        "two more polls",
        || async move { json!(polls(calls)) },
        |n| n.as_u64().unwrap() >= before + 2,
    )
    .await;
    let runs = c
        .get(&format!("/runs?flowId={flow}"))
        .await
        .expect(200)
        .items();
    assert_eq!(runs.len(), 2, "{runs:?}");
    let mut customers: Vec<String> = c
        .get("/customers?pageSize=200")
        .await
        .expect(200)
        .items()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect();
    customers.sort();
    assert_eq!(customers, ["Deploy finished", "Lunch at noon?"]);
}

#[tokio::test]
async fn slack_actions_post_and_edit_a_message_and_fail_with_slacks_error() {
    let (slack, url) = workspace().await;
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let connection = connection(&c, &url).await;

    let run = run_action(
        &c,
        "slack.post_message",
        &connection,
        json!({"channel": GENERAL, "text": "Invoice {{trigger.number}} was paid"}),
        json!({"number": "INV-0042"}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let step = &run["steps"][0];
    assert_eq!(step["attempts"], 1);
    let output = &step["output"];
    assert_eq!(output["ok"], true);
    assert_eq!(output["channel"], GENERAL);
    assert_eq!(output["message"]["text"], "Invoice INV-0042 was paid");
    assert_eq!(output["message"]["bot_id"], BOT_ID);
    let ts = output["ts"].as_str().expect("the message's ts").to_owned();
    assert_eq!(output["message"]["ts"], ts.as_str());
    // What Slack received: a JSON body with the arguments, and the connection's token.
    let posts = slack.calls.to("POST", "/api/chat.postMessage");
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].body,
        json!({"channel": GENERAL, "text": "Invoice INV-0042 was paid"})
    );
    assert!(slack.oauth.valid(&posts[0].headers), "sent with the token");
    assert!(header(&posts[0].headers, "content-type").starts_with("application/json"));
    assert_eq!(
        slack.messages(GENERAL).last().unwrap()["text"],
        "Invoice INV-0042 was paid"
    );

    let run = run_action(
        &c,
        "slack.update_message",
        &connection,
        json!({"channel": GENERAL, "ts": ts, "text": "Invoice {{trigger.number}} was paid in full"}),
        json!({"number": "INV-0042"}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let output = &run["steps"][0]["output"];
    assert_eq!(output["ts"], ts.as_str());
    assert_eq!(output["text"], "Invoice INV-0042 was paid in full");
    let updates = slack.calls.to("POST", "/api/chat.update");
    assert_eq!(updates.len(), 1);
    assert_eq!(
        updates[0].body,
        json!({"channel": GENERAL, "ts": ts, "text": "Invoice INV-0042 was paid in full"})
    );
    assert!(slack.oauth.valid(&updates[0].headers));
    let edited = slack.messages(GENERAL).last().unwrap().clone();
    assert_eq!(edited["text"], "Invoice INV-0042 was paid in full");
    assert_eq!(edited["edited"]["user"], BOT_USER);

    // A channel Slack does not know: HTTP 200 with ok false. The step fails with Slack's error
    // code, at once (a refusal is not retried).
    let run = run_action(
        &c,
        "slack.post_message",
        &connection,
        json!({"channel": "C0NOSUCHCHAN", "text": "Hello"}),
        json!({"number": "INV-0043"}),
    )
    .await;
    assert_eq!(run["status"], "failed", "{run}");
    let step = &run["steps"][0];
    assert!(
        step["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("channel_not_found"),
        "{step}"
    );
    assert_eq!(step["attempts"], 1, "{step}");
    assert_eq!(slack.calls.to("POST", "/api/chat.postMessage").len(), 2);
}

#[tokio::test]
async fn slack_a_rate_limited_message_is_sent_after_retry_after() {
    let (slack, url) = workspace().await;
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let connection = connection(&c, &url).await;

    slack.rate_limit_posts(1);
    let run = run_action(
        &c,
        "slack.post_message",
        &connection,
        json!({"channel": GENERAL, "text": "Timesheet of week {{trigger.week}} approved"}),
        json!({"week": 12}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let step = &run["steps"][0];
    assert_eq!(step["attempts"], 2, "a 429, then the message: {step}");
    assert_eq!(
        step["output"]["message"]["text"],
        "Timesheet of week 12 approved"
    );
    let posted_at = slack.state.posted_at.lock().unwrap().clone();
    assert_eq!(posted_at.len(), 2);
    let waited = posted_at[1].duration_since(posted_at[0]);
    assert!(
        waited >= Duration::from_millis(900),
        "Retry-After: 1 was waited out, not the 100 ms retry base: {waited:?}"
    );
    let posts = slack.calls.to("POST", "/api/chat.postMessage");
    assert_eq!(posts[0].body, posts[1].body, "the same message again");
    let sent: Vec<Value> = slack
        .messages(GENERAL)
        .into_iter()
        .filter(|m| m["text"] == "Timesheet of week 12 approved")
        .collect();
    assert_eq!(sent.len(), 1, "posted once");
}

#[tokio::test]
async fn slack_channel_lookup_filters_every_page_by_name() {
    let (slack, url) = workspace().await;
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let connection = connection(&c, &url).await;

    // Seven public channels, three a page: the three whose name holds "gen" are on all three
    // pages; the archived old-general is left out by Slack.
    let found = lookup_all(
        &c,
        &format!("/connectors/slack/lookups/channels?connectionId={connection}&q=gen"),
    )
    .await;
    let mut found: Vec<(String, String)> = found
        .iter()
        .map(|i| {
            (
                i["label"].as_str().unwrap_or_default().to_owned(),
                i["value"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("design-general".to_owned(), "C0100000007".to_owned()),
            ("gen-ai".to_owned(), "C0100000005".to_owned()),
            ("general".to_owned(), GENERAL.to_owned())
        ]
    );
    let lists = slack.calls.to("GET", "/api/conversations.list");
    assert!(lists.len() >= 3, "three pages read: {}", lists.len());
    // A cursor the lookup did not give (a URL, from a Link header) is refused before any call.
    c.get(&format!(
        "/connectors/slack/lookups/channels?connectionId={connection}&cursor=u:https://elsewhere.example/"
    ))
    .await
    .expect_error(400, "invalid_parameter");
    assert_eq!(
        slack.calls.to("GET", "/api/conversations.list").len(),
        lists.len()
    );
    assert_eq!(lists[0].query["types"], "public_channel");
    assert_eq!(lists[0].query["exclude_archived"], "true");
    assert!(!lists[0].query.contains_key("cursor"));
    assert!(
        lists[1..]
            .iter()
            .all(|l| l.query.get("cursor").is_some_and(|c| !c.is_empty())),
        "later pages through next_cursor"
    );
    assert!(lists.iter().all(|l| slack.oauth.valid(&l.headers)));

    // No search term: every channel but the archived one.
    let all = lookup_all(
        &c,
        &format!("/connectors/slack/lookups/channels?connectionId={connection}"),
    )
    .await;
    let mut names: Vec<&str> = all.iter().filter_map(|i| i["label"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "design-general",
            "engineering",
            "gen-ai",
            "general",
            "marketing",
            "random",
            "support"
        ]
    );
}

#[tokio::test]
async fn slack_connection_test_reports_a_token_slack_refuses() {
    let (slack, url) = workspace().await;
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let connection = connection(&c, &url).await;

    let tested = c
        .post(&format!("/connections/{connection}/test"), json!({}))
        .await
        .expect(200);
    assert_eq!(tested.body["status"], "ok", "{}", tested.body);
    let checks = slack.calls.to("GET", "/api/auth.test");
    assert_eq!(checks.len(), 1);
    assert!(slack.oauth.valid(&checks[0].headers));

    // The app is uninstalled: Slack refuses the token with HTTP 200 {ok: false, error:
    // invalid_auth}, which the connector declares a failure.
    slack.oauth.expire_all();
    let tested = c
        .post(&format!("/connections/{connection}/test"), json!({}))
        .await
        .expect(200);
    assert_eq!(tested.body["status"], "error", "{}", tested.body);
    assert!(
        tested.body["lastError"]
            .as_str()
            .unwrap_or_default()
            .contains("invalid_auth"),
        "{}",
        tested.body
    );
    assert_eq!(slack.calls.to("GET", "/api/auth.test").len(), 2);
}
