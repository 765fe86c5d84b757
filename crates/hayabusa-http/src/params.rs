//! ChatWork-style request parameters: from the query string and, for any method, a
//! form-encoded body (some clients send POST/PUT parameters in the query string with
//! an empty body; some send a form Content-Type on GET and DELETE). Body values win
//! over query values of the same name.

use crate::error::ApiError;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use bytes::Bytes;
use hayabusa_domain::text::ellipsize;
use hayabusa_domain::{AccountId, IdError, MessageId, RoomId};
use percent_encoding::percent_decode;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::str::FromStr;

/// Largest accepted form body (a 65,535-character message is at most ~256 KB).
pub const MAX_FORM_BYTES: usize = 1024 * 1024;

/// All parameters of a request by name.
#[derive(Debug, Default, Clone)]
pub struct Params(pub BTreeMap<String, String>);

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Params(mut params) = Params::parse_query(request.uri().query())?;
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
            for (key, value) in parse_form(&body)? {
                params.insert(key, value);
            }
        }
        Ok(Params(params))
    }
}

impl Params {
    /// The parameters of a query string, strictly decoded ([`parse_form`]).
    pub fn parse_query(query: Option<&str>) -> Result<Self, ApiError> {
        let pairs = parse_form(query.unwrap_or("").as_bytes())?;
        Ok(Params(pairs.into_iter().collect()))
    }

    /// The parameters of a query string, leniently decoded (invalid UTF-8 becomes
    /// U+FFFD): for looking at a request before its handler, never for stored values.
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

    /// A comma-separated account id list (empty or absent → empty list). A value
    /// that is not an account id (1 to 2^53 − 1) is refused.
    pub fn id_list(&self, name: &str) -> Result<Vec<AccountId>, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(vec![]);
        };
        parse_id_list(raw).map_err(|bad| {
            ApiError::bad_request(format!(
                "{name} must be a comma-separated list of account ids (1 to {}): \"{}\" is not one",
                AccountId::MAX,
                ellipsize(bad)
            ))
        })
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

    /// An optional id parameter (absent or empty → None); a value that is not an id
    /// of its kind is a 400.
    pub fn optional_id<T: FromStr<Err = IdError>>(
        &self,
        name: &str,
    ) -> Result<Option<T>, ApiError> {
        self.get(name)
            .filter(|s| !s.is_empty())
            .map(|raw| param_id(raw, name))
            .transpose()
    }

    /// A required id parameter.
    pub fn required_id<T: FromStr<Err = IdError>>(&self, name: &str) -> Result<T, ApiError> {
        param_id(&self.required(name)?, name)
    }
}

/// The ids of a comma-separated list (blank items skipped), or the first item that
/// is not an account id. Pure: the fuzz target for id lists.
pub fn parse_id_list(raw: &str) -> Result<Vec<AccountId>, &str> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<AccountId>().map_err(|_| s))
        .collect()
}

/// An id given as the parameter `name`: 400 unless it is an id of its kind (a
/// positive integer up to the kind's largest id, see [`hayabusa_domain::ids`]).
pub fn param_id<T: FromStr<Err = IdError>>(raw: &str, name: &str) -> Result<T, ApiError> {
    raw.parse::<T>().map_err(|error| match error {
        IdError::Malformed => ApiError::bad_request(format!("{name} must be a positive integer")),
        IdError::OutOfRange { max } => ApiError::bad_request(format!(
            "{name} must be a positive integer of at most {max}"
        )),
    })
}

/// An id from the request path, named `name`, of a `what`: 400 when it is not a
/// positive integer, 404 "`what` not found" when it is one above the kind's largest
/// id (no such thing can exist). Nothing out of range ever reaches a store.
pub fn path_id<T: FromStr<Err = IdError>>(
    raw: &str,
    name: &str,
    what: &'static str,
) -> Result<T, ApiError> {
    raw.parse::<T>().map_err(|error| match error {
        IdError::Malformed => ApiError::bad_request(format!("{name} must be a positive integer")),
        IdError::OutOfRange { .. } => ApiError::not_found(what),
    })
}

/// A room id from the path.
pub fn room_id(raw: &str) -> Result<RoomId, ApiError> {
    path_id(raw, "room_id", "room")
}

/// A message id from the path.
pub fn message_id(raw: &str) -> Result<MessageId, ApiError> {
    raw.parse::<MessageId>().map_err(|error| match error {
        IdError::Malformed => {
            ApiError::bad_request("message_id must be a message id (a string of digits)")
        }
        IdError::OutOfRange { .. } => ApiError::not_found("message"),
    })
}

/// A message id given as a parameter.
pub fn message_id_param(raw: &str) -> Result<MessageId, ApiError> {
    param_id(raw, "message_id")
}

/// The pairs of an `application/x-www-form-urlencoded` string (a query string or a
/// form body), decoded strictly: `+` is a space, `%XX` a byte, and every name and
/// value must be UTF-8 once decoded (a 400 naming the parameter otherwise; the
/// WHATWG parser would put U+FFFD in its place and store it). Pure: the fuzz target
/// for parameters.
pub fn parse_form(input: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let mut pairs = Vec::new();
    for piece in input.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match piece.iter().position(|b| *b == b'=') {
            Some(at) => (&piece[..at], &piece[at + 1..]),
            None => (piece, &piece[piece.len()..]),
        };
        let name = decode_component(name).ok_or_else(|| {
            ApiError::bad_request("a parameter name is not valid UTF-8 once percent-decoded")
        })?;
        let value = decode_component(value).ok_or_else(|| {
            ApiError::bad_request(format!(
                "{} is not valid UTF-8 once percent-decoded",
                ellipsize(&name)
            ))
        })?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// One form component: `+` → space, then percent-decoding, then strict UTF-8.
fn decode_component(raw: &[u8]) -> Option<String> {
    let spaced: Cow<'_, [u8]> = if raw.contains(&b'+') {
        Cow::Owned(
            raw.iter()
                .map(|b| if *b == b'+' { b' ' } else { *b })
                .collect(),
        )
    } else {
        Cow::Borrowed(raw)
    };
    let decoded: Cow<'_, [u8]> = percent_decode(&spaced).into();
    String::from_utf8(decoded.into_owned()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_plus_and_percent_and_refuse_invalid_utf8_naming_the_parameter() {
        let pairs = parse_form(b"a=1&b=caf%C3%A9+au+lait&&c&d=&=e").unwrap();
        let expected: Vec<(String, String)> = [
            ("a", "1"),
            ("b", "café au lait"),
            ("c", ""),
            ("d", ""),
            ("", "e"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(pairs, expected);
        let error = parse_form(b"ok=1&body=%FF").unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert!(error.errors[0].starts_with("body "), "{:?}", error.errors);
        assert!(parse_form(b"na%FFme=1").is_err());
        assert!(parse_form(&[b'x', b'=', 0xC3]).is_err(), "raw bytes too");
        // A long name is echoed short.
        let long = format!("{}=%FF", "n".repeat(10_000));
        assert!(parse_form(long.as_bytes()).unwrap_err().errors[0].len() < 200);
        // Malformed escapes are kept as they are, as browsers do.
        assert_eq!(parse_form(b"a=%zz%4").unwrap()[0].1, "%zz%4");
    }

    #[test]
    fn id_lists_and_ids_are_checked_against_their_kind() {
        assert_eq!(
            parse_id_list(" 1, 2,,3 ").unwrap(),
            vec![AccountId(1), AccountId(2), AccountId(3)]
        );
        assert_eq!(parse_id_list("1,9007199254740992"), Err("9007199254740992"));
        assert_eq!(parse_id_list("1,-1"), Err("-1"));
        assert_eq!(
            path_id::<RoomId>("9223372036854775808", "room_id", "room")
                .unwrap_err()
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            path_id::<RoomId>("-1", "room_id", "room")
                .unwrap_err()
                .status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            param_id::<AccountId>("18446744073709551616", "account_id")
                .unwrap_err()
                .status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            message_id("9223372036854775807").unwrap(),
            MessageId(i64::MAX as u64)
        );
    }
}
