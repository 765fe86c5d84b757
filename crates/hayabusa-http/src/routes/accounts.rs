//! `POST /v2/accounts` (extension): an administrator creates an account and gets its
//! token, shown once.

use crate::auth::Caller;
use crate::dto;
use crate::error::ApiResult;
use crate::params::Params;
use crate::routes::idempotency;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use hayabusa_app::NewAccount;
use std::sync::Arc;

/// Creates an account.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Json<dto::CreatedAccount>> {
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
    Ok(Json(dto::CreatedAccount::new(
        &created.account,
        created.token,
    )))
}
