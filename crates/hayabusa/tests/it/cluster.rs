//! A cluster on one machine, killed node by node: a 3-node JetStream cluster
//! (replicas 3, `sync_interval: always`), PostgreSQL, two `api` nodes and two
//! `projector` nodes, each a real `hayabusa` process. Writers post through both API
//! nodes while WebSocket clients on both follow the account; in turn the JetStream
//! stream leader, an API node and the active projector are killed with SIGKILL and
//! restarted, and then JetStream loses its quorum. Files are kept in a JetStream
//! object store: one uploaded through one node is downloaded through the other.
//!
//! Checked: every acknowledged post is in the log exactly once, in the read models of
//! both API nodes, and in every follower's stream in log order with no gap or
//! duplicate; the read models equal a fresh rebuild; no post is acknowledged while
//! JetStream has no quorum (a refused one may still land once it is back: its outcome
//! was unknown). Reported (and bounded): how long writes failed after the
//! leader kill, and how long the standby projector took to take over.

use crate::helpers::*;
use futures::StreamExt;
use hayabusa_domain::Event;
use hayabusa_nats::testkit::NatsCluster;
use hayabusa_store::{BlobStore, EventReader, ReadModelWriter};
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const STREAM: &str = "HAYABUSA";

/// One `hayabusa serve` process, restartable on the same port and data directory.
struct Node {
    name: &'static str,
    args: Vec<String>,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    env: Vec<(String, String)>,
}

impl Node {
    fn new(name: &'static str, role: &str, common: &[String], secret: &[u8]) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let secret_file = dir.path().join("secret.key");
        std::fs::write(&secret_file, secret).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let mut args = vec!["serve".to_string(), "--role".into(), role.into()];
        args.extend(common.iter().cloned());
        Node {
            name,
            args,
            dir,
            port: hayabusa_nats::testkit::free_port(),
            child: None,
            env: Vec::new(),
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the process and waits until `/healthz` answers (it retries while the
    /// JetStream cluster is still electing its leaders).
    async fn start(&mut self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
            let mut child = Command::new(env!("CARGO_BIN_EXE_hayabusa"))
                .args(&self.args)
                .arg("--data-dir")
                .arg(self.dir.path())
                .args(["--listen", &format!("127.0.0.1:{}", self.port)])
                .env("RUST_LOG", "warn")
                .envs(self.env.iter().map(|(name, value)| (name, value)))
                .stdout(Stdio::from(log.try_clone().unwrap()))
                .stderr(Stdio::from(log))
                .spawn()
                .expect("the binary starts");
            let up = Instant::now();
            while up.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if let Ok(response) = reqwest::get(format!("{}/healthz", self.base())).await
                    && response.status().is_success()
                {
                    self.child = Some(child);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("{} did not come up:\n{}", self.name, self.log());
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Whether its projector holds the lease now (from `/metrics`).
    async fn projecting(&self) -> bool {
        let Ok(response) = reqwest::get(format!("{}/metrics", self.base())).await else {
            return false;
        };
        let text = response.text().await.unwrap_or_default();
        text.lines()
            .any(|line| line.starts_with("hayabusa_projector_active") && line.ends_with(" 1"))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last lines of a log.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// What the writers got.
#[derive(Default)]
struct Acked {
    /// body → (room, message id).
    posts: HashMap<String, (u64, String)>,
}

/// Posts `body` through `bases` in turn (with an idempotency key, so a retry on the
/// other node never posts twice) until one acknowledges it or `attempts` run out.
async fn post(
    http: &reqwest::Client,
    bases: &[String],
    token: &str,
    room: u64,
    body: &str,
    attempts: usize,
) -> Option<String> {
    for attempt in 0..attempts {
        let base = &bases[attempt % bases.len()];
        let response = http
            .post(format!("{base}/v2/rooms/{room}/messages"))
            .header("X-ChatWorkToken", token)
            .header("Idempotency-Key", body)
            .form(&[("body", body)])
            .timeout(Duration::from_secs(15))
            .send()
            .await;
        match response {
            Ok(response) => {
                let status = response.status();
                if status == StatusCode::OK {
                    let json: Value = response.json().await.unwrap();
                    return Some(json["message_id"].as_str().unwrap().to_string());
                }
                let text = response.text().await.unwrap_or_default();
                assert!(
                    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS,
                    "a post was refused with {status}: {text}"
                );
                if attempt % 50 == 49 {
                    eprintln!("post {body} via {base}: {status} {text}");
                }
            }
            Err(error) if attempt % 50 == 49 => eprintln!("post {body} via {base}: {error}"),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// A WebSocket follower of the admin account: reconnects to the next node with its
/// last revision whenever its socket ends. Collects (revision position, message id)
/// of every `message_created` op, in the order received.
fn follow(
    bases: Vec<String>,
    token: String,
    since: String,
    seen: Arc<Mutex<Vec<(u64, String)>>>,
    reconnects: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut since = since;
        let mut node = 0;
        while !stop.load(Ordering::SeqCst) {
            let url = format!(
                "{}/v2/sync/ws?since={since}&token={token}",
                bases[node % bases.len()].replace("http://", "ws://")
            );
            let Ok((mut socket, _)) = tokio_tungstenite::connect_async(url).await else {
                node += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            loop {
                let frame = tokio::time::timeout(Duration::from_millis(500), socket.next()).await;
                match frame {
                    Ok(Some(Ok(Message::Text(text)))) => {
                        let op: Value = serde_json::from_str(&text).unwrap();
                        let revision = op["revision"].as_str().unwrap().to_string();
                        if op["type"] == "message_created" {
                            let position: u64 =
                                revision.split(':').next().unwrap().parse().unwrap();
                            seen.lock()
                                .unwrap()
                                .push((position, op["message_id"].as_str().unwrap().to_string()));
                        }
                        since = revision;
                    }
                    Ok(Some(Ok(_))) => {}
                    Ok(Some(Err(_)) | None) => break,
                    Err(_) if stop.load(Ordering::SeqCst) => return,
                    Err(_) => {}
                }
            }
            reconnects.fetch_add(1, Ordering::SeqCst);
            node += 1;
        }
    })
}

/// Every message in the log: body → how many times.
async fn bodies_in_log(urls: &str) -> HashMap<String, usize> {
    let log = hayabusa_nats::connect(urls, hayabusa_nats::NatsOptions::default())
        .await
        .unwrap();
    let mut found = HashMap::new();
    let mut after = 0;
    loop {
        let batch = log.read_all(after, 5_000).await.unwrap();
        let Some(last) = batch.last() else { break };
        after = last.position;
        for recorded in &batch {
            if let Ok(Event::MessagePosted { body, .. }) = hayabusa_domain::decode_event(
                &recorded.event_type,
                recorded.schema_version,
                &recorded.data,
            ) {
                *found.entry(body).or_insert(0) += 1;
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_survives_losing_any_node() {
    let mut nats = NatsCluster::start(3);
    let database = hayabusa_postgres::testkit::TestDatabase::create().await;
    let urls = nats.urls();
    let common: Vec<String> = [
        "--event-log",
        &urls,
        "--event-log-replicas",
        "3",
        "--read-store",
        &database.connection_string(),
        "--blob-store",
        "nats",
        "--no-rate-limits",
    ]
    .iter()
    .map(|arg| arg.to_string())
    .collect();
    let secret = [42u8; 32];
    let mut projectors = [
        Node::new("projector 1", "projector", &common, &secret),
        Node::new("projector 2", "projector", &common, &secret),
    ];
    let mut apis = [
        Node::new("api 1", "api", &common, &secret),
        Node::new("api 2", "api", &common, &secret),
    ];
    for node in projectors.iter_mut().chain(apis.iter_mut()) {
        node.start().await;
    }
    let bases: Vec<String> = apis.iter().map(Node::base).collect();
    let token = std::fs::read_to_string(apis[0].dir.path().join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let other_token = std::fs::read_to_string(apis[1].dir.path().join("admin.token")).unwrap();
    assert_eq!(token, other_token.trim(), "one administrator, one token");
    let admin = Client::new(&bases[0], &token);
    let (_, me) = admin.get("/v2/me").await;
    let mut rooms = Vec::new();
    for name in ["cluster a", "cluster b"] {
        let (status, room) = admin
            .send(
                reqwest::Method::POST,
                "/v2/rooms",
                &[
                    ("name", name.to_string()),
                    ("members_admin_ids", me["account_id"].to_string()),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{room}");
        rooms.push(room["room_id"].as_u64().unwrap());
    }
    // Read on the other node right after the write: the room is there.
    let (status, _) = Client::new(&bases[1], &token)
        .get(&format!("/v2/rooms/{}", rooms[1]))
        .await;
    assert_eq!(status, StatusCode::OK);

    // A file uploaded through one node is downloaded through the other.
    let content: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(content.clone()).file_name("report.bin"),
    );
    let uploaded: Value = reqwest::Client::new()
        .post(format!("{}/v2/rooms/{}/files", bases[0], rooms[0]))
        .header("X-ChatWorkToken", &token)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let file = uploaded["file_id"].as_u64().expect("the upload's file id");
    let (status, detail) = Client::new(&bases[1], &token)
        .send(
            reqwest::Method::GET,
            &format!("/v2/rooms/{}/files/{file}", rooms[0]),
            &[("create_download_url", "1".into())],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    let downloaded = reqwest::get(detail["download_url"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(downloaded.status(), StatusCode::OK);
    assert_eq!(downloaded.bytes().await.unwrap().to_vec(), content);

    // Followers on both nodes, from the revision before any post.
    let (_, start) = admin.get("/v2/sync").await;
    let since = start["revision"].as_str().unwrap().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let reconnects = Arc::new(AtomicUsize::new(0));
    let followers: Vec<_> = (0..2)
        .map(|first| {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let mut order = bases.clone();
            order.rotate_left(first);
            let task = follow(
                order,
                token.clone(),
                since.clone(),
                seen.clone(),
                reconnects.clone(),
                stop.clone(),
            );
            (seen, task)
        })
        .collect();

    // Writers through both API nodes.
    let acked = Arc::new(Mutex::new(Acked::default()));
    let writing = Arc::new(AtomicBool::new(true));
    let http = reqwest::Client::new();
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (acked, writing, http, token) =
                (acked.clone(), writing.clone(), http.clone(), token.clone());
            let mut order = bases.clone();
            order.rotate_left(writer % 2);
            let room = rooms[writer % rooms.len()];
            tokio::spawn(async move {
                let mut i = 0;
                while writing.load(Ordering::SeqCst) {
                    let body = format!("w{writer}-{i}");
                    i += 1;
                    if let Some(id) = post(&http, &order, &token, room, &body, 400).await {
                        acked.lock().unwrap().posts.insert(body, (room, id));
                    }
                }
            })
        })
        .collect();
    let acked_count = || acked.lock().unwrap().posts.len();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 1. The JetStream leader of the stream.
    let leader = nats
        .stream_leader(STREAM)
        .await
        .expect("the stream has a leader");
    let before = acked_count();
    let killed = Instant::now();
    nats.servers[leader].kill();
    // Probes start every 100 ms, each a single attempt: writes are back when the
    // first one is acknowledged (a probe caught by the kill may wait for its answer
    // for seconds, so one probe at a time would measure its timeout).
    let (back_sender, mut back) = tokio::sync::mpsc::unbounded_channel();
    let mut probes = Vec::new();
    let writes_back = loop {
        if let Ok(back) = back.try_recv() {
            break back;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "writes never came back after the leader kill"
        );
        let (http, bases, token, acked, back_sender) = (
            http.clone(),
            bases.clone(),
            token.clone(),
            acked.clone(),
            back_sender.clone(),
        );
        let probe = format!("probe-{}-{}", probes.len(), std::process::id());
        let room = rooms[0];
        probes.push(tokio::spawn(async move {
            let order = [bases[probe.len() % 2].clone()];
            if let Some(id) = post(&http, &order, &token, room, &probe, 1).await {
                let _ = back_sender.send(killed.elapsed());
                acked.lock().unwrap().posts.insert(probe, (room, id));
            }
        }));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for probe in probes {
        probe.await.unwrap();
    }
    nats.servers[leader].restart();
    nats.wait_until_current(STREAM, Duration::from_secs(60))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(acked_count() > before, "writes went on");

    // 2. An API node: its followers and writers move to the other one.
    let reconnects_before = reconnects.load(Ordering::SeqCst);
    apis[0].kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        reconnects.load(Ordering::SeqCst) > reconnects_before,
        "the followers of the killed node reconnected"
    );
    apis[0].start().await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // 3. The active projector: the standby takes over.
    let mut active = None;
    for _ in 0..100 {
        for (index, projector) in projectors.iter().enumerate() {
            if projector.projecting().await {
                active = Some(index);
            }
        }
        if active.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let active = active.expect("one projector is active");
    let standby = 1 - active;
    assert!(
        !projectors[standby].projecting().await,
        "one projector at a time"
    );
    let killed = Instant::now();
    projectors[active].kill();
    while !projectors[standby].projecting().await {
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "the standby never took over:\n{}",
            projectors[standby].log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failover = killed.elapsed();
    // A post after the takeover is read on the other node.
    let probe = format!("probe-after-failover-{}", std::process::id());
    let Some(id) = post(&http, &bases, &token, rooms[1], &probe, 400).await else {
        panic!(
            "no post after the failover:\napi 1: {}\napi 2: {}\nnats: {}",
            tail(&apis[0].log()),
            tail(&apis[1].log()),
            nats.servers
                .iter()
                .map(|server| tail(&server.log()))
                .collect::<Vec<_>>()
                .join("\n----\n")
        );
    };
    let (status, _) = Client::new(&bases[1], &token)
        .get(&format!("/v2/rooms/{}/messages/{id}", rooms[1]))
        .await;
    assert_eq!(status, StatusCode::OK, "read after the failover");
    acked.lock().unwrap().posts.insert(probe, (rooms[1], id));
    projectors[active].start().await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Writers stop; then JetStream loses its quorum: nothing is acknowledged.
    writing.store(false, Ordering::SeqCst);
    for writer in writers {
        writer.await.unwrap();
    }
    nats.servers[1].kill();
    nats.servers[2].kill();
    let refused = format!("without-quorum-{}", std::process::id());
    let answer = http
        .post(format!("{}/v2/rooms/{}/messages", bases[0], rooms[0]))
        .header("X-ChatWorkToken", &token)
        .form(&[("body", refused.as_str())])
        .timeout(Duration::from_secs(15))
        .send()
        .await;
    if let Ok(answer) = answer {
        assert_ne!(
            answer.status(),
            StatusCode::OK,
            "acknowledged without a quorum"
        );
    }
    nats.servers[1].restart();
    nats.servers[2].restart();
    nats.wait_until_current(STREAM, Duration::from_secs(60))
        .await;

    // Every acknowledged post: in the log once, in every follower's stream in log
    // order, in both nodes' read models, and the read models equal a rebuild.
    let acked = std::mem::take(&mut acked.lock().unwrap().posts);
    let expected: HashSet<String> = acked.values().map(|(_, id)| id.clone()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    for (seen, _) in &followers {
        loop {
            let got: HashSet<String> = seen
                .lock()
                .unwrap()
                .iter()
                .map(|(_, id)| id.clone())
                .collect();
            if expected.is_subset(&got) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "a follower misses {} acknowledged posts",
                expected.difference(&got).count()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    stop.store(true, Ordering::SeqCst);
    for (seen, task) in followers {
        task.await.unwrap();
        let seen = seen.lock().unwrap();
        let ids: HashSet<&String> = seen.iter().map(|(_, id)| id).collect();
        assert_eq!(ids.len(), seen.len(), "a follower got a post twice");
        assert!(
            seen.windows(2).all(|pair| pair[0].0 < pair[1].0),
            "a follower's posts are out of log order"
        );
    }
    // The log answers again once the restarted servers rejoined.
    let in_log = tokio::time::timeout(Duration::from_secs(30), bodies_in_log(&urls))
        .await
        .expect("the log answers after the quorum came back");
    for body in acked.keys() {
        assert_eq!(in_log.get(body), Some(&1), "{body} in the log");
    }
    // (A refused post may still reach the log once the quorum is back: it was not
    // acknowledged, so its outcome was unknown, as a 503 says.)
    for base in &bases {
        let client = Client::new(base, &token);
        for (room, id) in acked.values().step_by((acked.len() / 100).max(1)) {
            let (status, message) = client.get(&format!("/v2/rooms/{room}/messages/{id}")).await;
            assert_eq!(status, StatusCode::OK, "{base}: {message}");
        }
    }
    let live = hayabusa_postgres::PgReadStore::connect(
        &database.connection_string(),
        hayabusa_postgres::PgOptions::default(),
    )
    .await
    .unwrap();
    let rebuilt_database = hayabusa_postgres::testkit::TestDatabase::create().await;
    let rebuilt = Arc::new(
        hayabusa_postgres::PgReadStore::connect(
            &rebuilt_database.connection_string(),
            hayabusa_postgres::PgOptions::default(),
        )
        .await
        .unwrap(),
    );
    let log = Arc::new(
        hayabusa_nats::connect(&urls, hayabusa_nats::NatsOptions::default())
            .await
            .unwrap(),
    );
    let head = log.head();
    hayabusa_app::rebuild(log, rebuilt.clone()).await.unwrap();
    while live.checkpoint().await.unwrap() < head {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        live.dump().await.unwrap(),
        rebuilt.dump().await.unwrap(),
        "the live read models equal a rebuild"
    );

    eprintln!(
        "cluster: {} posts acknowledged; writes back {:?} after the stream leader's kill; \
         projector failover {:?}; {} follower reconnects",
        acked.len(),
        writes_back,
        failover,
        reconnects.load(Ordering::SeqCst)
    );
    assert!(
        writes_back < Duration::from_secs(20),
        "writes came back after {writes_back:?} (target 10 s)"
    );
    assert!(
        failover < Duration::from_secs(10),
        "the standby took over after {failover:?} (target 5 s)"
    );
}

#[tokio::test]
async fn api_and_projector_roles_need_the_shared_engines() {
    for role in [hayabusa::Role::Api, hayabusa::Role::Projector] {
        let dir = tempfile::tempdir().unwrap();
        let refused = hayabusa::start(hayabusa::Config {
            role,
            ..hayabusa::Config::new(dir.path())
        })
        .await
        .err()
        .expect("refused on the embedded stores");
        assert!(
            refused.to_string().contains("--event-log nats://"),
            "{refused:#}"
        );
    }
    assert!(hayabusa::Role::parse("api").is_ok());
    assert!(hayabusa::Role::parse("leader").is_err());
}

#[tokio::test]
async fn readyz_answers_when_the_engines_answer_and_the_read_models_keep_up() {
    let app = spawn_app().await;
    let response = reqwest::get(format!("{}/readyz", app.base)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let ready: Value = response.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert!(ready["projected"].as_u64().unwrap() >= ready["log_head"].as_u64().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_refuses_while_a_projector_runs_on_the_shared_read_models() {
    let nats = hayabusa_nats::testkit::NatsServer::start();
    let database = hayabusa_postgres::testkit::TestDatabase::create().await;
    let backends = hayabusa::Backends {
        event_log: nats_backend(&nats),
        read_store: hayabusa::backends::ReadStoreBackend::Postgres(
            hayabusa::backends::ServiceUrl::new(database.connection_string()),
        ),
        ..hayabusa::Backends::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let (server, _, admin) = start_with(dir.path(), &backends).await;
    let (status, _) = admin.get("/v2/me").await;
    assert_eq!(status, StatusCode::OK);
    let other = tempfile::tempdir().unwrap();
    let refused = hayabusa::rebuild(other.path(), &backends)
        .await
        .expect_err("a projector holds the lease");
    assert!(refused.to_string().contains("stop every"), "{refused:#}");
    // A stopped server releases the lease: the rebuild goes ahead.
    server.stop().await.unwrap();
    let position = hayabusa::rebuild(other.path(), &backends).await.unwrap();
    assert!(position > 0);
}

/// Files on an S3-compatible server (moto): uploaded through one node, downloaded
/// through the other, still there when the first is killed, and stored in the
/// bucket under the configured prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_in_s3_are_served_by_every_node() {
    let nats = hayabusa_nats::testkit::NatsServer::start();
    let database = hayabusa_postgres::testkit::TestDatabase::create().await;
    let s3 = hayabusa_s3::testkit::S3Server::start();
    let common: Vec<String> = [
        "--event-log".to_string(),
        nats.url(),
        "--read-store".into(),
        database.connection_string(),
        "--blob-store".into(),
        format!("s3://{}/uploads", hayabusa_s3::testkit::BUCKET),
        "--no-rate-limits".into(),
    ]
    .into();
    let secret = [7u8; 32];
    let mut nodes = [
        Node::new("node 1", "all", &common, &secret),
        Node::new("node 2", "all", &common, &secret),
    ];
    for node in &mut nodes {
        node.env = s3.env();
        node.start().await;
    }
    let token = std::fs::read_to_string(nodes[0].dir.path().join("admin.token")).unwrap();
    let token = token.trim();
    let admin = Client::new(&nodes[0].base(), token);
    let (_, me) = admin.get("/v2/me").await;
    let room = me["room_id"]
        .as_u64()
        .expect("the administrator's own room");

    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(content.clone()).file_name("minutes.bin"),
    );
    let uploaded = reqwest::Client::new()
        .post(format!("{}/v2/rooms/{room}/files", nodes[0].base()))
        .header("X-ChatWorkToken", token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), StatusCode::OK, "{}", nodes[0].log());
    let uploaded: Value = uploaded.json().await.unwrap();
    let file = uploaded["file_id"].as_u64().expect("the upload's file id");

    let in_bucket = s3
        .blob_store("uploads")
        .await
        .keys_stored_before(std::time::SystemTime::now() + Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        in_bucket.len(),
        1,
        "one object under the prefix: {in_bucket:?}"
    );

    nodes[0].kill();
    let other = Client::new(&nodes[1].base(), token);
    let (status, detail) = other
        .send(
            reqwest::Method::GET,
            &format!("/v2/rooms/{room}/files/{file}"),
            &[("create_download_url", "1".into())],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    let downloaded = reqwest::get(detail["download_url"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(downloaded.status(), StatusCode::OK);
    assert_eq!(downloaded.bytes().await.unwrap().to_vec(), content);
    database.drop().await;
}

impl Node {
    /// Sends SIGTERM and waits for the process to exit; returns whether it exited
    /// successfully and how long it took.
    async fn terminate(&mut self) -> (bool, Duration) {
        let mut child = self.child.take().expect("the node runs");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status.success(), started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                return (false, started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A rolling restart of the API nodes, as an upgrade does it: each node in turn
/// leaves the load balancer's rotation, gets SIGTERM, is started again and rejoins,
/// while writers post through the balancer and WebSocket followers (which resume
/// on the other node when their socket closes) follow the account. Not one post
/// fails, each node stops gracefully, every follower gets every post once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_the_api_nodes_fails_no_request() {
    let nats = hayabusa_nats::testkit::NatsServer::start();
    let database = hayabusa_postgres::testkit::TestDatabase::create().await;
    let common: Vec<String> = [
        "--event-log".to_string(),
        nats.url(),
        "--read-store".into(),
        database.connection_string(),
        "--no-rate-limits".into(),
    ]
    .into();
    let secret = [9u8; 32];
    let mut projector = Node::new("projector", "projector", &common, &secret);
    projector.start().await;
    let mut apis = [
        Node::new("api 1", "api", &common, &secret),
        Node::new("api 2", "api", &common, &secret),
    ];
    for node in &mut apis {
        node.start().await;
    }
    let bases: Vec<String> = apis.iter().map(Node::base).collect();
    let token = std::fs::read_to_string(apis[0].dir.path().join("admin.token")).unwrap();
    let token = token.trim().to_string();
    let admin = Client::new(&bases[0], &token);
    let (_, me) = admin.get("/v2/me").await;
    let room = me["room_id"].as_u64().unwrap();
    let (_, start) = admin.get("/v2/sync").await;
    let since = start["revision"].as_str().unwrap().to_string();

    let stop = Arc::new(AtomicBool::new(false));
    let reconnects = Arc::new(AtomicUsize::new(0));
    let followers: Vec<_> = (0..2)
        .map(|first| {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let mut order = bases.clone();
            order.rotate_left(first);
            let task = follow(
                order,
                token.clone(),
                since.clone(),
                seen.clone(),
                reconnects.clone(),
                stop.clone(),
            );
            (task, seen)
        })
        .collect();

    // The balancer: the nodes in rotation, taken in turn.
    let rotation = Arc::new(Mutex::new(vec![bases[0].clone(), bases[1].clone()]));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let writers: Vec<_> = (0..3)
        .map(|writer| {
            let (rotation, failures, acked) = (rotation.clone(), failures.clone(), acked.clone());
            let (token, stop) = (token.clone(), stop.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut i = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    let base = {
                        let rotation = rotation.lock().unwrap();
                        rotation[(writer + i) % rotation.len()].clone()
                    };
                    let body = format!("rolling {writer} {i}");
                    let answer = http
                        .post(format!("{base}/v2/rooms/{room}/messages"))
                        .header("X-ChatWorkToken", &token)
                        .form(&[("body", &body)])
                        .timeout(Duration::from_secs(15))
                        .send()
                        .await;
                    match answer {
                        Ok(response) if response.status() == StatusCode::OK => {
                            let json: Value = response.json().await.unwrap();
                            acked
                                .lock()
                                .unwrap()
                                .push(json["message_id"].as_str().unwrap().to_string());
                        }
                        Ok(response) => failures
                            .lock()
                            .unwrap()
                            .push(format!("{body} via {base}: {}", response.status())),
                        Err(error) => failures
                            .lock()
                            .unwrap()
                            .push(format!("{body} via {base}: {error}")),
                    }
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(1)).await;
    for (index, node) in apis.iter_mut().enumerate() {
        // Out of rotation; the balancer's change takes a moment to reach every
        // client (Kubernetes: the endpoint update, covered by the preStop sleep).
        rotation
            .lock()
            .unwrap()
            .retain(|base| *base != bases[index]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (clean, took) = node.terminate().await;
        assert!(
            clean,
            "{} did not stop cleanly in {took:?}:\n{}",
            node.name,
            tail(&node.log())
        );
        assert!(
            took < Duration::from_secs(10),
            "{} took {took:?} to stop",
            node.name
        );
        node.start().await;
        rotation.lock().unwrap().push(bases[index].clone());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 50, "only {} posts", acked.len());

    // Followers: every post, once, in log order, after at least one resumption each.
    let wanted: HashSet<String> = acked.iter().cloned().collect();
    for (task, seen) in followers {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got: HashSet<String> = seen
                .lock()
                .unwrap()
                .iter()
                .map(|(_, id)| id.clone())
                .collect();
            if wanted.is_subset(&got) || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        task.abort();
        let seen = seen.lock().unwrap().clone();
        let ids: Vec<&String> = seen.iter().map(|(_, id)| id).collect();
        let unique: HashSet<&String> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "a follower got a post twice");
        assert!(
            seen.windows(2).all(|pair| pair[0].0 <= pair[1].0),
            "a follower got posts out of log order"
        );
        let missing = wanted.iter().filter(|id| !unique.contains(id)).count();
        assert_eq!(missing, 0, "a follower missed {missing} posts");
    }
    assert!(
        reconnects.load(Ordering::SeqCst) >= 2,
        "the followers resumed when their node stopped"
    );
    database.drop().await;
}
