//! Entity tags: a strong tag from the exact JSON bytes of a representation, so the tag of a
//! `GET` and the one checked by `If-Match` on a `PATCH` agree.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The tag of a response body: `"<22 characters of its SHA-256>"`.
pub fn of_bytes(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", &URL_SAFE_NO_PAD.encode(digest)[..22])
}

/// The tag of a resource as the API serialises it.
pub fn of<T: Serialize>(value: &T) -> String {
    of_bytes(&serde_json::to_vec(value).unwrap_or_default())
}

/// Whether an `If-None-Match`/`If-Match` header value names `tag` (`*`, lists and weak tags
/// allowed).
pub fn matches(header: &str, tag: &str) -> bool {
    let bare = tag.trim_start_matches("W/");
    header
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == bare)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_match_lists_wildcards_and_weak_forms() {
        let tag = of_bytes(b"{}");
        assert!(matches(&tag, &tag));
        assert!(matches(&format!("\"x\", W/{tag}"), &tag));
        assert!(matches("*", &tag));
        assert!(!matches("\"other\"", &tag));
        assert_eq!(of(&serde_json::json!({})), tag);
    }
}
