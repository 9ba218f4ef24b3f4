//! `/customers`: customers.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use timix_engine::billing::customers::{Customer, CustomerInput, Customers};
use timix_engine::store::list::ListParams;
use timix_engine::store::resource::{self, Resource};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Auth, JsonBody, QueryPairs};
use crate::openapi::{CustomerList, ListQueryDoc};
use crate::response::{Created, ListResponse, upserted};
use crate::routes::BASE;

crud_resource!(
    customer_routes,
    resource = Customers,
    item = Customer,
    input = CustomerInput,
    list = CustomerList,
    names = ("Customer", "Customers"),
    tag = "customers",
    collection = "/customers",
    one = "/customers/{id}",
    by_external_id = "/customers/by-external-id/{externalId}",
    filters = ["name", "email", "externalId"],
    more_params = [("isArchived" = Option<bool>, Query, description = "Archived (true) or active (false) only")]
);

pub fn router() -> OpenApiRouter<AppState> {
    customer_routes::router()
}
