//! Hayabusa's HTTP API: the ChatWork v2 wire format and Hayabusa's extensions, on
//! axum. Only this crate knows ChatWork JSON; it turns requests into application
//! commands and queries and errors into `{"errors":[…]}`.

pub mod auth;
pub mod dto;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod public_url;
pub mod rate_limit;
pub mod route_table;
pub mod routes;
pub mod server;
pub mod state;
pub mod web;

pub use route_table::{Access, BodyLimit, RouteSpec, routes};
pub use state::{
    AppState, ConnectionSettings, PublicSettings, RateLimit, RateLimits, SyncSettings,
    UploadSettings,
};

use crate::error::ApiError;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{Method, StatusCode};
use axum::routing::MethodRouter;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower::Layer;
use tower::util::MapRequestLayer;

/// The routes a node that does not serve the API still answers (probes, metrics).
pub const OPERATIONS_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The API's routes (without the method-override wrapper), built from [`routes()`]
/// (only [`OPERATIONS_PATHS`] on a node that does not serve the API).
pub fn router(state: Arc<AppState>) -> Router {
    // Install the process-wide metrics recorder before anything is recorded.
    metrics::handle();
    let upload_limit = state.uploads.max_bytes + 64 * 1024;
    let rate_limiter = Arc::new(rate_limit::RateLimiter::new(
        &state.rate_limits,
        state.rate_windows.clone(),
    ));
    // Posting routes count against their room's limit (messages, tasks and files alike).
    let room_posts =
        axum::middleware::from_fn_with_state(rate_limiter.clone(), rate_limit::limit_room_posts);
    let mut paths: Vec<(&'static str, MethodRouter<Arc<AppState>>)> = Vec::new();
    for spec in routes() {
        if !state.api && !OPERATIONS_PATHS.contains(&spec.path) {
            continue;
        }
        let mut method_router = (spec.handler)(spec.filter());
        if spec.room_post {
            method_router = method_router.layer(room_posts.clone());
        }
        if spec.path == "/v2/session" && spec.method == Method::POST {
            // Sign-in attempts count against their address and peer.
            method_router = method_router.layer(axum::Extension(rate_limiter.clone()));
        }
        if spec.body == BodyLimit::Upload {
            method_router = method_router.layer(DefaultBodyLimit::max(upload_limit));
        }
        match paths.iter_mut().find(|(path, _)| *path == spec.path) {
            Some((_, existing)) => *existing = std::mem::take(existing).merge(method_router),
            None => paths.push((spec.path, method_router)),
        }
    }
    let mut api = paths
        .into_iter()
        .fold(Router::new(), |router, (path, method_router)| {
            router.route(path, method_router)
        });
    if state.api {
        // The web client, compressed for browsers that accept it.
        let compression = tower_http::compression::CompressionLayer::new();
        api = api
            .route(
                "/",
                axum::routing::get(web::index).layer(compression.clone()),
            )
            .route(
                "/assets/{name}",
                axum::routing::get(web::asset).layer(compression),
            );
    }
    api.fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed for this endpoint",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            (rate_limiter, state.clone()),
            rate_limit::enforce,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::enforce,
        ))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(DefaultBodyLimit::max(params::MAX_FORM_BYTES))
        .with_state(state)
}

/// ChatWork clients may send `POST …?method=PUT` (or `DELETE`): rewrite the method
/// before routing.
pub fn override_method(mut request: Request) -> Request {
    if request.method() == Method::POST
        && let Some(query) = request.uri().query()
    {
        let wanted = form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "method")
            .map(|(_, value)| value.to_ascii_uppercase());
        match wanted.as_deref() {
            Some("PUT") => *request.method_mut() = Method::PUT,
            Some("DELETE") => *request.method_mut() = Method::DELETE,
            _ => {}
        }
    }
    request
}

/// Serves the API on `listener` until `shutdown` resolves, then drains in-flight
/// requests; connection timeouts and the connection cap are `state.connections`
/// (see [`server`]).
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let settings = state.connections.clone();
    let service = MapRequestLayer::new(override_method).layer(router(state));
    server::run(listener, service, settings, shutdown).await
}
