//! `POST /v2/accounts` (extension): an administrator creates an account and gets its
//! token, shown once; `DELETE /v2/accounts/{account_id}/token` (extension): an
//! administrator revokes an account's token; `POST /v2/accounts/{account_id}/token`
//! (extension): an administrator issues an account a new token.

use crate::auth::Caller;
use crate::dto;
use crate::error::ApiResult;
use crate::params::{Params, path_id};
use crate::routes::idempotency;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use hayabusa_app::NewAccount;
use hayabusa_domain::AccountId;

/// 403 unless the caller is a server administrator (checked before anything else, so
/// a plain member learns nothing about the account).
fn require_admin(caller: &hayabusa_store::AccountRow, what: &str) -> ApiResult<()> {
    if caller.admin {
        Ok(())
    } else {
        Err(crate::error::ApiError::new(
            StatusCode::FORBIDDEN,
            format!("only administrators can {what}"),
        ))
    }
}
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
    // A sign-in address and password, both or neither; checked before anything is
    // written, and the address must be free.
    let login = match (params.get("login_mail"), params.get("password")) {
        (None, None) => None,
        (Some(mail), Some(password)) => {
            hayabusa_app::commands::signin::check_login(mail, password)?;
            state.app.commands.ensure_login_free(mail, None).await?;
            Some((mail.to_owned(), password.to_owned()))
        }
        _ => {
            return Err(crate::error::ApiError::bad_request(
                "login_mail and password go together",
            ));
        }
    };
    let written = state
        .app
        .commands
        .create_account(Some(&caller), input, key)
        .await?;
    let created = written.value;
    if let Some((mail, password)) = login {
        state
            .app
            .commands
            .set_login(created.account.account_id, &mail, &password)
            .await?;
    }
    Ok(Json(dto::CreatedAccount::new(
        &created.account,
        created.token,
    )))
}

/// Revokes an account's API token: it moves to a new generation whose token is handed
/// to nobody, so the account cannot authenticate until it gets a new one. 403 for a
/// non-administrator, 404 for an unknown account.
pub async fn revoke_token(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(account): Path<String>,
    _params: Params,
) -> ApiResult<StatusCode> {
    require_admin(&caller, "revoke tokens")?;
    let account: AccountId = path_id(&account, "account_id", "account")?;
    state.app.commands.revoke_token(&caller, account).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Issues an account a new API token and answers it (`{"token": …}`), for an
/// administrator to hand over; the account's previous token is refused from this
/// answer on. 403 for a non-administrator, 404 for an unknown account.
pub async fn issue_token(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(account): Path<String>,
    _params: Params,
) -> ApiResult<Json<dto::NewToken>> {
    require_admin(&caller, "issue tokens")?;
    let account: AccountId = path_id(&account, "account_id", "account")?;
    let written = state.app.commands.issue_token(&caller, account).await?;
    Ok(Json(dto::NewToken {
        token: written.value,
    }))
}
