//! `/financial-reports/*`: JSON, and each as CSV under `/export/csv`.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use timix_engine::billing::reports::{
    self, BudgetReport, CustomerBillingReport, ReportQuery, RevenueReport, Table, UnbilledQuery,
    UnbilledReport,
};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{Auth, QueryPairs};

/// Filters every report takes.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ReportQueryDoc {
    /// First work date (or issue date for customer billing), `YYYY-MM-DD`, inclusive.
    #[param(format = Date)]
    from: Option<String>,
    /// Last date, inclusive.
    #[param(format = Date)]
    to: Option<String>,
    #[param(rename = "customerId")]
    customer_id: Option<String>,
    /// Not for customer billing.
    #[param(rename = "projectId")]
    project_id: Option<String>,
}

/// What the revenue report's rows are.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum RevenueGrouping {
    Customer,
    Project,
    User,
    Month,
}

/// A report's table as an RFC 4180 CSV download, written row by row.
fn csv_download(table: Table, name: &str) -> ApiResult<Response> {
    let encode = |cells: &[&str]| -> Result<Bytes, ApiError> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer
            .write_record(cells)
            .map_err(|_| ApiError::internal())?;
        writer
            .into_inner()
            .map(Bytes::from)
            .map_err(|_| ApiError::internal())
    };
    let header_row = encode(table.header)?;
    let rows = table.rows.into_iter().map(move |row| {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        // A row that cannot be encoded ends the stream with an error rather than a bad file.
        encode(&cells).map_err(|_| std::io::Error::other("csv row"))
    });
    let stream = futures_util::stream::iter(
        std::iter::once(Ok::<_, std::io::Error>(header_row)).chain(rows),
    );
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.csv\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// Billable value of the logged time of the period, grouped by `customer` (default),
/// `project`, `user` or `month`, with totals per currency.
#[utoipa::path(get, path = "/financial-reports/revenue", operation_id = "getRevenueReport", tag = "financial-reports",
    params(ReportQueryDoc, ("groupBy" = inline(Option<RevenueGrouping>), Query, description = "Rows per customer (default), project, user or month")),
    responses((status = 200, body = RevenueReport), (status = "4XX", body = ErrorEnvelope)))]
pub async fn revenue(
    State(state): State<AppState>,
    Auth(actor): Auth,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Json<RevenueReport>> {
    let q = ReportQuery::parse(&query, true)?;
    Ok(Json(reports::revenue(&state.db, &actor, &q).await?))
}

#[utoipa::path(get, path = "/financial-reports/revenue/export/csv", operation_id = "exportRevenueReport", tag = "financial-reports",
    params(ReportQueryDoc, ("groupBy" = inline(Option<RevenueGrouping>), Query)),
    responses((status = 200, content_type = "text/csv", body = String), (status = "4XX", body = ErrorEnvelope)))]
pub async fn revenue_csv(
    State(state): State<AppState>,
    Auth(actor): Auth,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let q = ReportQuery::parse(&query, true)?;
    csv_download(
        reports::revenue(&state.db, &actor, &q).await?.table(),
        "revenue",
    )
}

/// Projects with a budget: hours and amount spent against it, percent used, and `ok`,
/// `warning` (from 80%) or `over` (from 100%).
#[utoipa::path(get, path = "/financial-reports/budget-health", operation_id = "getBudgetHealthReport", tag = "financial-reports",
    params(ReportQueryDoc),
    responses((status = 200, body = BudgetReport), (status = "4XX", body = ErrorEnvelope)))]
pub async fn budget_health(
    State(state): State<AppState>,
    Auth(actor): Auth,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Json<BudgetReport>> {
    let q = ReportQuery::parse(&query, false)?;
    Ok(Json(reports::budget_health(&state.db, &actor, &q).await?))
}

#[utoipa::path(get, path = "/financial-reports/budget-health/export/csv", operation_id = "exportBudgetHealthReport", tag = "financial-reports",
    params(ReportQueryDoc),
    responses((status = 200, content_type = "text/csv", body = String), (status = "4XX", body = ErrorEnvelope)))]
pub async fn budget_health_csv(
    State(state): State<AppState>,
    Auth(actor): Auth,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let q = ReportQuery::parse(&query, false)?;
    csv_download(
        reports::budget_health(&state.db, &actor, &q).await?.table(),
        "budget-health",
    )
}

/// Billable time not yet invoiced, per customer and project: approved time only (what
/// `POST /invoices` would bill), or with `includeUnapproved=true` all logged time.
#[utoipa::path(get, path = "/financial-reports/unbilled-time", operation_id = "getUnbilledTimeReport", tag = "financial-reports",
    params(ReportQueryDoc, ("includeUnapproved" = Option<bool>, Query, description = "Also count time not yet approved (open, submitted or rejected timesheets); default false: approved time only")),
    responses((status = 200, body = UnbilledReport), (status = "4XX", body = ErrorEnvelope)))]
pub async fn unbilled_time(
    State(state): State<AppState>,
    Auth(actor): Auth,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Json<UnbilledReport>> {
    let q = UnbilledQuery::parse(&query)?;
    Ok(Json(reports::unbilled_time(&state.db, &actor, &q).await?))
}

#[utoipa::path(get, path = "/financial-reports/unbilled-time/export/csv", operation_id = "exportUnbilledTimeReport", tag = "financial-reports",
    params(ReportQueryDoc, ("includeUnapproved" = Option<bool>, Query, description = "Also count time not yet approved (open, submitted or rejected timesheets); default false: approved time only")),
    responses((status = 200, content_type = "text/csv", body = String), (status = "4XX", body = ErrorEnvelope)))]
pub async fn unbilled_time_csv(
    State(state): State<AppState>,
    Auth(actor): Auth,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let q = UnbilledQuery::parse(&query)?;
    csv_download(
        reports::unbilled_time(&state.db, &actor, &q).await?.table(),
        "unbilled-time",
    )
}

/// Per customer: invoiced, paid, outstanding and overdue, over invoices issued in the period.
#[utoipa::path(get, path = "/financial-reports/customer-billing", operation_id = "getCustomerBillingReport", tag = "financial-reports",
    params(ReportQueryDoc),
    responses((status = 200, body = CustomerBillingReport), (status = "4XX", body = ErrorEnvelope)))]
pub async fn customer_billing(
    State(state): State<AppState>,
    Auth(actor): Auth,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Json<CustomerBillingReport>> {
    let q = ReportQuery::parse(&query, false)?;
    Ok(Json(
        reports::customer_billing(&state.db, &actor, &q).await?,
    ))
}

#[utoipa::path(get, path = "/financial-reports/customer-billing/export/csv", operation_id = "exportCustomerBillingReport", tag = "financial-reports",
    params(ReportQueryDoc),
    responses((status = 200, content_type = "text/csv", body = String), (status = "4XX", body = ErrorEnvelope)))]
pub async fn customer_billing_csv(
    State(state): State<AppState>,
    Auth(actor): Auth,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let q = ReportQuery::parse(&query, false)?;
    csv_download(
        reports::customer_billing(&state.db, &actor, &q)
            .await?
            .table(),
        "customer-billing",
    )
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(revenue))
        .routes(routes!(revenue_csv))
        .routes(routes!(budget_health))
        .routes(routes!(budget_health_csv))
        .routes(routes!(unbilled_time))
        .routes(routes!(unbilled_time_csv))
        .routes(routes!(customer_billing))
        .routes(routes!(customer_billing_csv))
}
