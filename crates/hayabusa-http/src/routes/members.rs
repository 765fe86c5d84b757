//! `/v2/rooms/{room_id}/members`.

use crate::auth::Caller;
use crate::dto;
use crate::error::ApiResult;
use crate::params::{Params, room_id};
use crate::routes::rooms::member_lists;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use hayabusa_domain::Role;
use std::sync::Arc;

/// The room's members.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(room): Path<String>,
    _params: Params,
) -> ApiResult<Json<Vec<dto::Member>>> {
    let room = room_id(&room)?;
    let members = state.app.queries.members(caller.account_id, room).await?;
    Ok(Json(
        members
            .iter()
            .map(|m| dto::Member::new(m, &state.public.base_url))
            .collect(),
    ))
}

/// Replaces the member list (admins).
pub async fn replace(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(room): Path<String>,
    params: Params,
) -> ApiResult<Json<dto::MemberIds>> {
    let room = room_id(&room)?;
    let members = member_lists(&params)?;
    state
        .app
        .commands
        .set_members(&caller, room, members.clone())
        .await?;
    let ids = |role: Role| -> Vec<u64> {
        let mut ids: Vec<u64> = members
            .iter()
            .filter(|(_, r)| *r == role)
            .map(|(id, _)| id.0)
            .collect();
        ids.sort_unstable();
        ids
    };
    Ok(Json(dto::MemberIds {
        admin: ids(Role::Admin),
        member: ids(Role::Member),
        readonly: ids(Role::Readonly),
    }))
}
