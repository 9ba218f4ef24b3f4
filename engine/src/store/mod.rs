//! Storage: the pool over SQLite and Postgres, the one SQL set, rows and lists, the event log,
//! the job queue, and the value types every record uses (ids, instants, money).

pub mod checks;
pub mod clock;
pub mod db;
pub mod etag;
pub mod events;
pub mod health;
pub mod ids;
pub mod jobs;
pub mod json;
pub mod leases;
pub mod list;
pub mod money;
pub mod patch;
pub mod resource;
pub mod rows;
