//! Connections to other systems, the outbound HTTP client (with its SSRF guard), webhook
//! signing and delivery, using connections (credentials, OAuth2), and the Zapier, Make and Workato app generators. Builds on
//! `timix-engine` only.

pub mod apps;
pub mod connection;
pub mod delivery;
pub mod outbound;
pub mod signing;
