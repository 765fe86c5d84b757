//! Backend-neutral store errors.

/// What can go wrong in a store, whatever the backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Optimistic concurrency: the stream is not at the expected revision.
    #[error("stream {stream} is at revision {actual}, expected {expected}")]
    Conflict {
        /// The stream.
        stream: String,
        /// What the caller expected.
        expected: String,
        /// The stream's revision (0: no events).
        actual: u64,
    },
    /// An idempotency key was reused for a different request.
    #[error("idempotency key reused for a different request")]
    IdempotencyKeyReused,
    /// The request is too large for the backend (too many events in one append, or
    /// too many bytes); retrying it unchanged will not help.
    #[error("too large to store: {0}")]
    TooLarge(String),
    /// The backend is down or overloaded; the caller may retry. For an append on a
    /// distributed log the outcome may be unknown (retry with an idempotency key).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A projector's batch was refused: the projector lease was acquired again since
    /// this projector got it (see [`crate::lease`]). The projector must stop.
    #[error("fenced off: {0}")]
    Fenced(String),
    /// Stored data cannot be read back.
    #[error("store corrupt: {0}")]
    Corrupt(String),
}
