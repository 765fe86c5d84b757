//! `/v2/webhooks` (extension; ChatWork sets webhooks up in its web UI): an account's
//! webhooks, ChatWork's five at most.

use crate::auth::Caller;
use crate::dto;
use crate::error::{ApiError, ApiResult};
use crate::params::{Params, path_id};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hayabusa_domain::webhook::MAX_URL_BYTES;
use hayabusa_domain::{RequestId, RoomId, WebhookEventType};
use std::sync::Arc;

/// The names `event_types` may hold.
pub const EVENT_TYPES: &str = "message_created, message_updated, mention_to_me";

/// Sets up a webhook.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    params: Params,
) -> ApiResult<Json<dto::CreatedWebhook>> {
    let url = params.required("url")?.trim().to_owned();
    if url.len() > MAX_URL_BYTES {
        return Err(ApiError::bad_request(format!(
            "url is longer than {MAX_URL_BYTES} bytes"
        )));
    }
    let mut event_types = Vec::new();
    for name in params
        .required("event_types")?
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        let kind = WebhookEventType::parse(name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "event_types must be a comma-separated list of {EVENT_TYPES}"
            ))
        })?;
        if !event_types.contains(&kind) {
            event_types.push(kind);
        }
    }
    let room_id: Option<RoomId> = params.optional_id("room_id")?;
    if !url.starts_with("https://") && !url.starts_with("http://") {
        return Err(ApiError::bad_request("url must be an https URL"));
    }
    state
        .webhooks
        .check(&url)
        .await
        .map_err(ApiError::bad_request)?;
    let created = state
        .app
        .commands
        .create_webhook(&caller, url, event_types, room_id)
        .await?;
    Ok(Json(dto::CreatedWebhook {
        webhook_setting_id: created.setting_id.to_string(),
        token: created.token,
    }))
}

/// The caller's webhooks (without their tokens).
pub async fn list(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    _params: Params,
) -> ApiResult<Json<Vec<dto::Webhook>>> {
    let settings = state.app.commands.webhooks_of(&caller).await?;
    Ok(Json(settings.iter().map(dto::Webhook::of).collect()))
}

/// Deletes one of the caller's webhooks.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    _params: Params,
) -> ApiResult<StatusCode> {
    let id: RequestId = path_id(&id, "webhook_setting_id", "webhook")?;
    state.app.commands.delete_webhook(&caller, id.0).await?;
    Ok(StatusCode::NO_CONTENT)
}
