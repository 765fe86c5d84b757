//! `/v2/rooms…` and members: creation, visibility, roles, bad input.

use crate::helpers::*;
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn a_created_room_is_listed_for_its_members_with_their_roles() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let carol = app.account("Carol").await;
    let room = app.room(&alice, &[&bob], &[&carol]).await;
    assert!(room < (1 << 53));

    let (status, detail) = alice.client.get(&format!("/v2/rooms/{room}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["name"], "Project");
    assert_eq!(detail["type"], "group");
    assert_eq!(detail["role"], "admin");
    assert_eq!(detail["description"], "");
    for key in [
        "sticky",
        "unread_num",
        "mention_num",
        "mytask_num",
        "message_num",
        "file_num",
        "task_num",
        "icon_path",
        "last_update_time",
    ] {
        assert!(detail.get(key).is_some(), "room lacks {key}: {detail}");
    }

    let (_, members) = bob.client.get(&format!("/v2/rooms/{room}/members")).await;
    let roles: Vec<(u64, String)> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["account_id"].as_u64().unwrap(),
                m["role"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut expected = vec![
        (alice.id, "admin".to_string()),
        (bob.id, "member".into()),
        (carol.id, "readonly".into()),
    ];
    expected.sort();
    assert_eq!(roles, expected);
    assert_eq!(members[0]["organization_name"], "Hayabusa");

    let (_, listed) = carol.client.get("/v2/rooms").await;
    let group = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room_id"] == room)
        .expect("listed for carol");
    assert_eq!(group["role"], "readonly");
    assert!(
        group.get("description").is_none(),
        "the list form has no description"
    );
}

#[tokio::test]
async fn other_users_room_ids_are_404_for_everything() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let mallory = app.account("Mallory").await;
    let room = app.room(&alice, &[&bob], &[]).await;
    let message = alice.post(room, "secret").await;
    let c = &mallory.client;
    for (method, path, form) in [
        (Method::GET, format!("/v2/rooms/{room}"), vec![]),
        (
            Method::PUT,
            format!("/v2/rooms/{room}"),
            vec![("name", "pwned".to_string())],
        ),
        (
            Method::DELETE,
            format!("/v2/rooms/{room}"),
            vec![("action_type", "delete".to_string())],
        ),
        (
            Method::DELETE,
            format!("/v2/rooms/{room}"),
            vec![("action_type", "leave".to_string())],
        ),
        (Method::GET, format!("/v2/rooms/{room}/members"), vec![]),
        (
            Method::PUT,
            format!("/v2/rooms/{room}/members"),
            vec![("members_admin_ids", mallory.id.to_string())],
        ),
        (
            Method::GET,
            format!("/v2/rooms/{room}/messages"),
            vec![("force", "1".to_string())],
        ),
        (
            Method::POST,
            format!("/v2/rooms/{room}/messages"),
            vec![("body", "hi".to_string())],
        ),
        (
            Method::PUT,
            format!("/v2/rooms/{room}/messages/read"),
            vec![],
        ),
        (
            Method::PUT,
            format!("/v2/rooms/{room}/messages/unread"),
            vec![("message_id", message.clone())],
        ),
        (
            Method::GET,
            format!("/v2/rooms/{room}/messages/{message}"),
            vec![],
        ),
        (
            Method::PUT,
            format!("/v2/rooms/{room}/messages/{message}"),
            vec![("body", "x".to_string())],
        ),
        (
            Method::DELETE,
            format!("/v2/rooms/{room}/messages/{message}"),
            vec![],
        ),
        // Alice's own "my" room, too.
        (Method::GET, format!("/v2/rooms/{}", alice.my_room), vec![]),
        (
            Method::POST,
            format!("/v2/rooms/{}/messages", alice.my_room),
            vec![("body", "hi".to_string())],
        ),
    ] {
        let answer = c.send(method.clone(), &path, &form).await;
        assert_error(&answer, StatusCode::NOT_FOUND, "not found");
    }
    // A message of that room, asked for through Mallory's own room: still 404.
    let answer = c
        .get(&format!("/v2/rooms/{}/messages/{message}", mallory.my_room))
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "message not found");
    // And nothing changed.
    let (_, detail) = alice.client.get(&format!("/v2/rooms/{room}")).await;
    assert_eq!(detail["name"], "Project");
    let (_, messages) = alice
        .client
        .send(
            Method::GET,
            &format!("/v2/rooms/{room}/messages"),
            &[("force", "1".into())],
        )
        .await;
    assert_eq!(messages[0]["body"], "secret");
}

#[tokio::test]
async fn bad_room_parameters_get_400_with_a_clear_message() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let stranger = app.account_in("Stranger", Some("Other Corp")).await;
    let post = |form: Vec<(&'static str, String)>| {
        let client = alice.client.clone();
        async move { client.send(Method::POST, "/v2/rooms", &form).await }
    };
    let me = alice.id.to_string();
    assert_error(
        &post(vec![("members_admin_ids", me.clone())]).await,
        StatusCode::BAD_REQUEST,
        "name is required",
    );
    assert_error(
        &post(vec![("name", "x".into())]).await,
        StatusCode::BAD_REQUEST,
        "members_admin_ids is required",
    );
    assert_error(
        &post(vec![("name", "x".into()), ("members_admin_ids", "".into())]).await,
        StatusCode::BAD_REQUEST,
        "members_admin_ids",
    );
    assert_error(
        &post(vec![
            ("name", "x".into()),
            ("members_admin_ids", "1,abc".into()),
        ])
        .await,
        StatusCode::BAD_REQUEST,
        "comma-separated",
    );
    assert_error(
        &post(vec![
            ("name", "n".repeat(256)),
            ("members_admin_ids", me.clone()),
        ])
        .await,
        StatusCode::BAD_REQUEST,
        "255",
    );
    assert_error(
        &post(vec![
            ("name", "x".into()),
            ("members_admin_ids", me.clone()),
            ("icon_preset", "unicorn".into()),
        ])
        .await,
        StatusCode::BAD_REQUEST,
        "icon_preset",
    );
    assert_error(
        &post(vec![
            ("name", "x".into()),
            ("members_admin_ids", format!("{me},999999")),
        ])
        .await,
        StatusCode::BAD_REQUEST,
        "unknown account ids: 999999",
    );
    assert_error(
        &post(vec![
            ("name", "x".into()),
            ("members_admin_ids", me.clone()),
            ("members_member_ids", me.clone()),
        ])
        .await,
        StatusCode::BAD_REQUEST,
        "more than once",
    );
    assert_error(
        &post(vec![
            ("name", "x".into()),
            ("members_admin_ids", format!("{me},{}", stranger.id)),
        ])
        .await,
        StatusCode::BAD_REQUEST,
        "neither in your organization nor your contacts",
    );
    assert_error(
        &alice.client.get("/v2/rooms/abc").await,
        StatusCode::BAD_REQUEST,
        "room_id",
    );
    // Nothing was created by any of these.
    let (_, rooms) = alice.client.get("/v2/rooms").await;
    assert_eq!(
        rooms.as_array().unwrap().len(),
        1,
        "only the my room: {rooms}"
    );
}

#[tokio::test]
async fn admins_change_the_room_and_its_members_and_others_get_403() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let carol = app.account("Carol").await;
    let room = app.room(&alice, &[&bob], &[]).await;
    let path = format!("/v2/rooms/{room}");

    let answer = bob
        .client
        .send(Method::PUT, &path, &[("name", "Bob's".into())])
        .await;
    assert_error(&answer, StatusCode::FORBIDDEN, "admin");
    assert_error(
        &alice.client.send(Method::PUT, &path, &[]).await,
        StatusCode::BAD_REQUEST,
        "at least one",
    );
    let (status, body) = alice
        .client
        .send(
            Method::PUT,
            &path,
            &[
                ("name", "Renamed".into()),
                ("description", "About".into()),
                ("icon_preset", "star".into()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["room_id"], room);
    let (_, detail) = alice.client.get(&path).await;
    assert_eq!(detail["name"], "Renamed");
    assert_eq!(detail["description"], "About");
    assert!(detail["icon_path"].as_str().unwrap().contains("star"));

    let members = format!("{path}/members");
    let new_list = [
        ("members_admin_ids", format!("{},{}", alice.id, bob.id)),
        ("members_readonly_ids", carol.id.to_string()),
    ];
    assert_error(
        &bob.client.send(Method::PUT, &members, &new_list).await,
        StatusCode::FORBIDDEN,
        "admin",
    );
    let (status, body) = alice.client.send(Method::PUT, &members, &new_list).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut admins = vec![alice.id, bob.id];
    admins.sort();
    assert_eq!(body["admin"], serde_json::json!(admins));
    assert_eq!(body["member"], serde_json::json!([]));
    assert_eq!(body["readonly"], serde_json::json!([carol.id]));
    // Carol now sees the room, read-only.
    let mut seen = None;
    for _ in 0..50 {
        let (status, detail) = carol.client.get(&path).await;
        if status == StatusCode::OK {
            seen = Some(detail);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(seen.expect("carol sees the room")["role"], "readonly");
    // A list without an admin is refused and changes nothing.
    let answer = alice
        .client
        .send(
            Method::PUT,
            &members,
            &[
                ("members_admin_ids", "".into()),
                ("members_member_ids", alice.id.to_string()),
            ],
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "members_admin_ids");
}

#[tokio::test]
async fn leaving_and_deleting_rooms() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let room = app.room(&alice, &[&bob], &[]).await;
    let path = format!("/v2/rooms/{room}");
    assert_error(
        &alice.client.send(Method::DELETE, &path, &[]).await,
        StatusCode::BAD_REQUEST,
        "action_type",
    );
    assert_error(
        &alice
            .client
            .send(Method::DELETE, &path, &[("action_type", "explode".into())])
            .await,
        StatusCode::BAD_REQUEST,
        "action_type",
    );
    assert_error(
        &alice
            .client
            .send(Method::DELETE, &path, &[("action_type", "leave".into())])
            .await,
        StatusCode::CONFLICT,
        "last admin",
    );
    assert_error(
        &bob.client
            .send(Method::DELETE, &path, &[("action_type", "delete".into())])
            .await,
        StatusCode::FORBIDDEN,
        "admin",
    );
    let (status, _) = bob
        .client
        .send(Method::DELETE, &path, &[("action_type", "leave".into())])
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &bob.client.get(&path).await,
        StatusCode::NOT_FOUND,
        "room not found",
    );

    let room2 = app.room(&alice, &[&bob], &[]).await;
    let path2 = format!("/v2/rooms/{room2}");
    let (status, _) = alice
        .client
        .send(Method::DELETE, &path2, &[("action_type", "delete".into())])
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &alice.client.get(&path2).await,
        StatusCode::NOT_FOUND,
        "room not found",
    );
    let (_, rooms) = alice.client.get("/v2/rooms").await;
    assert!(
        rooms
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["room_id"] != room2),
        "{rooms}"
    );
    // The my room cannot be left or deleted.
    let my = format!("/v2/rooms/{}", alice.my_room);
    assert_error(
        &alice
            .client
            .send(Method::DELETE, &my, &[("action_type", "delete".into())])
            .await,
        StatusCode::BAD_REQUEST,
        "my chat",
    );
}
