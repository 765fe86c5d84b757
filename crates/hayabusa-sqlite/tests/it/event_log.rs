//! The SQLite event log: the conformance suite, durability across reopening, and
//! group commit under load.

use hayabusa_sqlite::{LogSettings, SqliteEventLog};
use hayabusa_store::conformance::event_log as conformance;
use hayabusa_store::{
    AppendRequest, EventAppender, EventReader, ExpectedVersion, IdempotencyKey, NewEvent,
    StoreError,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

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

/// The conformance suite again with the stream index at its two extremes: brought
/// up to date after every commit, and never while the log is open (every lookup by
/// stream then reads the unindexed tail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_conformance_suite_whenever_the_stream_index_is_updated() {
    use hayabusa_sqlite::IndexSettings;
    use std::time::Duration;
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, settings) in [
        (
            "eager",
            IndexSettings {
                window: 1,
                chunk: 1,
                idle: Duration::from_millis(1),
            },
        ),
        (
            "never",
            IndexSettings {
                window: u64::MAX,
                chunk: 1,
                idle: Duration::from_secs(3600),
            },
        ),
    ] {
        let counter = AtomicUsize::new(0);
        conformance::run_all(|| {
            let path = dir.path().join(format!(
                "events-{name}-{}.db",
                counter.fetch_add(1, Ordering::Relaxed)
            ));
            async move { SqliteEventLog::open_with(&path, settings).expect("open a fresh log") }
        })
        .await;
    }
}

fn count(path: &std::path::Path, sql: &str) -> i64 {
    rusqlite::Connection::open(path)
        .and_then(|conn| conn.query_row(sql, [], |row| row.get(0)))
        .expect("query the file")
}

/// A crash can leave the stream index behind the log (its transactions are not
/// fsynced). Opening re-indexes the tail; lookups were right even before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_index_left_behind_by_a_crash_is_caught_up_on_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.db");
    let log = SqliteEventLog::open(&path).expect("open");
    for label in ["a", "b", "c"] {
        log.append(request("room-1", ExpectedVersion::Any, vec![event(label)]))
            .await
            .expect("append");
    }
    log.append(request("room-2", ExpectedVersion::Any, vec![event("d")]))
        .await
        .expect("append");
    drop(log);
    let index = hayabusa_sqlite::index_path(&path);
    assert_eq!(count(&index, "SELECT COUNT(*) FROM stream_index"), 4);
    // As if the last index transaction never reached the disk.
    rusqlite::Connection::open(&index)
        .and_then(|conn| {
            conn.execute_batch(
                "DELETE FROM stream_index WHERE position > 1;
                 UPDATE index_state SET indexed_to = 1;",
            )
        })
        .expect("roll the index back");

    let log = SqliteEventLog::open_with(
        &path,
        hayabusa_sqlite::IndexSettings {
            window: u64::MAX,
            chunk: 1,
            idle: std::time::Duration::from_secs(3600),
        },
    )
    .expect("reopen");
    assert_eq!(count(&index, "SELECT COUNT(*) FROM stream_index"), 4);
    assert_eq!(count(&index, "SELECT indexed_to FROM index_state"), 4);
    let stream = log.read_stream("room-1", 1, 10).await.expect("read");
    assert_eq!(
        stream.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        [2, 3]
    );
    assert!(matches!(
        log.append(request(
            "room-1",
            ExpectedVersion::Exactly(2),
            vec![event("e")]
        ))
        .await,
        Err(StoreError::Conflict { actual: 3, .. })
    ));
}

/// A log written by schema version 1 (a unique index inside `events`) opens as
/// version 3: same events, same versions, and a filled stream index in its own file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_log_is_migrated() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.db");
    rusqlite::Connection::open(&path)
        .and_then(|conn| {
            conn.execute_batch(
                "PRAGMA journal_mode = WAL;
                 CREATE TABLE events (
                     position INTEGER PRIMARY KEY, stream TEXT NOT NULL,
                     stream_version INTEGER NOT NULL, event_type TEXT NOT NULL,
                     schema_version INTEGER NOT NULL, data BLOB NOT NULL,
                     recorded_at_ms INTEGER NOT NULL, UNIQUE (stream, stream_version));
                 CREATE TABLE idempotency_keys (
                     key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, stream TEXT NOT NULL,
                     first_position INTEGER NOT NULL, event_count INTEGER NOT NULL,
                     stream_version INTEGER NOT NULL, position INTEGER NOT NULL
                 ) WITHOUT ROWID;
                 INSERT INTO events VALUES (1, 'room-1', 1, 'test_event', 2, x'7b7d', 10);
                 INSERT INTO events VALUES (2, 'room-2', 1, 'test_event', 2, x'7b7d', 11);
                 INSERT INTO events VALUES (3, 'room-1', 2, 'test_event', 2, x'7b7d', 12);
                 PRAGMA user_version = 1;",
            )
        })
        .expect("write a version 1 log");

    let log = SqliteEventLog::open(&path).expect("open and migrate");
    assert_eq!(log.head(), 3);
    let stream = log.read_stream("room-1", 0, 10).await.expect("read");
    assert_eq!(
        stream
            .iter()
            .map(|e| (e.position, e.stream_version, e.recorded_at_ms))
            .collect::<Vec<_>>(),
        [(1, 1, 10), (3, 2, 12)]
    );
    let appended = log
        .append(request(
            "room-1",
            ExpectedVersion::Exactly(2),
            vec![event("c")],
        ))
        .await
        .expect("append after the migration");
    assert_eq!((appended.position, appended.stream_version), (4, 3));
    drop(log);
    assert_eq!(count(&path, "PRAGMA user_version"), 3);
    let index = hayabusa_sqlite::index_path(&path);
    assert_eq!(count(&index, "SELECT COUNT(*) FROM stream_index"), 4);
    assert_eq!(
        count(
            &path,
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
        ),
        0,
        "the old unique index is gone"
    );
}

/// A log written by schema version 2 (the stream index inside the log's file) opens as
/// version 3: the old index tables are dropped and the index file is filled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_log_is_migrated() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.db");
    rusqlite::Connection::open(&path)
        .and_then(|conn| {
            conn.execute_batch(
                "PRAGMA journal_mode = WAL;
                 CREATE TABLE events (
                     position INTEGER PRIMARY KEY, stream TEXT NOT NULL,
                     stream_version INTEGER NOT NULL, event_type TEXT NOT NULL,
                     schema_version INTEGER NOT NULL, data BLOB NOT NULL,
                     recorded_at_ms INTEGER NOT NULL);
                 CREATE TABLE stream_index (
                     stream TEXT NOT NULL, stream_version INTEGER NOT NULL,
                     position INTEGER NOT NULL, PRIMARY KEY (stream, stream_version)
                 ) WITHOUT ROWID;
                 CREATE TABLE index_state (
                     id INTEGER PRIMARY KEY CHECK (id = 1), indexed_to INTEGER NOT NULL);
                 CREATE TABLE idempotency_keys (
                     key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, stream TEXT NOT NULL,
                     first_position INTEGER NOT NULL, event_count INTEGER NOT NULL,
                     stream_version INTEGER NOT NULL, position INTEGER NOT NULL
                 ) WITHOUT ROWID;
                 INSERT INTO events VALUES (1, 'room-1', 1, 'test_event', 2, x'7b7d', 10);
                 INSERT INTO events VALUES (2, 'room-2', 1, 'test_event', 2, x'7b7d', 11);
                 INSERT INTO events VALUES (3, 'room-1', 2, 'test_event', 2, x'7b7d', 12);
                 INSERT INTO stream_index VALUES ('room-1', 1, 1), ('room-2', 1, 2);
                 INSERT INTO index_state VALUES (1, 2);
                 PRAGMA user_version = 2;",
            )
        })
        .expect("write a version 2 log");

    let log = SqliteEventLog::open(&path).expect("open and migrate");
    let stream = log.read_stream("room-1", 0, 10).await.expect("read");
    assert_eq!(
        stream.iter().map(|e| e.position).collect::<Vec<_>>(),
        [1, 3]
    );
    assert!(matches!(
        log.append(request(
            "room-1",
            ExpectedVersion::Exactly(1),
            vec![event("x")]
        ))
        .await,
        Err(StoreError::Conflict { actual: 2, .. })
    ));
    drop(log);
    assert_eq!(count(&path, "PRAGMA user_version"), 3);
    assert_eq!(
        count(
            &path,
            "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('stream_index', 'index_state')"
        ),
        0,
        "the old index tables are gone"
    );
    let index = hayabusa_sqlite::index_path(&path);
    assert_eq!(count(&index, "SELECT COUNT(*) FROM stream_index"), 3);
    assert_eq!(count(&index, "SELECT indexed_to FROM index_state"), 3);
}

/// The index file is derived data: deleted, it is rebuilt on open; taken from another,
/// longer log, it is emptied and rebuilt instead of trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_foreign_index_file_is_rebuilt_on_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.db");
    let index = hayabusa_sqlite::index_path(&path);
    let log = SqliteEventLog::open(&path).expect("open");
    for (stream, label) in [("room-1", "a"), ("room-2", "b"), ("room-1", "c")] {
        log.append(request(stream, ExpectedVersion::Any, vec![event(label)]))
            .await
            .expect("append");
    }
    drop(log);
    for suffix in ["", "-wal", "-shm"] {
        let mut file = index.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
    let log = SqliteEventLog::open(&path).expect("reopen without the index");
    assert_eq!(count(&index, "SELECT COUNT(*) FROM stream_index"), 3);
    let positions = |events: Vec<hayabusa_store::RecordedEvent>| {
        events.iter().map(|e| e.position).collect::<Vec<_>>()
    };
    assert_eq!(
        positions(log.read_stream("room-1", 0, 10).await.expect("read")),
        [1, 3]
    );
    drop(log);

    // An index that claims more than the log holds, and lists a wrong position.
    rusqlite::Connection::open(&index)
        .and_then(|conn| {
            conn.execute_batch(
                "UPDATE stream_index SET position = 2 WHERE stream = 'room-1' AND stream_version = 2;
                 INSERT INTO stream_index VALUES ('room-1', 3, 99);
                 UPDATE index_state SET indexed_to = 99;",
            )
        })
        .expect("tamper with the index");
    let log = SqliteEventLog::open(&path).expect("reopen with a foreign index");
    assert_eq!(
        positions(log.read_stream("room-1", 0, 10).await.expect("read")),
        [1, 3]
    );
    assert_eq!(count(&index, "SELECT indexed_to FROM index_state"), 3);
    let appended = log
        .append(request(
            "room-1",
            ExpectedVersion::Exactly(2),
            vec![event("d")],
        ))
        .await
        .expect("append at the right version");
    assert_eq!(appended.stream_version, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_expire() {
    let dir = tempfile::tempdir().expect("temp dir");
    let expiry = Duration::from_millis(300);
    let settings = LogSettings {
        idempotency_expiry: expiry,
        ..LogSettings::default()
    };
    let log =
        SqliteEventLog::open_with_settings(&dir.path().join("events.db"), settings).expect("open");
    conformance::idempotency_keys_expire(Arc::new(log), expiry).await;
}

/// Keys recorded before keys expired (no `recorded_at_ms` column) are kept for a full
/// expiry from the upgrade; expired keys are deleted when the log opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_before_expiry_are_kept_then_deleted_at_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.db");
    let log = SqliteEventLog::open(&path).expect("open");
    let first = log
        .append(keyed(
            request("room-1", ExpectedVersion::Any, vec![event("a")]),
            "old-key",
        ))
        .await
        .expect("append");
    drop(log);
    rusqlite::Connection::open(&path)
        .and_then(|conn| {
            conn.execute_batch("ALTER TABLE idempotency_keys DROP COLUMN recorded_at_ms")
        })
        .expect("make the log look older");

    let log = SqliteEventLog::open(&path).expect("open and add key times");
    let retry = log
        .append(keyed(
            request("room-1", ExpectedVersion::Any, vec![event("a")]),
            "old-key",
        ))
        .await
        .expect("retry");
    assert!(
        retry.duplicate,
        "a key from before the upgrade still counts"
    );
    assert_eq!(retry.events, first.events);
    drop(log);
    assert_eq!(count(&path, "SELECT COUNT(*) FROM idempotency_keys"), 1);

    tokio::time::sleep(Duration::from_millis(50)).await;
    let settings = LogSettings {
        idempotency_expiry: Duration::from_millis(10),
        ..LogSettings::default()
    };
    drop(SqliteEventLog::open_with_settings(&path, settings).expect("open with a short expiry"));
    assert_eq!(
        count(&path, "SELECT COUNT(*) FROM idempotency_keys"),
        0,
        "expired keys are deleted at open"
    );
}
