//! Contacts: request, approve (direct room), reject, remove; cross-organization rooms.

use crate::helpers::*;
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn a_request_approved_makes_contacts_with_a_direct_room_across_organizations() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let olga = app.account_in("Olga", Some("Other Corp")).await;
    let (status, requested) = alice
        .client
        .send(
            Method::POST,
            "/v2/contacts/requests",
            &[
                ("account_id", olga.id.to_string()),
                ("message", "Hi Olga".into()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{requested}");
    let (_, incoming) = eventually(&olga.client, "/v2/incoming_requests", |_, body| {
        body.as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let list = incoming.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["account_id"], alice.id);
    assert_eq!(list[0]["name"], "Alice");
    assert_eq!(list[0]["message"], "Hi Olga");
    let request = list[0]["request_id"].as_u64().unwrap();
    assert_eq!(requested["request_id"], request);

    // Only the addressee may approve; others get 404.
    assert_error(
        &alice
            .client
            .send(
                Method::PUT,
                &format!("/v2/incoming_requests/{request}"),
                &[],
            )
            .await,
        StatusCode::NOT_FOUND,
        "request not found",
    );
    let (status, contact) = olga
        .client
        .send(
            Method::PUT,
            &format!("/v2/incoming_requests/{request}"),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{contact}");
    assert_eq!(contact["account_id"], alice.id);
    let direct = contact["room_id"].as_u64().unwrap();
    let (_, olga_incoming) = olga.client.get("/v2/incoming_requests").await;
    assert_eq!(olga_incoming, serde_json::json!([]));

    let (_, alice_contacts) = eventually(&alice.client, "/v2/contacts", |_, body| {
        body.as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(alice_contacts[0]["account_id"], olga.id);
    assert_eq!(alice_contacts[0]["room_id"], direct);
    assert_eq!(alice_contacts[0]["organization_name"], "Other Corp");
    // The direct room works for both.
    let (status, room) = olga.client.get(&format!("/v2/rooms/{direct}")).await;
    assert_eq!(status, StatusCode::OK, "{room}");
    assert_eq!(room["type"], "direct");
    olga.post(direct, "hello Alice").await;
    // A contact may be added to a group room across organizations.
    let group = app.room(&alice, &[&olga], &[]).await;
    assert!(group > 0);

    // Removing the contact removes it for both.
    let (status, _) = olga
        .client
        .send(Method::DELETE, &format!("/v2/contacts/{}", alice.id), &[])
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    eventually(&alice.client, "/v2/contacts", |_, body| {
        body == &serde_json::json!([])
    })
    .await;
    assert_error(
        &olga
            .client
            .send(Method::DELETE, &format!("/v2/contacts/{}", alice.id), &[])
            .await,
        StatusCode::NOT_FOUND,
        "contact not found",
    );
}

#[tokio::test]
async fn requests_are_rejected_and_bad_ones_refused() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let carol = app.account("Carol").await;
    let request = |client: &Client, to: String| {
        let client = client.clone();
        async move {
            client
                .send(Method::POST, "/v2/contacts/requests", &[("account_id", to)])
                .await
        }
    };
    assert_error(
        &request(&alice.client, "".into()).await,
        StatusCode::BAD_REQUEST,
        "account_id",
    );
    assert_error(
        &request(&alice.client, "abc".into()).await,
        StatusCode::BAD_REQUEST,
        "account_id",
    );
    assert_error(
        &request(&alice.client, "999999".into()).await,
        StatusCode::BAD_REQUEST,
        "unknown account",
    );
    assert_error(
        &request(&alice.client, alice.id.to_string()).await,
        StatusCode::BAD_REQUEST,
        "yourself",
    );
    let (status, first) = request(&alice.client, bob.id.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_error(
        &request(&alice.client, bob.id.to_string()).await,
        StatusCode::CONFLICT,
        "pending",
    );
    assert_error(
        &request(&bob.client, alice.id.to_string()).await,
        StatusCode::CONFLICT,
        "approve it",
    );
    let id = first["request_id"].as_u64().unwrap();
    // Carol cannot see or touch Bob's request.
    assert_eq!(
        carol.client.get("/v2/incoming_requests").await.1,
        serde_json::json!([])
    );
    assert_error(
        &carol
            .client
            .send(Method::DELETE, &format!("/v2/incoming_requests/{id}"), &[])
            .await,
        StatusCode::NOT_FOUND,
        "request not found",
    );
    // Reject through the MCP-style path.
    let (status, _) = bob
        .client
        .send(
            Method::PUT,
            &format!("/v2/incoming_requests/{id}/reject"),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        bob.client.get("/v2/incoming_requests").await.1,
        serde_json::json!([])
    );
    assert_eq!(
        alice.client.get("/v2/contacts").await.1,
        serde_json::json!([])
    );
    // A new request after a rejection, accepted through /accept.
    let (_, again) = request(&alice.client, bob.id.to_string()).await;
    let id = again["request_id"].as_u64().unwrap();
    let (status, contact) = bob
        .client
        .send(
            Method::PUT,
            &format!("/v2/incoming_requests/{id}/accept"),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{contact}");
    assert_error(
        &request(&alice.client, bob.id.to_string()).await,
        StatusCode::CONFLICT,
        "contacts already",
    );
}
