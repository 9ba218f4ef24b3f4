//! The core API's routes, one module per URL segment (`/time-entries` → `time_entries`), each
//! ending with its `router()`.

// First: its `crud_resource!` serves the modules after it.
#[macro_use]
mod crud;

pub mod api_keys;
pub mod connections;
pub mod connectors;
pub mod customers;
pub mod events;
pub mod financial_reports;
pub mod flow_versions;
pub mod flows;
pub mod health;
pub mod holiday_profiles;
pub mod hooks;
pub mod invoices;
pub mod manifests;
pub mod me;
pub mod oauth2;
pub mod org_users;
pub mod organization;
pub mod projects;
pub mod runs;
pub mod subtasks;
pub mod tasks;
pub mod time_entries;
pub mod timesheets;
pub mod usage;
pub mod webhooks;

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// Where the API lives.
pub const BASE: &str = "/api/integration/v1";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(health::router())
        .merge(usage::router())
        .merge(me::router())
        .merge(organization::router())
        .merge(org_users::router())
        .merge(api_keys::router())
        .merge(customers::router())
        .merge(projects::router())
        .merge(tasks::router())
        .merge(subtasks::router())
        .merge(time_entries::router())
        .merge(holiday_profiles::router())
        .merge(timesheets::router())
        .merge(invoices::router())
        .merge(financial_reports::router())
        .merge(manifests::router())
        .merge(flows::router())
        .merge(flow_versions::router())
        .merge(runs::router())
        .merge(hooks::router())
        .merge(connections::router())
        .merge(connectors::router())
        .merge(oauth2::router())
        .merge(events::router())
        .merge(webhooks::router())
}
