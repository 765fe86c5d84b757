//! `/v2/contacts…` and `/v2/incoming_requests…`.

use crate::auth::Caller;
use crate::dto;
use crate::error::{ApiError, ApiResult};
use crate::params::{Params, path_id};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hayabusa_domain::{AccountId, RequestId};
use std::sync::Arc;

/// The caller's contacts.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    _params: Params,
) -> ApiResult<Json<Vec<dto::Contact>>> {
    let contacts = state.app.queries.contacts(caller.account_id).await?;
    Ok(Json(
        contacts
            .iter()
            .map(|c| dto::Contact::of(c, &state.public.base_url))
            .collect(),
    ))
}

/// Asks another account to become a contact (extension).
pub async fn request(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    params: Params,
) -> ApiResult<Json<dto::ContactRequestCreated>> {
    let to: AccountId = params.required_id("account_id")?;
    let message = params.get("message").unwrap_or_default().to_string();
    let written = state
        .app
        .commands
        .request_contact(&caller, to, message)
        .await?;
    Ok(Json(dto::ContactRequestCreated {
        request_id: written.value.0,
        account_id: to.0,
    }))
}

/// Removes a contact (extension).
pub async fn remove(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(account): Path<String>,
    _params: Params,
) -> ApiResult<StatusCode> {
    let other: AccountId = path_id(&account, "account_id", "contact")?;
    state
        .app
        .commands
        .remove_contact(caller.account_id, other)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Contact requests waiting for the caller.
pub async fn incoming(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    _params: Params,
) -> ApiResult<Json<Vec<dto::IncomingRequest>>> {
    let requests = state
        .app
        .queries
        .incoming_requests(caller.account_id)
        .await?;
    Ok(Json(
        requests
            .iter()
            .map(|r| dto::IncomingRequest::new(r, &state.public.base_url))
            .collect(),
    ))
}

/// Approves a request: the answer is the new contact.
pub async fn approve(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(request): Path<String>,
    _params: Params,
) -> ApiResult<Json<dto::Contact>> {
    let request: RequestId = path_id(&request, "request_id", "request")?;
    let written = state
        .app
        .commands
        .approve_contact(caller.account_id, request)
        .await?;
    let (other, room) = written.value;
    let account = state
        .app
        .queries
        .accounts(&[other])
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found("account"))?;
    Ok(Json(dto::Contact::new(
        &account,
        room.0,
        &state.public.base_url,
    )))
}

/// Rejects a request.
pub async fn reject(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(request): Path<String>,
    _params: Params,
) -> ApiResult<StatusCode> {
    let request: RequestId = path_id(&request, "request_id", "request")?;
    state
        .app
        .commands
        .reject_contact(caller.account_id, request)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
