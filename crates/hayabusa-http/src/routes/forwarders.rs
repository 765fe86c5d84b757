//! `/v2/admin/forwarders` (extension): administrators subscribe destinations to the
//! domain events.

use crate::auth::Caller;
use crate::dto;
use crate::error::{ApiError, ApiResult};
use crate::params::{Params, path_id};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hayabusa_domain::webhook::MAX_URL_BYTES;
use hayabusa_domain::{RequestId, RoomId};
use std::sync::Arc;

/// 403 unless the caller is an administrator (before anything else).
fn require_admin(caller: &hayabusa_store::AccountRow) -> ApiResult<()> {
    if caller.admin {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "only administrators manage forwarders",
        ))
    }
}

/// Sets up a forwarder.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    params: Params,
) -> ApiResult<Json<dto::CreatedForwarder>> {
    require_admin(&caller)?;
    let url = params.required("url")?.trim().to_owned();
    if url.len() > MAX_URL_BYTES {
        return Err(ApiError::bad_request(format!(
            "url is longer than {MAX_URL_BYTES} bytes"
        )));
    }
    let mut event_types: Vec<String> = Vec::new();
    for name in params
        .get("event_types")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        let valid = name.len() <= 64 && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if !valid {
            return Err(ApiError::bad_request(
                "event_types must be a comma-separated list of stored event type names \
                 (message_posted, room_created, …)",
            ));
        }
        if !event_types.iter().any(|known| known == name) {
            event_types.push(name.to_owned());
        }
    }
    let mut room_ids: Vec<RoomId> = Vec::new();
    for raw in params
        .get("room_ids")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|raw| !raw.is_empty())
    {
        let room = raw.parse::<RoomId>().map_err(|_| {
            ApiError::bad_request("room_ids must be a comma-separated list of room ids")
        })?;
        room_ids.push(room);
    }
    state
        .webhooks
        .check(&url)
        .await
        .map_err(ApiError::bad_request)?;
    let (id, secret) = state
        .app
        .commands
        .create_forwarder(&caller, url, event_types, room_ids)
        .await?;
    Ok(Json(dto::CreatedForwarder {
        forwarder_id: id.to_string(),
        secret,
    }))
}

/// Every forwarder (without secrets).
pub async fn list(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    _params: Params,
) -> ApiResult<Json<Vec<dto::ForwarderView>>> {
    require_admin(&caller)?;
    let forwarders = state.app.commands.forwarders(&caller).await?;
    Ok(Json(
        forwarders.iter().map(dto::ForwarderView::of).collect(),
    ))
}

/// Removes a forwarder.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    _params: Params,
) -> ApiResult<StatusCode> {
    require_admin(&caller)?;
    let id: RequestId = path_id(&id, "forwarder_id", "forwarder")?;
    state.app.commands.delete_forwarder(&caller, id.0).await?;
    Ok(StatusCode::NO_CONTENT)
}
