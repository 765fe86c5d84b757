//! The event log port: an append-only, totally ordered log of streams.
//!
//! Every event gets a global **position** (1, 2, 3, … without gaps in commit order)
//! and a **stream version** (1, 2, 3, … within its stream). An append is atomic: all
//! its events or none. Appends carry an expected stream version (optimistic
//! concurrency) and optionally an idempotency key: a retried append with the same key
//! returns the events of the first one and appends nothing.
//!
//! An `append` returns only once its events are durable (fsync'd, or replicated for a
//! distributed log). `head()` and `subscribe()` report only durable positions.

use crate::error::StoreError;
use async_trait::async_trait;
use tokio::sync::watch;

/// A global position in the log. 0 means "before the first event".
pub type Position = u64;

/// What the stream's version must be for an append to go through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist (version 0).
    NoStream,
    /// The stream must be exactly at this version (number of events in it).
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
    /// Version within the stream (1-based).
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
    /// checks the expected version and records the idempotency key).
    pub events: Vec<NewEvent>,
    /// Optional idempotency key.
    pub idempotency: Option<IdempotencyKey>,
}

/// The result of an append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The events as recorded: the new ones, or for a duplicate the first append's.
    pub events: Vec<RecordedEvent>,
    /// The stream's version after the append (for a duplicate: after the first one).
    pub stream_version: u64,
    /// The log position after the append (for a duplicate: of the first one's last event,
    /// or the head at that time if it appended nothing).
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
    /// Events of `stream` with `stream_version > after_version`, in order, at most `limit`.
    async fn read_stream(
        &self,
        stream: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;
    /// Events with `position > after`, in order, at most `limit`.
    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;
    /// The last durable position (0 for an empty log).
    fn head(&self) -> Position;
    /// Watches the head: changes whenever new events become durable.
    fn subscribe(&self) -> watch::Receiver<Position>;
}

/// A whole event log.
pub trait EventLog: EventAppender + EventReader {}
impl<T: EventAppender + EventReader> EventLog for T {}
