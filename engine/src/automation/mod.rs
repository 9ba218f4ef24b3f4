//! Automation: action and trigger manifests, templates, flows and their runs, polls,
//! connections and their vault, webhooks and REST hooks with their deliveries (storage), and
//! the rules every outbound target obeys.

pub mod connections;
pub mod connectors;
pub mod flows;
#[cfg(test)]
mod fuzz;
pub mod manifest;
pub mod polls;
pub mod quotas;
pub mod run_admission;
pub mod runs;
pub mod saving;
pub mod subscriptions;
pub mod targets;
pub mod template;
pub mod webhooks;
