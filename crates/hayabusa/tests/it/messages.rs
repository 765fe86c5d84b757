//! Messages: post, list (new since last fetch / latest), read, edit, delete,
//! read/unread cursors.

use crate::helpers::*;
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn post_read_edit_and_delete_a_message_as_chatwork_documents() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let room = app.room(&alice, &[&bob], &[]).await;
    let message = alice.post(room, "Hello [To:1] world").await;
    assert!(message.parse::<u64>().is_ok());

    let (status, one) = alice
        .client
        .get(&format!("/v2/rooms/{room}/messages/{message}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["message_id"], message.as_str());
    assert_eq!(one["body"], "Hello [To:1] world");
    assert_eq!(one["account"]["account_id"], alice.id);
    assert_eq!(one["account"]["name"], "Alice");
    assert!(one["account"].get("avatar_image_url").is_some());
    assert!(one["send_time"].as_i64().unwrap() > 1_600_000_000);
    assert_eq!(one["update_time"], 0);

    let path = format!("/v2/rooms/{room}/messages/{message}");
    assert_error(
        &bob.client
            .send(Method::PUT, &path, &[("body", "hijack".into())])
            .await,
        StatusCode::FORBIDDEN,
        "author",
    );
    assert_error(
        &bob.client.send(Method::DELETE, &path, &[]).await,
        StatusCode::FORBIDDEN,
        "author",
    );
    assert_error(
        &alice.client.send(Method::PUT, &path, &[]).await,
        StatusCode::BAD_REQUEST,
        "body is required",
    );
    let (status, edited) = alice
        .client
        .send(Method::PUT, &path, &[("body", "Edited".into())])
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["message_id"], message.as_str());
    let (_, one) = alice.client.get(&path).await;
    assert_eq!(one["body"], "Edited");
    assert!(one["update_time"].as_i64().unwrap() > 0);

    let (status, deleted) = alice.client.send(Method::DELETE, &path, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(deleted["message_id"], message.as_str());
    assert_error(
        &alice.client.get(&path).await,
        StatusCode::NOT_FOUND,
        "message not found",
    );
    assert_error(
        &alice.client.send(Method::DELETE, &path, &[]).await,
        StatusCode::NOT_FOUND,
        "message not found",
    );
}

#[tokio::test]
async fn readonly_members_cannot_post_and_bad_bodies_are_refused() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let carol = app.account("Carol").await;
    let room = app.room(&alice, &[], &[&carol]).await;
    let path = format!("/v2/rooms/{room}/messages");
    assert_error(
        &carol
            .client
            .send(Method::POST, &path, &[("body", "hi".into())])
            .await,
        StatusCode::FORBIDDEN,
        "readonly",
    );
    assert_error(
        &alice.client.send(Method::POST, &path, &[]).await,
        StatusCode::BAD_REQUEST,
        "body is required",
    );
    assert_error(
        &alice
            .client
            .send(Method::POST, &path, &[("body", " \n ".into())])
            .await,
        StatusCode::BAD_REQUEST,
        "body must not be empty",
    );
    assert_error(
        &alice
            .client
            .send(Method::POST, &path, &[("body", "x".repeat(65_536))])
            .await,
        StatusCode::BAD_REQUEST,
        "65535",
    );
    assert_error(
        &alice
            .client
            .send(
                Method::POST,
                &path,
                &[("body", "x".into()), ("self_unread", "2".into())],
            )
            .await,
        StatusCode::BAD_REQUEST,
        "self_unread must be 0 or 1",
    );
    assert_error(
        &alice
            .client
            .send(Method::GET, &path, &[("force", "yes".into())])
            .await,
        StatusCode::BAD_REQUEST,
        "force must be 0 or 1",
    );
    assert_error(
        &alice.client.get(&format!("{path}/not-a-number")).await,
        StatusCode::BAD_REQUEST,
        "message_id",
    );
    // The longest allowed body goes through.
    alice.post(room, &"あ".repeat(65_535)).await;
    // Nothing else was stored.
    let (status, listed) = alice
        .client
        .send(Method::GET, &path, &[("force", "1".into())])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn force_0_returns_only_messages_new_since_the_callers_last_fetch() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let room = app.room(&alice, &[], &[]).await;
    let path = format!("/v2/rooms/{room}/messages");
    let (status, body) = alice.client.get(&path).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let first = alice.post(room, "one").await;
    let second = alice.post(room, "two").await;
    let (status, body) = alice.client.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![first.as_str(), second.as_str()]);
    let (status, _) = alice.client.get(&path).await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "nothing new since the last fetch"
    );
    let third = alice.post(room, "three").await;
    let (_, body) = alice.client.get(&path).await;
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert_eq!(body[0]["message_id"], third.as_str());
    let (status, body) = alice
        .client
        .send(Method::GET, &path, &[("force", "1".into())])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn force_1_returns_the_latest_100_in_order() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let room = app.room(&alice, &[], &[]).await;
    for i in 0..105 {
        alice.post(room, &format!("m{i}")).await;
    }
    let (_, body) = alice
        .client
        .send(
            Method::GET,
            &format!("/v2/rooms/{room}/messages"),
            &[("force", "1".into())],
        )
        .await;
    let bodies: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies.len(), 100);
    assert_eq!(bodies[0], "m5");
    assert_eq!(bodies[99], "m104");
}

#[tokio::test]
async fn read_and_unread_move_the_callers_counts() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let room = app.room(&alice, &[&bob], &[]).await;
    let first = alice.post(room, "one").await;
    alice.post(room, &format!("[To:{}] two", bob.id)).await;
    alice.post(room, "[toall] three").await;
    let path = format!("/v2/rooms/{room}/messages");
    // Wait until Bob sees all three (Alice's writes are projected asynchronously).
    let mut counts = serde_json::Value::Null;
    for _ in 0..50 {
        let (_, room_view) = bob.client.get(&format!("/v2/rooms/{room}")).await;
        if room_view["unread_num"] == 3 {
            counts = room_view;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(counts["unread_num"], 3, "{counts}");
    assert_eq!(counts["mention_num"], 2);
    assert_eq!(counts["message_num"], 3);

    let (status, body) = bob
        .client
        .send(
            Method::PUT,
            &format!("{path}/read"),
            &[("message_id", first.clone())],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, serde_json::json!({"unread_num": 2, "mention_num": 2}));
    let (_, body) = bob
        .client
        .send(Method::PUT, &format!("{path}/read"), &[])
        .await;
    assert_eq!(body, serde_json::json!({"unread_num": 0, "mention_num": 0}));
    let (_, body) = bob
        .client
        .send(
            Method::PUT,
            &format!("{path}/unread"),
            &[("message_id", first.clone())],
        )
        .await;
    assert_eq!(body, serde_json::json!({"unread_num": 3, "mention_num": 2}));
    assert_error(
        &bob.client
            .send(Method::PUT, &format!("{path}/unread"), &[])
            .await,
        StatusCode::BAD_REQUEST,
        "message_id is required",
    );
    assert_error(
        &bob.client
            .send(
                Method::PUT,
                &format!("{path}/read"),
                &[("message_id", "123".into())],
            )
            .await,
        StatusCode::NOT_FOUND,
        "message not found",
    );
}

#[tokio::test]
async fn a_retried_post_with_the_same_idempotency_key_posts_once() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let room = app.room(&alice, &[], &[]).await;
    let path = format!("/v2/rooms/{room}/messages");
    let send = || {
        alice
            .client
            .request(Method::POST, &path)
            .header("Idempotency-Key", "msg-42")
            .form(&[("body", "only once")])
            .send()
    };
    let first = read(send().await.unwrap()).await;
    let second = read(send().await.unwrap()).await;
    assert_eq!(first.0, StatusCode::OK);
    assert_eq!(first.1, second.1);
    let (_, listed) = alice
        .client
        .send(Method::GET, &path, &[("force", "1".into())])
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

/// `force=1` pages are served from memory while a room is unchanged: every kind of
/// change to the room must show on the next page, for the writer at once and for the
/// other members a moment later, and a removed member must lose access.
#[tokio::test]
async fn force_1_pages_follow_every_change_to_the_room() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let carol = app.account("Carol").await;
    let room = app.room(&alice, &[&bob], &[]).await;
    let path = format!("/v2/rooms/{room}/messages?force=1");
    let bodies = |body: &serde_json::Value| -> Vec<String> {
        body.as_array()
            .map(|messages| {
                messages
                    .iter()
                    .map(|m| m["body"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };

    let (status, _) = alice.client.get(&path).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "an empty room");
    let one = alice.post(room, "one").await;
    let (status, body) = alice.client.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bodies(&body), ["one"]);
    let response = alice
        .client
        .request(Method::GET, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");

    let two = alice.post(room, "two").await;
    assert_eq!(bodies(&alice.client.get(&path).await.1), ["one", "two"]);
    eventually(&bob.client, &path, |_, body| bodies(body) == ["one", "two"]).await;

    let (status, _) = alice
        .client
        .send(
            Method::PUT,
            &format!("/v2/rooms/{room}/messages/{one}"),
            &[("body", "one, edited".into())],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        bodies(&alice.client.get(&path).await.1),
        ["one, edited", "two"]
    );
    let (status, _) = alice
        .client
        .send(
            Method::DELETE,
            &format!("/v2/rooms/{room}/messages/{two}"),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bodies(&alice.client.get(&path).await.1), ["one, edited"]);
    eventually(&bob.client, &path, |_, body| {
        bodies(body) == ["one, edited"]
    })
    .await;

    // A non-member never sees the page, cached or not.
    assert_error(
        &carol.client.get(&path).await,
        StatusCode::NOT_FOUND,
        "room",
    );
    // Bob is removed: his next reads fail although the page is cached.
    let (status, body) = alice
        .client
        .send(
            Method::PUT,
            &format!("/v2/rooms/{room}/members"),
            &[("members_admin_ids", alice.id.to_string())],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(bodies(&alice.client.get(&path).await.1), ["one, edited"]);
    eventually(&bob.client, &path, |status, _| {
        status == StatusCode::NOT_FOUND
    })
    .await;
}

/// A cached `force=1` page still moves the caller's fetch cursor: `force=0` then
/// returns only what came after it.
#[tokio::test]
async fn force_1_from_the_cache_still_moves_the_fetch_cursor() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let room = app.room(&alice, &[&bob], &[]).await;
    let latest = format!("/v2/rooms/{room}/messages?force=1");
    let new = format!("/v2/rooms/{room}/messages");
    alice.post(room, "one").await;
    // Alice fills the cache; Bob's read is then a hit, and must still move his cursor.
    assert_eq!(alice.client.get(&latest).await.0, StatusCode::OK);
    eventually(&bob.client, &latest, |status, _| status == StatusCode::OK).await;
    assert_eq!(bob.client.get(&new).await.0, StatusCode::NO_CONTENT);
    let two = alice.post(room, "two").await;
    let (status, body) = eventually(&bob.client, &new, |status, _| status == StatusCode::OK).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert_eq!(body[0]["message_id"], two.as_str());
}
