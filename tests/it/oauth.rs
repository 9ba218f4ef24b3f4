//! OAuth2 connections against a real provider (`oidc-provider` from npm, `tests/oauth/`): the
//! authorization-code grant with PKCE and `state`, tokens sealed at rest, refresh before expiry
//! and once on a 401, and a failed refresh marking the connection `error` with the reason.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Server, TestDb, query_texts};

/// The provider, stopped with the test.
struct Provider {
    child: Child,
    issuer: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the provider, or returns None (loudly) where node or its packages are missing and
/// this is not CI.
fn start_provider(redirect: &str) -> Option<Provider> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oauth");
    let ready = dir.join("node_modules/oidc-provider").exists()
        && Command::new("node").arg("--version").output().is_ok();
    if !ready {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run the OAuth2 tests: install node and run `npm ci --prefix tests/oauth`"
        );
        eprintln!(
            "\n!!! SKIPPED: the OAuth2 provider tests need node and `npm ci --prefix tests/oauth` !!!\n"
        );
        return None;
    }
    let mut child = Command::new("node")
        .arg(dir.join("provider.mjs"))
        .arg(redirect)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node starts");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let issuer = line
        .trim()
        .strip_prefix("issuer ")
        .unwrap_or_else(|| panic!("the provider did not start: {line:?}"))
        .to_owned();
    Some(Provider { child, issuer })
}

/// A browser that follows redirects by hand and keeps cookies (names are unique here).
struct Browser {
    http: reqwest::Client,
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn new() -> Self {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Vec::new(),
        }
    }

    /// Follows redirects from `url` until a page that is not one; returns its URL, status and
    /// body.
    async fn visit(&mut self, mut url: String) -> (String, u16, String) {
        for _ in 0..10 {
            let cookie = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            let response = self
                .http
                .get(&url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            for set in response.headers().get_all("set-cookie") {
                let pair = set.to_str().unwrap().split(';').next().unwrap();
                if let Some((name, value)) = pair.split_once('=') {
                    self.cookies.retain(|(k, _)| k != name);
                    self.cookies.push((name.to_owned(), value.to_owned()));
                }
            }
            let status = response.status().as_u16();
            match response.headers().get("location") {
                Some(location) if (300..400).contains(&status) => {
                    url = reqwest::Url::parse(&url)
                        .unwrap()
                        .join(location.to_str().unwrap())
                        .unwrap()
                        .to_string();
                }
                _ => return (url, status, response.text().await.unwrap()),
            }
        }
        panic!("too many redirects");
    }
}

async fn provider_stats(provider: &Provider) -> Value {
    reqwest::get(format!("{}/test/stats", provider.issuer))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn switch(provider: &Provider, name: &str) {
    reqwest::get(format!("{}/test/{name}", provider.issuer))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_oauth2_connection_is_authorized_refreshed_and_marked_when_refresh_fails() {
    let server =
        Server::start_with(TestDb::new().await, &[("TIMIX_ALLOW_PRIVATE_TARGETS", "1")]).await;
    let callback = server.url("/api/integration/v1/oauth2/callback");
    let Some(provider) = start_provider(&callback) else {
        return;
    };
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let issuer = &provider.issuer;
    let connection = c
        .post("/connections", json!({
            "name": "Provider API",
            "type": "oauth2",
            "baseUrl": format!("{issuer}/api"),
            "settings": {"authorizeUrl": format!("{issuer}/auth"), "tokenUrl": format!("{issuer}/token"),
                         "clientId": "timix", "scopes": ["openid", "offline_access", "api"],
                         "authorizeParams": {"prompt": "consent"}},
            "credentials": {"clientSecret": "timix-client-secret"}
        }))
        .await
        .expect(201);
    let id = connection.id();
    assert_eq!(connection.body["isAuthorized"], false);
    // Not authorized yet: the test says so.
    let tested = c
        .post(&format!("/connections/{id}/test"), json!({}))
        .await
        .expect(200);
    assert_eq!(tested.body["status"], "error");
    assert!(
        tested.body["lastError"]
            .as_str()
            .unwrap()
            .contains("not authorized")
    );

    // The authorization: 302 to the provider, with PKCE (S256) and a state.
    let start = c
        .get(&format!("/connections/{id}/authorize"))
        .await
        .expect(302);
    let location = start.header("location").unwrap().to_owned();
    assert_eq!(start.body["authorizeUrl"], location.as_str());
    let url = reqwest::Url::parse(&location).unwrap();
    let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(param("redirect_uri").as_deref(), Some(callback.as_str()));
    assert_eq!(param("prompt").as_deref(), Some("consent"));
    let state = param("state").unwrap();
    // A forged state is refused.
    server
        .anonymous()
        .get("/oauth2/callback?state=forged&code=x")
        .await
        .expect_error(400, "invalid_parameter");
    let mut browser = Browser::new();
    let (landed, status, page) = browser.visit(location).await;
    assert!(landed.starts_with(&callback), "{landed}");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Connected"), "{page}");
    let now = c.get(&format!("/connections/{id}")).await.expect(200).body;
    assert_eq!(now["status"], "ok", "{now}");
    assert_eq!(now["isAuthorized"], true);
    // The state was used up.
    server
        .anonymous()
        .get(&format!("/oauth2/callback?state={state}&code=again"))
        .await
        .expect_error(400, "invalid_parameter");
    // Tokens are sealed: the access token the provider issued is nowhere in the database.
    let stats = provider_stats(&provider).await;
    assert_eq!(stats["codes"], 1);
    let token = stats["lastAccessToken"].as_str().unwrap().to_owned();
    let stored = query_texts(&server.db, "SELECT secret FROM connections").await;
    assert!(!stored[0].contains(&token) && !stored[0].contains("timix-client-secret"));

    // The token works for the provider's API.
    let tested = c
        .post(&format!("/connections/{id}/test"), json!({}))
        .await
        .expect(200);
    assert_eq!(tested.body["status"], "ok", "{}", tested.body);
    assert_eq!(provider_stats(&provider).await["refreshes"], 0);

    // Within a minute of expiry it is refreshed before use.
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    let tested = c
        .post(&format!("/connections/{id}/test"), json!({}))
        .await
        .expect(200);
    assert_eq!(tested.body["status"], "ok", "{}", tested.body);
    assert_eq!(provider_stats(&provider).await["refreshes"], 1);

    // A 401 with a fresh token: refreshed once, and the request sent again.
    switch(&provider, "reject-next").await;
    let tested = c
        .post(&format!("/connections/{id}/test"), json!({}))
        .await
        .expect(200);
    assert_eq!(tested.body["status"], "ok", "{}", tested.body);
    assert_eq!(provider_stats(&provider).await["refreshes"], 2);

    // A refresh that fails marks the connection with the reason.
    switch(&provider, "fail-refresh").await;
    switch(&provider, "reject-next").await;
    let tested = c
        .post(&format!("/connections/{id}/test"), json!({}))
        .await
        .expect(200);
    assert_eq!(tested.body["status"], "error");
    let reason = tested.body["lastError"].as_str().unwrap();
    assert!(reason.contains("invalid_grant"), "{reason}");
}
