//! The SQLite event log: the conformance suite, durability across reopening, and
//! group commit under load.

use hayabusa_sqlite::SqliteEventLog;
use hayabusa_store::conformance::event_log as conformance;
use hayabusa_store::{
    AppendRequest, EventAppender, EventReader, ExpectedVersion, IdempotencyKey, NewEvent,
    StoreError,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn event(label: &str) -> NewEvent {
    NewEvent {
        event_type: "test_event".to_owned(),
        schema_version: 2,
        data: format!("{{\"label\":\"{label}\"}}").into_bytes(),
    }
}

fn request(stream: &str, expected: ExpectedVersion, events: Vec<NewEvent>) -> AppendRequest {
    AppendRequest {
        stream: stream.to_owned(),
        expected,
        events,
        idempotency: None,
    }
}

fn keyed(mut request: AppendRequest, key: &str) -> AppendRequest {
    request.idempotency = Some(IdempotencyKey {
        key: key.to_owned(),
        fingerprint: format!("fingerprint-of-{key}"),
    });
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_event_log_conformance_suite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let counter = AtomicUsize::new(0);
    conformance::run_all(|| {
        let path = dir.path().join(format!(
            "events-{}.db",
            counter.fetch_add(1, Ordering::Relaxed)
        ));
        async move { SqliteEventLog::open(&path).expect("open a fresh log") }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_survives_closing_and_reopening() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.db");

    let log = SqliteEventLog::open(&path).expect("open");
    let first = log
        .append(keyed(
            request(
                "room-1",
                ExpectedVersion::NoStream,
                vec![event("a"), event("b")],
            ),
            "key-1",
        ))
        .await
        .expect("first append");
    log.append(request("room-2", ExpectedVersion::Any, vec![event("c")]))
        .await
        .expect("second append");
    let empty = log
        .append(keyed(
            request("room-3", ExpectedVersion::NoStream, Vec::new()),
            "key-empty",
        ))
        .await
        .expect("empty append");
    log.append(request(
        "room-1",
        ExpectedVersion::Exactly(2),
        vec![event("d")],
    ))
    .await
    .expect("third append");
    let before = log.read_all(0, 100).await.expect("read before closing");
    assert_eq!(before.len(), 4);
    drop(log);

    let log = SqliteEventLog::open(&path).expect("reopen");
    assert_eq!(log.head(), 4, "the head is read back from the file");
    assert_eq!(
        *log.subscribe().borrow(),
        4,
        "subscriptions start at the head"
    );
    assert_eq!(
        log.read_all(0, 100).await.expect("read after reopening"),
        before,
        "every event reads back identically"
    );

    // Stream versions survive: a stale expectation conflicts, the right one succeeds.
    let stale = log
        .append(request(
            "room-1",
            ExpectedVersion::Exactly(2),
            vec![event("e")],
        ))
        .await;
    assert_eq!(
        stale,
        Err(StoreError::Conflict {
            stream: "room-1".to_owned(),
            expected: "2".to_owned(),
            actual: 3,
        })
    );
    let next = log
        .append(request(
            "room-1",
            ExpectedVersion::Exactly(3),
            vec![event("e")],
        ))
        .await
        .expect("append after reopening");
    assert_eq!(next.position, 5, "positions continue without a gap");
    assert_eq!(next.stream_version, 4, "stream versions continue");

    // Idempotency keys survive, for appends with events and for empty ones.
    let retry = log
        .append(keyed(
            request(
                "room-1",
                ExpectedVersion::NoStream,
                vec![event("a"), event("b")],
            ),
            "key-1",
        ))
        .await
        .expect("retry after reopening");
    assert!(retry.duplicate);
    assert_eq!(retry.events, first.events);
    assert_eq!(retry.position, first.position);
    let retry_empty = log
        .append(keyed(
            request("room-3", ExpectedVersion::NoStream, Vec::new()),
            "key-empty",
        ))
        .await
        .expect("retry of the empty append");
    assert!(retry_empty.duplicate);
    assert_eq!(retry_empty.position, empty.position);
    let reused = log
        .append(AppendRequest {
            idempotency: Some(IdempotencyKey {
                key: "key-1".to_owned(),
                fingerprint: "something else".to_owned(),
            }),
            ..request("room-1", ExpectedVersion::Any, vec![event("x")])
        })
        .await;
    assert_eq!(reused, Err(StoreError::IdempotencyKeyReused));
    assert_eq!(log.head(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_committed_in_groups() {
    const APPENDERS: usize = 200;
    const APPENDS: u64 = 10;
    let dir = tempfile::tempdir().expect("temp dir");
    let log = Arc::new(SqliteEventLog::open(&dir.path().join("events.db")).expect("open"));

    let mut tasks = Vec::new();
    for appender in 0..APPENDERS {
        let log = Arc::clone(&log);
        tasks.push(tokio::spawn(async move {
            let stream = format!("room-{appender}");
            for version in 0..APPENDS {
                log.append(request(
                    &stream,
                    ExpectedVersion::Exactly(version),
                    vec![event(&format!("{appender}-{version}"))],
                ))
                .await
                .expect("append");
            }
        }));
    }
    for task in tasks {
        task.await.expect("appender task");
    }

    let total = APPENDERS as u64 * APPENDS;
    let stats = log.stats();
    assert_eq!(stats.events, total, "every event is counted");
    assert_eq!(stats.requests, total, "every request is counted");
    assert_eq!(log.head(), total);
    assert!(
        stats.events_per_batch() > 1.0,
        "200 concurrent appenders must share fsyncs, got {stats:?}"
    );
}
