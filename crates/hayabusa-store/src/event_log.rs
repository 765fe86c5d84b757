//! The event log port: an append-only, totally ordered log of streams.
//!
//! Every event gets a global **position** and a **stream revision** (the field is
//! still called `stream_version`). Both are opaque numbers with one promise each:
//!
//! - positions **increase** in commit order across the whole log, but are **not
//!   dense**: an adapter may leave gaps (NATS JetStream encodes the message sequence and
//!   the index inside the message). Never compute with them (`head - position` is not a
//!   count); compare them, and resume reading after one.
//! - a stream's revisions **increase** within the stream, and 0 means "no events". A
//!   stream's revision is the revision of its last event. `ExpectedVersion::Exactly(r)`
//!   admits an append only when the stream's revision is exactly `r`, so pass a
//!   revision the log reported (`Appended::stream_version`, or the `stream_version` of
//!   the last event `read_stream` returned); anything else — the revision of an event
//!   that is not the stream's last, or a number the log never reported — is a conflict.
//!
//! The embedded adapters (memory, SQLite) happen to give dense numbers (1, 2, 3, …):
//! dense is a special case of increasing, and code must not rely on it.
//!
//! An append is atomic: all its events or none. Appends carry an expected stream
//! revision (optimistic concurrency) and optionally an idempotency key: a retried
//! append with the same key returns the events of the first one and appends nothing.
//! Keys are kept at least for the adapter's idempotency expiry (24 hours by default),
//! then forgotten.
//!
//! An `append` returns only once its events are durable (fsync'd, or replicated for a
//! distributed log). An append that fails with [`StoreError::Unavailable`] may, on a
//! distributed log, still have been stored (the acknowledgement was lost): retry it
//! with the same idempotency key. `head()` and `subscribe()` report only durable
//! positions; for a log shared between processes they are a **cached, monotonic lower
//! bound** of the durable head: they include every append this process made before
//! `append` returned, and catch up with other processes' appends shortly after.

use crate::error::StoreError;
use async_trait::async_trait;
use std::time::Duration;
use tokio::sync::watch;

/// How long an adapter keeps idempotency keys unless told otherwise (every adapter
/// has the expiry; see the module documentation).
pub const DEFAULT_IDEMPOTENCY_EXPIRY: Duration = Duration::from_secs(24 * 60 * 60);

/// A global position in the log: increasing, not dense. 0 means "before the first event".
pub type Position = u64;

/// What the stream's revision must be for an append to go through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must have no events (revision 0).
    NoStream,
    /// The stream's revision must be exactly this one, as the log reported it
    /// (`Exactly(0)` is `NoStream`).
    Exactly(u64),
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exactly(v) => write!(f, "{v}"),
        }
    }
}

impl ExpectedVersion {
    /// Whether a stream at `actual` satisfies this expectation.
    pub fn admits(&self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exactly(v) => *v == actual,
        }
    }
}

/// An event to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// Stable event name.
    pub event_type: String,
    /// Schema version of `data`.
    pub schema_version: u32,
    /// Payload (JSON).
    pub data: Vec<u8>,
}

/// An event as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Global position.
    pub position: Position,
    /// Stream it belongs to.
    pub stream: String,
    /// Revision within the stream: greater than 0, increasing within the stream, opaque.
    pub stream_version: u64,
    /// Stable event name.
    pub event_type: String,
    /// Schema version of `data`.
    pub schema_version: u32,
    /// Payload.
    pub data: Vec<u8>,
    /// When it was committed, Unix milliseconds.
    pub recorded_at_ms: i64,
}

/// An idempotency key with a fingerprint of the request it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The key, already scoped by the caller (e.g. per account).
    pub key: String,
    /// A digest of the request; the same key with another fingerprint is refused.
    pub fingerprint: String,
}

/// One append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendRequest {
    /// Target stream.
    pub stream: String,
    /// Concurrency check.
    pub expected: ExpectedVersion,
    /// Events, appended atomically in this order. May be empty (a no-op that still
    /// checks the expected revision and records the idempotency key). An adapter may
    /// bound how many events (or bytes) one append holds and refuse more with
    /// [`StoreError::TooLarge`].
    pub events: Vec<NewEvent>,
    /// Optional idempotency key.
    pub idempotency: Option<IdempotencyKey>,
}

/// The result of an append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The events as recorded: the new ones, or for a duplicate the first append's.
    pub events: Vec<RecordedEvent>,
    /// The stream's revision after the append (for a duplicate: after the first one):
    /// the revision of its last event, or the stream's revision if it appended nothing.
    pub stream_version: u64,
    /// The log position after the append (for a duplicate: of the first one's last
    /// event, or if it appended nothing a position at or after the stream's last event
    /// that was durable at that time).
    pub position: Position,
    /// True when the idempotency key had been seen: nothing was appended now.
    pub duplicate: bool,
}

/// Appending to the log.
#[async_trait]
pub trait EventAppender: Send + Sync {
    /// Appends atomically and durably, or fails without effect.
    async fn append(&self, request: AppendRequest) -> Result<Appended, StoreError>;
}

/// Reading the log.
#[async_trait]
pub trait EventReader: Send + Sync {
    /// Events of `stream` with a revision (`stream_version`) greater than
    /// `after_version`, in order, at most `limit`.
    async fn read_stream(
        &self,
        stream: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;
    /// Events with `position > after`, in order, at most `limit`. `after` may be any
    /// number (positions are not dense).
    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;
    /// The last durable position (0 for an empty log). For a log shared between
    /// processes: a cached, monotonic lower bound that includes this process's own
    /// acknowledged appends (see the module documentation).
    fn head(&self) -> Position;
    /// The last acknowledged position, read now from the log itself: at least every
    /// position whose append was acknowledged (by any process) before this call
    /// began. For a log only this process appends to, [`EventReader::head`]
    /// already is that; a shared log asks its leader.
    async fn durable_head(&self) -> Result<Position, StoreError> {
        Ok(self.head())
    }
    /// Whether other processes may append to this log (then reads must learn what
    /// they acknowledged with [`EventReader::durable_head`]).
    fn is_shared(&self) -> bool {
        false
    }
    /// Watches the head (the same cached value): changes whenever new events become
    /// durable, never goes backwards.
    fn subscribe(&self) -> watch::Receiver<Position>;
}

/// A whole event log.
pub trait EventLog: EventAppender + EventReader {}
impl<T: EventAppender + EventReader> EventLog for T {}
