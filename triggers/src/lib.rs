//! The trigger engine: the event-log dispatcher (today: webhook and REST-hook deliveries), and
//! later poll scheduling, inbound webhooks and flow runs.

pub mod dispatcher;

pub use timix_actions as actions;
