//! A connection checked before it is stored: its base URL, settings and credentials by type,
//! and what a write does to the sealed secret.

use serde_json::{Map, Value, json};

use super::{ConnectionInput, ConnectionKind, DEFAULT_KEY_HEADER, TYPES};
use crate::automation::connectors::{Auth, Connector};
use crate::automation::targets::Targets;
use crate::error::{Error, Problems, Result};
use crate::store::checks::{self, SHORT_TEXT};
use crate::store::patch::Patch;

/// Checks a base URL: absolute http(s), no credentials, query or fragment; kept without a
/// trailing slash.
fn check_base_url(p: &mut Problems, value: Option<String>) -> Option<String> {
    let text = value?.trim().trim_end_matches('/').to_owned();
    let fine = url::Url::parse(&text).ok().filter(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host().is_some()
            && u.username().is_empty()
            && u.password().is_none()
            && u.query().is_none()
            && u.fragment().is_none()
    });
    if fine.is_none() {
        p.add(
            "baseUrl",
            "invalid",
            "baseUrl must be an absolute http(s) URL without credentials, query or fragment",
        );
        return None;
    }
    Some(text)
}

fn text_field(
    p: &mut Problems,
    object: &Map<String, Value>,
    at: &str,
    key: &str,
) -> Option<String> {
    match object.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 2_000 => Some(s.clone()),
        Some(_) => {
            p.add(
                &format!("{at}.{key}"),
                "invalid",
                format!("{key} must be a non-empty text of at most 2000 characters"),
            );
            None
        }
    }
}

fn only_keys(p: &mut Problems, object: &Map<String, Value>, at: &str, keys: &[&str], kind: &str) {
    for key in object.keys() {
        if !keys.contains(&key.as_str()) {
            let key = crate::store::json::shorten(key);
            p.add(
                &format!("{at}.{key}"),
                "unknown_field",
                format!("{key} is not a field of {at} for a {kind} connection"),
            );
        }
    }
}

fn object_of<'a>(p: &mut Problems, value: &'a Value, at: &str) -> Option<&'a Map<String, Value>> {
    let object = value.as_object();
    if object.is_none() {
        p.add(at, "invalid", format!("{at} must be an object"));
    }
    object
}

/// The settings of a type, checked and completed with defaults; `extra` names more keys taken
/// as they are (a connector's own settings).
fn check_settings(
    p: &mut Problems,
    kind: ConnectionKind,
    value: &Value,
    extra: &[&str],
) -> Option<Value> {
    let name = kind.as_str();
    let object = object_of(p, value, "settings")?;
    let before = p.len();
    let mut out = Map::new();
    let only_keys =
        |p: &mut Problems, object: &Map<String, Value>, at: &str, keys: &[&str], kind: &str| {
            let all: Vec<&str> = keys.iter().chain(extra).copied().collect();
            only_keys(p, object, at, &all, kind);
        };
    for key in extra {
        if let Some(value) = object.get(*key) {
            out.insert((*key).to_owned(), value.clone());
        }
    }
    let test_path = text_field(p, object, "settings", "testPath");
    if let Some(path) = &test_path
        && !path.starts_with('/')
    {
        p.add(
            "settings.testPath",
            "invalid",
            "testPath is a path below the base URL, starting with /",
        );
    }
    match kind {
        ConnectionKind::This => only_keys(p, object, "settings", &[], name),
        ConnectionKind::Bearer | ConnectionKind::NoAuth => {
            only_keys(p, object, "settings", &["testPath"], name);
        }
        ConnectionKind::ApiKey => {
            only_keys(
                p,
                object,
                "settings",
                &["header", "query", "prefix", "testPath"],
                name,
            );
            // The key goes in a header, or in a query parameter when one is named.
            if let Some(query) = text_field(p, object, "settings", "query") {
                out.insert("query".into(), json!(query));
            } else {
                let header = text_field(p, object, "settings", "header")
                    .unwrap_or_else(|| DEFAULT_KEY_HEADER.into());
                if reqwest_like_header_name(&header).is_none() {
                    p.add(
                        "settings.header",
                        "invalid",
                        "header must be an HTTP header name",
                    );
                }
                out.insert("header".into(), json!(header));
            }
            let prefix = match object.get("prefix") {
                Some(Value::String(s)) if s.len() <= 50 => s.clone(),
                None | Some(Value::Null) => String::new(),
                Some(_) => {
                    p.add(
                        "settings.prefix",
                        "invalid",
                        "prefix must be a short text such as \"Bearer \"",
                    );
                    String::new()
                }
            };
            out.insert("prefix".into(), json!(prefix));
        }
        ConnectionKind::Basic => only_keys(p, object, "settings", &["testPath"], name),
        ConnectionKind::OAuth2 | ConnectionKind::OAuth2ClientCredentials => {
            let grant_keys: &[&str] = if kind == ConnectionKind::OAuth2 {
                &["authorizeUrl", "tokenUrl"]
            } else {
                &["tokenUrl"]
            };
            only_keys(
                p,
                object,
                "settings",
                &[
                    "authorizeUrl",
                    "tokenUrl",
                    "clientId",
                    "scopes",
                    "authorizeParams",
                    "testPath",
                ],
                name,
            );
            for key in grant_keys.iter().copied() {
                let url = text_field(p, object, "settings", key);
                let valid = url
                    .as_deref()
                    .and_then(|u| url::Url::parse(u).ok())
                    .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
                if !valid && !p.has(&format!("settings.{key}")) {
                    p.add(
                        &format!("settings.{key}"),
                        "required",
                        format!("{key} must be the provider's absolute http(s) URL"),
                    );
                }
                out.insert(key.into(), json!(url));
            }
            match text_field(p, object, "settings", "clientId") {
                Some(id) => {
                    out.insert("clientId".into(), json!(id));
                }
                None if !p.has("settings.clientId") => {
                    p.add(
                        "settings.clientId",
                        "required",
                        format!("clientId is required for {name}"),
                    );
                }
                None => {}
            }
            let scopes = match object.get("scopes") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items))
                    if items
                        .iter()
                        .all(|s| s.as_str().is_some_and(|s| !s.contains(' '))) =>
                {
                    items
                        .iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                }
                Some(_) => {
                    p.add(
                        "settings.scopes",
                        "invalid",
                        "scopes must be a list of scope names",
                    );
                    Vec::new()
                }
            };
            out.insert("scopes".into(), json!(scopes));
            // Extra parameters of the authorization request some providers need for a refresh
            // token (`prompt=consent`, `access_type=offline`).
            let params = object.get("authorizeParams").cloned().unwrap_or(json!({}));
            if params
                .as_object()
                .is_some_and(|p| p.len() <= 20 && p.values().all(Value::is_string))
            {
                out.insert("authorizeParams".into(), params);
            } else {
                p.add(
                    "settings.authorizeParams",
                    "invalid",
                    "authorizeParams must map parameter names to texts",
                );
            }
        }
    }
    if let Some(path) = test_path {
        out.insert("testPath".into(), json!(path));
    }
    (p.len() == before).then_some(Value::Object(out))
}

/// An HTTP header name: a token of visible ASCII without separators.
fn reqwest_like_header_name(name: &str) -> Option<&str> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    (!name.is_empty() && name.len() <= 100 && name.chars().all(token)).then_some(name)
}

/// The credentials of a type, checked; `None` when the type takes none.
fn check_credentials(p: &mut Problems, kind: ConnectionKind, value: &Value) -> Option<Value> {
    let name = kind.as_str();
    let object = object_of(p, value, "credentials")?;
    let before = p.len();
    let out = match kind {
        ConnectionKind::This | ConnectionKind::NoAuth => {
            p.add(
                "credentials",
                "invalid",
                format!("a {name} connection takes no credentials"),
            );
            None
        }
        ConnectionKind::Bearer => {
            only_keys(p, object, "credentials", &["token"], name);
            let token = text_field(p, object, "credentials", "token");
            if token.is_none() && !p.has("credentials.token") {
                p.add("credentials.token", "required", "token is required");
            }
            token.map(|t| json!({"token": t}))
        }
        ConnectionKind::ApiKey => {
            only_keys(p, object, "credentials", &["apiKey"], name);
            let key = text_field(p, object, "credentials", "apiKey");
            if key.is_none() && !p.has("credentials.apiKey") {
                p.add("credentials.apiKey", "required", "apiKey is required");
            }
            key.map(|k| json!({"apiKey": k}))
        }
        ConnectionKind::Basic => {
            only_keys(p, object, "credentials", &["username", "password"], name);
            let username = text_field(p, object, "credentials", "username");
            let password = text_field(p, object, "credentials", "password");
            for (name, value) in [("username", &username), ("password", &password)] {
                if value.is_none() && !p.has(&format!("credentials.{name}")) {
                    p.add(
                        &format!("credentials.{name}"),
                        "required",
                        format!("{name} is required"),
                    );
                }
            }
            Some(json!({"username": username, "password": password}))
        }
        ConnectionKind::OAuth2 | ConnectionKind::OAuth2ClientCredentials => {
            only_keys(p, object, "credentials", &["clientSecret"], name);
            let secret = text_field(p, object, "credentials", "clientSecret");
            Some(json!({"clientSecret": secret}))
        }
    };
    (p.len() == before).then_some(out).flatten()
}

/// A connection's stored fields, as checked.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Record {
    pub(super) name: String,
    pub(super) kind: ConnectionKind,
    pub(super) base_url: Option<String>,
    pub(super) settings: Value,
    /// The connector it was made for.
    pub(super) connector: Option<String>,
}

/// What a write does to the sealed secret.
pub(super) enum SecretChange {
    Keep,
    /// New credentials; OAuth2 tokens are dropped with the old client secret.
    Replace(Value),
}

/// The connection's type: the connector's auth, or as given (immutable once made).
fn check_kind(
    p: &mut Problems,
    given: Patch<String>,
    current: Option<&Record>,
    connector: Option<&Connector>,
) -> Option<ConnectionKind> {
    let made = connector.map(|c| c.auth.connection_type());
    match (given, current) {
        (Patch::Absent, Some(c)) => Some(c.kind),
        (Patch::Value(k), Some(c)) if k != c.kind.as_str() => {
            p.add(
                "type",
                "immutable",
                "the type of a connection cannot change; create another",
            );
            None
        }
        (Patch::Value(k), None) if made.is_some_and(|m| m != k) => {
            p.add(
                "type",
                "invalid",
                format!(
                    "the connector signs in with {}; leave type out",
                    made.unwrap_or_default()
                ),
            );
            None
        }
        (Patch::Absent | Patch::Null, None) if made.is_some() => made.and_then(|m| m.parse().ok()),
        (Patch::Value(k), _) => p
            .take(checks::one_of("type", k, &TYPES))
            .and_then(|k| k.parse().ok()),
        (_, _) => {
            p.add(
                "type",
                "required",
                format!("type is required: one of {}", TYPES.join(", ")),
            );
            None
        }
    }
}

/// A connector connection's settings as given, checked against the connector's settings
/// schema, completed with what the connector says of its auth (which the given settings may
/// override: another token URL for a sandbox), its test request, errors and rate limit.
fn connector_settings(p: &mut Problems, connector: &Connector, given: &Value) -> Value {
    let mut merged = Map::new();
    match &connector.auth {
        Auth::ApiKey {
            header,
            query,
            prefix,
        } => {
            if let Some(query) = query {
                merged.insert("query".into(), json!(query));
            } else {
                merged.insert("header".into(), json!(header));
            }
            merged.insert("prefix".into(), json!(prefix.clone().unwrap_or_default()));
        }
        Auth::Oauth2 {
            authorize_url,
            token_url,
            scopes,
            authorize_params,
        } => {
            merged.insert("authorizeUrl".into(), json!(authorize_url));
            merged.insert("tokenUrl".into(), json!(token_url));
            merged.insert("scopes".into(), json!(scopes));
            merged.insert("authorizeParams".into(), json!(authorize_params));
        }
        Auth::Oauth2ClientCredentials { token_url, scopes } => {
            merged.insert("tokenUrl".into(), json!(token_url));
            merged.insert("scopes".into(), json!(scopes));
        }
        Auth::None | Auth::Bearer | Auth::Basic => {}
    }
    let own: Vec<String> = connector
        .settings
        .as_ref()
        .and_then(|s| s["properties"].as_object())
        .map(|props| props.keys().cloned().collect())
        .unwrap_or_default();
    let overridable = ["authorizeUrl", "tokenUrl", "clientId"];
    let mut mine = Map::new();
    if let Some(object) = given.as_object() {
        for (key, value) in object {
            if own.contains(key) {
                mine.insert(key.clone(), value.clone());
            } else if overridable.contains(&key.as_str())
                && connector.auth.connection_type().starts_with("oauth2")
            {
                merged.insert(key.clone(), value.clone());
            } else {
                let key = crate::store::json::shorten(key);
                p.add(
                    &format!("settings.{key}"),
                    "unknown_field",
                    format!("{key} is not a setting of the {} connector", connector.key),
                );
            }
        }
    } else if !given.is_null() {
        p.add("settings", "invalid", "settings must be an object");
    }
    if let Some(schema) = &connector.settings
        && let Ok(validator) = jsonschema::validator_for(schema)
    {
        for error in validator.iter_errors(&Value::Object(mine.clone())) {
            let field = match error.kind() {
                jsonschema::error::ValidationErrorKind::Required { property } => {
                    format!("settings.{}", property.as_str().unwrap_or_default())
                }
                _ => format!(
                    "settings{}",
                    error.instance_path().to_string().replace('/', ".")
                ),
            };
            p.add(&field, "invalid", error.to_string());
        }
    }
    // The test's path may name settings too (`/companyinfo/{{settings.realmId}}`).
    let test_path = crate::automation::template::render(
        &connector.test.path,
        &json!({"settings": Value::Object(mine.clone())}),
    )
    .map_or_else(
        |_| connector.test.path.clone(),
        |v| v.as_str().unwrap_or_default().to_owned(),
    );
    merged.extend(mine);
    merged.insert("testPath".into(), json!(test_path));
    merged.insert("testMethod".into(), json!(connector.test.method));
    if let Some(errors) = &connector.errors {
        merged.insert("errors".into(), json!(errors));
    }
    if let Some(limit) = &connector.rate_limit {
        merged.insert("rateLimit".into(), json!(limit));
    }
    Value::Object(merged)
}

/// Keys a connector connection keeps in its settings besides those checked by type.
const CONNECTOR_KEYS: [&str; 3] = ["testMethod", "errors", "rateLimit"];

pub(super) fn apply(
    input: ConnectionInput,
    current: Option<&Record>,
    targets: Targets,
    connector: Option<&Connector>,
) -> Result<(Record, SecretChange)> {
    let mut p = Problems::default();
    // Where requests go, as given now: an address that may not be called is refused here
    // rather than failing every request later.
    if let Patch::Value(url) = &input.base_url {
        p.take(targets.check("baseUrl", url));
    }
    if let Patch::Value(settings) = &input.settings
        && let Some(url) = settings["tokenUrl"].as_str()
    {
        p.take(targets.check("settings.tokenUrl", url));
    }
    let name = checks::patch_required(&mut p, "name", input.name, current.map(|c| c.name.clone()));
    let name = p.take(checks::required_text("name", name, SHORT_TEXT));
    let kind = check_kind(&mut p, input.kind, current, connector);
    let Some(kind) = kind else {
        p.into_result()?;
        return Err(Error::Internal("connection type missing".into()));
    };
    // A connector connection: its settings as given, completed from the connector.
    let given_settings = match (&input.settings, connector) {
        (Patch::Value(s), Some(c)) => Patch::Value(connector_settings(&mut p, c, s)),
        (Patch::Absent, Some(c)) if current.is_none() => {
            Patch::Value(connector_settings(&mut p, c, &Value::Null))
        }
        (Patch::Null, Some(c)) => Patch::Value(connector_settings(&mut p, c, &Value::Null)),
        (_, _) => input.settings,
    };
    let extra: Vec<String> = match (connector, &given_settings) {
        (Some(c), Patch::Value(settings)) => settings
            .as_object()
            .map(|o| {
                o.keys()
                    .filter(|k| {
                        CONNECTOR_KEYS.contains(&k.as_str())
                            || c.settings
                                .as_ref()
                                .is_some_and(|s| s["properties"].get(k.as_str()).is_some())
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let base_url = match (input.base_url, connector) {
        (Patch::Absent, Some(c))
            if current.is_none() || matches!(given_settings, Patch::Value(_)) =>
        {
            // The connector's base URL, with the connection's settings in it.
            let settings = match &given_settings {
                Patch::Value(s) => s.clone(),
                _ => current.map(|c| c.settings.clone()).unwrap_or_default(),
            };
            if p.has("settings") {
                None
            } else {
                match crate::automation::template::render(
                    &c.base_url,
                    &json!({"settings": settings}),
                ) {
                    Ok(url) => {
                        let url = url.as_str().map(str::to_owned);
                        if let Some(url) = &url {
                            p.take(targets.check("baseUrl", url));
                        }
                        check_base_url(&mut p, url)
                    }
                    Err(e) => {
                        p.add(
                            "settings",
                            "invalid",
                            format!("the base URL cannot be made from the settings: {}", e.0),
                        );
                        None
                    }
                }
            }
        }
        (Patch::Absent, _) => current.and_then(|c| c.base_url.clone()),
        (Patch::Null, Some(_)) => {
            p.add(
                "baseUrl",
                "invalid",
                "a connector connection always has a base URL",
            );
            None
        }
        (Patch::Null, None) => None,
        (Patch::Value(url), _) => check_base_url(&mut p, Some(url)),
    };
    if kind == ConnectionKind::This && base_url.is_some() {
        p.add(
            "baseUrl",
            "invalid",
            "a self connection is this instance: it takes no baseUrl",
        );
    } else if kind != ConnectionKind::This
        && base_url.is_none()
        && !p.has("baseUrl")
        && !p.has("settings")
    {
        p.add(
            "baseUrl",
            "required",
            format!("baseUrl is required for {kind}"),
        );
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let settings = match given_settings {
        Patch::Absent => match current {
            Some(c) => Some(c.settings.clone()),
            None => check_settings(&mut p, kind, &json!({}), &extra),
        },
        Patch::Null => check_settings(&mut p, kind, &json!({}), &extra),
        Patch::Value(s) => check_settings(&mut p, kind, &s, &extra),
    };
    let needs_credentials = matches!(
        kind,
        ConnectionKind::ApiKey | ConnectionKind::Basic | ConnectionKind::Bearer
    );
    let secret = match input.credentials {
        Patch::Absent | Patch::Null if current.is_none() && needs_credentials => {
            p.add(
                "credentials",
                "required",
                format!("credentials are required for {kind}"),
            );
            SecretChange::Keep
        }
        Patch::Absent if current.is_none() && kind.is_oauth() => {
            SecretChange::Replace(json!({"clientSecret": null}))
        }
        // Credentials were given for a destination: a new one needs them given again, or
        // changing the base URL would send the stored secret (and a test its answer) elsewhere.
        Patch::Absent | Patch::Null
            if current.is_some_and(|c| c.base_url != base_url) && needs_credentials =>
        {
            p.add(
                "credentials",
                "required",
                "give the credentials again with a new baseUrl: they were given for the old one",
            );
            SecretChange::Keep
        }
        Patch::Absent | Patch::Null => SecretChange::Keep,
        Patch::Value(v) => match check_credentials(&mut p, kind, &v) {
            Some(v) => SecretChange::Replace(v),
            None => SecretChange::Keep,
        },
    };
    p.into_result()?;
    let missing = || Error::Internal("connection fields missing after validation".into());
    Ok((
        Record {
            name: name.ok_or_else(missing)?,
            kind,
            base_url,
            settings: settings.ok_or_else(missing)?,
            connector: connector
                .map(|c| c.key.clone())
                .or_else(|| current.and_then(|c| c.connector.clone())),
        },
        secret,
    ))
}
