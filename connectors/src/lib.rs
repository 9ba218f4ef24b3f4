//! Connections to other systems, the outbound HTTP client (with its SSRF guard), webhook
//! signing and delivery, and (later) the Zapier, Make and Workato app generators. Builds on
//! `timix-engine` only.

pub mod delivery;
pub mod outbound;
pub mod signing;
