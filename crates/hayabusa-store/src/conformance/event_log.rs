//! Conformance suite for the event log port.
//!
//! Every adapter of [`EventLog`] (in memory, SQLite, NATS, …) runs these checks, so
//! that they all behave the same way at the boundary the application relies on:
//! gapless global positions, 1-based stream versions, optimistic concurrency without
//! partial effects, idempotent retries, and a head that only moves forward.
//!
//! Each check is a `pub async fn` taking a fresh, empty log and panicking with a
//! message that says what was expected. [`run_all`] runs them all, each on a new
//! log. The concurrency checks spawn tasks, so run them on a multi-threaded tokio
//! runtime (`#[tokio::test(flavor = "multi_thread")]`) to exercise real parallelism.

use crate::error::StoreError;
use crate::event_log::{
    AppendRequest, Appended, EventLog, ExpectedVersion, IdempotencyKey, NewEvent, Position,
    RecordedEvent,
};
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How long a check waits for the head to move before failing.
const WAIT: Duration = Duration::from_secs(10);

/// Runs every check, each on a fresh log made by `make`.
///
/// `make` must return a new, empty log every time it is called.
pub async fn run_all<L, F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = L>,
    L: EventLog + 'static,
{
    let fresh = async || Arc::new(make().await);
    fresh_log_is_empty(fresh().await).await;
    positions_are_gapless_across_streams(fresh().await).await;
    stream_versions_are_one_based_per_stream(fresh().await).await;
    read_stream_honours_after_and_limit(fresh().await).await;
    read_all_honours_after_and_limit(fresh().await).await;
    expected_version_any_always_admits(fresh().await).await;
    expected_version_no_stream(fresh().await).await;
    expected_version_exactly(fresh().await).await;
    conflict_has_no_partial_effect(fresh().await).await;
    empty_append_checks_version_and_appends_nothing(fresh().await).await;
    empty_append_records_idempotency_key(fresh().await).await;
    duplicate_key_returns_first_result(fresh().await).await;
    duplicate_key_is_checked_before_expected_version(fresh().await).await;
    key_reused_with_other_fingerprint_is_refused(fresh().await).await;
    failed_append_does_not_record_its_key(fresh().await).await;
    head_and_subscribe_advance_after_append(fresh().await).await;
    concurrent_appends_to_one_stream_have_one_winner_per_version(fresh().await).await;
    concurrent_appends_to_different_streams_all_succeed(fresh().await).await;
    concurrent_retries_with_one_key_append_once(fresh().await).await;
}

// ---------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------

/// A small JSON event whose payload names it, so that reads can be compared.
fn event(label: &str) -> NewEvent {
    NewEvent {
        event_type: format!("test_{label}"),
        schema_version: 1,
        data: format!("{{\"label\":\"{label}\"}}").into_bytes(),
    }
}

/// `count` events labelled `prefix-0`, `prefix-1`, …
fn events(prefix: &str, count: usize) -> Vec<NewEvent> {
    (0..count)
        .map(|i| event(&format!("{prefix}-{i}")))
        .collect()
}

fn request(stream: &str, expected: ExpectedVersion, events: Vec<NewEvent>) -> AppendRequest {
    AppendRequest {
        stream: stream.to_owned(),
        expected,
        events,
        idempotency: None,
    }
}

fn keyed(mut request: AppendRequest, key: &str, fingerprint: &str) -> AppendRequest {
    request.idempotency = Some(IdempotencyKey {
        key: key.to_owned(),
        fingerprint: fingerprint.to_owned(),
    });
    request
}

/// Appends and panics with `what` if the append fails.
async fn append_ok<L: EventLog + ?Sized>(log: &L, request: AppendRequest, what: &str) -> Appended {
    match log.append(request).await {
        Ok(appended) => appended,
        Err(error) => panic!("{what}: append failed unexpectedly: {error}"),
    }
}

async fn read_all_ok<L: EventLog + ?Sized>(
    log: &L,
    after: Position,
    limit: usize,
) -> Vec<RecordedEvent> {
    match log.read_all(after, limit).await {
        Ok(events) => events,
        Err(error) => panic!("read_all(after {after}, limit {limit}) failed: {error}"),
    }
}

async fn read_stream_ok<L: EventLog + ?Sized>(
    log: &L,
    stream: &str,
    after: u64,
    limit: usize,
) -> Vec<RecordedEvent> {
    match log.read_stream(stream, after, limit).await {
        Ok(events) => events,
        Err(error) => {
            panic!("read_stream({stream:?}, after {after}, limit {limit}) failed: {error}")
        }
    }
}

/// Asserts that `recorded` is exactly `sent`, appended to `stream` from version
/// `first_version` at positions from `first_position`.
fn assert_recorded(
    recorded: &[RecordedEvent],
    sent: &[NewEvent],
    stream: &str,
    first_version: u64,
    first_position: Position,
    what: &str,
) {
    assert_eq!(
        recorded.len(),
        sent.len(),
        "{what}: expected {} recorded events, got {}",
        sent.len(),
        recorded.len()
    );
    for (i, (got, want)) in recorded.iter().zip(sent).enumerate() {
        let i = i as u64;
        assert_eq!(got.stream, stream, "{what}: event {i} has the wrong stream");
        assert_eq!(
            got.position,
            first_position + i,
            "{what}: event {i} should be at position {}",
            first_position + i
        );
        assert_eq!(
            got.stream_version,
            first_version + i,
            "{what}: event {i} should have stream version {}",
            first_version + i
        );
        assert_eq!(got.event_type, want.event_type, "{what}: event {i} type");
        assert_eq!(
            got.schema_version, want.schema_version,
            "{what}: event {i} schema version"
        );
        assert_eq!(got.data, want.data, "{what}: event {i} payload");
    }
}

fn assert_conflict(
    result: Result<Appended, StoreError>,
    stream: &str,
    expected: ExpectedVersion,
    actual: u64,
    what: &str,
) {
    match result {
        Err(StoreError::Conflict {
            stream: got_stream,
            expected: got_expected,
            actual: got_actual,
        }) => {
            assert_eq!(
                got_stream, stream,
                "{what}: Conflict names the wrong stream"
            );
            assert_eq!(
                got_expected,
                expected.to_string(),
                "{what}: Conflict carries the wrong expectation"
            );
            assert_eq!(
                got_actual, actual,
                "{what}: Conflict carries the wrong actual version"
            );
        }
        other => panic!("{what}: expected Conflict at version {actual}, got {other:?}"),
    }
}

/// Asserts that nothing was appended after `head`.
async fn assert_nothing_after<L: EventLog + ?Sized>(log: &L, head: Position, what: &str) {
    let extra = read_all_ok(log, head, 100).await;
    assert!(
        extra.is_empty(),
        "{what}: expected no new events after position {head}, found {extra:?}"
    );
    assert_eq!(log.head(), head, "{what}: head must not move");
}

// ---------------------------------------------------------------------------------
// Basic appends and reads.
// ---------------------------------------------------------------------------------

/// A fresh log has head 0 and no events.
pub async fn fresh_log_is_empty<L: EventLog + ?Sized>(log: Arc<L>) {
    assert_eq!(log.head(), 0, "a fresh log must have head 0");
    assert_eq!(
        *log.subscribe().borrow(),
        0,
        "a fresh log's subscription must start at 0"
    );
    assert!(
        read_all_ok(&*log, 0, 100).await.is_empty(),
        "a fresh log must have no events"
    );
    assert!(
        read_stream_ok(&*log, "nowhere", 0, 100).await.is_empty(),
        "an unknown stream must read as empty"
    );
}

/// Positions are 1, 2, 3, … without gaps, across streams, in commit order, and
/// `Appended` reports exactly what is later read back.
pub async fn positions_are_gapless_across_streams<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "gapless positions";
    let batches = [
        ("alpha", 2),
        ("beta", 3),
        ("alpha", 1),
        ("gamma", 4),
        ("beta", 1),
    ];
    let mut next_position = 1;
    let mut versions: BTreeMap<&str, u64> = BTreeMap::new();
    let mut appended_events = Vec::new();
    for (n, (stream, count)) in batches.into_iter().enumerate() {
        let sent = events(&format!("{stream}{n}"), count);
        let appended = append_ok(
            &*log,
            request(stream, ExpectedVersion::Any, sent.clone()),
            what,
        )
        .await;
        let version = versions.entry(stream).or_default();
        assert_recorded(
            &appended.events,
            &sent,
            stream,
            *version + 1,
            next_position,
            what,
        );
        *version += count as u64;
        next_position += count as u64;
        assert!(
            !appended.duplicate,
            "{what}: a first append is no duplicate"
        );
        assert_eq!(
            appended.stream_version, *version,
            "{what}: Appended.stream_version must be the stream's version after the append"
        );
        assert_eq!(
            appended.position,
            next_position - 1,
            "{what}: Appended.position must be the position of the last event"
        );
        appended_events.extend(appended.events);
    }
    let all = read_all_ok(&*log, 0, 1000).await;
    let positions: Vec<Position> = all.iter().map(|event| event.position).collect();
    let want: Vec<Position> = (1..next_position).collect();
    assert_eq!(
        positions, want,
        "{what}: read_all must return positions 1..=n without gaps"
    );
    assert_eq!(
        all, appended_events,
        "{what}: read_all must return exactly the events that append reported"
    );
    assert_eq!(
        log.head(),
        next_position - 1,
        "{what}: head is the last position"
    );
}

/// Stream versions count 1, 2, 3, … within each stream, whatever else is appended.
pub async fn stream_versions_are_one_based_per_stream<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "stream versions";
    for round in 0..3 {
        for stream in ["room-1", "room-2", "account-7"] {
            append_ok(
                &*log,
                request(
                    stream,
                    ExpectedVersion::Any,
                    events(&format!("{stream}-{round}"), 2),
                ),
                what,
            )
            .await;
        }
    }
    let mut positions = Vec::new();
    for stream in ["room-1", "room-2", "account-7"] {
        let read = read_stream_ok(&*log, stream, 0, 100).await;
        let versions: Vec<u64> = read.iter().map(|event| event.stream_version).collect();
        assert_eq!(
            versions,
            (1..=6).collect::<Vec<u64>>(),
            "{what}: stream {stream} must have versions 1..=6"
        );
        assert!(
            read.iter().all(|event| event.stream == stream),
            "{what}: read_stream({stream}) returned events of another stream"
        );
        assert!(
            read.windows(2)
                .all(|pair| pair[0].position < pair[1].position),
            "{what}: a stream's events must be in increasing position order"
        );
        positions.extend(read.iter().map(|event| event.position));
    }
    positions.sort_unstable();
    assert_eq!(
        positions,
        (1..=18).collect::<Vec<Position>>(),
        "{what}: the streams together must cover positions 1..=18"
    );
}

/// `read_stream` returns versions above `after_version`, at most `limit` of them.
pub async fn read_stream_honours_after_and_limit<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "read_stream after/limit";
    append_ok(
        &*log,
        request("noise", ExpectedVersion::Any, events("noise", 3)),
        what,
    )
    .await;
    let sent = events("s", 5);
    append_ok(
        &*log,
        request("s", ExpectedVersion::NoStream, sent.clone()),
        what,
    )
    .await;

    let versions = |events: Vec<RecordedEvent>| -> Vec<u64> {
        events.iter().map(|event| event.stream_version).collect()
    };
    assert_eq!(
        versions(read_stream_ok(&*log, "s", 0, 100).await),
        vec![1, 2, 3, 4, 5],
        "{what}: after 0, large limit"
    );
    assert_eq!(
        versions(read_stream_ok(&*log, "s", 2, 2).await),
        vec![3, 4],
        "{what}: after 2, limit 2"
    );
    assert_eq!(
        versions(read_stream_ok(&*log, "s", 3, 100).await),
        vec![4, 5],
        "{what}: after 3, large limit"
    );
    assert_eq!(
        versions(read_stream_ok(&*log, "s", 0, 1).await),
        vec![1],
        "{what}: limit 1"
    );
    assert!(
        read_stream_ok(&*log, "s", 5, 100).await.is_empty(),
        "{what}: after the last version there is nothing"
    );
    assert!(
        read_stream_ok(&*log, "s", 50, 100).await.is_empty(),
        "{what}: far after the last version there is nothing"
    );
    assert!(
        read_stream_ok(&*log, "s", 0, 0).await.is_empty(),
        "{what}: limit 0 returns nothing"
    );
    let read = read_stream_ok(&*log, "s", 1, 2).await;
    assert_recorded(&read, &sent[1..3], "s", 2, 5, what);
}

/// `read_all` returns positions above `after`, at most `limit` of them.
pub async fn read_all_honours_after_and_limit<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "read_all after/limit";
    append_ok(
        &*log,
        request("a", ExpectedVersion::Any, events("a", 4)),
        what,
    )
    .await;
    append_ok(
        &*log,
        request("b", ExpectedVersion::Any, events("b", 3)),
        what,
    )
    .await;
    let positions = |events: Vec<RecordedEvent>| -> Vec<Position> {
        events.iter().map(|event| event.position).collect()
    };
    assert_eq!(
        positions(read_all_ok(&*log, 0, 100).await),
        (1..=7).collect::<Vec<_>>(),
        "{what}: after 0"
    );
    assert_eq!(
        positions(read_all_ok(&*log, 3, 2).await),
        vec![4, 5],
        "{what}: after 3, limit 2 (crossing into another stream)"
    );
    assert_eq!(
        positions(read_all_ok(&*log, 6, 100).await),
        vec![7],
        "{what}: after 6"
    );
    assert!(
        read_all_ok(&*log, 7, 100).await.is_empty(),
        "{what}: after the head there is nothing"
    );
    assert!(
        read_all_ok(&*log, 1000, 100).await.is_empty(),
        "{what}: far after the head there is nothing"
    );
    assert!(
        read_all_ok(&*log, 0, 0).await.is_empty(),
        "{what}: limit 0 returns nothing"
    );
    // Paging through the log in small pages sees every event once, in order.
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let page = read_all_ok(&*log, after, 3).await;
        let Some(last) = page.last() else { break };
        after = last.position;
        seen.extend(page.iter().map(|event| event.position));
    }
    assert_eq!(
        seen,
        (1..=7).collect::<Vec<_>>(),
        "{what}: paging by 3 must see every position once"
    );
}

// ---------------------------------------------------------------------------------
// Optimistic concurrency.
// ---------------------------------------------------------------------------------

/// `ExpectedVersion::Any` admits a new stream and an existing one.
pub async fn expected_version_any_always_admits<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "ExpectedVersion::Any";
    let first = append_ok(
        &*log,
        request("s", ExpectedVersion::Any, events("x", 1)),
        what,
    )
    .await;
    assert_eq!(first.stream_version, 1, "{what}: on a new stream");
    let second = append_ok(
        &*log,
        request("s", ExpectedVersion::Any, events("y", 2)),
        what,
    )
    .await;
    assert_eq!(second.stream_version, 3, "{what}: on an existing stream");
}

/// `ExpectedVersion::NoStream` admits only a stream without events.
pub async fn expected_version_no_stream<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "ExpectedVersion::NoStream";
    let first = append_ok(
        &*log,
        request("s", ExpectedVersion::NoStream, events("x", 2)),
        what,
    )
    .await;
    assert_eq!(first.stream_version, 2, "{what}: creates the stream");
    let head = log.head();
    let result = log
        .append(request("s", ExpectedVersion::NoStream, events("y", 1)))
        .await;
    assert_conflict(result, "s", ExpectedVersion::NoStream, 2, what);
    assert_nothing_after(&*log, head, what).await;
    // Another stream is unaffected.
    append_ok(
        &*log,
        request("t", ExpectedVersion::NoStream, events("z", 1)),
        what,
    )
    .await;
}

/// `ExpectedVersion::Exactly(v)` admits only a stream at version `v` (0: no stream).
pub async fn expected_version_exactly<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "ExpectedVersion::Exactly";
    let result = log
        .append(request("s", ExpectedVersion::Exactly(1), events("a", 1)))
        .await;
    assert_conflict(result, "s", ExpectedVersion::Exactly(1), 0, what);
    assert_nothing_after(&*log, 0, what).await;

    let first = append_ok(
        &*log,
        request("s", ExpectedVersion::Exactly(0), events("b", 2)),
        what,
    )
    .await;
    assert_eq!(
        first.stream_version, 2,
        "{what}: Exactly(0) on a new stream"
    );
    let second = append_ok(
        &*log,
        request("s", ExpectedVersion::Exactly(2), events("c", 1)),
        what,
    )
    .await;
    assert_eq!(second.stream_version, 3, "{what}: Exactly(2) at version 2");
    assert_eq!(second.events[0].stream_version, 3, "{what}: next version");

    for stale in [0, 1, 2, 4, 100] {
        let result = log
            .append(request(
                "s",
                ExpectedVersion::Exactly(stale),
                events("d", 1),
            ))
            .await;
        assert_conflict(result, "s", ExpectedVersion::Exactly(stale), 3, what);
    }
    assert_nothing_after(&*log, 3, what).await;
}

/// A refused append of several events leaves no trace: no events, no positions used,
/// no stream version consumed.
pub async fn conflict_has_no_partial_effect<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "conflict without partial effect";
    append_ok(
        &*log,
        request("s", ExpectedVersion::NoStream, events("a", 2)),
        what,
    )
    .await;
    let result = log
        .append(request("s", ExpectedVersion::Exactly(1), events("b", 5)))
        .await;
    assert_conflict(result, "s", ExpectedVersion::Exactly(1), 2, what);
    assert_nothing_after(&*log, 2, what).await;
    assert_eq!(
        read_stream_ok(&*log, "s", 0, 100).await.len(),
        2,
        "{what}: the stream keeps only its first two events"
    );
    // The next successful append continues right after: no hole was left behind.
    let next = append_ok(
        &*log,
        request("other", ExpectedVersion::Any, events("c", 1)),
        what,
    )
    .await;
    assert_eq!(next.position, 3, "{what}: the next position must be 3");
    let next = append_ok(
        &*log,
        request("s", ExpectedVersion::Exactly(2), events("d", 1)),
        what,
    )
    .await;
    assert_eq!(
        next.events[0].stream_version, 3,
        "{what}: the next version is 3"
    );
    assert_eq!(next.position, 4, "{what}: the next position must be 4");
}

/// An empty append checks the expected version and appends nothing.
pub async fn empty_append_checks_version_and_appends_nothing<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "empty append";
    let appended = append_ok(
        &*log,
        request("s", ExpectedVersion::NoStream, Vec::new()),
        what,
    )
    .await;
    assert!(appended.events.is_empty(), "{what}: records no events");
    assert_eq!(appended.stream_version, 0, "{what}: stream stays at 0");
    assert_eq!(appended.position, 0, "{what}: position is the head (0)");
    assert!(!appended.duplicate, "{what}: no duplicate");
    assert_nothing_after(&*log, 0, what).await;

    append_ok(
        &*log,
        request("s", ExpectedVersion::Any, events("a", 2)),
        what,
    )
    .await;
    append_ok(
        &*log,
        request("t", ExpectedVersion::Any, events("b", 1)),
        what,
    )
    .await;
    let appended = append_ok(
        &*log,
        request("s", ExpectedVersion::Exactly(2), Vec::new()),
        what,
    )
    .await;
    assert_eq!(appended.stream_version, 2, "{what}: stream stays at 2");
    assert_eq!(appended.position, 3, "{what}: position is the current head");
    let result = log
        .append(request("s", ExpectedVersion::Exactly(1), Vec::new()))
        .await;
    assert_conflict(result, "s", ExpectedVersion::Exactly(1), 2, what);
    let result = log
        .append(request("s", ExpectedVersion::NoStream, Vec::new()))
        .await;
    assert_conflict(result, "s", ExpectedVersion::NoStream, 2, what);
    assert_nothing_after(&*log, 3, what).await;
}

// ---------------------------------------------------------------------------------
// Idempotency.
// ---------------------------------------------------------------------------------

/// An empty append records its idempotency key; a retry returns the head at the time
/// of the first one.
pub async fn empty_append_records_idempotency_key<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "empty append with idempotency key";
    append_ok(
        &*log,
        request("s", ExpectedVersion::Any, events("a", 2)),
        what,
    )
    .await;
    let first = append_ok(
        &*log,
        keyed(
            request("s", ExpectedVersion::Exactly(2), Vec::new()),
            "k",
            "f",
        ),
        what,
    )
    .await;
    assert!(!first.duplicate, "{what}: the first one is no duplicate");
    assert_eq!(
        first.position, 2,
        "{what}: position is the head at the time"
    );
    append_ok(
        &*log,
        request("s", ExpectedVersion::Any, events("b", 1)),
        what,
    )
    .await;
    let retry = append_ok(
        &*log,
        keyed(
            request("s", ExpectedVersion::Exactly(2), Vec::new()),
            "k",
            "f",
        ),
        what,
    )
    .await;
    assert!(retry.duplicate, "{what}: the retry is a duplicate");
    assert!(retry.events.is_empty(), "{what}: the retry has no events");
    assert_eq!(
        retry.position, 2,
        "{what}: the retry reports the first head"
    );
    assert_eq!(
        retry.stream_version, 2,
        "{what}: the retry reports the first stream version"
    );
    assert_nothing_after(&*log, 3, what).await;
}

/// A retried append with the same key and fingerprint returns the first append's
/// events and appends nothing.
pub async fn duplicate_key_returns_first_result<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "duplicate idempotency key";
    append_ok(
        &*log,
        request("other", ExpectedVersion::Any, events("o", 1)),
        what,
    )
    .await;
    let first = append_ok(
        &*log,
        keyed(
            request("s", ExpectedVersion::NoStream, events("a", 3)),
            "key-1",
            "fp-1",
        ),
        what,
    )
    .await;
    assert!(!first.duplicate, "{what}: the first one is no duplicate");
    let head = log.head();
    let retry = append_ok(
        &*log,
        keyed(
            request("s", ExpectedVersion::NoStream, events("a", 3)),
            "key-1",
            "fp-1",
        ),
        what,
    )
    .await;
    assert!(
        retry.duplicate,
        "{what}: the retry must be flagged duplicate"
    );
    assert_eq!(
        retry.events, first.events,
        "{what}: the retry must return the first append's events"
    );
    assert_eq!(retry.position, first.position, "{what}: same position");
    assert_eq!(
        retry.stream_version, first.stream_version,
        "{what}: same stream version"
    );
    assert_nothing_after(&*log, head, what).await;
}

/// The idempotency key is checked before the expected version: a retry succeeds as a
/// duplicate even when the stream has moved on and its expectation would now fail.
pub async fn duplicate_key_is_checked_before_expected_version<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "duplicate key before expected version";
    let first = append_ok(
        &*log,
        keyed(
            request("s", ExpectedVersion::Exactly(0), events("a", 2)),
            "key-2",
            "fp-2",
        ),
        what,
    )
    .await;
    append_ok(
        &*log,
        request("s", ExpectedVersion::Exactly(2), events("b", 2)),
        what,
    )
    .await;
    let head = log.head();
    assert_eq!(head, 4, "{what}: four events so far");
    let retry = append_ok(
        &*log,
        keyed(
            request("s", ExpectedVersion::Exactly(0), events("a", 2)),
            "key-2",
            "fp-2",
        ),
        what,
    )
    .await;
    assert!(retry.duplicate, "{what}: the retry must be a duplicate");
    assert_eq!(retry.events, first.events, "{what}: first append's events");
    assert_eq!(
        retry.stream_version, 2,
        "{what}: version after the first append"
    );
    assert_eq!(retry.position, 2, "{what}: position after the first append");
    assert_nothing_after(&*log, head, what).await;
}

/// The same key with another fingerprint is refused, whatever the expected version.
pub async fn key_reused_with_other_fingerprint_is_refused<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "idempotency key reused";
    append_ok(
        &*log,
        keyed(
            request("s", ExpectedVersion::Any, events("a", 1)),
            "key-3",
            "fp-3",
        ),
        what,
    )
    .await;
    for expected in [
        ExpectedVersion::Any,
        ExpectedVersion::Exactly(1),
        ExpectedVersion::Exactly(7),
        ExpectedVersion::NoStream,
    ] {
        let result = log
            .append(keyed(
                request("s", expected, events("b", 1)),
                "key-3",
                "another",
            ))
            .await;
        assert_eq!(
            result,
            Err(StoreError::IdempotencyKeyReused),
            "{what}: expected IdempotencyKeyReused with expectation {expected}"
        );
    }
    let result = log
        .append(keyed(
            request("elsewhere", ExpectedVersion::Any, Vec::new()),
            "key-3",
            "another",
        ))
        .await;
    assert_eq!(
        result,
        Err(StoreError::IdempotencyKeyReused),
        "{what}: also on another stream and with no events"
    );
    assert_nothing_after(&*log, 1, what).await;
}

/// An append that fails does not record its idempotency key: a later attempt with the
/// same key is a first append.
pub async fn failed_append_does_not_record_its_key<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "failed append keeps no key";
    let result = log
        .append(keyed(
            request("s", ExpectedVersion::Exactly(3), events("a", 1)),
            "key-4",
            "fp-4",
        ))
        .await;
    assert_conflict(result, "s", ExpectedVersion::Exactly(3), 0, what);
    let appended = append_ok(
        &*log,
        keyed(
            request("s", ExpectedVersion::NoStream, events("a", 1)),
            "key-4",
            "fp-4",
        ),
        what,
    )
    .await;
    assert!(
        !appended.duplicate,
        "{what}: the key of a failed append must not be remembered"
    );
    assert_eq!(appended.position, 1, "{what}: first position");
}

// ---------------------------------------------------------------------------------
// Head and subscriptions.
// ---------------------------------------------------------------------------------

/// `head()` and `subscribe()` move to the last position after an append returns.
pub async fn head_and_subscribe_advance_after_append<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "head and subscribe";
    let mut watcher = log.subscribe();
    assert_eq!(*watcher.borrow_and_update(), 0, "{what}: starts at 0");

    let appended = append_ok(
        &*log,
        request("s", ExpectedVersion::Any, events("a", 3)),
        what,
    )
    .await;
    assert_eq!(appended.position, 3, "{what}: three events appended");
    assert_eq!(log.head(), 3, "{what}: head() once append returned");
    match tokio::time::timeout(WAIT, watcher.changed()).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("{what}: the head channel closed"),
        Err(_) => panic!("{what}: the subscription did not change within {WAIT:?}"),
    }
    assert_eq!(
        *watcher.borrow_and_update(),
        3,
        "{what}: the subscription reports the new head"
    );

    // A watcher waiting before the append wakes up once it is durable.
    let waiter = {
        let mut watcher = log.subscribe();
        tokio::spawn(async move {
            loop {
                if *watcher.borrow_and_update() >= 5 {
                    return *watcher.borrow();
                }
                if watcher.changed().await.is_err() {
                    return 0;
                }
            }
        })
    };
    append_ok(
        &*log,
        request("t", ExpectedVersion::Any, events("b", 2)),
        what,
    )
    .await;
    match tokio::time::timeout(WAIT, waiter).await {
        Ok(Ok(seen)) => assert_eq!(seen, 5, "{what}: the waiter sees position 5"),
        Ok(Err(error)) => panic!("{what}: the waiting task failed: {error}"),
        Err(_) => panic!("{what}: a waiting subscriber did not wake within {WAIT:?}"),
    }
    let late = log.subscribe();
    assert_eq!(
        *late.borrow(),
        5,
        "{what}: a new subscription starts at the head"
    );
    assert!(
        matches!(late.has_changed(), Ok(false)),
        "{what}: a new subscription has not missed a change it could wait for"
    );

    // Failed and empty appends do not move the head.
    let _ = log
        .append(request("s", ExpectedVersion::NoStream, events("c", 1)))
        .await;
    append_ok(&*log, request("s", ExpectedVersion::Any, Vec::new()), what).await;
    assert_eq!(
        log.head(),
        5,
        "{what}: failed or empty appends do not move the head"
    );
}

// ---------------------------------------------------------------------------------
// Concurrency.
// ---------------------------------------------------------------------------------

/// Many tasks race to append to one stream, each trying `Exactly(v)` for v = 0, 1, 2, …
/// Exactly one of them wins each version, and the stream and the log have no gaps.
pub async fn concurrent_appends_to_one_stream_have_one_winner_per_version<L>(log: Arc<L>)
where
    L: EventLog + ?Sized + 'static,
{
    let what = "concurrent appends to one stream";
    const TASKS: usize = 16;
    const VERSIONS: u64 = 40;
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let log = Arc::clone(&log);
        handles.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for version in 0..VERSIONS {
                let label = format!("task{task}-v{version}");
                let result = log
                    .append(request(
                        "contended",
                        ExpectedVersion::Exactly(version),
                        vec![event(&label)],
                    ))
                    .await;
                match result {
                    Ok(appended) => {
                        assert_eq!(
                            appended.stream_version,
                            version + 1,
                            "{what}: winning Exactly({version}) must give version {}",
                            version + 1
                        );
                        won.push((version, label, appended.position));
                    }
                    Err(StoreError::Conflict { actual, .. }) => assert_ne!(
                        actual, version,
                        "{what}: a Conflict must report a version other than the expected"
                    ),
                    Err(error) => panic!("{what}: unexpected error {error}"),
                }
                tokio::task::yield_now().await;
            }
            won
        }));
    }
    let mut winners: BTreeMap<u64, (String, Position)> = BTreeMap::new();
    for handle in handles {
        let won = match handle.await {
            Ok(won) => won,
            Err(error) => panic!("{what}: an appending task failed: {error}"),
        };
        for (version, label, position) in won {
            if let Some(previous) = winners.insert(version, (label.clone(), position)) {
                panic!("{what}: Exactly({version}) won twice: {previous:?} and {label}");
            }
        }
    }
    assert_eq!(
        winners.keys().copied().collect::<Vec<_>>(),
        (0..VERSIONS).collect::<Vec<_>>(),
        "{what}: every version must have exactly one winner"
    );
    let stream = read_stream_ok(&*log, "contended", 0, 1000).await;
    assert_eq!(
        stream.len() as u64,
        VERSIONS,
        "{what}: the stream must hold one event per version"
    );
    for (event, (version, (label, position))) in stream.iter().zip(&winners) {
        assert_eq!(
            event.stream_version,
            version + 1,
            "{what}: versions in order"
        );
        assert_eq!(
            event.event_type,
            format!("test_{label}"),
            "{what}: version {} must hold the winner's event",
            version + 1
        );
        assert_eq!(
            event.position, *position,
            "{what}: position reported to the winner"
        );
    }
    let all = read_all_ok(&*log, 0, 1000).await;
    assert_eq!(
        all.iter().map(|event| event.position).collect::<Vec<_>>(),
        (1..=VERSIONS).collect::<Vec<_>>(),
        "{what}: the log must have no gaps"
    );
    assert_eq!(log.head(), VERSIONS, "{what}: head");
}

/// Many tasks append to their own streams at once: all succeed, with distinct,
/// gapless positions and per-stream versions 1..=n.
pub async fn concurrent_appends_to_different_streams_all_succeed<L>(log: Arc<L>)
where
    L: EventLog + ?Sized + 'static,
{
    let what = "concurrent appends to different streams";
    const TASKS: usize = 32;
    const APPENDS: u64 = 20;
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let log = Arc::clone(&log);
        handles.push(tokio::spawn(async move {
            let stream = format!("stream-{task}");
            let mut positions = Vec::new();
            for version in 0..APPENDS {
                // Alternate single events and pairs so that appends differ in size.
                let count = if version % 2 == 0 { 1 } else { 2 };
                let sent = events(&format!("{stream}-{version}"), count);
                let version_before = positions.len() as u64;
                let expected = ExpectedVersion::Exactly(version_before);
                let appended =
                    append_ok(&*log, request(&stream, expected, sent.clone()), what).await;
                assert_recorded(
                    &appended.events,
                    &sent,
                    &stream,
                    version_before + 1,
                    appended.events[0].position,
                    what,
                );
                positions.extend(appended.events.iter().map(|event| event.position));
            }
            (stream, positions)
        }));
    }
    let mut all_positions = HashSet::new();
    let mut total = 0;
    for handle in handles {
        let (stream, positions) = match handle.await {
            Ok(result) => result,
            Err(error) => panic!("{what}: an appending task failed: {error}"),
        };
        let read = read_stream_ok(&*log, &stream, 0, 1000).await;
        assert_eq!(
            read.iter().map(|event| event.position).collect::<Vec<_>>(),
            positions,
            "{what}: {stream} must read back at the positions append reported"
        );
        assert_eq!(
            read.iter()
                .map(|event| event.stream_version)
                .collect::<Vec<_>>(),
            (1..=positions.len() as u64).collect::<Vec<_>>(),
            "{what}: {stream} must have versions 1..=n"
        );
        total += positions.len();
        for position in positions {
            assert!(
                all_positions.insert(position),
                "{what}: position {position} was given twice"
            );
        }
    }
    let mut sorted: Vec<Position> = all_positions.into_iter().collect();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (1..=total as u64).collect::<Vec<_>>(),
        "{what}: positions must be gapless"
    );
    let all = read_all_ok(&*log, 0, 10_000).await;
    assert_eq!(all.len(), total, "{what}: read_all sees every event");
    assert_eq!(log.head(), total as u64, "{what}: head");
}

/// Many tasks send the same keyed request at once: exactly one appends, all others
/// get the same events back as duplicates.
pub async fn concurrent_retries_with_one_key_append_once<L>(log: Arc<L>)
where
    L: EventLog + ?Sized + 'static,
{
    let what = "concurrent retries with one key";
    const TASKS: usize = 24;
    let mut handles = Vec::new();
    for _ in 0..TASKS {
        let log = Arc::clone(&log);
        handles.push(tokio::spawn(async move {
            append_ok(
                &*log,
                keyed(
                    request("s", ExpectedVersion::NoStream, events("once", 2)),
                    "key-5",
                    "fp-5",
                ),
                what,
            )
            .await
        }));
    }
    let mut results = Vec::new();
    for handle in handles {
        match handle.await {
            Ok(appended) => results.push(appended),
            Err(error) => panic!("{what}: an appending task failed: {error}"),
        }
    }
    let firsts = results
        .iter()
        .filter(|appended| !appended.duplicate)
        .count();
    assert_eq!(
        firsts, 1,
        "{what}: exactly one append must not be a duplicate"
    );
    for appended in &results {
        assert_eq!(
            appended.events, results[0].events,
            "{what}: every retry returns the same events"
        );
        assert_eq!(appended.position, 2, "{what}: same position");
        assert_eq!(appended.stream_version, 2, "{what}: same stream version");
    }
    assert_eq!(
        read_all_ok(&*log, 0, 100).await.len(),
        2,
        "{what}: the events were appended once"
    );
}
