//! Data survives restarts, and `rebuild` reproduces the read models exactly.

use crate::helpers::*;
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn data_and_tokens_survive_a_restart() {
    let mut app = spawn_app().await;
    let alice = app.account("Alice").await;
    let room = app.room(&alice, &[], &[]).await;
    let message = alice.post(room, "persisted").await;
    app.restart().await;
    let alice_client = Client::new(&app.base, &alice.client.token);
    let (status, body) = alice_client
        .get(&format!("/v2/rooms/{room}/messages/{message}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["body"], "persisted");
    // New writes continue the same room.
    let (status, _) = alice_client
        .send(
            Method::POST,
            &format!("/v2/rooms/{room}/messages"),
            &[("body", "after restart".into())],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, listed) = alice_client
        .send(
            Method::GET,
            &format!("/v2/rooms/{room}/messages"),
            &[("force", "1".into())],
        )
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    // The admin token file was not rewritten.
    let (status, _) = app.admin.get("/v2/me").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn rebuild_reproduces_the_incrementally_built_read_models_exactly() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let carol = app.account("Carol").await;
    let room = app.room(&alice, &[&bob], &[&carol]).await;
    let m1 = alice.post(room, &format!("[To:{}] hi", bob.id)).await;
    bob.post(room, "[toall] hello").await;
    alice.post(room, "third").await;
    alice
        .client
        .send(
            Method::PUT,
            &format!("/v2/rooms/{room}/messages/{m1}"),
            &[("body", "edited".into())],
        )
        .await;
    let m4 = bob.post(room, "to delete").await;
    bob.client
        .send(
            Method::DELETE,
            &format!("/v2/rooms/{room}/messages/{m4}"),
            &[],
        )
        .await;
    bob.client
        .send(Method::PUT, &format!("/v2/rooms/{room}/messages/read"), &[])
        .await;
    alice
        .client
        .send(
            Method::PUT,
            &format!("/v2/rooms/{room}"),
            &[("name", "Renamed".into()), ("icon_preset", "beer".into())],
        )
        .await;
    alice
        .client
        .send(
            Method::PUT,
            &format!("/v2/rooms/{room}/members"),
            &[
                ("members_admin_ids", alice.id.to_string()),
                ("members_member_ids", carol.id.to_string()),
            ],
        )
        .await;
    // Tasks, files, contacts and links take part too.
    let (_, tasks) = alice
        .client
        .send(
            Method::POST,
            &format!("/v2/rooms/{room}/tasks"),
            &[("body", "do it".into()), ("to_ids", carol.id.to_string())],
        )
        .await;
    let task = tasks["task_ids"][0].as_u64().unwrap();
    carol
        .client
        .send(
            Method::PUT,
            &format!("/v2/rooms/{room}/tasks/{task}/status"),
            &[("body", "done".into())],
        )
        .await;
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"content".to_vec()).file_name("notes.txt"),
    );
    let uploaded = alice
        .client
        .request(Method::POST, &format!("/v2/rooms/{room}/files"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), StatusCode::OK);
    let olga = app.account_in("Olga", Some("Other Corp")).await;
    let (_, request) = alice
        .client
        .send(
            Method::POST,
            "/v2/contacts/requests",
            &[("account_id", olga.id.to_string())],
        )
        .await;
    let request = request["request_id"].as_u64().unwrap();
    olga.client
        .send(
            Method::PUT,
            &format!("/v2/incoming_requests/{request}"),
            &[],
        )
        .await;
    let (_, pending) = bob
        .client
        .send(
            Method::POST,
            "/v2/contacts/requests",
            &[("account_id", olga.id.to_string())],
        )
        .await;
    assert!(pending["request_id"].as_u64().is_some());
    alice
        .client
        .send(
            Method::POST,
            &format!("/v2/rooms/{room}/link"),
            &[("code", "rebuild-me".into())],
        )
        .await;
    olga.client
        .send(Method::POST, "/v2/links/rebuild-me/join", &[])
        .await;
    let gone = app.room(&alice, &[&carol], &[]).await;
    alice.post(gone, "bye").await;
    alice
        .client
        .send(
            Method::DELETE,
            &format!("/v2/rooms/{gone}"),
            &[("action_type", "delete".into())],
        )
        .await;
    // Let the projector finish, then compare.
    let state = app.server.as_ref().unwrap().state.clone();
    let head = state.app.log.head();
    assert!(
        state
            .app
            .writes
            .projection()
            .wait_for(head, std::time::Duration::from_secs(5))
            .await
    );
    let dir = app.stop().await;

    let stores = hayabusa::open_stores(dir.path(), &Default::default())
        .await
        .unwrap();
    let incremental = stores.read.dump().await.unwrap();
    drop(stores);
    let position = hayabusa::rebuild(dir.path(), &Default::default())
        .await
        .unwrap();
    assert!(position > 0);
    let stores = hayabusa::open_stores(dir.path(), &Default::default())
        .await
        .unwrap();
    let rebuilt = stores.read.dump().await.unwrap();
    for shown in ["Renamed", "notes.txt", "do it", "rebuild-me", "Olga"] {
        assert!(incremental.contains(shown), "the dump shows {shown}");
    }
    assert_eq!(incremental, rebuilt);
}
