//! Connecting is refused, with a message that says why, when NATS is down, has no
//! JetStream, or the options are wrong; credentials never appear in the messages.

use hayabusa_nats::testkit::{NatsServer, free_port};
use hayabusa_nats::{NatsOptions, connect};
use hayabusa_store::StoreError;
use std::time::Duration;

fn quick() -> NatsOptions {
    NatsOptions {
        request_timeout: Duration::from_secs(2),
        ..NatsOptions::default()
    }
}

async fn refusal(urls: &str, options: NatsOptions) -> String {
    match connect(urls, options).await {
        Err(StoreError::Unavailable(message)) => message,
        Err(other) => panic!("expected Unavailable, got {other:?}"),
        Ok(log) => panic!("expected a refusal, got a log: {log:?}"),
    }
}

#[tokio::test]
async fn a_server_without_jetstream_is_refused() {
    let server = NatsServer::start_without_jetstream();
    let message = refusal(&server.url(), quick()).await;
    assert!(
        message.contains("JetStream") && message.contains("-js"),
        "the refusal says JetStream is missing and how to enable it: {message}"
    );
}

#[tokio::test]
async fn a_server_that_is_down_is_refused_without_showing_the_password() {
    let port = free_port();
    let message = refusal(
        &format!("nats://hayabusa:hunter2@127.0.0.1:{port}"),
        quick(),
    )
    .await;
    assert!(
        message.contains("cannot connect") && message.contains(&format!("127.0.0.1:{port}")),
        "the refusal names the server: {message}"
    );
    assert!(!message.contains("hunter2"), "no password: {message}");
}

#[tokio::test]
async fn wrong_options_are_refused_before_connecting() {
    let server = NatsServer::start();
    let message = refusal(
        &server.url(),
        NatsOptions {
            stream: "HAYA.BUSA".into(),
            ..quick()
        },
    )
    .await;
    assert!(message.contains("stream name"), "{message}");
    let message = refusal(
        &server.url(),
        NatsOptions {
            replicas: 9,
            ..quick()
        },
    )
    .await;
    assert!(message.contains("replicas"), "{message}");
}

#[tokio::test]
async fn a_stream_with_other_subjects_is_refused() {
    let server = NatsServer::start();
    let first = NatsOptions {
        subject_prefix: "one".into(),
        ..quick()
    };
    drop(connect(&server.url(), first).await.expect("first log"));
    let message = refusal(
        &server.url(),
        NatsOptions {
            subject_prefix: "two".into(),
            ..quick()
        },
    )
    .await;
    assert!(
        message.contains("subjects"),
        "a stream made for other subjects is not taken over: {message}"
    );
}
