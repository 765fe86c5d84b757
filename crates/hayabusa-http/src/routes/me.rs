//! `GET /v2/me` and `GET /v2/my/status`.

use crate::auth::Caller;
use crate::dto;
use crate::error::ApiResult;
use crate::params::Params;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
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
