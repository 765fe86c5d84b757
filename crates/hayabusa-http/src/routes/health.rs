//! `GET /healthz`: liveness, with the log head and projection position.

use crate::dto;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use std::sync::Arc;

/// Liveness.
pub async fn healthz(State(state): State<Arc<AppState>>) -> Json<dto::Health> {
    Json(dto::Health {
        status: "ok".to_string(),
        log_head: state.app.log.head(),
        projected: state.app.writes.projection().current(),
    })
}
