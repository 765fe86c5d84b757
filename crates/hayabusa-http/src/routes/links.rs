//! `/v2/rooms/{room_id}/link`, and the extensions to join by link and to resolve
//! join requests.

use crate::auth::Caller;
use crate::dto;
use crate::error::{ApiError, ApiResult};
use crate::params::{Params, path_id, room_id};
use crate::public_url::BaseUrl;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hayabusa_app::{Joined, LinkSettings};
use hayabusa_domain::AccountId;
use hayabusa_domain::room::validate_link_code;
use std::sync::Arc;

fn settings(params: &Params) -> ApiResult<LinkSettings> {
    let code = params
        .get("code")
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    if let Some(code) = &code {
        validate_link_code(code).map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let need_acceptance = match params.get("need_acceptance").filter(|s| !s.is_empty()) {
        None => None,
        Some(_) => Some(params.flag("need_acceptance", true)?),
    };
    let description = params.get("description").map(str::to_string);
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 1_000)
    {
        return Err(ApiError::bad_request(
            "description is longer than 1000 characters",
        ));
    }
    Ok(LinkSettings {
        code,
        need_acceptance,
        description,
    })
}

async fn answer(
    state: &AppState,
    caller: AccountId,
    room: hayabusa_domain::RoomId,
    base: &str,
) -> ApiResult<Json<dto::Link>> {
    let link = state.app.queries.link(caller, room).await?;
    Ok(Json(dto::Link::new(link.as_ref(), base)))
}

/// The room's link (`{"public": false}` if none).
pub async fn get(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(room): Path<String>,
    BaseUrl(base): BaseUrl,
    _params: Params,
) -> ApiResult<Json<dto::Link>> {
    let room = room_id(&room)?;
    answer(&state, caller.account_id, room, &base).await
}

/// Creates the link (admins).
pub async fn create(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(room): Path<String>,
    BaseUrl(base): BaseUrl,
    params: Params,
) -> ApiResult<Json<dto::Link>> {
    let room = room_id(&room)?;
    let settings = settings(&params)?;
    state
        .app
        .commands
        .create_link(caller.account_id, room, settings)
        .await?;
    answer(&state, caller.account_id, room, &base).await
}

/// Changes the link (admins).
pub async fn update(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(room): Path<String>,
    BaseUrl(base): BaseUrl,
    params: Params,
) -> ApiResult<Json<dto::Link>> {
    let room = room_id(&room)?;
    let settings = settings(&params)?;
    state
        .app
        .commands
        .update_link(caller.account_id, room, settings)
        .await?;
    answer(&state, caller.account_id, room, &base).await
}

/// Removes the link (admins).
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(room): Path<String>,
    _params: Params,
) -> ApiResult<Json<dto::Link>> {
    let room = room_id(&room)?;
    state
        .app
        .commands
        .delete_link(caller.account_id, room)
        .await?;
    Ok(Json(dto::Link::new(None, "")))
}

/// Joins by link (extension): 200 with the room when joined, 202 when an admin
/// must accept first.
pub async fn join(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(code): Path<String>,
    _params: Params,
) -> ApiResult<(StatusCode, Json<dto::JoinResult>)> {
    let written = state
        .app
        .commands
        .join_by_link(caller.account_id, &code)
        .await?;
    Ok(match written.value {
        Joined::Member(room) => (
            StatusCode::OK,
            Json(dto::JoinResult {
                room_id: room.0,
                status: dto::JoinStatus::Joined,
            }),
        ),
        Joined::Pending(room) => (
            StatusCode::ACCEPTED,
            Json(dto::JoinResult {
                room_id: room.0,
                status: dto::JoinStatus::Pending,
            }),
        ),
    })
}

/// Pending join requests of a room (extension).
pub async fn join_requests(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(room): Path<String>,
    _params: Params,
) -> ApiResult<Json<Vec<dto::JoinRequest>>> {
    let room = room_id(&room)?;
    let requests = state
        .app
        .queries
        .join_requests(caller.account_id, room)
        .await?;
    Ok(Json(requests.iter().map(dto::JoinRequest::from).collect()))
}

async fn resolve(
    state: &AppState,
    caller: AccountId,
    room: &str,
    account: &str,
    approve: bool,
) -> ApiResult<StatusCode> {
    let room = room_id(room)?;
    let account: AccountId = path_id(account, "account_id", "join request")?;
    state
        .app
        .commands
        .resolve_join(caller, room, account, approve)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lets a pending account in (admins; extension).
pub async fn approve_join(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path((room, account)): Path<(String, String)>,
    _params: Params,
) -> ApiResult<StatusCode> {
    resolve(&state, caller.account_id, &room, &account, true).await
}

/// Turns a pending account away (admins; extension).
pub async fn reject_join(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path((room, account)): Path<(String, String)>,
    _params: Params,
) -> ApiResult<StatusCode> {
    resolve(&state, caller.account_id, &room, &account, false).await
}
