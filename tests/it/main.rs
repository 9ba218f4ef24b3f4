//! Black-box tests of the whole service over real HTTP. The same suite runs on SQLite and, with
//! `TIMIX_TEST_DATABASE=postgres`, on Postgres.

// The tests are outside clients: they call timix with their own HTTP client and read its
// database directly, which the layering bans of clippy.toml keep out of the product's crates.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod harness;

mod actions;
mod apps;
mod auth;
mod bad_input;
mod connections;
mod connectors;
mod errors;
mod events;
mod flow_settings;
mod flows;
mod guards;
mod hierarchy;
mod inbound;
mod invoices;
mod isolation;
mod lifecycle;
mod limits;
mod lists;
mod manifests;
mod mcp;
mod money;
mod oauth;
mod observability;
mod openapi;
mod pricing;
mod programs;
mod receiver;
mod reports;
mod roles;
mod scale;
mod schemathesis;
mod secrets;
mod server;
mod standins;
mod tenant_budgets;
mod time;
mod timesheets;
mod ui;
mod ui_a11y;
mod ui_builder;
mod ui_edit_pages;
mod ui_lifecycle;
mod ui_schedules;
mod ui_tree;
mod webhooks;
