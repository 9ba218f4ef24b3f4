//! Connections: how a flow reaches a system. `self` is this instance (in-process, as the flow's
//! owner); `api_key` another instance of this API or any API taking a key in a header; `basic`
//! a user name and password; `oauth2` tokens from an authorization-code grant. Credentials are
//! write-only: sealed with AES-256-GCM (the connection's id as associated data, so a sealed
//! value moved to another row does not open) and never shown.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::access::auth::{Actor, Permission};
use crate::automation::saving::Saving;
use crate::automation::targets::Targets;
use crate::error::{Error, Problems, Result};
use crate::store::checks::{self, SHORT_TEXT};
use crate::store::clock::{format_ms, format_opt, now_ms};
use crate::store::db::{Db, Runner, Sql, Tx, row};
use crate::store::events;
use crate::store::ids;
use crate::store::list::{self, FilterKind, ListParams, ListSpec, Page};
use crate::store::patch::Patch;
use crate::store::rows;

pub const NOUN: &str = "connection";
pub const TYPES: [&str; 4] = ["self", "api_key", "basic", "oauth2"];
/// The header an `api_key` connection sends its key in unless told otherwise.
pub const DEFAULT_KEY_HEADER: &str = "X-Api-Key";
/// What `POST /connections/{id}/test` reads unless the settings name another path.
pub const DEFAULT_TEST_PATH: &str = "/me";
/// The file under the data directory holding the key credentials are sealed with.
pub const KEY_FILE: &str = "secret.key";

pub const LIST: ListSpec = ListSpec {
    table: "connections",
    sorts: &[("name", "name")],
    filters: &[
        ("name", "name", FilterKind::Text),
        ("type", "type", FilterKind::Text),
        ("status", "status", FilterKind::Text),
    ],
    search: Some("name"),
    soft_delete: true,
};

/// Seals and opens credentials.
#[derive(Clone)]
pub struct Vault {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(..)")
    }
}

impl Vault {
    /// A key given as 32 bytes in base64 (`TIMIX_SECRET_KEY`).
    pub fn from_base64(text: &str) -> Result<Self> {
        let bytes = B64
            .decode(text.trim())
            .map_err(|e| Error::Internal(format!("the secret key is not base64: {e}")))?;
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| {
            Error::Internal(format!(
                "the secret key must be 32 bytes, not {}",
                bytes.len()
            ))
        })?;
        Ok(Self { cipher })
    }

    /// The key kept in `dir/secret.key`, made (readable by the owner only) on first start.
    pub fn load_or_create(dir: &Path) -> Result<Self> {
        let path = dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_base64(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::Internal(format!("cannot create {}: {e}", dir.display()))
                })?;
                let key: [u8; 32] = rand::rng().random();
                let text = B64.encode(key);
                match write_private(&path, &text) {
                    Ok(()) => Self::from_base64(&text),
                    // Another process made it first: use theirs (once it is written).
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        let theirs = std::fs::read_to_string(&path).map_err(|e| {
                            Error::Internal(format!("cannot read {}: {e}", path.display()))
                        })?;
                        Self::from_base64(&theirs)
                    }
                    Err(e) => Err(Error::Internal(format!(
                        "cannot write {}: {e}",
                        path.display()
                    ))),
                }
            }
            Err(e) => Err(Error::Internal(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// `base64(nonce ‖ ciphertext)` of the JSON of `value`, bound to `aad`.
    pub fn seal(&self, aad: &str, value: &Value) -> Result<String> {
        let nonce: [u8; 12] = rand::rng().random();
        let plain = value.to_string();
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| Error::Internal("cannot seal a secret".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(B64.encode(out))
    }

    pub fn open(&self, aad: &str, sealed: &str) -> Result<Value> {
        let bytes = B64
            .decode(sealed)
            .map_err(|_| Error::Internal("a sealed secret is not base64".into()))?;
        if bytes.len() < 12 {
            return Err(Error::Internal("a sealed secret is too short".into()));
        }
        let (nonce, body) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().expect("twelve bytes");
        let plain = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: body,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| {
                Error::Internal(
                    "a secret does not open with this key (was TIMIX_SECRET_KEY changed?)".into(),
                )
            })?;
        serde_json::from_slice(&plain)
            .map_err(|e| Error::Internal(format!("an opened secret is not JSON: {e}")))
    }

    /// Seals one secret text (a webhook's signing secret) bound to `aad` (its row's id), marked
    /// with [`SEALED_PREFIX`] so a sealed value is told from a plaintext one.
    pub fn seal_text(&self, aad: &str, secret: &str) -> Result<String> {
        Ok(format!(
            "{SEALED_PREFIX}{}",
            self.seal(aad, &json!(secret))?
        ))
    }

    /// Opens what [`Vault::seal_text`] sealed. A value without the mark is refused: secrets are
    /// never read in the clear.
    pub fn open_text(&self, aad: &str, sealed: &str) -> Result<String> {
        let body = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or_else(|| Error::Internal("a secret is stored unsealed".into()))?;
        match self.open(aad, body)? {
            Value::String(secret) => Ok(secret),
            _ => Err(Error::Internal("a sealed secret is not a text".into())),
        }
    }

    /// Whether a stored value is a secret this vault sealed for `aad`: marked, and it opens. A
    /// plaintext secret that happens to start with the mark does not open, so it is not taken
    /// for a sealed one.
    pub fn is_sealed_text(&self, aad: &str, stored: &str) -> bool {
        self.open_text(aad, stored).is_ok()
    }
}

/// What a sealed secret text starts with (then `base64(nonce ‖ ciphertext)`).
pub const SEALED_PREFIX: &str = "sealed:v1:";

/// Checks that this key is the one the database's credentials were sealed with (the first
/// process to start records it).
pub async fn check_vault(db: &Db, vault: &Vault) -> Result<()> {
    const CHECK: &str = "vault_check";
    let stored = Sql::new("SELECT sealed FROM vault_check WHERE id = 1")
        .fetch_optional(db)
        .await?;
    let sealed = match stored {
        Some(r) => row::get_str(&r, "sealed")?,
        None => {
            let sealed = vault.seal(CHECK, &json!(CHECK))?;
            db.write_count(
                &Sql::new(
                    "INSERT INTO vault_check (id, sealed) VALUES (1, ?) ON CONFLICT DO NOTHING",
                )
                .arg(sealed),
            )
            .await?;
            let r = Sql::new("SELECT sealed FROM vault_check WHERE id = 1")
                .fetch_one(db)
                .await?;
            row::get_str(&r, "sealed")?
        }
    };
    match vault.open(CHECK, &sealed) {
        Ok(_) => Ok(()),
        Err(_) => Err(Error::Internal(
            "this secret key is not the one the database's credentials were sealed with: give every \
             process of this database the same TIMIX_SECRET_KEY (or the same data dir's secret.key)"
                .into(),
        )),
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// `con_…`
    pub id: String,
    #[schema(example = "Acme's timix")]
    pub name: String,
    /// `self`, `api_key`, `basic` or `oauth2`.
    #[serde(rename = "type")]
    #[schema(example = "api_key")]
    pub kind: String,
    /// Where its requests go (`https://timix.acme.example/api/integration/v1`); none for `self`.
    pub base_url: Option<String>,
    /// What is not secret: `header`, `prefix`, `testPath`; OAuth2 `authorizeUrl`, `tokenUrl`,
    /// `clientId`, `scopes`, `authorizeParams`.
    #[schema(value_type = Object)]
    pub settings: Value,
    /// Whether credentials are stored (they are never shown).
    pub has_credentials: bool,
    /// OAuth2: whether tokens were obtained.
    pub is_authorized: bool,
    /// `ok`, `error` or `untested`.
    pub status: String,
    pub last_error: Option<String>,
    pub last_tested_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The body of `POST /connections` and `PATCH /connections/{id}`. `credentials` by type:
/// `api_key` `{apiKey}`, `basic` `{username, password}`, `oauth2` `{clientSecret}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionInput {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub name: Patch<String>,
    #[serde(default, rename = "type")]
    #[schema(value_type = Option<String>, example = "api_key")]
    pub kind: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub base_url: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub settings: Patch<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>, example = json!({"apiKey": "bbl_…"}))]
    pub credentials: Patch<Value>,
}

/// A connection as the runner uses it, credentials opened.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub id: String,
    pub org_id: String,
    pub kind: String,
    pub base_url: Option<String>,
    pub settings: Value,
    pub secret: Value,
}

impl Resolved {
    /// Where the connection's test request goes, below its base URL.
    pub fn test_path(&self) -> String {
        self.settings["testPath"]
            .as_str()
            .unwrap_or(DEFAULT_TEST_PATH)
            .to_owned()
    }
}

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

/// The settings of a type, checked and completed with defaults.
fn check_settings(p: &mut Problems, kind: &str, value: &Value) -> Option<Value> {
    let object = object_of(p, value, "settings")?;
    let before = p.len();
    let mut out = Map::new();
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
        "self" => only_keys(p, object, "settings", &[], kind),
        "api_key" => {
            only_keys(
                p,
                object,
                "settings",
                &["header", "prefix", "testPath"],
                kind,
            );
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
        "basic" => only_keys(p, object, "settings", &["testPath"], kind),
        _ => {
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
                kind,
            );
            for key in ["authorizeUrl", "tokenUrl"] {
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
                        "clientId is required for oauth2",
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
fn check_credentials(p: &mut Problems, kind: &str, value: &Value) -> Option<Value> {
    let object = object_of(p, value, "credentials")?;
    let before = p.len();
    let out = match kind {
        "self" => {
            p.add(
                "credentials",
                "invalid",
                "a self connection takes no credentials",
            );
            None
        }
        "api_key" => {
            only_keys(p, object, "credentials", &["apiKey"], kind);
            let key = text_field(p, object, "credentials", "apiKey");
            if key.is_none() && !p.has("credentials.apiKey") {
                p.add("credentials.apiKey", "required", "apiKey is required");
            }
            key.map(|k| json!({"apiKey": k}))
        }
        "basic" => {
            only_keys(p, object, "credentials", &["username", "password"], kind);
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
        _ => {
            only_keys(p, object, "credentials", &["clientSecret"], kind);
            let secret = text_field(p, object, "credentials", "clientSecret");
            Some(json!({"clientSecret": secret}))
        }
    };
    (p.len() == before).then_some(out).flatten()
}

/// A connection's stored fields, as checked.
#[derive(Debug, Clone, PartialEq)]
struct Record {
    name: String,
    kind: String,
    base_url: Option<String>,
    settings: Value,
}

/// What a write does to the sealed secret.
enum SecretChange {
    Keep,
    /// New credentials; OAuth2 tokens are dropped with the old client secret.
    Replace(Value),
}

fn apply(
    input: ConnectionInput,
    current: Option<&Record>,
    targets: Targets,
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
    let kind = match (input.kind, current) {
        (Patch::Absent, Some(c)) => Some(c.kind.clone()),
        (Patch::Value(k), Some(c)) if k != c.kind => {
            p.add(
                "type",
                "immutable",
                "the type of a connection cannot change; create another",
            );
            None
        }
        (Patch::Value(k), _) => p.take(checks::one_of("type", k, &TYPES)),
        (_, _) => {
            p.add(
                "type",
                "required",
                format!("type is required: one of {}", TYPES.join(", ")),
            );
            None
        }
    };
    let Some(kind) = kind else {
        p.into_result()?;
        return Err(Error::Internal("connection type missing".into()));
    };
    let base_url = match input.base_url {
        Patch::Absent => current.and_then(|c| c.base_url.clone()),
        Patch::Null => None,
        Patch::Value(url) => check_base_url(&mut p, Some(url)),
    };
    if kind == "self" && base_url.is_some() {
        p.add(
            "baseUrl",
            "invalid",
            "a self connection is this instance: it takes no baseUrl",
        );
    } else if kind != "self" && base_url.is_none() && !p.has("baseUrl") {
        p.add(
            "baseUrl",
            "required",
            format!("baseUrl is required for {kind}"),
        );
    }
    let settings = match input.settings {
        Patch::Absent => match current {
            Some(c) => Some(c.settings.clone()),
            None => check_settings(&mut p, &kind, &json!({})),
        },
        Patch::Null => check_settings(&mut p, &kind, &json!({})),
        Patch::Value(s) => check_settings(&mut p, &kind, &s),
    };
    let secret = match input.credentials {
        Patch::Absent | Patch::Null
            if current.is_none() && matches!(kind.as_str(), "api_key" | "basic") =>
        {
            p.add(
                "credentials",
                "required",
                format!("credentials are required for {kind}"),
            );
            SecretChange::Keep
        }
        Patch::Absent if current.is_none() && kind == "oauth2" => {
            SecretChange::Replace(json!({"clientSecret": null}))
        }
        // Credentials were given for a destination: a new one needs them given again, or
        // changing the base URL would send the stored secret (and a test its answer) elsewhere.
        Patch::Absent | Patch::Null
            if current.is_some_and(|c| c.base_url != base_url)
                && matches!(kind.as_str(), "api_key" | "basic") =>
        {
            p.add(
                "credentials",
                "required",
                "give the credentials again with a new baseUrl: they were given for the old one",
            );
            SecretChange::Keep
        }
        Patch::Absent | Patch::Null => SecretChange::Keep,
        Patch::Value(v) => match check_credentials(&mut p, &kind, &v) {
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
        },
        secret,
    ))
}

fn settings_of(r: &row::Row) -> Result<Value> {
    serde_json::from_str(&row::get_str(r, "settings")?)
        .map_err(|e| Error::Internal(format!("stored connection settings: {e}")))
}

pub(crate) fn from_row(vault: Option<&Vault>, r: &row::Row) -> Result<Connection> {
    let id = row::get_str(r, "id")?;
    let sealed = row::get_opt_str(r, "secret")?;
    let kind = row::get_str(r, "type")?;
    let is_authorized = match (&sealed, vault, kind.as_str()) {
        (Some(s), Some(v), "oauth2") => v
            .open(&id, s)
            .map(|secret| secret["accessToken"].is_string())
            .unwrap_or(false),
        _ => false,
    };
    Ok(Connection {
        name: row::get_str(r, "name")?,
        base_url: row::get_opt_str(r, "base_url")?,
        settings: settings_of(r)?,
        has_credentials: sealed.is_some() && kind != "oauth2" || is_authorized,
        is_authorized,
        kind,
        status: row::get_str(r, "status")?,
        last_error: row::get_opt_str(r, "last_error")?,
        last_tested_at: format_opt(row::get_opt_i64(r, "last_tested_at")?),
        created_at: format_ms(row::get_i64(r, "created_at")?),
        updated_at: format_ms(row::get_i64(r, "updated_at")?),
        id,
    })
}

fn record_of(r: &row::Row) -> Result<Record> {
    Ok(Record {
        name: row::get_str(r, "name")?,
        kind: row::get_str(r, "type")?,
        base_url: row::get_opt_str(r, "base_url")?,
        settings: settings_of(r)?,
    })
}

pub async fn list(
    db: &Db,
    vault: &Vault,
    actor: &Actor,
    params: &ListParams,
) -> Result<Page<Connection>> {
    actor.require(Permission::ReadFlows)?;
    list::list(db, actor.org_id(), &LIST, params, |r| {
        from_row(Some(vault), r)
    })
    .await
}

pub async fn get(db: &Db, vault: &Vault, actor: &Actor, id: &str) -> Result<Connection> {
    actor.require(Permission::ReadFlows)?;
    let row = rows::live_row(db, LIST.table, actor.org_id(), id)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    from_row(Some(vault), &row)
}

async fn reload(tx: &mut Tx, vault: &Vault, id: &str) -> Result<Connection> {
    let row = Sql::new("SELECT * FROM connections WHERE id = ?")
        .arg(id)
        .fetch_one(&mut *tx)
        .await?;
    from_row(Some(vault), &row)
}

pub async fn create(
    db: &Db,
    saving: Saving<'_>,
    actor: &Actor,
    input: ConnectionInput,
) -> Result<Connection> {
    actor.require(Permission::ManageFlows)?;
    let vault = saving.vault;
    let (rec, secret) = apply(input, None, saving.targets)?;
    let id = ids::new_id(ids::CONNECTION);
    let sealed = match secret {
        SecretChange::Replace(value) => Some(vault.seal(&id, &value)?),
        SecretChange::Keep => None,
    };
    let now = now_ms();
    // A self connection needs no test: it is this instance.
    let status = if rec.kind == "self" { "ok" } else { "untested" };
    let mut tx = events::begin_write(db).await?;
    Sql::new(
        "INSERT INTO connections (id, org_id, name, type, base_url, settings, secret, status, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .arg(&id)
    .arg(actor.org_id())
    .arg(&rec.name)
    .arg(&rec.kind)
    .arg(rec.base_url.clone())
    .arg(rec.settings.to_string())
    .arg(sealed)
    .arg(status)
    .arg(now)
    .arg(now)
    .execute(&mut tx)
    .await?;
    let created = reload(&mut tx, vault, &id).await?;
    events::created(&mut tx, actor.org_id(), NOUN, &id, &created).await?;
    crate::access::idempotency::record(&mut tx, actor, 201, &created).await?;
    tx.commit().await?;
    Ok(created)
}

pub async fn update(
    db: &Db,
    saving: Saving<'_>,
    actor: &Actor,
    id: &str,
    input: ConnectionInput,
) -> Result<Connection> {
    let vault = saving.vault;
    actor.require(Permission::ManageFlows)?;
    let mut tx = events::begin_write(db).await?;
    let row = rows::live_row(&mut tx, LIST.table, actor.org_id(), id)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    let before = from_row(Some(vault), &row)?;
    actor.check_if_match(&before)?;
    let current = record_of(&row)?;
    let (rec, secret) = apply(input, Some(&current), saving.targets)?;
    let endpoints_changed = rec.base_url != current.base_url || rec.settings != current.settings;
    let mut sealed = row::get_opt_str(&row, "secret")?;
    let mut secret_changed = false;
    if let SecretChange::Replace(value) = secret {
        sealed = Some(vault.seal(id, &value)?);
        secret_changed = true;
    } else if endpoints_changed && rec.kind == "oauth2" {
        // Tokens belong to the provider, client and API they came from; the client secret to
        // the provider and client.
        let mut kept = match &sealed {
            Some(s) => vault.open(id, s)?,
            None => json!({}),
        };
        let same_client = ["authorizeUrl", "tokenUrl", "clientId"]
            .iter()
            .all(|k| rec.settings[k] == current.settings[k]);
        if let Some(object) = kept.as_object_mut() {
            object.retain(|k, _| same_client && k == "clientSecret");
        }
        sealed = Some(vault.seal(id, &kept)?);
        secret_changed = true;
    }
    if rec == current && !secret_changed {
        return Ok(before);
    }
    let retest = (endpoints_changed || secret_changed) && rec.kind != "self";
    Sql::new(
        "UPDATE connections SET name = ?, base_url = ?, settings = ?, secret = ?, status = ?, last_error = ?, \
         updated_at = ? WHERE id = ?",
    )
    .arg(&rec.name)
    .arg(rec.base_url.clone())
    .arg(rec.settings.to_string())
    .arg(sealed)
    .arg(if retest { "untested" } else { before.status.as_str() })
    .arg(if retest { None } else { before.last_error.clone() })
    .arg(now_ms())
    .arg(id)
    .execute(&mut tx)
    .await?;
    let after = reload(&mut tx, vault, id).await?;
    events::updated(&mut tx, actor.org_id(), NOUN, id, &before, &after).await?;
    crate::access::idempotency::record(&mut tx, actor, 200, &after).await?;
    tx.commit().await?;
    Ok(after)
}

/// The live flows of an organization that name a connection (in their trigger or a step).
async fn flows_using(runner: impl Runner, org_id: &str, id: &str) -> Result<Vec<String>> {
    let needle = format!("%\"{id}\"%");
    Sql::new(
        "SELECT id FROM flows WHERE org_id = ? AND deleted_at IS NULL AND (trigger LIKE ? OR steps LIKE ?) ORDER BY id",
    )
    .arg(org_id)
    .arg(needle.as_str())
    .arg(needle.as_str())
    .fetch_all(runner)
    .await?
    .iter()
    .map(|r| row::get_str(r, "id"))
    .collect()
}

pub async fn delete(db: &Db, vault: &Vault, actor: &Actor, id: &str) -> Result<()> {
    actor.require(Permission::ManageFlows)?;
    let mut tx = events::begin_write(db).await?;
    let row = rows::live_row(&mut tx, LIST.table, actor.org_id(), id)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    let last = from_row(Some(vault), &row)?;
    actor.check_if_match(&last)?;
    let users = flows_using(&mut tx, actor.org_id(), id).await?;
    if !users.is_empty() {
        return Err(Error::Conflict {
            code: "in_use",
            message: format!(
                "the connection is used by {} flow(s) ({}); change or delete them first",
                users.len(),
                users.join(", ")
            ),
        });
    }
    let now = now_ms();
    // The credentials go with it: a tombstone keeps no secret.
    Sql::new("UPDATE connections SET secret = NULL, oauth_state = NULL, deleted_at = ?, updated_at = ? WHERE id = ?")
        .arg(now)
        .arg(now)
        .arg(id)
        .execute(&mut tx)
        .await?;
    events::deleted(&mut tx, actor.org_id(), NOUN, id, &last).await?;
    tx.commit().await
}

fn resolved_of(vault: &Vault, r: &row::Row) -> Result<Resolved> {
    let id = row::get_str(r, "id")?;
    let secret = match row::get_opt_str(r, "secret")? {
        Some(sealed) => vault.open(&id, &sealed)?,
        None => json!({}),
    };
    Ok(Resolved {
        org_id: row::get_str(r, "org_id")?,
        kind: row::get_str(r, "type")?,
        base_url: row::get_opt_str(r, "base_url")?,
        settings: settings_of(r)?,
        secret,
        id,
    })
}

/// A live connection of an organization with its credentials opened (for the runner).
pub async fn resolve(db: &Db, vault: &Vault, org_id: &str, id: &str) -> Result<Option<Resolved>> {
    rows::live_row(db, LIST.table, org_id, id)
        .await?
        .as_ref()
        .map(|r| resolved_of(vault, r))
        .transpose()
}

/// The live connections of an organization, id → type (flows check the ids they name).
pub async fn kinds(
    runner: impl Runner,
    org_id: &str,
) -> Result<crate::automation::flows::ConnectionKinds> {
    Sql::new("SELECT id, type FROM connections WHERE org_id = ? AND deleted_at IS NULL")
        .arg(org_id)
        .fetch_all(runner)
        .await?
        .iter()
        .map(|r| Ok((row::get_str(r, "id")?, row::get_str(r, "type")?)))
        .collect()
}

/// Records what a test, a refresh or a request found: `ok`, or `error` with the reason.
pub async fn set_status(db: &Db, id: &str, error: Option<&str>, tested: bool) -> Result<()> {
    let status = if error.is_some() { "error" } else { "ok" };
    let mut sql = Sql::new("UPDATE connections SET status = ?, last_error = ?");
    sql.bind(status).bind(error);
    if tested {
        sql.push(", last_tested_at = ?").bind(now_ms());
    }
    // Unchanged outcomes are not written again: a busy connection costs no extra writes.
    sql.push(" WHERE id = ? AND deleted_at IS NULL").bind(id);
    if !tested {
        sql.push(" AND (status <> ? OR COALESCE(last_error, '') <> COALESCE(?, ''))")
            .bind(status)
            .bind(error);
    }
    db.write_count(&sql).await.map(drop)
}

/// Replaces a connection's opened secret (new OAuth2 tokens).
pub async fn save_secret(db: &Db, vault: &Vault, id: &str, secret: &Value) -> Result<()> {
    let sealed = vault.seal(id, secret)?;
    db.write_count(
        &Sql::new(
            "UPDATE connections SET secret = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL",
        )
        .arg(sealed)
        .arg(now_ms())
        .arg(id),
    )
    .await
    .map(drop)
}

/// Starts an OAuth2 authorization: remembers its `state` and PKCE verifier.
pub async fn begin_authorization(
    db: &Db,
    vault: &Vault,
    actor: &Actor,
    id: &str,
    state: &str,
    verifier: &str,
) -> Result<Resolved> {
    actor.require(Permission::ManageFlows)?;
    let mut tx = db.begin().await?;
    let row = rows::live_row(&mut tx, LIST.table, actor.org_id(), id)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    let mut resolved = resolved_of(vault, &row)?;
    if resolved.kind != "oauth2" {
        return Err(Error::conflict("only oauth2 connections are authorized"));
    }
    if let Some(object) = resolved.secret.as_object_mut() {
        object.insert("verifier".into(), json!(verifier));
        object.insert("verifierAt".into(), json!(now_ms()));
    }
    Sql::new("UPDATE connections SET secret = ?, oauth_state = ? WHERE id = ?")
        .arg(vault.seal(id, &resolved.secret)?)
        .arg(state)
        .arg(id)
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(resolved)
}

/// The connection an OAuth2 `state` belongs to; the state is used up.
pub async fn take_authorization(db: &Db, vault: &Vault, state: &str) -> Result<Option<Resolved>> {
    let mut tx = db.begin().await?;
    let Some(row) =
        Sql::new("SELECT * FROM connections WHERE oauth_state = ? AND deleted_at IS NULL")
            .arg(state)
            .fetch_optional(&mut tx)
            .await?
    else {
        return Ok(None);
    };
    let resolved = resolved_of(vault, &row)?;
    Sql::new("UPDATE connections SET oauth_state = NULL WHERE id = ?")
        .arg(&resolved.id)
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(Some(resolved))
}

/// A random token for OAuth2 `state`.
pub fn random_state() -> String {
    let bytes: [u8; 24] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_id() {
        let vault = Vault::from_base64(&B64.encode([7u8; 32])).unwrap();
        let secret = json!({"apiKey": "bbl_secret"});
        let sealed = vault.seal("con_1", &secret).unwrap();
        assert!(!sealed.contains("bbl_secret"));
        assert_eq!(vault.open("con_1", &sealed).unwrap(), secret);
        assert!(vault.open("con_2", &sealed).is_err(), "bound to its row");
        let other = Vault::from_base64(&B64.encode([8u8; 32])).unwrap();
        assert!(other.open("con_1", &sealed).is_err(), "bound to its key");
        assert_ne!(
            sealed,
            vault.seal("con_1", &secret).unwrap(),
            "a fresh nonce each time"
        );
        assert!(Vault::from_base64(&B64.encode([1u8; 16])).is_err());
    }

    #[test]
    fn sealed_texts_are_told_from_plaintext() {
        let vault = Vault::from_base64(&B64.encode([7u8; 32])).unwrap();
        let sealed = vault.seal_text("whk_1", "whsec_abc").unwrap();
        assert!(sealed.starts_with(SEALED_PREFIX));
        assert!(!sealed.contains("whsec_abc"));
        assert_eq!(vault.open_text("whk_1", &sealed).unwrap(), "whsec_abc");
        assert!(vault.is_sealed_text("whk_1", &sealed));
        assert!(!vault.is_sealed_text("whk_2", &sealed), "bound to its row");
        // Plaintext is never opened as if sealed, even when it looks like a sealed value.
        assert!(vault.open_text("whk_1", "whsec_abc").is_err());
        assert!(!vault.is_sealed_text("whk_1", "whsec_abc"));
        assert!(!vault.is_sealed_text("whk_1", "sealed:v1:but-plaintext-after-all"));
    }
}
