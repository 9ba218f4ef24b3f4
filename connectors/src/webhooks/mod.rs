//! Sending events to webhooks and REST hooks: [`sign`] makes the Standard Webhooks signature,
//! [`deliver`] attempts deliveries (the job handler, the fast lane, the attempt log), [`sweep`]
//! queues retries and what a crash left behind. Deliveries are stored by the engine
//! (`timix_engine::automation::webhooks::deliveries`).

pub mod deliver;
pub mod sign;
pub mod sweep;

pub use deliver::{AttemptLog, Deliverer, DeliveryJob, FastAttempt, serve_fast_lane};
