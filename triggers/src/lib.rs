//! The trigger engine: the event-log dispatcher (webhook deliveries and event-triggered flow
//! runs), inbound webhook triggers, cron schedules, and the runner that executes flow runs.

pub mod dispatcher;
pub mod flow_runner;
pub mod inbound;
pub mod poller;
pub mod scheduler;
pub mod signatures;

pub use timix_actions as actions;
