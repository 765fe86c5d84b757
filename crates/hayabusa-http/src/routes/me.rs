//! `GET /v2/me`, `GET /v2/my/status` and `POST /v2/me/token` (extension: rotate the
//! caller's API token).

use crate::auth::Caller;
use crate::dto;
use crate::error::ApiResult;
use crate::params::Params;
use crate::routes::idempotency;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use std::sync::Arc;

/// The caller's own account.
pub async fn me(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    _params: Params,
) -> Json<dto::Me> {
    Json(dto::Me::new(caller.as_ref(), &state.public.base_url))
}

/// Unread and mention totals.
pub async fn status(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    _params: Params,
) -> ApiResult<Json<dto::MyStatus>> {
    let counts = state.app.queries.status(caller.account_id).await?;
    Ok(Json(counts.into()))
}

/// Replaces the caller's API token with a new one (extension): answers the new token,
/// and the old one is refused from this answer on.
pub async fn rotate_token(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Json<dto::NewToken>> {
    let key = idempotency(&headers, caller.account_id, &method, &uri, &params)?;
    let written = state.app.commands.rotate_token(&caller, key).await?;
    tracing::info!(account = %caller.account_id, "API token rotated");
    Ok(Json(dto::NewToken {
        token: written.value,
    }))
}
