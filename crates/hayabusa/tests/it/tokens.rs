//! Token rotation and revocation over HTTP: `POST /v2/me/token` hands out a new token
//! and the old one is refused from that answer on; an administrator's
//! `DELETE /v2/accounts/{account_id}/token` revokes one; both survive a restart and a
//! rebuild of the read models.

use crate::helpers::*;
use reqwest::{Method, StatusCode};

async fn rotate(client: &Client) -> String {
    let (status, body) = client.send(Method::POST, "/v2/me/token", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().expect("a token").to_string();
    assert_eq!(token.len(), 64, "{body}");
    token
}

async fn me(client: &Client) -> (StatusCode, serde_json::Value) {
    client.get("/v2/me").await
}

#[tokio::test]
async fn a_rotated_token_is_refused_at_once_and_the_new_one_works() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let room = app.room(&alice, &[], &[]).await;
    let mut current = alice.client.clone();
    // Used once, so that the token is in the authentication cache.
    assert_eq!(me(&current).await.0, StatusCode::OK);

    for _ in 0..30 {
        let old = current.clone();
        let token = rotate(&old).await;
        assert_ne!(token, old.token);
        // The very next request with the old token is refused, and every later one.
        for path in ["/v2/me".to_string(), format!("/v2/rooms/{room}/messages")] {
            assert_error(
                &old.get(&path).await,
                StatusCode::UNAUTHORIZED,
                "Invalid API token",
            );
        }
        current = Client::new(&app.base, &token);
        let (status, body) = me(&current).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["account_id"].as_u64(), Some(alice.id));
    }
    // The old token cannot rotate either, and the current one still works.
    assert_eq!(
        alice.client.send(Method::POST, "/v2/me/token", &[]).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(me(&current).await.0, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn a_retried_rotation_with_the_same_idempotency_key_rotates_once() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let rotate_with_key = |client: &Client| {
        client
            .request(Method::POST, "/v2/me/token")
            .header("Idempotency-Key", "rotate-1")
    };
    let (status, first) = read(rotate_with_key(&alice.client).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let rotated = Client::new(&app.base, first["token"].as_str().unwrap());
    // The retry answers the first attempt's token (derived again, never stored) and
    // rotates nothing: that token keeps working.
    let (status, again) = read(rotate_with_key(&rotated).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["token"], first["token"]);
    let (status, body) = me(&rotated).await;
    assert_eq!(
        (status, body["account_id"].as_u64()),
        (StatusCode::OK, Some(alice.id))
    );
    assert_eq!(me(&alice.client).await.0, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test]
async fn an_administrator_issues_a_new_token_for_an_account() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let path = format!("/v2/accounts/{}/token", alice.id);
    assert_error(
        &bob.client.send(Method::POST, &path, &[]).await,
        StatusCode::FORBIDDEN,
        "only administrators",
    );
    assert_error(
        &app.admin
            .send(Method::POST, "/v2/accounts/999999/token", &[])
            .await,
        StatusCode::NOT_FOUND,
        "account not found",
    );
    assert_eq!(me(&alice.client).await.0, StatusCode::OK);
    let (status, body) = app.admin.send(Method::POST, &path, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let issued = Client::new(&app.base, body["token"].as_str().unwrap());
    assert_eq!(me(&alice.client).await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = me(&issued).await;
    assert_eq!(
        (status, body["account_id"].as_u64()),
        (StatusCode::OK, Some(alice.id))
    );
    app.stop().await;
}

#[tokio::test]
async fn only_an_administrator_revokes_a_token_and_it_is_refused_at_once() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    assert_eq!(me(&alice.client).await.0, StatusCode::OK);

    // A plain member may not, whether or not the account exists; nothing changes.
    for target in [alice.id, 999_999] {
        assert_error(
            &bob.client
                .send(Method::DELETE, &format!("/v2/accounts/{target}/token"), &[])
                .await,
            StatusCode::FORBIDDEN,
            "only administrators",
        );
    }
    assert_eq!(me(&alice.client).await.0, StatusCode::OK);
    // An unknown account is 404 for an administrator.
    assert_error(
        &app.admin
            .send(Method::DELETE, "/v2/accounts/999999/token", &[])
            .await,
        StatusCode::NOT_FOUND,
        "account not found",
    );

    let (status, body) = app
        .admin
        .send(
            Method::DELETE,
            &format!("/v2/accounts/{}/token", alice.id),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, serde_json::Value::Null, "no token is handed out");
    assert_error(
        &me(&alice.client).await,
        StatusCode::UNAUTHORIZED,
        "Invalid API token",
    );
    // Other accounts, the administrator included, keep theirs.
    assert_eq!(me(&bob.client).await.0, StatusCode::OK);
    assert_eq!(me(&app.admin).await.0, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn rotations_and_revocations_survive_a_restart_and_a_rebuild() {
    let mut app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let new_alice = Client::new(&app.base, &rotate(&alice.client).await);
    let (status, _) = app
        .admin
        .send(
            Method::DELETE,
            &format!("/v2/accounts/{}/token", bob.id),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    app.restart().await;
    let at = |client: &Client| Client::new(&app.base, &client.token);
    assert_eq!(me(&at(&alice.client)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&at(&bob.client)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&at(&new_alice)).await.0, StatusCode::OK);
    // admin.token, written at the first start, still works.
    assert_eq!(me(&app.admin).await.0, StatusCode::OK);

    let dir = app.stop().await;
    hayabusa::rebuild(dir.path(), &Default::default())
        .await
        .expect("rebuild");
    let (server, base, admin) = start_in(dir.path()).await;
    let at = |client: &Client| Client::new(&base, &client.token);
    assert_eq!(me(&at(&alice.client)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&at(&bob.client)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&at(&new_alice)).await.0, StatusCode::OK);
    assert_eq!(me(&admin).await.0, StatusCode::OK);
    server.stop().await.unwrap();
}

/// Opens the sync WebSocket of `token` from the current revision.
async fn open_sync_socket(
    base: &str,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!(
        "{}/v2/sync/ws?token={token}",
        base.replace("http://", "ws://")
    );
    tokio_tungstenite::connect_async(url)
        .await
        .expect("the socket opens")
        .0
}

/// Waits for the server to close `socket`; returns the close code.
async fn closed_with(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<u16> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|frame| frame.code.into()),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_)) | None) => return None,
            Err(_) => panic!("the socket stayed open"),
        }
    }
}

#[tokio::test]
async fn open_sync_sockets_of_a_rotated_or_revoked_token_are_closed() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let room = app.room(&alice, &[&bob], &[]).await;

    // Alice rotates her own token: her open socket closes with 4003, Bob's stays.
    let mut alices = open_sync_socket(&app.base, &alice.client.token).await;
    let mut bobs = open_sync_socket(&app.base, &bob.client.token).await;
    let token = rotate(&alice.client).await;
    assert_eq!(closed_with(&mut alices).await, Some(4003));
    // Bob's socket still delivers.
    let alice_now = Client::new(&app.base, &token);
    let (status, body) = alice_now
        .send(
            Method::POST,
            &format!("/v2/rooms/{room}/messages"),
            &[("body", "still there?".into())],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let frame = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            loop {
                match bobs.next().await {
                    Some(Ok(Message::Text(text))) => return text.to_string(),
                    Some(Ok(_)) => continue,
                    other => panic!("bob's socket ended: {other:?}"),
                }
            }
        })
        .await
        .expect("bob gets the message");
        assert!(frame.contains("still there?"), "{frame}");
    }

    // An administrator revokes Bob's token: his socket closes too.
    let (status, body) = app
        .admin
        .send(
            Method::DELETE,
            &format!("/v2/accounts/{}/token", bob.id),
            &[],
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    assert_eq!(closed_with(&mut bobs).await, Some(4003));
    // The new token opens a socket again.
    let _again = open_sync_socket(&app.base, &token).await;
    app.stop().await;
}
