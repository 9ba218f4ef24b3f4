//! Who is calling and what they may do: authentication and roles, API keys, organizations and
//! their users, web sessions, OAuth for MCP clients, idempotency records, rate limits and usage
//! counts.

pub mod api_keys;
pub mod auth;
pub mod bootstrap;
pub mod idempotency;
pub mod mcp_oauth;
pub mod org_users;
pub mod organizations;
pub mod rate_limits;
pub mod usage;
pub mod web_sessions;
