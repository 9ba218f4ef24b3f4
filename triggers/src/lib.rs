//! The trigger engine: the event-log dispatcher (webhook deliveries and event-triggered flow
//! runs), inbound webhook triggers, cron schedules, poll triggers, the flow executor, and
//! [`workers::start`], which starts them all from one context value.

pub mod dispatcher;
pub mod executor;
pub mod inbound;
pub mod poller;
pub mod scheduler;
pub mod signatures;
pub mod subscriber;
pub mod workers;
