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

/// The most dead letters one answer lists (the oldest first; `after` pages on).
pub const DEAD_LETTERS_PAGE: usize = 1_000;

/// A forwarder's dead letters, oldest first: at most [`DEAD_LETTERS_PAGE`] after
/// position `after`.
pub async fn dead_letters(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Vec<dto::DeadLetterView>>> {
    require_admin(&caller)?;
    let id: RequestId = path_id(&id, "forwarder_id", "forwarder")?;
    let after = match params.get("after") {
        None => 0,
        Some(raw) => raw
            .trim()
            .parse::<u64>()
            .map_err(|_| ApiError::bad_request("after must be a log position (a number)"))?,
    };
    let letters = state.app.commands.dead_letters(&caller, id.0).await?;
    Ok(Json(
        letters
            .letters
            .range(after.saturating_add(1)..)
            .take(DEAD_LETTERS_PAGE)
            .map(|(_, letter)| dto::DeadLetterView::of(letter))
            .collect(),
    ))
}

/// Asks for a forwarder's dead letters (those at `positions`, or every one) to be
/// sent again.
pub async fn replay(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<dto::ReplayRequested>> {
    require_admin(&caller)?;
    let id: RequestId = path_id(&id, "forwarder_id", "forwarder")?;
    let positions = match params.get("positions") {
        None => None,
        Some(raw) => {
            let mut positions = Vec::new();
            for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                positions.push(part.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(
                        "positions must be a comma-separated list of dead letters' positions",
                    )
                })?);
            }
            if positions.len() > DEAD_LETTERS_PAGE {
                return Err(ApiError::bad_request(format!(
                    "at most {DEAD_LETTERS_PAGE} positions at a time"
                )));
            }
            Some(positions)
        }
    };
    let letters = state
        .app
        .commands
        .replay_dead_letters(&caller, id.0, positions)
        .await?;
    Ok(Json(dto::ReplayRequested {
        replay_positions: letters.to_replay().map(|letter| letter.position).collect(),
    }))
}
