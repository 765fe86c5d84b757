//! The web client's files, as the binary serves them: the page at `/` with a strict
//! Content-Security-Policy and no caching, hashed assets cached for a year and
//! compressed for browsers that accept it. (The client itself is tested in Chromium
//! by `web/tests/browser.mjs`.)

use crate::helpers::*;
use reqwest::StatusCode;

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_a_strict_policy() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    let page = http.get(format!("{}/", app.base)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert!(header(&page, "content-type").starts_with("text/html"));
    assert_eq!(header(&page, "cache-control"), "no-cache");
    let policy = header(&page, "content-security-policy");
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script>"), "no inline script");
    let script = html
        .split('"')
        .find(|part| part.starts_with("/assets/") && part.ends_with(".js"))
        .expect("the page loads a hashed script")
        .to_owned();

    let asset = http
        .get(format!("{}{script}", app.base))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), StatusCode::OK);
    assert!(header(&asset, "content-type").contains("javascript"));
    assert_eq!(
        header(&asset, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(header(&asset, "content-encoding"), "gzip");
    let compressed = asset.bytes().await.unwrap().len();
    let plain = http
        .get(format!("{}{script}", app.base))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len();
    assert!(compressed < plain / 2, "{compressed} of {plain} bytes");

    // Unknown assets are JSON 404s like the API's.
    for path in ["/assets/nope.js", "/assets/..%2Fsecret"] {
        let (status, body) = read(
            http.get(format!("{}{path}", app.base))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(body["errors"].is_array());
    }
}
