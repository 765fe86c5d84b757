//! Embedded adapters on SQLite: the group-commit event log and the read store.

pub mod event_log;
pub mod read_store;

pub use event_log::{GroupCommitStats, SqliteEventLog};
pub use read_store::SqliteReadStore;
