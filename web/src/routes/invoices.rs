//! Invoices: drafts, issue, payments, void, and the PDF.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use timix_engine::billing::invoice_pdf;
use timix_engine::billing::invoices::{
    self, Invoice, InvoiceInput, Invoices, IssueInput, PaymentInput,
};
use timix_engine::store::list::ListParams;
use timix_engine::store::resource::{self, Resource};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Auth, JsonBody, QueryPairs};
use crate::openapi::{InvoiceList, ListQueryDoc};
use crate::response::{Created, ListResponse, upserted};
use crate::routes::BASE;

crud_resource!(
    invoice_routes,
    resource = Invoices,
    item = Invoice,
    input = InvoiceInput,
    list = InvoiceList,
    names = ("Invoice", "Invoices"),
    tag = "invoices",
    collection = "/invoices",
    one = "/invoices/{id}",
    by_external_id = "/invoices/by-external-id/{externalId}",
    filters = [
        "customerId",
        "status",
        "number",
        "currency",
        "externalId"
    ],
    more_params = [
        ("from" = Option<String>, Query, format = Date, description = "Issued on or after this date"),
        ("to" = Option<String>, Query, format = Date, description = "Issued on or before this date"),
        ("overdue" = Option<bool>, Query, description = "true: issued, not fully paid, and due before today in the organization's time zone; false: all others")
    ]
);

/// Issues a draft: it gets the organization's next number (gap-free), its dates, and its
/// entries stay locked. An invoice with nothing to pay is paid at once.
#[utoipa::path(post, path = "/invoices/{id}/issue", operation_id = "issueInvoice", tag = "invoices", params(("id" = String, Path)),
    request_body = IssueInput,
    responses((status = 200, body = Invoice), (status = 409, body = ErrorEnvelope, description = "`invoice_not_draft`"),
              (status = "4XX", body = ErrorEnvelope)))]
pub async fn issue(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<IssueInput>,
) -> ApiResult<Json<Invoice>> {
    Ok(Json(invoices::issue(&state.db, &actor, &id, input).await?))
}

/// Records a payment of an issued invoice; when nothing is due any more it is `paid`.
#[utoipa::path(post, path = "/invoices/{id}/payments", operation_id = "recordInvoicePayment", tag = "invoices", params(("id" = String, Path)),
    request_body = PaymentInput,
    responses((status = 200, body = Invoice), (status = 422, body = ErrorEnvelope, description = "More than is due"),
              (status = "4XX", body = ErrorEnvelope)))]
pub async fn pay(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<PaymentInput>,
) -> ApiResult<Json<Invoice>> {
    Ok(Json(invoices::pay(&state.db, &actor, &id, input).await?))
}

/// Voids an issued invoice without payments: the number stays used, the time is free again.
#[utoipa::path(post, path = "/invoices/{id}/void", operation_id = "voidInvoice", tag = "invoices", params(("id" = String, Path)),
    responses((status = 200, body = Invoice), (status = 409, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn void(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Invoice>> {
    Ok(Json(invoices::void(&state.db, &actor, &id).await?))
}

/// The invoice as a PDF document.
#[utoipa::path(get, path = "/invoices/{id}/pdf", operation_id = "getInvoicePdf", tag = "invoices", params(("id" = String, Path)),
    responses((status = 200, content_type = "application/pdf", body = Vec<u8>), (status = 404, body = ErrorEnvelope)))]
pub async fn pdf(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let document = invoice_pdf::render_invoice(&state.db, &actor, &id).await?;
    let mut response = document.bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pdf"),
    );
    if let Ok(disposition) =
        HeaderValue::from_str(&format!("inline; filename=\"{}\"", document.filename))
    {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(invoice_routes::router())
        .routes(routes!(issue))
        .routes(routes!(pay))
        .routes(routes!(void))
        .routes(routes!(pdf))
}
