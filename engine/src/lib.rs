//! The timix engine: domain model, storage, auth and roles, and the event log. No HTTP here:
//! the web layer extracts and authorizes a request, calls a service function of this crate, and
//! maps its [`Error`] to a response.

pub mod api_keys;
pub mod auth;
pub mod bootstrap;
pub mod budgets;
pub mod caps;
pub mod connections;
pub mod customers;
pub mod db;
pub mod error;
pub mod etag;
pub mod events;
pub mod fields;
pub mod flows;
#[cfg(test)]
mod fuzz;
pub mod holiday_profiles;
pub mod idempotency;
pub mod ids;
pub mod invoice_pdf;
pub mod invoices;
pub mod jobs;
pub mod json;
pub mod limits;
pub mod list;
pub mod manifest;
pub mod money;
pub mod ops;
pub mod org_users;
pub mod organizations;
pub mod patch;
pub mod polls;
pub mod projects;
pub mod reports;
pub mod resource;
pub mod run_admission;
pub mod runs;
pub mod saving;
pub mod subtasks;
pub mod targets;
pub mod tasks;
pub mod template;
pub mod time;
pub mod time_entries;
pub mod timesheets;
pub mod usage;
pub mod web_sessions;
pub mod webhooks;

pub use db::{Backend, Db};
pub use error::{Error, FieldError, Result};
