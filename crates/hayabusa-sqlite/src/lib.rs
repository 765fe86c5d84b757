//! Embedded adapters on SQLite: the group-commit event log and the read store.

pub mod read_store;

pub use read_store::SqliteReadStore;
