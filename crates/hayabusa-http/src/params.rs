//! ChatWork-style request parameters: from the query string and, for any method, a
//! form-encoded body (some clients send POST/PUT parameters in the query string with
//! an empty body; some send a form Content-Type on GET and DELETE). Body values win
//! over query values of the same name.

use crate::error::ApiError;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use bytes::Bytes;
use hayabusa_domain::{AccountId, MessageId, RoomId};
use std::collections::BTreeMap;

/// Largest accepted form body (a 65,535-character message is at most ~256 KB).
pub const MAX_FORM_BYTES: usize = 1024 * 1024;

/// All parameters of a request by name.
#[derive(Debug, Default, Clone)]
pub struct Params(pub BTreeMap<String, String>);

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Params(mut params) = Params::from_query(request.uri().query());
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body is too large")
                } else {
                    crate::error::body_error(&rejection)
                }
            })?;
        if !body.is_empty() {
            let is_form = content_type.is_empty()
                || content_type.starts_with("application/x-www-form-urlencoded");
            if !is_form {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "parameters must be sent as application/x-www-form-urlencoded",
                ));
            }
            if std::str::from_utf8(&body).is_err() {
                return Err(ApiError::bad_request("the request body is not valid UTF-8"));
            }
            for (key, value) in form_urlencoded::parse(&body) {
                params.insert(key.into_owned(), value.into_owned());
            }
        }
        Ok(Params(params))
    }
}

impl Params {
    /// The parameters of a query string only.
    pub fn from_query(query: Option<&str>) -> Self {
        let mut params = BTreeMap::new();
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            params.insert(key.into_owned(), value.into_owned());
        }
        Params(params)
    }

    /// A parameter's raw value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A required, non-blank text parameter.
    pub fn required(&self, name: &str) -> Result<String, ApiError> {
        match self.get(name) {
            Some(v) if !v.trim().is_empty() => Ok(v.to_string()),
            Some(_) => Err(ApiError::bad_request(format!("{name} must not be empty"))),
            None => Err(ApiError::bad_request(format!("{name} is required"))),
        }
    }

    /// A `0|1` flag with a default.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some("0") => Ok(false),
            Some("1") => Ok(true),
            Some(_) => Err(ApiError::bad_request(format!("{name} must be 0 or 1"))),
        }
    }

    /// A comma-separated id list (empty or absent → empty list).
    pub fn id_list(&self, name: &str) -> Result<Vec<AccountId>, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(vec![]);
        };
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                parse_id(s).map(AccountId).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "{name} must be a comma-separated list of account ids"
                    ))
                })
            })
            .collect()
    }

    /// One of the allowed values.
    pub fn one_of<'a>(&self, name: &str, allowed: &[&'a str]) -> Result<Option<&'a str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => allowed
                .iter()
                .find(|a| **a == v)
                .map(|a| Some(*a))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("{name} must be one of {}", allowed.join(", ")))
                }),
        }
    }
}

/// A positive decimal id.
fn parse_id(raw: &str) -> Option<u64> {
    if raw.is_empty() || raw.len() > 20 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse::<u64>().ok().filter(|id| *id > 0)
}

/// A positive id named `name` (path segment or parameter), or a 400 saying so.
pub fn positive_id(raw: &str, name: &str) -> Result<u64, ApiError> {
    parse_id(raw).ok_or_else(|| ApiError::bad_request(format!("{name} must be a positive integer")))
}

impl Params {
    /// An optional positive id parameter (absent or empty → None).
    pub fn optional_id(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.get(name)
            .filter(|s| !s.is_empty())
            .map(|raw| positive_id(raw, name))
            .transpose()
    }
}

/// A room id from the path.
pub fn room_id(raw: &str) -> Result<RoomId, ApiError> {
    parse_id(raw)
        .map(RoomId)
        .ok_or_else(|| ApiError::bad_request("room_id must be a positive integer"))
}

/// A message id from the path or a parameter.
pub fn message_id(raw: &str) -> Result<MessageId, ApiError> {
    parse_id(raw).map(MessageId).ok_or_else(|| {
        ApiError::bad_request("message_id must be a message id (a string of digits)")
    })
}
