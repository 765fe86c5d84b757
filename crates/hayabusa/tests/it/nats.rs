//! The server with its event log on NATS JetStream (`serve --event-log`): commands,
//! reads, idempotent retries and restarts work on JetStream's sparse positions, and a
//! NATS without JetStream is refused at start.

use crate::helpers::*;
use hayabusa::{Config, RunningServer};
use hayabusa_nats::testkit::NatsServer;
use reqwest::{Method, StatusCode};
use std::path::Path;

async fn start_on(dir: &Path, nats: &NatsServer) -> anyhow::Result<(RunningServer, Client)> {
    let server = hayabusa::start(Config {
        rate_limits: hayabusa_http::RateLimits::off(),
        backends: hayabusa::Backends {
            event_log: nats_backend(nats),
            ..hayabusa::Backends::default()
        },
        ..Config::new(dir)
    })
    .await?;
    let base = format!("http://{}", server.addr);
    let token = std::fs::read_to_string(dir.join("admin.token"))?;
    let admin = Client::new(&base, token.trim());
    Ok((server, admin))
}

/// A server on a fresh data directory with its event log on `nats`.
async fn app_on(nats: &NatsServer) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, admin) = start_on(dir.path(), nats).await.expect("server starts");
    TestApp {
        base: format!("http://{}", server.addr),
        server: Some(server),
        admin,
        dir,
        backend: TestBackend::embedded(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_jetstream_writes_reads_and_restarts() {
    let nats = NatsServer::start();
    let app = app_on(&nats).await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let room = app.room(&alice, &[&bob], &[]).await;
    alice.post(room, "first").await;
    bob.post(room, &format!("[To:{}] second", alice.id)).await;
    let path = format!("/v2/rooms/{room}/messages");
    let send = || {
        alice
            .client
            .request(Method::POST, &path)
            .header("Idempotency-Key", "nats-1")
            .form(&[("body", "only once")])
            .send()
    };
    let first = read(send().await.expect("post")).await;
    let retry = read(send().await.expect("retry")).await;
    assert_eq!(first.0, StatusCode::OK, "{:?}", first.1);
    assert_eq!(first.1, retry.1, "a retry returns the first message id");
    let (status, listed) = bob
        .client
        .send(Method::GET, &path, &[("force", "1".into())])
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let bodies: Vec<&str> = listed
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["body"].as_str())
        .collect();
    assert_eq!(
        bodies,
        ["first", &format!("[To:{}] second", alice.id), "only once"],
        "every acknowledged write is read back, once"
    );

    // A new server process on the same NATS stream and data directory goes on.
    let dir = app.stop().await;
    let (server, _admin) = start_on(dir.path(), &nats).await.expect("server restarts");
    let base = format!("http://{}", server.addr);
    let alice_again = Client::new(&base, &alice.client.token);
    let (status, _) = alice_again
        .send(
            Method::POST,
            &format!("/v2/rooms/{room}/messages"),
            &[("body", "after restart".into())],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the room's stream is loaded from JetStream"
    );
    let (status, listed) = alice_again
        .send(Method::GET, &path, &[("force", "1".into())])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed.as_array().map(Vec::len), Some(4));
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_nats_server_without_jetstream_is_refused_at_start() {
    let nats = NatsServer::start_without_jetstream();
    let dir = tempfile::tempdir().expect("temp dir");
    let error = match start_on(dir.path(), &nats).await {
        Ok(_) => panic!("a server must not start on NATS without JetStream"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains("JetStream") && error.contains("-js"),
        "the refusal says what is missing: {error}"
    );
}

#[tokio::test]
async fn a_data_directory_of_the_embedded_log_is_not_served_from_jetstream() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("events.sqlite"), b"").expect("an embedded log file");
    let error = match start_on(dir.path(), &nats).await {
        Ok(_) => panic!("read models of another log must not be projected from JetStream"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains("events.sqlite") && error.contains("new data directory"),
        "the refusal says why and what to do: {error}"
    );
}

/// kill -9 of nats-server (single node, `sync_interval: always`) while clients post:
/// posts during the outage are refused or wait for its end (the adapter asks again
/// within its request timeout), and none is acknowledged while the server is down;
/// every acknowledged post is there once it is back, and the server recovers by
/// itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nats_server_loses_no_acknowledged_post_and_the_server_recovers_by_itself() {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    let mut nats = NatsServer::start();
    let app = app_on(&nats).await;
    let alice = app.account("Alice").await;
    let room = app.room(&alice, &[], &[]).await;
    let path = format!("/v2/rooms/{room}/messages");

    let acknowledged: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let acknowledged_at: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for writer in 0..4 {
        let (client, path) = (alice.client.clone(), path.clone());
        let (acknowledged, refused, stop) = (acknowledged.clone(), refused.clone(), stop.clone());
        let acknowledged_at = acknowledged_at.clone();
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                i += 1;
                let body = format!("w{writer}-{i}");
                let sent = client
                    .request(Method::POST, &path)
                    .form(&[("body", body.as_str())])
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status() == StatusCode::OK => {
                        let answer: serde_json::Value = response.json().await.expect("json");
                        let id = answer["message_id"].as_str().expect("id").to_string();
                        acknowledged.lock().unwrap().insert(body, id);
                        acknowledged_at.lock().unwrap().push(Instant::now());
                    }
                    Ok(response) => {
                        assert!(
                            response.status().is_server_error(),
                            "an outage is a 5xx, not {}",
                            response.status()
                        );
                        refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(_) => {
                        refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before_kill = acknowledged.lock().unwrap().len();
    assert!(before_kill > 0, "posts were acknowledged before the kill");
    nats.kill();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let restarting = Instant::now();
    nats.restart();
    // The same server process recovers: posts are acknowledged again.
    let restarted = Instant::now();
    let recovered = loop {
        let now = acknowledged.lock().unwrap().len();
        tokio::time::sleep(Duration::from_millis(100)).await;
        if acknowledged.lock().unwrap().len() > now {
            break restarted.elapsed();
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(30),
            "no post acknowledged within 30 s of nats-server's restart"
        );
    };
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for writer in writers {
        writer.await.expect("writer");
    }
    // Nothing was acknowledged while nats-server was down (an answer already on its
    // way at the kill may arrive a moment after it).
    let during: Vec<Duration> = acknowledged_at
        .lock()
        .unwrap()
        .iter()
        .filter(|at| **at > killed + Duration::from_millis(200) && **at < restarting)
        .map(|at| *at - killed)
        .collect();
    assert!(
        during.is_empty(),
        "posts acknowledged while nats-server was down, at {during:?} after the kill"
    );
    eprintln!(
        "nats-server kill: {} posts refused during the outage",
        refused.load(std::sync::atomic::Ordering::SeqCst)
    );
    // Every acknowledged post is there, by id and in the room's count.
    let acked = acknowledged.lock().unwrap().clone();
    for (body, id) in &acked {
        let (status, message) = alice.client.get(&format!("{path}/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}: {message}");
        assert_eq!(message["body"], body.as_str());
    }
    // A post whose answer was lost with the connection may or may not be stored; no
    // more messages than posts attempted.
    let (_, view) = alice.client.get(&format!("/v2/rooms/{room}")).await;
    let stored = view["message_num"].as_u64().expect("message_num");
    let unanswered = refused.load(std::sync::atomic::Ordering::SeqCst) as u64;
    assert!(
        stored >= acked.len() as u64 && stored <= acked.len() as u64 + unanswered,
        "{stored} stored, {} acknowledged, {unanswered} refused (recovered {recovered:?} after the restart)",
        acked.len()
    );
    app.stop().await;
}

/// `--idempotency-key-hours` reaches the log: the server creates its JetStream
/// stream with that duplicate window (the window is how long JetStream refuses a
/// second message with a key). A value outside 1 to 8760 is refused, naming the flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idempotency_key_expiry_is_the_streams_duplicate_window() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hayabusa"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(["--event-log", &nats.url(), "--idempotency-key-hours", "2"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the binary starts");
    let started = std::time::Instant::now();
    let config = loop {
        if let Some(config) = nats.stream_config("HAYABUSA").await {
            break config;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the server never created its stream"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    let two_hours_ns = 2 * 3600 * 1_000_000_000_i64;
    assert_eq!(config["duplicate_window"].as_i64(), Some(two_hours_ns));

    for bad in ["0", "8761", "soon"] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_hayabusa"))
            .args(["serve", "--data-dir"])
            .arg(dir.path())
            .args(["--idempotency-key-hours", bad])
            .output()
            .expect("the binary runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{bad} is refused");
        assert!(
            stderr.contains("--idempotency-key-hours"),
            "the refusal of {bad} names the flag: {stderr}"
        );
    }
}
