//! The real binary under concurrent posting, killed with SIGKILL again and again:
//! every acknowledged message is present exactly once after each restart, and no
//! unacknowledged one is half-visible.

use crate::helpers::*;
use futures::StreamExt;
use hayabusa_domain::Event;
use hayabusa_store::EventReader;
use reqwest::{Method, StatusCode};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Binary {
    child: Child,
    base: String,
}

async fn launch(dir: &Path, backends: &hayabusa::Backends) -> Binary {
    for _ in 0..5 {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_hayabusa"))
            .args(["serve", "--data-dir"])
            .arg(dir)
            .args(backends.to_args())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--no-rate-limits")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("binary starts");
        let mut binary = Binary {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = binary.child.try_wait() {
                break; // Port taken: try another.
            }
            if let Ok(response) = reqwest::get(format!("{}/healthz", binary.base)).await
                && response.status().is_success()
            {
                return binary;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let _ = binary.child.kill();
        let _ = binary.child.wait();
    }
    panic!("the binary did not come up");
}

/// Every posted message in the log (the data directory's, or on NATS): body →
/// (room, count).
async fn bodies_in_log(dir: &Path, backends: &hayabusa::Backends) -> HashMap<String, (u64, usize)> {
    let log: Box<dyn EventReader> = match &backends.event_log {
        hayabusa::backends::EventLogBackend::Embedded => {
            Box::new(hayabusa_sqlite::SqliteEventLog::open(&dir.join("events.sqlite")).unwrap())
        }
        hayabusa::backends::EventLogBackend::Nats { servers, .. } => Box::new(
            hayabusa_nats::connect(servers.expose(), hayabusa_nats::NatsOptions::default())
                .await
                .unwrap(),
        ),
    };
    let mut found: HashMap<String, (u64, usize)> = HashMap::new();
    let mut after = 0;
    loop {
        let batch = log.read_all(after, 5_000).await.unwrap();
        let Some(last) = batch.last() else { break };
        after = last.position;
        for recorded in &batch {
            if let Ok(Event::MessagePosted { body, room_id, .. }) = hayabusa_domain::decode_event(
                &recorded.event_type,
                recorded.schema_version,
                &recorded.data,
            ) {
                found.entry(body).or_insert((room_id.0, 0)).1 += 1;
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_repeated_sigkill_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    // On HAYABUSA_TEST_BACKEND's engines (their servers outlive the binary's kills).
    let backend = TestBackend::from_env().await;
    let backends = backend.backends.clone();
    let mut binary = launch(dir.path(), &backends).await;
    let token = std::fs::read_to_string(dir.path().join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let admin = Client::new(&binary.base, &token);
    let mut rooms = vec![];
    for i in 0..3 {
        let (status, body) = admin
            .send(
                Method::POST,
                "/v2/rooms",
                &[
                    ("name", format!("crash {i}")),
                    ("members_admin_ids", {
                        let (_, me) = admin.get("/v2/me").await;
                        me["account_id"].to_string()
                    }),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        rooms.push(body["room_id"].as_u64().unwrap());
    }

    let acknowledged: Arc<Mutex<HashMap<String, (u64, String)>>> = Arc::default();
    let attempted: Arc<Mutex<HashSet<String>>> = Arc::default();
    for round in 0..4 {
        let client = Client::new(&binary.base, &token);
        let mut writers = vec![];
        for writer in 0..12 {
            let client = client.clone();
            let acknowledged = acknowledged.clone();
            let attempted = attempted.clone();
            let room = rooms[writer % rooms.len()];
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let body = format!("r{round}-w{writer}-{i}");
                    attempted.lock().unwrap().insert(body.clone());
                    let sent = client
                        .request(Method::POST, &format!("/v2/rooms/{room}/messages"))
                        .form(&[("body", body.as_str())])
                        .timeout(Duration::from_secs(5))
                        .send()
                        .await;
                    let Ok(response) = sent else { return };
                    if response.status() != StatusCode::OK {
                        return;
                    }
                    let Ok(answer) = response.json::<serde_json::Value>().await else {
                        return;
                    };
                    let id = answer["message_id"].as_str().unwrap().to_string();
                    acknowledged.lock().unwrap().insert(body, (room, id));
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(300 + 150 * round as u64)).await;
        binary.child.kill().unwrap(); // SIGKILL
        binary.child.wait().unwrap();
        for writer in writers {
            writer.await.unwrap();
        }

        let in_log = bodies_in_log(dir.path(), &backends).await;
        let acked = acknowledged.lock().unwrap().clone();
        assert!(
            !acked.is_empty(),
            "round {round}: some posts were acknowledged"
        );
        for (body, (room, _)) in &acked {
            assert_eq!(
                in_log.get(body),
                Some(&(*room, 1)),
                "round {round}: acknowledged {body} must be in the log once"
            );
        }
        for (body, (_, count)) in &in_log {
            assert_eq!(*count, 1, "{body} appears {count} times");
            assert!(
                attempted.lock().unwrap().contains(body),
                "{body} was never sent"
            );
        }

        binary = launch(dir.path(), &backends).await;
        let client = Client::new(&binary.base, &token);
        // Every acknowledged message is readable, with its body, after the restart.
        for (body, (room, id)) in acked
            .iter()
            .filter(|(b, _)| b.starts_with(&format!("r{round}-")))
        {
            let (status, message) = client.get(&format!("/v2/rooms/{room}/messages/{id}")).await;
            assert_eq!(status, StatusCode::OK, "{body}: {message}");
            assert_eq!(message["body"], body.as_str());
        }
        // The read models agree with the log: message_num per room = posts in the log.
        for room in &rooms {
            let expected = in_log.values().filter(|(r, _)| r == room).count() as u64;
            let (_, view) = client.get(&format!("/v2/rooms/{room}")).await;
            assert_eq!(
                view["message_num"], expected,
                "room {room} after round {round}"
            );
        }
    }
    binary.child.kill().unwrap();
    binary.child.wait().unwrap();
}

#[tokio::test]
async fn sigterm_shuts_the_server_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut binary = launch(dir.path(), &hayabusa::Backends::default()).await;
    let token = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    let token = token.trim().to_string();
    let admin = Client::new(&binary.base, &token);
    let (_, start) = admin.get("/v2/sync").await;
    let since = start["revision"].as_str().unwrap().to_string();

    // In flight when the signal comes: a long-poll that would wait 50 s, and a sync
    // WebSocket.
    let poll = {
        let (base, token, since) = (binary.base.clone(), token.clone(), since.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let answer = reqwest::Client::new()
                .get(format!("{base}/v2/sync?since={since}&timeout=50"))
                .header("X-ChatWorkToken", token)
                .send()
                .await;
            (answer.map(|response| response.status()), started.elapsed())
        })
    };
    let url = format!(
        "{}/v2/sync/ws?since={since}&token={token}",
        binary.base.replace("http://", "ws://")
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pid = nix::unistd::Pid::from_raw(binary.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let started = Instant::now();

    // The long-poll is answered at once (the client polls again elsewhere) ...
    let (status, waited) = poll.await.unwrap();
    assert_eq!(status.expect("an answer, not a reset"), StatusCode::OK);
    assert!(
        waited < Duration::from_secs(10),
        "answered after {waited:?}"
    );
    // ... and the WebSocket is closed with 1001, "going away".
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let close = close.expect("a close code");
    assert_eq!(u16::from(close.code), 1001, "{close:?}");
    loop {
        if let Some(status) = binary.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
