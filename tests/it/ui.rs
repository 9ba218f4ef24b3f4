//! The web UI: logins (throttled), session cookies, CSRF, invitations and roles over plain HTTP;
//! and the whole journey of an ops person in a real headless Chromium (`tests/ui/run.mjs`,
//! playwright-core driving Debian's chromium), with a screenshot of every page kept under
//! `target/tmp/ui-screenshots/<backend>/`.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Script, Server, TestDb, backend, kept_dir};

pub(crate) const PASSWORD: &str = "correct horse battery";

/// `timix bootstrap --password`: `(email, api key, user id)`.
pub(crate) fn bootstrap_with_password(db: &TestDb, org: &str) -> (String, String, String) {
    let email = format!(
        "ops-{}@example.com",
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    let out = db.cli(&[
        "bootstrap",
        "--org",
        org,
        "--email",
        &email,
        "--plan",
        "business",
        "--password",
        PASSWORD,
    ]);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    (
        email,
        v["apiKey"].as_str().unwrap().to_owned(),
        v["userId"].as_str().unwrap().to_owned(),
    )
}

/// A browser without JavaScript: keeps cookies, follows nothing.
pub(crate) struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

pub(crate) struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    set_cookies: Vec<String>,
    pub body: String,
}

impl Page {
    /// The value of the first `name="_csrf"` field.
    pub fn csrf(&self) -> String {
        let marker = "name=\"_csrf\" value=\"";
        let start = self.body.find(marker).expect("a form with a CSRF token") + marker.len();
        self.body[start..start + self.body[start..].find('"').unwrap()].to_owned()
    }

    /// The invitation link a users page shows once.
    fn invitation(&self) -> String {
        let start = self.body.find("/invite/").expect("an invitation link");
        self.body[start..]
            .chars()
            .take_while(|c| *c != '"')
            .collect()
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.set_cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(String::as_str)
    }
}

impl Browser {
    pub fn new(server: &Server) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: server.url(""),
            cookies: BTreeMap::new(),
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let response = request.header("cookie", cookie).send().await.unwrap();
        let set_cookies: Vec<String> = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for c in &set_cookies {
            let pair = c.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status: response.status(),
            location: response
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned()),
            set_cookies,
            body: response.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let request = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(request).await
    }

    pub async fn log_in(&mut self, email: &str, password: &str) -> Page {
        let csrf = self.get("/login").await.csrf();
        self.post(
            "/login",
            &[
                ("_csrf", &csrf),
                ("email", email),
                ("password", password),
                ("next", "/"),
            ],
        )
        .await
    }
}

#[tokio::test]
async fn logins_are_throttled_and_checked_and_sessions_end_at_logout() {
    let server = Server::start().await;
    let (email, _, _) = bootstrap_with_password(&server.db, "Acme");
    let mut browser = Browser::new(&server);

    // Pages need a login and say where to come back to.
    let page = browser.get("/flows").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location.as_deref(), Some("/login?next=%2Fflows"));

    // A login form without its token is refused before the password is looked at.
    browser.get("/login").await;
    let page = browser
        .post("/login", &[("email", &email), ("password", PASSWORD)])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);

    // Wrong passwords: refused, then throttled even with the right one.
    for _ in 0..5 {
        let page = browser.log_in(&email, "wrong password").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        assert!(
            page.body.contains("do not match an account"),
            "{}",
            page.body
        );
        assert!(page.cookie("timix_session").is_none());
    }
    let page = browser.log_in(&email, PASSWORD).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
    assert!(
        page.body.contains("Too many failed logins"),
        "{}",
        page.body
    );
    assert!(page.cookie("timix_session").is_none());

    // Another account logs in: the session cookie is HttpOnly and SameSite, Secure behind TLS.
    let (other, key, _) = bootstrap_with_password(&server.db, "Globex");
    let mut browser = Browser::new(&server);
    let page = browser.log_in(&other, PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some("/"));
    let cookie = page.cookie("timix_session").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "{cookie}");
    let mut behind_tls = Browser::new(&server);
    let csrf = behind_tls.get("/login").await.csrf();
    let proxied = behind_tls
        .http
        .post(server.url("/login"))
        .header("x-forwarded-proto", "https")
        .form(&[
            ("_csrf", csrf.as_str()),
            ("email", &other),
            ("password", PASSWORD),
        ]);
    let page = behind_tls.send(proxied).await;
    assert!(page.cookie("timix_session").unwrap().contains("Secure"));

    let page = browser.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Globex"), "{}", page.body);
    let csrf = page.csrf();

    // Forms need the session's token, and come from this site.
    let api = server.as_key(&key);
    let keys_before = api.get("/api/integration/v1/api-keys").await.items().len();
    let page = browser.post("/keys", &[("name", "No token")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let page = browser
        .post("/keys", &[("_csrf", "forged"), ("name", "Forged")])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let cross_site = browser
        .http
        .post(server.url("/keys"))
        .header("origin", "https://evil.example")
        .form(&[("_csrf", csrf.as_str()), ("name", "Cross site")]);
    assert_eq!(browser.send(cross_site).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        api.get("/api/integration/v1/api-keys").await.items().len(),
        keys_before,
        "no refused form made a key"
    );
    let page = browser
        .post(
            "/keys",
            &[("_csrf", &csrf), ("name", "Zapier"), ("role", "member")],
        )
        .await;
    assert_eq!(page.status, StatusCode::CREATED, "{}", page.body);
    assert!(page.body.contains("Copy it now"), "{}", page.body);
    assert_eq!(
        api.get("/api/integration/v1/api-keys").await.items().len(),
        keys_before + 1
    );

    // A form refused by the API shows the field's error, and writes nothing.
    let page = browser
        .post(
            "/connections",
            &[
                ("_csrf", &csrf),
                ("name", "Broken"),
                ("type", "api_key"),
                ("baseUrl", "not a url"),
            ],
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    assert!(page.body.contains("aria-invalid=\"true\""), "{}", page.body);
    assert!(page.body.contains("class=\"field-error\""), "{}", page.body);
    assert_eq!(
        api.get("/api/integration/v1/connections")
            .await
            .items()
            .len(),
        0
    );

    // Logging out ends the session on the server, not only in this browser.
    let session = browser.cookies["timix_session"].clone();
    let page = browser.post("/logout", &[("_csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    browser.cookies.insert("timix_session".into(), session);
    let page = browser.get("/").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location.as_deref(), Some("/login?next=%2F"));
}

#[tokio::test]
async fn an_invited_member_sets_a_password_and_sees_what_the_role_allows() {
    let server = Server::start().await;
    let (email, key, _) = bootstrap_with_password(&server.db, "Acme");
    let mut admin = Browser::new(&server);
    assert_eq!(
        admin.log_in(&email, PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let csrf = admin.get("/users").await.csrf();
    let page = admin
        .post(
            "/users",
            &[
                ("_csrf", &csrf),
                ("email", "mia@example.com"),
                ("name", "Mia"),
                ("role", "member"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::CREATED, "{}", page.body);
    let link = page.invitation();

    let mut mia = Browser::new(&server);
    let page = mia.get(&link).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("mia@example.com"), "{}", page.body);
    let csrf = page.csrf();
    let page = mia
        .post(
            &link,
            &[
                ("_csrf", &csrf),
                ("password", "first one!"),
                ("confirm", "another one"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("differ"), "{}", page.body);
    let page = mia
        .post(
            &link,
            &[
                ("_csrf", &csrf),
                ("password", "short"),
                ("confirm", "short"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("at least 8"), "{}", page.body);
    let page = mia
        .post(
            &link,
            &[
                ("_csrf", &csrf),
                ("password", "mias password"),
                ("confirm", "mias password"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(page.cookie("timix_session").is_some());
    // The link serves once.
    assert_eq!(
        Browser::new(&server).get(&link).await.status,
        StatusCode::NOT_FOUND
    );

    // A member sees no flows, in the menu or by address, as in the API.
    let page = mia.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Mia"));
    assert!(!page.body.contains("href=\"/flows\""), "{}", page.body);
    let page = mia.get("/flows").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("member role cannot"), "{}", page.body);
    let page = mia.get("/connections/new-one").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let member_key = server.as_key(&key);
    assert_eq!(
        member_key
            .get("/api/integration/v1/org-users")
            .await
            .items()
            .iter()
            .filter(|u| u["email"] == "mia@example.com")
            .count(),
        1
    );

    // And logs in again later with the password chosen.
    let mut again = Browser::new(&server);
    assert_eq!(
        again
            .log_in("MIA@example.com", "mias password")
            .await
            .status,
        StatusCode::SEE_OTHER
    );

    // The apps download as archives that unzip.
    let response = again.get("/apps/timix-zapier.zip").await;
    assert_eq!(response.status, StatusCode::OK);
    let zip = again
        .http
        .get(server.url("/apps/timix-make.zip"))
        .header(
            "cookie",
            format!("timix_session={}", again.cookies["timix_session"]),
        )
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let file = std::env::temp_dir().join(format!("timix-make-{}.zip", ulid::Ulid::generate()));
    std::fs::write(&file, &zip).unwrap();
    let listing = std::process::Command::new("python3")
        .args(["-c", "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print('\\n'.join(z.namelist()))"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(listing.status.success(), "{listing:?}");
    let names = String::from_utf8(listing.stdout).unwrap();
    assert!(names.lines().count() > 5, "{names}");
    assert!(names.lines().any(|n| n.ends_with(".json")), "{names}");
}

#[tokio::test]
async fn in_chromium_an_ops_person_builds_a_flow_and_sees_its_run() {
    let out = kept_dir(&format!("ui-screenshots/{}", backend()));
    let Some(script) = Script::browser("run.mjs", &out).ready() else {
        return;
    };
    let server =
        Server::start_with(TestDb::new().await, &[("TIMIX_ALLOW_PRIVATE_TARGETS", "1")]).await;
    let (email, key, _) = bootstrap_with_password(&server.db, "Acme Ltd");
    let report = script
        .env("BASE", server.url(""))
        .env("EMAIL", &email)
        .env("PASSWORD", PASSWORD)
        .env("API_KEY", &key)
        .run()
        .await;
    assert!(report["failure"].is_null(), "{report:#}");

    assert_eq!(report["loginRedirect"], "/login?next=%2Fruns");
    assert_eq!(report["wrongPassword"]["path"], "/login");
    assert_eq!(
        report["wrongPassword"]["alert"],
        "That e-mail and password do not match an account."
    );
    assert_eq!(
        report["afterLogin"], "/runs",
        "back where the visitor was going"
    );
    assert_eq!(report["dashboardHeading"], "Dashboard");

    assert_eq!(report["basicFieldsHidden"], true);
    assert_eq!(report["connectionTest"]["badge"], "ok", "{report:#}");
    let api = server.as_key(&key);
    let connection = api
        .get(&format!(
            "/api/integration/v1/connections/{}",
            report["connectionId"].as_str().unwrap()
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(connection["type"], "api_key");
    assert_eq!(connection["status"], "ok");

    // The builder: the name kept across the re-render, fields from the schema, the key.
    assert_eq!(report["builderKeptName"], "New customer → project");
    assert_eq!(report["stepKey"], "project");
    let fields = report["builderFields"].as_array().unwrap();
    assert!(
        fields[0].as_str().unwrap().starts_with("Customer"),
        "{fields:?}"
    );
    assert!(
        fields[1].as_str().unwrap().starts_with("Name"),
        "{fields:?}"
    );
    assert!(fields.iter().any(|f| f == "Billing method"), "{fields:?}");
    // The API's refusal landed on the field, keeping what was typed elsewhere.
    assert_eq!(report["fieldError"]["invalid"], "true");
    assert!(
        report["fieldError"]["message"]
            .as_str()
            .unwrap()
            .contains("template"),
        "{report:#}"
    );
    assert_eq!(report["fieldError"]["customerKept"], "{{trigger.id}}");
    assert_eq!(report["projectTemplate"], "Project for {{trigger.name}}");

    // The flow as stored, and what it did.
    let flow = api
        .get(&format!(
            "/api/integration/v1/flows/{}",
            report["flowId"].as_str().unwrap()
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(flow["name"], "New customer → project");
    assert_eq!(flow["isEnabled"], true);
    assert_eq!(
        flow["trigger"],
        json!({"type": "event", "event": "customer.created", "filters": {}})
    );
    assert_eq!(
        flow["steps"],
        json!([{"key": "project", "action": "create_project", "connectionId": null,
                "input": {"customerId": "{{trigger.id}}", "name": "Project for {{trigger.name}}"}}])
    );
    assert_eq!(report["customerStatus"], 201);
    let projects = api
        .get("/api/integration/v1/projects?name=Project%20for%20Globex")
        .await
        .items();
    assert_eq!(projects.len(), 1, "{projects:?}");
    assert_eq!(report["run"]["status"], "succeeded", "{report:#}");
    assert_eq!(
        report["run"]["steps"],
        json!(["1 project · create_project"])
    );
    assert_eq!(report["run"]["stepStatus"], json!(["succeeded"]));
    let output: Value =
        serde_json::from_str(report["run"]["outputs"][1].as_str().unwrap()).unwrap();
    assert_eq!(output["id"], projects[0]["id"]);
    assert_eq!(output["name"], "Project for Globex");

    // The test run on the sample failed at its step with the API's reason; replay made another.
    assert!(
        report["sampleRunNotice"]
            .as_str()
            .unwrap()
            .starts_with("Test run started"),
        "{report:#}"
    );
    assert_eq!(report["sampleRun"]["status"], "failed", "{report:#}");
    assert!(
        report["sampleRun"]["stepError"]
            .as_str()
            .unwrap()
            .contains("customer"),
        "{report:#}"
    );
    assert!(
        report["replayNotice"]
            .as_str()
            .unwrap()
            .starts_with("Replayed"),
        "{report:#}"
    );

    // A key shown once that works; a webhook secret shown once; the Zapier app downloaded.
    let new_key = report["newKey"].as_str().unwrap();
    server
        .as_key(new_key)
        .get("/api/integration/v1/me")
        .await
        .expect(200);
    assert!(
        report["webhookSecret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    assert_eq!(report["download"], "timix-zapier.zip");
    // The webhook's test delivery, its attempt and error (a `.invalid` host never resolves), a
    // retry, and a rotated secret shown once.
    assert!(
        report["webhookTestNotice"]
            .as_str()
            .unwrap()
            .contains("test event")
    );
    assert!(
        report["deliveryAttempts"].as_u64().unwrap() >= 1,
        "{report:#}"
    );
    assert!(
        !report["deliveryError"].as_str().unwrap().is_empty(),
        "{report:#}"
    );
    assert!(
        report["retryNotice"]
            .as_str()
            .unwrap()
            .contains("attempted again")
    );
    let rotated = report["rotatedSecret"].as_str().unwrap();
    assert!(
        rotated.starts_with("whsec_") && rotated != report["webhookSecret"],
        "{report:#}"
    );
    let hooks = api.get("/api/integration/v1/webhooks").await.items();
    assert_eq!(
        hooks[0]["events"],
        json!(["customer.created", "customer.updated"])
    );

    assert_eq!(report["afterLogout"]["path"], "/login");
    assert_eq!(report["afterLogout"]["notice"], "You are logged out.");
    assert_eq!(report["flowsAfterLogout"], "/login");

    // No script error on any page. The refused login (401) and the refused flow (422) are
    // pages answered with their status, which Chromium logs.
    let errors: Vec<&Value> = report["consoleErrors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            let e = e.as_str().unwrap_or_default();
            !(e.contains("status of 401") || e.contains("status of 422"))
        })
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let shots = report["screenshots"].as_array().unwrap();
    assert_eq!(shots.len(), 18, "{shots:?}");
    for shot in shots {
        let file = out.join(format!("{}.png", shot.as_str().unwrap()));
        assert!(std::fs::metadata(&file).unwrap().len() > 10_000, "{file:?}");
    }
}

#[tokio::test]
async fn an_oauth2_connection_is_connected_at_the_provider_and_kept_while_a_flow_uses_it() {
    let server = Server::start().await;
    let (email, key, _) = bootstrap_with_password(&server.db, "Acme");
    let mut browser = Browser::new(&server);
    browser.log_in(&email, PASSWORD).await;
    let csrf = browser.get("/connections").await.csrf();
    let page = browser
        .post(
            "/connections",
            &[
                ("_csrf", &csrf),
                ("name", "CRM"),
                ("type", "oauth2"),
                ("baseUrl", "https://crm.example.com/api"),
                ("authorizeUrl", "https://login.example.com/authorize"),
                ("tokenUrl", "https://login.example.com/token"),
                ("clientId", "timix"),
                ("clientSecret", "s3cret-client"),
                ("scopes", "contacts.read offline_access"),
                // Fields of other types are left out of the request.
                ("apiKey", "ignored"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let connection = page.location.unwrap();
    let page = browser.get(&connection).await;
    assert!(page.body.contains("Press Connect"), "{}", page.body);
    assert!(!page.body.contains("s3cret-client"));
    let page = browser
        .post(&format!("{connection}/connect"), &[("_csrf", &csrf)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let to = page.location.unwrap();
    assert!(
        to.starts_with("https://login.example.com/authorize?"),
        "{to}"
    );
    for part in [
        "response_type=code",
        "client_id=timix",
        "code_challenge_method=S256",
        "state=",
        "redirect_uri=",
        "scope=contacts.read+offline_access",
    ] {
        assert!(to.contains(part), "{part} in {to}");
    }

    // A flow polling through it keeps it from being deleted; the page says why.
    let id = connection.rsplit('/').next().unwrap();
    server
        .as_key(&key)
        .post(
            "/flows",
            json!({"name": "Contacts", "trigger": {"type": "poll", "connectionId": id,
                   "source": {"url": "/contacts"}, "schedule": "*/5 * * * *"},
                   "steps": [{"key": "c", "action": "create_customer", "input": {"name": "{{trigger.name}}"}}]}),
        )
        .await
        .expect(201);
    let page = browser
        .post(&format!("{connection}/delete"), &[("_csrf", &csrf)])
        .await;
    assert_eq!(page.location.as_deref(), Some(connection.as_str()));
    let page = browser.get(&connection).await;
    assert!(page.body.contains("role=\"alert\""), "{}", page.body);
    assert!(
        page.body.contains("Contacts"),
        "used by the flow: {}",
        page.body
    );
    server
        .as_key(&key)
        .get(&format!("/connections/{id}"))
        .await
        .expect(200);
}

#[tokio::test]
async fn guesses_sent_at_once_are_counted_and_a_proxy_names_the_address() {
    let server = Server::start_with(TestDb::new().await, &[("TIMIX_TRUST_PROXY", "1")]).await;
    let (email, _, _) = bootstrap_with_password(&server.db, "Acme");
    let mut browser = Browser::new(&server);
    let csrf = browser.get("/login").await.csrf();
    let cookie = format!("timix_form={}", browser.cookies["timix_form"]);
    let login = |address: &str, email: &str| {
        browser
            .http
            .post(server.url("/login"))
            .header("cookie", cookie.clone())
            .header("x-forwarded-for", format!("203.0.113.9, {address}"))
            .form(&[
                ("_csrf", csrf.as_str()),
                ("email", email),
                ("password", "a wrong guess"),
            ])
            .send()
    };

    // Twelve guesses for one account at once: no more than five are looked at.
    let mut guesses = tokio::task::JoinSet::new();
    for _ in 0..12 {
        guesses.spawn(login("10.0.0.1", &email));
    }
    let statuses: Vec<u16> = guesses
        .join_all()
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    // An attempt refused by the count takes its row back; one counted meanwhile may be refused
    // too: never more than five looked at, whatever the interleaving.
    let looked_at = statuses.iter().filter(|s| **s == 401).count();
    assert!((1..=5).contains(&looked_at), "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        12 - looked_at,
        "{statuses:?}"
    );

    // Thirty failures from one address lock that address (the last X-Forwarded-For entry, the
    // proxy's own), not another.
    for i in 0..30 {
        let status = login("10.0.0.2", &format!("nobody{i}@example.com"))
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401);
    }
    let status = login("10.0.0.2", "someone@example.com")
        .await
        .unwrap()
        .status();
    assert_eq!(status, 429);
    let status = login("10.0.0.3", "someone@example.com")
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
}

#[tokio::test]
async fn an_admin_cannot_take_over_the_owner_by_an_invitation() {
    let server = Server::start().await;
    let (email, key, owner_id) = bootstrap_with_password(&server.db, "Acme");
    let mut owner = Browser::new(&server);
    owner.log_in(&email, PASSWORD).await;
    let csrf = owner.get("/users").await.csrf();
    let page = owner
        .post(
            "/users",
            &[
                ("_csrf", &csrf),
                ("email", "ada@example.com"),
                ("name", "Ada"),
                ("role", "admin"),
            ],
        )
        .await;
    let link = page.invitation();
    let mut ada = Browser::new(&server);
    let csrf = ada.get(&link).await.csrf();
    ada.post(
        &link,
        &[
            ("_csrf", &csrf),
            ("password", "adas password"),
            ("confirm", "adas password"),
        ],
    )
    .await;
    let csrf = ada.get("/users").await.csrf();
    let page = ada
        .post(&format!("/users/{owner_id}/invite"), &[("_csrf", &csrf)])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(!page.body.contains("/invite/"), "{}", page.body);
    // The owner's session is untouched, and a new link for Ada ends her other sessions.
    assert_eq!(owner.get("/").await.status, StatusCode::OK);
    let csrf = owner.get("/users").await.csrf();
    let users = server.as_key(&key).get("/org-users").await.items();
    let ada_id = users
        .iter()
        .find(|u| u["email"] == "ada@example.com")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = owner
        .post(&format!("/users/{ada_id}/invite"), &[("_csrf", &csrf)])
        .await;
    let link = page.invitation();
    let mut again = Browser::new(&server);
    let csrf = again.get(&link).await.csrf();
    let page = again
        .post(
            &link,
            &[
                ("_csrf", &csrf),
                ("password", "a new one!"),
                ("confirm", "a new one!"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        ada.get("/").await.status,
        StatusCode::SEE_OTHER,
        "the old session ended"
    );
}

/// The text of the first element with `class="<class>"` in a page, tags removed.
fn text_of(body: &str, class: &str) -> Option<String> {
    let start = body.find(&format!("class=\"{class}\""))?;
    let rest = &body[start..];
    let end = ["</div>", "</td>"]
        .iter()
        .filter_map(|tag| rest.find(tag))
        .min()?;
    let mut text = String::new();
    let mut in_tag = true;
    for c in rest[..end].chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    Some(text.trim().to_owned())
}

#[tokio::test]
async fn a_failed_run_shows_its_error_on_its_page_and_in_the_list() {
    let server = Server::start().await;
    let (email, key, _) = bootstrap_with_password(&server.db, "Acme");
    let api = server.as_key(&key);
    let flow = api
        .post(
            "/flows",
            json!({"name": "Inbound", "trigger": {"type": "webhook"},
                   "steps": [{"key": "a", "action": "create_customer", "input": {"name": "{{trigger.company}}"}}]}),
        )
        .await
        .expect(201);
    let inbound = flow.body["trigger"]["webhookUrl"].as_str().unwrap();
    // No `company`: the step's input cannot be rendered and the run fails.
    let accepted = server
        .anonymous()
        .post(inbound, json!({"name": "x"}))
        .await
        .expect(202);
    let run_id = accepted.body["runId"].as_str().unwrap().to_owned();
    let run = crate::flows::finished_run(&api, &run_id).await;
    assert_eq!(run["status"], "failed", "{run}");
    let reason = run["error"].as_str().expect("a failed run says why");
    assert!(reason.contains("trigger.company is missing"), "{run}");

    let mut browser = Browser::new(&server);
    browser.log_in(&email, PASSWORD).await;
    let page = browser.get(&format!("/runs/{run_id}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let shown = text_of(&page.body, "alert\" role=\"alert").expect("an error on the run page");
    assert!(shown.contains("trigger.company is missing"), "{shown}");
    let page = browser.get("/runs").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let shown = text_of(&page.body, "error-text").expect("an error column");
    assert!(shown.contains("trigger.company is missing"), "{shown}");
}

#[tokio::test]
async fn a_failed_connection_test_is_shown_as_an_error_with_its_reason() {
    let server =
        Server::start_with(TestDb::new().await, &[("TIMIX_ALLOW_PRIVATE_TARGETS", "1")]).await;
    let (email, key, _) = bootstrap_with_password(&server.db, "Acme");
    let api = server.as_key(&key);
    // This instance with a key it does not know: the test call answers 401.
    let id = api
        .post(
            "/connections",
            json!({"name": "Wrong key", "type": "api_key", "baseUrl": server.url("/api/integration/v1/"),
                   "credentials": {"apiKey": "bbl_not_a_key_of_this_instance_000000000000"}}),
        )
        .await
        .expect(201)
        .id();
    let mut browser = Browser::new(&server);
    browser.log_in(&email, PASSWORD).await;
    let path = format!("/connections/{id}");
    let csrf = browser.get(&path).await.csrf();
    let page = browser
        .post(&format!("{path}/test"), &[("_csrf", &csrf)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = browser.get(page.location.as_deref().unwrap()).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        !page.body.contains("class=\"notice\""),
        "a failure is not a success notice: {}",
        page.body
    );
    let alert = text_of(&page.body, "alert\" role=\"alert").expect("an error notice");
    assert!(
        alert.starts_with("The test failed") && alert.contains("401"),
        "{alert}"
    );

    // A passing test is still a notice.
    let good = api
        .post("/connections", json!({"name": "Here", "type": "self"}))
        .await
        .expect(201)
        .id();
    let path = format!("/connections/{good}");
    let csrf = browser.get(&path).await.csrf();
    let page = browser
        .post(&format!("{path}/test"), &[("_csrf", &csrf)])
        .await;
    let page = browser.get(page.location.as_deref().unwrap()).await;
    let notice = text_of(&page.body, "notice\" role=\"status").expect("a notice");
    assert!(notice.contains("The test passed"), "{notice}");
}

#[tokio::test]
async fn a_schedule_that_stopped_firing_is_flagged_on_the_dashboard_and_its_page() {
    let server = Server::start().await;
    let (email, key, _) = bootstrap_with_password(&server.db, "Acme");
    let api = server.as_key(&key);
    let flow = api
        .post(
            "/flows",
            json!({"name": "Nightly summary", "trigger": {"type": "schedule", "schedule": "0 * * * * *"},
                   "steps": [{"key": "s", "type": "set", "values": {"a": 1}}]}),
        )
        .await
        .expect(201)
        .id();
    let mut browser = Browser::new(&server);
    browser.log_in(&email, PASSWORD).await;
    let calm = browser.get("/").await;
    assert!(
        !calm.body.contains("Triggers that stopped firing"),
        "{}",
        calm.body
    );
    // Ten minutes without a process to fire it.
    for table in [
        "flows SET enabled_at = enabled_at",
        "flow_versions SET created_at = created_at",
    ] {
        let column = if table.starts_with("flows") {
            "id"
        } else {
            "flow_id"
        };
        crate::harness::execute(
            &server.db,
            &format!("UPDATE {table} - 600000 WHERE {column} = '{flow}'"),
        )
        .await;
    }
    let page = browser.get("/").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("Triggers that stopped firing"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Nightly summary"), "{}", page.body);
    let page = browser.get(&format!("/flows/{flow}")).await;
    assert!(
        page.body.contains("The trigger stopped firing"),
        "{}",
        page.body
    );
    assert!(page.body.contains("passed without a run"), "{}", page.body);
}

/// A form's fields as [`Browser::post`] takes them.
fn pairs<'a>(fields: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    fields.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A small connector, as an ops person would paste it.
const NOTES_CONNECTOR: &str = r#"key: notes
label: Notes
version: 1.0.0
description: A notes service.
baseUrl: https://notes.example/api
auth: {type: bearer}
test: {method: GET, path: /me}
actions:
  - key: add_note
    kind: create
    noun: Note
    label: Add a note
    description: Adds a note.
    input: {type: object, required: [text], properties: {text: {type: string, title: Text}}}
    request: {method: POST, path: /notes, body: {text: "{{input.text}}"}}
    output: {select: item}
    sample: {id: n1, text: Hello}
triggers:
  - key: new_note
    kind: poll
    noun: Note
    label: New note
    description: Each new note.
    source: {path: /notes, items: notes, id: id}
    sample: {id: n1}
"#;

#[tokio::test]
async fn a_connector_is_installed_from_its_yaml_connected_to_and_deleted_in_the_ui() {
    let server = Server::start().await;
    let (email, key, _) = bootstrap_with_password(&server.db, "Acme");
    let api = server.as_key(&key);
    let mut browser = Browser::new(&server);
    browser.log_in(&email, PASSWORD).await;

    // The menu has it, and the list holds timix itself at least.
    let page = browser.get("/connectors").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains("<a href=\"/connectors\" aria-current=\"page\">Connectors</a>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("href=\"/connectors/timix\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("Install a connector"), "{}", page.body);
    let csrf = page.csrf();

    // A document with problems: every one listed with its path, the text kept, nothing installed.
    let bad = NOTES_CONNECTOR
        .replace("label: Notes\n", "")
        .replace("version: 1.0.0", "version: one")
        .replace("    sample: {id: n1, text: Hello}\n", "");
    let page = browser
        .post("/connectors", &[("_csrf", &csrf), ("document", &bad)])
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    for path in ["/label", "/version", "/actions/0/sample"] {
        assert!(
            page.body.contains(&format!("<code>{path}</code>")),
            "{path} in {}",
            page.body
        );
    }
    assert!(page.body.contains("aria-invalid=\"true\""), "{}", page.body);
    assert!(page.body.contains("version: one"), "{}", page.body);
    api.get("/connectors/notes").await.expect(404);
    // Not YAML at all: said so, at the field.
    let page = browser
        .post("/connectors", &[("_csrf", &csrf), ("document", "key: [")])
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    assert!(page.body.contains("not valid YAML"), "{}", page.body);

    // The document as written: installed, and off to its page.
    let page = browser
        .post(
            "/connectors",
            &[("_csrf", &csrf), ("document", NOTES_CONNECTOR)],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some("/connectors/notes"));
    let page = browser.get("/connectors/notes").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let notice = text_of(&page.body, "notice\" role=\"status").expect("a notice");
    assert!(notice.contains("Connector installed"), "{notice}");
    for shown in [
        "<h1>Notes",
        "A notes service.",
        "organization",
        "bearer",
        "https://notes.example/api",
        "notes.add_note",
        "Add a note",
        "Adds a note.",
        "new_note",
        "New note",
        "Each new note.",
        "poll",
        "href=\"/connections?connector=notes",
        "New connection to Notes",
        "Upload a new version",
        "key: notes",
    ] {
        assert!(page.body.contains(shown), "{shown} in {}", page.body);
    }
    let page = browser.get("/connectors").await;
    assert!(
        page.body
            .contains("<a href=\"/connectors/notes\">Notes</a>"),
        "{}",
        page.body
    );
    // timix's own page lists its actions.
    let page = browser.get("/connectors/timix").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("create_customer"), "{}", page.body);
    assert!(!page.body.contains("Upload a new version"), "{}", page.body);

    // A new version, through the form: a bad one refused with its problems, then a good one.
    let path = "/connectors/notes/version";
    let page = browser
        .post(path, &[("_csrf", &csrf), ("document", &bad)])
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    assert!(page.body.contains("<code>/label</code>"), "{}", page.body);
    let v2 = NOTES_CONNECTOR.replace("version: 1.0.0", "version: 1.1.0");
    let page = browser
        .post(path, &[("_csrf", &csrf), ("document", &v2)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some("/connectors/notes"));
    let page = browser.get("/connectors/notes").await;
    assert!(page.body.contains("1.1.0 (revision 2)"), "{}", page.body);

    // A connection to it: the connector chosen, only its credential (a token) asked for.
    let page = browser.get("/connections?connector=notes").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("<option value=\"notes\" selected>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("name=\"token\""), "{}", page.body);
    assert!(page.body.contains("Settings (JSON)"), "{}", page.body);
    assert!(!page.body.contains("name=\"apiKey\""), "{}", page.body);
    // The form's fields as a browser sends them, with this token and settings' JSON.
    let form = |token: &str, settings: &str| -> Vec<(&'static str, String)> {
        vec![
            ("_csrf", csrf.clone()),
            ("connector", "notes".to_owned()),
            ("name", "Notes account".to_owned()),
            ("token", token.to_owned()),
            ("settingsJson", settings.to_owned()),
        ]
    };
    // Without its token: the API's reason at the token's field.
    let fields = form("", "");
    let page = browser.post("/connections", &pairs(&fields)).await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"c-token-err\""), "{}", page.body);
    // Settings that are not JSON, or that the connector does not have: at the settings.
    let fields = form("n-secret-token", "{not json");
    let page = browser.post("/connections", &pairs(&fields)).await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    assert!(page.body.contains("not valid JSON"), "{}", page.body);
    let fields = form("n-secret-token", r#"{"folder": "x"}"#);
    let page = browser.post("/connections", &pairs(&fields)).await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<code>settings.folder</code>"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("n-secret-token"), "{}", page.body);
    assert_eq!(api.get("/connections").await.items().len(), 0);
    // Then as it should be.
    let fields = form("n-secret-token", "");
    let page = browser.post("/connections", &pairs(&fields)).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let location = page.location.unwrap();
    let id = location.rsplit('/').next().unwrap().to_owned();
    let connection = api
        .get(&format!("/connections/{id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(connection["connector"], "notes");
    assert_eq!(connection["type"], "bearer");
    assert_eq!(connection["baseUrl"], "https://notes.example/api");
    let page = browser.get(&location).await;
    assert!(
        page.body.contains("href=\"/connectors/notes\""),
        "{}",
        page.body
    );
    assert!(!page.body.contains("n-secret-token"), "{}", page.body);

    // Kept while a flow uses it; the page says why.
    let flow = api
        .post(
            "/flows",
            json!({"name": "Jot it down", "trigger": {"type": "webhook"},
                   "steps": [{"key": "note", "action": "notes.add_note", "connectionId": id,
                              "input": {"text": "{{trigger.text}}"}}]}),
        )
        .await
        .expect(201)
        .id();
    let page = browser
        .post("/connectors/notes/delete", &[("_csrf", &csrf)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some("/connectors/notes"));
    let page = browser.get("/connectors/notes").await;
    let alert = text_of(&page.body, "alert\" role=\"alert").expect("the refusal");
    assert!(alert.contains(&flow), "{alert}");
    api.get("/connectors/notes").await.expect(200);

    // Deleted once the flow is gone.
    api.delete(&format!("/flows/{flow}")).await.expect(204);
    let page = browser
        .post("/connectors/notes/delete", &[("_csrf", &csrf)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some("/connectors"));
    let page = browser.get("/connectors").await;
    let notice = text_of(&page.body, "notice\" role=\"status").expect("a notice");
    assert!(notice.contains("deleted"), "{notice}");
    assert!(
        !page.body.contains("href=\"/connectors/notes\""),
        "{}",
        page.body
    );
    api.get("/connectors/notes").await.expect(404);
}
