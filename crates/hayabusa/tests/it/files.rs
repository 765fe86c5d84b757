//! Files: upload, list, signed downloads, limits, hostile names.

use crate::helpers::*;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};

async fn upload(
    user: &User,
    room: u64,
    name: &str,
    content: Vec<u8>,
    message: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let mut form = Form::new().part("file", Part::bytes(content).file_name(name.to_string()));
    if let Some(message) = message {
        // Some clients send the message part with a file name: still text.
        form = form.part(
            "message",
            Part::text(message.to_string()).file_name("message.txt"),
        );
    }
    let response = user
        .client
        .request(Method::POST, &format!("/v2/rooms/{room}/files"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    read(response).await
}

#[tokio::test]
async fn a_file_is_uploaded_listed_and_downloaded_through_a_signed_url() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let room = app.room(&alice, &[&bob], &[]).await;
    let (status, answer) = upload(
        &alice,
        room,
        "report.txt",
        b"hello file".to_vec(),
        Some("see attached"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let file = answer["file_id"].as_u64().unwrap();

    // Bob reads Alice's upload a moment after it was acknowledged.
    let (_, files) = eventually(
        &bob.client,
        &format!("/v2/rooms/{room}/files"),
        |_, body| body.as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    assert_eq!(files.as_array().unwrap().len(), 1);
    assert_eq!(files[0]["filename"], "report.txt");
    assert_eq!(files[0]["filesize"], 10);
    assert_eq!(files[0]["account"]["account_id"], alice.id);
    let (_, none) = bob
        .client
        .send(
            Method::GET,
            &format!("/v2/rooms/{room}/files"),
            &[("account_id", bob.id.to_string())],
        )
        .await;
    assert_eq!(none, serde_json::json!([]));
    // The upload posted a message with the text.
    let (_, messages) = bob
        .client
        .send(
            Method::GET,
            &format!("/v2/rooms/{room}/messages"),
            &[("force", "1".into())],
        )
        .await;
    assert!(
        messages[0]["body"]
            .as_str()
            .unwrap()
            .starts_with("see attached")
    );
    let (_, room_view) = alice.client.get(&format!("/v2/rooms/{room}")).await;
    assert_eq!(room_view["file_num"], 1);

    let (_, plain) = bob
        .client
        .get(&format!("/v2/rooms/{room}/files/{file}"))
        .await;
    assert!(plain.get("download_url").is_none());
    let (_, detail) = bob
        .client
        .send(
            Method::GET,
            &format!("/v2/rooms/{room}/files/{file}"),
            &[("create_download_url", "1".into())],
        )
        .await;
    let url = detail["download_url"].as_str().unwrap().to_string();
    // No token needed: the signature authorises.
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"report.txt\"")
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"hello file");

    // A forged or tampered signature, or another file id under the same signature: 403.
    let forged = url.replace("signature=", "signature=00");
    assert_eq!(
        reqwest::get(&forged).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let expired = url.split("expires=").next().unwrap().to_string() + "expires=1000&signature=abcd";
    let answer = read(reqwest::get(&expired).await.unwrap()).await;
    assert_error(&answer, StatusCode::FORBIDDEN, "expired");
    let other_file = url.replace(&format!("/{file}?"), &format!("/{}?", file + 1));
    assert_eq!(
        reqwest::get(&other_file).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn uploads_are_limited_checked_and_hostile_names_are_harmless() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let carol = app.account("Carol").await;
    let outsider = app.account("Mallory").await;
    let room = app.room(&alice, &[], &[&carol]).await;

    let limit = 5 * 1024 * 1024;
    let (status, answer) = upload(&alice, room, "big.bin", vec![0u8; limit + 1], None).await;
    assert_error(
        &(status, answer),
        StatusCode::PAYLOAD_TOO_LARGE,
        "larger than",
    );
    let (status, answer) = upload(&alice, room, "max.bin", vec![1u8; limit], None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    assert_error(
        &upload(&carol, room, "a.txt", b"x".to_vec(), None).await,
        StatusCode::FORBIDDEN,
        "readonly",
    );
    assert_error(
        &upload(&outsider, room, "a.txt", b"x".to_vec(), None).await,
        StatusCode::NOT_FOUND,
        "room not found",
    );
    let no_file = read(
        alice
            .client
            .request(Method::POST, &format!("/v2/rooms/{room}/files"))
            .multipart(Form::new().text("message", "only text"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&no_file, StatusCode::BAD_REQUEST, "file is required");
    let not_multipart = alice
        .client
        .send(
            Method::POST,
            &format!("/v2/rooms/{room}/files"),
            &[("file", "x".into())],
        )
        .await;
    assert_error(&not_multipart, StatusCode::BAD_REQUEST, "multipart");

    let long_name = format!("{}.txt", "n".repeat(5000));
    for (name, stored) in [
        ("../../etc/passwd", "passwd".to_string()),
        ("tab\there.txt", "tabhere.txt".to_string()),
        (
            "quote\"; filename=x.exe",
            "quote\"; filename=x.exe".to_string(),
        ),
        (long_name.as_str(), "n".repeat(255)),
    ] {
        let (status, answer) = upload(&alice, room, name, b"payload".to_vec(), None).await;
        assert_eq!(status, StatusCode::OK, "{name}: {answer}");
        let file = answer["file_id"].as_u64().unwrap();
        let (_, detail) = alice
            .client
            .send(
                Method::GET,
                &format!("/v2/rooms/{room}/files/{file}"),
                &[("create_download_url", "1".into())],
            )
            .await;
        assert_eq!(detail["filename"], stored.as_str());
        let response = reqwest::get(detail["download_url"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let disposition = response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(!disposition.contains('/'), "{disposition}");
        assert_eq!(
            disposition.matches('"').count(),
            2,
            "exactly one quoted name: {disposition}"
        );
        assert_eq!(response.bytes().await.unwrap().as_ref(), b"payload");
    }
    // A raw NUL in a part header is not valid multipart: refused, nothing stored.
    let (status, answer) = upload(&alice, room, "evil\u{0}name.txt", b"x".to_vec(), None).await;
    assert_error(&(status, answer), StatusCode::BAD_REQUEST, "multipart");
    // Nothing escaped the data directory.
    assert!(!app.data_dir().join("etc").exists());
    assert!(!std::path::Path::new("/etc/passwd.partial").exists());
    // Other users' file ids: 404, also through their own rooms.
    let (_, files) = alice.client.get(&format!("/v2/rooms/{room}/files")).await;
    let file = files[0]["file_id"].as_u64().unwrap();
    assert_error(
        &outsider
            .client
            .get(&format!("/v2/rooms/{room}/files/{file}"))
            .await,
        StatusCode::NOT_FOUND,
        "not found",
    );
    assert_error(
        &outsider
            .client
            .get(&format!("/v2/rooms/{}/files/{file}", outsider.my_room))
            .await,
        StatusCode::NOT_FOUND,
        "file not found",
    );
}
