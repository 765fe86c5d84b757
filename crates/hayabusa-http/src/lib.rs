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
pub mod routes;
pub mod server;
pub mod state;

pub use state::{
    AppState, ConnectionSettings, PublicSettings, RateLimit, RateLimits, SyncSettings,
    UploadSettings,
};

use crate::error::ApiError;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, post, put};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower::Layer;
use tower::util::MapRequestLayer;

/// The API's routes (without the method-override wrapper).
pub fn router(state: Arc<AppState>) -> Router {
    // Install the process-wide metrics recorder before anything is recorded.
    metrics::handle();
    use routes::{
        accounts, contacts, files, health, links, me, members, messages, rooms, sync, tasks,
    };
    let upload_limit = state.uploads.max_bytes + 64 * 1024;
    let rate_limiter = Arc::new(rate_limit::RateLimiter::new(&state.rate_limits));
    // Posting routes count against their room's limit (messages, tasks and files alike).
    let room_posts =
        axum::middleware::from_fn_with_state(rate_limiter.clone(), rate_limit::limit_room_posts);
    let v2 = Router::new()
        .route("/openapi.json", get(openapi::serve))
        .route("/me", get(me::me))
        .route("/me/token", post(me::rotate_token))
        .route("/my/status", get(me::status))
        .route("/my/tasks", get(tasks::mine))
        .route("/contacts", get(contacts::list))
        .route("/contacts/requests", post(contacts::request))
        .route("/contacts/{account_id}", delete(contacts::remove))
        .route("/incoming_requests", get(contacts::incoming))
        .route(
            "/incoming_requests/{request_id}",
            put(contacts::approve).delete(contacts::reject),
        )
        .route(
            "/incoming_requests/{request_id}/accept",
            put(contacts::approve),
        )
        .route(
            "/incoming_requests/{request_id}/reject",
            put(contacts::reject).delete(contacts::reject),
        )
        .route(
            "/rooms/{room_id}/tasks",
            get(tasks::list).post(tasks::create.layer(room_posts.clone())),
        )
        .route("/rooms/{room_id}/tasks/{task_id}", get(tasks::get))
        .route(
            "/rooms/{room_id}/tasks/{task_id}/status",
            put(tasks::set_status),
        )
        .route(
            "/rooms/{room_id}/files",
            get(files::list)
                .post(files::upload.layer(room_posts.clone()))
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/rooms/{room_id}/files/{file_id}", get(files::get))
        .route("/files/download/{room_id}/{file_id}", get(files::download))
        .route(
            "/rooms/{room_id}/link",
            get(links::get)
                .post(links::create)
                .put(links::update)
                .delete(links::delete),
        )
        .route("/rooms/{room_id}/join_requests", get(links::join_requests))
        .route(
            "/rooms/{room_id}/join_requests/{account_id}",
            put(links::approve_join).delete(links::reject_join),
        )
        .route("/links/{code}/join", post(links::join))
        .route("/accounts", post(accounts::create))
        .route(
            "/accounts/{account_id}/token",
            post(accounts::issue_token).delete(accounts::revoke_token),
        )
        .route("/rooms", get(rooms::list).post(rooms::create))
        .route(
            "/rooms/{room_id}",
            get(rooms::get).put(rooms::update).delete(rooms::delete),
        )
        .route(
            "/rooms/{room_id}/members",
            get(members::list).put(members::replace),
        )
        .route(
            "/rooms/{room_id}/messages",
            get(messages::list).post(messages::post.layer(room_posts)),
        )
        .route("/sync", get(sync::long_poll))
        .route("/sync/ws", get(sync::websocket))
        .route("/rooms/{room_id}/messages/read", put(messages::read))
        .route("/rooms/{room_id}/messages/unread", put(messages::unread))
        .route(
            "/rooms/{room_id}/messages/{message_id}",
            get(messages::get)
                .put(messages::update)
                .delete(messages::delete),
        );
    Router::new()
        .nest("/v2", v2)
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics::serve))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
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
