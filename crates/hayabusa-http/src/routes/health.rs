//! `GET /healthz`: liveness, with the log head and projection position.

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use std::sync::Arc;

/// Liveness.
pub async fn healthz(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "log_head": state.app.log.head(),
        "projected": state.app.writes.projection().current(),
    }))
}
