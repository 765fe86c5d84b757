//! The web client (`web/` in the repository, built with Vite into `web/dist`),
//! embedded in the binary and served at `/`: `index.html` (never cached, so a new
//! release is picked up at the next load) and the hashed files under `/assets/`
//! (cached for a year). Every answer has a strict Content-Security-Policy (no inline
//! script or style, connections to this origin only); text is compressed (gzip or
//! brotli) when the browser accepts it.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "../../web/dist"]
struct Assets;

/// The Content-Security-Policy of the web client's files.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; \
    form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn file(path: &str, cache: &'static str) -> Response {
    let Some(content) = Assets::get(path) else {
        return crate::error::ApiError::new(StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let mime = content.metadata.mimetype().to_owned();
    let mut response = content.data.into_owned().into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&mime) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// `GET /`: the page.
pub async fn index() -> Response {
    file("index.html", "no-cache")
}

/// `GET /assets/{file}`: a hashed script, style sheet or image.
pub async fn asset(Path(name): Path<String>) -> Response {
    if name.contains('/') || name.contains("..") {
        return crate::error::ApiError::new(StatusCode::NOT_FOUND, "no such file").into_response();
    }
    file(
        &format!("assets/{name}"),
        "public, max-age=31536000, immutable",
    )
}
