//! ChatWork request conventions that real clients rely on.

use crate::helpers::*;
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn post_parameters_may_come_in_the_query_string_and_method_may_be_overridden() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let room = app.room(&alice, &[], &[]).await;
    // POST with the parameters in the query string and an empty body.
    let answer = read(
        alice
            .client
            .request(
                Method::POST,
                &format!("/v2/rooms/{room}/messages?body=from%20the%20query"),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
    let message = answer.1["message_id"].as_str().unwrap().to_string();
    // POST ?method=PUT edits.
    let answer = read(
        alice
            .client
            .request(
                Method::POST,
                &format!("/v2/rooms/{room}/messages/{message}?method=PUT"),
            )
            .form(&[("body", "overridden")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
    // POST ?method=DELETE deletes.
    let answer = read(
        alice
            .client
            .request(
                Method::POST,
                &format!("/v2/rooms/{room}/messages/{message}?method=delete"),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
    assert_error(
        &alice
            .client
            .get(&format!("/v2/rooms/{room}/messages/{message}"))
            .await,
        StatusCode::NOT_FOUND,
        "message not found",
    );
}

#[tokio::test]
async fn a_form_content_type_on_get_and_delete_is_tolerated() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let room = app.room(&alice, &[], &[]).await;
    alice.post(room, "x").await;
    let answer = read(
        alice
            .client
            .request(Method::GET, &format!("/v2/rooms/{room}/messages"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("force=1")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.0, StatusCode::OK);
    assert_eq!(answer.1.as_array().unwrap().len(), 1);
    let answer = read(
        alice
            .client
            .request(Method::DELETE, &format!("/v2/rooms/{room}"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("action_type=delete")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.0, StatusCode::NO_CONTENT, "{}", answer.1);
}

#[tokio::test]
async fn unknown_paths_wrong_methods_and_odd_bodies_get_chatwork_errors() {
    let app = spawn_app().await;
    assert_error(
        &app.admin.get("/v2/nothing-here").await,
        StatusCode::NOT_FOUND,
        "no such endpoint",
    );
    assert_error(
        &app.admin.send(Method::PATCH, "/v2/rooms", &[]).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed",
    );
    let json_body = read(
        app.admin
            .request(Method::POST, "/v2/rooms")
            .header("Content-Type", "application/json")
            .body("{\"name\":\"x\"}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(
        &json_body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "x-www-form-urlencoded",
    );
    let not_utf8 = read(
        app.admin
            .request(Method::POST, "/v2/rooms")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(vec![0xff, 0xfe, b'=', 0x80])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&not_utf8, StatusCode::BAD_REQUEST, "UTF-8");
    let huge = read(
        app.admin
            .request(Method::POST, "/v2/rooms")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(vec![b'a'; 2 * 1024 * 1024])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&huge, StatusCode::PAYLOAD_TOO_LARGE, "too large");
    let (status, health) = read(reqwest::get(format!("{}/healthz", app.base)).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "ok");
}

#[tokio::test]
async fn metrics_are_served_in_prometheus_text_format() {
    let app = spawn_app().await;
    app.admin.get("/v2/me").await;
    // A write and its projection, counted by the event log and the projector (the
    // writer's own next read waits for the projection).
    let alice = app.account("Alice").await;
    alice.post(alice.my_room, "counted").await;
    let (status, _) = alice
        .client
        .get(&format!("/v2/rooms/{}/messages?force=1", alice.my_room))
        .await;
    assert_eq!(status, StatusCode::OK);
    let response = reqwest::get(format!("{}/metrics", app.base)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    assert!(text.contains("hayabusa_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/v2/me\""), "{text}");
    assert!(text.contains("hayabusa_event_log_head_position"), "{text}");
    assert!(text.contains("hayabusa_projection_lag_events"), "{text}");
    // Group commit and projection batching, as counters (rates and ratios in PromQL).
    for counter in [
        "hayabusa_event_log_commits_total",
        "hayabusa_event_log_appended_events_total",
        "hayabusa_projector_batches_total",
        "hayabusa_projector_events_total",
    ] {
        let value = text
            .lines()
            .find_map(|line| line.strip_prefix(counter)?.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {counter} in {text}"));
        assert!(value >= 1.0, "{counter} = {value}");
    }
}
