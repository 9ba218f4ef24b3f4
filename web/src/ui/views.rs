//! The page templates (built into the binary) and their helpers.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, handlebars_helper,
};
use serde_json::Value;

/// Every template, by name; `layout` wraps the pages of a logged-in user.
const TEMPLATES: &[(&str, &str)] = &[
    ("layout", include_str!("../../ui/templates/layout.hbs")),
    ("bare", include_str!("../../ui/templates/bare.hbs")),
    ("login", include_str!("../../ui/templates/login.hbs")),
    ("invite", include_str!("../../ui/templates/invite.hbs")),
    (
        "dashboard",
        include_str!("../../ui/templates/dashboard.hbs"),
    ),
    (
        "connections",
        include_str!("../../ui/templates/connections.hbs"),
    ),
    (
        "connection",
        include_str!("../../ui/templates/connection.hbs"),
    ),
    (
        "connectors",
        include_str!("../../ui/templates/connectors.hbs"),
    ),
    (
        "connector",
        include_str!("../../ui/templates/connector.hbs"),
    ),
    ("flows", include_str!("../../ui/templates/flows.hbs")),
    ("flow", include_str!("../../ui/templates/flow.hbs")),
    (
        "flow_tree_item",
        include_str!("../../ui/templates/flow_tree_item.hbs"),
    ),
    (
        "flow_node",
        include_str!("../../ui/templates/flow_node.hbs"),
    ),
    (
        "flow_condition",
        include_str!("../../ui/templates/flow_condition.hbs"),
    ),
    (
        "flow_lifecycle_bar",
        include_str!("../../ui/templates/flow_lifecycle_bar.hbs"),
    ),
    (
        "flow_draft",
        include_str!("../../ui/templates/flow_draft.hbs"),
    ),
    (
        "flow_versions",
        include_str!("../../ui/templates/flow_versions.hbs"),
    ),
    (
        "flow_version",
        include_str!("../../ui/templates/flow_version.hbs"),
    ),
    (
        "flow_samples",
        include_str!("../../ui/templates/flow_samples.hbs"),
    ),
    (
        "flow_explain",
        include_str!("../../ui/templates/flow_explain.hbs"),
    ),
    ("run_node", include_str!("../../ui/templates/run_node.hbs")),
    (
        "schedule_editor",
        include_str!("../../ui/templates/schedule_editor.hbs"),
    ),
    ("runs", include_str!("../../ui/templates/runs.hbs")),
    ("run", include_str!("../../ui/templates/run.hbs")),
    ("keys", include_str!("../../ui/templates/keys.hbs")),
    ("webhooks", include_str!("../../ui/templates/webhooks.hbs")),
    ("webhook", include_str!("../../ui/templates/webhook.hbs")),
    ("users", include_str!("../../ui/templates/users.hbs")),
    ("user", include_str!("../../ui/templates/user.hbs")),
    (
        "webhook_edit",
        include_str!("../../ui/templates/webhook_edit.hbs"),
    ),
    (
        "connection_edit",
        include_str!("../../ui/templates/connection_edit.hbs"),
    ),
    ("apps", include_str!("../../ui/templates/apps.hbs")),
    (
        "authorize",
        include_str!("../../ui/templates/authorize.hbs"),
    ),
    (
        "connected_apps",
        include_str!("../../ui/templates/connected_apps.hbs"),
    ),
];

handlebars_helper!(pretty: |value: Value| serde_json::to_string_pretty(&value).unwrap_or_default());
handlebars_helper!(includes: |list: Value, item: Value| list.as_array().is_some_and(|l| l.contains(&item)));
handlebars_helper!(inc: |n: u64| n + 1);
handlebars_helper!(plural: |count: u64, word: str| {
    if count == 1 { format!("1 {word}") } else { format!("{count} {word}s") }
});

/// `{{when createdAt}}`: an instant in the organization's time zone (the page's
/// `viewer.timeZone`, UTC without one): `2026-11-22 23:25:54 EST`.
struct When;

impl HelperDef for When {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let instant = h.param(0).map(|p| p.value()).unwrap_or(&Value::Null);
        let zone = ctx.data()["viewer"]["timeZone"].as_str().unwrap_or("UTC");
        out.write(&escape(&local_instant(instant, zone)))?;
        Ok(())
    }
}

/// `2026-11-23T04:25:54.127Z` in `zone` → `2026-11-22 23:25:54 EST`; empty for null; a text
/// that is not an instant as it is.
pub fn local_instant(value: &Value, zone: &str) -> String {
    let Some(text) = value.as_str() else {
        return String::new();
    };
    let zone: chrono_tz::Tz = zone.parse().unwrap_or(chrono_tz::UTC);
    match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(at) => at
            .with_timezone(&zone)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
        Err(_) => text.to_owned(),
    }
}

pub struct Views {
    registry: Handlebars<'static>,
}

impl Views {
    pub fn new() -> Self {
        let mut registry = Handlebars::new();
        registry.register_helper("when", Box::new(When));
        registry.register_helper("pretty", Box::new(pretty));
        registry.register_helper("plural", Box::new(plural));
        registry.register_helper("inc", Box::new(inc));
        registry.register_helper("includes", Box::new(includes));
        for (name, text) in TEMPLATES {
            // The templates are part of the binary; a broken one is a build defect that the
            // tests load every page to catch.
            if let Err(error) = registry.register_template_string(name, text) {
                tracing::error!(template = name, %error, "A page template does not parse.");
            }
        }
        Self { registry }
    }

    pub fn render(&self, template: &str, context: &Value) -> Response {
        match self.registry.render(template, context) {
            Ok(html) => Html(html).into_response(),
            Err(error) => {
                tracing::error!(template, %error, "A page could not be rendered.");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Html(error_page(
                        "Something went wrong",
                        "This page could not be shown; it has been logged.",
                    )),
                )
                    .into_response()
            }
        }
    }
}

fn escape(text: &str) -> String {
    handlebars::html_escape(text)
}

/// A page for errors, on its own (it needs no template).
pub fn error_page(title: &str, message: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} · timix</title><link rel=\"stylesheet\" href=\"/assets/app.css\"></head>\
         <body class=\"bare\"><main class=\"card narrow\"><h1>{t}</h1><p>{m}</p>\
         <p><a class=\"button\" href=\"/\">Back to the dashboard</a></p></main></body></html>",
        t = escape(title),
        m = escape(message)
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn when_shows_instants_in_the_organizations_zone_everywhere_in_a_page() {
        let mut registry = Handlebars::new();
        registry.register_helper("when", Box::new(When));
        registry
            .register_template_string("item", "[{{when at}}]")
            .unwrap();
        registry
            .register_template_string(
                "page",
                "{{when at}}|{{#each runs}}{{when createdAt}}|{{/each}}{{> item at=at}}{{when missing}}",
            )
            .unwrap();
        let page = |zone: Option<&str>| {
            let mut context = json!({
                "at": "2026-12-07T04:25:54.127Z",
                "runs": [{"createdAt": "2026-07-01T12:00:00.000Z"}],
            });
            if let Some(zone) = zone {
                context["viewer"] = json!({"timeZone": zone});
            }
            registry.render("page", &context).unwrap()
        };
        assert_eq!(
            page(Some("Asia/Kolkata")),
            "2026-12-07 09:55:54 IST|2026-07-01 17:30:00 IST|[2026-12-07 09:55:54 IST]"
        );
        // Daylight saving: New York is EST in December, EDT in July.
        assert_eq!(
            page(Some("America/New_York")),
            "2026-12-06 23:25:54 EST|2026-07-01 08:00:00 EDT|[2026-12-06 23:25:54 EST]"
        );
        assert_eq!(
            page(None),
            "2026-12-07 04:25:54 UTC|2026-07-01 12:00:00 UTC|[2026-12-07 04:25:54 UTC]"
        );
        assert_eq!(local_instant(&json!("soon"), "UTC"), "soon");
    }
}
