//! `/webhooks`: endpoints that receive the organization's events; deliveries with their
//! attempts, retry, secret rotation (the new secret shown once), test and delete; an edit page
//! for the URL, events, description and whether it is enabled.

use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{checked_id, query};
use crate::ui::session::{Fields, redirect_with_notice};
use crate::ui::{ApiFailure, Shared, UiError, UiResult, Viewer, back_or_fail};
use timix_engine::automation::webhooks::EVENT_TYPES;

/// The event types as checkboxes, grouped by what they are about (`customer`).
fn event_groups() -> Vec<Value> {
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for event in EVENT_TYPES {
        let noun = event.split('.').next().unwrap_or(event).to_owned();
        match groups.iter_mut().find(|(n, _)| *n == noun) {
            Some((_, events)) => events.push(event),
            None => groups.push((noun, vec![event])),
        }
    }
    groups
        .into_iter()
        .map(|(noun, events)| json!({"noun": noun, "events": events}))
        .collect()
}

async fn render_list(ui: &Shared, viewer: &Viewer, status: StatusCode, extra: Value) -> UiResult {
    let hooks = ui.items(viewer, "/webhooks?limit=200").await?;
    let mut context = json!({"nav": "webhooks", "webhooks": hooks, "groups": event_groups()});
    super::merge(&mut context, extra);
    Ok(ui.page_with_status(status, viewer, "webhooks", context))
}

pub async fn list(State(ui): State<Shared>, viewer: Viewer) -> UiResult {
    render_list(&ui, &viewer, StatusCode::OK, json!({})).await
}

/// The ticked event types (`*` for all).
fn events(fields: &Fields) -> Vec<String> {
    fields
        .0
        .iter()
        .filter(|(name, _)| name == "event")
        .map(|(_, value)| value.clone())
        .collect()
}

pub async fn create(
    State(ui): State<Shared>,
    viewer: Viewer,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let body = json!({
        "url": fields.get("url"),
        "events": events(&fields),
        "description": fields.get("description"),
    });
    match ui.post(&viewer, "/webhooks", body).await {
        Ok(created) => {
            render_list(
                &ui,
                &viewer,
                StatusCode::CREATED,
                json!({"created": created}),
            )
            .await
        }
        Err(failure) => {
            let extra = json!({
                "error": failure.summary(),
                "fieldErrors": failure.fields,
                "form": {"url": fields.get("url"), "events": events(&fields), "description": fields.get("description")},
            });
            render_list(&ui, &viewer, StatusCode::UNPROCESSABLE_ENTITY, extra).await
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct DeliveryFilter {
    status: Option<String>,
    cursor: Option<String>,
}

async fn render_one(
    ui: &Shared,
    viewer: &Viewer,
    id: &str,
    filter: &DeliveryFilter,
    extra: Value,
) -> UiResult {
    let hook = ui.get(viewer, &format!("/webhooks/{id}")).await?;
    let q = query(&[
        ("status", filter.status.as_deref()),
        ("cursor", filter.cursor.as_deref()),
        ("limit", Some("50")),
    ]);
    let page = ui
        .get(viewer, &format!("/webhooks/{id}/deliveries?{q}"))
        .await?;
    let statuses: Vec<Value> = ["pending", "sending", "failed", "dead", "succeeded"]
        .iter()
        .map(|s| json!({"value": s, "selected": filter.status.as_deref() == Some(*s)}))
        .collect();
    let next = page["nextCursor"].as_str().map(|cursor| {
        format!(
            "/webhooks/{id}?{}",
            query(&[
                ("status", filter.status.as_deref()),
                ("cursor", Some(cursor))
            ])
        )
    });
    let mut context = json!({
        "nav": "webhooks",
        "webhook": hook,
        "deliveries": page["items"],
        "total": page["totalCount"],
        "statuses": statuses,
        "next": next,
    });
    super::merge(&mut context, extra);
    Ok(ui.page(viewer, "webhook", context))
}

pub async fn show(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(filter): Query<DeliveryFilter>,
) -> UiResult {
    let id = checked_id(&id, "webhook")?;
    render_one(&ui, &viewer, id, &filter, json!({})).await
}

/// `rotate`, `test`, `enable`, `disable`, `delete`.
pub async fn act(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path((id, op)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let id = checked_id(&id, "webhook")?;
    let path = format!("/webhooks/{id}");
    match op.as_str() {
        "rotate" => {
            let rotated = match ui
                .post(&viewer, &format!("{path}/rotate-secret"), json!({}))
                .await
            {
                Ok(rotated) => rotated,
                Err(failure) => return back_or_fail(&path, failure),
            };
            let extra = json!({"secret": rotated["secret"]});
            render_one(&ui, &viewer, id, &DeliveryFilter::default(), extra).await
        }
        "test" => {
            if let Err(failure) = ui.post(&viewer, &format!("{path}/test"), json!({})).await {
                return back_or_fail(&path, failure);
            }
            Ok(redirect_with_notice(
                &path,
                "A test event is on its way; its delivery appears below in a moment.",
            ))
        }
        "enable" | "disable" => {
            let body = json!({"isEnabled": op == "enable"});
            if let Err(failure) = ui.call(&viewer, "PATCH", &path, Some(body)).await {
                return back_or_fail(&path, failure);
            }
            Ok(redirect_with_notice(
                &path,
                &format!("The webhook is {op}d."),
            ))
        }
        "delete" => match ui.delete(&viewer, &path).await {
            Ok(_) => Ok(redirect_with_notice("/webhooks", "The webhook is deleted.")),
            Err(failure) => back_or_fail(&path, failure),
        },
        _ => Err(UiError::not_found("action")),
    }
}

/// The edit page: the webhook's fields, or a refused form (what was sent, and why) with each
/// problem at its field.
async fn render_edit(
    ui: &Shared,
    viewer: &Viewer,
    id: &str,
    refused: Option<(Value, ApiFailure)>,
) -> UiResult {
    let hook = ui.get(viewer, &format!("/webhooks/{id}")).await?;
    let (status, form, failure) = match refused {
        Some((form, failure)) => (StatusCode::UNPROCESSABLE_ENTITY, form, Some(failure)),
        None => {
            let form = json!({
                "url": hook["url"],
                "events": hook["events"],
                "description": hook["description"],
                "isEnabled": hook["isEnabled"],
            });
            (StatusCode::OK, form, None)
        }
    };
    let context = json!({
        "nav": "webhooks",
        "webhook": hook,
        "groups": event_groups(),
        "form": form,
        "error": failure.as_ref().map(ApiFailure::summary),
        "fieldErrors": failure.map(|f| f.fields),
    });
    Ok(ui.page_with_status(status, viewer, "webhook_edit", context))
}

pub async fn edit_form(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> UiResult {
    let id = checked_id(&id, "webhook")?;
    render_edit(&ui, &viewer, id, None).await
}

/// Saves the edit form through `PATCH /webhooks/{id}`; an emptied description is removed.
pub async fn save(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let id = checked_id(&id, "webhook")?;
    let path = format!("/webhooks/{id}");
    let body = json!({
        "url": fields.get("url"),
        "events": events(&fields),
        "description": fields.get("description"),
        "isEnabled": fields.get("isEnabled").is_some(),
    });
    match ui.call(&viewer, "PATCH", &path, Some(body.clone())).await {
        Ok(_) => Ok(redirect_with_notice(&path, "The webhook is saved.")),
        Err(failure) if matches!(failure.status, 400 | 409 | 422) => {
            render_edit(&ui, &viewer, id, Some((body, failure))).await
        }
        Err(failure) => Err(failure.into()),
    }
}

pub async fn retry(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path((id, delivery)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let id = checked_id(&id, "webhook")?;
    let delivery = checked_id(&delivery, "delivery")?;
    let retried = ui
        .post(
            &viewer,
            &format!("/webhooks/{id}/deliveries/{delivery}/retry"),
            json!({}),
        )
        .await;
    if let Err(failure) = retried {
        return back_or_fail(&format!("/webhooks/{id}"), failure);
    }
    Ok(redirect_with_notice(
        &format!("/webhooks/{id}"),
        "The delivery is being attempted again.",
    ))
}
