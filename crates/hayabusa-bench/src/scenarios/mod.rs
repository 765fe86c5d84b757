//! The scenarios, one module each, and the run that strings them together.
//!
//! Every HTTP scenario starts its own server on a fresh data directory, so scenarios
//! do not disturb each other (a server that has just taken 20,000 posts/s has a warm
//! cache and a fragmented heap) and any subset can run alone. Catch-up and recover
//! share one large event log, generated once.

pub mod append;
pub mod baseline;
pub mod catch_up;
pub mod cluster;
pub mod deliver;
pub mod idle;
pub mod post;
pub mod read;
pub mod read_after_write;
pub mod recover;
pub mod webhooks;

use crate::client::Api;
use crate::cpu::CpuSample;
use crate::load::{Ladder, LadderOutcome};
use crate::report::{Provenance, Row, thousands};
use crate::server::{ServerBinary, ServerProcess, admin_token};
use crate::{Backend, RunArgs, Scenario, Sizes, bulk_log};
use anyhow::Context as _;
use hayabusa_nats::testkit::NatsServer;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// What every scenario gets.
pub struct Context {
    /// The options of this run.
    pub args: RunArgs,
    /// Rates, durations and counts.
    pub sizes: Sizes,
    /// The server binary under test.
    pub server: ServerBinary,
    /// The temporary directory holding every data directory and log of the run.
    pub work: PathBuf,
}

/// The engines a server (or `hayabusa::rebuild`) of a run uses besides its data
/// directory; dropping it stops the nats-server and drops the database.
pub struct Engines {
    /// The nats-server holding the event log (shared by the servers of one log).
    pub nats: Option<Arc<NatsServer>>,
    /// The database holding the read models.
    pub database: Option<hayabusa_postgres::testkit::TestDatabase>,
}

impl Engines {
    /// The `hayabusa::Backends` that select these engines.
    pub fn backends(&self) -> hayabusa::Backends {
        use hayabusa::backends::{EventLogBackend, ReadStoreBackend, ServiceUrl};
        let event_log = match &self.nats {
            Some(nats) => EventLogBackend::Nats {
                servers: ServiceUrl::new(nats.url()),
                stream: hayabusa_nats::DEFAULT_STREAM.to_owned(),
                replicas: 1,
            },
            None => EventLogBackend::Embedded,
        };
        let read_store = match &self.database {
            Some(database) => {
                ReadStoreBackend::Postgres(ServiceUrl::new(database.connection_string()))
            }
            None => ReadStoreBackend::Embedded,
        };
        hayabusa::Backends {
            event_log,
            read_store,
            ..hayabusa::Backends::default()
        }
    }
}

/// Starts a nats-server (off the runtime's workers: it waits for the server).
pub async fn start_nats() -> NatsServer {
    tokio::task::spawn_blocking(NatsServer::start)
        .await
        .expect("starting nats-server")
}

/// A server started for one scenario, with a client and the administrator's token.
pub struct Started {
    /// The process.
    pub server: ServerProcess,
    /// The server's own engines (kept while it runs).
    pub _engines: Engines,
    /// A client for it.
    pub api: Api,
    /// The administrator's token (from `admin.token`).
    pub admin_token: String,
}

impl Context {
    /// A new directory `name` under the work directory.
    pub fn fresh_dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = self.work.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }

    /// A log file path for a server started under `name`.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.work.join(format!("{name}.log"))
    }

    /// Starts `hayabusa serve` on a fresh data directory `name`.
    pub async fn start_server(&self, name: &str) -> anyhow::Result<Started> {
        let data_dir = self.fresh_dir(name)?;
        let engines = self.engines().await;
        let binary = self.server_on(&engines);
        let server =
            ServerProcess::start_hayabusa(&binary, &data_dir, &self.log_path(name)).await?;
        let admin_token = admin_token(&data_dir).await?;
        let api = server.api()?;
        Ok(Started {
            server,
            _engines: engines,
            api,
            admin_token,
        })
    }

    /// The server binary with the flags that put it on `engines`.
    pub fn server_on(&self, engines: &Engines) -> ServerBinary {
        let mut binary = self.server.clone();
        binary.extra_args.extend(engines.backends().to_args());
        binary
    }

    /// Fresh engines of this run's backend: a new database (PostgreSQL) and a new
    /// nats-server (JetStream, `sync_interval: always`), as the backend needs.
    pub async fn engines(&self) -> Engines {
        let nats = match self.args.backend {
            Backend::NatsPostgres => Some(Arc::new(start_nats().await)),
            Backend::Sqlite | Backend::Postgres => None,
        };
        self.engines_on_log(nats).await
    }

    /// Engines sharing the event log of `log` (its nats-server, if any) with a fresh
    /// read store.
    pub async fn engines_sharing_log(&self, log: &Engines) -> Engines {
        self.engines_on_log(log.nats.clone()).await
    }

    async fn engines_on_log(&self, nats: Option<Arc<NatsServer>>) -> Engines {
        let database = match self.args.backend {
            Backend::Sqlite => None,
            Backend::Postgres | Backend::NatsPostgres => {
                Some(hayabusa_postgres::testkit::TestDatabase::create().await)
            }
        };
        Engines { nats, database }
    }

    /// The post/read ladder of this run.
    pub fn ladder(&self) -> Ladder {
        Ladder {
            rates: self.sizes.ladder.clone(),
            step: self.sizes.step,
            p99_limit: self.sizes.p99_limit,
            bisections: self.sizes.bisections,
        }
    }

    /// "p99 ≤ 10 ms, 0 errors".
    pub fn criterion(&self) -> String {
        criterion(self.sizes.p99_limit)
    }
}

/// "p99 ≤ 10 ms, 0 errors" for a `p99_limit` of 10 ms.
pub fn criterion(p99_limit: std::time::Duration) -> String {
    format!("p99 ≤ {} ms, 0 errors", p99_limit.as_secs_f64() * 1000.0)
}

/// Runs the selected scenarios, prints the report on stdout, and says whether every
/// scenario worked end to end.
pub async fn run_all(args: RunArgs) -> anyhow::Result<bool> {
    let mut selected = if args.scenarios.is_empty() {
        vec![
            Scenario::Baseline,
            Scenario::Post,
            Scenario::Read,
            Scenario::ReadAfterWrite,
            Scenario::Deliver,
            Scenario::Webhooks,
            Scenario::Idle,
            Scenario::Append,
            Scenario::CatchUp,
            Scenario::Recover,
        ]
    } else {
        args.scenarios.clone()
    };
    if !args.no_baseline
        && selected
            .iter()
            .any(|s| matches!(s, Scenario::Post | Scenario::Read))
    {
        selected.push(Scenario::Baseline);
    }
    selected.sort();
    selected.dedup();
    let has = |scenario: Scenario| selected.contains(&scenario);

    let server = ServerBinary::locate(args.server_bin.clone(), args.server_arg.clone()).await?;
    let work_root = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&work_root)?;
    let work = tempfile::Builder::new()
        .prefix("hayabusa-bench-")
        .tempdir_in(&work_root)
        .with_context(|| format!("creating a work directory in {}", work_root.display()))?;
    let context = Context {
        sizes: args.sizes(),
        args: args.clone(),
        server,
        work: work.path().to_owned(),
    };
    eprintln!(
        "hayabusa-bench: server {} {}, work dir {}",
        context.server.path.display(),
        context.server.extra_args.join(" "),
        context.work.display()
    );
    let provenance = Provenance::now(&context.server.path);
    let started = Instant::now();
    let run_cpu = CpuSample::now();
    let mut rows = Vec::new();

    let mut base: Option<(baseline::Baseline, Option<f64>)> = None;
    if has(Scenario::Baseline) {
        match measured("baseline", baseline::run(&context)).await {
            (Ok(outcome), others) => base = Some((outcome, others)),
            (Err(error), _) => rows.push(Row::failed("baseline", &error)),
        }
    }
    let base_post = base.as_ref().map(|(b, _)| &b.post);
    let base_read = base.as_ref().map(|(b, _)| &b.read);
    if has(Scenario::Post) {
        rows.push(row_of(
            "post",
            measured("post", post::run(&context, base_post)).await,
        ));
    }
    if has(Scenario::Read) {
        rows.push(row_of(
            "read",
            measured("read", read::run(&context, base_read)).await,
        ));
    }
    if has(Scenario::ReadAfterWrite) {
        rows.push(row_of(
            "read-after-write",
            measured("read-after-write", read_after_write::run(&context)).await,
        ));
    }
    if has(Scenario::Deliver) {
        rows.push(row_of(
            "deliver",
            measured("deliver", deliver::run(&context)).await,
        ));
    }
    if has(Scenario::Webhooks) {
        rows.push(row_of(
            "webhooks",
            measured("webhooks", webhooks::run(&context)).await,
        ));
    }
    if has(Scenario::Idle) {
        rows.push(row_of("idle", measured("idle", idle::run(&context)).await));
    }
    if has(Scenario::Append) {
        rows.push(row_of(
            "append",
            measured("append", append::run(&context)).await,
        ));
    }
    if has(Scenario::CatchUp) || has(Scenario::Recover) {
        match measured("bulk log", bulk_log::generate(&context)).await {
            (Ok(bulk), _) => {
                if has(Scenario::CatchUp) {
                    rows.push(row_of(
                        "catch-up",
                        measured("catch-up", catch_up::run(&context, &bulk)).await,
                    ));
                }
                if has(Scenario::Recover) {
                    rows.push(row_of(
                        "recover",
                        measured("recover", recover::run(&context, &bulk)).await,
                    ));
                }
            }
            (Err(error), _) => {
                for (scenario, name) in [
                    (Scenario::CatchUp, "catch-up"),
                    (Scenario::Recover, "recover"),
                ] {
                    if has(scenario) {
                        rows.push(Row::failed(name, &error));
                    }
                }
            }
        }
    }
    if has(Scenario::Cluster) {
        match measured("cluster", cluster::run(&context)).await {
            (Ok(cluster_rows), others) => rows.extend(
                cluster_rows
                    .into_iter()
                    .map(|row| with_background(row, others)),
            ),
            (Err(error), _) => rows.push(Row::failed("cluster", &error)),
        }
    }
    if let Some((base, others)) = &base {
        rows.push(with_background(base.row(&context), *others));
    }
    let others = match (run_cpu, CpuSample::now()) {
        (Some(before), Some(after)) => after.others_since(&before),
        _ => None,
    };

    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    println!(
        "{}",
        crate::report::render(&rows, &command_line, &provenance, others)
    );
    eprintln!(
        "hayabusa-bench: done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if args.keep {
        let kept = work.keep();
        eprintln!("hayabusa-bench: kept {}", kept.display());
    }
    let failed: Vec<&str> = rows
        .iter()
        .filter(|row| !row.works)
        .map(|row| row.scenario.as_str())
        .collect();
    if !failed.is_empty() {
        eprintln!("hayabusa-bench: FAILED: {}", failed.join(", "));
    }
    Ok(failed.is_empty())
}

/// Runs one scenario, logging its start, end and duration, and measures how much of
/// the machine other processes used meanwhile.
async fn measured<T>(
    name: &str,
    future: impl std::future::Future<Output = anyhow::Result<T>>,
) -> (anyhow::Result<T>, Option<f64>) {
    eprintln!("== {name}");
    let started = Instant::now();
    let before = CpuSample::now();
    let result = future.await;
    let others = match (before, CpuSample::now()) {
        (Some(before), Some(after)) => after.others_since(&before),
        _ => None,
    };
    let background = others.map_or_else(String::new, |share| {
        format!(" (other processes: {:.0}% of the machine)", share * 100.0)
    });
    match &result {
        Ok(_) => eprintln!(
            "== {name}: {:.1} s{background}",
            started.elapsed().as_secs_f64()
        ),
        Err(error) => eprintln!("== {name}: FAILED: {error:#}"),
    }
    (result, others)
}

/// Other processes' share of the machine worth a warning next to a figure.
const NOTABLE_BACKGROUND: f64 = 0.05;

fn with_background(mut row: Row, others: Option<f64>) -> Row {
    if let Some(share) = others.filter(|share| *share >= NOTABLE_BACKGROUND) {
        row.result.push_str(&format!(
            " [other processes used {:.0}% of the machine meanwhile]",
            share * 100.0
        ));
    }
    row
}

fn row_of(name: &str, (result, others): (anyhow::Result<Row>, Option<f64>)) -> Row {
    match result {
        Ok(row) => with_background(row, others),
        Err(error) => Row::failed(name, &error),
    }
}

/// The row of a post or read ladder, compared with the baseline's ladder (judged by
/// the ladder's own p99 limit).
pub fn ladder_row(
    context: &Context,
    scenario: &str,
    figure: String,
    target: &str,
    outcome: &LadderOutcome,
    baseline: Option<&LadderOutcome>,
) -> Row {
    let mut result = match outcome.best_step() {
        Some(best) => format!(
            "{}/s (p50 {:.2} ms, p99 {:.2} ms{})",
            thousands(best.rate),
            best.p50_ms(),
            best.p99_ms(),
            cpu_note(best)
        ),
        None => format!("no step met {}", criterion(outcome.p99_limit)),
    };
    if let Some(failure) = outcome.first_failure() {
        result.push_str(&format!(
            "; at {}/s: p99 {:.1} ms, {} errors",
            thousands(failure.rate),
            failure.p99_ms(),
            failure.errors
        ));
        if let Some(error) = &failure.first_error {
            let short: String = error.chars().take(80).collect();
            result.push_str(&format!(" ({short})"));
        }
    } else if !context.args.quick {
        result.push_str("; every step passed (the ladder's top is the limit)");
    }
    let versus = match baseline {
        Some(base) if base.best_rate() > 0.0 => format!(
            "{:.0}% of baseline ({}/s)",
            100.0 * outcome.best_rate() / base.best_rate(),
            thousands(base.best_rate())
        ),
        _ => "–".into(),
    };
    let mut works = outcome.works();
    if let Some(first) = outcome.steps.first()
        && !works
    {
        result.push_str(&format!(
            "; FAILED at the lowest rate: {} ok, {} errors{}",
            first.ok,
            first.errors,
            first
                .first_error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        ));
        works = false;
    }
    Row::new(
        scenario,
        figure,
        format!("{target}; {}", criterion(outcome.p99_limit)),
        result,
        versus,
        works,
    )
}

/// ", server CPU N µs/request" when measured.
pub fn cpu_note(step: &crate::load::StepOutcome) -> String {
    step.server_cpu_per_request_us()
        .map_or_else(String::new, |us| format!(", server CPU {us:.0} µs/request"))
}

/// Reads the soft limit on open files of this process (`/proc/self/limits`).
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

/// Waits until the server has projected up to `position`, polling `/healthz`.
pub async fn wait_projected(
    api: &Api,
    position: u64,
    limit: std::time::Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let health = api.health().await?;
        if health.projected >= position {
            return Ok(());
        }
        if started.elapsed() > limit {
            anyhow::bail!(
                "the projector reached {} of {position} within {limit:?}",
                health.projected
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The data directory's event file.
pub fn events_file(data_dir: &Path) -> PathBuf {
    data_dir.join(hayabusa::data_dir::EVENTS_FILE)
}
