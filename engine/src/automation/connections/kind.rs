//! What a connection is (its `type`) and how its last test went (its `status`), as stored and
//! shown by the API (the strings are part of the contract).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// How a connection reaches its system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConnectionKind {
    /// This instance, in-process, as the flow's owner.
    #[serde(rename = "self")]
    This,
    /// A key in a header.
    #[serde(rename = "api_key")]
    ApiKey,
    /// A user name and password.
    #[serde(rename = "basic")]
    Basic,
    /// Tokens from an authorization-code grant.
    #[serde(rename = "oauth2")]
    OAuth2,
    /// A token in `Authorization: Bearer`.
    #[serde(rename = "bearer")]
    Bearer,
    /// Tokens from a client-credentials grant (no person involved).
    #[serde(rename = "oauth2_client_credentials")]
    OAuth2ClientCredentials,
    /// No credentials: a public API.
    #[serde(rename = "none")]
    NoAuth,
}

impl ConnectionKind {
    /// Every kind, in the order the API lists them.
    pub const ALL: [Self; 7] = [
        Self::This,
        Self::ApiKey,
        Self::Basic,
        Self::OAuth2,
        Self::Bearer,
        Self::OAuth2ClientCredentials,
        Self::NoAuth,
    ];

    /// As stored and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::This => "self",
            Self::ApiKey => "api_key",
            Self::Basic => "basic",
            Self::OAuth2 => "oauth2",
            Self::Bearer => "bearer",
            Self::OAuth2ClientCredentials => "oauth2_client_credentials",
            Self::NoAuth => "none",
        }
    }

    /// Whether its tokens come from an OAuth2 token endpoint.
    pub const fn is_oauth(self) -> bool {
        matches!(self, Self::OAuth2 | Self::OAuth2ClientCredentials)
    }
}

impl fmt::Display for ConnectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConnectionKind {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| Error::Internal(format!("unknown connection type {text:?}")))
    }
}

/// How a connection's last use or test went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Ok,
    Error,
    /// Never tested since its endpoints or credentials changed.
    Untested,
}

impl ConnectionStatus {
    /// Every status.
    pub const ALL: [Self; 3] = [Self::Ok, Self::Error, Self::Untested];

    /// As stored and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Untested => "untested",
        }
    }
}

impl fmt::Display for ConnectionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConnectionStatus {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| Error::Internal(format!("unknown connection status {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_statuses_read_back_as_stored_and_serialized() {
        for k in ConnectionKind::ALL {
            assert_eq!(k.as_str().parse::<ConnectionKind>().unwrap(), k);
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for s in ConnectionStatus::ALL {
            assert_eq!(s.as_str().parse::<ConnectionStatus>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!("ftp".parse::<ConnectionKind>().is_err());
    }
}
