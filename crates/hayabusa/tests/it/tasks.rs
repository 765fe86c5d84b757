//! Tasks: assigning, listing with filters, status, counts, permissions.

use crate::helpers::*;
use reqwest::{Method, StatusCode};

async fn eventually_eq(
    client: &Client,
    path: &str,
    key: &str,
    expected: serde_json::Value,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..100 {
        let (_, body) = client.get(path).await;
        if body[key] == expected {
            return body;
        }
        last = body;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{path}: {key} never became {expected}: {last}");
}

#[tokio::test]
async fn tasks_are_assigned_listed_filtered_and_completed() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let carol = app.account("Carol").await;
    let room = app.room(&alice, &[&bob], &[&carol]).await;
    let path = format!("/v2/rooms/{room}/tasks");
    let (status, created) = alice
        .client
        .send(
            Method::POST,
            &path,
            &[
                ("body", "Write the report".into()),
                ("to_ids", format!("{},{}", bob.id, carol.id)),
                ("limit", "1900000000".into()),
                ("limit_type", "date".into()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let ids: Vec<u64> = created["task_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);

    let (_, tasks) = alice.client.get(&path).await;
    assert_eq!(tasks.as_array().unwrap().len(), 2);
    let task = &tasks[0];
    assert_eq!(task["body"], "Write the report");
    assert_eq!(task["status"], "open");
    assert_eq!(task["limit_time"], 1_900_000_000);
    assert_eq!(task["limit_type"], "date");
    assert_eq!(task["assigned_by_account"]["account_id"], alice.id);
    assert_eq!(task["assigned_by_account"]["name"], "Alice");
    assert!(task["message_id"].as_str().is_some());

    let (_, only_bob) = alice
        .client
        .send(Method::GET, &path, &[("account_id", bob.id.to_string())])
        .await;
    assert_eq!(only_bob.as_array().unwrap().len(), 1);
    assert_eq!(only_bob[0]["account"]["account_id"], bob.id);
    let bob_task = only_bob[0]["task_id"].as_u64().unwrap();

    // Counts: Bob has one open task in the room.
    let room_view = eventually_eq(
        &bob.client,
        &format!("/v2/rooms/{room}"),
        "mytask_num",
        1.into(),
    )
    .await;
    assert_eq!(room_view["task_num"], 2);
    let status_view = eventually_eq(&bob.client, "/v2/my/status", "mytask_num", 1.into()).await;
    assert_eq!(status_view["mytask_room_num"], 1);
    let (_, mine) = bob.client.get("/v2/my/tasks").await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["room"]["room_id"], room);
    assert_eq!(mine[0]["room"]["name"], "Project");

    // Carol (readonly) may complete her own task but not Bob's; Bob completes his.
    let status_path = |task: u64| format!("{path}/{task}/status");
    assert_error(
        &carol
            .client
            .send(
                Method::PUT,
                &status_path(bob_task),
                &[("body", "done".into())],
            )
            .await,
        StatusCode::FORBIDDEN,
        "assignee",
    );
    assert_error(
        &bob.client
            .send(
                Method::PUT,
                &status_path(bob_task),
                &[("body", "finished".into())],
            )
            .await,
        StatusCode::BAD_REQUEST,
        "body must be one of open, done",
    );
    let (status, answer) = bob
        .client
        .send(
            Method::PUT,
            &status_path(bob_task),
            &[("body", "done".into())],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["task_id"], bob_task);
    let (_, one) = bob.client.get(&format!("{path}/{bob_task}")).await;
    assert_eq!(one["status"], "done");
    // Alice sees Bob's change a moment after it was acknowledged.
    let (_, done) = eventually(&alice.client, &format!("{path}?status=done"), |_, body| {
        body.as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    assert_eq!(done[0]["task_id"], bob_task);
    eventually_eq(&bob.client, "/v2/my/status", "mytask_num", 0.into()).await;
    let (_, mine_done) = bob
        .client
        .send(Method::GET, "/v2/my/tasks", &[("status", "done".into())])
        .await;
    assert_eq!(mine_done.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_task_input_and_foreign_ids_are_refused() {
    let app = spawn_app().await;
    let alice = app.account("Alice").await;
    let bob = app.account("Bob").await;
    let carol = app.account("Carol").await;
    let outsider = app.account("Mallory").await;
    let room = app.room(&alice, &[&bob], &[&carol]).await;
    let path = format!("/v2/rooms/{room}/tasks");
    let send = |client: &Client, form: Vec<(&'static str, String)>| {
        let client = client.clone();
        let path = path.clone();
        async move { client.send(Method::POST, &path, &form).await }
    };
    let b = bob.id.to_string();
    assert_error(
        &send(&alice.client, vec![("to_ids", b.clone())]).await,
        StatusCode::BAD_REQUEST,
        "body is required",
    );
    assert_error(
        &send(&alice.client, vec![("body", "x".into())]).await,
        StatusCode::BAD_REQUEST,
        "to_ids is required",
    );
    assert_error(
        &send(
            &alice.client,
            vec![("body", "x".into()), ("to_ids", "a,b".into())],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "to_ids",
    );
    assert_error(
        &send(
            &alice.client,
            vec![("body", "x".into()), ("to_ids", outsider.id.to_string())],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "members of the room",
    );
    assert_error(
        &send(
            &alice.client,
            vec![
                ("body", "x".into()),
                ("to_ids", b.clone()),
                ("limit", "soon".into()),
            ],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "limit",
    );
    assert_error(
        &send(
            &alice.client,
            vec![
                ("body", "x".into()),
                ("to_ids", b.clone()),
                ("limit_type", "week".into()),
            ],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "limit_type",
    );
    assert_error(
        &send(
            &carol.client,
            vec![("body", "x".into()), ("to_ids", b.clone())],
        )
        .await,
        StatusCode::FORBIDDEN,
        "readonly",
    );
    assert_error(
        &send(
            &outsider.client,
            vec![("body", "x".into()), ("to_ids", b.clone())],
        )
        .await,
        StatusCode::NOT_FOUND,
        "room not found",
    );
    let (_, created) = send(
        &alice.client,
        vec![("body", "real".into()), ("to_ids", b.clone())],
    )
    .await;
    let task = created["task_ids"][0].as_u64().unwrap();
    // Another user's task id, through their own room or the real one: 404.
    assert_error(
        &outsider.client.get(&format!("{path}/{task}")).await,
        StatusCode::NOT_FOUND,
        "not found",
    );
    assert_error(
        &outsider
            .client
            .get(&format!("/v2/rooms/{}/tasks/{task}", outsider.my_room))
            .await,
        StatusCode::NOT_FOUND,
        "task not found",
    );
    assert_error(
        &outsider
            .client
            .send(
                Method::PUT,
                &format!("{path}/{task}/status"),
                &[("body", "done".into())],
            )
            .await,
        StatusCode::NOT_FOUND,
        "not found",
    );
    assert_error(
        &alice.client.get(&format!("{path}/abc")).await,
        StatusCode::BAD_REQUEST,
        "task_id",
    );
    let (_, tasks) = alice.client.get(&path).await;
    assert_eq!(
        tasks.as_array().unwrap().len(),
        1,
        "only the valid task was stored"
    );
}
