//! A hostile network: connection timeouts, the connection cap, body limits enforced
//! before reading, JSON for every error answer, bounded metric labels, and URLs
//! built from the configured public URL rather than from request headers.

use crate::helpers::*;
use hayabusa::{Config, RunningServer};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A server with `adjust`ed settings, its data directory and an admin client.
async fn start_with(adjust: impl FnOnce(Config) -> Config) -> (RunningServer, Client, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = adjust(Config {
        rate_limits: hayabusa_http::RateLimits::off(),
        ..Config::new(dir.path())
    });
    let server = hayabusa::start(config).await.expect("server starts");
    let token = std::fs::read_to_string(dir.path().join("admin.token")).expect("admin.token");
    let admin = Client::new(&format!("http://{}", server.addr), token.trim());
    (server, admin, dir)
}

fn short_timeouts(config: Config) -> Config {
    Config {
        connections: hayabusa_http::ConnectionSettings {
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            ..Default::default()
        },
        ..config
    }
}

/// Reads what the server sends until it closes the connection; `None` if it is
/// still open after `wait`.
async fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    let mut received = Vec::new();
    let deadline = Instant::now() + wait;
    loop {
        let mut buf = [0u8; 8192];
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&received).into()),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

/// Reads one HTTP response head and body (by `Content-Length`) within `wait`.
async fn read_response(stream: &mut TcpStream, wait: Duration) -> Option<(u16, String, String)> {
    let mut received = Vec::new();
    let deadline = Instant::now() + wait;
    loop {
        let text = String::from_utf8_lossy(&received).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if body.len() >= length {
                let status = head.split(' ').nth(1)?.parse().ok()?;
                return Some((status, head.to_string(), body[..length].to_string()));
            }
        }
        let mut buf = [0u8; 8192];
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

fn assert_json_error(status: u16, head: &str, body: &str, expected: u16) {
    assert_eq!(status, expected, "{head}\r\n\r\n{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "not JSON: {head}"
    );
    let value: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert!(
        value["errors"].as_array().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn invented_methods_do_not_become_metric_labels() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    let mut invented = Vec::new();
    for i in 0..20 {
        let method = format!("INVENTED{i}{}", "X".repeat(1000));
        let response = http
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}/v2/rooms", app.base),
            )
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error());
        invented.push(method);
    }
    let metrics = http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains("INVENTED"),
        "a client's method is a label"
    );
    assert!(
        metrics.lines().any(
            |l| l.starts_with("hayabusa_http_requests_total") && l.contains("method=\"other\"")
        ),
        "invented methods are counted as `other`"
    );
}

#[tokio::test]
async fn every_rejection_is_a_json_error() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let room = app.room(&alice, &[], &[]).await;
    let token = alice.client.token.clone();
    let addr: SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    // (request, expected status)
    let table: Vec<(String, u16)> = vec![
        (
            format!(
                "GET /v2/rooms/%FF/messages HTTP/1.1\r\nHost: x\r\nX-ChatWorkToken: {token}\r\nConnection: close\r\n\r\n"
            ),
            400,
        ),
        (
            format!(
                "GET /v2/rooms/{room}/messages/%FF%FE HTTP/1.1\r\nHost: x\r\nX-ChatWorkToken: {token}\r\nConnection: close\r\n\r\n"
            ),
            400,
        ),
        (
            format!(
                "GET /v2/rooms/%C3%28/tasks/1 HTTP/1.1\r\nHost: x\r\nX-ChatWorkToken: {token}\r\nConnection: close\r\n\r\n"
            ),
            400,
        ),
        (
            "GET /no/such/thing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into(),
            404,
        ),
        (
            "GET /v2/no/such/thing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into(),
            404,
        ),
        (
            "PATCH /v2/me HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into(),
            405,
        ),
        (
            "BREW /v2/rooms HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into(),
            405,
        ),
        (
            format!(
                "GET /v2/sync/ws HTTP/1.1\r\nHost: x\r\nX-ChatWorkToken: {token}\r\nConnection: close\r\n\r\n"
            ),
            400,
        ),
        (
            format!(
                "GET /v2/sync/ws HTTP/1.1\r\nHost: x\r\nX-ChatWorkToken: {token}\r\nConnection: upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ),
            400,
        ),
        (
            format!(
                "POST /v2/rooms/{room}/files HTTP/1.1\r\nHost: x\r\nX-ChatWorkToken: {token}\r\nContent-Type: multipart/form-data; boundary=zz\r\nContent-Length: 12\r\nConnection: close\r\n\r\nnot multipart"
            ),
            400,
        ),
        (
            format!(
                "POST /v2/rooms/{room}/messages HTTP/1.1\r\nHost: x\r\nX-ChatWorkToken: {token}\r\nContent-Length: 2000000\r\nConnection: close\r\n\r\n"
            ),
            413,
        ),
    ];
    for (request, expected) in table {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let (status, head, body) = read_response(&mut stream, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("no answer to {request:?}"));
        assert_json_error(status, &head, &body, expected);
    }
}

#[tokio::test]
async fn an_oversized_declared_body_is_refused_before_it_is_sent() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let room = app.room(&alice, &[], &[]).await;
    let token = alice.client.token.clone();
    let addr: SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    for (path, content_type) in [
        (
            format!("/v2/rooms/{room}/messages"),
            "application/x-www-form-urlencoded",
        ),
        ("/v2/rooms".to_string(), "application/x-www-form-urlencoded"),
        (
            format!("/v2/rooms/{room}/files"),
            "multipart/form-data; boundary=x",
        ),
    ] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nX-ChatWorkToken: {token}\r\nContent-Type: {content_type}\r\nContent-Length: 104857600\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // Not one byte of the body is sent: the answer must come anyway.
        let (status, head, body) = read_response(&mut stream, Duration::from_secs(3))
            .await
            .unwrap_or_else(|| panic!("POST {path} with a 100 MB declared body was held"));
        assert_json_error(status, &head, &body, 413);
    }

    // A chunked body is cut at the same limit (1 MiB for a form).
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v2/rooms/{room}/messages HTTP/1.1\r\nHost: x\r\nX-ChatWorkToken: {token}\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("10000\r\n{}\r\n", "a".repeat(0x10000));
    for _ in 0..40 {
        // The server may answer and close before the end: stop writing then.
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let (status, head, body) = read_response(&mut stream, Duration::from_secs(3))
        .await
        .expect("an answer to a 2.5 MB chunked body");
    assert_json_error(status, &head, &body, 413);

    // The largest legal message (65,535 characters of 3-byte UTF-8, form-encoded)
    // still fits.
    let body = "あ".repeat(65_535);
    let (status, answer) = alice
        .client
        .send(
            Method::POST,
            &format!("/v2/rooms/{room}/messages"),
            &[("body", body)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn idle_and_stalled_connections_are_closed_after_their_timeouts() {
    let (server, admin, _dir) = start_with(short_timeouts).await;
    let addr = server.addr;
    let (_, me) = admin.get("/v2/me").await;
    let my_room = me["room_id"].as_u64().unwrap();

    // A connection that never sends anything.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    // A request whose headers never end.
    let mut slow_head = TcpStream::connect(addr).await.unwrap();
    slow_head
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A body that stops after 10 of 100 bytes.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(
            format!(
                "POST /v2/rooms/{my_room}/messages HTTP/1.1\r\nHost: x\r\nX-ChatWorkToken: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nbody=hello",
                admin.token
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // A kept-alive connection after its response.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (status, _, _) = read_response(&mut kept, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(status, 200);

    let started = Instant::now();
    assert!(
        read_until_closed(&mut idle, Duration::from_secs(4))
            .await
            .is_some(),
        "an idle connection stays open"
    );
    assert!(
        read_until_closed(&mut slow_head, Duration::from_secs(4))
            .await
            .is_some(),
        "a connection with unfinished headers stays open"
    );
    assert!(
        read_until_closed(&mut kept, Duration::from_secs(4))
            .await
            .is_some(),
        "a kept-alive connection stays open"
    );
    let (status, head, body) = read_response(&mut stalled, Duration::from_secs(4))
        .await
        .expect("a stalled body is held");
    assert_json_error(status, &head, &body, 408);
    assert!(
        read_until_closed(&mut stalled, Duration::from_secs(2))
            .await
            .is_some()
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // Nothing was posted from the stalled body.
    let (status, _) = admin
        .get(&format!("/v2/rooms/{my_room}/messages?force=1"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn long_polls_and_websockets_outlive_the_idle_timeout() {
    let (server, admin, _dir) = start_with(short_timeouts).await;
    let base = format!("http://{}", server.addr);
    let (_, me) = admin.get("/v2/me").await;
    let my_room = me["room_id"].as_u64().unwrap();
    let (_, first) = admin.get("/v2/sync").await;
    let since = first["revision"].as_str().unwrap().to_string();
    // A connection that sends nothing, for comparison.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();

    // A 3 s long-poll on a server whose timeouts are all 1 s.
    let started = Instant::now();
    let (status, batch) = admin
        .send(
            Method::GET,
            "/v2/sync",
            &[("since", since.clone()), ("timeout", "3".into())],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{batch}");
    assert!(started.elapsed() >= Duration::from_millis(2900));

    // A WebSocket quiet for 2.5 s still gets the next op.
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let url = format!(
        "{}/v2/sync/ws?since={since}&token={}",
        base.replace("http://", "ws://"),
        admin.token
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, _) = admin
        .send(
            Method::POST,
            &format!("/v2/rooms/{my_room}/messages"),
            &[("body", "after a quiet while".into())],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let frame = loop {
        match tokio::time::timeout(Duration::from_secs(3), socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => break text.to_string(),
            Ok(Some(Ok(_))) => continue,
            other => panic!("the WebSocket was closed: {other:?}"),
        }
    };
    assert!(frame.contains("after a quiet while"), "{frame}");
    // Meanwhile the idle connection was closed.
    assert!(
        read_until_closed(&mut idle, Duration::from_millis(100))
            .await
            .is_some()
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn past_the_cap_idle_connections_make_room_and_busy_ones_refuse() {
    let (server, admin, _dir) = start_with(|config| Config {
        connections: hayabusa_http::ConnectionSettings {
            max_connections: 8,
            ..Default::default()
        },
        ..config
    })
    .await;
    let addr = server.addr;
    let base = format!("http://{addr}");

    // Eight idle connections fill the cap; a request still gets through.
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let response = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The one idle the longest was closed to make room.
    assert!(
        read_until_closed(&mut idle[0], Duration::from_secs(2))
            .await
            .is_some()
    );
    drop(idle);

    // Eight busy long-polls: the next connection is refused with a JSON 503.
    let (_, first) = admin.get("/v2/sync").await;
    let since = first["revision"].as_str().unwrap().to_string();
    let mut polls = Vec::new();
    for _ in 0..8 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                format!(
                    "GET /v2/sync?since={since}&timeout=5 HTTP/1.1\r\nHost: x\r\nX-ChatWorkToken: {}\r\n\r\n",
                    admin.token
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        polls.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut refused = TcpStream::connect(addr).await.unwrap();
    refused
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (status, head, body) = read_response(&mut refused, Duration::from_secs(2))
        .await
        .expect("an answer past the cap");
    assert_json_error(status, &head, &body, 503);
    // The long-polls are not cut.
    for stream in &mut polls {
        let (status, _, _) = read_response(stream, Duration::from_secs(8)).await.unwrap();
        assert_eq!(status, 200);
    }
    server.stop().await.unwrap();
}

/// A group chat administered by `me`.
async fn group_room(admin: &Client, me: &Value) -> u64 {
    let (status, room) = admin
        .send(
            Method::POST,
            "/v2/rooms",
            &[
                ("name", "Net".into()),
                ("members_admin_ids", me["account_id"].to_string()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{room}");
    room["room_id"].as_u64().unwrap()
}

#[tokio::test]
async fn urls_come_from_the_public_url_and_trusted_proxies_only() {
    let (server, admin, _dir) = start_with(|config| Config {
        public_url: Some("https://chat.example.com/".into()),
        trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        ..config
    })
    .await;
    let (_, me) = admin.get("/v2/me").await;
    let my_room = group_room(&admin, &me).await;
    assert!(
        me["avatar_image_url"]
            .as_str()
            .unwrap()
            .starts_with("https://chat.example.com/"),
        "{me}"
    );
    let (_, rooms) = admin.get("/v2/rooms").await;
    assert!(
        rooms[0]["icon_path"]
            .as_str()
            .unwrap()
            .starts_with("https://chat.example.com/"),
        "{rooms}"
    );
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("x.txt"),
    );
    let (status, uploaded) = read(
        admin
            .request(Method::POST, &format!("/v2/rooms/{my_room}/files"))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{uploaded}");
    let file = uploaded["file_id"].as_u64().unwrap();
    let (status, link) = admin
        .send(
            Method::POST,
            &format!("/v2/rooms/{my_room}/link"),
            &[("code", "net-link".into())],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{link}");

    // The request's Host and forwarding headers (from an untrusted peer) change nothing.
    let forged = |request: reqwest::RequestBuilder| {
        request
            .header("Host", "evil.example")
            .header("X-Forwarded-Host", "evil.example")
            .header("X-Forwarded-Proto", "http")
    };
    let (_, detail) = read(
        forged(admin.request(
            Method::GET,
            &format!("/v2/rooms/{my_room}/files/{file}?create_download_url=1"),
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    let url = detail["download_url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!(
            "https://chat.example.com/v2/files/download/{my_room}/{file}?"
        )),
        "{url}"
    );
    let (_, link) = read(
        forged(admin.request(Method::GET, &format!("/v2/rooms/{my_room}/link")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(link["url"], "https://chat.example.com/g/net-link");
    server.stop().await.unwrap();

    // A trusted proxy (here: the loopback peer) may name the scheme and host.
    let (server, admin, _dir) = start_with(|config| Config {
        public_url: Some("https://chat.example.com".into()),
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        ..config
    })
    .await;
    let (_, me) = admin.get("/v2/me").await;
    let my_room = group_room(&admin, &me).await;
    admin
        .send(
            Method::POST,
            &format!("/v2/rooms/{my_room}/link"),
            &[("code", "proxied".into())],
        )
        .await;
    let (_, link) = read(
        admin
            .request(Method::GET, &format!("/v2/rooms/{my_room}/link"))
            .header("X-Forwarded-Host", "edge.example:8443")
            .header("X-Forwarded-Proto", "http")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(link["url"], "http://edge.example:8443/g/proxied");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_websocket_origin_check_compares_the_scheme() {
    let (server, admin, _dir) = start_with(|config| Config {
        public_url: Some("https://chat.example.com".into()),
        ..config
    })
    .await;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let open = |origin: &'static str, host: &'static str| {
        let url = format!("ws://{}/v2/sync/ws?token={}", server.addr, admin.token);
        async move {
            let mut request = url.into_client_request().unwrap();
            request
                .headers_mut()
                .insert("Origin", origin.parse().unwrap());
            request.headers_mut().insert("Host", host.parse().unwrap());
            match tokio_tungstenite::connect_async(request).await {
                Ok(_) => 101,
                Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                    response.status().as_u16()
                }
                Err(other) => panic!("{other}"),
            }
        }
    };
    // Same host, other scheme: a page served over plain HTTP may not connect.
    assert_eq!(
        open("http://chat.example.com", "chat.example.com").await,
        403
    );
    assert_eq!(
        open("https://chat.example.com", "chat.example.com").await,
        101
    );
    assert_eq!(open("https://chat.example.com", "other.example").await, 101);
    // The Host header is not the server's name (DNS rebinding).
    assert_eq!(open("https://evil.example", "evil.example").await, 403);
    server.stop().await.unwrap();
}

/// The real binary under `ulimit -n 1024`.
struct Limited {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn launch_with_1024_files(dir: &std::path::Path) -> Limited {
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("sh")
            .arg("-c")
            .arg(r#"ulimit -n 1024 && exec "$0" "$@""#)
            .arg(env!("CARGO_BIN_EXE_hayabusa"))
            .args(["serve", "--data-dir"])
            .arg(dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args([
                "--no-rate-limits",
                "--idle-timeout-secs",
                "3",
                "--body-timeout-secs",
                "3",
            ])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the binary starts");
        let mut limited = Limited {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = limited.child.try_wait() {
                break;
            }
            if let Ok(response) = reqwest::get(format!("http://{}/healthz", limited.addr)).await
                && response.status().is_success()
            {
                return limited;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    panic!("the binary did not come up");
}

#[tokio::test]
async fn two_thousand_idle_sockets_do_not_stop_healthz_under_a_1024_file_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = launch_with_1024_files(dir.path()).await;
    let addr = server.addr;

    // A stalled body first, then 2,000 connections that send nothing.
    let token = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(
            format!(
                "POST /v2/rooms HTTP/1.1\r\nHost: x\r\nX-ChatWorkToken: {}\r\nContent-Length: 100\r\n\r\nname=",
                token.trim()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut idle = Vec::new();
    for _ in 0..2_000 {
        match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => idle.push(stream),
            other => panic!("connect failed: {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    for _ in 0..3 {
        let started = Instant::now();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        let response = client
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .expect("/healthz answers within 1 s");
        assert_eq!(response.status(), StatusCode::OK);
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    // After the 3 s timeouts, the stalled body got its 408 and every idle socket
    // was closed by the server.
    let (status, head, body) = read_response(&mut stalled, Duration::from_secs(5))
        .await
        .expect("the stalled body is answered");
    assert_json_error(status, &head, &body, 408);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut open = 0;
    for stream in &mut idle {
        if read_until_closed(stream, Duration::from_millis(1))
            .await
            .is_none()
        {
            open += 1;
        }
    }
    assert_eq!(open, 0, "idle sockets still open after the idle timeout");
}
