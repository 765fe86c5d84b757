//! Route handlers, one file per resource.

pub mod accounts;
pub mod contacts;
pub mod files;
pub mod forwarders;
pub mod health;
pub mod links;
pub mod me;
pub mod members;
pub mod messages;
pub mod rooms;
pub mod session;
pub mod sync;
pub mod tasks;
pub mod webhooks;

use crate::error::ApiError;
use crate::params::Params;
use axum::http::{HeaderMap, Method, Uri};
use hayabusa_app::idempotency::idempotency_key;
use hayabusa_domain::AccountId;
use hayabusa_store::IdempotencyKey;

/// The `Idempotency-Key` of a request, scoped to the caller and bound to the request.
pub fn idempotency(
    headers: &HeaderMap,
    caller: AccountId,
    method: &Method,
    uri: &Uri,
    params: &Params,
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| ApiError::bad_request("Idempotency-Key must be visible ASCII"))?;
    let mut parts: Vec<&str> = vec![method.as_str(), uri.path()];
    for (name, value) in &params.0 {
        parts.push(name);
        parts.push(value);
    }
    idempotency_key(caller, key, &parts)
        .map(Some)
        .map_err(|e| ApiError::bad_request(e.to_string()))
}
