//! The page templates (built into the binary) and their helpers.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use handlebars::{Handlebars, handlebars_helper};
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
    ("runs", include_str!("../../ui/templates/runs.hbs")),
    ("run", include_str!("../../ui/templates/run.hbs")),
    ("keys", include_str!("../../ui/templates/keys.hbs")),
    ("webhooks", include_str!("../../ui/templates/webhooks.hbs")),
    ("webhook", include_str!("../../ui/templates/webhook.hbs")),
    ("users", include_str!("../../ui/templates/users.hbs")),
    ("apps", include_str!("../../ui/templates/apps.hbs")),
    (
        "authorize",
        include_str!("../../ui/templates/authorize.hbs"),
    ),
];

handlebars_helper!(when: |instant: Value| short_instant(&instant));
handlebars_helper!(pretty: |value: Value| serde_json::to_string_pretty(&value).unwrap_or_default());
handlebars_helper!(includes: |list: Value, item: Value| list.as_array().is_some_and(|l| l.contains(&item)));
handlebars_helper!(inc: |n: u64| n + 1);
handlebars_helper!(plural: |count: u64, word: str| {
    if count == 1 { format!("1 {word}") } else { format!("{count} {word}s") }
});

/// `2026-11-23T04:25:54.127Z` → `2026-11-23 04:25:54 UTC`; empty for null.
fn short_instant(value: &Value) -> String {
    match value.as_str() {
        Some(text) if text.len() >= 19 => format!("{} {} UTC", &text[..10], &text[11..19]),
        Some(text) => text.to_owned(),
        None => String::new(),
    }
}

pub struct Views {
    registry: Handlebars<'static>,
}

impl Views {
    pub fn new() -> Self {
        let mut registry = Handlebars::new();
        registry.register_helper("when", Box::new(when));
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
