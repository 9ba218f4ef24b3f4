//! The trigger engine: the event-log dispatcher, poll scheduling, inbound webhooks, dedupe and
//! flow runs. Its steps are actions.

pub use timix_actions as actions;
