//! The caller: the account behind `X-ChatWorkToken` or `Authorization: Bearer`, or
//! behind the web client's session cookie. A cookie-authenticated request that writes
//! (any method but GET, HEAD and OPTIONS) must also carry the session's CSRF token
//! in `X-CSRF-Token` (403 otherwise); token-authenticated requests need none.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use hayabusa_store::AccountRow;
use std::sync::Arc;

/// The authenticated account.
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<AccountRow>);

/// The token a request carries, if any.
pub fn token_of(parts: &Parts) -> Option<String> {
    if let Some(token) = parts
        .headers
        .get("x-chatworktoken")
        .and_then(|v| v.to_str().ok())
    {
        return Some(token.trim().to_string());
    }
    let authorization = parts.headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "hayabusa_session";

/// The header of the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The session a request was authenticated by (absent for API tokens).
#[derive(Debug, Clone)]
pub struct SessionAuth {
    /// Hex SHA-256 of the cookie's value.
    pub hash: String,
}

/// The session cookie a request carries, if any.
pub fn session_cookie_of(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_owned())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Authenticates a request: by its API token if it has one, else by its session
/// cookie (checking the CSRF token of writes).
pub async fn authenticate(
    parts: &Parts,
    state: &AppState,
    token: Option<String>,
) -> Result<(Arc<AccountRow>, Option<SessionAuth>), ApiError> {
    if let Some(token) = token {
        let account = state.app.queries.authenticate(&token).await?;
        return Ok((account, None));
    }
    let cookie = session_cookie_of(parts).ok_or_else(ApiError::unauthorized)?;
    let (account, hash) = state.app.queries.authenticate_session(&cookie).await?;
    let safe = matches!(
        parts.method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if !safe {
        let expected = state.app.commands.secret().csrf_token(&hash);
        let given = parts
            .headers
            .get(CSRF_HEADER)
            .map(|value| value.as_bytes())
            .unwrap_or_default();
        if !constant_time_eq(given, expected.as_bytes()) {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "a write signed in by cookie needs the session's X-CSRF-Token",
            ));
        }
    }
    Ok((account, Some(SessionAuth { hash })))
}

impl FromRequestParts<Arc<AppState>> for SessionAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        if let Some(session) = parts.extensions.get::<SessionAuth>() {
            return Ok(session.clone());
        }
        match authenticate(parts, state, token_of(parts)).await? {
            (_, Some(session)) => Ok(session),
            (_, None) => Err(ApiError::bad_request(
                "this request is signed in with an API token, not a session",
            )),
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        // The rate limiter authenticated the request already (it keys limits by account).
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let (account, session) = authenticate(parts, state, token_of(parts)).await?;
        if let Some(session) = session {
            parts.extensions.insert(session);
        }
        Ok(Caller(account))
    }
}
