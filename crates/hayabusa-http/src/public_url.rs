//! The server's public base URL: absolute URLs in answers (downloads, links, icons,
//! avatars) and the same-origin check of the sync WebSocket start from it.
//!
//! It is configured (`--public-url`), never taken from the `Host` header. Only a
//! peer listed in `--trusted-proxies` may override its scheme and host with
//! `X-Forwarded-Proto` and `X-Forwarded-Host`.

use crate::state::{AppState, PublicSettings};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Why a `--public-url` was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PublicUrlError {
    /// Not a URL at all.
    #[error("not a URL: {0}")]
    Invalid(String),
    /// Not `http` or `https`.
    #[error("the scheme must be http or https")]
    Scheme,
    /// No host.
    #[error("the URL must name a host")]
    NoHost,
    /// A query or fragment.
    #[error("the URL must not have a query or fragment")]
    Query,
}

/// Checks a public URL and returns it without a trailing slash
/// (`https://chat.example.com/`, `https://Chat.example.com` → `https://chat.example.com`).
pub fn parse_public_url(raw: &str) -> Result<String, PublicUrlError> {
    if raw.contains('#') {
        return Err(PublicUrlError::Query);
    }
    let uri: Uri = raw
        .trim()
        .parse()
        .map_err(|e: axum::http::uri::InvalidUri| PublicUrlError::Invalid(e.to_string()))?;
    let scheme = uri.scheme_str().map(str::to_ascii_lowercase);
    if !matches!(scheme.as_deref(), Some("http" | "https")) {
        return Err(PublicUrlError::Scheme);
    }
    let authority = uri.authority().ok_or(PublicUrlError::NoHost)?;
    if authority.host().is_empty() || authority.as_str().contains('@') {
        return Err(PublicUrlError::NoHost);
    }
    if uri.query().is_some() {
        return Err(PublicUrlError::Query);
    }
    let path = uri.path().trim_end_matches('/');
    Ok(format!(
        "{}://{}{path}",
        scheme.unwrap_or_default(),
        authority.as_str().to_ascii_lowercase()
    ))
}

/// The default public URL of a server listening on `addr`: `http://addr`, with an
/// unspecified address (`0.0.0.0`, `::`) replaced by the loopback address.
pub fn default_public_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// A value of a forwarding header: its first element, if it is a plain host
/// (`name[:port]` or `[v6]:port`).
fn forwarded_host(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("x-forwarded-host")?.to_str().ok()?;
    let host = value.split(',').next()?.trim();
    let plain = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    plain.then(|| host.to_ascii_lowercase())
}

fn forwarded_proto(headers: &HeaderMap) -> Option<&'static str> {
    let value = headers.get("x-forwarded-proto")?.to_str().ok()?;
    match value
        .split(',')
        .next()?
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "http" => Some("http"),
        "https" => Some("https"),
        _ => None,
    }
}

/// `(scheme, authority, path prefix)` of a base URL made by [`parse_public_url`].
fn split(base: &str) -> (&str, &str, &str) {
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    match rest.find('/') {
        Some(slash) => (scheme, &rest[..slash], &rest[slash..]),
        None => (scheme, rest, ""),
    }
}

/// The base URL for a request from `peer`: the configured one, with scheme and host
/// taken from `X-Forwarded-Proto` / `X-Forwarded-Host` when the peer is a trusted
/// proxy.
pub fn base_url_for(
    settings: &PublicSettings,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> String {
    let trusted = peer.is_some_and(|peer| {
        settings
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&peer))
    });
    if !trusted {
        return settings.base_url.clone();
    }
    let (scheme, authority, prefix) = split(&settings.base_url);
    let scheme = forwarded_proto(headers).unwrap_or(scheme);
    match forwarded_host(headers) {
        Some(host) => format!("{scheme}://{host}{prefix}"),
        None => format!("{scheme}://{authority}{prefix}"),
    }
}

/// The origin (`scheme://host[:port]`) of a base URL.
pub fn origin_of(base: &str) -> &str {
    let (scheme, authority, _) = split(base);
    &base[..scheme.len() + 3 + authority.len()]
}

/// The peer address the server recorded for a request.
pub fn peer_of(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// Extractor: the base URL of this request (see [`base_url_for`]).
pub struct BaseUrl(pub String);

impl FromRequestParts<Arc<AppState>> for BaseUrl {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        Ok(BaseUrl(base_url_for(
            &state.public,
            &parts.headers,
            peer_of(parts),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(proxies: &[&str]) -> PublicSettings {
        PublicSettings {
            base_url: "https://chat.example.com/hb".into(),
            trusted_proxies: proxies.iter().map(|p| p.parse().unwrap()).collect(),
        }
    }

    fn forwarded() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-proto", "http".parse().unwrap());
        headers.insert(
            "x-forwarded-host",
            "Other.example:8443, evil".parse().unwrap(),
        );
        headers
    }

    #[test]
    fn public_urls_are_checked_and_normalised() {
        assert_eq!(
            parse_public_url("https://Chat.Example.com/").unwrap(),
            "https://chat.example.com"
        );
        assert_eq!(
            parse_public_url("http://10.0.0.1:8080/chat/").unwrap(),
            "http://10.0.0.1:8080/chat"
        );
        assert_eq!(
            parse_public_url("ftp://x.example"),
            Err(PublicUrlError::Scheme)
        );
        assert_eq!(
            parse_public_url("https://x.example/?a=1"),
            Err(PublicUrlError::Query)
        );
        assert!(parse_public_url("chat.example.com").is_err());
        assert!(parse_public_url("https://user@x.example").is_err());
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let peer: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(
            base_url_for(&settings(&[]), &forwarded(), Some(peer)),
            "https://chat.example.com/hb"
        );
        assert_eq!(
            base_url_for(&settings(&["10.0.0.0/8"]), &forwarded(), Some(peer)),
            "http://other.example:8443/hb"
        );
        assert_eq!(
            base_url_for(&settings(&["10.1.2.4/32"]), &forwarded(), Some(peer)),
            "https://chat.example.com/hb"
        );
        assert_eq!(
            base_url_for(&settings(&["10.0.0.0/8"]), &HeaderMap::new(), Some(peer)),
            "https://chat.example.com/hb"
        );
    }

    #[test]
    fn origins_and_defaults() {
        assert_eq!(
            origin_of("https://chat.example.com/hb"),
            "https://chat.example.com"
        );
        assert_eq!(origin_of("http://127.0.0.1:80"), "http://127.0.0.1:80");
        assert_eq!(
            default_public_url("0.0.0.0:8080".parse().unwrap()),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            default_public_url("[::]:80".parse().unwrap()),
            "http://[::1]:80"
        );
    }
}
