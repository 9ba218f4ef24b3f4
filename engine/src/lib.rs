//! The timix engine: everything with a database under it, and no HTTP. The web layer extracts
//! and authorizes a request, calls a service function of this crate, and maps its [`Error`] to a
//! response; the workers call it the same way.
//!
//! - [`store`]: the pool over SQLite and Postgres, the SQL builder, rows, lists, the event log,
//!   the job queue and leases.
//! - [`access`]: who is calling and what they may do: auth, roles, keys, organizations, users,
//!   web sessions, idempotency, rate limits, usage.
//! - [`billing`]: customers → projects → tasks → subtasks, time, timesheets, budgets, invoices,
//!   reports, holiday profiles.
//! - [`automation`]: manifests, templates, flows, runs, polls, connections, webhooks.
//!
//! `billing` and `automation` never import each other; both stand on `store` and `access`.

pub mod access;
pub mod automation;
pub mod billing;
pub mod error;
pub mod store;

pub use error::{Error, FieldError, Result};
pub use store::db::{Backend, Db};
