//! `hayabusa-bench`: an open-loop load generator for the real `hayabusa` binary.
//!
//! It starts the server as a child process on a temporary data directory, sets up its
//! own accounts and rooms through the API, runs the chosen scenarios (one module each
//! under `scenarios/`), and prints one markdown table with the machine, the commit and
//! the command line. The same generator runs against a bare axum hello-world
//! (`hayabusa-bench baseline-server`, started as a child process too) so that the
//! HTTP figures can be read as a fraction of what the machine and the generator can
//! do at all. `--quick` shrinks every rate, duration and count so that the whole run
//! takes seconds and only checks that each scenario works end to end.

mod bulk_log;
mod client;
mod cpu;
mod load;
mod report;
mod scenarios;
mod server;
mod setup;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "hayabusa-bench",
    version,
    about = "Open-loop load generator for the hayabusa server",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a bare axum hello-world JSON handler on every path (the baseline).
    BaselineServer {
        /// Address to listen on (loopback only).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
}

/// The scenarios, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Scenario {
    /// POST /v2/rooms/{id}/messages across many rooms, stepped rates.
    Post,
    /// GET /v2/rooms/{id}/messages?force=1 across many rooms, stepped rates.
    Read,
    /// Read latency of other members' just-acknowledged messages, quiet and while
    /// posting at a fixed rate.
    ReadAfterWrite,
    /// Post → receipt on every member's sync WebSocket.
    Deliver,
    /// Post → webhook delivery to 10 webhooks, and the catch-up after an outage.
    Webhooks,
    /// Server memory per idle authenticated sync WebSocket.
    Idle,
    /// Raw event-log appends/s (fsync before ack) next to raw fsyncs/s.
    Append,
    /// Projector replay rate from an empty read store (`hayabusa::rebuild`).
    CatchUp,
    /// Time from kill -9 to ready with a large event log.
    Recover,
    /// Post ladder, delivery across nodes and CPU per process on a cluster on this
    /// machine (3 nats-servers, PostgreSQL, 2 projector and 2 API nodes); whatever
    /// `--backend` says. Not run by default.
    Cluster,
    /// The bare axum hello-world (run automatically with post and read).
    Baseline,
}

/// The engines of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The embedded SQLite files.
    Sqlite,
    /// The event log in SQLite, the read models in PostgreSQL.
    Postgres,
    /// The event log on NATS JetStream, the read models in PostgreSQL.
    NatsPostgres,
}

#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// Tiny rates, durations and counts: checks that every scenario works end to end
    /// in seconds and exits non-zero if one does not.
    #[arg(long)]
    pub quick: bool,
    /// Scenarios to run, comma-separated (default: all but `cluster`).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub scenarios: Vec<Scenario>,
    /// Do not add the baseline to post and read (the table then has no ratios).
    #[arg(long)]
    pub no_baseline: bool,
    /// The hayabusa server binary (default: `hayabusa` next to this executable).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// The engines the server runs on: `sqlite` (the data directory's files),
    /// `postgres` (the read models in PostgreSQL: a fresh database per server, made
    /// through `HAYABUSA_TEST_POSTGRES`, by default the local server as `postgres`),
    /// `nats-postgres` (also the event log on NATS JetStream: a nats-server per
    /// server from `scripts/setup-tools`, `sync_interval: always`, on this machine).
    #[arg(long, value_enum, default_value_t = Backend::Sqlite)]
    pub backend: Backend,
    /// Extra argument for `hayabusa serve` (repeatable), e.g. `--server-arg=--worker-id=1`.
    #[arg(long, allow_hyphen_values = true)]
    pub server_arg: Vec<String>,
    /// Where temporary data directories go (default: the system temp dir). Pick a
    /// directory on the disk you want to measure: the append and recover figures are
    /// fsync-bound.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Keep the temporary data directories (and server logs) after the run.
    #[arg(long)]
    pub keep: bool,
    /// Seconds per rate step of the post/read ladders (default: 4, quick 1).
    #[arg(long)]
    pub step_secs: Option<f64>,
    /// Rates (requests/s) of the post/read ladders, comma-separated, ascending
    /// (default: 250 … 64000, quick 20,40).
    #[arg(long, value_delimiter = ',')]
    pub rates: Vec<f64>,
    /// p99 limit in milliseconds for a rate step to pass.
    #[arg(long, default_value_t = 10.0)]
    pub p99_ms: f64,
    /// Rooms the post and read scenarios spread their requests over (default: 100, quick 4).
    #[arg(long)]
    pub rooms: Option<usize>,
    /// Posts per second during the read-after-write scenario's busy phase (default:
    /// 5000, quick 50).
    #[arg(long)]
    pub raw_post_rate: Option<f64>,
    /// Reads per second of each kind (list, by id) in the read-after-write scenario
    /// (default: 1000, quick 20).
    #[arg(long)]
    pub raw_read_rate: Option<f64>,
    /// Seconds of each read-after-write phase (default: 10, quick 2).
    #[arg(long)]
    pub raw_secs: Option<f64>,
    /// Posts per second of the deliver scenario (default: 1000, quick 20).
    #[arg(long)]
    pub deliver_rate: Option<f64>,
    /// Rooms of the deliver scenario, 10 members each (default: 20, quick 2).
    #[arg(long)]
    pub deliver_rooms: Option<usize>,
    /// Idle WebSocket connections to open (default: 10000, quick 50).
    #[arg(long)]
    pub idle_connections: Option<usize>,
    /// Events in the log for catch-up and recover (default: 1000000, quick 5000).
    #[arg(long)]
    pub bulk_events: Option<u64>,
    /// Concurrent appenders of the append scenario (default: 256, quick 8).
    #[arg(long)]
    pub appenders: Option<usize>,
}

impl RunArgs {
    fn pick<T>(&self, given: Option<T>, full: T, quick: T) -> T {
        given.unwrap_or(if self.quick { quick } else { full })
    }

    /// The sizes of this run, from the flags and the mode.
    pub fn sizes(&self) -> Sizes {
        let quick = self.quick;
        Sizes {
            step: Duration::from_secs_f64(self.pick(self.step_secs, 4.0, 1.0)),
            p99_limit: Duration::from_secs_f64(self.p99_ms / 1000.0),
            ladder: if !self.rates.is_empty() {
                self.rates.clone()
            } else if quick {
                vec![20.0, 40.0]
            } else {
                vec![
                    250.0, 500.0, 1000.0, 2000.0, 3000.0, 4000.0, 6000.0, 8000.0, 12000.0, 16000.0,
                    24000.0, 32000.0, 48000.0, 64000.0,
                ]
            },
            bisections: if quick { 0 } else { 2 },
            rooms: self.pick(self.rooms, 100, 4),
            read_seed_messages: if quick { 10 } else { 100 },
            raw_post_rate: self.pick(self.raw_post_rate, 5000.0, 50.0),
            raw_read_rate: self.pick(self.raw_read_rate, 1000.0, 20.0),
            raw_duration: Duration::from_secs_f64(self.pick(self.raw_secs, 10.0, 2.0)),
            deliver_rate: self.pick(self.deliver_rate, 1000.0, 20.0),
            deliver_duration: Duration::from_secs(if quick { 2 } else { 10 }),
            deliver_rooms: self.pick(self.deliver_rooms, 20, 2),
            deliver_members: 10,
            idle_connections: self.pick(self.idle_connections, 10_000, 50),
            idle_accounts: if quick { 10 } else { 1000 },
            appenders: self.pick(self.appenders, 256, 8),
            append_duration: Duration::from_secs(if quick { 1 } else { 5 }),
            bulk_events: self.pick(self.bulk_events, 1_000_000, 5_000),
            bulk_rooms: if quick { 5 } else { 100 },
            bulk_batch: if quick { 100 } else { 1000 },
            projection_timeout: Duration::from_secs(if quick { 60 } else { 900 }),
        }
    }
}

/// Every rate, duration and count of a run.
#[derive(Clone, Debug)]
pub struct Sizes {
    /// Duration of one rate step.
    pub step: Duration,
    /// A step passes with p99 at or below this and no errors.
    pub p99_limit: Duration,
    /// Rates (requests/s) of the post and read ladders, climbed until one fails.
    pub ladder: Vec<f64>,
    /// Extra steps halving the gap between the last passing and the first failing rate.
    pub bisections: usize,
    /// Rooms of the post and read scenarios.
    pub rooms: usize,
    /// Messages posted to each room before the read scenario.
    pub read_seed_messages: usize,
    /// Posts/s during the read-after-write scenario's busy phase.
    pub raw_post_rate: f64,
    /// Reads/s of each kind in the read-after-write scenario.
    pub raw_read_rate: f64,
    /// Duration of each read-after-write phase.
    pub raw_duration: Duration,
    /// Posts/s of the deliver scenario.
    pub deliver_rate: f64,
    /// How long the deliver scenario posts.
    pub deliver_duration: Duration,
    /// Rooms of the deliver scenario.
    pub deliver_rooms: usize,
    /// Members (each with a WebSocket) per deliver room.
    pub deliver_members: usize,
    /// WebSockets of the idle scenario.
    pub idle_connections: usize,
    /// Accounts the idle WebSockets are spread over.
    pub idle_accounts: usize,
    /// Concurrent appenders of the append scenario.
    pub appenders: usize,
    /// How long the append scenario (and the fsync probe) runs.
    pub append_duration: Duration,
    /// Events in the bulk log (catch-up, recover).
    pub bulk_events: u64,
    /// Rooms the bulk log's messages are spread over.
    pub bulk_rooms: usize,
    /// Events per append request when filling the bulk log.
    pub bulk_batch: usize,
    /// How long the server may take to project the bulk log.
    pub projection_timeout: Duration,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    match cli.command {
        Some(Command::BaselineServer { listen }) => {
            runtime.block_on(scenarios::baseline::serve(listen))
        }
        None => {
            let passed = runtime.block_on(scenarios::run_all(cli.run))?;
            // Children are killed on drop; do not wait for lingering reader tasks.
            runtime.shutdown_timeout(Duration::from_secs(2));
            if !passed {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
