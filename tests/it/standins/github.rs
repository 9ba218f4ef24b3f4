//! A stand-in for GitHub's REST API (version 2022-11-28), for the `github` connector of the
//! catalogue. It answers the endpoints the connector calls in the shapes of
//! docs.github.com/en/rest: users "Get the authenticated user", repos "List repositories for the
//! authenticated user", issues "List repository issues" and "Create an issue", issue comments
//! "Create an issue comment". With the conventions of "Getting started with the REST API",
//! "Authenticating to the REST API", "Using pagination" and "Rate limits for the REST API": a
//! User-Agent is required (403 otherwise), a bearer token (401 `Bad credentials` for a wrong one,
//! `Requires authentication` for none), errors are `{message, documentation_url, status}`, lists
//! page with a `Link` header of absolute URLs (issue pages under `/repositories/{id}/issues`, as
//! GitHub writes them), and a secondary rate limit answers 429 with `retry-after`. Every
//! repository here is private, so every call needs the token. Unlike GitHub, a page holds at
//! most 2 items whatever `per_page` asks, so that a few records span pages.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{Call, Calls, Incoming, eventually, finished_runs, run_action, serve, server};
use crate::harness::Client;

/// The example token of GitHub's documentation.
const TOKEN: &str = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
const PAGE: usize = 2;
const HELLO_WORLD: u64 = 1_296_269;
const ISSUES: &str = "/repos/octocat/Hello-World/issues";
const DOCS: &str = "https://docs.github.com/rest";

#[derive(Clone)]
struct GitHub {
    calls: Calls,
    state: Arc<Hub>,
}

#[derive(Default)]
struct Hub {
    /// This stand-in's own URL, for the URLs in bodies and `Link` headers.
    base: Mutex<String>,
    repos: Mutex<Vec<Repo>>,
    /// Minutes since 2026-01-05T09:00:00Z: each change moves it on.
    clock: AtomicU64,
    next_id: AtomicU64,
    /// How many POSTs to answer with a secondary rate limit before serving them.
    limited: AtomicUsize,
    /// When each POST arrived.
    posted_at: Mutex<Vec<Instant>>,
}

struct Repo {
    id: u64,
    owner: String,
    name: String,
    issues: Vec<Value>,
}

impl GitHub {
    /// GitHub with these repositories (id, owner, name), served on a local port.
    async fn start(repos: &[(u64, &str, &str)]) -> (GitHub, String) {
        let hub = GitHub {
            calls: Calls::default(),
            state: Arc::default(),
        };
        hub.state.next_id.store(1_000_001, Ordering::SeqCst);
        hub.state
            .repos
            .lock()
            .unwrap()
            .extend(repos.iter().map(|(id, owner, name)| Repo {
                id: *id,
                owner: (*owner).to_owned(),
                name: (*name).to_owned(),
                issues: Vec::new(),
            }));
        let router = Router::new()
            .route("/user", get(authenticated_user))
            .route("/user/repos", get(list_repos))
            .route(
                "/repos/{owner}/{repo}/issues",
                get(list_issues).post(create_issue),
            )
            .route("/repositories/{id}/issues", get(list_issues_by_id))
            .route(
                "/repos/{owner}/{repo}/issues/{number}/comments",
                post(create_comment),
            )
            .fallback(not_found)
            .with_state(hub.clone());
        let url = serve(router).await;
        *hub.state.base.lock().unwrap() = url.clone();
        (hub, url)
    }

    fn base(&self) -> String {
        self.state.base.lock().unwrap().clone()
    }

    /// The next moment, as GitHub writes times.
    fn tick(&self) -> String {
        let minutes = 9 * 60 + self.state.clock.fetch_add(1, Ordering::SeqCst) + 1;
        format!(
            "2026-01-{:02}T{:02}:{:02}:00Z",
            5 + minutes / 1440,
            minutes % 1440 / 60,
            minutes % 60
        )
    }

    /// Someone opens an issue (or a pull request); the issue as GitHub lists it.
    fn open(&self, repo: &str, title: &str, author: &str, pull_request: bool) -> Value {
        let mut repos = self.state.repos.lock().unwrap();
        let repo = repos.iter_mut().find(|r| r.name == repo).unwrap();
        let issue = self.issue(repo, title, author, pull_request);
        repo.issues.push(issue.clone());
        issue
    }

    /// Someone edits an issue's title; its new `updated_at`.
    fn retitle(&self, repo: &str, number: u64, title: &str) -> String {
        let now = self.tick();
        let mut repos = self.state.repos.lock().unwrap();
        let repo = repos.iter_mut().find(|r| r.name == repo).unwrap();
        let issue = repo
            .issues
            .iter_mut()
            .find(|i| i["number"] == number)
            .unwrap();
        issue["title"] = json!(title);
        issue["updated_at"] = json!(now);
        now
    }

    fn close(&self, repo: &str, number: u64) {
        let now = self.tick();
        let mut repos = self.state.repos.lock().unwrap();
        let repo = repos.iter_mut().find(|r| r.name == repo).unwrap();
        let issue = repo
            .issues
            .iter_mut()
            .find(|i| i["number"] == number)
            .unwrap();
        issue["state"] = json!("closed");
        issue["state_reason"] = json!("completed");
        issue["closed_at"] = json!(now);
        issue["updated_at"] = json!(now);
    }

    fn find_issue(&self, repo: &str, number: u64) -> Value {
        let repos = self.state.repos.lock().unwrap();
        let repo = repos.iter().find(|r| r.name == repo).unwrap();
        repo.issues
            .iter()
            .find(|i| i["number"] == number)
            .unwrap()
            .clone()
    }

    /// The next `n` POSTs are answered with a secondary rate limit: 429, `retry-after: 1`.
    fn rate_limit_posts(&self, n: usize) {
        self.state.limited.store(n, Ordering::SeqCst);
    }

    /// A new issue of `repo`, numbered after its last one (pull requests share the numbers).
    fn issue(&self, repo: &Repo, title: &str, author: &str, pull_request: bool) -> Value {
        let base = self.base();
        let id = self.state.next_id.fetch_add(1, Ordering::SeqCst);
        let number = repo.issues.len() as u64 + 1;
        let now = self.tick();
        let full = format!("{}/{}", repo.owner, repo.name);
        let api = format!("{base}/repos/{full}/issues/{number}");
        let kind = if pull_request { "pull" } else { "issues" };
        let mut issue = json!({
            "id": id, "node_id": format!("I_kwDOABII58{id}"), "url": api,
            "repository_url": format!("{base}/repos/{full}"),
            "labels_url": format!("{api}/labels{{/name}}"), "comments_url": format!("{api}/comments"),
            "events_url": format!("{api}/events"), "timeline_url": format!("{api}/timeline"),
            "html_url": format!("https://github.com/{full}/{kind}/{number}"),
            "number": number, "state": "open", "state_reason": null, "title": title, "body": null,
            "user": user(&base, author), "labels": [], "assignee": null, "assignees": [],
            "milestone": null, "locked": false, "active_lock_reason": null, "comments": 0,
            "closed_at": null, "closed_by": null, "created_at": now, "updated_at": now,
            "author_association": "OWNER", "performed_via_github_app": null
        });
        if pull_request {
            let pulls = format!("{base}/repos/{full}/pulls/{number}");
            let html = format!("https://github.com/{full}/pull/{number}");
            issue["pull_request"] = json!({
                "url": pulls, "html_url": html, "diff_url": format!("{html}.diff"),
                "patch_url": format!("{html}.patch"), "merged_at": null
            });
        }
        issue
    }

    fn repo_object(&self, repo: &Repo) -> Value {
        let base = self.base();
        let full = format!("{}/{}", repo.owner, repo.name);
        let open = repo.issues.iter().filter(|i| i["state"] == "open").count();
        json!({
            "id": repo.id, "node_id": format!("R_kgDOA{}", repo.id), "name": repo.name,
            "full_name": full, "private": true, "owner": user(&base, &repo.owner),
            "html_url": format!("https://github.com/{full}"), "description": null, "fork": false,
            "url": format!("{base}/repos/{full}"),
            "issues_url": format!("{base}/repos/{full}/issues{{/number}}"),
            "default_branch": "main", "visibility": "private", "has_issues": true,
            "open_issues_count": open, "created_at": "2020-01-26T19:01:12Z",
            "updated_at": "2026-01-02T10:00:00Z", "pushed_at": "2026-01-02T10:00:00Z",
            "permissions": {"admin": true, "maintain": true, "push": true, "triage": true, "pull": true}
        })
    }

    /// What GitHub checks before any endpoint, in its order: a User-Agent, the token; then, for
    /// a POST, the secondary rate limit. The request is recorded first, with its JSON body.
    fn gate(&self, incoming: &Incoming) -> Result<Value, Refusal> {
        let body = if incoming.body.is_empty() {
            Ok(Value::Null)
        } else {
            serde_json::from_slice::<Value>(&incoming.body)
        };
        self.calls.push(Call {
            method: incoming.method.clone(),
            path: incoming.path.clone(),
            query: incoming.query.clone(),
            headers: incoming.headers.clone(),
            body: body.as_ref().ok().cloned().unwrap_or_default(),
        });
        if header(&incoming.headers, "user-agent").is_empty() {
            return Err(Refusal::NoUserAgent);
        }
        let authorization = header(&incoming.headers, "authorization");
        match authorization
            .strip_prefix("Bearer ")
            .or_else(|| authorization.strip_prefix("token "))
        {
            None => return Err(Refusal::Status(401, "Requires authentication")),
            Some(token) if token != TOKEN => return Err(Refusal::Status(401, "Bad credentials")),
            Some(_) => {}
        }
        if incoming.method == "POST" {
            self.state.posted_at.lock().unwrap().push(Instant::now());
            let limited =
                self.state
                    .limited
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            if limited.is_ok() {
                return Err(Refusal::SecondaryRateLimit);
            }
        }
        body.map_err(|_| Refusal::Status(400, "Problems parsing JSON"))
    }

    /// A page of `items` as `per_page` and `page` ask, with GitHub's `Link` header: prev, next,
    /// last and first, each the URL of `path` with this request's query and another page.
    fn page(&self, items: Vec<Value>, query: &HashMap<String, String>, path: &str) -> Response {
        let per_page = query
            .get("per_page")
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(30)
            .clamp(1, 100)
            .min(PAGE);
        let page = query
            .get("page")
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        let last = items.len().div_ceil(per_page).max(1);
        let base = self.base();
        let link = |n: usize, rel: &str| {
            let mut query: BTreeMap<&str, &str> = query
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let n = n.to_string();
            query.insert("page", &n);
            let query: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{k}={}", percent(v)))
                .collect();
            format!("<{base}{path}?{}>; rel=\"{rel}\"", query.join("&"))
        };
        let mut links = Vec::new();
        if page > 1 {
            links.push(link(page - 1, "prev"));
        }
        if page < last {
            links.push(link(page + 1, "next"));
            links.push(link(last, "last"));
        }
        if page > 1 {
            links.push(link(1, "first"));
        }
        let body: Vec<Value> = items
            .into_iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .collect();
        let mut response = answer(StatusCode::OK, Value::Array(body));
        if !links.is_empty() {
            response.headers_mut().insert(
                "link",
                HeaderValue::from_str(&links.join(", ")).expect("a header value"),
            );
        }
        response
    }

    /// The issues of a repository as "List repository issues" filters and sorts them.
    fn issues_page(&self, repo: &Repo, query: &HashMap<String, String>) -> Response {
        let state = query.get("state").map_or("open", String::as_str);
        let field = match query.get("sort").map_or("created", String::as_str) {
            "created" => "created_at",
            "updated" => "updated_at",
            "comments" => "comments",
            _ => return validation_failed("sort"),
        };
        if !["open", "closed", "all"].contains(&state) {
            return validation_failed("state");
        }
        let mut issues: Vec<Value> = repo
            .issues
            .iter()
            .filter(|i| state == "all" || i["state"] == state)
            // `since`: updated at or after that time.
            .filter(|i| {
                query
                    .get("since")
                    .is_none_or(|since| i["updated_at"].as_str().unwrap() >= since.as_str())
            })
            .cloned()
            .collect();
        issues.sort_by(|a, b| {
            let key = |i: &Value| (i[field].as_str().map(str::to_owned), i[field].as_u64());
            key(a)
                .cmp(&key(b))
                .then(a["number"].as_u64().cmp(&b["number"].as_u64()))
        });
        if query.get("direction").map_or("desc", String::as_str) == "desc" {
            issues.reverse();
        }
        self.page(issues, query, &format!("/repositories/{}/issues", repo.id))
    }
}

/// Why GitHub refused a request before reaching its endpoint.
enum Refusal {
    NoUserAgent,
    SecondaryRateLimit,
    Status(u16, &'static str),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            // Plain text, as GitHub answers it.
            Refusal::NoUserAgent => (
                StatusCode::FORBIDDEN,
                "Request forbidden by administrative rules. Please make sure your request has a \
                 User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). \
                 Check https://developer.github.com for other possible causes.\n",
            )
                .into_response(),
            Refusal::SecondaryRateLimit => {
                let mut response = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "You have exceeded a secondary rate limit. Please wait a few minutes before \
                     you try again. If you reach out to GitHub Support for help, please include \
                     the request ID 0400:1C2B:3D4E5F:6A7B8C9:65A1B2C3.",
                    "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
                );
                response
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from_static("1"));
                response
            }
            Refusal::Status(status, message) => error(
                StatusCode::from_u16(status).expect("a status"),
                message,
                DOCS,
            ),
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// A JSON answer with the rate-limit headers GitHub sends on every response.
fn answer(status: StatusCode, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    for (name, value) in [
        ("x-ratelimit-limit", "5000"),
        ("x-ratelimit-remaining", "4987"),
        ("x-ratelimit-used", "13"),
        ("x-ratelimit-reset", "1767607200"),
        ("x-ratelimit-resource", "core"),
        ("x-github-api-version-selected", "2022-11-28"),
    ] {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}

fn error(status: StatusCode, message: &str, documentation_url: &str) -> Response {
    answer(
        status,
        json!({"message": message, "documentation_url": documentation_url,
               "status": status.as_u16().to_string()}),
    )
}

fn validation_failed(field: &str) -> Response {
    answer(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"message": "Validation Failed", "errors": [{"resource": "Issue", "field": field,
               "code": "invalid"}], "documentation_url": DOCS, "status": "422"}),
    )
}

fn user(base: &str, login: &str) -> Value {
    let id = 583_231 + login.bytes().map(u64::from).sum::<u64>();
    json!({
        "login": login, "id": id, "node_id": format!("MDQ6VXNlcj{id}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "gravatar_id": "", "url": format!("{base}/users/{login}"),
        "html_url": format!("https://github.com/{login}"), "type": "User", "site_admin": false
    })
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

async fn not_found(State(hub): State<GitHub>, incoming: Incoming) -> Response {
    if let Err(refused) = hub.gate(&incoming) {
        return refused.into_response();
    }
    error(StatusCode::NOT_FOUND, "Not Found", DOCS)
}

async fn authenticated_user(State(hub): State<GitHub>, incoming: Incoming) -> Response {
    if let Err(refused) = hub.gate(&incoming) {
        return refused.into_response();
    }
    let mut me = user(&hub.base(), "octocat");
    for (field, value) in [
        ("name", json!("The Octocat")),
        ("company", json!("@github")),
        ("blog", json!("https://github.blog")),
        ("location", json!("San Francisco")),
        ("email", Value::Null),
        ("public_repos", json!(8)),
        ("created_at", json!("2011-01-25T18:44:36Z")),
    ] {
        me[field] = value;
    }
    answer(StatusCode::OK, me)
}

async fn list_repos(State(hub): State<GitHub>, incoming: Incoming) -> Response {
    if let Err(refused) = hub.gate(&incoming) {
        return refused.into_response();
    }
    let repos = hub.state.repos.lock().unwrap();
    let mut listed: Vec<&Repo> = repos.iter().collect();
    // full_name (the default) ascending; created, updated and pushed newest first.
    match incoming
        .query
        .get("sort")
        .map_or("full_name", String::as_str)
    {
        "full_name" => listed.sort_by_key(|r| format!("{}/{}", r.owner, r.name).to_lowercase()),
        "created" | "updated" | "pushed" => listed.sort_by_key(|r| std::cmp::Reverse(r.id)),
        _ => return validation_failed("sort"),
    }
    let items = listed.iter().map(|r| hub.repo_object(r)).collect();
    hub.page(items, &incoming.query, "/user/repos")
}

async fn list_issues(
    State(hub): State<GitHub>,
    Path((owner, name)): Path<(String, String)>,
    incoming: Incoming,
) -> Response {
    if let Err(refused) = hub.gate(&incoming) {
        return refused.into_response();
    }
    let repos = hub.state.repos.lock().unwrap();
    match repos.iter().find(|r| r.owner == owner && r.name == name) {
        Some(repo) => hub.issues_page(repo, &incoming.query),
        None => error(
            StatusCode::NOT_FOUND,
            "Not Found",
            "https://docs.github.com/rest/issues/issues#list-repository-issues",
        ),
    }
}

/// The URLs of `Link` headers name a repository by its id.
async fn list_issues_by_id(
    State(hub): State<GitHub>,
    Path(id): Path<u64>,
    incoming: Incoming,
) -> Response {
    if let Err(refused) = hub.gate(&incoming) {
        return refused.into_response();
    }
    let repos = hub.state.repos.lock().unwrap();
    match repos.iter().find(|r| r.id == id) {
        Some(repo) => hub.issues_page(repo, &incoming.query),
        None => error(StatusCode::NOT_FOUND, "Not Found", DOCS),
    }
}

async fn create_issue(
    State(hub): State<GitHub>,
    Path((owner, name)): Path<(String, String)>,
    incoming: Incoming,
) -> Response {
    let args = match hub.gate(&incoming) {
        Ok(args) => args,
        Err(refused) => return refused.into_response(),
    };
    let docs = "https://docs.github.com/rest/issues/issues#create-an-issue";
    let mut repos = hub.state.repos.lock().unwrap();
    let Some(repo) = repos
        .iter_mut()
        .find(|r| r.owner == owner && r.name == name)
    else {
        return error(StatusCode::NOT_FOUND, "Not Found", docs);
    };
    let Some(title) = args["title"].as_str().filter(|t| !t.is_empty()) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid request.\n\n\"title\" wasn't supplied.",
            docs,
        );
    };
    let base = hub.base();
    let mut issue = hub.issue(repo, title, "octocat", false);
    issue["body"] = args["body"].clone();
    let names = |field: &str| -> Vec<String> {
        args[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    issue["labels"] = names("labels")
        .iter()
        .enumerate()
        .map(|(n, label)| {
            json!({"id": 208_045_946 + n as u64, "node_id": format!("MDU6TGFiZWwyMDgwNDU5N{n}"),
                   "url": format!("{base}/repos/{owner}/{name}/labels/{}", percent(label)),
                   "name": label, "description": null, "color": "ededed", "default": false})
        })
        .collect();
    let assignees: Vec<Value> = names("assignees").iter().map(|l| user(&base, l)).collect();
    issue["assignee"] = assignees.first().cloned().unwrap_or_default();
    issue["assignees"] = json!(assignees);
    repo.issues.push(issue.clone());
    let mut response = answer(StatusCode::CREATED, issue.clone());
    response.headers_mut().insert(
        "location",
        HeaderValue::from_str(issue["url"].as_str().unwrap()).unwrap(),
    );
    response
}

async fn create_comment(
    State(hub): State<GitHub>,
    Path((owner, name, number)): Path<(String, String, u64)>,
    incoming: Incoming,
) -> Response {
    let args = match hub.gate(&incoming) {
        Ok(args) => args,
        Err(refused) => return refused.into_response(),
    };
    let docs = "https://docs.github.com/rest/issues/comments#create-an-issue-comment";
    let now = hub.tick();
    let base = hub.base();
    let id = hub.state.next_id.fetch_add(1, Ordering::SeqCst);
    let mut repos = hub.state.repos.lock().unwrap();
    let Some(issue) = repos
        .iter_mut()
        .find(|r| r.owner == owner && r.name == name)
        .and_then(|r| r.issues.iter_mut().find(|i| i["number"] == number))
    else {
        return error(StatusCode::NOT_FOUND, "Not Found", docs);
    };
    let Some(body) = args["body"].as_str().filter(|b| !b.is_empty()) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid request.\n\n\"body\" wasn't supplied.",
            docs,
        );
    };
    let full = format!("{owner}/{name}");
    let url = format!("{base}/repos/{full}/issues/comments/{id}");
    let comment = json!({
        "id": id, "node_id": format!("IC_kwDOABII58{id}"), "url": url,
        "html_url": format!("https://github.com/{full}/issues/{number}#issuecomment-{id}"),
        "issue_url": format!("{base}/repos/{full}/issues/{number}"), "body": body,
        "user": user(&base, "octocat"), "created_at": now, "updated_at": now,
        "author_association": "OWNER", "performed_via_github_app": null
    });
    issue["comments"] = json!(issue["comments"].as_u64().unwrap_or(0) + 1);
    issue["updated_at"] = json!(now);
    let mut response = answer(StatusCode::CREATED, comment);
    response
        .headers_mut()
        .insert("location", HeaderValue::from_str(&url).unwrap());
    response
}

// ---------------------------------------------------------------------------------------------
// The connector, end to end through timix's API.

/// Six repositories of octocat and an organization; Hello-World has no issues yet.
async fn github() -> (GitHub, String) {
    GitHub::start(&[
        (HELLO_WORLD, "octocat", "Hello-World"),
        (1_300_192, "octocat", "Spoon-Knife"),
        (1_400_001, "octocat", "linguist"),
        (1_400_002, "octocat", "hello-worker"),
        (1_400_003, "octo-org", "say-hello"),
        (1_400_004, "octo-org", "billing-sync"),
    ])
    .await
}

/// A GitHub connection with a personal access token.
async fn connection(c: &Client, url: &str, token: &str) -> String {
    let created = c
        .post(
            "/connections",
            json!({"name": "GitHub (octocat)", "connector": "github", "baseUrl": url,
                   "credentials": {"token": token}}),
        )
        .await
        .expect(201);
    assert_eq!(created.body["connector"], "github", "{}", created.body);
    assert_eq!(created.body["type"], "bearer", "{}", created.body);
    created.id()
}

/// Runs of a flow, each as `GET /runs/{id}` shows it.
async fn runs_of(c: &Client, flow: &str, n: usize) -> Vec<Value> {
    let mut runs = Vec::new();
    for run in finished_runs(c, flow, n).await {
        runs.push(c.finished_run(run["id"].as_str().unwrap()).await);
    }
    runs
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

fn assert_sent_by_the_connector(call: &Call) {
    assert_eq!(
        header(&call.headers, "authorization"),
        format!("Bearer {TOKEN}")
    );
    assert!(!header(&call.headers, "user-agent").is_empty());
}

#[tokio::test]
async fn github_new_issue_reads_every_page_and_fires_once_per_new_issue() {
    let (hub, url) = github().await;
    for title in [
        "Fix login redirect",
        "Add dark mode",
        "Crash on empty invoice",
        "Update README",
        "Typo in footer",
    ] {
        hub.open("Hello-World", title, "monalisa", false);
    }
    hub.close("Hello-World", 4);
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let connection = connection(&c, &url, TOKEN).await;
    let flow = c
        .post(
            "/flows",
            json!({
                "name": "New GitHub issues become customers",
                "trigger": {"type": "poll", "connectionId": connection, "source": "github.new_issue",
                            "input": {"owner": "octocat", "repo": "Hello-World"},
                            "schedule": "* * * * * *"},
                "steps": [{"key": "customer", "action": "create_customer",
                           "input": {"name": "{{trigger.title}}"}}]
            }),
        )
        .await
        .expect(201)
        .id();

    // The first poll reads the five issues on three pages (2, 2, 1), the first at the
    // connector's path, the next two at the URLs of the Link headers, and takes them as seen.
    // The next poll begins once it is done.
    let calls = &hub.calls;
    eventually(
        "the first poll and the start of the second",
        || async move { json!(calls.to("GET", ISSUES).len()) },
        |n| n.as_u64().unwrap() >= 2,
    )
    .await;
    let first = calls.to("GET", ISSUES).remove(0);
    assert_sent_by_the_connector(&first);
    assert_eq!(first.query["state"], "all");
    assert_eq!(first.query["sort"], "created");
    assert_eq!(first.query["direction"], "desc");
    assert_eq!(first.query["per_page"], "100");
    assert!(
        !first.query.contains_key("since"),
        "the first poll reads it all"
    );
    assert_eq!(
        header(&first.headers, "accept"),
        "application/vnd.github+json"
    );
    assert_eq!(header(&first.headers, "x-github-api-version"), "2022-11-28");
    let linked = calls.to("GET", &format!("/repositories/{HELLO_WORLD}/issues"));
    assert!(linked.len() >= 2, "pages 2 and 3: {}", linked.len());
    assert_eq!(linked[0].query["page"], "2");
    assert_eq!(linked[1].query["page"], "3");
    for call in &linked[..2] {
        assert_sent_by_the_connector(call);
        assert_eq!(call.query["state"], "all", "the Link URL as given");
    }

    // Issue #1 (the only one of the last page) is edited: GitHub lists it again as updated
    // since the last poll; it was seen, so it does not fire. Then an issue and a pull request.
    hub.retitle("Hello-World", 1, "Fix login redirect loop");
    hub.open("Hello-World", "Export timesheets as CSV", "hubot", false);
    let pull = hub.open("Hello-World", "Add CSV export", "hubot", true);
    let mut fired: Vec<(u64, String, bool, String)> = runs_of(&c, &flow, 2)
        .await
        .iter()
        .map(|run| {
            assert_eq!(run["status"], "succeeded", "{run}");
            let issue = &run["trigger"];
            assert_eq!(run["steps"][0]["output"]["name"], issue["title"]);
            (
                issue["number"].as_u64().unwrap_or_default(),
                issue["title"].as_str().unwrap_or_default().to_owned(),
                issue["pull_request"].is_object(),
                issue["user"]["login"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    fired.sort();
    assert_eq!(
        fired,
        [
            (
                6,
                "Export timesheets as CSV".to_owned(),
                false,
                "hubot".to_owned()
            ),
            (7, "Add CSV export".to_owned(), true, "hubot".to_owned())
        ]
    );

    // Later polls ask only for what changed since the newest issue seen.
    let newest = pull["updated_at"].as_str().unwrap().to_owned();
    let newest = &newest;
    eventually(
        "a poll since the newest issue",
        || async move {
            json!(
                calls
                    .to("GET", ISSUES)
                    .iter()
                    .any(|call| call.query.get("since") == Some(newest))
            )
        },
        |asked| asked == &json!(true),
    )
    .await;
    // Two more polls: nothing fires twice, and the five earlier issues never fired.
    let before = calls.to("GET", ISSUES).len() as u64;
    eventually(
        "two more polls",
        || async move { json!(calls.to("GET", ISSUES).len()) },
        |n| n.as_u64().unwrap() >= before + 2,
    )
    .await;
    let runs = c
        .get(&format!("/runs?flowId={flow}"))
        .await
        .expect(200)
        .items();
    assert_eq!(runs.len(), 2, "{runs:?}");
}

#[tokio::test]
async fn github_actions_open_an_issue_and_comment_after_a_secondary_rate_limit() {
    let (hub, url) = github().await;
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let connection = connection(&c, &url, TOKEN).await;

    let run = run_action(
        &c,
        "github.create_issue",
        &connection,
        json!({"owner": "octocat", "repo": "Hello-World",
               "title": "Invoice {{trigger.number}} is disputed",
               "body": "{{trigger.customer}} disputes the hours of week 12.",
               "labels": ["billing"]}),
        json!({"number": "INV-0042", "customer": "Acme Ltd"}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let issue = &run["steps"][0]["output"];
    assert_eq!(issue["number"], 1);
    assert_eq!(issue["title"], "Invoice INV-0042 is disputed");
    assert_eq!(issue["state"], "open");
    assert_eq!(
        issue["html_url"],
        "https://github.com/octocat/Hello-World/issues/1"
    );
    assert_eq!(issue["labels"][0]["name"], "billing");
    assert_eq!(issue["user"]["login"], "octocat");
    let created = hub.calls.to("POST", ISSUES);
    assert_eq!(created.len(), 1);
    assert_eq!(
        created[0].body,
        json!({"title": "Invoice INV-0042 is disputed",
               "body": "Acme Ltd disputes the hours of week 12.", "labels": ["billing"]})
    );
    assert_sent_by_the_connector(&created[0]);
    assert_eq!(
        header(&created[0].headers, "accept"),
        "application/vnd.github+json"
    );
    assert_eq!(
        header(&created[0].headers, "x-github-api-version"),
        "2022-11-28"
    );
    assert!(header(&created[0].headers, "content-type").starts_with("application/json"));

    // A comment on it, refused once by a secondary rate limit (429, retry-after: 1).
    hub.rate_limit_posts(1);
    let run = run_action(
        &c,
        "github.create_comment",
        &connection,
        json!({"owner": "octocat", "repo": "Hello-World", "issue_number": "{{trigger.issue}}",
               "body": "Resolved: credit note {{trigger.note}} issued."}),
        json!({"issue": 1, "note": "CN-7"}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let step = &run["steps"][0];
    assert_eq!(step["attempts"], 2, "a 429, then the comment: {step}");
    assert_eq!(step["output"]["body"], "Resolved: credit note CN-7 issued.");
    assert!(
        step["output"]["html_url"]
            .as_str()
            .unwrap_or_default()
            .starts_with("https://github.com/octocat/Hello-World/issues/1#issuecomment-"),
        "{step}"
    );
    let comments = hub
        .calls
        .to("POST", "/repos/octocat/Hello-World/issues/1/comments");
    assert_eq!(comments.len(), 2);
    assert_eq!(
        comments[1].body,
        json!({"body": "Resolved: credit note CN-7 issued."})
    );
    assert_sent_by_the_connector(&comments[1]);
    assert_eq!(
        header(&comments[1].headers, "x-github-api-version"),
        "2022-11-28"
    );
    let posted_at = hub.state.posted_at.lock().unwrap().clone();
    let waited = posted_at[posted_at.len() - 1].duration_since(posted_at[posted_at.len() - 2]);
    assert!(
        waited >= Duration::from_millis(900),
        "retry-after: 1 was waited out: {waited:?}"
    );
    assert_eq!(hub.find_issue("Hello-World", 1)["comments"], 1);

    // A repository that does not exist: GitHub's 404, its message kept, not retried.
    let run = run_action(
        &c,
        "github.create_issue",
        &connection,
        json!({"owner": "octocat", "repo": "No-Such-Repo", "title": "Anything"}),
        json!({"number": "INV-0043"}),
    )
    .await;
    assert_eq!(run["status"], "failed", "{run}");
    let step = &run["steps"][0];
    assert_eq!(step["error"]["status"], 404, "{step}");
    assert!(
        step["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Not Found"),
        "{step}"
    );
    assert_eq!(step["attempts"], 1, "{step}");
}

#[tokio::test]
async fn github_lookups_find_repositories_and_open_issues_across_pages() {
    let (hub, url) = github().await;
    for title in [
        "Fix login redirect",
        "Add dark mode",
        "Crash on empty invoice",
    ] {
        hub.open("Hello-World", title, "monalisa", false);
    }
    hub.open("Hello-World", "Add CSV export", "hubot", true);
    hub.close("Hello-World", 3);
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let connection = connection(&c, &url, TOKEN).await;

    // Six repositories, two a page, by full name: octo-org/billing-sync, octo-org/say-hello |
    // octocat/hello-worker, octocat/Hello-World | octocat/linguist, octocat/Spoon-Knife.
    // The search term matches names whatever their case.
    let found = lookup_all(
        &c,
        &format!("/connectors/github/lookups/repos?connectionId={connection}&q=hello"),
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
            ("octo-org/say-hello".to_owned(), "say-hello".to_owned()),
            ("octocat/Hello-World".to_owned(), "Hello-World".to_owned()),
            ("octocat/hello-worker".to_owned(), "hello-worker".to_owned())
        ]
    );
    let listed = hub.calls.to("GET", "/user/repos");
    assert!(listed.len() >= 3, "three pages read: {}", listed.len());
    assert_eq!(listed[0].query["sort"], "full_name");
    assert!(!listed[0].query.contains_key("page"));
    assert_eq!(listed[1].query["page"], "2", "from the Link header");
    assert_eq!(listed[2].query["page"], "3");
    listed.iter().for_each(assert_sent_by_the_connector);

    // The open issues and pull requests of the repository the step names.
    let issues = lookup_all(
        &c,
        &format!(
            "/connectors/github/lookups/issues?connectionId={connection}&owner=octocat&repo=Hello-World"
        ),
    )
    .await;
    let mut issues: Vec<(u64, String)> = issues
        .iter()
        .map(|i| {
            let value = &i["value"];
            let number = value
                .as_u64()
                .or_else(|| value.as_str().and_then(|v| v.parse().ok()))
                .unwrap_or_default();
            (number, i["label"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    issues.sort();
    assert_eq!(
        issues,
        [
            (1, "Fix login redirect".to_owned()),
            (2, "Add dark mode".to_owned()),
            (4, "Add CSV export".to_owned())
        ]
    );
    let asked = hub.calls.to("GET", ISSUES);
    assert_eq!(asked[0].query["state"], "open");
    assert!(
        !hub.calls
            .to("GET", &format!("/repositories/{HELLO_WORLD}/issues"))
            .is_empty(),
        "the second page from the Link header"
    );
}

#[tokio::test]
async fn github_connection_test_accepts_the_token_and_reports_bad_credentials() {
    let (hub, url) = github().await;
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);

    let good = connection(&c, &url, TOKEN).await;
    let tested = c
        .post(&format!("/connections/{good}/test"), json!({}))
        .await
        .expect(200);
    assert_eq!(tested.body["status"], "ok", "{}", tested.body);
    let checks = hub.calls.to("GET", "/user");
    assert_eq!(checks.len(), 1);
    assert_sent_by_the_connector(&checks[0]);

    // A revoked token: GET /user answers 401 {"message": "Bad credentials"}.
    let bad = connection(&c, &url, "ghp_revoked0000000000000000000000000000").await;
    let tested = c
        .post(&format!("/connections/{bad}/test"), json!({}))
        .await
        .expect(200);
    assert_eq!(tested.body["status"], "error", "{}", tested.body);
    let last_error = tested.body["lastError"].as_str().unwrap_or_default();
    assert!(
        last_error.contains("Bad credentials") || last_error.contains("401"),
        "{}",
        tested.body
    );
    let checks = hub.calls.to("GET", "/user");
    assert_eq!(checks.len(), 2);
    assert_eq!(
        header(&checks[1].headers, "authorization"),
        "Bearer ghp_revoked0000000000000000000000000000"
    );
}
