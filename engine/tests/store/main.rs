//! The store on a real database, without the binary: migrations, the event log, lists and
//! cursors, soft deletes, idempotency records, the dispatcher's lease and cursor. SQLite by
//! default; a fresh Postgres database per test with `TIMIX_TEST_DATABASE=postgres` and
//! `TIMIX_TEST_POSTGRES_URL`.

mod support;

mod connections;
mod events;
mod group_commit;
mod idempotency;
mod leases;
mod lists;
mod mcp_oauth;
mod migrations;
mod rows;
