//! Conformance suite for the event log port.
//!
//! Every adapter of [`EventLog`] (in memory, SQLite, NATS JetStream, …) runs these
//! checks, so that they all behave the same way at the boundary the application relies
//! on: positions that increase in commit order (not necessarily dense), stream
//! revisions that increase within a stream and are checked exactly by optimistic
//! concurrency (without partial effects), idempotent retries, and a head that only
//! moves forward. No check assumes positions or revisions are 1, 2, 3, …: they compare
//! them and use the numbers the log reported.
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
use std::sync::atomic::{AtomicUsize, Ordering};
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
    positions_increase_across_streams(fresh().await).await;
    stream_revisions_increase_per_stream(fresh().await).await;
    read_stream_honours_after_and_limit(fresh().await).await;
    read_all_honours_after_and_limit(fresh().await).await;
    long_reads_see_every_event_once(fresh().await).await;
    expected_version_any_always_admits(fresh().await).await;
    expected_version_no_stream(fresh().await).await;
    expected_version_exactly(fresh().await).await;
    only_the_streams_last_revision_admits(fresh().await).await;
    conflict_has_no_partial_effect(fresh().await).await;
    empty_append_checks_version_and_appends_nothing(fresh().await).await;
    empty_append_records_idempotency_key(fresh().await).await;
    duplicate_key_returns_first_result(fresh().await).await;
    duplicate_key_is_checked_before_expected_version(fresh().await).await;
    key_reused_with_other_fingerprint_is_refused(fresh().await).await;
    failed_append_does_not_record_its_key(fresh().await).await;
    head_and_subscribe_advance_after_append(fresh().await).await;
    concurrent_appends_to_one_stream_have_one_winner_per_revision(fresh().await).await;
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

fn positions_of(events: &[RecordedEvent]) -> Vec<Position> {
    events.iter().map(|event| event.position).collect()
}

fn revisions_of(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|event| event.stream_version).collect()
}

/// Asserts that `numbers` strictly increase and all lie above `floor`.
fn assert_increasing_above(numbers: &[u64], floor: u64, what: &str) {
    let mut previous = floor;
    for (i, &number) in numbers.iter().enumerate() {
        assert!(
            number > previous,
            "{what}: number {i} ({number}) must be greater than {previous} in {numbers:?}"
        );
        previous = number;
    }
}

/// Asserts that `appended` recorded exactly `sent` in `stream`, after the stream
/// revision `after_revision` and the log position `after_position`, and reports its
/// last event's revision and position.
fn assert_appended(
    appended: &Appended,
    sent: &[NewEvent],
    stream: &str,
    after_revision: u64,
    after_position: Position,
    what: &str,
) {
    let recorded = &appended.events;
    assert_eq!(
        recorded.len(),
        sent.len(),
        "{what}: expected {} recorded events, got {}",
        sent.len(),
        recorded.len()
    );
    for (i, (got, want)) in recorded.iter().zip(sent).enumerate() {
        assert_eq!(got.stream, stream, "{what}: event {i} has the wrong stream");
        assert_eq!(got.event_type, want.event_type, "{what}: event {i} type");
        assert_eq!(
            got.schema_version, want.schema_version,
            "{what}: event {i} schema version"
        );
        assert_eq!(got.data, want.data, "{what}: event {i} payload");
    }
    assert_increasing_above(
        &positions_of(recorded),
        after_position,
        &format!("{what}: positions"),
    );
    assert_increasing_above(
        &revisions_of(recorded),
        after_revision,
        &format!("{what}: stream revisions"),
    );
    if let Some(last) = recorded.last() {
        assert_eq!(
            appended.position, last.position,
            "{what}: Appended.position must be the position of the last event"
        );
        assert_eq!(
            appended.stream_version, last.stream_version,
            "{what}: Appended.stream_version must be the revision of the last event"
        );
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
                "{what}: Conflict carries the wrong actual revision"
            );
        }
        other => panic!("{what}: expected Conflict at revision {actual}, got {other:?}"),
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

/// Positions increase across streams in commit order, and `Appended` reports exactly
/// what is later read back.
pub async fn positions_increase_across_streams<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "increasing positions";
    let batches = [
        ("alpha", 2),
        ("beta", 3),
        ("alpha", 1),
        ("gamma", 4),
        ("beta", 1),
    ];
    let mut last_position = 0;
    let mut revisions: BTreeMap<&str, u64> = BTreeMap::new();
    let mut appended_events = Vec::new();
    for (n, (stream, count)) in batches.into_iter().enumerate() {
        let sent = events(&format!("{stream}{n}"), count);
        let appended = append_ok(
            &*log,
            request(stream, ExpectedVersion::Any, sent.clone()),
            what,
        )
        .await;
        let revision = revisions.entry(stream).or_default();
        assert_appended(&appended, &sent, stream, *revision, last_position, what);
        assert!(
            !appended.duplicate,
            "{what}: a first append is no duplicate"
        );
        *revision = appended.stream_version;
        last_position = appended.position;
        appended_events.extend(appended.events);
    }
    let all = read_all_ok(&*log, 0, 1000).await;
    assert_eq!(
        all, appended_events,
        "{what}: read_all must return exactly the events that append reported, in order"
    );
    assert_eq!(
        log.head(),
        last_position,
        "{what}: head is the last position"
    );
}

/// Stream revisions increase within each stream, whatever else is appended, and a
/// stream reads back exactly its own events.
pub async fn stream_revisions_increase_per_stream<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "stream revisions";
    let streams = ["room-1", "room-2", "account-7"];
    let mut appended: BTreeMap<&str, Vec<RecordedEvent>> = BTreeMap::new();
    for round in 0..3 {
        for stream in streams {
            let result = append_ok(
                &*log,
                request(
                    stream,
                    ExpectedVersion::Any,
                    events(&format!("{stream}-{round}"), 2),
                ),
                what,
            )
            .await;
            appended.entry(stream).or_default().extend(result.events);
        }
    }
    let mut positions = Vec::new();
    for stream in streams {
        let read = read_stream_ok(&*log, stream, 0, 100).await;
        assert_eq!(
            read.len(),
            6,
            "{what}: stream {stream} must hold its 6 events"
        );
        assert_eq!(
            Some(&read),
            appended.get(stream),
            "{what}: read_stream({stream}) must return what append reported"
        );
        assert_increasing_above(&revisions_of(&read), 0, what);
        assert_increasing_above(&positions_of(&read), 0, what);
        positions.extend(positions_of(&read));
    }
    positions.sort_unstable();
    assert_eq!(
        positions,
        positions_of(&read_all_ok(&*log, 0, 100).await),
        "{what}: the streams together must hold exactly the log's events"
    );
}

/// `read_stream` returns revisions above `after_version`, at most `limit` of them.
pub async fn read_stream_honours_after_and_limit<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "read_stream after/limit";
    append_ok(
        &*log,
        request("noise", ExpectedVersion::Any, events("noise", 3)),
        what,
    )
    .await;
    let sent = events("s", 5);
    // Two appends, so that the stream's events span more than one append.
    append_ok(
        &*log,
        request("s", ExpectedVersion::NoStream, sent[..3].to_vec()),
        what,
    )
    .await;
    append_ok(
        &*log,
        request("s", ExpectedVersion::Any, sent[3..].to_vec()),
        what,
    )
    .await;
    append_ok(
        &*log,
        request("noise", ExpectedVersion::Any, events("more", 2)),
        what,
    )
    .await;

    let all = read_stream_ok(&*log, "s", 0, 100).await;
    let r = revisions_of(&all);
    assert_eq!(r.len(), 5, "{what}: after 0, large limit");
    assert_eq!(
        revisions_of(&read_stream_ok(&*log, "s", r[1], 2).await),
        r[2..4].to_vec(),
        "{what}: after the 2nd revision, limit 2"
    );
    assert_eq!(
        revisions_of(&read_stream_ok(&*log, "s", r[2], 100).await),
        r[3..].to_vec(),
        "{what}: after the 3rd revision (the end of the first append), large limit"
    );
    assert_eq!(
        revisions_of(&read_stream_ok(&*log, "s", 0, 1).await),
        r[..1].to_vec(),
        "{what}: limit 1"
    );
    assert!(
        read_stream_ok(&*log, "s", r[4], 100).await.is_empty(),
        "{what}: after the last revision there is nothing"
    );
    assert!(
        read_stream_ok(&*log, "s", r[4].saturating_mul(2).max(r[4] + 1), 100)
            .await
            .is_empty(),
        "{what}: far after the last revision there is nothing"
    );
    assert!(
        read_stream_ok(&*log, "s", 0, 0).await.is_empty(),
        "{what}: limit 0 returns nothing"
    );
    let read = read_stream_ok(&*log, "s", r[0], 2).await;
    assert_eq!(read, all[1..3].to_vec(), "{what}: events 2 and 3");
    for (got, want) in read.iter().zip(&sent[1..3]) {
        assert_eq!(got.data, want.data, "{what}: payloads of events 2 and 3");
    }
    // Paging through the stream one event at a time sees every event once.
    let mut after = 0;
    let mut seen = Vec::new();
    while let Some(event) = read_stream_ok(&*log, "s", after, 1).await.pop() {
        after = event.stream_version;
        seen.push(event);
    }
    assert_eq!(seen, all, "{what}: paging by 1 sees every event once");
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
    let all = read_all_ok(&*log, 0, 100).await;
    let p = positions_of(&all);
    assert_eq!(p.len(), 7, "{what}: after 0");
    assert_eq!(
        positions_of(&read_all_ok(&*log, p[2], 2).await),
        p[3..5].to_vec(),
        "{what}: after the 3rd, limit 2 (crossing into another stream)"
    );
    assert_eq!(
        positions_of(&read_all_ok(&*log, p[5], 100).await),
        p[6..].to_vec(),
        "{what}: after the 6th"
    );
    assert!(
        read_all_ok(&*log, p[6], 100).await.is_empty(),
        "{what}: after the head there is nothing"
    );
    assert!(
        read_all_ok(&*log, p[6].saturating_mul(2).max(p[6] + 1), 100)
            .await
            .is_empty(),
        "{what}: far after the head there is nothing"
    );
    assert!(
        read_all_ok(&*log, 0, 0).await.is_empty(),
        "{what}: limit 0 returns nothing"
    );
    // A number between two positions (where positions have gaps) reads from the next.
    for pair in p.windows(2) {
        if pair[1] - pair[0] > 1 {
            assert_eq!(
                read_all_ok(&*log, pair[0] + 1, 1)
                    .await
                    .first()
                    .map(|e| e.position),
                Some(pair[1]),
                "{what}: after a number inside a gap"
            );
        }
    }
    // Paging through the log in small pages sees every event once, in order.
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let page = read_all_ok(&*log, after, 3).await;
        let Some(last) = page.last() else { break };
        after = last.position;
        seen.extend(page);
    }
    assert_eq!(seen, all, "{what}: paging by 3 must see every event once");
}

/// Reads longer than an adapter's read batch (NATS asks for 256 messages per
/// request): 700 appends of 1 to 3 events over three streams, read whole, in pages
/// of several sizes (ending inside an append and between appends), and per stream.
pub async fn long_reads_see_every_event_once<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "long reads";
    let streams = ["long-a", "long-b", "long-c"];
    let mut expected: Vec<(String, String)> = Vec::new();
    for i in 0..700 {
        let stream = streams[i % 3];
        let batch = events(&format!("{stream}-{i}"), 1 + i * 7 % 3);
        expected.extend(
            batch
                .iter()
                .map(|event| (stream.to_owned(), event.event_type.clone())),
        );
        append_ok(&*log, request(stream, ExpectedVersion::Any, batch), what).await;
    }
    let labels = |events: &[RecordedEvent]| -> Vec<(String, String)> {
        events
            .iter()
            .map(|event| (event.stream.clone(), event.event_type.clone()))
            .collect()
    };
    let all = read_all_ok(&*log, 0, expected.len() + 10).await;
    assert_eq!(labels(&all), expected, "{what}: one read of everything");
    let p = positions_of(&all);
    assert!(p.windows(2).all(|pair| pair[0] < pair[1]), "{what}: order");
    for page in [1, 2, 255, 256, 257, 1000] {
        let mut after = 0;
        let mut seen = Vec::new();
        loop {
            let events = read_all_ok(&*log, after, page).await;
            assert!(events.len() <= page, "{what}: page {page} holds too many");
            let Some(last) = events.last() else { break };
            after = last.position;
            seen.extend(events);
        }
        assert_eq!(seen, all, "{what}: paging by {page} sees every event once");
    }
    for stream in streams {
        let mine: Vec<RecordedEvent> = all
            .iter()
            .filter(|event| event.stream == stream)
            .cloned()
            .collect();
        for page in [7, 300, 2000] {
            let mut after = 0;
            let mut seen = Vec::new();
            loop {
                let events = match log.read_stream(stream, after, page).await {
                    Ok(events) => events,
                    Err(error) => panic!("{what}: read_stream failed: {error}"),
                };
                let Some(last) = events.last() else { break };
                after = last.stream_version;
                seen.extend(events);
            }
            assert_eq!(seen, mine, "{what}: stream {stream} by {page}");
        }
    }
}

// ---------------------------------------------------------------------------------
// Optimistic concurrency.
// ---------------------------------------------------------------------------------

/// `ExpectedVersion::Any` admits a new stream and an existing one.
pub async fn expected_version_any_always_admits<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "ExpectedVersion::Any";
    let sent = events("x", 1);
    let first = append_ok(
        &*log,
        request("s", ExpectedVersion::Any, sent.clone()),
        what,
    )
    .await;
    assert_appended(&first, &sent, "s", 0, 0, what);
    let sent = events("y", 2);
    let second = append_ok(
        &*log,
        request("s", ExpectedVersion::Any, sent.clone()),
        what,
    )
    .await;
    assert_appended(
        &second,
        &sent,
        "s",
        first.stream_version,
        first.position,
        what,
    );
}

/// `ExpectedVersion::NoStream` admits only a stream without events.
pub async fn expected_version_no_stream<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "ExpectedVersion::NoStream";
    let sent = events("x", 2);
    let first = append_ok(
        &*log,
        request("s", ExpectedVersion::NoStream, sent.clone()),
        what,
    )
    .await;
    assert_appended(&first, &sent, "s", 0, 0, what);
    let head = log.head();
    let result = log
        .append(request("s", ExpectedVersion::NoStream, events("y", 1)))
        .await;
    assert_conflict(
        result,
        "s",
        ExpectedVersion::NoStream,
        first.stream_version,
        what,
    );
    assert_nothing_after(&*log, head, what).await;
    // Another stream is unaffected.
    append_ok(
        &*log,
        request("t", ExpectedVersion::NoStream, events("z", 1)),
        what,
    )
    .await;
}

/// `ExpectedVersion::Exactly(r)` admits only a stream at revision `r` (0: no events),
/// and a conflict reports the stream's revision.
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
    let sent = events("c", 1);
    let second = append_ok(
        &*log,
        request(
            "s",
            ExpectedVersion::Exactly(first.stream_version),
            sent.clone(),
        ),
        what,
    )
    .await;
    assert_appended(
        &second,
        &sent,
        "s",
        first.stream_version,
        first.position,
        what,
    );
    let current = second.stream_version;
    for stale in [
        0,
        1,
        first.events[0].stream_version,
        first.stream_version,
        current + 1,
        current.saturating_mul(2),
        u64::MAX,
    ] {
        if stale == current {
            continue;
        }
        let result = log
            .append(request(
                "s",
                ExpectedVersion::Exactly(stale),
                events("d", 1),
            ))
            .await;
        assert_conflict(result, "s", ExpectedVersion::Exactly(stale), current, what);
    }
    assert_nothing_after(&*log, second.position, what).await;
    // The revision read back is the one the append reported, and admits the next.
    let read = read_stream_ok(&*log, "s", 0, 100).await;
    assert_eq!(
        read.last().map(|event| event.stream_version),
        Some(current),
        "{what}: the last event read back carries the stream's revision"
    );
    append_ok(
        &*log,
        request("s", ExpectedVersion::Exactly(current), events("e", 1)),
        what,
    )
    .await;
}

/// The revision of an event that is not the stream's last (here: the first of an
/// append of three, and the last of an earlier append) does not admit an append.
pub async fn only_the_streams_last_revision_admits<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "only the stream's last revision";
    let first = append_ok(
        &*log,
        request("s", ExpectedVersion::NoStream, events("a", 1)),
        what,
    )
    .await;
    let second = append_ok(
        &*log,
        request(
            "s",
            ExpectedVersion::Exactly(first.stream_version),
            events("b", 3),
        ),
        what,
    )
    .await;
    let current = second.stream_version;
    for inside in second.events[..2].iter().map(|event| event.stream_version) {
        let result = log
            .append(request(
                "s",
                ExpectedVersion::Exactly(inside),
                events("c", 1),
            ))
            .await;
        assert_conflict(result, "s", ExpectedVersion::Exactly(inside), current, what);
    }
    let result = log
        .append(request(
            "s",
            ExpectedVersion::Exactly(first.stream_version),
            events("c", 1),
        ))
        .await;
    assert_conflict(
        result,
        "s",
        ExpectedVersion::Exactly(first.stream_version),
        current,
        what,
    );
    assert_nothing_after(&*log, second.position, what).await;
}

/// A refused append of several events leaves no trace: no events, and the stream's
/// revision is unchanged.
pub async fn conflict_has_no_partial_effect<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "conflict without partial effect";
    let first = append_ok(
        &*log,
        request("s", ExpectedVersion::NoStream, events("a", 2)),
        what,
    )
    .await;
    let result = log
        .append(request(
            "s",
            ExpectedVersion::Exactly(first.events[0].stream_version),
            events("b", 5),
        ))
        .await;
    assert_conflict(
        result,
        "s",
        ExpectedVersion::Exactly(first.events[0].stream_version),
        first.stream_version,
        what,
    );
    assert_nothing_after(&*log, first.position, what).await;
    assert_eq!(
        read_stream_ok(&*log, "s", 0, 100).await,
        first.events,
        "{what}: the stream keeps only its first two events"
    );
    // The next successful appends continue after the first one.
    let other = append_ok(
        &*log,
        request("other", ExpectedVersion::Any, events("c", 1)),
        what,
    )
    .await;
    assert!(
        other.position > first.position,
        "{what}: the next position follows"
    );
    let sent = events("d", 1);
    let next = append_ok(
        &*log,
        request(
            "s",
            ExpectedVersion::Exactly(first.stream_version),
            sent.clone(),
        ),
        what,
    )
    .await;
    assert_appended(
        &next,
        &sent,
        "s",
        first.stream_version,
        other.position,
        what,
    );
}

/// An empty append checks the expected revision and appends nothing.
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

    let on_s = append_ok(
        &*log,
        request("s", ExpectedVersion::Any, events("a", 2)),
        what,
    )
    .await;
    let on_t = append_ok(
        &*log,
        request("t", ExpectedVersion::Any, events("b", 1)),
        what,
    )
    .await;
    let appended = append_ok(
        &*log,
        request(
            "s",
            ExpectedVersion::Exactly(on_s.stream_version),
            Vec::new(),
        ),
        what,
    )
    .await;
    assert_eq!(
        appended.stream_version, on_s.stream_version,
        "{what}: the stream's revision does not move"
    );
    assert_eq!(
        appended.position, on_t.position,
        "{what}: position is the current head"
    );
    let stale = on_s.events[0].stream_version;
    let result = log
        .append(request("s", ExpectedVersion::Exactly(stale), Vec::new()))
        .await;
    assert_conflict(
        result,
        "s",
        ExpectedVersion::Exactly(stale),
        on_s.stream_version,
        what,
    );
    let result = log
        .append(request("s", ExpectedVersion::NoStream, Vec::new()))
        .await;
    assert_conflict(
        result,
        "s",
        ExpectedVersion::NoStream,
        on_s.stream_version,
        what,
    );
    assert_nothing_after(&*log, on_t.position, what).await;
}

// ---------------------------------------------------------------------------------
// Idempotency.
// ---------------------------------------------------------------------------------

/// An empty append records its idempotency key; a retry returns the first one's result.
pub async fn empty_append_records_idempotency_key<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "empty append with idempotency key";
    let before = append_ok(
        &*log,
        request("s", ExpectedVersion::Any, events("a", 2)),
        what,
    )
    .await;
    let first = append_ok(
        &*log,
        keyed(
            request(
                "s",
                ExpectedVersion::Exactly(before.stream_version),
                Vec::new(),
            ),
            "k",
            "f",
        ),
        what,
    )
    .await;
    assert!(!first.duplicate, "{what}: the first one is no duplicate");
    assert_eq!(
        first.position, before.position,
        "{what}: position is the head at the time"
    );
    assert_eq!(
        first.stream_version, before.stream_version,
        "{what}: the stream's revision at the time"
    );
    let later = append_ok(
        &*log,
        request("s", ExpectedVersion::Any, events("b", 1)),
        what,
    )
    .await;
    let retry = append_ok(
        &*log,
        keyed(
            request(
                "s",
                ExpectedVersion::Exactly(before.stream_version),
                Vec::new(),
            ),
            "k",
            "f",
        ),
        what,
    )
    .await;
    assert!(retry.duplicate, "{what}: the retry is a duplicate");
    assert!(retry.events.is_empty(), "{what}: the retry has no events");
    assert_eq!(
        retry.position, first.position,
        "{what}: the retry reports the first head"
    );
    assert_eq!(
        retry.stream_version, first.stream_version,
        "{what}: the retry reports the first stream revision"
    );
    assert_nothing_after(&*log, later.position, what).await;
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
        "{what}: same stream revision"
    );
    assert_nothing_after(&*log, head, what).await;
}

/// The idempotency key is checked before the expected revision: a retry succeeds as a
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
    let second = append_ok(
        &*log,
        request(
            "s",
            ExpectedVersion::Exactly(first.stream_version),
            events("b", 2),
        ),
        what,
    )
    .await;
    let head = log.head();
    assert_eq!(head, second.position, "{what}: head after two appends");
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
        retry.stream_version, first.stream_version,
        "{what}: revision after the first append"
    );
    assert_eq!(
        retry.position, first.position,
        "{what}: position after the first append"
    );
    assert_nothing_after(&*log, head, what).await;
}

/// The same key with another fingerprint is refused, whatever the expected revision.
pub async fn key_reused_with_other_fingerprint_is_refused<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "idempotency key reused";
    let first = append_ok(
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
        ExpectedVersion::Exactly(first.stream_version),
        ExpectedVersion::Exactly(first.stream_version.saturating_mul(7)),
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
    assert_nothing_after(&*log, first.position, what).await;
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
    let result = log
        .append(keyed(
            request("s", ExpectedVersion::Exactly(3), Vec::new()),
            "key-4",
            "fp-4",
        ))
        .await;
    assert_conflict(result, "s", ExpectedVersion::Exactly(3), 0, what);
    let sent = events("a", 1);
    let appended = append_ok(
        &*log,
        keyed(
            request("s", ExpectedVersion::NoStream, sent.clone()),
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
    assert_appended(&appended, &sent, "s", 0, 0, what);
}

/// Not part of [`run_all`] (it needs a log with a short expiry and waits for it): an
/// idempotency key counts for the log's expiry, and afterwards is forgotten — a retry
/// with it is a new append. Pass the log and the expiry it was made with.
pub async fn idempotency_keys_expire<L: EventLog + ?Sized>(log: Arc<L>, expiry: Duration) {
    let what = "idempotency key expiry";
    let first = append_ok(
        &*log,
        keyed(
            request("s", ExpectedVersion::Any, events("a", 1)),
            "key-expiring",
            "fp",
        ),
        what,
    )
    .await;
    let retry = append_ok(
        &*log,
        keyed(
            request("s", ExpectedVersion::Any, events("a", 1)),
            "key-expiring",
            "fp",
        ),
        what,
    )
    .await;
    assert!(
        retry.duplicate,
        "{what}: within the expiry a retry is a duplicate"
    );
    assert_eq!(
        retry.events, first.events,
        "{what}: the first append's events"
    );
    // Servers may drop expired keys in sweeps: allow a few expiries.
    let deadline = tokio::time::Instant::now() + expiry * 4 + Duration::from_secs(2);
    tokio::time::sleep(expiry).await;
    loop {
        let later = append_ok(
            &*log,
            keyed(
                request("s", ExpectedVersion::Any, events("a", 1)),
                "key-expiring",
                "fp",
            ),
            what,
        )
        .await;
        if !later.duplicate {
            assert!(
                later.position > first.position,
                "{what}: after the expiry the key appends again"
            );
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: the key was still remembered long after its expiry of {expiry:?}"
        );
        tokio::time::sleep(expiry / 2).await;
    }
}

// ---------------------------------------------------------------------------------
// Head and subscriptions.
// ---------------------------------------------------------------------------------

/// `head()` and `subscribe()` move to the last position after an append returns.
pub async fn head_and_subscribe_advance_after_append<L: EventLog + ?Sized>(log: Arc<L>) {
    let what = "head and subscribe";
    let mut watcher = log.subscribe();
    assert_eq!(*watcher.borrow_and_update(), 0, "{what}: starts at 0");

    let first = append_ok(
        &*log,
        request("s", ExpectedVersion::Any, events("a", 3)),
        what,
    )
    .await;
    assert_eq!(
        log.head(),
        first.position,
        "{what}: head() once append returned"
    );
    match tokio::time::timeout(WAIT, watcher.changed()).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("{what}: the head channel closed"),
        Err(_) => panic!("{what}: the subscription did not change within {WAIT:?}"),
    }
    assert_eq!(
        *watcher.borrow_and_update(),
        first.position,
        "{what}: the subscription reports the new head"
    );

    // A watcher waiting before the append wakes up once it is durable.
    let waiter = {
        let mut watcher = log.subscribe();
        let after = first.position;
        tokio::spawn(async move {
            loop {
                if *watcher.borrow_and_update() > after {
                    return *watcher.borrow();
                }
                if watcher.changed().await.is_err() {
                    return 0;
                }
            }
        })
    };
    let second = append_ok(
        &*log,
        request("t", ExpectedVersion::Any, events("b", 2)),
        what,
    )
    .await;
    match tokio::time::timeout(WAIT, waiter).await {
        Ok(Ok(seen)) => assert_eq!(
            seen, second.position,
            "{what}: the waiter sees the second append's position"
        ),
        Ok(Err(error)) => panic!("{what}: the waiting task failed: {error}"),
        Err(_) => panic!("{what}: a waiting subscriber did not wake within {WAIT:?}"),
    }
    let late = log.subscribe();
    assert_eq!(
        *late.borrow(),
        second.position,
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
        second.position,
        "{what}: failed or empty appends do not move the head"
    );
}

// ---------------------------------------------------------------------------------
// Concurrency.
// ---------------------------------------------------------------------------------

/// Many tasks race to append to one stream, each expecting the revision it last saw
/// (from its own success or from the conflict that refused it), as the command
/// handler does. Every winner expected exactly the revision the previous winner
/// produced: the winners form one chain, which is the stream.
pub async fn concurrent_appends_to_one_stream_have_one_winner_per_revision<L>(log: Arc<L>)
where
    L: EventLog + ?Sized + 'static,
{
    let what = "concurrent appends to one stream";
    const TASKS: usize = 16;
    const WINS: usize = 40;
    const MAX_ATTEMPTS: usize = 2_000;
    let wins = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let log = Arc::clone(&log);
        let wins = Arc::clone(&wins);
        handles.push(tokio::spawn(async move {
            let mut won = Vec::new();
            let mut seen = 0;
            for attempt in 0..MAX_ATTEMPTS {
                if wins.load(Ordering::SeqCst) >= WINS {
                    break;
                }
                let label = format!("task{task}-attempt{attempt}");
                let result = log
                    .append(request(
                        "contended",
                        ExpectedVersion::Exactly(seen),
                        vec![event(&label)],
                    ))
                    .await;
                match result {
                    Ok(appended) => {
                        assert!(
                            appended.stream_version > seen,
                            "{what}: a win must move the stream's revision forward"
                        );
                        won.push((seen, label, appended.stream_version, appended.position));
                        seen = appended.stream_version;
                        wins.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(StoreError::Conflict { actual, .. }) => {
                        assert_ne!(
                            actual, seen,
                            "{what}: a Conflict must report a revision other than the expected"
                        );
                        seen = actual;
                    }
                    Err(error) => panic!("{what}: unexpected error {error}"),
                }
                tokio::task::yield_now().await;
            }
            won
        }));
    }
    // Winners by the revision they expected.
    let mut winners: BTreeMap<u64, (String, u64, Position)> = BTreeMap::new();
    for handle in handles {
        let won = match handle.await {
            Ok(won) => won,
            Err(error) => panic!("{what}: an appending task failed: {error}"),
        };
        for (expected, label, revision, position) in won {
            if let Some(previous) = winners.insert(expected, (label.clone(), revision, position)) {
                panic!("{what}: Exactly({expected}) won twice: {previous:?} and {label}");
            }
        }
    }
    assert!(
        winners.len() >= WINS,
        "{what}: expected at least {WINS} winning appends, got {}",
        winners.len()
    );
    let stream = read_stream_ok(&*log, "contended", 0, 10_000).await;
    assert_eq!(
        stream.len(),
        winners.len(),
        "{what}: the stream must hold one event per winner"
    );
    let mut expected = 0;
    for event in &stream {
        let Some((label, revision, position)) = winners.get(&expected) else {
            panic!("{what}: no winner expected revision {expected}, yet the stream goes on");
        };
        assert_eq!(
            event.event_type,
            format!("test_{label}"),
            "{what}: the event after revision {expected} must be its winner's"
        );
        assert_eq!(event.stream_version, *revision, "{what}: revision reported");
        assert_eq!(event.position, *position, "{what}: position reported");
        expected = event.stream_version;
    }
    let all = read_all_ok(&*log, 0, 10_000).await;
    assert_eq!(all, stream, "{what}: the log holds just this stream");
    assert_eq!(log.head(), expected_head(&all), "{what}: head");
}

fn expected_head(all: &[RecordedEvent]) -> Position {
    all.last().map_or(0, |event| event.position)
}

/// Many tasks append to their own streams at once: all succeed, with distinct,
/// increasing positions, and each stream reads back as appended.
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
            let mut recorded = Vec::new();
            let mut revision = 0;
            let mut position = 0;
            for n in 0..APPENDS {
                // Alternate single events and pairs so that appends differ in size.
                let count = if n % 2 == 0 { 1 } else { 2 };
                let sent = events(&format!("{stream}-{n}"), count);
                let expected = ExpectedVersion::Exactly(revision);
                let appended =
                    append_ok(&*log, request(&stream, expected, sent.clone()), what).await;
                assert_appended(&appended, &sent, &stream, revision, position, what);
                revision = appended.stream_version;
                position = appended.position;
                recorded.extend(appended.events);
            }
            (stream, recorded)
        }));
    }
    let mut all_positions = HashSet::new();
    let mut total = 0;
    for handle in handles {
        let (stream, recorded) = match handle.await {
            Ok(result) => result,
            Err(error) => panic!("{what}: an appending task failed: {error}"),
        };
        let read = read_stream_ok(&*log, &stream, 0, 1000).await;
        assert_eq!(
            read, recorded,
            "{what}: {stream} must read back as append reported it"
        );
        total += recorded.len();
        for event in recorded {
            assert!(
                all_positions.insert(event.position),
                "{what}: position {} was given twice",
                event.position
            );
        }
    }
    let all = read_all_ok(&*log, 0, 10_000).await;
    assert_eq!(all.len(), total, "{what}: read_all sees every event");
    assert_increasing_above(&positions_of(&all), 0, what);
    assert!(
        all.iter()
            .all(|event| all_positions.contains(&event.position)),
        "{what}: read_all returns the appended positions"
    );
    assert_eq!(log.head(), expected_head(&all), "{what}: head");
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
        assert_eq!(
            appended.position, results[0].position,
            "{what}: same position"
        );
        assert_eq!(
            appended.stream_version, results[0].stream_version,
            "{what}: same stream revision"
        );
    }
    assert_eq!(
        read_all_ok(&*log, 0, 100).await,
        results[0].events,
        "{what}: the events were appended once"
    );
}
