//! The OpenAPI 3.1 document: generated from the handlers' annotations, plus the shared pieces
//! (security schemes, list envelopes, list parameters) declared here, then completed with the
//! statuses every operation shares (`responses`), the bodies of updates and upserts derived from
//! the inputs (`bodies`) and the links between operations (`links`).

mod bodies;
mod links;
mod responses;

use serde::Serialize;
use timix_engine::access::api_keys::ApiKey;
use timix_engine::access::org_users::OrgUser;
use timix_engine::automation::connections::Connection;
use timix_engine::automation::flows::Flow;
use timix_engine::automation::flows::samples::Sample;
use timix_engine::automation::flows::versions::FlowVersion;
use timix_engine::automation::runs::Run;
use timix_engine::automation::webhooks::{Delivery, Webhook};
use timix_engine::billing::customers::Customer;
use timix_engine::billing::holiday_profiles::HolidayProfile;
use timix_engine::billing::invoices::Invoice;
use timix_engine::billing::projects::Project;
use timix_engine::billing::subtasks::Subtask;
use timix_engine::billing::tasks::Task;
use timix_engine::billing::time_entries::TimeEntry;
use timix_engine::billing::timesheets::Timesheet;
use utoipa::openapi::security::{
    ApiKey as ApiKeyScheme, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "timix integration API",
        description = "The core API of timix: customers, projects, tasks and subtasks, time entries and \
timers, timesheets, invoices and financial reports, people and keys, and the ordered event log. JSON in camelCase; errors in one envelope; lists paginated with \
`X-Total-Count`. Authenticate with `X-Api-Key: bbl_…` or `Authorization: Bearer bbl_…`.",
        license(name = "Apache-2.0")
    ),
    modifiers(&Security),
    security(("apiKey" = []), ("bearer" = [])),
    tags(
        (name = "system", description = "Health and identity"),
        (name = "organization", description = "The key's organization"),
        (name = "org-users", description = "People, roles, capacity and rates"),
        (name = "api-keys", description = "Keys: shown once, stored hashed"),
        (name = "customers", description = "Top of the work hierarchy"),
        (name = "projects", description = "Work for a customer"),
        (name = "tasks", description = "Work items of a project"),
        (name = "subtasks", description = "Leaves that time is logged against"),
        (name = "time-entries", description = "Time logged on subtasks, by hand or by timer"),
        (name = "timesheets", description = "A user's week: submit, approve, reject"),
        (name = "holiday-profiles", description = "Working days and holidays that set capacity"),
        (name = "invoices", description = "Drafts from time or lines; issue, pay, void; PDF"),
        (name = "financial-reports", description = "Revenue, budgets, unbilled time, customer billing; CSV exports"),
        (name = "manifests", description = "The actions and triggers flows are made of"),
        (name = "flows", description = "When this happens, do these steps: triggers, steps, tests, inbound webhooks"),
        (name = "connections", description = "How flows reach this instance, another one, or any HTTP API: API keys, basic, OAuth2"),
        (name = "runs", description = "Each execution of a flow, step by step; replay"),
        (name = "events", description = "The ordered change log"),
        (name = "webhooks", description = "Signed deliveries of events to your endpoints"),
        (name = "hooks", description = "REST hooks for Zapier, Make and Workato"),
    )
)]
pub struct ApiDoc;

/// Completes the document the routes generated: shared error statuses, descriptions, links.
pub fn finish(document: &utoipa::openapi::OpenApi) -> serde_json::Value {
    let mut value = serde_json::to_value(document).expect("the document serializes");
    if let Some(paths) = value
        .get_mut("paths")
        .and_then(serde_json::Value::as_object_mut)
    {
        responses::complete(paths);
        links::add(paths);
    }
    bodies::derive(&mut value);
    value
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKeyScheme::Header(ApiKeyValue::with_description(
                "X-Api-Key",
                "An API key, bbl_…",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("bbl_…")
                    .build(),
            ),
        );
    }
}

/// Parameters every list accepts.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListQueryDoc {
    /// Page number from 1 (default 1).
    #[param(minimum = 1)]
    page: Option<i64>,
    /// Items per page, 1–200 (default 50).
    #[param(rename = "pageSize", minimum = 1, maximum = 200)]
    page_size: Option<i64>,
    /// Opaque keyset cursor: pass `nextCursor` of the previous page (empty to start).
    cursor: Option<String>,
    /// Comma list of fields, `-` for descending; default `-createdAt`. `id` breaks ties.
    sort: Option<String>,
    /// Only records updated at or after this instant, oldest first; see `X-Sync-Watermark`.
    #[param(rename = "updatedSince", format = DateTime)]
    updated_since: Option<String>,
    /// Only records created at or after this instant.
    #[param(rename = "createdSince", format = DateTime)]
    created_since: Option<String>,
}

/// The text search of lists that have one.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct SearchQueryDoc {
    /// Contains this text, case-insensitive: the name (an invoice's number, a time entry's
    /// notes).
    q: Option<String>,
}

/// Deleted records in a sync, for lists that remember them.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct TombstonesQueryDoc {
    /// With `updatedSince`: also return deleted records as tombstones.
    #[param(rename = "includeDeleted")]
    include_deleted: Option<bool>,
}

macro_rules! list_schema {
    ($name:ident, $item:ident) => {
        /// One page of a list.
        #[derive(Serialize, ToSchema)]
        #[serde(rename_all = "camelCase")]
        #[allow(dead_code)]
        pub struct $name {
            items: Vec<$item>,
            total_count: i64,
            /// Null when paging by cursor.
            page: Option<i64>,
            page_size: i64,
            has_more: bool,
            /// Pass as `cursor` for the next page; null on the last page.
            next_cursor: Option<String>,
        }
    };
}

list_schema!(CustomerList, Customer);
list_schema!(ProjectList, Project);
list_schema!(TaskList, Task);
list_schema!(SubtaskList, Subtask);
list_schema!(OrgUserList, OrgUser);
list_schema!(ApiKeyList, ApiKey);
list_schema!(WebhookList, Webhook);
list_schema!(DeliveryList, Delivery);
list_schema!(TimeEntryList, TimeEntry);
list_schema!(TimesheetList, Timesheet);
list_schema!(HolidayProfileList, HolidayProfile);
list_schema!(InvoiceList, Invoice);
list_schema!(FlowList, Flow);
list_schema!(RunList, Run);
list_schema!(FlowVersionList, FlowVersion);
list_schema!(SampleList, Sample);
list_schema!(ConnectionList, Connection);
