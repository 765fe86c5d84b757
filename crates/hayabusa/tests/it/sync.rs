//! Realtime sync: long-poll and WebSocket, gap-free across reconnects.

use crate::helpers::*;
use futures::StreamExt;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn poll(client: &Client, since: Option<&str>, timeout: u64, limit: usize) -> Value {
    let mut form = vec![
        ("timeout", timeout.to_string()),
        ("limit", limit.to_string()),
    ];
    if let Some(since) = since {
        form.push(("since", since.to_string()));
    }
    let (status, body) = client.send(Method::GET, "/v2/sync", &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn revision(value: &Value) -> String {
    value["revision"]
        .as_str()
        .expect("revision is a string")
        .to_string()
}

/// Every op the account has, from the beginning, by paging the long-poll.
async fn truth(client: &Client) -> Vec<Value> {
    let mut ops = vec![];
    let mut since = "0".to_string();
    loop {
        let batch = poll(client, Some(&since), 0, 1000).await;
        let page = batch["ops"].as_array().unwrap().clone();
        since = revision(&batch);
        if page.is_empty() {
            return ops;
        }
        ops.extend(page);
    }
}

async fn connect(
    base: &str,
    token: &str,
    since: &str,
    origin: Option<&str>,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let url = format!(
        "{}/v2/sync/ws?since={since}&token={token}",
        base.replace("http://", "ws://")
    );
    let mut request = url.into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", origin.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

async fn next_op(socket: &mut Socket, wait: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(wait, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return Some(serde_json::from_str(&text).unwrap()),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            _ => return None,
        }
    }
}

async fn settle(app: &TestApp) {
    let state = app.server.as_ref().unwrap().state.clone();
    let head = state.app.log.head();
    assert!(
        state
            .app
            .writes
            .projection()
            .wait_for(head, Duration::from_secs(5))
            .await
    );
}

#[tokio::test]
async fn long_poll_returns_ops_in_order_and_resumes_from_any_op() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let room = app.room(&alice, &[&bob], &[]).await;
    settle(&app).await;
    let start = poll(&bob.client, None, 0, 100).await;
    assert_eq!(start["ops"], serde_json::json!([]));
    let since = revision(&start);

    let m1 = alice.post(room, "one").await;
    alice.post(room, &format!("[To:{}] two", bob.id)).await;
    alice
        .client
        .send(
            Method::PUT,
            &format!("/v2/rooms/{room}/messages/{m1}"),
            &[("body", "one!".into())],
        )
        .await;
    alice
        .client
        .send(
            Method::DELETE,
            &format!("/v2/rooms/{room}/messages/{m1}"),
            &[],
        )
        .await;
    settle(&app).await;

    let batch = poll(&bob.client, Some(&since), 5, 100).await;
    let ops = batch["ops"].as_array().unwrap();
    let types: Vec<&str> = ops.iter().map(|o| o["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        vec![
            "message_created",
            "message_created",
            "mention",
            "message_updated",
            "message_deleted"
        ]
    );
    assert_eq!(ops[0]["body"], "one");
    assert_eq!(ops[0]["room_id"], room);
    assert_eq!(ops[0]["message_id"], m1.as_str());
    assert_eq!(ops[2]["account_id"], alice.id);
    assert_eq!(ops[3]["body"], "one!");
    // The post with a mention makes two ops at one position: the first carries an
    // inner revision so that resuming from it yields exactly the rest.
    assert!(ops[1]["revision"].as_str().unwrap().contains(':'));
    let rest = poll(
        &bob.client,
        Some(ops[1]["revision"].as_str().unwrap()),
        0,
        100,
    )
    .await;
    assert_eq!(rest["ops"].as_array().unwrap().as_slice(), &ops[2..]);
    // Small limits page through without gaps.
    let mut paged = vec![];
    let mut cursor = since.clone();
    loop {
        let page = poll(&bob.client, Some(&cursor), 0, 1).await;
        cursor = revision(&page);
        let page_ops = page["ops"].as_array().unwrap();
        if page_ops.is_empty() {
            break;
        }
        paged.extend(page_ops.iter().cloned());
    }
    assert_eq!(&paged, ops);
    // Alice gets no mention op for Bob, and her own posts as message_created.
    let alice_ops = poll(&alice.client, Some(&since), 0, 100).await;
    assert!(
        alice_ops["ops"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["type"] != "mention")
    );
}

#[tokio::test]
async fn a_long_poll_waits_for_the_next_op_and_times_out_empty() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let room = app.room(&alice, &[], &[]).await;
    let since = revision(&poll(&alice.client, None, 0, 10).await);
    let waiting = {
        let client = alice.client.clone();
        let since = since.clone();
        tokio::spawn(async move { poll(&client, Some(&since), 20, 10).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    alice.post(room, "wake up").await;
    let batch = waiting.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(batch["ops"][0]["body"], "wake up");
    let empty = poll(&alice.client, Some(&revision(&batch)), 1, 10).await;
    assert_eq!(empty["ops"], serde_json::json!([]));
    assert_eq!(revision(&empty), revision(&batch));
}

#[tokio::test]
async fn bad_revisions_and_parameters_are_refused_with_400() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    for (form, needle) in [
        (vec![("since", "abc")], "since must be a revision"),
        (vec![("since", "-1")], "since must be a revision"),
        (vec![("since", "1:2:3")], "since must be a revision"),
        (vec![("since", "999999999")], "ahead of the server"),
        (vec![("timeout", "61")], "timeout must be 0 to 60"),
        (vec![("timeout", "x")], "timeout"),
        (vec![("limit", "0")], "limit must be 1 to 1000"),
        (vec![("limit", "1001")], "limit"),
    ] {
        let form: Vec<(&str, String)> = form.into_iter().map(|(k, v)| (k, v.to_string())).collect();
        let answer = alice.client.send(Method::GET, "/v2/sync", &form).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, needle);
    }
    let ws = connect(&app.base, &alice.client.token, "abc", None).await;
    assert!(ws.is_err(), "a malformed revision refuses the WebSocket");
    let anonymous = reqwest::get(format!("{}/v2/sync", app.base)).await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_account_sees_a_room_only_while_it_is_a_member() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let carol = app.account("Carol").await;
    let room = app.room(&alice, &[], &[]).await;
    let since = revision(&poll(&carol.client, None, 0, 10).await);
    alice.post(room, "before carol").await;
    let members = format!("/v2/rooms/{room}/members");
    alice
        .client
        .send(
            Method::PUT,
            &members,
            &[
                ("members_admin_ids", alice.id.to_string()),
                ("members_member_ids", carol.id.to_string()),
            ],
        )
        .await;
    alice.post(room, "with carol").await;
    alice
        .client
        .send(
            Method::PUT,
            &members,
            &[("members_admin_ids", alice.id.to_string())],
        )
        .await;
    alice.post(room, "after carol").await;
    settle(&app).await;
    let ops = truth(&carol.client).await;
    let seen: Vec<(String, String)> = ops
        .iter()
        .filter(|o| o["room_id"] == room)
        .map(|o| {
            (
                o["type"].as_str().unwrap().to_string(),
                o["body"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("member_added".to_string(), String::new()),
            ("message_created".to_string(), "with carol".to_string()),
            ("member_removed".to_string(), String::new()),
        ]
    );
    let after_since = poll(&carol.client, Some(&since), 0, 100).await;
    assert_eq!(after_since["ops"].as_array().unwrap().len(), 3);
    // A stranger never sees anything of the room.
    let mallory = app.account("Mallory").await;
    assert!(
        truth(&mallory.client)
            .await
            .iter()
            .all(|o| o["room_id"] != room)
    );
}

#[tokio::test]
async fn a_websocket_sends_the_backlog_then_live_ops_and_checks_the_origin() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let room = app.room(&alice, &[], &[]).await;
    let since = revision(&poll(&alice.client, None, 0, 10).await);
    alice.post(room, "backlog").await;
    settle(&app).await;

    let foreign = connect(
        &app.base,
        &alice.client.token,
        &since,
        Some("https://evil.example"),
    )
    .await;
    match foreign {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!(
            "a foreign origin must be refused, got {:?}",
            other.map(|_| ())
        ),
    }
    let wrong_token = connect(&app.base, "nope", &since, None).await;
    assert!(wrong_token.is_err());

    let mut socket = connect(
        &app.base,
        &alice.client.token,
        &since,
        Some("https://chat.example.com"),
    )
    .await
    .unwrap();
    let first = next_op(&mut socket, Duration::from_secs(5))
        .await
        .expect("backlog op");
    assert_eq!(first["type"], "message_created");
    assert_eq!(first["body"], "backlog");
    alice.post(room, "live").await;
    let live = next_op(&mut socket, Duration::from_secs(5))
        .await
        .expect("live op");
    assert_eq!(live["body"], "live");
    socket.close(None).await.unwrap();

    // Resuming from the first op's revision yields exactly the second.
    let mut again = connect(
        &app.base,
        &alice.client.token,
        first["revision"].as_str().unwrap(),
        None,
    )
    .await
    .unwrap();
    let resumed = next_op(&mut again, Duration::from_secs(5)).await.unwrap();
    assert_eq!(resumed, live);
    assert!(
        next_op(&mut again, Duration::from_millis(300))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn a_slow_websocket_consumer_is_cut_off_and_resumes_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let server = hayabusa::start(hayabusa::Config {
        sync: hayabusa_http::SyncSettings {
            send_timeout: Duration::from_millis(300),
            ..Default::default()
        },
        rate_limits: hayabusa_http::RateLimits::off(),
        ..hayabusa::Config::new(dir.path())
    })
    .await
    .unwrap();
    let base = format!("http://{}", server.addr);
    let admin = Client::new(
        &base,
        std::fs::read_to_string(dir.path().join("admin.token"))
            .unwrap()
            .trim(),
    );
    let (_, me) = admin.get("/v2/me").await;
    let (_, created) = admin
        .send(
            Method::POST,
            "/v2/rooms",
            &[
                ("name", "firehose".into()),
                ("members_admin_ids", me["account_id"].to_string()),
            ],
        )
        .await;
    let room = created["room_id"].as_u64().unwrap();
    let since = revision(&poll(&admin, None, 0, 10).await);

    // Connect and then do not read while a lot is posted.
    let mut socket = connect(&base, &admin.token, &since, None).await.unwrap();
    let body = "x".repeat(60_000);
    for i in 0..250 {
        let (status, _) = admin
            .send(
                Method::POST,
                &format!("/v2/rooms/{room}/messages"),
                &[("body", format!("{i} {body}"))],
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Now read: the server has given up on us at some point.
    let mut received = vec![];
    let mut closed_by_server = false;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                received.push(serde_json::from_str::<Value>(&text).unwrap())
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                if let Some(frame) = frame {
                    assert_eq!(u16::from(frame.code), 4000, "slow-consumer close code");
                }
                closed_by_server = true;
                break;
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_))) | Ok(None) => {
                closed_by_server = true;
                break;
            }
            Err(_) => break,
        }
    }
    assert!(closed_by_server, "the slow consumer was disconnected");
    assert!(
        received.len() < 250,
        "it was cut off before getting everything ({})",
        received.len()
    );
    // Resume from the last op received: the rest arrives, nothing twice, nothing lost.
    let resume_from = received.last().map(revision).unwrap_or(since.clone());
    let mut socket = connect(&base, &admin.token, &resume_from, None)
        .await
        .unwrap();
    while received.len() < 250 {
        let op = next_op(&mut socket, Duration::from_secs(10))
            .await
            .expect("the rest after resuming");
        received.push(op);
    }
    let bodies: Vec<usize> = received
        .iter()
        .map(|op| {
            op["body"]
                .as_str()
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(bodies, (0..250).collect::<Vec<_>>());
    server.stop().await.unwrap();
}

/// Many clients, long-poll and WebSocket mixed, disconnecting at random while others
/// post, edit, delete, add and remove members: every client's ops equal the server's
/// truth for its account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_reconnect_at_random_miss_nothing_and_see_nothing_twice() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let mut others = vec![];
    for name in ["Bob", "Carol", "Dave", "Erin"] {
        others.push(app.account(name).await);
    }
    let rooms = [
        app.room(&alice, &[&others[0], &others[1]], &[]).await,
        app.room(&alice, &[&others[2]], &[&others[3]]).await,
    ];
    let start = revision(&poll(&alice.client, None, 0, 10).await);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    // Clients: two per account, one long-poll and one WebSocket.
    let mut clients = vec![];
    for (i, user) in std::iter::once(&alice).chain(others.iter()).enumerate() {
        for websocket in [false, true] {
            let client = user.client.clone();
            let base = app.base.clone();
            let start = start.clone();
            let stop = stop.clone();
            let seed = (i * 2 + websocket as usize) as u64;
            clients.push(tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                let mut received: Vec<Value> = vec![];
                let mut since = start;
                let mut reconnects = 0;
                loop {
                    let stopping = stop.load(std::sync::atomic::Ordering::SeqCst);
                    if websocket {
                        let mut socket = connect(&base, &client.token, &since, None).await.unwrap();
                        let frames = rng.random_range(1..8);
                        for _ in 0..frames {
                            match next_op(
                                &mut socket,
                                Duration::from_millis(if stopping { 500 } else { 200 }),
                            )
                            .await
                            {
                                Some(op) => {
                                    since = revision(&op);
                                    received.push(op);
                                }
                                None => break,
                            }
                        }
                        // Drop the connection abruptly (no close handshake) half the time.
                        if rng.random_bool(0.5) {
                            let _ = socket.close(None).await;
                        }
                    } else {
                        let batch = poll(
                            &client,
                            Some(&since),
                            if stopping { 0 } else { rng.random_range(0..2) },
                            rng.random_range(1..6),
                        )
                        .await;
                        since = revision(&batch);
                        received.extend(batch["ops"].as_array().unwrap().iter().cloned());
                    }
                    reconnects += 1;
                    if stopping {
                        // Drain to the end after the writers stopped.
                        let rest = poll(&client, Some(&since), 0, 1000).await;
                        if rest["ops"].as_array().unwrap().is_empty() {
                            return (client.token.clone(), received, reconnects);
                        }
                    }
                }
            }));
        }
    }

    // Writers: random posts, edits, deletes and member changes for ~3 seconds.
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let mut posted: Vec<(u64, String, u64)> = vec![];
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let room = rooms[rng.random_range(0..rooms.len())];
        match rng.random_range(0..10) {
            0..=5 => {
                let id = alice.post(room, &format!("post {}", posted.len())).await;
                posted.push((room, id, alice.id));
            }
            6 if !posted.is_empty() => {
                let (room, id, _) = posted[rng.random_range(0..posted.len())].clone();
                alice
                    .client
                    .send(
                        Method::PUT,
                        &format!("/v2/rooms/{room}/messages/{id}"),
                        &[("body", "edited".into())],
                    )
                    .await;
            }
            7 if !posted.is_empty() => {
                let (room, id, _) = posted.swap_remove(rng.random_range(0..posted.len()));
                alice
                    .client
                    .send(
                        Method::DELETE,
                        &format!("/v2/rooms/{room}/messages/{id}"),
                        &[],
                    )
                    .await;
            }
            _ => {
                let chosen: Vec<String> = others
                    .iter()
                    .filter(|_| rng.random_bool(0.5))
                    .map(|u| u.id.to_string())
                    .collect();
                alice
                    .client
                    .send(
                        Method::PUT,
                        &format!("/v2/rooms/{room}/members"),
                        &[
                            ("members_admin_ids", alice.id.to_string()),
                            ("members_member_ids", chosen.join(",")),
                        ],
                    )
                    .await;
            }
        }
    }
    settle(&app).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);

    let mut total_reconnects = 0;
    for client in clients {
        let (token, received, reconnects) = client.await.unwrap();
        total_reconnects += reconnects;
        let expected = truth(&Client::new(&app.base, &token)).await;
        let expected: Vec<Value> = expected
            .into_iter()
            .filter(|op| {
                let rev = op["revision"].as_str().unwrap();
                let position: u64 = rev.split(':').next().unwrap().parse().unwrap();
                position > start.parse::<u64>().unwrap()
            })
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(received.len(), expected.len(), "same number of ops");
        assert_eq!(received, expected, "exactly the server's ops, in order");
    }
    assert!(
        total_reconnects > 20,
        "clients really reconnected ({total_reconnects})"
    );
}

#[tokio::test]
async fn tasks_files_and_contacts_appear_as_ops_for_the_accounts_concerned() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let carol = app.account("Carol").await;
    let room = app.room(&alice, &[&bob], &[]).await;
    settle(&app).await;
    let since = revision(&poll(&bob.client, None, 0, 10).await);
    let carol_since = revision(&poll(&carol.client, None, 0, 10).await);
    let (_, tasks) = alice
        .client
        .send(
            Method::POST,
            &format!("/v2/rooms/{room}/tasks"),
            &[("body", "review".into()), ("to_ids", bob.id.to_string())],
        )
        .await;
    let task = tasks["task_ids"][0].as_u64().unwrap();
    bob.client
        .send(
            Method::PUT,
            &format!("/v2/rooms/{room}/tasks/{task}/status"),
            &[("body", "done".into())],
        )
        .await;
    let (_, request) = alice
        .client
        .send(
            Method::POST,
            "/v2/contacts/requests",
            &[("account_id", carol.id.to_string())],
        )
        .await;
    let request = request["request_id"].as_u64().unwrap();
    settle(&app).await;
    let ops = truth(&bob.client).await;
    let after: Vec<&str> = ops
        .iter()
        .filter(|o| {
            o["revision"]
                .as_str()
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > since.parse().unwrap()
        })
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        after,
        vec![
            "message_created",
            "mention",
            "task_added",
            "task_status_changed"
        ]
    );
    let carol_ops = poll(&carol.client, Some(&carol_since), 0, 100).await;
    let carol_ops = carol_ops["ops"].as_array().unwrap();
    assert_eq!(
        carol_ops.len(),
        1,
        "Carol sees the request, not the room: {carol_ops:?}"
    );
    assert_eq!(carol_ops[0]["type"], "contact_requested");
    assert_eq!(carol_ops[0]["request_id"], request);
    assert!(
        ops.iter().all(|o| o["type"] != "contact_requested"),
        "Bob sees no one else's request"
    );
}
