//! Connections to other systems (API key, basic, OAuth2), the outbound HTTP client, webhook
//! delivery, and the Zapier, Make and Workato app generators. Builds on `timix-engine` only.

pub use timix_engine as engine;
