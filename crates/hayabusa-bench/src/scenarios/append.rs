//! `append`: raw event-log appends per second with fsync before acknowledgement,
//! next to raw fsyncs per second on the same disk.
//!
//! Many concurrent appenders call the event log's `append` directly (no HTTP, no
//! domain), each one event per request on its own stream, closed-loop: this measures
//! throughput, and (SQLite) how many events the group commit puts behind one fsync.
//! On `nats-postgres` the log is `NatsEventLog` on a nats-server of its own
//! (`sync_interval: always`: JetStream flushes before it acknowledges). Then a loop of
//! `write 4 KiB + fdatasync` on the same disk shows what the disk does per flush; the
//! ratio of the two is what batching flushes buys.

use super::{Context, events_file};
use crate::Backend;
use crate::load::{self, quantile_ms};
use crate::report::{Row, thousands};
use hayabusa_domain::{AccountId, Event, MessageId, RoomId};
use hayabusa_nats::NatsOptions;
use hayabusa_sqlite::SqliteEventLog;
use hayabusa_store::{AppendRequest, EventAppender, ExpectedVersion, NewEvent};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Upper bound on appends per appender, whatever the duration.
const MAX_APPENDS_PER_APPENDER: u64 = 10_000_000;

/// Upper bound on fsyncs of the raw probe.
const MAX_FSYNCS: u64 = 10_000_000;

/// What a run of appenders measured.
struct Appends {
    events: u64,
    elapsed: Duration,
    latency: hdrhistogram::Histogram<u64>,
    /// Events per fsync (SQLite's group commit reports it; JetStream does not).
    events_per_fsync: Option<f64>,
}

impl Appends {
    fn per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs the scenario in a fresh directory of the work dir.
pub async fn run(context: &Context) -> anyhow::Result<Row> {
    let sizes = &context.sizes;
    let dir = context.fresh_dir("append")?;
    let nats = context.args.backend == Backend::NatsPostgres;
    let per_fsync = |appends: &Appends| {
        appends
            .events_per_fsync
            .map_or_else(String::new, |per| format!(", {per:.1} events per fsync"))
    };
    let many = on_backend(
        nats,
        &dir.join("many"),
        sizes.appenders,
        sizes.append_duration,
    )
    .await?;
    eprintln!(
        "  {} appenders: {:.0} events/s{}, p50 {:.2} ms, p99 {:.2} ms",
        sizes.appenders,
        many.per_second(),
        per_fsync(&many),
        quantile_ms(&many.latency, 0.5),
        quantile_ms(&many.latency, 0.99)
    );
    let one = on_backend(nats, &dir.join("one"), 1, sizes.append_duration / 2).await?;
    eprintln!(
        "  1 appender: {:.0} events/s, p50 {:.2} ms",
        one.per_second(),
        quantile_ms(&one.latency, 0.5)
    );
    let probe_dir = dir.clone();
    let duration = sizes.append_duration;
    let fsyncs = tokio::task::spawn_blocking(move || fsync_probe(&probe_dir, duration)).await??;
    eprintln!("  raw write 4 KiB + fdatasync: {fsyncs:.0}/s");
    let works = many.events > 0 && one.events > 0 && fsyncs > 0.0;
    let engine = if nats {
        "NatsEventLog on JetStream, sync_interval: always"
    } else {
        "SqliteEventLog directly"
    };
    Ok(Row::new(
        "append",
        format!(
            "event-log appends/s, fsync before ack, {} concurrent appenders (1 event each, {engine})",
            sizes.appenders
        ),
        if nats {
            "≥ 20,000/s, next to the disk's fsyncs/s"
        } else {
            "group commit: far more appends/s than fsyncs/s"
        },
        format!(
            "{}/s{}, p99 append {:.2} ms; 1 appender: {}/s",
            thousands(many.per_second()),
            per_fsync(&many),
            quantile_ms(&many.latency, 0.99),
            thousands(one.per_second())
        ),
        format!(
            "raw write 4 KiB + fdatasync: {}/s → {:.0}× that",
            thousands(fsyncs),
            many.per_second() / fsyncs.max(1.0)
        ),
        works,
    ))
}

/// `count` appenders on a new log of the run's backend (in `dir`, or on a nats-server
/// of its own).
async fn on_backend(
    nats: bool,
    dir: &Path,
    count: usize,
    duration: Duration,
) -> anyhow::Result<Appends> {
    if nats {
        let server = super::start_nats().await;
        let log = Arc::new(hayabusa_nats::connect(&server.url(), NatsOptions::default()).await?);
        let appends = appenders(Arc::clone(&log) as Arc<dyn EventAppender>, count, duration).await;
        drop(log);
        tokio::task::spawn_blocking(move || drop(server)).await?;
        return appends;
    }
    std::fs::create_dir_all(dir)?;
    let path = events_file(dir);
    let log = Arc::new(tokio::task::spawn_blocking(move || SqliteEventLog::open(&path)).await??);
    let mut appends =
        appenders(Arc::clone(&log) as Arc<dyn EventAppender>, count, duration).await?;
    appends.events_per_fsync = Some(log.stats().events_per_batch());
    // Dropping the log joins its writer thread: do it off the runtime's workers.
    tokio::task::spawn_blocking(move || drop(log)).await?;
    Ok(appends)
}

/// `count` appenders on `log`, each appending one event per request to its own
/// stream until `duration` has passed.
async fn appenders(
    log: Arc<dyn EventAppender>,
    count: usize,
    duration: Duration,
) -> anyhow::Result<Appends> {
    let payload = sample_event().encode();
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..count)
        .map(|appender| {
            let log = Arc::clone(&log);
            let payload = payload.clone();
            tokio::spawn(async move {
                let mut latency = load::histogram();
                let mut appended = 0u64;
                while Instant::now() < deadline && appended < MAX_APPENDS_PER_APPENDER {
                    let sent = Instant::now();
                    log.append(AppendRequest {
                        stream: format!("bench-{appender}"),
                        expected: ExpectedVersion::Any,
                        events: vec![NewEvent {
                            event_type: "message_posted".into(),
                            schema_version: 1,
                            data: payload.clone(),
                        }],
                        idempotency: None,
                    })
                    .await?;
                    load::record(&mut latency, sent.elapsed());
                    appended += 1;
                }
                anyhow::Ok((appended, latency))
            })
        })
        .collect();
    let mut events = 0;
    let mut latency = load::histogram();
    for task in tasks {
        let (appended, histogram) = task.await??;
        events += appended;
        latency.add(&histogram)?;
    }
    Ok(Appends {
        events,
        elapsed: started.elapsed(),
        latency,
        events_per_fsync: None,
    })
}

/// A realistic payload: an encoded `message_posted` event.
fn sample_event() -> Event {
    Event::MessagePosted {
        room_id: RoomId(4_503_599_627_370_495),
        message_id: MessageId(1_234_567_890_123_456_789),
        seq: 1,
        account_id: AccountId(4_503_599_627_370_001),
        body: "load message: the quick brown fox jumps over the lazy dog".into(),
        mentions: Vec::new(),
        to_all: false,
        self_unread: false,
        at: 1_763_900_000,
    }
}

/// Appends 4 KiB and `fdatasync`s in a loop for `duration`; returns flushes per second.
fn fsync_probe(dir: &Path, duration: Duration) -> anyhow::Result<f64> {
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path)?;
    let block = [0xA5u8; 4096];
    let started = Instant::now();
    let mut flushes = 0u64;
    while started.elapsed() < duration && flushes < MAX_FSYNCS {
        file.write_all(&block)?;
        file.sync_data()?;
        flushes += 1;
    }
    let rate = flushes as f64 / started.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(rate)
}
