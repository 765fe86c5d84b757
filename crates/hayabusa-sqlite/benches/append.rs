//! Append throughput of [`SqliteEventLog`] against the raw fsync rate of the same disk.
//!
//! One run measures, in one temporary directory:
//!
//! 1. raw fsyncs per second: append 4 KiB to a file and `sync_all` it, in a loop (and,
//!    for reference, overwrite the same 4 KiB and `sync_data`);
//! 2. appends per second of the event log with many concurrent tokio tasks, each
//!    appending one ~200-byte JSON event at a time: every task on its own stream with
//!    `ExpectedVersion::Exactly` (without and with an idempotency key), and all tasks
//!    sharing a few hot streams;
//!
//! and prints a markdown table: rate, events per fsync (per committed batch), p50/p99
//! latency and the ratio to the raw `sync_all` rate.
//!
//! ```text
//! cargo bench -p hayabusa-sqlite --bench append                  # full run (~15 s)
//! cargo bench -p hayabusa-sqlite --bench append -- --quick       # smoke run for CI
//! cargo bench -p hayabusa-sqlite --bench append -- --tasks 1024 --dir /mnt/disk
//! ```
//!
//! `HAYABUSA_BENCH_QUICK=1` also selects the quick run. The directory defaults to the
//! system temporary directory; it must be on the disk to measure (not a tmpfs).

use hayabusa_sqlite::SqliteEventLog;
use hayabusa_store::{AppendRequest, EventAppender, ExpectedVersion, IdempotencyKey, NewEvent};
use std::error::Error;
use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// How many streams the tasks share in the hot-streams workload.
const HOT_STREAMS: usize = 16;

struct Options {
    quick: bool,
    tasks: usize,
    dir: Option<PathBuf>,
}

impl Options {
    fn parse() -> BenchResult<Options> {
        let mut options = Options {
            quick: std::env::var("HAYABUSA_BENCH_QUICK").is_ok_and(|value| value != "0"),
            tasks: 512,
            dir: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => options.quick = true,
                "--tasks" => {
                    options.tasks = args.next().ok_or("--tasks needs a number")?.parse()?;
                }
                "--dir" => options.dir = Some(args.next().ok_or("--dir needs a path")?.into()),
                // `cargo bench` passes `--bench`; ignore it and other harness flags.
                _ => {}
            }
        }
        Ok(options)
    }

    fn fsync_duration(&self) -> Duration {
        if self.quick {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(2)
        }
    }

    fn append_duration(&self) -> Duration {
        if self.quick {
            Duration::from_millis(300)
        } else {
            Duration::from_secs(3)
        }
    }
}

/// One row of the result table.
struct Row {
    what: String,
    per_second: f64,
    events_per_fsync: f64,
    p50: Duration,
    p99: Duration,
}

fn main() -> BenchResult<()> {
    let options = Options::parse()?;
    let dir = match &options.dir {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    let mut rows = Vec::new();
    for kind in [FsyncKind::AppendSyncAll, FsyncKind::OverwriteSyncData] {
        rows.push(raw_fsyncs(dir.path(), options.fsync_duration(), kind)?);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let workloads = [
        Workload {
            tasks: options.tasks,
            shared_streams: None,
            idempotency_keys: false,
        },
        Workload {
            tasks: options.tasks,
            shared_streams: None,
            idempotency_keys: true,
        },
        Workload {
            tasks: options.tasks,
            shared_streams: Some(HOT_STREAMS),
            idempotency_keys: false,
        },
    ];
    for (n, workload) in workloads.iter().enumerate() {
        let path = dir.path().join(format!("events-{n}.db"));
        rows.push(runtime.block_on(appends(&path, workload, options.append_duration()))?);
    }

    let baseline = rows[0].per_second;
    println!(
        "\nSqliteEventLog append benchmark ({} run, {} tasks, in {})\n",
        if options.quick { "quick" } else { "full" },
        options.tasks,
        dir.path().display()
    );
    println!(
        "| Measurement | Rate (/s) | Events per fsync | p50 latency | p99 latency | × raw fsync/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {:.0} | {:.1} | {:.2} ms | {:.2} ms | {:.1} |",
            row.what,
            row.per_second,
            row.events_per_fsync,
            row.p50.as_secs_f64() * 1e3,
            row.p99.as_secs_f64() * 1e3,
            row.per_second / baseline,
        );
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum FsyncKind {
    /// Append 4 KiB and `fsync` (data and metadata): the baseline.
    AppendSyncAll,
    /// Overwrite the same 4 KiB and `fdatasync`: the cheapest durable write.
    OverwriteSyncData,
}

/// Durable 4 KiB writes per second for `duration`.
fn raw_fsyncs(dir: &Path, duration: Duration, kind: FsyncKind) -> BenchResult<Row> {
    let path = dir.join("raw-fsync.bin");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let block = vec![0xA5_u8; 4096];
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed() < duration {
        let began = Instant::now();
        match kind {
            FsyncKind::AppendSyncAll => {
                file.write_all(&block)?;
                file.sync_all()?;
            }
            FsyncKind::OverwriteSyncData => {
                file.seek(SeekFrom::Start(0))?;
                file.write_all(&block)?;
                file.sync_data()?;
            }
        }
        latencies.push(began.elapsed());
    }
    let elapsed = started.elapsed();
    drop(file);
    std::fs::remove_file(&path)?;
    let count = latencies.len();
    let (p50, p99) = percentiles(&mut latencies);
    Ok(Row {
        what: match kind {
            FsyncKind::AppendSyncAll => "raw: append 4 KiB + fsync (sync_all)".to_owned(),
            FsyncKind::OverwriteSyncData => "raw: overwrite 4 KiB + fdatasync".to_owned(),
        },
        per_second: count as f64 / elapsed.as_secs_f64(),
        events_per_fsync: 1.0,
        p50,
        p99,
    })
}

/// Who appends where.
struct Workload {
    /// Concurrent appending tasks.
    tasks: usize,
    /// `None`: each task appends to its own stream with `ExpectedVersion::Exactly`.
    /// `Some(n)`: the tasks share `n` streams and append with `ExpectedVersion::Any`.
    shared_streams: Option<usize>,
    /// Whether each append carries a unique idempotency key.
    idempotency_keys: bool,
}

impl Workload {
    fn describe(&self) -> String {
        let streams = match self.shared_streams {
            None => "own stream each".to_owned(),
            Some(streams) => format!("{streams} shared streams"),
        };
        let keys = if self.idempotency_keys {
            "idempotency key"
        } else {
            "no key"
        };
        format!(
            "SqliteEventLog: {} tasks, {streams}, 1 event/append, {keys}",
            self.tasks
        )
    }
}

/// Appends per second of `workload` for `duration` on a new log at `path`.
async fn appends(path: &Path, workload: &Workload, duration: Duration) -> BenchResult<Row> {
    let log = Arc::new(SqliteEventLog::open(path)?);
    let started = Instant::now();
    let deadline = started + duration;
    let mut handles = Vec::with_capacity(workload.tasks);
    for task in 0..workload.tasks {
        let log = Arc::clone(&log);
        let shared_streams = workload.shared_streams;
        let idempotency_keys = workload.idempotency_keys;
        handles.push(tokio::spawn(async move {
            let stream = format!("room-{}", shared_streams.map_or(task, |n| task % n));
            // A message_created-like payload of about 200 bytes.
            let data = serde_json::to_vec(&serde_json::json!({
                "room_id": 1_000_000 + task,
                "message_id": format!("{:020}", 7_000_000_000_u64 + task as u64),
                "account_id": 42,
                "body": "[To:42] Hello, this is a benchmark message of about two hundred bytes.",
                "send_time": 1_700_000_000,
            }))?;
            let mut latencies = Vec::new();
            let mut version = 0;
            while Instant::now() < deadline {
                let request = AppendRequest {
                    stream: stream.clone(),
                    expected: match shared_streams {
                        None => ExpectedVersion::Exactly(version),
                        Some(_) => ExpectedVersion::Any,
                    },
                    events: vec![NewEvent {
                        event_type: "message_created".to_owned(),
                        schema_version: 1,
                        data: data.clone(),
                    }],
                    idempotency: idempotency_keys.then(|| IdempotencyKey {
                        key: format!("task-{task}/{version}"),
                        fingerprint: format!("{version:016x}"),
                    }),
                };
                let began = Instant::now();
                log.append(request).await?;
                latencies.push(began.elapsed());
                version += 1;
            }
            BenchResult::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for handle in handles {
        latencies.extend(handle.await??);
    }
    let elapsed = started.elapsed();
    let stats = log.stats();
    let count = latencies.len();
    let (p50, p99) = percentiles(&mut latencies);
    Ok(Row {
        what: workload.describe(),
        per_second: count as f64 / elapsed.as_secs_f64(),
        events_per_fsync: stats.events_per_batch(),
        p50,
        p99,
    })
}

/// The median and 99th percentile of `latencies` (sorted in place).
fn percentiles(latencies: &mut [Duration]) -> (Duration, Duration) {
    if latencies.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    latencies.sort_unstable();
    let at = |fraction: f64| {
        let index = ((latencies.len() - 1) as f64 * fraction).round() as usize;
        latencies[index]
    };
    (at(0.50), at(0.99))
}
