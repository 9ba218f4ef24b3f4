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

/// The rooms' rule, held by a test: `billing` and `automation` never import each other, and
/// `store` and `access` stand below both (DESIGN.md, Layout).
#[cfg(test)]
mod layering {
    use std::path::Path;

    /// Every `crate::<room>` path named in the `.rs` files under `src/<room>/`.
    fn imports_of(room: &str) -> Vec<(String, String)> {
        let mut found = Vec::new();
        let mut folders = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(room)];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).expect("a room of the engine") {
                let path = entry.expect("a readable entry").path();
                if path.is_dir() {
                    folders.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).expect("a readable source file");
                for other in ["store", "access", "billing", "automation"] {
                    if text.contains(&format!("crate::{other}")) {
                        found.push((path.display().to_string(), other.to_owned()));
                    }
                }
            }
        }
        found
    }

    fn refuse(room: &str, forbidden: &[&str]) {
        let offending: Vec<_> = imports_of(room)
            .into_iter()
            .filter(|(_, other)| forbidden.contains(&other.as_str()))
            .collect();
        assert!(
            offending.is_empty(),
            "{room} may not import {forbidden:?}: {offending:?}"
        );
    }

    #[test]
    fn billing_and_automation_do_not_import_each_other() {
        refuse("billing", &["automation"]);
        refuse("automation", &["billing"]);
    }

    #[test]
    fn store_stands_below_billing_and_automation() {
        refuse("store", &["billing", "automation"]);
        refuse("access", &["automation"]);
    }
}
