//! The outbound HTTP client every call to another system goes through. It resolves host names
//! itself and refuses loopback, private, link-local (cloud metadata included) and other
//! non-public addresses unless the operator allows them, follows no redirects, and only speaks
//! http and https.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Once};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why a target was refused before any byte was sent.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("only http and https URLs can be called")]
    Scheme,
    #[error("the URL is not valid: {0}")]
    Url(String),
    #[error("{0} is a private, loopback or link-local address; outbound calls may not reach it")]
    Private(IpAddr),
}

/// Whether an address is on the public internet (the rules are the engine's, shared with the
/// check made when a target is saved).
pub use timix_engine::automation::targets::is_public;

/// Resolves names and drops the addresses that may not be called.
struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| is_public(a.ip()))
                .collect();
            if allowed.is_empty() {
                let ip = found
                    .first()
                    .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
                return Err(
                    Box::new(TargetError::Private(ip)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The client, with the guard on or off.
#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    allow_private: bool,
}

/// Installs the TLS crypto provider (ring) once; every reqwest client needs it first.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Outbound {
    pub fn new(allow_private: bool, timeout: Duration) -> Self {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(64)
            .user_agent(concat!("timix/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        Self {
            client: builder.build().expect("the TLS provider is installed"),
            allow_private,
        }
    }

    /// Checks a URL before calling it: scheme, and an address literal against the guard
    /// (names are checked when they are resolved).
    pub fn check(&self, url: &str) -> Result<reqwest::Url, TargetError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| TargetError::Url(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(TargetError::Scheme);
        }
        if !self.allow_private
            && let Some(ip) = timix_engine::automation::targets::private_literal(&parsed)
        {
            return Err(TargetError::Private(ip));
        }
        Ok(parsed)
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

/// Finds a [`TargetError`] in an error's chain (a refused address surfaces inside reqwest's).
pub fn refused_target(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(t) = e.downcast_ref::<TargetError>() {
            return Some(t.to_string());
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_private_targets_and_other_schemes_are_refused() {
        let guarded = Outbound::new(false, Duration::from_secs(1));
        assert!(matches!(
            guarded.check("http://127.0.0.1:8080/x"),
            Err(TargetError::Private(_))
        ));
        assert!(matches!(
            guarded.check("http://[::1]/x"),
            Err(TargetError::Private(_))
        ));
        for url in [
            "http://localhost/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://[::127.0.0.1]/x",
            "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",
            "http://[64:ff9b:1::a00:1]/x",
            "http://[2002:a9fe:a9fe::1]/x",
            "http://[2001:0:4136:e378::80ff:fffe]/x",
            "http://[fd00::1]/x",
            "http://[fe80::1]/x",
        ] {
            assert!(
                matches!(guarded.check(url), Err(TargetError::Private(_))),
                "{url}"
            );
        }
        assert!(matches!(
            guarded.check("ftp://example.com/x"),
            Err(TargetError::Scheme)
        ));
        assert!(guarded.check("https://example.com/hook").is_ok());
        let open = Outbound::new(true, Duration::from_secs(1));
        assert!(open.check("http://127.0.0.1:8080/x").is_ok());
    }
}
