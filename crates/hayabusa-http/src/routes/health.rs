//! `GET /healthz` (liveness, with the log head and projection position) and
//! `GET /readyz` (readiness: the engines answer and the read models keep up).

use crate::dto;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use std::sync::Arc;
use std::time::Duration;

/// How far behind the log's head the read models may be for `/readyz`: they must
/// reach the head read at the start of the check within this time.
pub const READY_MAX_LAG: Duration = Duration::from_secs(2);

/// Liveness.
pub async fn healthz(State(state): State<Arc<AppState>>) -> Json<dto::Health> {
    Json(dto::Health {
        status: "ok".to_string(),
        log_head: state.app.log.head(),
        projected: state.app.writes.projection().current(),
    })
}

/// Readiness, for load balancers and Kubernetes probes: the event log answers with
/// its acknowledged head, the read store with its checkpoint, and the read models
/// (as this node sees them) reach that head within [`READY_MAX_LAG`]. 503 otherwise,
/// saying which check failed, and 503 once the server is shutting down.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Result<Json<dto::Ready>, ApiError> {
    let unready = |reason: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, reason);
    if state.is_draining() {
        return Err(unready("shutting down".into()));
    }
    let head = match tokio::time::timeout(READY_MAX_LAG, state.app.log.durable_head()).await {
        Ok(Ok(head)) => head,
        Ok(Err(error)) => return Err(unready(format!("event log: {error}"))),
        Err(_) => return Err(unready("event log: no answer".into())),
    };
    let checkpoint = match tokio::time::timeout(READY_MAX_LAG, state.app.read.checkpoint()).await {
        Ok(Ok(checkpoint)) => checkpoint,
        Ok(Err(error)) => return Err(unready(format!("read store: {error}"))),
        Err(_) => return Err(unready("read store: no answer".into())),
    };
    let projection = state.app.writes.projection();
    if !projection.wait_for(head, READY_MAX_LAG).await {
        return Err(unready(format!(
            "read models lag: at {} of the log's {head}",
            projection.current()
        )));
    }
    Ok(Json(dto::Ready {
        status: "ready".to_string(),
        log_head: head,
        projected: projection.current().max(checkpoint),
    }))
}
