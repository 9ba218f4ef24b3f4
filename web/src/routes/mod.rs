//! The core API's routes, one module per resource, each ending with its `router()`.

// First: its `crud_resource!` serves the modules after it.
#[macro_use]
pub mod hierarchy;

pub mod account;
pub mod connections;
pub mod events;
pub mod flows;
pub mod invoicing;
pub mod manifests;
pub mod people;
pub mod reports;
pub mod time;
pub mod webhooks;

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// Where the API lives.
pub const BASE: &str = "/api/integration/v1";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(account::router())
        .merge(people::router())
        .merge(hierarchy::router())
        .merge(time::router())
        .merge(invoicing::router())
        .merge(reports::router())
        .merge(manifests::router())
        .merge(flows::router())
        .merge(connections::router())
        .merge(events::router())
        .merge(webhooks::router())
}
