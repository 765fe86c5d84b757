//! Request parameters as every handler reads them: the query string and a form body
//! through the `Params` extractor (and the `?method=` override), then the typed
//! accessors (ids, id lists, flags). Checks: no panic, every rejection is a 4xx,
//! body values win over query values, and every accepted id is positive and is the
//! number written in the input.

#![no_main]

use arbitrary::Arbitrary;
use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::Method;
use hayabusa_domain::AccountId;
use hayabusa_http::params::{Params, message_id, param_id, room_id};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    method: u8,
    query: String,
    content_type: u8,
    body: Vec<u8>,
}

const CONTENT_TYPES: &[&str] = &[
    "",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=UTF-8",
    "APPLICATION/X-WWW-FORM-URLENCODED",
    "application/json",
    "multipart/form-data; boundary=x",
];

/// The same id as `raw` says, written without leading zeros.
fn is_written_as(id: u64, raw: &str) -> bool {
    id > 0 && raw.trim_start_matches('0') == id.to_string()
}

fn check_accessors(params: &Params) {
    for (name, value) in &params.0 {
        if let Ok(ids) = params.id_list(name) {
            for id in ids {
                assert!(
                    value
                        .split(',')
                        .any(|part| is_written_as(id.0, part.trim())),
                    "{id} is not written in {value:?}"
                );
            }
        }
        for parsed in [
            param_id::<AccountId>(value, name)
                .map(|a| a.0)
                .map_err(|e| e.status),
            room_id(value).map(|r| r.0).map_err(|e| e.status),
            message_id(value).map(|m| m.0).map_err(|e| e.status),
            params
                .optional_id::<AccountId>(name)
                .map(|id| id.map_or(1, |a| a.0))
                .map_err(|e| e.status),
        ] {
            match parsed {
                Ok(id) => assert!(value.is_empty() || is_written_as(id, value), "{value:?}"),
                Err(status) => assert!(status.is_client_error(), "{status} for {value:?}"),
            }
        }
        if let Err(e) = params.flag(name, false) {
            assert!(e.status.is_client_error());
        }
        if let Err(e) = params.required(name) {
            assert!(e.status.is_client_error());
        }
    }
}

fuzz_target!(|input: Input| {
    let method = [Method::GET, Method::POST, Method::PUT, Method::DELETE]
        [usize::from(input.method % 4)]
    .clone();
    let content_type = CONTENT_TYPES[usize::from(input.content_type) % CONTENT_TYPES.len()];
    let mut builder = Request::builder()
        .method(method.clone())
        .uri(format!("/v2/rooms/1/messages?{}", input.query));
    if !content_type.is_empty() {
        builder = builder.header("content-type", content_type);
    }
    // A URI that does not parse never reaches a handler (hyper refuses it first).
    let Ok(request) = builder.body(Body::from(input.body.clone())) else {
        return;
    };
    let request = hayabusa_http::override_method(request);
    let overridden = request.method().clone();
    assert!(
        overridden == method || (method == Method::POST && overridden != Method::GET),
        "{method} became {overridden}"
    );
    match futures::executor::block_on(Params::from_request(request, &())) {
        Ok(params) => {
            let body_is_form = !input.body.is_empty()
                && (content_type.is_empty()
                    || content_type
                        .to_ascii_lowercase()
                        .starts_with("application/x-www-form-urlencoded"));
            if body_is_form {
                // The last value of a name in the body is the one kept.
                let mut last = std::collections::BTreeMap::new();
                for (name, value) in form_urlencoded::parse(&input.body) {
                    last.insert(name.into_owned(), value.into_owned());
                }
                for (name, value) in last {
                    assert_eq!(params.get(&name), Some(value.as_str()), "{name}");
                }
            }
            check_accessors(&params);
        }
        Err(e) => assert!(e.status.is_client_error(), "{}", e.status),
    }
});
