//! `/v2/me`, `/v2/accounts`, authentication.

use crate::helpers::*;
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn the_bootstrap_admin_token_works_with_both_header_styles() {
    let app = spawn_app().await;
    let (status, me) = app.admin.get("/v2/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["name"], "Administrator");
    assert_eq!(me["organization_name"], "Hayabusa");
    assert!(me["account_id"].as_u64().unwrap() < (1 << 53));
    assert!(me["room_id"].as_u64().is_some());
    let bearer = app
        .admin
        .http
        .get(format!("{}/v2/me", app.base))
        .header("Authorization", format!("Bearer {}", app.admin.token))
        .send()
        .await
        .unwrap();
    let (status, again) = read(bearer).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["account_id"], me["account_id"]);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(app.data_dir().join("admin.token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn missing_or_wrong_tokens_get_401_in_chatwork_format() {
    let app = spawn_app().await;
    let none = read(
        app.admin
            .http
            .get(format!("{}/v2/me", app.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&none, StatusCode::UNAUTHORIZED, "Invalid API token");
    let wrong = Client::new(&app.base, "0123456789abcdef");
    assert_error(
        &wrong.get("/v2/rooms").await,
        StatusCode::UNAUTHORIZED,
        "Invalid API token",
    );
}

#[tokio::test]
async fn an_admin_creates_accounts_that_can_use_the_api_at_once() {
    let app = spawn_app().await;
    let (status, created) = app
        .admin
        .send(
            Method::POST,
            "/v2/accounts",
            &[
                ("name", "Bob".into()),
                ("mail", "bob@example.com".into()),
                ("department", "Sales".into()),
                ("title", "Lead".into()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let bob = Client::new(&app.base, created["token"].as_str().unwrap());
    let (status, me) = bob.get("/v2/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["name"], "Bob");
    assert_eq!(me["mail"], "bob@example.com");
    assert_eq!(me["department"], "Sales");
    assert_eq!(me["title"], "Lead");
    assert_eq!(me["organization_name"], "Hayabusa");
    assert_eq!(me["account_id"], created["account_id"]);
    // Every account has its own "my" room.
    let (status, rooms) = bob.get("/v2/rooms").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rooms.as_array().unwrap().len(), 1);
    assert_eq!(rooms[0]["type"], "my");
    assert_eq!(rooms[0]["room_id"], me["room_id"]);
}

#[tokio::test]
async fn only_admins_create_accounts_and_bad_parameters_are_refused() {
    let app = spawn_app().await;
    let bob = app.account("Bob").await;
    let answer = bob
        .client
        .send(Method::POST, "/v2/accounts", &[("name", "Eve".into())])
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, "administrators");
    assert_error(
        &app.admin.send(Method::POST, "/v2/accounts", &[]).await,
        StatusCode::BAD_REQUEST,
        "name is required",
    );
    assert_error(
        &app.admin
            .send(Method::POST, "/v2/accounts", &[("name", "  ".into())])
            .await,
        StatusCode::BAD_REQUEST,
        "name",
    );
    assert_error(
        &app.admin
            .send(
                Method::POST,
                "/v2/accounts",
                &[("name", "X".into()), ("admin", "yes".into())],
            )
            .await,
        StatusCode::BAD_REQUEST,
        "admin must be 0 or 1",
    );
}

#[tokio::test]
async fn a_retried_account_creation_with_the_same_idempotency_key_returns_the_first_result() {
    let app = spawn_app().await;
    let create = |name: &str| {
        app.admin
            .request(Method::POST, "/v2/accounts")
            .header("Idempotency-Key", "create-carol-1")
            .form(&[("name", name)])
    };
    let first = read(create("Carol").send().await.unwrap()).await;
    let second = read(create("Carol").send().await.unwrap()).await;
    assert_eq!(first.0, StatusCode::OK);
    assert_eq!(second.0, StatusCode::OK);
    assert_eq!(first.1, second.1, "same account, same token");
    let other = read(create("Dave").send().await.unwrap()).await;
    assert_error(&other, StatusCode::UNPROCESSABLE_ENTITY, "Idempotency-Key");
    let bad = read(
        app.admin
            .request(Method::POST, "/v2/accounts")
            .header("Idempotency-Key", "")
            .form(&[("name", "Eve")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "Idempotency-Key");
}

#[tokio::test]
async fn my_status_counts_unread_messages_and_mentions_across_rooms() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let room = app.room(&alice, &[&bob], &[]).await;
    alice.post(room, "hello").await;
    alice
        .post(room, &format!("[To:{}] please look", bob.id))
        .await;
    let (status, body) = bob.client.get("/v2/my/status").await;
    assert_eq!(status, StatusCode::OK);
    // Bob reads his own writes only; Alice's posts are projected shortly after.
    for _ in 0..50 {
        let (_, body) = bob.client.get("/v2/my/status").await;
        if body["unread_num"] == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (_, body2) = bob.client.get("/v2/my/status").await;
    assert_eq!(body2["unread_num"], 2, "{body2}");
    assert_eq!(body2["mention_num"], 1);
    assert_eq!(body2["unread_room_num"], 1);
    assert_eq!(body2["mention_room_num"], 1);
    assert_eq!(body2["mytask_num"], 0);
    assert!(body.get("mytask_room_num").is_some());
    let (_, alice_status) = alice.client.get("/v2/my/status").await;
    assert_eq!(alice_status["unread_num"], 0, "own messages are not unread");
}
