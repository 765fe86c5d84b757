//! The read store on PostgreSQL: the read models, sync ops, membership intervals,
//! fetch cursors and the projector's checkpoint in one PostgreSQL database (or a
//! PostgreSQL-compatible engine), behind the read store port of `hayabusa-store`.
//!
//! - [`PgReadStore::connect`] parses a libpq connection string ([`DatabaseUrl`],
//!   which never shows its password), opens a connection pool (deadpool) and creates
//!   or migrates the schema (numbered migrations, each in a transaction of its own).
//! - [`apply`](hayabusa_store::ReadModelWriter::apply) runs one transaction: it locks
//!   the checkpoint row, skips a batch at or below it, writes the changes — runs of
//!   message inserts, read cursors and sync ops as one statement per kind (a binary
//!   `COPY` of rows known to be new, or `UNNEST` of array parameters), everything
//!   else one prepared statement per change — and moves the checkpoint with a
//!   conditional `UPDATE`.
//! - A store remembers the checkpoint it last read or wrote and refuses (as
//!   [`StoreError::Conflict`](hayabusa_store::StoreError::Conflict)) a batch when the
//!   stored checkpoint moved meanwhile: another writer projected, so this one is stale.
//! - Queries are prepared statements (cached per connection), one round trip each;
//!   unread and mention counts are derived at query time, as in every adapter.
//!
//! The SQL keeps to what PostgreSQL-compatible distributed engines run: no
//! extensions, no advisory locks, no engine-specific types (ADR 0007).

mod config;
mod dump;
mod leases;
mod queries;
mod rate;
mod schema;
mod snapshots;
mod store;
mod values;
mod writer;

pub use config::{DatabaseUrl, PgOptions};
pub use store::PgReadStore;

#[cfg(feature = "testkit")]
pub mod testkit;

/// The statements whose query plans the tests check (each with example arguments as
/// SQL literals): every query and the writes that look rows up, so that a test can
/// show none of them scans a table. Not part of the API.
#[doc(hidden)]
pub fn statements_to_explain() -> Vec<(&'static str, String, &'static str)> {
    let mut statements = queries::statements_to_explain();
    statements.extend(writer::statements_to_explain());
    statements
}
