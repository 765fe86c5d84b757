//! Rate limits over HTTP: the `x-ratelimit-*` headers on every counted answer (errors
//! included), 429 beyond the per-account limit, beyond the per-address limit of
//! requests without a valid token and beyond the per-room posting limit (messages,
//! tasks and files); no window reset by flooding; and no limits at all when they are
//! switched off.

use crate::helpers::*;
use hayabusa::{Config, RunningServer};
use hayabusa_http::{RateLimit, RateLimits};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

struct LimitedApp {
    server: RunningServer,
    base: String,
    admin: Client,
    _dir: TempDir,
}

impl LimitedApp {
    async fn start(rate_limits: RateLimits) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = hayabusa::start(Config {
            rate_limits,
            ..Config::new(dir.path())
        })
        .await
        .expect("server starts");
        let base = format!("http://{}", server.addr);
        let token = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
        let admin = Client::new(&base, token.trim());
        LimitedApp {
            server,
            base,
            admin,
            _dir: dir,
        }
    }

    /// A new account (a request of the admin's token).
    async fn account(&self, name: &str) -> User {
        let (status, body) = self
            .admin
            .send(Method::POST, "/v2/accounts", &[("name", name.to_string())])
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        User {
            id: body["account_id"].as_u64().unwrap(),
            my_room: body["room_id"].as_u64().unwrap(),
            client: Client::new(&self.base, body["token"].as_str().unwrap()),
        }
    }

    async fn stop(self) {
        self.server.stop().await.unwrap();
    }
}

fn limits(per_token: Option<(u32, u64)>, room_posts: Option<(u32, u64)>) -> RateLimits {
    let limit = |(requests, secs): (u32, u64)| RateLimit {
        requests,
        window: Duration::from_secs(secs),
    };
    RateLimits {
        per_token: per_token.map(limit),
        room_posts: room_posts.map(limit),
        ..RateLimits::default()
    }
}

/// `(x-ratelimit-limit, x-ratelimit-remaining, x-ratelimit-reset)` of an answer.
struct Answer {
    status: StatusCode,
    limit: Option<u64>,
    remaining: Option<u64>,
    reset: Option<u64>,
    body: Value,
}

async fn answer(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("request sent");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().parse::<u64>().expect("a number"))
    };
    let (limit, remaining, reset) = (
        header("x-ratelimit-limit"),
        header("x-ratelimit-remaining"),
        header("x-ratelimit-reset"),
    );
    let (status, body) = read(response).await;
    Answer {
        status,
        limit,
        remaining,
        reset,
        body,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn post_message(client: &Client, room: u64, body: &str) -> reqwest::RequestBuilder {
    client
        .request(Method::POST, &format!("/v2/rooms/{room}/messages"))
        .form(&[("body", body)])
}

fn post_task(client: &Client, room: u64, to: u64) -> reqwest::RequestBuilder {
    client
        .request(Method::POST, &format!("/v2/rooms/{room}/tasks"))
        .form(&[("body", "do it".to_string()), ("to_ids", to.to_string())])
}

#[tokio::test]
async fn every_answer_to_a_token_carries_the_headers_and_the_excess_is_429() {
    let app = LimitedApp::start(limits(Some((8, 60)), None)).await;
    let admin = &app.admin;
    let alice = app.account("Alice").await; // the admin's 1st request

    let me = answer(admin.request(Method::GET, "/v2/me")).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!((me.limit, me.remaining), (Some(8), Some(6)));
    let reset = me.reset.expect("x-ratelimit-reset");
    let now = unix_now();
    assert!(
        (now + 58..=now + 61).contains(&reset),
        "reset {reset} is not about a minute after {now}"
    );

    // Error answers carry them too: 404 (room and endpoint), 400, 405.
    let missing_room = answer(admin.request(Method::GET, "/v2/rooms/12345")).await;
    assert_eq!(missing_room.status, StatusCode::NOT_FOUND);
    assert_eq!(missing_room.remaining, Some(5));
    let missing_endpoint = answer(admin.request(Method::GET, "/v2/nothing/here")).await;
    assert_eq!(missing_endpoint.status, StatusCode::NOT_FOUND);
    assert_eq!(missing_endpoint.remaining, Some(4));
    let bad = answer(
        admin
            .request(Method::POST, "/v2/rooms")
            .form(&[("name", "x")]),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert_eq!(bad.remaining, Some(3));
    let not_allowed = answer(admin.request(Method::PATCH, "/v2/me")).await;
    assert_eq!(not_allowed.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(not_allowed.remaining, Some(2));
    assert_eq!(not_allowed.reset, Some(reset), "one window, one reset time");

    // An invalid token and no token are counted against the peer address; their
    // 401s have that window's headers.
    let invalid = Client::new(&app.base, "not-a-token");
    let unauthorized = answer(invalid.request(Method::GET, "/v2/me")).await;
    assert_eq!(unauthorized.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        (unauthorized.limit, unauthorized.remaining),
        (Some(300), Some(299))
    );
    let anonymous = answer(reqwest::Client::new().get(format!("{}/v2/me", app.base))).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        (anonymous.limit, anonymous.remaining),
        (Some(300), Some(298))
    );

    for remaining in [1, 0] {
        let ok = answer(admin.request(Method::GET, "/v2/rooms")).await;
        assert_eq!((ok.status, ok.remaining), (StatusCode::OK, Some(remaining)));
    }
    for _ in 0..2 {
        let refused = answer(admin.request(Method::GET, "/v2/rooms")).await;
        assert_error(
            &(refused.status, refused.body.clone()),
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit exceeded",
        );
        assert_eq!(
            (refused.limit, refused.remaining, refused.reset),
            (Some(8), Some(0), Some(reset))
        );
    }
    // The same token as a Bearer token is the same allowance.
    let bearer = answer(
        reqwest::Client::new()
            .get(format!("{}/v2/me", app.base))
            .bearer_auth(&admin.token),
    )
    .await;
    assert_eq!(bearer.status, StatusCode::TOO_MANY_REQUESTS);

    // Other tokens are not affected.
    let alices = answer(alice.client.request(Method::GET, "/v2/me")).await;
    assert_eq!(alices.status, StatusCode::OK);
    assert_eq!(alices.remaining, Some(7));
    app.stop().await;
}

#[tokio::test]
async fn posting_messages_and_tasks_is_limited_per_room() {
    let app = LimitedApp::start(limits(Some((1_000, 60)), Some((3, 60)))).await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let carol = app.account("Carol").await;
    let room = {
        let ids = |users: &[&User]| {
            users
                .iter()
                .map(|u| u.id.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let (status, body) = alice
            .client
            .send(
                Method::POST,
                "/v2/rooms",
                &[
                    ("name", "Busy".to_string()),
                    ("members_admin_ids", alice.id.to_string()),
                    ("members_member_ids", ids(&[&bob])),
                    ("members_readonly_ids", ids(&[&carol])),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["room_id"].as_u64().unwrap()
    };

    // Refused posts do not use up the room's allowance.
    for _ in 0..4 {
        let readonly = answer(post_message(&carol.client, room, "may I?")).await;
        assert_eq!(readonly.status, StatusCode::FORBIDDEN, "{}", readonly.body);
        let empty = answer(post_message(&bob.client, room, "")).await;
        assert_eq!(empty.status, StatusCode::BAD_REQUEST, "{}", empty.body);
    }

    // Three posts by anyone, messages and tasks alike, then the room is full for
    // everyone…
    for (user, body) in [(&alice, "one"), (&bob, "two")] {
        let posted = answer(post_message(&user.client, room, body)).await;
        assert_eq!(posted.status, StatusCode::OK, "{}", posted.body);
    }
    let task = answer(post_task(&alice.client, room, bob.id)).await;
    assert_eq!(task.status, StatusCode::OK, "{}", task.body);
    let refused = answer(post_message(&bob.client, room, "four")).await;
    assert_error(
        &(refused.status, refused.body.clone()),
        StatusCode::TOO_MANY_REQUESTS,
        "Rate limit exceeded",
    );
    assert_eq!(
        refused.limit,
        Some(1_000),
        "the token headers are still there"
    );
    // …for tasks too…
    let task = answer(post_task(&alice.client, room, bob.id)).await;
    assert_eq!(task.status, StatusCode::TOO_MANY_REQUESTS, "{}", task.body);

    // …while reading, editing and other rooms are not limited.
    let (status, messages) = alice
        .client
        .send(
            Method::GET,
            &format!("/v2/rooms/{room}/messages"),
            &[("force", "1".into())],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let bodies: Vec<&str> = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["one", "two", "[task]do it[/task]"]);
    let first = messages[0]["message_id"].as_str().unwrap();
    let edited = answer(
        alice
            .client
            .request(Method::PUT, &format!("/v2/rooms/{room}/messages/{first}"))
            .form(&[("body", "one!")]),
    )
    .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    let elsewhere = answer(post_message(&alice.client, alice.my_room, "note to self")).await;
    assert_eq!(elsewhere.status, StatusCode::OK, "{}", elsewhere.body);
    app.stop().await;
}

#[tokio::test]
async fn with_limits_off_nothing_is_refused_and_no_headers_are_sent() {
    let app = LimitedApp::start(RateLimits::off()).await;
    let alice = app.account("Alice").await;
    for i in 0..30 {
        let posted = answer(post_message(&alice.client, alice.my_room, &format!("{i}"))).await;
        assert_eq!(posted.status, StatusCode::OK, "{}", posted.body);
        assert_eq!(posted.limit, None);
    }
    for _ in 0..30 {
        let me = answer(alice.client.request(Method::GET, "/v2/me")).await;
        assert_eq!((me.status, me.limit), (StatusCode::OK, None));
    }
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_is_served_without_a_token() {
    let app = LimitedApp::start(limits(Some((5, 60)), None)).await;
    let anonymous =
        answer(reqwest::Client::new().get(format!("{}/v2/openapi.json", app.base))).await;
    assert_eq!(anonymous.status, StatusCode::OK);
    assert!(
        anonymous.body["openapi"]
            .as_str()
            .unwrap()
            .starts_with("3."),
        "{}",
        anonymous.body["openapi"]
    );
    assert!(
        anonymous.body["paths"]
            .get("/v2/rooms/{room_id}/messages")
            .is_some()
    );
    assert_eq!(
        (anonymous.limit, anonymous.remaining),
        (Some(300), Some(299)),
        "counted against the address"
    );
    // With a token it is counted like any request.
    let with_token = answer(app.admin.request(Method::GET, "/v2/openapi.json")).await;
    assert_eq!(with_token.status, StatusCode::OK);
    assert_eq!(with_token.remaining, Some(4));
    app.stop().await;
}

#[tokio::test]
async fn requests_without_a_valid_token_are_limited_per_address_whatever_the_token() {
    let mut settings = limits(Some((5, 60)), None);
    settings.per_peer = Some(RateLimit {
        requests: 3,
        window: Duration::from_secs(60),
    });
    let app = LimitedApp::start(settings).await;
    let alice = app.account("Alice").await;
    // Every invented token is a failed login from the same address: one allowance.
    for (i, remaining) in [2, 1, 0].into_iter().enumerate() {
        let guess = Client::new(&app.base, &format!("guess-{i}"));
        let refused = answer(guess.request(Method::GET, "/v2/me")).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
        assert_eq!(
            (refused.limit, refused.remaining),
            (Some(3), Some(remaining))
        );
    }
    for i in 3..20 {
        let guess = Client::new(&app.base, &format!("guess-{i}"));
        let limited = answer(guess.request(Method::GET, "/v2/me")).await;
        assert_error(
            &(limited.status, limited.body.clone()),
            StatusCode::TOO_MANY_REQUESTS,
            "without a valid API token",
        );
    }
    let anonymous =
        answer(reqwest::Client::new().get(format!("{}/v2/openapi.json", app.base))).await;
    assert_eq!(anonymous.status, StatusCode::TOO_MANY_REQUESTS);
    // Valid tokens from that address are counted per account and unaffected; so is
    // the liveness probe.
    let me = answer(alice.client.request(Method::GET, "/v2/me")).await;
    assert_eq!((me.status, me.limit), (StatusCode::OK, Some(5)));
    let health = answer(reqwest::Client::new().get(format!("{}/healthz", app.base))).await;
    assert_eq!(health.status, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn flooding_with_invented_tokens_does_not_reset_a_used_up_window() {
    let mut settings = limits(Some((3, 60)), None);
    settings.per_peer = Some(RateLimit {
        requests: 10_000,
        window: Duration::from_secs(60),
    });
    settings.max_tracked_keys = 20;
    let app = LimitedApp::start(settings).await;
    let alice = app.account("Alice").await;
    for _ in 0..3 {
        let ok = answer(alice.client.request(Method::GET, "/v2/me")).await;
        assert_eq!(ok.status, StatusCode::OK);
    }
    let used_up = answer(alice.client.request(Method::GET, "/v2/me")).await;
    assert_eq!(used_up.status, StatusCode::TOO_MANY_REQUESTS);
    // Many more invented tokens than the limiter tracks keys.
    for i in 0..100 {
        let guess = Client::new(&app.base, &format!("flood-{i}"));
        let refused = answer(guess.request(Method::GET, "/v2/me")).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    }
    let still = answer(alice.client.request(Method::GET, "/v2/me")).await;
    assert_eq!(
        still.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the window was reset: {}",
        still.body
    );
    assert_eq!((still.limit, still.remaining), (Some(3), Some(0)));
    app.stop().await;
}

#[tokio::test]
async fn a_rotated_token_keeps_its_accounts_window() {
    let app = LimitedApp::start(limits(Some((4, 60)), None)).await;
    let alice = app.account("Alice").await;
    for _ in 0..3 {
        let ok = answer(alice.client.request(Method::GET, "/v2/me")).await;
        assert_eq!(ok.status, StatusCode::OK);
    }
    let rotated = answer(alice.client.request(Method::POST, "/v2/me/token")).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    assert_eq!(rotated.remaining, Some(0));
    let new = Client::new(&app.base, rotated.body["token"].as_str().unwrap());
    let limited = answer(new.request(Method::GET, "/v2/me")).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.body
    );
    assert_eq!((limited.limit, limited.remaining), (Some(4), Some(0)));
    app.stop().await;
}

fn upload(client: &Client, room: u64, name: &str) -> reqwest::RequestBuilder {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"hello".to_vec()).file_name(name.to_string()),
    );
    client
        .request(Method::POST, &format!("/v2/rooms/{room}/files"))
        .multipart(form)
}

#[tokio::test]
async fn uploads_count_in_the_per_room_posting_limit() {
    let app = LimitedApp::start(limits(Some((1_000, 60)), Some((3, 60)))).await;
    let alice = app.account("Alice").await;
    let room = alice.my_room;
    // A refused upload does not count.
    for _ in 0..5 {
        let refused = answer(
            alice
                .client
                .request(Method::POST, &format!("/v2/rooms/{room}/files"))
                .multipart(reqwest::multipart::Form::new().text("message", "no file")),
        )
        .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    }
    let uploaded = answer(upload(&alice.client, room, "a.txt")).await;
    assert_eq!(uploaded.status, StatusCode::OK, "{}", uploaded.body);
    let posted = answer(post_message(&alice.client, room, "one")).await;
    assert_eq!(posted.status, StatusCode::OK, "{}", posted.body);
    let task = answer(post_task(&alice.client, room, alice.id)).await;
    assert_eq!(task.status, StatusCode::OK, "{}", task.body);
    // The room is full: for uploads as for messages.
    let refused = answer(upload(&alice.client, room, "b.txt")).await;
    assert_error(
        &(refused.status, refused.body.clone()),
        StatusCode::TOO_MANY_REQUESTS,
        "messages, tasks and files",
    );
    let refused = answer(post_message(&alice.client, room, "two")).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let (status, files) = alice.client.get(&format!("/v2/rooms/{room}/files")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(files.as_array().map(Vec::len), Some(1), "{files}");
    app.stop().await;
}

#[tokio::test]
async fn room_ids_that_do_not_exist_take_no_cache_entries() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let state = &app.server.as_ref().unwrap().state;
    let (rooms_before, pages_before) = (state.app.commands.cached_rooms(), state.app.pages.len());
    for room in 1_000_000..1_000_200u64 {
        let posted = alice
            .client
            .send(
                Method::POST,
                &format!("/v2/rooms/{room}/messages"),
                &[("body", "hi".to_string())],
            )
            .await;
        assert_error(&posted, StatusCode::NOT_FOUND, "room not found");
        let read = alice
            .client
            .send(
                Method::GET,
                &format!("/v2/rooms/{room}/messages"),
                &[("force", "1".to_string())],
            )
            .await;
        assert_error(&read, StatusCode::NOT_FOUND, "room not found");
        let members = alice
            .client
            .send(
                Method::PUT,
                &format!("/v2/rooms/{room}/members"),
                &[("members_admin_ids", alice.id.to_string())],
            )
            .await;
        assert_error(&members, StatusCode::NOT_FOUND, "room not found");
    }
    assert_eq!(state.app.commands.cached_rooms(), rooms_before);
    assert_eq!(state.app.pages.len(), pages_before);

    // Rooms that exist are still cached.
    alice.post(alice.my_room, "hello").await;
    let (status, _) = alice
        .client
        .send(
            Method::GET,
            &format!("/v2/rooms/{}/messages", alice.my_room),
            &[("force", "1".to_string())],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(state.app.commands.cached_rooms(), rooms_before + 1);
    assert_eq!(state.app.pages.len(), pages_before + 1);
    app.stop().await;
}

/// Two API nodes sharing the engines of a cluster (NATS JetStream, PostgreSQL): every
/// limit counts the requests of both, so a caller gets ChatWork's allowance once, not
/// once per node, and the nodes announce the same window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limits_hold_across_api_nodes_that_share_the_read_store() {
    let nats = hayabusa_nats::testkit::NatsServer::start();
    let database = hayabusa_postgres::testkit::TestDatabase::create().await;
    let backends = hayabusa::Backends {
        event_log: nats_backend(&nats),
        read_store: hayabusa::backends::ReadStoreBackend::Postgres(
            hayabusa::backends::ServiceUrl::new(database.connection_string()),
        ),
        ..hayabusa::Backends::default()
    };
    let rate_limits = RateLimits {
        per_peer: Some(RateLimit {
            requests: 4,
            window: Duration::from_secs(60),
        }),
        ..limits(Some((6, 60)), Some((3, 60)))
    };
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut servers = Vec::new();
    for dir in &dirs {
        if !servers.is_empty() {
            // The nodes of a cluster share the secret key (the tokens derive from it).
            std::fs::copy(
                dirs[0].path().join(hayabusa::data_dir::SECRET_FILE),
                dir.path().join(hayabusa::data_dir::SECRET_FILE),
            )
            .unwrap();
        }
        servers.push(
            hayabusa::start(Config {
                backends: backends.clone(),
                rate_limits: rate_limits.clone(),
                ..Config::new(dir.path())
            })
            .await
            .expect("server starts"),
        );
    }
    let bases: Vec<String> = servers
        .iter()
        .map(|s| format!("http://{}", s.addr))
        .collect();
    let token = std::fs::read_to_string(dirs[0].path().join("admin.token")).unwrap();
    let admin = Client::new(&bases[0], token.trim());
    let mut users = Vec::new();
    for name in ["Alice", "Bob"] {
        let (status, body) = admin
            .send(Method::POST, "/v2/accounts", &[("name", name.to_string())])
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let token = body["token"].as_str().unwrap().to_string();
        let clients: Vec<Client> = bases.iter().map(|base| Client::new(base, &token)).collect();
        users.push((body["room_id"].as_u64().unwrap(), clients));
    }

    // Per token: six requests, alternating between the nodes, then 429 on either.
    let (_, alice) = &users[0];
    let mut resets = HashSet::new();
    for (i, remaining) in (0..6).rev().enumerate() {
        let me = answer(alice[i % 2].request(Method::GET, "/v2/me")).await;
        assert_eq!(me.status, StatusCode::OK, "request {i}: {}", me.body);
        assert_eq!(me.remaining, Some(remaining), "request {i}");
        resets.insert(me.reset.unwrap());
    }
    for client in alice {
        let refused = answer(client.request(Method::GET, "/v2/me")).await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.remaining, Some(0));
        resets.insert(refused.reset.unwrap());
    }
    assert_eq!(resets.len(), 1, "one window on both nodes: {resets:?}");

    // Per room: three posts across the nodes; a refused post (400) is given back.
    let (my_room, bob) = &users[1];
    let posted = answer(post_message(&bob[0], *my_room, "one")).await;
    assert_eq!(posted.status, StatusCode::OK, "{}", posted.body);
    let bad = answer(post_message(&bob[1], *my_room, "")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    for (i, body) in ["two", "three"].into_iter().enumerate() {
        let posted = answer(post_message(&bob[1 - i], *my_room, body)).await;
        assert_eq!(posted.status, StatusCode::OK, "{}", posted.body);
    }
    let refused = answer(post_message(&bob[0], *my_room, "four")).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );

    // Without a valid token: counted per address, across the nodes.
    let anonymous: Vec<Client> = bases.iter().map(|base| Client::new(base, "nope")).collect();
    for (i, remaining) in (0..4).rev().enumerate() {
        let me = answer(anonymous[i % 2].request(Method::GET, "/v2/me")).await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED, "request {i}");
        assert_eq!(me.remaining, Some(remaining), "request {i}");
    }
    let refused = answer(anonymous[1].request(Method::GET, "/v2/me")).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);

    for server in servers {
        server.stop().await.unwrap();
    }
    database.drop().await;
}
