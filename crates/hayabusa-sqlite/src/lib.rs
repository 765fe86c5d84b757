//! Embedded adapters: the group-commit SQLite event log, the SQLite read store and
//! the local-directory blob store.

pub mod blobs;
pub mod event_log;
pub mod read_store;

pub use blobs::LocalBlobStore;
pub use event_log::{GroupCommitStats, IndexSettings, SqliteEventLog, index_path};
pub use read_store::SqliteReadStore;
