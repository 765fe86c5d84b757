//! `/v2/rooms/{room_id}/messages…`.

use crate::auth::Caller;
use crate::dto;
use crate::error::ApiResult;
use crate::params::{Params, message_id, message_id_param, room_id};
use crate::routes::idempotency;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hayabusa_domain::{AccountId, RoomCommand, RoomId};
use hayabusa_store::MessageView;
use std::sync::Arc;

/// Messages: new since the caller's last fetch (`force=0`, default) or the latest
/// 100 (`force=1`). 204 when there are none.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(room): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    let room = room_id(&room)?;
    let queries = &state.app.queries;
    let page = if params.flag("force", false)? {
        queries
            .latest_page(caller.account_id, room, |messages| {
                render_messages(messages, &state.public.base_url)
            })
            .await?
    } else {
        let messages = queries.new_messages(caller.account_id, room).await?;
        (!messages.is_empty()).then(|| render_messages(&messages, &state.public.base_url))
    };
    Ok(match page {
        Some(body) => ([(CONTENT_TYPE, "application/json")], body).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// A message list as the JSON array the API returns.
fn render_messages(messages: &[MessageView], base: &str) -> Bytes {
    let body: Vec<dto::Message> = messages
        .iter()
        .map(|m| dto::Message::new(m, base))
        .collect();
    serde_json::to_vec(&body)
        .expect("messages serialize to JSON")
        .into()
}

/// Posts a message.
pub async fn post(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(room): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Json<dto::MessageId>> {
    let room = room_id(&room)?;
    let key = idempotency(&headers, caller.account_id, &method, &uri, &params)?;
    let body = params.required("body")?;
    let self_unread = params.flag("self_unread", false)?;
    let written = state
        .app
        .commands
        .post_message(caller.account_id, room, body, self_unread, key)
        .await?;
    Ok(Json(dto::MessageId::new(written.value)))
}

async fn move_read_cursor(
    state: &AppState,
    caller: AccountId,
    room: RoomId,
    command: RoomCommand,
) -> ApiResult<Json<dto::UnreadCounts>> {
    state
        .app
        .commands
        .execute(room, caller, command, None)
        .await?;
    let view = state.app.queries.room(caller, room).await?;
    Ok(Json(dto::UnreadCounts {
        unread_num: view.unread_num,
        mention_num: view.mention_num,
    }))
}

/// Marks messages read up to `message_id` (default: all).
pub async fn read(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(room): Path<String>,
    params: Params,
) -> ApiResult<Json<dto::UnreadCounts>> {
    let room = room_id(&room)?;
    let message_id = params
        .get("message_id")
        .filter(|s| !s.is_empty())
        .map(message_id_param)
        .transpose()?;
    let command = RoomCommand::MoveReadCursor {
        message_id,
        read: true,
    };
    move_read_cursor(&state, caller.account_id, room, command).await
}

/// Marks messages unread from `message_id` on.
pub async fn unread(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(room): Path<String>,
    params: Params,
) -> ApiResult<Json<dto::UnreadCounts>> {
    let room = room_id(&room)?;
    let message_id = message_id_param(&params.required("message_id")?)?;
    let command = RoomCommand::MoveReadCursor {
        message_id: Some(message_id),
        read: false,
    };
    move_read_cursor(&state, caller.account_id, room, command).await
}

/// One message.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path((room, message)): Path<(String, String)>,
    _params: Params,
) -> ApiResult<Json<dto::Message>> {
    let room = room_id(&room)?;
    let message = message_id(&message)?;
    let view = state
        .app
        .queries
        .message(caller.account_id, room, message)
        .await?;
    Ok(Json(dto::Message::new(&view, &state.public.base_url)))
}

/// Edits one's own message.
pub async fn update(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path((room, message)): Path<(String, String)>,
    params: Params,
) -> ApiResult<Json<dto::MessageId>> {
    let room = room_id(&room)?;
    let message = message_id(&message)?;
    let body = params.required("body")?;
    let command = RoomCommand::EditMessage {
        message_id: message,
        body,
    };
    state
        .app
        .commands
        .execute(room, caller.account_id, command, None)
        .await?;
    Ok(Json(dto::MessageId::new(message)))
}

/// Deletes one's own message.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path((room, message)): Path<(String, String)>,
    _params: Params,
) -> ApiResult<Json<dto::MessageId>> {
    let room = room_id(&room)?;
    let message = message_id(&message)?;
    let command = RoomCommand::DeleteMessage {
        message_id: message,
    };
    state
        .app
        .commands
        .execute(room, caller.account_id, command, None)
        .await?;
    Ok(Json(dto::MessageId::new(message)))
}
