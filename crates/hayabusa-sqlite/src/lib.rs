//! Embedded adapters: the group-commit SQLite event log, the SQLite read store,
//! the local-directory blob store, and consistent copies of a live log for backups.

pub mod blobs;
pub mod event_log;
pub mod read_store;
pub mod snapshot;

pub use blobs::LocalBlobStore;
pub use event_log::{GroupCommitStats, IndexSettings, SqliteEventLog, index_path};
pub use read_store::SqliteReadStore;
pub use snapshot::{LogSnapshot, inspect_event_log, snapshot_event_log, visit_events_of_type};
