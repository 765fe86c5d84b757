//! Webhooks over HTTP, with a local receiver: the ChatWork body and signature of
//! each event type, the Standard Webhooks headers, room-scoped settings, members
//! only, ChatWork's five per account, the owner's own settings only, and retries
//! that keep the order and the `webhook-id`.

use crate::helpers::*;
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    query: String,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }
}

/// A receiver on 127.0.0.1 that records every request and fails the first
/// `failures` with 500.
struct Receiver {
    base: String,
    got: Arc<Mutex<Vec<Received>>>,
    /// While true, every request is answered 503 (and still recorded).
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl Receiver {
    async fn start(failures: usize) -> Receiver {
        Receiver::start_slow(failures, Duration::ZERO).await
    }

    /// A receiver that takes `delay` to answer each request.
    async fn start_slow(failures: usize, delay: Duration) -> Receiver {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let down: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let left = Arc::new(Mutex::new(failures));
        let recorded = got.clone();
        let is_down = down.clone();
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (recorded, left) = (recorded.clone(), left.clone());
                let down = is_down.load(std::sync::atomic::Ordering::SeqCst);
                async move {
                    tokio::time::sleep(delay).await;
                    recorded.lock().unwrap().push(Received {
                        path: uri.path().to_owned(),
                        query: uri.query().unwrap_or_default().to_owned(),
                        headers,
                        body: body.to_vec(),
                    });
                    if down {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    if uri.path().ends_with("/gone") {
                        return StatusCode::GONE;
                    }
                    let mut left = left.lock().unwrap();
                    if *left > 0 {
                        *left -= 1;
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    }
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { base, got, down }
    }

    /// Answers every request 503 (`true`) or as usual again (`false`).
    fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    /// What arrived at `path` once at least `count` requests did (within 20 s).
    async fn at(&self, path: &str, count: usize) -> Vec<Received> {
        self.at_within(path, count, Duration::from_secs(20)).await
    }

    /// What arrived at `path` once at least `count` requests did (within `wait`).
    async fn at_within(&self, path: &str, count: usize, wait: Duration) -> Vec<Received> {
        let deadline = Instant::now() + wait;
        loop {
            let got: Vec<Received> = self
                .got
                .lock()
                .unwrap()
                .iter()
                .filter(|r| r.path == path)
                .cloned()
                .collect();
            if got.len() >= count || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn app() -> TestApp {
    app_retrying(hayabusa_app::webhooks::RetrySchedule {
        first: Duration::from_millis(50),
        longest: Duration::from_millis(200),
        give_up_after: Duration::from_secs(60),
    })
    .await
}

async fn app_retrying(retries: hayabusa_app::webhooks::RetrySchedule) -> TestApp {
    spawn_app_configured(|config| hayabusa::Config {
        webhooks: hayabusa::WebhookSettings {
            policy: hayabusa_outbound::Policy {
                allow_private_networks: true,
                allow_http: true,
            },
            retries,
        },
        ..config
    })
    .await
}

/// Creates a forwarder to `url` of `event_types` (every type if empty) as the
/// administrator `admin`; returns the answer (its id and secret).
async fn forwarder(admin: &Client, url: &str, event_types: &str) -> Value {
    let mut form = vec![("url", url.to_owned())];
    if !event_types.is_empty() {
        form.push(("event_types", event_types.to_owned()));
    }
    let (status, created) = admin
        .send(Method::POST, "/v2/admin/forwarders", &form)
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    created
}

/// Creates a webhook; returns (id, token).
async fn webhook(user: &User, url: &str, types: &str, room: Option<u64>) -> (String, String) {
    let mut form = vec![("url", url.to_owned()), ("event_types", types.to_owned())];
    if let Some(room) = room {
        form.push(("room_id", room.to_string()));
    }
    let (status, body) = user.client.send(Method::POST, "/v2/webhooks", &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        body["webhook_setting_id"].as_str().unwrap().to_owned(),
        body["token"].as_str().unwrap().to_owned(),
    )
}

fn hmac(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks both signatures of `received` with the webhook's `token`.
fn assert_signed(received: &Received, token: &str) {
    let key = base64::engine::general_purpose::STANDARD
        .decode(token)
        .unwrap();
    let signature = hmac(&key, &received.body);
    assert_eq!(received.header("x-chatworkwebhooksignature"), signature);
    let query: Vec<(String, String)> = form_urlencoded::parse(received.query.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(
        query,
        vec![("chatwork_webhook_signature".to_owned(), signature)]
    );
    let id = received.header("webhook-id");
    let timestamp = received.header("webhook-timestamp");
    let mut message = format!("{id}.{timestamp}.").into_bytes();
    message.extend_from_slice(&received.body);
    assert_eq!(
        received.header("webhook-signature"),
        format!("v1,{}", hmac(&key, &message))
    );
    assert_eq!(received.header("content-type"), "application/json");
    assert!(
        received
            .header("user-agent")
            .starts_with("ChatWork-Webhook/")
    );
}

#[tokio::test]
async fn webhooks_deliver_chatworks_events_signed_to_members_only() {
    let app = app().await;
    let receiver = Receiver::start(0).await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let carol = app.account("Carol").await;
    let room = app.room(&bob, &[&alice], &[]).await;

    let all = "message_created,message_updated,mention_to_me";
    let (alice_id, alice_token) =
        webhook(&alice, &format!("{}/alice", receiver.base), all, None).await;
    let (_, room_token) = webhook(
        &alice,
        &format!("{}/alice-room", receiver.base),
        "message_created",
        Some(room),
    )
    .await;
    webhook(&carol, &format!("{}/carol", receiver.base), all, None).await;
    // Not a member of the room: no room-scoped webhook there.
    let (status, _) = carol
        .client
        .send(
            Method::POST,
            "/v2/webhooks",
            &[
                ("url", format!("{}/carol-room", receiver.base)),
                ("event_types", "message_created".into()),
                ("room_id", room.to_string()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Bob mentions Alice, then edits the message.
    let (status, posted) = bob
        .client
        .send(
            Method::POST,
            &format!("/v2/rooms/{room}/messages"),
            &[("body", format!("[To:{}] review please", alice.id))],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{posted}");
    let message_id = posted["message_id"].as_str().unwrap().to_owned();
    let (status, _) = bob
        .client
        .send(
            Method::PUT,
            &format!("/v2/rooms/{room}/messages/{message_id}"),
            &[(
                "body",
                "[To:{}] review it today".replace("{}", &alice.id.to_string()),
            )],
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let got = receiver.at("/alice", 3).await;
    let types: Vec<String> = got
        .iter()
        .map(|r| r.json()["webhook_event_type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        ["message_created", "mention_to_me", "message_updated"]
    );
    for received in &got {
        assert_signed(received, &alice_token);
        assert_eq!(received.json()["webhook_setting_id"], alice_id);
        assert!(received.json()["webhook_event_time"].as_i64().unwrap() > 1_600_000_000);
    }
    let created = &got[0].json()["webhook_event"];
    assert_eq!(created["message_id"], message_id);
    assert_eq!(created["room_id"], room);
    assert_eq!(created["account_id"], bob.id);
    assert_eq!(created["body"], format!("[To:{}] review please", alice.id));
    assert_eq!(created["update_time"], 0);
    let mention = &got[1].json()["webhook_event"];
    assert_eq!(mention["from_account_id"], bob.id);
    assert_eq!(mention["to_account_id"], alice.id);
    assert_eq!(mention["message_id"], message_id);
    assert_eq!(mention["body"], created["body"]);
    let updated = &got[2].json()["webhook_event"];
    assert_eq!(updated["account_id"], bob.id);
    assert_eq!(
        updated["body"],
        format!("[To:{}] review it today", alice.id)
    );
    assert!(updated["update_time"].as_i64().unwrap() > 0);
    let ids: std::collections::HashSet<String> =
        got.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids.len(), 3, "one webhook-id per delivery");

    let scoped = receiver.at("/alice-room", 1).await;
    assert_eq!(scoped.len(), 1);
    assert_signed(&scoped[0], &room_token);
    assert_eq!(scoped[0].json()["webhook_event_type"], "message_created");

    // Carol is in no room with them: nothing for her (her own room's post does arrive,
    // which also shows her webhook works).
    let (status, _) = carol
        .client
        .send(
            Method::POST,
            &format!("/v2/rooms/{}/messages", carol.my_room),
            &[("body", "note to self".to_string())],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let carols = receiver.at("/carol", 1).await;
    assert_eq!(carols.len(), 1);
    assert_eq!(carols[0].json()["webhook_event"]["body"], "note to self");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.at("/carol", 0).await.len(),
        1,
        "no room events of others"
    );
}

#[tokio::test]
async fn five_webhooks_per_account_listed_without_tokens_and_deleted_by_their_owner() {
    let app = app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let (id, _) = webhook(
            &alice,
            &format!("https://93.184.216.34/{i}"),
            "mention_to_me",
            None,
        )
        .await;
        ids.push(id);
    }
    let (status, body) = alice
        .client
        .send(
            Method::POST,
            "/v2/webhooks",
            &[
                ("url", "https://93.184.216.34/6".to_owned()),
                ("event_types", "mention_to_me".into()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, listed) = alice.client.get("/v2/webhooks").await;
    assert_eq!(status, StatusCode::OK);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 5);
    assert!(
        listed
            .iter()
            .all(|w| w.get("token").is_none() && w["status"] == "active")
    );
    assert_eq!(
        listed[0]["event_types"],
        serde_json::json!(["mention_to_me"])
    );
    let (_, bobs) = bob.client.get("/v2/webhooks").await;
    assert_eq!(bobs, serde_json::json!([]));
    // Bob cannot delete Alice's; Alice can.
    let path = format!("/v2/webhooks/{}", ids[0]);
    let (status, _) = bob.client.send(Method::DELETE, &path, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = alice.client.send(Method::DELETE, &path, &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, listed) = alice.client.get("/v2/webhooks").await;
    assert_eq!(listed.as_array().unwrap().len(), 4);
    // Bad input: 400, nothing created.
    for form in [
        vec![
            ("url", "https://93.184.216.34/x"),
            ("event_types", "everything"),
        ],
        vec![("url", "not a url"), ("event_types", "mention_to_me")],
        vec![("event_types", "mention_to_me")],
        vec![("url", "https://93.184.216.34/x")],
    ] {
        let form: Vec<(&str, String)> = form.into_iter().map(|(k, v)| (k, v.to_owned())).collect();
        let (status, body) = alice.client.send(Method::POST, "/v2/webhooks", &form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{form:?}: {body}");
    }
    let (_, listed) = alice.client.get("/v2/webhooks").await;
    assert_eq!(listed.as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn private_addresses_are_refused_without_the_flag() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    for url in [
        "https://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest",
        "https://localhost/hook",
        "http://93.184.216.34/plain-http",
    ] {
        let (status, body) = alice
            .client
            .send(
                Method::POST,
                "/v2/webhooks",
                &[
                    ("url", url.to_owned()),
                    ("event_types", "mention_to_me".into()),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
    }
}

#[tokio::test]
async fn a_failing_receiver_gets_every_event_in_order_with_the_same_ids_on_retries() {
    let app = app().await;
    let receiver = Receiver::start(3).await;
    let alice = app.account("Alice").await;
    let (_, token) = webhook(
        &alice,
        &format!("{}/hook", receiver.base),
        "message_created",
        None,
    )
    .await;
    for i in 0..5 {
        let (status, _) = alice
            .client
            .send(
                Method::POST,
                &format!("/v2/rooms/{}/messages", alice.my_room),
                &[("body", format!("message {i}"))],
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let got = receiver.at("/hook", 8).await;
    assert_eq!(got.len(), 8, "3 failed attempts, then 5 deliveries");
    // The first event was tried four times, with one webhook-id.
    let first_id = got[0].header("webhook-id");
    assert!(got[..4].iter().all(|r| r.header("webhook-id") == first_id));
    let bodies: Vec<String> = got[3..]
        .iter()
        .map(|r| {
            r.json()["webhook_event"]["body"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        bodies,
        (0..5).map(|i| format!("message {i}")).collect::<Vec<_>>()
    );
    for received in &got {
        assert_signed(received, &token);
    }
}

/// The real binary on a data directory, killable with SIGKILL.
struct Binary {
    child: std::process::Child,
    base: String,
}

impl Binary {
    async fn launch(dir: &std::path::Path) -> Binary {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = std::process::Command::new(env!("CARGO_BIN_EXE_hayabusa"))
                .args(["serve", "--data-dir"])
                .arg(dir)
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args([
                    "--no-rate-limits",
                    "--webhook-allow-private-networks",
                    "--webhook-allow-http",
                ])
                .env("RUST_LOG", "warn")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("the binary starts");
            let mut binary = Binary {
                child,
                base: format!("http://127.0.0.1:{port}"),
            };
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = binary.child.try_wait() {
                    break;
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

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        self.kill();
    }
}

/// kill -9 of the server while it delivers 5,000 events: after a restart every post
/// acknowledged before the kill reaches the receiver (a redelivery carries the same
/// `webhook-id` as the first attempt), in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_delivers_every_acknowledged_event_after_its_restart() {
    const POSTS: usize = 5_000;
    // Slower than the posts come, so that the kill finds deliveries to do.
    let receiver = Receiver::start_slow(0, Duration::from_millis(3)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = Binary::launch(dir.path()).await;
    let token = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    let admin = Client::new(&server.base, token.trim());
    let (status, me) = admin.get("/v2/me").await;
    assert_eq!(status, StatusCode::OK);
    let room = me["room_id"].as_u64().unwrap();
    let (status, created) = admin
        .send(
            Method::POST,
            "/v2/webhooks",
            &[
                ("url", format!("{}/hook", receiver.base)),
                ("event_types", "message_created".into()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    forwarder(&admin, &format!("{}/fwd", receiver.base), "message_posted").await;

    // Posts in order (one writer), acknowledged before the kill.
    let mut acknowledged = Vec::new();
    for i in 0..POSTS {
        let body = format!("event {i}");
        let (status, _) = admin
            .send(
                Method::POST,
                &format!("/v2/rooms/{room}/messages"),
                &[("body", body.clone())],
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        acknowledged.push(body);
    }
    // Kill it mid-delivery.
    let before = receiver.at("/hook", 0).await.len();
    assert!(
        before < POSTS,
        "the kill comes before every event is delivered"
    );
    server.kill();
    let delivered_before_kill = receiver.got.lock().unwrap().len();
    let restarted = Binary::launch(dir.path()).await;

    let deadline = Instant::now() + Duration::from_secs(120);
    let delivered = async |path: &str, body_of: fn(&Value) -> &Value| loop {
        let got = receiver.at(path, 0).await;
        let mut bodies: Vec<String> = Vec::new();
        let mut ids: std::collections::HashMap<String, String> = Default::default();
        for received in &got {
            let body = body_of(&received.json()).as_str().unwrap().to_owned();
            let id = received.header("webhook-id");
            let first = ids.entry(body.clone()).or_insert_with(|| id.clone());
            assert_eq!(*first, id, "a redelivery of {body} has another webhook-id");
            if bodies.last() != Some(&body) && !bodies.contains(&body) {
                bodies.push(body);
            }
        }
        if bodies.len() >= POSTS || Instant::now() > deadline {
            break (bodies, ids);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (bodies, ids) = delivered("/hook", |v| &v["webhook_event"]["body"]).await;
    assert_eq!(bodies, acknowledged, "every acknowledged event, in order");
    assert_eq!(ids.len(), POSTS);
    let (bodies, ids) = delivered("/fwd", |v| &v["payload"]["body"]).await;
    assert_eq!(bodies, acknowledged, "the forwarder: every event, in order");
    assert_eq!(ids.len(), POSTS);
    let total = receiver.got.lock().unwrap().len();
    eprintln!(
        "webhook and forwarder kill test: {before} delivered when the kill came \
         ({delivered_before_kill} requests), {total} requests in all ({} redelivered)",
        total - 2 * POSTS
    );
    drop(restarted);
}

/// A receiver that takes 5 s per request does not delay another webhook's.
#[tokio::test]
async fn a_slow_receiver_does_not_delay_a_fast_one() {
    let app = app().await;
    let slow = Receiver::start_slow(0, Duration::from_secs(5)).await;
    let fast = Receiver::start(0).await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let room = app.room(&alice, &[&bob], &[]).await;
    webhook(
        &alice,
        &format!("{}/slow", slow.base),
        "message_created",
        None,
    )
    .await;
    webhook(
        &bob,
        &format!("{}/fast", fast.base),
        "message_created",
        None,
    )
    .await;
    let posted = Instant::now();
    for i in 0..3 {
        let (status, _) = alice
            .client
            .send(
                Method::POST,
                &format!("/v2/rooms/{room}/messages"),
                &[("body", format!("post {i}"))],
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(fast.at("/fast", 3).await.len(), 3);
    assert!(
        posted.elapsed() < Duration::from_secs(4),
        "the fast receiver got everything in {:?}, while the slow one takes 5 s per event",
        posted.elapsed()
    );
}

/// A receiver answering 410 Gone disables its webhook: it is listed as disabled
/// and gets nothing more.
#[tokio::test]
async fn a_gone_receiver_disables_its_webhook() {
    let app = app().await;
    let receiver = Receiver::start(0).await;
    let alice = app.account("Alice").await;
    webhook(
        &alice,
        &format!("{}/gone", receiver.base),
        "message_created",
        None,
    )
    .await;
    let post = async |body: &str| {
        let (status, _) = alice
            .client
            .send(
                Method::POST,
                &format!("/v2/rooms/{}/messages", alice.my_room),
                &[("body", body.to_owned())],
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    };
    post("first").await;
    assert_eq!(receiver.at("/gone", 1).await.len(), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, listed) = alice.client.get("/v2/webhooks").await;
        if listed[0]["status"] == "disabled" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still listed as {}",
            listed[0]["status"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    post("second").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.at("/gone", 0).await.len(),
        1,
        "nothing after the 410"
    );
}

/// A member removed from a room: its webhooks get the room's events up to the
/// removal and nothing after.
#[tokio::test]
async fn a_removed_members_webhooks_stop_at_the_removal() {
    let app = app().await;
    let receiver = Receiver::start(0).await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let room = app.room(&bob, &[&alice], &[]).await;
    webhook(
        &alice,
        &format!("{}/alice", receiver.base),
        "message_created",
        None,
    )
    .await;
    let post = async |body: &str| {
        let (status, _) = bob
            .client
            .send(
                Method::POST,
                &format!("/v2/rooms/{room}/messages"),
                &[("body", body.to_owned())],
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    };
    post("while a member").await;
    let (status, body) = bob
        .client
        .send(
            Method::PUT,
            &format!("/v2/rooms/{room}/members"),
            &[("members_admin_ids", bob.id.to_string())],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    post("after the removal").await;
    // Bob's own room post reaches nobody else either: a marker that deliveries went on.
    let got = receiver.at("/alice", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_later = receiver.at("/alice", 0).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got_later.len(), 1, "nothing after the removal");
    assert_eq!(got[0].json()["webhook_event"]["body"], "while a member");
}

/// A forwarder gets every domain event after its creation, in log order, in the
/// versioned envelope, signed with its secret; a filtered one only what it asked for.
#[tokio::test]
async fn forwarders_get_every_domain_event_in_log_order() {
    let app = app().await;
    let receiver = Receiver::start(0).await;
    let everything = forwarder(&app.admin, &format!("{}/all", receiver.base), "").await;
    let secret = everything["secret"].as_str().unwrap().to_owned();
    forwarder(
        &app.admin,
        &format!("{}/posts", receiver.base),
        "message_posted",
    )
    .await;
    let (_, listed) = app.admin.get("/v2/admin/forwarders").await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(listed[0].get("secret").is_none());

    let alice = app.account("Alice").await; // account_created (+ its room)
    let room = app.room(&alice, &[], &[]).await; // room_created
    for body in ["one", "two"] {
        let (status, _) = alice
            .client
            .send(
                Method::POST,
                &format!("/v2/rooms/{room}/messages"),
                &[("body", body.to_owned())],
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let posts = receiver.at("/posts", 2).await;
    let bodies: Vec<Value> = posts
        .iter()
        .map(|r| r.json()["payload"]["body"].clone())
        .collect();
    assert_eq!(bodies, [Value::from("one"), Value::from("two")]);
    assert!(posts.iter().all(|r| r.json()["type"] == "message_posted"));

    let all = receiver.at("/all", 4).await;
    let types: Vec<String> = all
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert!(types.contains(&"account_created".to_owned()), "{types:?}");
    assert!(types.contains(&"room_created".to_owned()), "{types:?}");
    assert_eq!(types.iter().filter(|t| *t == "message_posted").count(), 2);
    assert!(
        !types.iter().any(|t| t.starts_with("forwarder_")),
        "{types:?}"
    );
    let positions: Vec<u64> = all
        .iter()
        .map(|r| r.json()["position"].as_u64().unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|p| p[0] < p[1]),
        "log order: {positions:?}"
    );
    let key = base64::engine::general_purpose::STANDARD
        .decode(&secret)
        .unwrap();
    for received in &all {
        let envelope = received.json();
        assert_eq!(envelope["version"], 1);
        assert_eq!(
            envelope["id"],
            envelope["position"].as_u64().unwrap().to_string()
        );
        let id = received.header("webhook-id");
        let timestamp = received.header("webhook-timestamp");
        let mut message = format!("{id}.{timestamp}.").into_bytes();
        message.extend_from_slice(&received.body);
        assert_eq!(
            received.header("webhook-signature"),
            format!("v1,{}", hmac(&key, &message))
        );
    }
    // A non-administrator manages none.
    let (status, _) = alice.client.get("/v2/admin/forwarders").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// A forwarder to a NATS JetStream subject: each event acknowledged by JetStream, in
/// log order, with `Nats-Msg-Id` set to the delivery's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarder_publishes_to_a_jetstream_subject() {
    let nats = hayabusa_nats::testkit::NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let stream = jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: "FORWARDED".into(),
            subjects: vec!["forward.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let app = app().await;
    forwarder(
        &app.admin,
        &format!("{}/forward.events", nats.url()),
        "message_posted",
    )
    .await;
    let alice = app.account("Alice").await;
    for i in 0..3 {
        let (status, _) = alice
            .client
            .send(
                Method::POST,
                &format!("/v2/rooms/{}/messages", alice.my_room),
                &[("body", format!("to nats {i}"))],
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stream = stream;
    while stream.info().await.unwrap().state.messages < 3 {
        assert!(Instant::now() < deadline, "the events reach the stream");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut bodies = Vec::new();
    for sequence in 1..=3 {
        let message = stream.get_raw_message(sequence).await.unwrap();
        let envelope: Value = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(envelope["type"], "message_posted");
        let id = message
            .headers
            .get("Nats-Msg-Id")
            .map(|value| value.as_str().to_owned())
            .unwrap();
        assert!(id.ends_with(&format!("-{}", envelope["position"])), "{id}");
        bodies.push(envelope["payload"]["body"].as_str().unwrap().to_owned());
    }
    assert_eq!(bodies, ["to nats 0", "to nats 1", "to nats 2"]);
    // Webhooks are http(s) only.
    let (status, _) = alice
        .client
        .send(
            Method::POST,
            "/v2/webhooks",
            &[
                ("url", format!("{}/forward.x", nats.url())),
                ("event_types", "message_created".into()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// A Tansu broker (Kafka protocol, memory only) from `.tools/venv/bin/tansu`
/// (`scripts/setup-tools`) or `$HAYABUSA_TANSU`, on a free port; killed when dropped.
struct Tansu {
    child: std::process::Child,
    port: u16,
}

impl Tansu {
    fn start() -> Tansu {
        let binary = std::env::var_os("HAYABUSA_TANSU")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/tansu")
            });
        assert!(
            binary.exists(),
            "no Kafka broker at {}: run scripts/setup-tools (or set HAYABUSA_TANSU)",
            binary.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listener = format!("tcp://127.0.0.1:{port}");
        let child = std::process::Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &listener,
                "--advertised-listener-url",
                &listener,
            ])
            .args(["--storage-engine", "memory://tansu/", "--silent"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("tansu starts");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "tansu did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Tansu { child, port }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A forwarder to a Kafka topic (Tansu): every event produced, keyed by its stream,
/// so each room's events are in one partition, in log order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarder_produces_to_a_kafka_topic_keyed_by_room() {
    use rskafka::client::partition::UnknownTopicHandling;
    let tansu = Tansu::start();
    let broker = format!("127.0.0.1:{}", tansu.port);
    let client = rskafka::client::ClientBuilder::new(vec![broker.clone()])
        .build()
        .await
        .unwrap();
    client
        .controller_client()
        .unwrap()
        .create_topic("hayabusa-events", 2, 1, 5_000)
        .await
        .unwrap();
    let app = app().await;
    forwarder(
        &app.admin,
        &format!("kafka://{broker}/hayabusa-events"),
        "message_posted",
    )
    .await;
    let alice = app.account("Alice").await;
    let rooms = [
        app.room(&alice, &[], &[]).await,
        app.room(&alice, &[], &[]).await,
    ];
    for i in 0..3 {
        for room in rooms {
            let (status, _) = alice
                .client
                .send(
                    Method::POST,
                    &format!("/v2/rooms/{room}/messages"),
                    &[("body", format!("{room} {i}"))],
                )
                .await;
            assert_eq!(status, StatusCode::OK);
        }
    }
    // Read both partitions until all six are in.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut by_partition: Vec<Vec<Value>> = vec![Vec::new(), Vec::new()];
    loop {
        for (partition, records) in by_partition.iter_mut().enumerate() {
            let partition_client = client
                .partition_client(
                    "hayabusa-events",
                    partition as i32,
                    UnknownTopicHandling::Error,
                )
                .await
                .unwrap();
            let (fetched, _) = partition_client
                .fetch_records(0, 1..10_000_000, 1_000)
                .await
                .unwrap();
            *records = fetched
                .iter()
                .map(|r| serde_json::from_slice(r.record.value.as_deref().unwrap()).unwrap())
                .collect();
        }
        if by_partition.iter().map(Vec::len).sum::<usize>() >= 6 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(by_partition.iter().map(Vec::len).sum::<usize>(), 6);
    for room in rooms {
        let holding: Vec<usize> = (0..2)
            .filter(|p| {
                by_partition[*p]
                    .iter()
                    .any(|e| e["payload"]["room_id"] == room)
            })
            .collect();
        assert_eq!(holding.len(), 1, "room {room}'s events share one partition");
        let bodies: Vec<String> = by_partition[holding[0]]
            .iter()
            .filter(|e| e["payload"]["room_id"] == room)
            .map(|e| e["payload"]["body"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            bodies,
            (0..3).map(|i| format!("{room} {i}")).collect::<Vec<_>>()
        );
    }
}

/// The events a forwarder gives up after its retry schedule become dead letters,
/// listed for administrators; a replay sends them again with their first
/// `webhook-id` and takes the delivered ones off the list; the metrics count it all
/// per forwarder.
#[tokio::test]
async fn given_up_events_become_dead_letters_that_an_administrator_replays() {
    let app = app_retrying(hayabusa_app::webhooks::RetrySchedule {
        first: Duration::from_millis(20),
        longest: Duration::from_millis(50),
        give_up_after: Duration::from_millis(300),
    })
    .await;
    let receiver = Receiver::start(0).await;
    let created = forwarder(
        &app.admin,
        &format!("{}/fwd", receiver.base),
        "message_posted",
    )
    .await;
    let id = created["forwarder_id"].as_str().unwrap().to_owned();
    let alice = app.account("Alice").await;
    let post = async |body: &str| {
        let (status, _) = alice
            .client
            .send(
                Method::POST,
                &format!("/v2/rooms/{}/messages", alice.my_room),
                &[("body", body.to_owned())],
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    };
    let dead_letters = async || {
        let (status, body) = app
            .admin
            .get(&format!("/v2/admin/forwarders/{id}/dead_letters"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body.as_array().unwrap().clone()
    };
    let wait_for_dead_letters = async |count: usize| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let letters = dead_letters().await;
            if letters.len() == count || Instant::now() > deadline {
                return letters;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };

    receiver.set_down(true);
    for body in ["lost 1", "lost 2", "lost 3"] {
        post(body).await;
    }
    let letters = wait_for_dead_letters(3).await;
    assert_eq!(letters.len(), 3, "{letters:?}");
    for letter in &letters {
        assert_eq!(letter["event_type"], "message_posted");
        assert_eq!(letter["stream"], format!("room-{}", alice.my_room));
        assert!(letter["failures"].as_u64().unwrap() >= 2, "{letter}");
        assert!(
            letter["reason"].as_str().unwrap().contains("503"),
            "{letter}"
        );
        assert_eq!(letter["replay_requested"], false);
    }
    let positions: Vec<u64> = letters
        .iter()
        .map(|l| l["position"].as_u64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|p| p[0] < p[1]), "{positions:?}");
    let (_, paged) = app
        .admin
        .get(&format!(
            "/v2/admin/forwarders/{id}/dead_letters?after={}",
            positions[0]
        ))
        .await;
    assert_eq!(paged.as_array().unwrap().len(), 2);

    // The receiver is back: new events flow, the dead letters wait for a replay.
    receiver.set_down(false);
    post("after the outage").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while receiver
        .got
        .lock()
        .unwrap()
        .last()
        .is_none_or(|last| last.json()["payload"]["body"] != "after the outage")
    {
        assert!(Instant::now() < deadline, "the new event is delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let attempts_before_replay = receiver.got.lock().unwrap().len();
    assert_eq!(dead_letters().await.len(), 3);

    // Replay one.
    let (status, replay) = app
        .admin
        .send(
            Method::POST,
            &format!("/v2/admin/forwarders/{id}/replay"),
            &[("positions", positions[1].to_string())],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{replay}");
    assert_eq!(
        replay["replay_positions"],
        serde_json::json!([positions[1]])
    );
    let letters = wait_for_dead_letters(2).await;
    let left: Vec<u64> = letters
        .iter()
        .map(|l| l["position"].as_u64().unwrap())
        .collect();
    assert_eq!(left, vec![positions[0], positions[2]]);
    let got = receiver.at("/fwd", attempts_before_replay + 1).await;
    let replayed = &got[attempts_before_replay];
    assert_eq!(replayed.json()["payload"]["body"], "lost 2");
    assert_eq!(
        replayed.header("webhook-id"),
        format!("{id}-{}", positions[1])
    );
    let first_attempt = got
        .iter()
        .find(|r| r.json()["position"] == positions[1])
        .unwrap();
    assert_eq!(
        first_attempt.header("webhook-id"),
        replayed.header("webhook-id"),
        "a replay keeps the delivery's id"
    );

    // Unknown positions are refused and change nothing; then replay every one.
    let (status, body) = app
        .admin
        .send(
            Method::POST,
            &format!("/v2/admin/forwarders/{id}/replay"),
            &[("positions", format!("{},{}", positions[0], positions[1]))],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["errors"].is_array());
    let (status, body) = app
        .admin
        .send(
            Method::POST,
            &format!("/v2/admin/forwarders/{id}/replay"),
            &[("positions", "x".to_owned())],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, replay) = app
        .admin
        .send(
            Method::POST,
            &format!("/v2/admin/forwarders/{id}/replay"),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{replay}");
    assert_eq!(
        replay["replay_positions"],
        serde_json::json!([positions[0], positions[2]])
    );
    assert!(wait_for_dead_letters(0).await.is_empty());
    let got = receiver.at("/fwd", attempts_before_replay + 3).await;
    let mut replayed: Vec<String> = got[attempts_before_replay + 1..]
        .iter()
        .map(|r| r.json()["payload"]["body"].as_str().unwrap().to_owned())
        .collect();
    replayed.sort();
    assert_eq!(replayed, ["lost 1", "lost 3"]);

    // The metrics, per forwarder.
    let metrics = reqwest::get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> f64 {
        let prefix = format!("{name}{{destination=\"{id}\"}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("{prefix} in {metrics}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("hayabusa_forwarder_given_up_total"), 3.0);
    assert_eq!(value("hayabusa_forwarder_deliveries_total"), 4.0);
    assert!(value("hayabusa_forwarder_failures_total") >= 6.0);
    assert!(value("hayabusa_forwarder_retries_total") >= 3.0);
    assert!(value("hayabusa_forwarder_lag_seconds") >= 0.0);
    assert!(value("hayabusa_forwarder_lag_events") >= 0.0);
}

/// A receiver that is down for a minute, while events keep coming, catches up once it
/// is back: a webhook and a forwarder get every event, in order, the retried ones
/// with the `webhook-id` of their first attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_minute_catches_up() {
    let app = app_retrying(hayabusa_app::webhooks::RetrySchedule {
        first: Duration::from_secs(1),
        longest: Duration::from_secs(8),
        give_up_after: Duration::from_secs(3_600),
    })
    .await;
    let receiver = Receiver::start(0).await;
    let alice = app.account("Alice").await;
    webhook(
        &alice,
        &format!("{}/hook", receiver.base),
        "message_created",
        None,
    )
    .await;
    forwarder(
        &app.admin,
        &format!("{}/fwd", receiver.base),
        "message_posted",
    )
    .await;
    receiver.set_down(true);
    let outage = Instant::now();
    let mut sent = Vec::new();
    while outage.elapsed() < Duration::from_secs(60) {
        let body = format!("during the outage {}", sent.len());
        let (status, _) = alice
            .client
            .send(
                Method::POST,
                &format!("/v2/rooms/{}/messages", alice.my_room),
                &[("body", body.clone())],
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        sent.push(body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let failed_attempts = receiver.got.lock().unwrap().len();
    assert!(failed_attempts >= 10, "retried during the outage");
    receiver.set_down(false);
    let back = Instant::now();
    // Every event, in order, once the receiver answers again.
    let in_order = |path: &str, body_of: fn(&Value) -> Option<String>| {
        let got: Vec<Received> = receiver
            .got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect();
        let mut ids: std::collections::HashMap<String, String> = Default::default();
        let mut bodies: Vec<String> = Vec::new();
        for received in &got {
            let body = body_of(&received.json()).unwrap();
            let id = received.header("webhook-id");
            let first = ids.entry(body.clone()).or_insert_with(|| id.clone());
            assert_eq!(
                *first, id,
                "{path}: a retry of {body} has another webhook-id"
            );
            if !bodies.contains(&body) {
                bodies.push(body);
            }
        }
        bodies
    };
    let hook_body = |v: &Value| v["webhook_event"]["body"].as_str().map(str::to_owned);
    let fwd_body = |v: &Value| v["payload"]["body"].as_str().map(str::to_owned);
    loop {
        let (hooks, forwarded) = (in_order("/hook", hook_body), in_order("/fwd", fwd_body));
        if hooks.len() == sent.len() && forwarded.len() == sent.len() {
            assert_eq!(hooks, sent, "the webhook got every event in order");
            assert_eq!(forwarded, sent, "the forwarder got every event in order");
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(60),
            "caught up: {} and {} of {}",
            hooks.len(),
            forwarded.len(),
            sent.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "receiver outage: {} events during 60 s, {failed_attempts} failed attempts, \
         caught up {:.1} s after the receiver came back",
        sent.len(),
        back.elapsed().as_secs_f64()
    );
}

/// `hayabusa forwarder …` manages forwarders and their dead letters through a
/// running server's API.
#[tokio::test]
async fn the_forwarder_cli_manages_forwarders_through_the_api() {
    let app = app().await;
    let receiver = Receiver::start(0).await;
    // Run beside the server (on this test's runtime), not blocking it.
    let cli = async |args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hayabusa"));
        command.arg("forwarder").args(args).args([
            "--server",
            &app.base,
            "--token",
            &app.admin.token,
        ]);
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .unwrap()
            .expect("the binary runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let url = format!("{}/cli", receiver.base);
    let (ok, out, err) = cli(&["create", "--url", &url, "--event-types", "room_created"]).await;
    assert!(ok, "{out} {err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let id = created["forwarder_id"].as_str().unwrap().to_owned();
    assert!(created["secret"].is_string());
    let (ok, out, _) = cli(&["list"]).await;
    assert!(ok);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["forwarder_id"], id.as_str());
    assert_eq!(listed[0]["url"], url.as_str());
    assert_eq!(
        listed[0]["event_types"],
        serde_json::json!(["room_created"])
    );
    let (ok, out, _) = cli(&["dead-letters", &id]).await;
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        serde_json::json!([])
    );
    let (ok, out, _) = cli(&["replay", &id]).await;
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["replay_positions"],
        serde_json::json!([])
    );
    // An error is the server's answer and a failure.
    let (ok, out, err) = cli(&["replay", &id, "--positions", "12345"]).await;
    assert!(!ok);
    assert!(out.contains("errors"), "{out}");
    assert!(err.contains("404"), "{err}");
    let (ok, _, err) = cli(&["delete", &id]).await;
    assert!(ok, "{err}");
    let (ok, out, _) = cli(&["list"]).await;
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        serde_json::json!([])
    );
}
