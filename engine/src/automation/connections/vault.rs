//! The vault: credentials and inbound secrets sealed with AES-256-GCM under one key, the
//! key file, and the check that every process holds the same key.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngExt;
use serde_json::{Value, json};

use super::KEY_FILE;
use crate::error::{Error, Result};
use crate::store::db::{Db, Sql, row};

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
