//! Backend-neutral store errors.

/// What can go wrong in a store, whatever the backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Optimistic concurrency: the stream is not at the expected version.
    #[error("stream {stream} is at version {actual}, expected {expected}")]
    Conflict {
        /// The stream.
        stream: String,
        /// What the caller expected.
        expected: String,
        /// Where the stream is.
        actual: u64,
    },
    /// An idempotency key was reused for a different request.
    #[error("idempotency key reused for a different request")]
    IdempotencyKeyReused,
    /// The backend is down or overloaded; the caller may retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data cannot be read back.
    #[error("store corrupt: {0}")]
    Corrupt(String),
}
