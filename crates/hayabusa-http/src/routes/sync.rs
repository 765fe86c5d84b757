//! `GET /v2/sync` (long-poll) and `GET /v2/sync/ws` (WebSocket): LINE-style fetchOps.
//!
//! Both serve the same ops from the same revisions through one
//! `hayabusa_app::sync::OpStream` (which owns the wake-up registration and follows
//! the account's rooms); this module keeps only the framing, pings and close codes.
//! The WebSocket sends the backlog after `since`, then live ops as JSON text frames,
//! one op per frame. It keeps nothing but a revision and a wake-up registration per
//! connection: ops are re-read from the store after each wake-up, so a dropped client
//! simply resumes from the revision of the last op it got.

use crate::auth::token_of;
use crate::dto;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::public_url;
use crate::state::AppState;
use axum::Json;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use hayabusa_app::AppError;
use hayabusa_app::sync::Batch;
use hayabusa_app::sync::{
    DEFAULT_LIMIT, DEFAULT_TIMEOUT_SECS, MAX_LIMIT, MAX_TIMEOUT_SECS, OpStream, Revision,
    SyncError, op_revisions, parse_revision,
};
use hayabusa_domain::AccountId;
use hayabusa_store::OpRecord;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// Close code for a client that did not keep up: reconnect with the last revision.
pub const CLOSE_SLOW_CONSUMER: u16 = 4000;
/// Close code for a client that stopped answering pings.
pub const CLOSE_NO_PONG: u16 = 4001;
/// Close code when the server cannot read the client's ops (try again later).
pub const CLOSE_UNAVAILABLE: u16 = 1011;
/// Close code for a session whose token was rotated or revoked.
pub const CLOSE_TOKEN_REVOKED: u16 = 4003;
/// Close code when the server shuts down (WebSocket's "going away"): reconnect, to
/// another node, with the last revision.
pub const CLOSE_GOING_AWAY: u16 = 1001;

fn sync_error(error: SyncError) -> ApiError {
    match error {
        SyncError::Gone(_) => ApiError::new(StatusCode::GONE, error.to_string()),
        _ => ApiError::bad_request(error.to_string()),
    }
}

/// `since` (checked), or None when absent.
async fn since_of(state: &AppState, params: &Params) -> ApiResult<Option<Revision>> {
    let Some(raw) = params.get("since").filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let since = parse_revision(raw).map_err(sync_error)?;
    state.app.sync.check(since).await?.map_err(sync_error)?;
    Ok(Some(since))
}

/// One op as the client sees it: its fields plus `type` and `revision`.
pub fn op_json(op: &OpRecord, revision: Revision) -> Value {
    let mut fields: Map<String, Value> = serde_json::from_str(&op.payload).unwrap_or_default();
    fields.insert("type".into(), Value::String(op.op_type.clone()));
    fields.insert("revision".into(), Value::String(revision.to_string()));
    Value::Object(fields)
}

/// The same op as a WebSocket text frame, spliced without re-parsing the stored
/// payload (the hot path: one frame per op per listening socket).
pub fn op_frame(op: &OpRecord, revision: Revision) -> String {
    let payload = op.payload.trim();
    match payload.strip_prefix('{').filter(|_| payload.ends_with('}')) {
        Some(rest) => {
            let separator = if rest.trim_start().starts_with('}') {
                ""
            } else {
                ","
            };
            let op_type = serde_json::to_string(&op.op_type).unwrap_or_else(|_| "\"\"".into());
            format!("{{\"type\":{op_type},\"revision\":\"{revision}\"{separator}{rest}")
        }
        None => op_json(op, revision).to_string(),
    }
}

fn batch_json(batch: &Batch) -> dto::SyncBatch {
    let ops: Vec<Value> = batch
        .ops
        .iter()
        .zip(op_revisions(&batch.ops))
        .map(|(op, revision)| op_json(op, revision))
        .collect();
    dto::SyncBatch {
        revision: batch.revision.to_string(),
        ops,
    }
}

/// Long-poll.
pub async fn long_poll(
    State(state): State<Arc<AppState>>,
    crate::auth::Caller(caller): crate::auth::Caller,
    params: Params,
) -> ApiResult<Json<dto::SyncBatch>> {
    let timeout = match params.get("timeout").filter(|s| !s.is_empty()) {
        None => DEFAULT_TIMEOUT_SECS,
        Some(raw) => raw
            .parse::<u64>()
            .ok()
            .filter(|t| *t <= MAX_TIMEOUT_SECS)
            .ok_or_else(|| {
                ApiError::bad_request(format!("timeout must be 0 to {MAX_TIMEOUT_SECS} seconds"))
            })?,
    };
    let limit = limit_of(&params)?;
    state.app.sync.settle(caller.account_id).await?;
    let Some(since) = since_of(&state, &params).await? else {
        let current = Revision::at(state.app.sync.current());
        return Ok(Json(dto::SyncBatch {
            revision: current.to_string(),
            ops: Vec::new(),
        }));
    };
    // A server shutting down answers with what there is now rather than hold the
    // poll: the client polls again, through another node.
    let wait = if state.is_draining() {
        Duration::ZERO
    } else {
        Duration::from_secs(timeout)
    };
    let sync = &state.app.sync;
    let batch = tokio::select! {
        batch = sync.long_poll(caller.account_id, since, wait, limit) => batch?,
        () = state.drained() => {
            sync.long_poll(caller.account_id, since, Duration::ZERO, limit).await?
        }
    };
    Ok(Json(batch_json(&batch)))
}

fn limit_of(params: &Params) -> ApiResult<usize> {
    match params.get("limit").filter(|s| !s.is_empty()) {
        None => Ok(DEFAULT_LIMIT),
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| ApiError::bad_request(format!("limit must be 1 to {MAX_LIMIT}"))),
    }
}

/// Whether a browser page of `Origin` may open the WebSocket: no `Origin` (not a
/// browser), a configured origin, or the server's own origin, scheme included: that
/// of its public URL (as a trusted proxy forwards it). The `Host` header does not
/// count (DNS rebinding makes it the attacker's name).
fn origin_allowed(parts: &Parts, state: &AppState) -> bool {
    let Some(origin) = parts.headers.get("origin").and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let allowed = &state.sync.allowed_origins;
    if allowed.iter().any(|a| a == origin || a == "*") {
        return true;
    }
    let base = public_url::base_url_for(&state.public, &parts.headers, public_url::peer_of(parts));
    origin.eq_ignore_ascii_case(public_url::origin_of(&base))
}

/// WebSocket upgrade.
pub async fn websocket(State(state): State<Arc<AppState>>, request: Request) -> Response {
    match upgrade(state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn upgrade(state: Arc<AppState>, request: Request) -> ApiResult<Response> {
    let (mut parts, _body) = request.into_parts();
    if !origin_allowed(&parts, &state) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this Origin may not open a sync WebSocket",
        ));
    }
    let params = Params::from_query(parts.uri.query());
    let token = token_of(&parts).or_else(|| params.get("token").map(str::to_string));
    let credential = match &token {
        Some(token) => Credential::Token(token.clone()),
        None => Credential::Session(
            crate::auth::session_cookie_of(&parts).ok_or_else(ApiError::unauthorized)?,
        ),
    };
    let (caller, _) = crate::auth::authenticate(&parts, &state, token).await?;
    state.app.sync.settle(caller.account_id).await?;
    let since = match since_of(&state, &params).await? {
        Some(since) => since,
        None => Revision::at(state.app.sync.current()),
    };
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &state)
        .await
        .map_err(|rejection| {
            ApiError::bad_request(format!("not a WebSocket request: {rejection}"))
        })?;
    let settings = state.sync.clone();
    Ok(upgrade
        .read_buffer_size(2 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(
            settings
                .max_write_buffer
                .max(crate::state::MIN_WRITE_BUFFER),
        )
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| async move {
            serve_socket(socket, state, caller.account_id, credential, since).await;
        }))
}

enum Outcome {
    Continue,
    Stop,
}

/// What a socket was opened with, checked again when it may have stopped working.
enum Credential {
    /// An API token (checked again when the account's token changes).
    Token(String),
    /// The web client's session cookie (checked again at every ping: a sign-out
    /// on any node ends the socket within a ping interval).
    Session(String),
}

impl Credential {
    async fn check(&self, state: &AppState) -> Result<(), AppError> {
        match self {
            Credential::Token(token) => state.app.queries.authenticate(token).await.map(|_| ()),
            Credential::Session(cookie) => state
                .app
                .queries
                .authenticate_session(cookie)
                .await
                .map(|_| ()),
        }
    }
}

/// Closes `socket` as `error` (from checking its credential again) says.
async fn close_for(socket: &mut WebSocket, error: AppError) {
    let (code, reason) = match error {
        AppError::Unauthenticated => (CLOSE_TOKEN_REVOKED, "token revoked: authenticate again"),
        _ => (CLOSE_UNAVAILABLE, "temporarily unavailable: reconnect"),
    };
    close(socket, code, reason).await;
}

async fn send(socket: &mut WebSocket, message: Message, timeout: Duration) -> Outcome {
    match tokio::time::timeout(timeout, socket.send(message)).await {
        Ok(Ok(())) => Outcome::Continue,
        Ok(Err(_)) => Outcome::Stop,
        Err(_) => {
            close(
                socket,
                CLOSE_SLOW_CONSUMER,
                "slow consumer: reconnect with since=<last revision>",
            )
            .await;
            Outcome::Stop
        }
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    // The client may not be reading at all: give the close frame a moment only.
    let _ = tokio::time::timeout(Duration::from_millis(100), socket.send(frame)).await;
}

/// Sends every op the stream has now, page by page; false if the socket must close.
async fn catch_up(
    socket: &mut WebSocket,
    state: &AppState,
    account: AccountId,
    ops: &mut OpStream<'_>,
) -> bool {
    let settings = &state.sync;
    loop {
        let batch = match ops.next_page(settings.page_size).await {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(%error, %account, "sync read failed");
                close(
                    socket,
                    CLOSE_UNAVAILABLE,
                    "temporarily unavailable: reconnect",
                )
                .await;
                return false;
            }
        };
        for (op, op_revision) in batch.ops.iter().zip(op_revisions(&batch.ops)) {
            let frame = Message::Text(op_frame(op, op_revision).into());
            if let Outcome::Stop = send(socket, frame, settings.send_timeout).await {
                return false;
            }
        }
        if batch.ops.len() < settings.page_size {
            return true;
        }
    }
}

async fn serve_socket(
    socket: WebSocket,
    state: Arc<AppState>,
    account: AccountId,
    credential: Credential,
    since: Revision,
) {
    let open = metrics::gauge!(crate::metrics::WEBSOCKETS_OPEN);
    open.increment(1.0);
    serve_open_socket(socket, state, account, credential, since).await;
    open.decrement(1.0);
}

/// Resolves when `account`'s token may have changed (its rotation or revocation, or
/// too many changes to tell); never, once the cache is gone.
async fn token_maybe_changed(
    changes: &mut Option<tokio::sync::broadcast::Receiver<AccountId>>,
    account: AccountId,
) {
    use tokio::sync::broadcast::error::RecvError;
    let Some(receiver) = changes.as_mut() else {
        return std::future::pending().await;
    };
    loop {
        match receiver.recv().await {
            Ok(changed) if changed == account => return,
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => return,
            Err(RecvError::Closed) => {
                *changes = None;
                return std::future::pending().await;
            }
        }
    }
}

async fn serve_open_socket(
    mut socket: WebSocket,
    state: Arc<AppState>,
    account: AccountId,
    credential: Credential,
    since: Revision,
) {
    let mut token_changes = Some(state.app.queries.token_changes());
    let mut ops = match state.app.sync.stream(account, since).await {
        Ok(ops) => ops,
        Err(error) => {
            tracing::warn!(%error, %account, "sync subscribe failed");
            close(
                &mut socket,
                CLOSE_UNAVAILABLE,
                "temporarily unavailable: reconnect",
            )
            .await;
            return;
        }
    };
    let mut ping = tokio::time::interval(state.sync.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let mut awaiting_pong = false;
    loop {
        if !catch_up(&mut socket, &state, account, &mut ops).await {
            return;
        }
        tokio::select! {
            _ = ops.woken() => {}
            () = state.drained() => {
                close(&mut socket, CLOSE_GOING_AWAY, "server shutting down: reconnect with since=<last revision>").await;
                return;
            }
            () = token_maybe_changed(&mut token_changes, account) => {
                // A rotated or revoked token ends the sessions it opened.
                if let Err(error) = credential.check(&state).await {
                    close_for(&mut socket, error).await;
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Pong(_))) => awaiting_pong = false,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if awaiting_pong {
                    close(&mut socket, CLOSE_NO_PONG, "no pong: reconnect with since=<last revision>").await;
                    return;
                }
                if let Credential::Session(_) = credential
                    && let Err(error) = credential.check(&state).await
                {
                    close_for(&mut socket, error).await;
                    return;
                }
                if let Outcome::Stop = send(&mut socket, Message::Ping(Default::default()), state.sync.send_timeout).await {
                    return;
                }
                awaiting_pong = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hayabusa_domain::RoomId;

    fn op(payload: &str) -> OpRecord {
        OpRecord {
            position: 7,
            index: 0,
            room_id: Some(RoomId(1)),
            target: None,
            op_type: "message_created".into(),
            payload: payload.into(),
        }
    }

    #[test]
    fn a_spliced_frame_equals_the_parsed_op() {
        for payload in [
            r#"{"room_id":1,"body":"a \"quoted\" }"}"#,
            "{}",
            " { } ",
            "not json",
        ] {
            let op = op(payload);
            let revision = Revision {
                position: 7,
                index: Some(0),
            };
            let frame: Value = serde_json::from_str(&op_frame(&op, revision)).expect("valid JSON");
            assert_eq!(frame, op_json(&op, revision), "{payload}");
        }
    }
}
