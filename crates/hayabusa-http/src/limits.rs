//! Request body limits, enforced before the body is read: a declared
//! `Content-Length` past the route's limit is refused with 413 at once, and a
//! chunked body is cut at the same limit.

use crate::error::ApiError;
use crate::params::MAX_FORM_BYTES;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Room for multipart boundaries and part headers around an upload's file.
pub const MULTIPART_OVERHEAD: usize = 64 * 1024;

/// The route template of file uploads.
const UPLOAD_ROUTE: &str = "/v2/rooms/{room_id}/files";

/// The largest body accepted on a route: an upload plus multipart overhead on
/// the upload route, [`MAX_FORM_BYTES`] (room for the largest legal form) elsewhere.
pub fn body_limit(state: &AppState, route: Option<&MatchedPath>) -> usize {
    match route {
        Some(route) if route.as_str() == UPLOAD_ROUTE => {
            state.uploads.max_bytes.saturating_add(MULTIPART_OVERHEAD)
        }
        _ => MAX_FORM_BYTES,
    }
}

/// Middleware: refuses a body declared too large before reading it, and limits
/// the body that is read.
pub async fn enforce(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let limit = body_limit(&state, request.extensions().get::<MatchedPath>());
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is too large (the limit is {limit} bytes)"),
        )
        .into_response();
    }
    let request = request.map(|body| Body::new(http_body_util::Limited::new(body, limit)));
    next.run(request).await
}
