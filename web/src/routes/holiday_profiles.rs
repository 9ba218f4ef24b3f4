//! `/holiday-profiles`: holiday profiles.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use timix_engine::billing::holiday_profiles::{
    HolidayProfile, HolidayProfileInput, HolidayProfiles,
};
use timix_engine::store::list::ListParams;
use timix_engine::store::resource::{self, Resource};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Auth, JsonBody, QueryPairs};
use crate::openapi::{HolidayProfileList, ListQueryDoc};
use crate::response::{Created, ListResponse, upserted};
use crate::routes::BASE;

crud_resource!(
    holiday_profile_routes,
    resource = HolidayProfiles,
    item = HolidayProfile,
    input = HolidayProfileInput,
    list = HolidayProfileList,
    names = ("HolidayProfile", "HolidayProfiles"),
    tag = "holiday-profiles",
    collection = "/holiday-profiles",
    one = "/holiday-profiles/{id}",
    by_external_id = "/holiday-profiles/by-external-id/{externalId}",
    filters = ["name", "countryCode", "externalId"]
);

pub fn router() -> OpenApiRouter<AppState> {
    holiday_profile_routes::router()
}
