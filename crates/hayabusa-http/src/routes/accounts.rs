//! `POST /v2/accounts` (extension): an administrator creates an account and gets its
//! token, shown once.

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::params::Params;
use crate::routes::idempotency;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use hayabusa_app::NewAccount;
use serde_json::{Value, json};
use std::sync::Arc;

/// Creates an account.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Json<Value>> {
    if !caller.admin {
        return Err(crate::error::ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "only administrators can create accounts",
        ));
    }
    let key = idempotency(&headers, caller.account_id, &method, &uri, &params)?;
    let input = NewAccount {
        name: params.required("name")?,
        mail: params.get("mail").unwrap_or_default().to_string(),
        organization_name: params.get("organization_name").map(str::to_string),
        department: params.get("department").unwrap_or_default().to_string(),
        title: params.get("title").unwrap_or_default().to_string(),
        admin: params.flag("admin", false)?,
    };
    let written = state
        .app
        .commands
        .create_account(Some(&caller), input, key)
        .await?;
    let created = written.value;
    let a = &created.account;
    Ok(Json(json!({
        "account_id": a.account_id.0,
        "room_id": a.my_room_id.0,
        "name": a.name,
        "mail": a.mail,
        "organization_id": a.organization_id.0,
        "organization_name": a.organization_name,
        "department": a.department,
        "title": a.title,
        "admin": a.admin,
        "token": created.token,
    })))
}
