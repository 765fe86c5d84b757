//! Read-after-acknowledged-write: once a write has been answered, every read that
//! starts afterwards sees it, whoever reads. Each test runs its "A writes, B reads at
//! once" loop with the projector slowed down (a test-only pause before each batch), so
//! that a read which did not wait for the acknowledged write would miss it.

use crate::helpers::*;
use hayabusa::Config;
use hayabusa_app::ProjectorDelay;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Write-then-read rounds per test, spread over [`LANES`] concurrent lanes (each with
/// its own accounts and rooms), so that the rounds take seconds, not minutes.
const ITERATIONS: usize = 1_000;

/// Concurrent lanes of rounds per test.
const LANES: usize = 4;

/// The projector's pause before each batch: far longer than a read takes to arrive
/// after its write's answer on loopback.
const SLOW_PROJECTOR: Duration = Duration::from_millis(2);

/// A server whose projector pauses `delay` before each batch (adjustable through the
/// returned handle) and whose reads wait at most `max_read_wait`.
async fn spawn_slow_app(delay: Duration, max_read_wait: Duration) -> (TestApp, ProjectorDelay) {
    let dir = tempfile::tempdir().expect("temp dir");
    let projector_delay = ProjectorDelay::new(delay);
    let backend = TestBackend::from_env().await;
    let server = hayabusa::start(Config {
        backends: backend.backends.clone(),
        rate_limits: hayabusa_http::RateLimits::off(),
        max_read_wait,
        projector_delay: projector_delay.clone(),
        ..Config::new(dir.path())
    })
    .await
    .expect("server starts");
    let base = format!("http://{}", server.addr);
    let token = std::fs::read_to_string(dir.path().join("admin.token")).expect("admin.token");
    let admin = Client::new(&base, token.trim());
    let app = TestApp {
        server: Some(server),
        base,
        admin,
        dir,
        backend,
    };
    (app, projector_delay)
}

async fn slow_app() -> TestApp {
    spawn_slow_app(SLOW_PROJECTOR, Duration::from_secs(5))
        .await
        .0
}

/// Counts, per kind of read, the rounds whose read missed the write, with the first
/// miss for the report.
#[derive(Default)]
struct Misses(BTreeMap<&'static str, (usize, Option<String>)>);

impl Misses {
    fn check(&mut self, read: &'static str, seen: bool, what: impl FnOnce() -> String) {
        let (count, first) = self.0.entry(read).or_default();
        if !seen {
            *count += 1;
            if first.is_none() {
                *first = Some(what());
            }
        }
    }

    fn merge(mut self, other: Misses) -> Misses {
        for (read, (count, first)) in other.0 {
            let entry = self.0.entry(read).or_default();
            entry.0 += count;
            if entry.1.is_none() {
                entry.1 = first;
            }
        }
        self
    }

    #[track_caller]
    fn assert_none(&self) {
        assert!(!self.0.is_empty(), "no rounds ran");
        let missed: Vec<String> = self
            .0
            .iter()
            .filter(|(_, (count, _))| *count > 0)
            .map(|(read, (count, first))| {
                format!(
                    "{read}: {count} of {ITERATIONS} reads missed the acknowledged write; first: {}",
                    first.as_deref().unwrap_or("")
                )
            })
            .collect();
        assert!(missed.is_empty(), "{}", missed.join("\n"));
    }
}

/// Runs `lane(l, rounds)` for each of the [`LANES`] lanes concurrently, with
/// [`ITERATIONS`] rounds in all, and merges what they missed.
async fn in_lanes<F, Fut>(lane: F) -> Misses
where
    F: Fn(usize, usize) -> Fut,
    Fut: Future<Output = Misses>,
{
    let lanes = (0..LANES).map(|l| lane(l, ITERATIONS / LANES));
    futures::future::join_all(lanes)
        .await
        .into_iter()
        .fold(Misses::default(), Misses::merge)
}

fn ids_of(list: &Value, field: &str) -> Vec<Value> {
    list.as_array()
        .map(|items| items.iter().map(|item| item[field].clone()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_member_reads_a_message_right_after_it_was_acknowledged() {
    let app = slow_app().await;
    let app = &app;
    let misses = in_lanes(|lane, rounds| async move {
        let alice = app.account(&format!("Alice {lane}")).await;
        let bob = app.account(&format!("Bob {lane}")).await;
        let room = app.room(&alice, &[&bob], &[]).await;
        let mut misses = Misses::default();
        for i in 0..rounds {
            let id = alice.post(room, &format!("message {i}")).await;
            // The list (the page cache's path) and the message by id, by another account.
            let (status, page) = bob
                .client
                .send(
                    Method::GET,
                    &format!("/v2/rooms/{room}/messages"),
                    &[("force", "1".into())],
                )
                .await;
            misses.check(
                "GET /rooms/{id}/messages?force=1",
                status == StatusCode::OK
                    && ids_of(&page, "message_id").contains(&id.clone().into()),
                || format!("round {i}: {status} {page}"),
            );
            let (status, message) = bob
                .client
                .get(&format!("/v2/rooms/{room}/messages/{id}"))
                .await;
            misses.check(
                "GET /rooms/{id}/messages/{message_id}",
                status == StatusCode::OK && message["message_id"] == id.as_str(),
                || format!("round {i}: {status} {message}"),
            );
        }
        misses
    })
    .await;
    misses.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_sees_a_new_room_right_after_its_creation() {
    let app = slow_app().await;
    let app = &app;
    let misses = in_lanes(|lane, rounds| async move {
        let alice = app.account(&format!("Alice {lane}")).await;
        let bob = app.account(&format!("Bob {lane}")).await;
        let mut misses = Misses::default();
        for i in 0..rounds {
            let room = app.room(&alice, &[&bob], &[]).await;
            let (status, view) = bob.client.get(&format!("/v2/rooms/{room}")).await;
            misses.check(
                "GET /rooms/{id}",
                status == StatusCode::OK && view["room_id"] == room,
                || format!("round {i}: {status} {view}"),
            );
            // Only every tenth round reads the whole (growing) list.
            if i % 10 == 0 {
                let room = app.room(&alice, &[&bob], &[]).await;
                let (status, rooms) = bob.client.get("/v2/rooms").await;
                misses.check(
                    "GET /rooms",
                    status == StatusCode::OK && ids_of(&rooms, "room_id").contains(&room.into()),
                    || format!("round {i}: {status}, room {room} not listed"),
                );
            }
        }
        misses
    })
    .await;
    misses.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_is_refused_right_after_the_removal() {
    let app = slow_app().await;
    let app = &app;
    let misses = in_lanes(|lane, rounds| async move {
        let alice = app.account(&format!("Alice {lane}")).await;
        let bob = app.account(&format!("Bob {lane}")).await;
        let room = app.room(&alice, &[&bob], &[]).await;
        alice.post(room, "only for members").await;
        let set_members = |members: Vec<(&'static str, String)>| {
            let client = alice.client.clone();
            async move {
                let (status, body) = client
                    .send(Method::PUT, &format!("/v2/rooms/{room}/members"), &members)
                    .await;
                assert_eq!(status, StatusCode::OK, "{body}");
            }
        };
        let mut misses = Misses::default();
        for i in 0..rounds {
            set_members(vec![
                ("members_admin_ids", alice.id.to_string()),
                ("members_member_ids", bob.id.to_string()),
            ])
            .await;
            // Added: Bob reads the room (and so the page cache holds him as a member).
            let (status, page) = bob
                .client
                .send(
                    Method::GET,
                    &format!("/v2/rooms/{room}/messages"),
                    &[("force", "1".into())],
                )
                .await;
            misses.check("an added member's read", status == StatusCode::OK, || {
                format!("round {i}: {status} {page}")
            });
            set_members(vec![("members_admin_ids", alice.id.to_string())]).await;
            // Removed: neither the cached page nor the room is served to him any more.
            let (page_status, page) = bob
                .client
                .send(
                    Method::GET,
                    &format!("/v2/rooms/{room}/messages"),
                    &[("force", "1".into())],
                )
                .await;
            let (room_status, view) = bob.client.get(&format!("/v2/rooms/{room}")).await;
            misses.check(
                "a removed member's read",
                page_status == StatusCode::NOT_FOUND && room_status == StatusCode::NOT_FOUND,
                || format!("round {i}: messages {page_status} {page}, room {room_status} {view}"),
            );
        }
        misses
    })
    .await;
    misses.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_requests_and_approvals_are_seen_by_the_other_side_at_once() {
    let app = slow_app().await;
    let app = &app;
    let misses = in_lanes(|lane, rounds| async move {
        let alice = app.account(&format!("Alice {lane}")).await;
        // Several addressees: a pair's commands read its whole stream, which grows by
        // three events a round.
        let mut others = Vec::new();
        for n in 0..5 {
            let name = format!("Olga {lane}.{n}");
            others.push(app.account_in(&name, Some("Other Corp")).await);
        }
        let mut misses = Misses::default();
        for i in 0..rounds {
            let olga = &others[i % others.len()];
            let (status, requested) = alice
                .client
                .send(
                    Method::POST,
                    "/v2/contacts/requests",
                    &[("account_id", olga.id.to_string())],
                )
                .await;
            assert_eq!(status, StatusCode::OK, "round {i}: {requested}");
            let request = requested["request_id"].clone();
            let (status, incoming) = olga.client.get("/v2/incoming_requests").await;
            misses.check(
                "GET /incoming_requests after a request",
                status == StatusCode::OK && ids_of(&incoming, "request_id").contains(&request),
                || format!("round {i}: {status} {incoming}"),
            );
            let (status, approved) = olga
                .client
                .send(
                    Method::PUT,
                    &format!("/v2/incoming_requests/{request}"),
                    &[],
                )
                .await;
            assert_eq!(status, StatusCode::OK, "round {i}: {approved}");
            let (status, contacts) = alice.client.get("/v2/contacts").await;
            misses.check(
                "GET /contacts after an approval",
                status == StatusCode::OK
                    && ids_of(&contacts, "account_id").contains(&olga.id.into()),
                || format!("round {i}: {status} {contacts}"),
            );
            let (status, body) = alice
                .client
                .send(Method::DELETE, &format!("/v2/contacts/{}", olga.id), &[])
                .await;
            assert!(status.is_success(), "round {i}: {status} {body}");
            let (status, contacts) = olga.client.get("/v2/contacts").await;
            misses.check(
                "GET /contacts after a removal",
                status == StatusCode::OK && contacts.as_array().is_some_and(|c| c.is_empty()),
                || format!("round {i}: {status} {contacts}"),
            );
        }
        misses
    })
    .await;
    misses.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assignee_sees_a_new_task_in_my_tasks_and_in_the_room_at_once() {
    let app = slow_app().await;
    let app = &app;
    let misses = in_lanes(|lane, rounds| async move {
        let alice = app.account(&format!("Alice {lane}")).await;
        let bob = app.account(&format!("Bob {lane}")).await;
        let room = app.room(&alice, &[&bob], &[]).await;
        let open = [("status", "open".to_string())];
        let mut misses = Misses::default();
        for i in 0..rounds {
            let (status, created) = alice
                .client
                .send(
                    Method::POST,
                    &format!("/v2/rooms/{room}/tasks"),
                    &[
                        ("body", format!("task {i}")),
                        ("to_ids", bob.id.to_string()),
                    ],
                )
                .await;
            assert_eq!(status, StatusCode::OK, "round {i}: {created}");
            let task = created["task_ids"][0].clone();
            let (status, mine) = bob.client.send(Method::GET, "/v2/my/tasks", &open).await;
            misses.check(
                "GET /my/tasks",
                status == StatusCode::OK && ids_of(&mine, "task_id").contains(&task),
                || format!("round {i}: {status} {mine}"),
            );
            let (status, tasks) = bob
                .client
                .send(Method::GET, &format!("/v2/rooms/{room}/tasks"), &open)
                .await;
            misses.check(
                "GET /rooms/{id}/tasks",
                status == StatusCode::OK && ids_of(&tasks, "task_id").contains(&task),
                || format!("round {i}: {status} {tasks}"),
            );
            // Done, so that the open lists stay short.
            let (status, body) = bob
                .client
                .send(
                    Method::PUT,
                    &format!("/v2/rooms/{room}/tasks/{task}/status"),
                    &[("body", "done".into())],
                )
                .await;
            assert_eq!(status, StatusCode::OK, "round {i}: {body}");
        }
        misses
    })
    .await;
    misses.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn my_status_counts_a_post_of_another_member_at_once() {
    let app = slow_app().await;
    let app = &app;
    let misses = in_lanes(|lane, rounds| async move {
        let alice = app.account(&format!("Alice {lane}")).await;
        let bob = app.account(&format!("Bob {lane}")).await;
        let room = app.room(&alice, &[&bob], &[]).await;
        let mut misses = Misses::default();
        for i in 0..rounds {
            alice
                .post(room, &format!("[To:{}] message {i}", bob.id))
                .await;
            let (status, counts) = bob.client.get("/v2/my/status").await;
            let expected = (i + 1) as u64;
            misses.check(
                "GET /my/status",
                status == StatusCode::OK
                    && counts["unread_num"] == expected
                    && counts["mention_num"] == expected,
                || format!("round {i}: {status} {counts}, expected {expected} unread"),
            );
        }
        misses
    })
    .await;
    misses.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_long_poll_returns_an_op_acknowledged_before_it() {
    let app = slow_app().await;
    let app = &app;
    let misses = in_lanes(|lane, rounds| async move {
        let alice = app.account(&format!("Alice {lane}")).await;
        let bob = app.account(&format!("Bob {lane}")).await;
        let room = app.room(&alice, &[&bob], &[]).await;
        let (status, start) = bob.client.get("/v2/sync").await;
        assert_eq!(status, StatusCode::OK, "{start}");
        let mut since = start["revision"].as_str().unwrap().to_string();
        let mut misses = Misses::default();
        for i in 0..rounds {
            let id = alice.post(room, &format!("message {i}")).await;
            // No waiting for news: the op must be there at once.
            let (status, batch) = bob
                .client
                .send(
                    Method::GET,
                    "/v2/sync",
                    &[("since", since.clone()), ("timeout", "0".into())],
                )
                .await;
            assert_eq!(status, StatusCode::OK, "round {i}: {batch}");
            let seen = batch["ops"].as_array().is_some_and(|ops| {
                ops.iter()
                    .any(|op| op["type"] == "message_created" && op["message_id"] == id.as_str())
            });
            misses.check("GET /sync?since=REV&timeout=0", seen, || {
                format!("round {i}: {batch}")
            });
            since = batch["revision"].as_str().unwrap().to_string();
        }
        misses
    })
    .await;
    misses.assert_none();
}

#[tokio::test]
async fn a_stuck_projector_gets_a_503_with_retry_after_and_idle_rooms_are_served_at_once() {
    let max_read_wait = Duration::from_millis(300);
    let (app, delay) = spawn_slow_app(Duration::ZERO, max_read_wait).await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let room = app.room(&alice, &[&bob], &[]).await;
    alice.post(room, "before").await;
    let (status, _) = bob
        .client
        .get(&format!("/v2/rooms/{room}/messages?force=1"))
        .await;
    assert_eq!(status, StatusCode::OK);

    // The projector stops (it reads the pause before its next batch, so it may still
    // project one write that races the change); a write is still acknowledged.
    delay.set(Duration::from_secs(3600));
    alice.post(room, "racing the pause").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let id = alice.post(room, "after").await;

    for path in [
        format!("/v2/rooms/{room}/messages?force=1"),
        format!("/v2/rooms/{room}/messages/{id}"),
        format!("/v2/rooms/{room}"),
        "/v2/my/status".to_string(),
        "/v2/rooms".to_string(),
    ] {
        let started = Instant::now();
        let response = bob.client.request(Method::GET, &path).send().await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}: never a stale answer"
        );
        assert_eq!(
            response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap()),
            Some("1"),
            "{path}"
        );
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "application/json",
            "{path}"
        );
        assert!(
            elapsed >= max_read_wait,
            "{path} answered after {elapsed:?}"
        );
        let (_, body) = read(response).await;
        assert_error(
            &(StatusCode::SERVICE_UNAVAILABLE, body),
            StatusCode::SERVICE_UNAVAILABLE,
            "catching up",
        );
    }

    let started = Instant::now();
    let (status, view) = bob.client.get(&format!("/v2/rooms/{}", bob.my_room)).await;
    let (contacts_status, contacts) = bob.client.get("/v2/contacts").await;
    if app.backend.nats.is_some() {
        // On a log shared by several processes a node knows only the log's head, not
        // what the writes behind it touched: every read waits for the head (ADR 0011).
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{view}");
        assert_eq!(
            contacts_status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{contacts}"
        );
        return;
    }
    // Reads of rooms and accounts with nothing in flight do not wait at all.
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(contacts_status, StatusCode::OK, "{contacts}");
    assert!(
        started.elapsed() < max_read_wait / 2,
        "idle reads took {:?}",
        started.elapsed()
    );
}
