//! The one API error: a status and ChatWork's `{"errors":[…]}` body. Internals never
//! leak: store failures are logged and answered with a generic message.

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
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

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECS: u32 = 1;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(Errors {
                errors: self.errors,
            }),
        )
            .into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // Every 503 is temporary (contention, storage, a lagging projector).
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
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
            AppError::Lagging { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is catching up with recent writes, try again",
            ),
            AppError::Store(StoreError::IdempotencyKeyReused) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Idempotency-Key was already used for a different request",
            ),
            AppError::Store(StoreError::Conflict { .. }) => ApiError::new(
                StatusCode::CONFLICT,
                "the object was changed concurrently, try again",
            ),
            AppError::Store(StoreError::TooLarge(detail)) => {
                tracing::warn!(%detail, "write too large for the event log");
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the request is too large to store",
                )
            }
            AppError::Store(StoreError::Unavailable(detail) | StoreError::Fenced(detail)) => {
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

/// The answer to a request body that could not be read: 408 when it stalled past
/// the body timeout, 413 when it went past the route's limit, 400 otherwise.
pub fn body_error(error: &(dyn std::error::Error + 'static)) -> ApiError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if current.is::<tower_http::timeout::TimeoutError>() {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "the request body was not received in time",
            );
        }
        if current.is::<http_body_util::LengthLimitError>() {
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body is too large");
        }
        cause = current.source();
    }
    ApiError::bad_request("the request body could not be read")
}

/// Longest text of a foreign error answer kept in its `{"errors":[…]}` form.
const MAX_FOREIGN_ERROR: usize = 200;

/// Middleware: every error answer is `{"errors":[…]}` with `application/json`, also
/// those made outside this crate's handlers (axum's extractor rejections such as
/// an undecodable path, a failed WebSocket upgrade). Their text is kept, shortened.
pub async fn json_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4 * 1024)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
        .unwrap_or_default();
    let mut message: String = text.chars().take(MAX_FOREIGN_ERROR).collect();
    if message.is_empty() {
        message = status.canonical_reason().unwrap_or("error").to_string();
    }
    let body = serde_json::to_string(&Errors {
        errors: vec![message],
    })
    .unwrap_or_default();
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}
