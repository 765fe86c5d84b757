//! Hostile input at the boundary: ids out of range, invalid UTF-8, names with bidi
//! controls, oversized descriptions, echoed input, and join requests asked for by
//! members who are not admins.

use crate::helpers::*;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Ids that no JavaScript-safe id can be: 2^53, i64::MAX, i64::MAX + 1, u64::MAX,
/// u64::MAX + 1 and a 30-digit number.
const TOO_LARGE: &[&str] = &[
    "9007199254740992",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "100000000000000000000000000000",
];
/// Ids above the largest message id (i64::MAX).
const TOO_LARGE_FOR_A_MESSAGE: &[&str] = &[
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "100000000000000000000000000000",
];
/// Not ids at all.
const MALFORMED: &[&str] = &["-1", "0", "-9223372036854775809", "1e3", "+5"];

fn describe(method: &Method, path: &str, answer: &(StatusCode, Value)) -> String {
    format!("{method} {path} → {} {}", answer.0, answer.1)
}

#[track_caller]
fn assert_json_error(
    method: &Method,
    path: &str,
    answer: &(StatusCode, Value),
    status: StatusCode,
) {
    assert_eq!(answer.0, status, "{}", describe(method, path, answer));
    assert!(
        answer.1["errors"].as_array().is_some_and(|e| !e.is_empty()),
        "{}",
        describe(method, path, answer)
    );
}

#[tokio::test]
async fn path_ids_out_of_range_are_404_and_malformed_ones_400_never_500() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let room = app.room(&alice, &[&bob], &[]).await;
    let message = alice.post(room, "hello").await;

    // (method, path with X for the id, what the 404 names)
    let routes: Vec<(Method, String, &str)> = vec![
        (Method::GET, "/v2/rooms/X".into(), "room"),
        (Method::PUT, "/v2/rooms/X".into(), "room"),
        (Method::DELETE, "/v2/rooms/X".into(), "room"),
        (Method::GET, "/v2/rooms/X/members".into(), "room"),
        (Method::PUT, "/v2/rooms/X/members".into(), "room"),
        (Method::GET, "/v2/rooms/X/messages".into(), "room"),
        (Method::POST, "/v2/rooms/X/messages".into(), "room"),
        (Method::PUT, "/v2/rooms/X/messages/read".into(), "room"),
        (Method::PUT, "/v2/rooms/X/messages/unread".into(), "room"),
        (
            Method::GET,
            format!("/v2/rooms/X/messages/{message}"),
            "room",
        ),
        (Method::GET, "/v2/rooms/X/tasks".into(), "room"),
        (Method::POST, "/v2/rooms/X/tasks".into(), "room"),
        (Method::GET, "/v2/rooms/X/tasks/1".into(), "room"),
        (Method::GET, format!("/v2/rooms/{room}/tasks/X"), "task"),
        (
            Method::PUT,
            format!("/v2/rooms/{room}/tasks/X/status"),
            "task",
        ),
        (Method::GET, "/v2/rooms/X/files".into(), "room"),
        (Method::POST, "/v2/rooms/X/files".into(), "room"),
        (Method::GET, format!("/v2/rooms/{room}/files/X"), "file"),
        (Method::GET, "/v2/rooms/X/link".into(), "room"),
        (Method::POST, "/v2/rooms/X/link".into(), "room"),
        (Method::PUT, "/v2/rooms/X/link".into(), "room"),
        (Method::DELETE, "/v2/rooms/X/link".into(), "room"),
        (Method::GET, "/v2/rooms/X/join_requests".into(), "room"),
        (Method::PUT, "/v2/rooms/X/join_requests/1".into(), "room"),
        (
            Method::PUT,
            format!("/v2/rooms/{room}/join_requests/X"),
            "join request",
        ),
        (
            Method::DELETE,
            format!("/v2/rooms/{room}/join_requests/X"),
            "join request",
        ),
        (Method::DELETE, "/v2/contacts/X".into(), "contact"),
        (Method::PUT, "/v2/incoming_requests/X".into(), "request"),
        (Method::DELETE, "/v2/incoming_requests/X".into(), "request"),
        (
            Method::PUT,
            "/v2/incoming_requests/X/accept".into(),
            "request",
        ),
        (
            Method::PUT,
            "/v2/incoming_requests/X/reject".into(),
            "request",
        ),
    ];
    for (method, template, what) in &routes {
        for id in TOO_LARGE {
            let path = template.replace('X', id);
            let answer = alice.client.send(method.clone(), &path, &[]).await;
            assert_json_error(method, &path, &answer, StatusCode::NOT_FOUND);
            assert_error(&answer, StatusCode::NOT_FOUND, &format!("{what} not found"));
        }
        for id in MALFORMED {
            let path = template.replace('X', id);
            let answer = alice.client.send(method.clone(), &path, &[]).await;
            assert_json_error(method, &path, &answer, StatusCode::BAD_REQUEST);
        }
    }
    // Message ids go up to i64::MAX (they are strings in the API).
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        for id in TOO_LARGE_FOR_A_MESSAGE
            .iter()
            .chain(["9007199254740992"].iter())
        {
            let path = format!("/v2/rooms/{room}/messages/{id}");
            let answer = alice
                .client
                .send(method.clone(), &path, &[("body", "x".into())])
                .await;
            assert_json_error(&method, &path, &answer, StatusCode::NOT_FOUND);
            assert_error(&answer, StatusCode::NOT_FOUND, "message not found");
        }
        for id in MALFORMED {
            let path = format!("/v2/rooms/{room}/messages/{id}");
            let answer = alice.client.send(method.clone(), &path, &[]).await;
            assert_json_error(&method, &path, &answer, StatusCode::BAD_REQUEST);
        }
    }
    // A signed download with an impossible id is simply not valid.
    for id in TOO_LARGE {
        let path = format!("/v2/files/download/{id}/{id}?expires=1&signature=x");
        let answer = read(reqwest::get(format!("{}{path}", app.base)).await.unwrap()).await;
        assert_json_error(&Method::GET, &path, &answer, StatusCode::FORBIDDEN);
    }
    // Nothing changed: the room, its one message and its members are as they were.
    let (status, messages) = bob
        .client
        .send(
            Method::GET,
            &format!("/v2/rooms/{room}/messages"),
            &[("force", "1".into())],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(messages.as_array().unwrap().len(), 1);
    let (_, members) = bob.client.get(&format!("/v2/rooms/{room}/members")).await;
    assert_eq!(members.as_array().unwrap().len(), 2);
}

/// A request with an id parameter: method, path, parameters (X for the id) and the
/// parameter an error must name.
type ParamCase<'a> = (Method, &'a str, Vec<(&'a str, String)>, &'a str);

#[tokio::test]
async fn id_parameters_out_of_range_are_400_never_500() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let room = app.room(&alice, &[&bob], &[]).await;
    let me = alice.id.to_string();
    let rooms_path = format!("/v2/rooms/{room}");
    let members_path = format!("/v2/rooms/{room}/members");
    let tasks_path = format!("/v2/rooms/{room}/tasks");
    let files_path = format!("/v2/rooms/{room}/files");
    let read_path = format!("/v2/rooms/{room}/messages/read");
    let unread_path = format!("/v2/rooms/{room}/messages/unread");

    // (method, path, the parameters with X for the id, the parameter named)
    let cases: Vec<ParamCase> = vec![
        (
            Method::POST,
            "/v2/rooms",
            vec![("name", "n".into()), ("members_admin_ids", "X".into())],
            "members_admin_ids",
        ),
        (
            Method::POST,
            "/v2/rooms",
            vec![
                ("name", "n".into()),
                ("members_admin_ids", me.clone()),
                ("members_member_ids", format!("{},X", bob.id)),
            ],
            "members_member_ids",
        ),
        (
            Method::POST,
            "/v2/rooms",
            vec![
                ("name", "n".into()),
                ("members_admin_ids", me.clone()),
                ("members_readonly_ids", "X".into()),
            ],
            "members_readonly_ids",
        ),
        (
            Method::PUT,
            &members_path,
            vec![("members_admin_ids", format!("{me},X"))],
            "members_admin_ids",
        ),
        (
            Method::PUT,
            &members_path,
            vec![
                ("members_admin_ids", me.clone()),
                ("members_member_ids", "X".into()),
            ],
            "members_member_ids",
        ),
        (
            Method::PUT,
            &members_path,
            vec![
                ("members_admin_ids", me.clone()),
                ("members_readonly_ids", "X".into()),
            ],
            "members_readonly_ids",
        ),
        (
            Method::POST,
            &tasks_path,
            vec![("body", "do".into()), ("to_ids", "X".into())],
            "to_ids",
        ),
        (
            Method::GET,
            &tasks_path,
            vec![("account_id", "X".into())],
            "account_id",
        ),
        (
            Method::GET,
            &tasks_path,
            vec![("assigned_by_account_id", "X".into())],
            "assigned_by_account_id",
        ),
        (
            Method::GET,
            "/v2/my/tasks",
            vec![("assigned_by_account_id", "X".into())],
            "assigned_by_account_id",
        ),
        (
            Method::GET,
            &files_path,
            vec![("account_id", "X".into())],
            "account_id",
        ),
        (
            Method::POST,
            "/v2/contacts/requests",
            vec![("account_id", "X".into())],
            "account_id",
        ),
        (
            Method::PUT,
            &read_path,
            vec![("message_id", "X".into())],
            "message_id",
        ),
        (
            Method::PUT,
            &unread_path,
            vec![("message_id", "X".into())],
            "message_id",
        ),
    ];
    for (method, path, params, name) in &cases {
        let too_large: &[&str] = if *name == "message_id" {
            TOO_LARGE_FOR_A_MESSAGE
        } else {
            TOO_LARGE
        };
        for id in too_large.iter().chain(MALFORMED) {
            let params: Vec<(&str, String)> = params
                .iter()
                .map(|(k, v)| (*k, v.replace('X', id)))
                .collect();
            let answer = alice.client.send(method.clone(), path, &params).await;
            assert_json_error(method, path, &answer, StatusCode::BAD_REQUEST);
            assert_error(&answer, StatusCode::BAD_REQUEST, name);
        }
    }
    // Nothing changed.
    let (_, rooms) = alice.client.get("/v2/rooms").await;
    assert_eq!(rooms.as_array().unwrap().len(), 2, "{rooms}");
    let (_, members) = alice.client.get(&members_path).await;
    assert_eq!(members.as_array().unwrap().len(), 2);
    let (status, _) = alice.client.get(&rooms_path).await;
    assert_eq!(status, StatusCode::OK);
    let (status, tasks) = alice.client.get(&tasks_path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tasks.as_array().map_or(0, Vec::len), 0);
    let (_, requests) = bob.client.get("/v2/incoming_requests").await;
    assert_eq!(requests.as_array().map_or(0, Vec::len), 0);
}

#[tokio::test]
async fn invalid_utf8_in_a_form_value_or_query_string_is_refused_and_names_the_parameter() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let room = app.room(&alice, &[], &[]).await;
    let path = format!("/v2/rooms/{room}/messages");
    let form = |body: &'static str| {
        alice
            .client
            .request(Method::POST, &path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    for body in [
        "body=%FF",
        "body=ok%C3",
        "body=%ED%A0%80",
        "self_unread=0&body=a%FFb",
    ] {
        let answer = read(form(body).send().await.unwrap()).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "body");
        assert_error(&answer, StatusCode::BAD_REQUEST, "UTF-8");
    }
    // Parameters in the query string (as some clients send them with POST).
    let answer = read(
        alice
            .client
            .request(Method::POST, &format!("{path}?body=%FF"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "body");
    let answer = read(
        alice
            .client
            .request(Method::GET, &format!("{path}?force=%FE"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "force");
    // A multipart text part.
    let answer = read(
        alice
            .client
            .request(Method::POST, &format!("/v2/rooms/{room}/files"))
            .multipart(
                Form::new()
                    .part("file", Part::bytes(b"x".to_vec()).file_name("a.txt"))
                    .part("message", Part::bytes(vec![b'a', 0xFF])),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "message");
    // Nothing was posted; valid percent-encoded UTF-8 and '+' still work.
    let (status, _) = alice
        .client
        .send(Method::GET, &path, &[("force", "1".into())])
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let answer = read(form("body=caf%C3%A9+au+lait").send().await.unwrap()).await;
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
    let (_, messages) = alice
        .client
        .send(Method::GET, &path, &[("force", "1".into())])
        .await;
    assert_eq!(messages[0]["body"], "café au lait");
}

#[tokio::test]
async fn error_messages_echo_only_a_little_of_the_input() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let me = alice.id.to_string();
    // 20,000 ids that are no account: the answer names a few of them.
    let unknown: Vec<String> = (1..=20_000u64)
        .map(|i| (i * 7 + 1_000_000).to_string())
        .collect();
    let answer = alice
        .client
        .send(
            Method::POST,
            "/v2/rooms",
            &[
                ("name", "n".into()),
                ("members_admin_ids", me.clone()),
                ("members_member_ids", unknown.join(",")),
            ],
        )
        .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "unknown account ids: 1000007,",
    );
    let text = answer.1.to_string();
    assert!(
        text.len() < 500,
        "{} bytes echoed: {}…",
        text.len(),
        &text[..500]
    );
    // One enormous malformed id.
    let answer = alice
        .client
        .send(
            Method::POST,
            "/v2/rooms",
            &[
                ("name", "n".into()),
                ("members_admin_ids", format!("{me},{}", "x".repeat(500_000))),
            ],
        )
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "members_admin_ids");
    let text = answer.1.to_string();
    assert!(text.len() < 500, "{} bytes echoed", text.len());
}

#[tokio::test]
async fn room_descriptions_are_limited_to_65535_characters() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let me = alice.id.to_string();
    let create = |description: String| {
        let me = me.clone();
        let client = alice.client.clone();
        async move {
            client
                .send(
                    Method::POST,
                    "/v2/rooms",
                    &[
                        ("name", "n".into()),
                        ("members_admin_ids", me),
                        ("description", description),
                    ],
                )
                .await
        }
    };
    assert_error(
        &create("é".repeat(65_536)).await,
        StatusCode::BAD_REQUEST,
        "65535",
    );
    let (status, created) = create("é".repeat(65_535)).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let room = created["room_id"].as_u64().unwrap();
    let path = format!("/v2/rooms/{room}");
    assert_error(
        &alice
            .client
            .send(Method::PUT, &path, &[("description", "d".repeat(900_000))])
            .await,
        StatusCode::BAD_REQUEST,
        "description",
    );
    let (_, view) = alice.client.get(&path).await;
    assert_eq!(
        view["description"].as_str().unwrap().chars().count(),
        65_535
    );
}

#[tokio::test]
async fn pending_join_requests_are_shown_to_the_room_s_admins_only() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let carol = app.account("Carol").await;
    let dave = app.account("Dave").await;
    let erin = app.account("Erin").await;
    let room = app.room(&alice, &[&bob], &[&carol]).await;
    let (status, link) = alice
        .client
        .send(
            Method::POST,
            &format!("/v2/rooms/{room}/link"),
            &[
                ("code", "knock-knock".into()),
                ("need_acceptance", "1".into()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{link}");
    let (status, pending) = dave
        .client
        .send(Method::POST, "/v2/links/knock-knock/join", &[])
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{pending}");
    let path = format!("/v2/rooms/{room}/join_requests");
    let (_, requests) = eventually(&alice.client, &path, |status, body| {
        status == StatusCode::OK && body.as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(requests[0]["account_id"], dave.id);
    assert_error(
        &bob.client.get(&path).await,
        StatusCode::FORBIDDEN,
        "admins",
    );
    assert_error(
        &carol.client.get(&path).await,
        StatusCode::FORBIDDEN,
        "admins",
    );
    assert_error(
        &erin.client.get(&path).await,
        StatusCode::NOT_FOUND,
        "room not found",
    );
    assert_error(
        &dave.client.get(&path).await,
        StatusCode::NOT_FOUND,
        "room not found",
    );
}

#[tokio::test]
async fn bidi_controls_and_invisible_characters_are_stripped_from_every_name() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let room = app.room(&alice, &[], &[]).await;

    // File names.
    let (status, answer) = upload_file(
        &alice,
        room,
        "invoice\u{202E}gpj.exe",
        b"MZ".to_vec(),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let file = answer["file_id"].as_u64().unwrap();
    let (_, view) = alice
        .client
        .get(&format!("/v2/rooms/{room}/files/{file}"))
        .await;
    assert_eq!(view["filename"], "invoicegpj.exe");

    // Room names, on create and update.
    let (status, created) = alice
        .client
        .send(
            Method::POST,
            "/v2/rooms",
            &[
                (
                    "name",
                    "Pay\u{2067}roll\u{2069}\u{200F} 2026\u{200B}".into(),
                ),
                ("members_admin_ids", alice.id.to_string()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let created = created["room_id"].as_u64().unwrap();
    let (_, view) = alice.client.get(&format!("/v2/rooms/{created}")).await;
    assert_eq!(view["name"], "Payroll 2026");
    let (status, _) = alice
        .client
        .send(
            Method::PUT,
            &format!("/v2/rooms/{created}"),
            &[("name", "\u{202D}Renamed\u{061C}".into())],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, view) = alice.client.get(&format!("/v2/rooms/{created}")).await;
    assert_eq!(view["name"], "Renamed");
    // A name of nothing but controls is empty.
    assert_error(
        &alice
            .client
            .send(
                Method::PUT,
                &format!("/v2/rooms/{created}"),
                &[("name", "\u{202E}\u{2066}\u{FEFF}".into())],
            )
            .await,
        StatusCode::BAD_REQUEST,
        "name",
    );

    // Account name, organization, department and title.
    let (status, account) = app
        .admin
        .send(
            Method::POST,
            "/v2/accounts",
            &[
                ("name", "Mallory\u{202E}nimda".into()),
                ("organization_name", "Ev\u{200E}il Corp".into()),
                ("department", "Sales\u{2066}".into()),
                ("title", "\u{202B}Boss".into()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{account}");
    assert_eq!(account["name"], "Mallorynimda");
    assert_eq!(account["organization_name"], "Evil Corp");
    assert_eq!(account["department"], "Sales");
    assert_eq!(account["title"], "Boss");
    let mallory = Client::new(&app.base, account["token"].as_str().unwrap());
    let (_, me) = mallory.get("/v2/me").await;
    assert_eq!(me["name"], "Mallorynimda");
    // Right-to-left text and joiners stay as typed.
    let (status, account) = app
        .admin
        .send(
            Method::POST,
            "/v2/accounts",
            &[("name", "می\u{200C}خواهم 👨\u{200D}👩\u{200D}👧".into())],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{account}");
    assert_eq!(account["name"], "می\u{200C}خواهم 👨\u{200D}👩\u{200D}👧");
}
