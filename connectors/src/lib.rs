//! Every outbound HTTP call: the client (with its SSRF guard) and sending a request through it,
//! connections to other systems (credentials, OAuth2), webhook sending (sign, deliver, sweep),
//! and the Zapier, Make and Workato app generators. Builds on `timix-engine` only.

pub mod apps;
pub mod connection;
pub mod outbound;
pub mod request;
pub mod webhooks;
