//! Sessions of the web client (extension): sign in with a sign-in address and a
//! password (`POST /v2/session`), see the current session (`GET`), sign out
//! (`DELETE /v2/session`) or out everywhere (`DELETE /v2/sessions`); and an
//! administrator's `PUT /v2/admin/password`.

use crate::auth::{Caller, SESSION_COOKIE, SessionAuth};
use crate::dto;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::rate_limit::RateLimiter;
use crate::state::AppState;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hayabusa_app::commands::signin::SESSION_SECS;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::Arc;

/// The `Set-Cookie` value of a session (empty value and no age: removes it).
fn session_cookie(state: &AppState, value: &str, max_age: i64) -> HeaderValue {
    let secure = if state.public.base_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("a session cookie is a valid header value")
}

/// 204, removing the session cookie.
fn signed_out(state: &AppState) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(state, "", 0));
    response
}

/// The answer with a session (never cached).
fn session_answer(session: dto::Session) -> Response {
    let mut response = Json(session).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The rate-limit key of a sign-in address.
fn address_key(login_mail: &str) -> u128 {
    let digest = Sha256::digest(login_mail.trim().to_lowercase().as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(bytes)
}

/// Signs in: 200 with the session (and its cookie) or 401 whatever was wrong.
pub async fn sign_in(
    State(state): State<Arc<AppState>>,
    limiter: Option<axum::Extension<Arc<RateLimiter>>>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    params: Params,
) -> ApiResult<Response> {
    let login_mail = params.required("login_mail")?;
    let password = params.required("password")?;
    let attempt = match &limiter {
        Some(limiter) => Some(
            match limiter
                .sign_in_attempt(address_key(&login_mail), peer.map(|peer| peer.0.0.ip()))
                .await
            {
                Ok(attempt) => attempt,
                Err(refused) => return Ok(refused),
            },
        ),
        None => None,
    };
    let Some(signed_in) = state.app.commands.sign_in(&login_mail, &password).await? else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the sign-in address or the password is wrong",
        ));
    };
    if let (Some(limiter), Some(attempt)) = (limiter, attempt) {
        limiter.sign_in_succeeded(attempt).await;
    }
    let mut response = session_answer(dto::Session {
        account_id: signed_in.account_id.0,
        csrf_token: signed_in.csrf_token,
        expires_at: signed_in.expires_at,
    });
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&state, &signed_in.cookie, SESSION_SECS),
    );
    Ok(response)
}

/// The current session: its account and CSRF token (a reloaded page gets it here).
pub async fn current(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    session: SessionAuth,
    _params: Params,
) -> ApiResult<Response> {
    Ok(session_answer(dto::Session {
        account_id: caller.account_id.0,
        csrf_token: state.app.commands.secret().csrf_token(&session.hash),
        expires_at: 0,
    }))
}

/// Ends this session and removes its cookie.
pub async fn sign_out(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    session: SessionAuth,
    _params: Params,
) -> ApiResult<Response> {
    state
        .app
        .commands
        .sign_out(caller.account_id, &session.hash)
        .await?;
    Ok(signed_out(&state))
}

/// Ends every session of the caller (signed in by cookie or by API token).
pub async fn sign_out_everywhere(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    _params: Params,
) -> ApiResult<Response> {
    state
        .app
        .commands
        .sign_out_everywhere(caller.account_id)
        .await?;
    Ok(signed_out(&state))
}

/// An administrator sets the password of the account that signs in with
/// `login_mail`.
pub async fn set_password(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    params: Params,
) -> ApiResult<StatusCode> {
    if !caller.admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "only administrators set passwords",
        ));
    }
    let login_mail = params.required("login_mail")?;
    let password = params.required("password")?;
    state
        .app
        .commands
        .set_password(&caller, &login_mail, &password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
