//! Ports of Hayabusa's storage: the event log and the read store, each with an
//! in-memory implementation (for unit tests and as the reference behaviour) and a
//! conformance suite that every adapter runs.

pub mod blob;
pub mod canonical;
pub mod consumer;
pub mod error;
pub mod event_log;
pub mod feed;
pub mod lease;
pub mod rate;
pub mod read_model;
pub mod snapshot;

pub use blob::{BlobStore, MemoryBlobStore};
pub use canonical::{CanonicalDump, status_of};
pub use consumer::ConsumerCheckpoints;
pub use error::StoreError;
pub use event_log::{
    AppendRequest, Appended, DEFAULT_IDEMPOTENCY_EXPIRY, EventAppender, EventLog, EventReader,
    ExpectedVersion, IdempotencyKey, NewEvent, Position, RecordedEvent,
};
pub use feed::{CommitFeed, Committed, MemoryCommitFeed};
pub use lease::{Leases, PROJECTOR_LEASE, worker_lease};
pub use rate::{LocalRateWindows, RateHit, RateLimit, RateOutcome, RateScope, RateWindows};
pub use read_model::{
    AccountRow, Change, ContactRequestRow, ContactRequestView, ContactView, FileRow, FileView,
    JoinRequestView, LinkRow, MemberView, MessageRow, MessageView, OpRecord, ReadModelQueries,
    ReadModelWriter, ReadStore, RoomRow, RoomView, StatusCounts, TaskFilter, TaskRow, TaskView,
};
pub use snapshot::{Snapshot, SnapshotStore};

pub mod conformance;
pub mod memory_event_log;
pub mod memory_read_store;

pub use memory_event_log::MemoryEventLog;
pub use memory_read_store::MemoryReadStore;
