//! Errors of the domain rules.

/// Why a command was refused. The HTTP layer maps these to 400/403/404/409.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The thing does not exist or is not visible to the actor.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The actor may see it but lacks the right to do this.
    #[error("{0}")]
    Forbidden(String),
    /// The command's input breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// The command clashes with the current state.
    #[error("{0}")]
    Conflict(String),
}
