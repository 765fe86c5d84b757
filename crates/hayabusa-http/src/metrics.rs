//! `GET /metrics`: Prometheus text format. Request counts and latencies by method,
//! route template and status, every label from a closed set (anything else is
//! `other`, or `unmatched` for a path that no route takes), open sync WebSockets, the event log and
//! projection positions read at scrape time, and the counters the event log and the
//! projector keep (`hayabusa_event_log_commits_total` and `…_appended_events_total`:
//! events per fsync; `hayabusa_projector_batches_total` and `…_events_total`: events
//! per read-store transaction).

use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Open sync WebSockets.
pub const WEBSOCKETS_OPEN: &str = "hayabusa_sync_websockets_open";

/// The process-wide recorder (metrics are global, one recorder per process).
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => Some(handle),
            Err(error) => {
                tracing::warn!(%error, "metrics recorder not installed");
                None
            }
        })
        .as_ref()
}

/// The `method` label: a standard method's name, `other` for anything else (a
/// client may send any token as a method; a label must not take it).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Middleware: counts and times every request by method, route template and status.
pub async fn track(request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    // The matched template is one of the router's own (a closed set).
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", status),
    ];
    metrics::counter!("hayabusa_http_requests_total", &labels).increment(1);
    metrics::histogram!("hayabusa_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The Prometheus text.
pub async fn serve(State(state): State<Arc<AppState>>) -> Response {
    let Some(handle) = handle() else {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not available",
        )
            .into_response();
    };
    let head = state.app.log.head();
    let projected = state.app.writes.projection().current();
    metrics::gauge!("hayabusa_event_log_head_position").set(head as f64);
    metrics::gauge!("hayabusa_projection_position").set(projected as f64);
    metrics::gauge!("hayabusa_projection_lag_events").set(head.saturating_sub(projected) as f64);
    handle.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}
