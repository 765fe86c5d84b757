//! The one API error: a status and ChatWork's `{"errors":[…]}` body. Internals never
//! leak: store failures are logged and answered with a generic message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hayabusa_app::AppError;
use hayabusa_domain::DomainError;
use hayabusa_store::StoreError;

use crate::dto::Errors;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable reasons.
    pub errors: Vec<String>,
}

impl ApiError {
    /// An error with one reason.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            errors: vec![message.into()],
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401 with ChatWork's wording.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Invalid API token")
    }

    /// 404.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(Errors {
                errors: self.errors,
            }),
        )
            .into_response()
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        match error {
            AppError::Domain(DomainError::NotFound(what)) => ApiError::not_found(what),
            AppError::Domain(DomainError::Forbidden(m)) => ApiError::new(StatusCode::FORBIDDEN, m),
            AppError::Domain(DomainError::Invalid(m)) => ApiError::bad_request(m),
            AppError::Domain(DomainError::Conflict(m)) => ApiError::new(StatusCode::CONFLICT, m),
            AppError::Unauthenticated => ApiError::unauthorized(),
            AppError::Contention(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many concurrent changes to the same object, try again",
            ),
            AppError::Store(StoreError::IdempotencyKeyReused) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Idempotency-Key was already used for a different request",
            ),
            AppError::Store(StoreError::Conflict { .. }) => ApiError::new(
                StatusCode::CONFLICT,
                "the object was changed concurrently, try again",
            ),
            AppError::Store(StoreError::Unavailable(detail)) => {
                tracing::error!(%detail, "store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage is unavailable, try again",
                )
            }
            AppError::Store(StoreError::Corrupt(detail)) => {
                tracing::error!(%detail, "store corrupt");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
