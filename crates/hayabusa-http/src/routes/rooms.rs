//! `/v2/rooms` and `/v2/rooms/{room_id}`.

use crate::auth::Caller;
use crate::dto;
use crate::error::{ApiError, ApiResult};
use crate::params::{Params, room_id};
use crate::routes::idempotency;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use hayabusa_app::NewRoom;
use hayabusa_domain::{AccountId, Role, RoomCommand};
use std::sync::Arc;

/// The caller's rooms.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    _params: Params,
) -> ApiResult<Json<Vec<dto::Room>>> {
    let rooms = state.app.queries.rooms(caller.account_id).await?;
    Ok(Json(
        rooms
            .iter()
            .map(|r| dto::Room::summary(r, &state.public.base_url))
            .collect(),
    ))
}

/// Reads `members_admin_ids` (required, ≥ 1), `members_member_ids`, `members_readonly_ids`.
pub fn member_lists(params: &Params) -> ApiResult<Vec<(AccountId, Role)>> {
    if params.get("members_admin_ids").is_none() {
        return Err(ApiError::bad_request("members_admin_ids is required"));
    }
    let admins = params.id_list("members_admin_ids")?;
    if admins.is_empty() {
        return Err(ApiError::bad_request(
            "members_admin_ids must name at least one account",
        ));
    }
    let mut members: Vec<(AccountId, Role)> =
        admins.into_iter().map(|id| (id, Role::Admin)).collect();
    members.extend(
        params
            .id_list("members_member_ids")?
            .into_iter()
            .map(|id| (id, Role::Member)),
    );
    members.extend(
        params
            .id_list("members_readonly_ids")?
            .into_iter()
            .map(|id| (id, Role::Readonly)),
    );
    Ok(members)
}

/// Creates a group room.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Json<dto::RoomId>> {
    let key = idempotency(&headers, caller.account_id, &method, &uri, &params)?;
    let name = params.required("name")?;
    let members = member_lists(&params)?;
    let link = params.flag("link", false)?;
    let link_code = params
        .get("link_code")
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    if let Some(code) = &link_code {
        hayabusa_domain::room::validate_link_code(code)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let link_need_acceptance = params.flag("link_need_acceptance", true)?;
    let input = NewRoom {
        name,
        description: params.get("description").unwrap_or_default().to_string(),
        icon_preset: params.get("icon_preset").unwrap_or("group").to_string(),
        members,
    };
    let written = state.app.commands.create_room(&caller, input, key).await?;
    if link {
        let settings = hayabusa_app::LinkSettings {
            code: link_code,
            need_acceptance: Some(link_need_acceptance),
            description: None,
        };
        state
            .app
            .commands
            .create_link(caller.account_id, written.value, settings)
            .await?;
    }
    Ok(Json(dto::RoomId {
        room_id: written.value.0,
    }))
}

/// One room with its description.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(room): Path<String>,
    _params: Params,
) -> ApiResult<Json<dto::Room>> {
    let room = room_id(&room)?;
    let view = state.app.queries.room(caller.account_id, room).await?;
    Ok(Json(dto::Room::detail(&view, &state.public.base_url)))
}

/// Changes name, description or icon (admins of group rooms).
pub async fn update(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(room): Path<String>,
    params: Params,
) -> ApiResult<Json<dto::RoomId>> {
    let room = room_id(&room)?;
    let name = params.get("name").map(str::to_string);
    let description = params.get("description").map(str::to_string);
    let icon_preset = params.get("icon_preset").map(str::to_string);
    if name.is_none() && description.is_none() && icon_preset.is_none() {
        return Err(ApiError::bad_request(
            "give at least one of name, description, icon_preset",
        ));
    }
    let command = RoomCommand::Update {
        name,
        description,
        icon_preset,
    };
    state
        .app
        .commands
        .execute(room, caller.account_id, command, None)
        .await?;
    Ok(Json(dto::RoomId { room_id: room.0 }))
}

/// Leaves (`action_type=leave`) or deletes (`action_type=delete`, admins) a room.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(room): Path<String>,
    params: Params,
) -> ApiResult<StatusCode> {
    let room = room_id(&room)?;
    let command = match params.one_of("action_type", &["leave", "delete"])? {
        Some("leave") => RoomCommand::Leave,
        Some(_) => RoomCommand::Delete,
        None => {
            return Err(ApiError::bad_request(
                "action_type is required (leave or delete)",
            ));
        }
    };
    state
        .app
        .commands
        .execute(room, caller.account_id, command, None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
