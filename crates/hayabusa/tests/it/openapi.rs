//! The served OpenAPI document describes what the server sends. A realistic flow
//! through every resource checks each answer against the document's entry for its
//! operation: the status must be listed, a JSON answer must say `application/json`,
//! and its body must match the listed schema — strictly, with no undocumented field —
//! so a DTO or handler that drifts from the document fails here.

use crate::helpers::*;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

/// The served document, and its component schemas made strict.
struct Contract {
    doc: Value,
    components: Value,
}

/// Forbids properties an object schema does not list, at every depth.
fn strict(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(strict);
        }
        Value::Array(items) => items.iter_mut().for_each(strict),
        _ => {}
    }
}

impl Contract {
    async fn load(app: &TestApp) -> Contract {
        let response = reqwest::get(format!("{}/v2/openapi.json", app.base))
            .await
            .expect("document fetched");
        assert_eq!(response.status(), StatusCode::OK);
        let doc: Value = response.json().await.expect("the document is JSON");
        let mut components = doc["components"].clone();
        strict(&mut components);
        let contract = Contract { doc, components };
        // The document is an answer too: `GET /v2/openapi.json` is in the document.
        contract.check(
            &Method::GET,
            "/v2/openapi.json",
            StatusCode::OK,
            Some("application/json"),
            &contract.doc,
        );
        contract
    }

    /// Follows a `$ref` within the document.
    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => self
                .doc
                .pointer(reference.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling {reference}")),
            None => value,
        }
    }

    /// Checks one answer against the document.
    fn check(
        &self,
        method: &Method,
        template: &str,
        status: StatusCode,
        content_type: Option<&str>,
        body: &Value,
    ) {
        let operation = &self.doc["paths"][template][method.as_str().to_ascii_lowercase()];
        assert!(
            operation.is_object(),
            "{method} {template} is not in the document"
        );
        let documented = &operation["responses"][status.as_str()];
        assert!(
            documented.is_object(),
            "{method} {template} answered {status}, which the document does not list: {body}"
        );
        let response = self.resolve(documented);
        let Some(content) = response.get("content").and_then(Value::as_object) else {
            assert!(
                body.is_null(),
                "{method} {template} {status}: documented without a body, answered {body}"
            );
            return;
        };
        let Some(schema) = content.get("application/json").map(|c| &c["schema"]) else {
            return; // Bytes (a download, the metrics): no JSON schema to check.
        };
        assert_eq!(
            content_type.map(|c| c.split(';').next().unwrap_or(c).trim()),
            Some("application/json"),
            "{method} {template} {status}: content type"
        );
        let mut schema = schema.clone();
        schema["components"] = self.components.clone();
        let validator = jsonschema::draft202012::new(&schema)
            .unwrap_or_else(|e| panic!("{method} {template} {status}: bad schema: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        let mut shown = body.to_string();
        if shown.len() > 2_000 {
            shown = format!("{}…", shown.chars().take(2_000).collect::<String>());
        }
        assert!(
            errors.is_empty(),
            "{method} {template} {status}: the body does not match the document:\n{}\nbody: {shown}",
            errors.join("\n")
        );
    }

    /// Sends a request, checks the answer, and returns its status and JSON body.
    async fn exchange(
        &self,
        method: Method,
        template: &str,
        request: reqwest::RequestBuilder,
    ) -> (StatusCode, Value) {
        let response = request.send().await.expect("request sent");
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let status = response.status();
        let bytes = response.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else if content_type.as_deref() == Some("application/json") {
            serde_json::from_slice(&bytes).expect("a JSON answer is JSON")
        } else {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        };
        self.check(&method, template, status, content_type.as_deref(), &body);
        (status, body)
    }

    /// A ChatWork-style call (form in the body for POST and PUT, else in the query),
    /// checked; asserts the expected status.
    async fn call(
        &self,
        client: &Client,
        method: Method,
        template: &str,
        path: &str,
        form: &[(&str, String)],
        expected: StatusCode,
    ) -> Value {
        let request = client.request(method.clone(), path);
        let request = if method == Method::POST || method == Method::PUT {
            request.form(form)
        } else {
            request.query(form)
        };
        let (status, body) = self.exchange(method.clone(), template, request).await;
        assert_eq!(status, expected, "{method} {path}: {body}");
        body
    }
}

fn text(value: impl ToString) -> String {
    value.to_string()
}

#[tokio::test]
async fn every_answer_of_a_realistic_flow_matches_the_served_document() {
    let app = spawn_app().await;
    let c = Contract::load(&app).await;
    let ok = StatusCode::OK;
    let none = StatusCode::NO_CONTENT;
    let admin = &app.admin;
    let me = c
        .call(admin, Method::GET, "/v2/me", "/v2/me", &[], ok)
        .await;
    let admin_id = me["account_id"].as_u64().unwrap();

    // Accounts.
    let mut users = Vec::new();
    for name in ["Bob", "Carol"] {
        let created = c
            .call(
                admin,
                Method::POST,
                "/v2/accounts",
                "/v2/accounts",
                &[("name", text(name)), ("department", text("Sales"))],
                ok,
            )
            .await;
        users.push((
            created["account_id"].as_u64().unwrap(),
            Client::new(&app.base, created["token"].as_str().unwrap()),
        ));
    }
    let (bob_id, bob_client) = users.remove(0);
    let (carol_id, carol_client) = users.remove(0);
    let (bob, carol) = (&bob_client, &carol_client);

    // Rooms and members.
    let room = c
        .call(
            admin,
            Method::POST,
            "/v2/rooms",
            "/v2/rooms",
            &[
                ("name", text("Project")),
                ("members_admin_ids", text(admin_id)),
                ("members_member_ids", text(bob_id)),
                ("link", text(1)),
                ("link_code", text("project")),
            ],
            ok,
        )
        .await["room_id"]
        .as_u64()
        .unwrap();
    let room_path = format!("/v2/rooms/{room}");
    c.call(admin, Method::GET, "/v2/rooms", "/v2/rooms", &[], ok)
        .await;
    c.call(
        admin,
        Method::PUT,
        "/v2/rooms/{room_id}",
        &room_path,
        &[("description", text("About the project"))],
        ok,
    )
    .await;
    c.call(
        admin,
        Method::GET,
        "/v2/rooms/{room_id}",
        &room_path,
        &[],
        ok,
    )
    .await;
    let members = format!("{room_path}/members");
    c.call(
        admin,
        Method::PUT,
        "/v2/rooms/{room_id}/members",
        &members,
        &[
            ("members_admin_ids", text(admin_id)),
            ("members_member_ids", text(bob_id)),
        ],
        ok,
    )
    .await;
    c.call(
        bob,
        Method::GET,
        "/v2/rooms/{room_id}/members",
        &members,
        &[],
        ok,
    )
    .await;

    // Messages and read state.
    let messages = format!("{room_path}/messages");
    let template = "/v2/rooms/{room_id}/messages";
    for (client, body) in [
        (bob, format!("[To:{admin_id}] hello")),
        (admin, "[toall] welcome".to_string()),
    ] {
        c.call(
            client,
            Method::POST,
            template,
            &messages,
            &[("body", body)],
            ok,
        )
        .await;
    }
    c.call(admin, Method::GET, template, &messages, &[], ok)
        .await;
    c.call(admin, Method::GET, template, &messages, &[], none)
        .await;
    let listed = c
        .call(
            admin,
            Method::GET,
            template,
            &messages,
            &[("force", text(1))],
            ok,
        )
        .await;
    let message_id = listed[1]["message_id"].as_str().unwrap().to_string();
    let message = format!("{messages}/{message_id}");
    let template = "/v2/rooms/{room_id}/messages/{message_id}";
    c.call(bob, Method::GET, template, &message, &[], ok).await;
    c.call(
        admin,
        Method::PUT,
        template,
        &message,
        &[("body", text("[toall] welcome!"))],
        ok,
    )
    .await;
    c.call(
        bob,
        Method::PUT,
        "/v2/rooms/{room_id}/messages/unread",
        &format!("{messages}/unread"),
        &[("message_id", message_id.clone())],
        ok,
    )
    .await;
    c.call(
        bob,
        Method::PUT,
        "/v2/rooms/{room_id}/messages/read",
        &format!("{messages}/read"),
        &[],
        ok,
    )
    .await;

    // Tasks.
    let tasks = format!("{room_path}/tasks");
    let task_ids = c
        .call(
            admin,
            Method::POST,
            "/v2/rooms/{room_id}/tasks",
            &tasks,
            &[
                ("body", text("Write the report")),
                ("to_ids", format!("{admin_id},{bob_id}")),
                ("limit", text(4_102_444_800u64)),
                ("limit_type", text("date")),
            ],
            ok,
        )
        .await;
    let task_id = task_ids["task_ids"][0].as_u64().unwrap();
    c.call(
        bob,
        Method::GET,
        "/v2/rooms/{room_id}/tasks",
        &tasks,
        &[("status", text("open"))],
        ok,
    )
    .await;
    c.call(
        bob,
        Method::GET,
        "/v2/rooms/{room_id}/tasks/{task_id}",
        &format!("{tasks}/{task_id}"),
        &[],
        ok,
    )
    .await;
    c.call(
        admin,
        Method::PUT,
        "/v2/rooms/{room_id}/tasks/{task_id}/status",
        &format!("{tasks}/{task_id}/status"),
        &[("body", text("done"))],
        ok,
    )
    .await;
    c.call(bob, Method::GET, "/v2/my/tasks", "/v2/my/tasks", &[], ok)
        .await;
    c.call(bob, Method::GET, "/v2/my/status", "/v2/my/status", &[], ok)
        .await;

    // Files.
    let files = format!("{room_path}/files");
    let upload = bob.request(Method::POST, &files).multipart(
        Form::new()
            .part("file", Part::bytes(b"numbers".to_vec()).file_name("q3.csv"))
            .text("message", "the figures"),
    );
    let (status, file) = c
        .exchange(Method::POST, "/v2/rooms/{room_id}/files", upload)
        .await;
    assert_eq!(status, ok, "{file}");
    let file_id = file["file_id"].as_u64().unwrap();
    c.call(
        admin,
        Method::GET,
        "/v2/rooms/{room_id}/files",
        &files,
        &[],
        ok,
    )
    .await;
    let file = c
        .call(
            admin,
            Method::GET,
            "/v2/rooms/{room_id}/files/{file_id}",
            &format!("{files}/{file_id}"),
            &[("create_download_url", text(1))],
            ok,
        )
        .await;
    let download = reqwest::Client::new().get(file["download_url"].as_str().unwrap());
    let (status, content) = c
        .exchange(
            Method::GET,
            "/v2/files/download/{room_id}/{file_id}",
            download,
        )
        .await;
    assert_eq!((status, content), (ok, json!("numbers")));

    // Invitation link, join requests.
    let link = format!("{room_path}/link");
    let template = "/v2/rooms/{room_id}/link";
    c.call(bob, Method::GET, template, &link, &[], ok).await;
    c.call(
        admin,
        Method::PUT,
        template,
        &link,
        &[
            ("need_acceptance", text(1)),
            ("description", text("Ask to join")),
        ],
        ok,
    )
    .await;
    c.call(
        carol,
        Method::POST,
        "/v2/links/{code}/join",
        "/v2/links/project/join",
        &[],
        StatusCode::ACCEPTED,
    )
    .await;
    let requests = format!("{room_path}/join_requests");
    c.call(
        admin,
        Method::GET,
        "/v2/rooms/{room_id}/join_requests",
        &requests,
        &[],
        ok,
    )
    .await;
    c.call(
        admin,
        Method::PUT,
        "/v2/rooms/{room_id}/join_requests/{account_id}",
        &format!("{requests}/{carol_id}"),
        &[],
        none,
    )
    .await;
    c.call(admin, Method::DELETE, template, &link, &[], ok)
        .await;
    c.call(bob, Method::GET, template, &link, &[], ok).await;

    // Contacts.
    let asked = c
        .call(
            carol,
            Method::POST,
            "/v2/contacts/requests",
            "/v2/contacts/requests",
            &[("account_id", text(bob_id)), ("message", text("Hi Bob"))],
            ok,
        )
        .await;
    let request_id = asked["request_id"].as_u64().unwrap();
    c.call(
        bob,
        Method::GET,
        "/v2/incoming_requests",
        "/v2/incoming_requests",
        &[],
        ok,
    )
    .await;
    c.call(
        bob,
        Method::PUT,
        "/v2/incoming_requests/{request_id}",
        &format!("/v2/incoming_requests/{request_id}"),
        &[],
        ok,
    )
    .await;
    c.call(bob, Method::GET, "/v2/contacts", "/v2/contacts", &[], ok)
        .await;
    c.call(
        bob,
        Method::DELETE,
        "/v2/contacts/{account_id}",
        &format!("/v2/contacts/{carol_id}"),
        &[],
        none,
    )
    .await;
    let asked = c
        .call(
            carol,
            Method::POST,
            "/v2/contacts/requests",
            "/v2/contacts/requests",
            &[("account_id", text(admin_id))],
            ok,
        )
        .await;
    c.call(
        admin,
        Method::DELETE,
        "/v2/incoming_requests/{request_id}",
        &format!("/v2/incoming_requests/{}", asked["request_id"]),
        &[],
        none,
    )
    .await;

    // The last message goes, and Carol leaves: every kind of op is in the feed now.
    c.call(
        admin,
        Method::DELETE,
        "/v2/rooms/{room_id}/messages/{message_id}",
        &message,
        &[],
        ok,
    )
    .await;
    c.call(
        carol,
        Method::DELETE,
        "/v2/rooms/{room_id}",
        &room_path,
        &[("action_type", text("leave"))],
        none,
    )
    .await;
    for client in [admin, bob, carol] {
        let batch = c
            .call(
                client,
                Method::GET,
                "/v2/sync",
                "/v2/sync",
                &[("since", text(0)), ("timeout", text(0))],
                ok,
            )
            .await;
        assert!(!batch["ops"].as_array().unwrap().is_empty(), "{batch}");
    }
    let (status, _) = c
        .exchange(
            Method::GET,
            "/healthz",
            reqwest::Client::new().get(format!("{}/healthz", app.base)),
        )
        .await;
    assert_eq!(status, ok);
}

#[tokio::test]
async fn refusals_are_documented_errors() {
    let app = spawn_app().await;
    let c = Contract::load(&app).await;
    let admin = &app.admin;
    let bob = app.account("Bob").await;
    let room = app.room(&bob, &[], &[]).await;
    let messages = format!("/v2/rooms/{room}/messages");

    let anonymous = reqwest::Client::new().get(format!("{}/v2/me", app.base));
    let (status, _) = c.exchange(Method::GET, "/v2/me", anonymous).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    c.call(
        admin,
        Method::GET,
        "/v2/rooms/{room_id}",
        &format!("/v2/rooms/{room}"),
        &[],
        StatusCode::NOT_FOUND,
    )
    .await;
    c.call(
        admin,
        Method::POST,
        "/v2/rooms",
        "/v2/rooms",
        &[("name", text("No admins"))],
        StatusCode::BAD_REQUEST,
    )
    .await;
    c.call(
        &bob.client,
        Method::POST,
        "/v2/accounts",
        "/v2/accounts",
        &[("name", text("Mallory"))],
        StatusCode::FORBIDDEN,
    )
    .await;
    c.call(
        &bob.client,
        Method::GET,
        "/v2/sync",
        "/v2/sync",
        &[("since", text("not-a-revision"))],
        StatusCode::BAD_REQUEST,
    )
    .await;
    let link = format!("/v2/rooms/{room}/link");
    for expected in [StatusCode::OK, StatusCode::CONFLICT] {
        c.call(
            &bob.client,
            Method::POST,
            "/v2/rooms/{room_id}/link",
            &link,
            &[],
            expected,
        )
        .await;
    }
    // A JSON body where ChatWork sends a form.
    let json_body = bob
        .client
        .request(Method::POST, &messages)
        .json(&json!({"body": "hello"}));
    let (status, _) = c
        .exchange(Method::POST, "/v2/rooms/{room_id}/messages", json_body)
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // The same Idempotency-Key for a different request.
    for (body, expected) in [
        ("first", StatusCode::OK),
        ("second", StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let request = bob
            .client
            .request(Method::POST, &messages)
            .header("Idempotency-Key", "post-1")
            .form(&[("body", body)]);
        let (status, answer) = c
            .exchange(Method::POST, "/v2/rooms/{room_id}/messages", request)
            .await;
        assert_eq!(status, expected, "{answer}");
    }
}
