//! The snapshot port: a saved state of one stream's aggregate, so that loading a
//! long stream replays only the events after it.
//!
//! A snapshot is a cache of what the log says, never a source of truth: it names the
//! stream revision it reflects, and the loader reads the log from there. Its `format`
//! is the aggregate's snapshot version; a loader ignores a snapshot of another format
//! (the aggregate or the events changed: it replays the whole stream and saves a new
//! one). Read stores keep snapshots beside the read models; a reset drops them.

use crate::error::StoreError;
use async_trait::async_trait;

/// One stream's saved aggregate state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The stream.
    pub stream: String,
    /// The stream revision the state reflects (of the last event folded into it).
    pub revision: u64,
    /// The encoding and meaning of `data`; another format is not understood.
    pub format: u32,
    /// The encoded state.
    pub data: Vec<u8>,
}

impl Snapshot {
    /// Whether `self` should replace `stored`: it is of another format, or newer.
    pub fn replaces(&self, stored: &Snapshot) -> bool {
        self.format != stored.format || self.revision > stored.revision
    }
}

/// Keeping snapshots.
#[async_trait]
pub trait SnapshotStore: Send + Sync {
    /// The stream's snapshot, if one is kept.
    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, StoreError>;
    /// Keeps `snapshot` unless the stored one is of the same format and at least as
    /// new (two loaders saving at once never move a snapshot back).
    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError>;
}
