//! The application layer's error: a domain refusal, a store failure, or an
//! authentication failure.

use hayabusa_domain::DomainError;
use hayabusa_store::StoreError;

/// Why a command or query failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The domain refused the command.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The token is missing or unknown.
    #[error("Invalid API token")]
    Unauthenticated,
    /// The command kept conflicting with concurrent writers.
    #[error("too much contention on {0}, try again")]
    Contention(String),
    /// The read models did not reach an acknowledged write within the read-wait bound
    /// (the projector is stuck or far behind): the read is refused rather than
    /// answered stale.
    #[error("the read models are at position {projected}, behind the acknowledged {needed}")]
    Lagging {
        /// The position the read needed.
        needed: hayabusa_store::Position,
        /// The position the read models had reached.
        projected: hayabusa_store::Position,
    },
}

impl AppError {
    /// Shorthand for a domain validation error.
    pub fn invalid(message: impl Into<String>) -> Self {
        AppError::Domain(DomainError::Invalid(message.into()))
    }

    /// Shorthand for a permission error.
    pub fn forbidden(message: impl Into<String>) -> Self {
        AppError::Domain(DomainError::Forbidden(message.into()))
    }
}
