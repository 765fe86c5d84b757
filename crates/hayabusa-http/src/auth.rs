//! The caller: the account behind `X-ChatWorkToken` or `Authorization: Bearer`.

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
        let token = token_of(parts).ok_or_else(ApiError::unauthorized)?;
        let account = state.app.queries.authenticate(&token).await?;
        Ok(Caller(account))
    }
}
