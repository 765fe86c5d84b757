//! The JetStream event log: the conformance suite, the head followed across
//! connections, and a kill -9 of nats-server in the middle of appends.

use hayabusa_nats::testkit::NatsServer;
use hayabusa_nats::{NatsEventLog, NatsOptions, connect};
use hayabusa_store::conformance::event_log as conformance;
use hayabusa_store::{
    AppendRequest, Appended, EventAppender, EventReader, ExpectedVersion, IdempotencyKey, NewEvent,
    StoreError,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Options for a log of its own on a shared server: stream and subjects named `name`.
fn options(name: &str) -> NatsOptions {
    NatsOptions {
        stream: name.to_uppercase(),
        subject_prefix: name.to_lowercase(),
        request_timeout: Duration::from_secs(2),
        head_poll_interval: Duration::from_millis(200),
        ..NatsOptions::default()
    }
}

async fn open(server: &NatsServer, name: &str) -> NatsEventLog {
    match connect(&server.url(), options(name)).await {
        Ok(log) => log,
        Err(error) => panic!("connect to {}: {error}\n{}", server.url(), server.log()),
    }
}

fn event(label: &str) -> NewEvent {
    NewEvent {
        event_type: format!("test_{label}"),
        schema_version: 1,
        data: format!("{{\"label\":\"{label}\"}}").into_bytes(),
    }
}

fn request(stream: &str, label: &str, key: Option<&str>) -> AppendRequest {
    AppendRequest {
        stream: stream.to_owned(),
        expected: ExpectedVersion::Any,
        events: vec![event(label), event(&format!("{label}-second"))],
        idempotency: key.map(|key| IdempotencyKey {
            key: key.to_owned(),
            fingerprint: format!("fp-{key}"),
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_event_log_conformance_suite() {
    let server = NatsServer::start();
    let logs = AtomicUsize::new(0);
    conformance::run_all(|| {
        let name = format!("conformance{}", logs.fetch_add(1, Ordering::SeqCst));
        let server = &server;
        async move { open(server, &name).await }
    })
    .await;
}

/// The same suite on a 3-node JetStream cluster with replicas 3: a clustered server
/// checks publish headers in another order (idempotency-key probes), and a Direct
/// Get may be answered by a replica behind the leader (the end of each read is
/// confirmed through the leader).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_event_log_conformance_suite_on_a_three_node_cluster() {
    let mut cluster = hayabusa_nats::testkit::NatsCluster::start(3);
    let urls = cluster.urls();
    let logs = AtomicUsize::new(0);
    conformance::run_all(|| {
        let name = format!("clustered{}", logs.fetch_add(1, Ordering::SeqCst));
        let urls = urls.clone();
        async move {
            let options = NatsOptions {
                replicas: 3,
                request_timeout: Duration::from_secs(5),
                ..options(&name)
            };
            connect(&urls, options)
                .await
                .unwrap_or_else(|error| panic!("connect to {urls}: {error}"))
        }
    })
    .await;
    // Every stream still answers: no probe stopped one.
    cluster
        .wait_until_current("CLUSTERED0", Duration::from_secs(30))
        .await;
}

/// Reads in batches of other sizes, and one message per request through the leader
/// (what servers before 2.11 get).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_complete_with_any_read_batch() {
    let server = NatsServer::start();
    for read_batch in [1, 3] {
        let open = async |name: &str| {
            let options = NatsOptions {
                read_batch,
                ..options(name)
            };
            match connect(&server.url(), options).await {
                Ok(log) => Arc::new(log),
                Err(error) => panic!("connect: {error}\n{}", server.log()),
            }
        };
        let name = format!("batch{read_batch}");
        conformance::read_stream_honours_after_and_limit(open(&format!("{name}s")).await).await;
        conformance::read_all_honours_after_and_limit(open(&format!("{name}a")).await).await;
        conformance::long_reads_see_every_event_once(open(&format!("{name}l")).await).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_through_one_connection_advance_the_head_of_another() {
    let server = NatsServer::start();
    let writer = open(&server, "shared").await;
    let reader = open(&server, "shared").await;
    let mut head = reader.subscribe();
    let appended = writer
        .append(request("room-1", "a", None))
        .await
        .expect("append");
    let started = Instant::now();
    let seen = tokio::time::timeout(
        Duration::from_secs(5),
        head.wait_for(|head| *head >= appended.position),
    )
    .await
    .expect("the other connection's head must catch up")
    .map(|head| *head)
    .expect("head channel open");
    assert_eq!(seen, appended.position);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "an announcement wakes the other connection before its next poll: {:?}",
        started.elapsed()
    );
    assert_eq!(
        reader.read_all(0, 10).await.expect("read"),
        appended.events,
        "the other connection reads the events"
    );
    // A third connection opened later starts at the head.
    let late = open(&server, "shared").await;
    assert_eq!(late.head(), appended.position);
}

/// One append's outcome in the kill test.
struct Outcome {
    started: Instant,
    finished: Instant,
    result: Result<Appended, StoreError>,
    label: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_append_survives_a_kill_9_of_nats_server() {
    let mut server = NatsServer::start();
    let log = Arc::new(open(&server, "crash").await);

    // A writer appends (with idempotency keys) all through the crash and restart.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let log = Arc::clone(&log);
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut outcomes = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let label = format!("w{n}");
                let started = Instant::now();
                let result = log
                    .append(request(&format!("room-{}", n % 7), &label, Some(&label)))
                    .await;
                let failed = result.is_err();
                outcomes.push(Outcome {
                    started,
                    finished: Instant::now(),
                    result,
                    label,
                });
                n += 1;
                if failed {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            outcomes
        })
    };

    tokio::time::sleep(Duration::from_millis(500)).await;
    server.kill();
    let killed = Instant::now();
    // Appends now fail, without a false success.
    let during = log.append(request("room-x", "during", None)).await;
    assert!(
        matches!(during, Err(StoreError::Unavailable(_))),
        "an append while nats-server is down must be Unavailable, got {during:?}"
    );
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    // By now the client knows it is disconnected: appends fail at once, and nothing
    // is queued to be sent after the reconnection.
    let asked = Instant::now();
    let later = log.append(request("room-x", "later", None)).await;
    assert!(
        matches!(later, Err(StoreError::Unavailable(_))),
        "an append while disconnected must be Unavailable, got {later:?}"
    );
    assert!(
        asked.elapsed() < Duration::from_millis(500),
        "an append while disconnected fails at once, not after a timeout: {:?}",
        asked.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let restarting = Instant::now();
    server.restart();

    // The adapter recovers on its own: appends succeed again.
    let recovered = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match log.append(request("room-after", "after", None)).await {
                Ok(appended) => return appended,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })
    .await
    .expect("appends must succeed again after the restart, without reopening the log");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let outcomes = writer.await.expect("writer task");

    let acknowledged: Vec<&Outcome> = outcomes
        .iter()
        .filter(|outcome| outcome.result.is_ok())
        .collect();
    let failed = outcomes.len() - acknowledged.len();
    assert!(
        acknowledged.len() > 10 && failed > 0,
        "the writer must have had successes and failures ({} ok, {failed} failed)",
        acknowledged.len()
    );
    for outcome in &outcomes {
        if let Err(error) = &outcome.result {
            assert!(
                matches!(error, StoreError::Unavailable(_)),
                "{}: a failure during the outage must be Unavailable, got {error:?}",
                outcome.label
            );
        }
        if outcome.result.is_ok() {
            assert!(
                !(outcome.started >= killed && outcome.finished <= restarting),
                "{}: acknowledged while nats-server was down",
                outcome.label
            );
        }
    }

    // Every acknowledged append is there, at the position it was given.
    let all = log.read_all(0, 1_000_000).await.expect("read the log");
    for outcome in &acknowledged {
        let Ok(appended) = &outcome.result else {
            continue;
        };
        for event in &appended.events {
            assert!(
                all.contains(event),
                "{}: acknowledged event at {} is missing after the crash",
                outcome.label,
                event.position
            );
        }
    }
    assert!(all.contains(&recovered.events[0]));
    // (An append in flight at the kill has an unknown outcome; one refused while
    // disconnected was never sent.)
    assert!(
        !all.iter().any(|event| event.event_type == "test_later"),
        "an append refused while disconnected is not stored after the reconnection"
    );
    assert!(
        log.head() >= recovered.position,
        "the head mirror catches up after the restart"
    );

    // Idempotency keys survive the crash: retrying an acknowledged append is a
    // duplicate that returns its events.
    let (first, label) = acknowledged
        .iter()
        .find_map(|outcome| Some((outcome.result.as_ref().ok()?, &outcome.label)))
        .expect("an acknowledged append");
    let stream = &first.events[0].stream;
    let retry = log
        .append(request(stream, label, Some(label)))
        .await
        .expect("retry");
    assert!(
        retry.duplicate,
        "a retried key is a duplicate after the crash"
    );
    assert_eq!(retry.events, first.events);

    // A fresh connection sees the same log, and its appends reach the first
    // connection's head mirror (which follows other processes again after the crash).
    let reopened = open(&server, "crash").await;
    assert_eq!(
        reopened.read_all(0, 1_000_000).await.expect("read again"),
        log.read_all(0, 1_000_000).await.expect("read"),
    );
    assert!(reopened.head() >= recovered.position);
    let elsewhere = reopened
        .append(request("room-elsewhere", "elsewhere", None))
        .await
        .expect("append through the other connection");
    let mut head = log.subscribe();
    tokio::time::timeout(
        Duration::from_secs(5),
        head.wait_for(|head| *head >= elsewhere.position),
    )
    .await
    .expect("the head mirror follows other connections after the crash")
    .expect("head channel open");
    eprintln!(
        "kill -9 test: {} appends acknowledged, {failed} refused during the outage",
        acknowledged.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_expire_with_the_duplicate_window() {
    let server = NatsServer::start();
    let expiry = Duration::from_secs(1);
    let log = match connect(
        &server.url(),
        NatsOptions {
            idempotency_expiry: expiry,
            ..options("expiry")
        },
    )
    .await
    {
        Ok(log) => log,
        Err(error) => panic!("connect: {error}"),
    };
    conformance::idempotency_keys_expire(Arc::new(log), expiry).await;
}

/// One Direct Get request answers a whole batch (NATS 2.11+), in order, limited by
/// `batch`, with the server's count of what is left; past the end, nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_direct_get_answers_a_batch() {
    let server = NatsServer::start();
    let log = open(&server, "direct").await;
    for i in 0..10 {
        log.append(request(&format!("s{}", i % 2), &format!("e{i}"), None))
            .await
            .expect("append");
    }
    let client = async_nats::connect(server.url()).await.expect("connect");
    let api = hayabusa_nats::api::Api::new(client, "DIRECT".into(), Duration::from_secs(2));
    let all = hayabusa_nats::subject::all_events("direct");
    let batch = api.next_batch_on(&all, 1, 4, 1 << 20).await.expect("batch");
    let sequences: Vec<u64> = batch.messages.iter().map(|m| m.sequence).collect();
    assert_eq!(sequences, vec![1, 2, 3, 4], "the first four messages");
    assert_eq!(batch.pending, Some(6), "six more messages match");
    let rest = api
        .next_batch_on(&all, 5, 100, 1 << 20)
        .await
        .expect("rest");
    assert_eq!(rest.messages.len(), 6, "the rest in one answer");
    assert_eq!(rest.pending, Some(0));
    let one_stream = hayabusa_nats::subject::of_stream("direct", "s1");
    let odd = api
        .next_batch_on(&one_stream, 1, 100, 1 << 20)
        .await
        .expect("s1");
    let sequences: Vec<u64> = odd.messages.iter().map(|m| m.sequence).collect();
    assert_eq!(sequences, vec![2, 4, 6, 8, 10], "one subject's messages");
    let past = api
        .next_batch_on(&all, 11, 100, 1 << 20)
        .await
        .expect("past");
    assert!(past.messages.is_empty(), "nothing after the last message");
}

/// The stream leader of a 3-node cluster is killed while writers append with an
/// expected revision (as commands do) and no idempotency key. Appends in flight
/// are sent again to the new leader once it is elected (within the request
/// timeout), and an attempt whose answer was lost is recognised as stored rather
/// than stored twice or reported as a conflict: every event is in the log at most
/// once, every acknowledged one exactly once, and no writer sees a conflict on its
/// own stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_in_flight_when_the_stream_leader_dies_are_taken_once() {
    let mut cluster = hayabusa_nats::testkit::NatsCluster::start(3);
    let options = NatsOptions {
        replicas: 3,
        request_timeout: Duration::from_secs(5),
        ..options("leaderkill")
    };
    connect(&cluster.urls(), options.clone())
        .await
        .unwrap_or_else(|error| panic!("connect: {error}"));
    let leader = cluster
        .stream_leader("LEADERKILL")
        .await
        .expect("the stream has a leader");
    // Connected to the leader itself (it names the others when asked): its appends in
    // flight at the kill are lost with the connection.
    let log = Arc::new(
        connect(&cluster.servers[leader].url(), options)
            .await
            .unwrap_or_else(|error| panic!("connect: {error}")),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
            tokio::spawn(async move {
                let stream = format!("room-{writer}");
                let mut expected = ExpectedVersion::NoStream;
                let (mut acked, mut refused, mut conflicts) = (Vec::new(), 0, Vec::new());
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let label = format!("w{writer}-{n}");
                    n += 1;
                    let request = AppendRequest {
                        expected,
                        ..request(&stream, &label, None)
                    };
                    match log.append(request).await {
                        Ok(appended) => {
                            expected = ExpectedVersion::Exactly(appended.stream_version);
                            acked.push((label, Instant::now()));
                        }
                        Err(error) => {
                            if let StoreError::Conflict { .. } = error {
                                conflicts.push(format!("{label}: {error}"));
                            } else {
                                refused += 1;
                            }
                            // The outcome is unknown: the next append expects
                            // nothing (and is then sent once only).
                            expected = ExpectedVersion::Any;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                (acked, refused, conflicts)
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(800)).await;
    cluster.servers[leader].kill();
    let killed = Instant::now();
    // Until every writer has had an append acknowledged after the kill.
    let deadline = Instant::now() + Duration::from_secs(60);
    tokio::time::sleep(Duration::from_secs(12)).await;
    stop.store(true, Ordering::SeqCst);
    let mut back_after = Vec::new();
    let mut acked_labels = Vec::new();
    for writer in writers {
        let (acked, refused, conflicts) = writer.await.unwrap();
        assert!(
            conflicts.is_empty(),
            "conflicts on a writer's own stream: {conflicts:?}"
        );
        // The longest time without an acknowledgement, from the kill on.
        let mut times: Vec<Instant> = acked
            .iter()
            .map(|(_, at)| *at)
            .filter(|at| *at > killed)
            .collect();
        times.insert(0, killed);
        let longest = times
            .windows(2)
            .map(|pair| pair[1] - pair[0])
            .max()
            .expect("appends succeed again after the leader's loss");
        back_after.push((longest, refused));
        acked_labels.extend(acked.into_iter().map(|(label, _)| label));
    }
    assert!(Instant::now() < deadline);

    let all = log.read_all(0, 1_000_000).await.expect("read the log");
    let mut counts = std::collections::HashMap::new();
    for event in all
        .iter()
        .filter(|event| !event.event_type.ends_with("-second"))
    {
        *counts.entry(event.event_type.clone()).or_insert(0) += 1;
    }
    assert!(
        counts.values().all(|count| *count == 1),
        "an append was stored twice: {:?}",
        counts
            .iter()
            .filter(|(_, count)| **count > 1)
            .collect::<Vec<_>>()
    );
    for label in &acked_labels {
        assert_eq!(
            counts.get(&format!("test_{label}")),
            Some(&1),
            "acknowledged {label} is not in the log once"
        );
    }
    eprintln!(
        "stream leader killed: {} appends acknowledged; per writer (the longest time \
         without an acknowledgement from the kill on, appends refused): {back_after:?}",
        acked_labels.len()
    );
}
