//! Invitation links: admins manage them; joining directly or after acceptance.

use crate::helpers::*;
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn admins_manage_the_link_and_codes_are_unique_and_validated() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let room = app.room(&alice, &[&bob], &[]).await;
    let other = app.room(&alice, &[], &[]).await;
    let path = format!("/v2/rooms/{room}/link");
    let (status, none) = bob.client.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(none, serde_json::json!({"public": false}));

    assert_error(
        &bob.client
            .send(Method::POST, &path, &[("code", "team".into())])
            .await,
        StatusCode::FORBIDDEN,
        "admin",
    );
    for bad in ["has space", "ü", &"x".repeat(51)] {
        assert_error(
            &alice
                .client
                .send(Method::POST, &path, &[("code", bad.to_string())])
                .await,
            StatusCode::BAD_REQUEST,
            "code must be",
        );
    }
    assert_error(
        &alice
            .client
            .send(
                Method::POST,
                &path,
                &[("code", "team".into()), ("need_acceptance", "2".into())],
            )
            .await,
        StatusCode::BAD_REQUEST,
        "need_acceptance",
    );
    let (status, link) = alice
        .client
        .send(
            Method::POST,
            &path,
            &[
                ("code", "team-1".into()),
                ("need_acceptance", "0".into()),
                ("description", "Join us".into()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{link}");
    assert_eq!(link["public"], true);
    assert!(link["url"].as_str().unwrap().ends_with("/g/team-1"));
    assert_eq!(link["need_acceptance"], false);
    assert_eq!(link["description"], "Join us");
    assert_error(
        &alice.client.send(Method::POST, &path, &[]).await,
        StatusCode::CONFLICT,
        "already",
    );
    // The code is taken server-wide.
    assert_error(
        &alice
            .client
            .send(
                Method::POST,
                &format!("/v2/rooms/{other}/link"),
                &[("code", "team-1".into())],
            )
            .await,
        StatusCode::CONFLICT,
        "taken",
    );
    let (status, changed) = alice
        .client
        .send(Method::PUT, &path, &[("code", "team-2".into())])
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert!(changed["url"].as_str().unwrap().ends_with("/g/team-2"));
    assert_eq!(changed["description"], "Join us", "unchanged fields stay");
    // The old code is free again.
    let (status, _) = alice
        .client
        .send(
            Method::POST,
            &format!("/v2/rooms/{other}/link"),
            &[("code", "team-1".into())],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, deleted) = alice.client.send(Method::DELETE, &path, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(deleted, serde_json::json!({"public": false}));
    assert_error(
        &alice
            .client
            .send(Method::PUT, &path, &[("description", "x".into())])
            .await,
        StatusCode::NOT_FOUND,
        "link not found",
    );
    // A random code when none is given.
    let (_, random) = alice.client.send(Method::POST, &path, &[]).await;
    assert_eq!(random["public"], true);
    assert_eq!(random["need_acceptance"], true, "acceptance is the default");
}

#[tokio::test]
async fn joining_by_link_directly_or_after_an_admin_accepts() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let stranger = app.account_in("Stranger", Some("Elsewhere")).await;
    let dave = app.account("Dave").await;
    let open = app.room(&alice, &[], &[]).await;
    alice
        .client
        .send(
            Method::POST,
            &format!("/v2/rooms/{open}/link"),
            &[
                ("code", "open-door".into()),
                ("need_acceptance", "0".into()),
            ],
        )
        .await;
    let (status, joined) = stranger
        .client
        .send(Method::POST, "/v2/links/open-door/join", &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    assert_eq!(joined["room_id"], open);
    assert_eq!(joined["status"], "joined");
    let (status, room) = stranger.client.get(&format!("/v2/rooms/{open}")).await;
    assert_eq!(status, StatusCode::OK, "{room}");
    assert_eq!(room["role"], "member");
    assert_error(
        &stranger
            .client
            .send(Method::POST, "/v2/links/open-door/join", &[])
            .await,
        StatusCode::CONFLICT,
        "member",
    );
    assert_error(
        &stranger
            .client
            .send(Method::POST, "/v2/links/no-such-code/join", &[])
            .await,
        StatusCode::NOT_FOUND,
        "link not found",
    );

    let guarded = app.room(&alice, &[], &[]).await;
    alice
        .client
        .send(
            Method::POST,
            &format!("/v2/rooms/{guarded}/link"),
            &[("code", "knock".into())],
        )
        .await;
    let (status, pending) = dave
        .client
        .send(Method::POST, "/v2/links/knock/join", &[])
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{pending}");
    assert_eq!(pending["status"], "pending");
    assert_error(
        &dave.client.get(&format!("/v2/rooms/{guarded}")).await,
        StatusCode::NOT_FOUND,
        "room not found",
    );
    let (_, requests) = eventually(
        &alice.client,
        &format!("/v2/rooms/{guarded}/join_requests"),
        |_, body| body.as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    assert_eq!(requests[0]["account_id"], dave.id);
    assert_error(
        &dave
            .client
            .send(
                Method::PUT,
                &format!("/v2/rooms/{guarded}/join_requests/{}", dave.id),
                &[],
            )
            .await,
        StatusCode::NOT_FOUND,
        "room not found",
    );
    let (status, _) = alice
        .client
        .send(
            Method::PUT,
            &format!("/v2/rooms/{guarded}/join_requests/{}", dave.id),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    eventually(
        &dave.client,
        &format!("/v2/rooms/{guarded}"),
        |status, _| status == StatusCode::OK,
    )
    .await;
    assert_error(
        &alice
            .client
            .send(
                Method::PUT,
                &format!("/v2/rooms/{guarded}/join_requests/{}", dave.id),
                &[],
            )
            .await,
        StatusCode::NOT_FOUND,
        "join request not found",
    );

    // A room created with link=1.
    let (status, created) = alice
        .client
        .send(
            Method::POST,
            "/v2/rooms",
            &[
                ("name", "Linked".into()),
                ("members_admin_ids", alice.id.to_string()),
                ("link", "1".into()),
                ("link_code", "linked-room".into()),
                ("link_need_acceptance", "0".into()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let (_, link) = alice
        .client
        .get(&format!("/v2/rooms/{}/link", created["room_id"]))
        .await;
    assert!(link["url"].as_str().unwrap().ends_with("/g/linked-room"));
    assert_eq!(link["need_acceptance"], false);
}
