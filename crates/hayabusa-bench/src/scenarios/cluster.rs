//! `cluster`: posting and delivery on a cluster, every process of it on this machine.
//!
//! Whatever `--backend` says, it builds: a 3-node NATS JetStream cluster (replicas 3,
//! `sync_interval: always`), a fresh PostgreSQL database, two `projector` nodes (one
//! projects under a lease, the other stands by) and two `api` nodes, A and B, each a
//! real `hayabusa serve` process with a data directory of its own and the same
//! secret key (so both bootstrap the same administrator token). Then:
//!
//! - **cluster deliver**: as `deliver`, but the posts go through api A and every
//!   member's sync WebSocket is held on api B, so each receipt crosses the cluster
//!   (A → JetStream → projector → PostgreSQL → commit notice → B). One step at the
//!   target rate (in a full run half of it first).
//! - **cluster cpu**: the CPU time (utime + stime from `/proc`) of every process of
//!   the cluster, PostgreSQL's and the benchmark's own during that step at the
//!   target rate, per post.
//! - **cluster post**: the post ladder, request i through node i % 2, judged by
//!   p99 ≤ 25 ms whatever `--p99-ms` says.
//!
//! Delivery runs first so that it meets a cluster the ladder has not overloaded.
//! Every process shares this machine's cores, so the figures are those of a cluster
//! squeezed onto one host, not of three.

use super::{Context, deliver, ladder_row, wait_projected};
use crate::client::Api;
use crate::cpu::{NamedProcess, process_cpu, processes_named, ticks_duration};
use crate::load::{self, CpuProbe, Ladder, request_fn};
use crate::report::{Row, thousands};
use crate::server::{ServerProcess, admin_token};
use crate::setup;
use anyhow::{Context as _, bail};
use hayabusa_nats::testkit::NatsCluster;
use hayabusa_postgres::testkit::TestDatabase;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The p99 a cluster step must meet (the target), whatever `--p99-ms` says.
const P99_TARGET: Duration = Duration::from_millis(25);

/// The load generator's own label in the CPU figures.
const BENCH: &str = "bench";

/// Members of the JetStream cluster (and the stream's replicas).
const NATS_NODES: usize = 3;

/// Members per room of the post ladder; each posts through one of the API nodes.
const POST_MEMBERS: usize = 2;

/// How long a node may take to come up, retries included: it fails to start while
/// JetStream is still electing its leaders.
const START_WITHIN: Duration = Duration::from_secs(60);

/// How long one start attempt may take to answer `/healthz`.
const ATTEMPT_WITHIN: Duration = Duration::from_secs(20);

/// How long API node B may take to see what went through node A.
const CATCH_UP_WITHIN: Duration = Duration::from_secs(60);

/// Runs the scenario; one row per figure (a phase that fails gives a failed row).
pub async fn run(context: &Context) -> anyhow::Result<Vec<Row>> {
    let nats = tokio::task::spawn_blocking(|| NatsCluster::start(NATS_NODES))
        .await
        .context("starting a 3-node NATS JetStream cluster")?;
    eprintln!("  NATS JetStream cluster: {}", nats.urls());
    let database = TestDatabase::create().await;
    let cluster = match Cluster::start(context, nats, &database).await {
        Ok(cluster) => cluster,
        Err(error) => {
            database.drop().await;
            return Err(error);
        }
    };

    let deliver = deliver_phase(context, &cluster).await;
    let post = post_phase(context, &cluster).await;
    let stopped = cluster.stop().await;
    database.drop().await;

    let mut rows = vec![post.unwrap_or_else(|error| Row::failed("cluster post", &error))];
    match deliver {
        Ok((deliver, cpu)) => rows.extend([deliver, cpu]),
        Err(error) => rows.push(Row::failed("cluster deliver", &error)),
    }
    if let Err(error) = stopped {
        rows.push(Row::failed("cluster stop", &error));
    }
    Ok(rows)
}

/// One `hayabusa serve` process of the cluster.
struct Node {
    /// "api A", "projector 1", …
    label: &'static str,
    /// Its data directory.
    dir: PathBuf,
    server: ServerProcess,
}

/// The running cluster.
struct Cluster {
    nats: NatsCluster,
    /// The database's name (its backends show it in their process titles).
    database_name: String,
    projectors: Vec<Node>,
    /// API nodes A and B.
    apis: Vec<Node>,
    /// A client of A and one of B.
    api: [Api; 2],
    /// The administrator's token (the same on both API nodes).
    admin_token: String,
}

impl Cluster {
    /// Starts the projectors, then API nodes A and B, on `nats` and `database`.
    async fn start(
        context: &Context,
        nats: NatsCluster,
        database: &TestDatabase,
    ) -> anyhow::Result<Cluster> {
        let connection = database.connection_string();
        let common: Vec<String> = [
            "--event-log",
            &nats.urls(),
            "--event-log-replicas",
            &NATS_NODES.to_string(),
            "--read-store",
            &connection,
            "--blob-store",
            "nats",
        ]
        .iter()
        .map(|arg| arg.to_string())
        .collect();
        let secret = random_secret()?;
        let mut projectors = Vec::new();
        for label in ["projector 1", "projector 2"] {
            projectors.push(start_node(context, label, "projector", &common, &secret).await?);
        }
        let mut apis = Vec::new();
        for label in ["api A", "api B"] {
            apis.push(start_node(context, label, "api", &common, &secret).await?);
        }
        let admin = admin_token(&apis[0].dir).await?;
        if admin_token(&apis[1].dir).await? != admin {
            bail!("api A and api B bootstrapped different administrator tokens");
        }
        Ok(Cluster {
            nats,
            database_name: database_name(&connection)
                .context("no dbname in the connection string")?,
            api: [apis[0].server.api()?, apis[1].server.api()?],
            projectors,
            apis,
            admin_token: admin,
        })
    }

    /// Waits until API node B has projected what node A has acknowledged.
    async fn b_caught_up(&self) -> anyhow::Result<()> {
        let head = self.api[0].health().await?.log_head;
        wait_projected(&self.api[1], head, CATCH_UP_WITHIN)
            .await
            .context("api B catching up with api A")
    }

    /// The cluster's own processes (not PostgreSQL's), labelled; the projectors'
    /// labels say which one holds the lease now.
    async fn processes(&self) -> Vec<(String, Option<u32>)> {
        let mut processes: Vec<(String, Option<u32>)> = vec![
            ("api A (posts)".into(), self.apis[0].server.pid().ok()),
            ("api B (sockets)".into(), self.apis[1].server.pid().ok()),
        ];
        for node in &self.projectors {
            let state = match node.server.api() {
                Ok(api) => match api.metrics_text().await {
                    Ok(metrics) if projecting(&metrics) => "active",
                    Ok(_) => "standby",
                    Err(_) => "state unknown",
                },
                Err(_) => "state unknown",
            };
            processes.push((format!("{} ({state})", node.label), node.server.pid().ok()));
        }
        for (i, server) in self.nats.servers.iter().enumerate() {
            processes.push((format!("nats-server {}", i + 1), server.pid()));
        }
        processes
    }

    /// Stops every node (SIGTERM, graceful), then the nats-servers.
    async fn stop(self) -> anyhow::Result<()> {
        let mut failures = Vec::new();
        for node in self.apis.into_iter().chain(self.projectors) {
            if let Err(error) = node.server.stop().await {
                failures.push(format!("{}: {error:#}", node.label));
            }
        }
        tokio::task::spawn_blocking(move || drop(self.nats))
            .await
            .context("stopping the nats-servers")?;
        if !failures.is_empty() {
            bail!("{}", failures.join("; "));
        }
        Ok(())
    }
}

/// Starts one node with `role` and the cluster's flags on a fresh data directory
/// holding `secret`, retrying while it fails to come up (JetStream may still be
/// electing its leaders).
async fn start_node(
    context: &Context,
    label: &'static str,
    role: &str,
    common: &[String],
    secret: &[u8],
) -> anyhow::Result<Node> {
    let slug = format!("cluster-{}", label.replace(' ', "-").to_lowercase());
    let dir = context.fresh_dir(&slug)?;
    hayabusa::data_dir::write_private(&dir.join(hayabusa::data_dir::SECRET_FILE), secret)?;
    let log = context.log_path(&slug);
    let mut args = vec!["--role".to_string(), role.to_string()];
    args.extend(common.iter().cloned());
    let started = Instant::now();
    for attempt in 1.. {
        let mut server = ServerProcess::spawn_hayabusa_with(&context.server, &dir, &log, &args)?;
        let api = server.api()?;
        let up = Instant::now();
        while up.elapsed() < ATTEMPT_WITHIN && !server.has_exited() {
            if api.is_up().await {
                eprintln!(
                    "  {label} up on {} after {:.1} s ({attempt} attempt{})",
                    server.addr,
                    started.elapsed().as_secs_f64(),
                    if attempt == 1 { "" } else { "s" }
                );
                return Ok(Node { label, dir, server });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = server.kill9().await;
        if started.elapsed() >= START_WITHIN {
            bail!(
                "{label} did not come up within {START_WITHIN:?} ({attempt} attempts; see {})",
                log.display()
            );
        }
        eprintln!("  {label} did not come up (attempt {attempt}); retrying");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    unreachable!("the attempts never end")
}

/// 32 random bytes for the nodes' shared secret key.
fn random_secret() -> anyhow::Result<[u8; 32]> {
    use std::io::Read;
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut secret))
        .context("reading /dev/urandom")?;
    Ok(secret)
}

/// The `dbname=` of a PostgreSQL connection string (URL or key/value).
fn database_name(connection: &str) -> Option<String> {
    let (_, rest) = connection.rsplit_once("dbname=")?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Whether a node's `/metrics` says its projector holds the lease.
fn projecting(metrics: &str) -> bool {
    metrics.lines().any(|line| {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        name == "hayabusa_projector_active"
            && line
                .split_whitespace()
                .last()
                .and_then(|value| value.parse::<f64>().ok())
                == Some(1.0)
    })
}

/// Posts through api A, receipts on api B; then the CPU of every process.
async fn deliver_phase(context: &Context, cluster: &Cluster) -> anyhow::Result<(Row, Row)> {
    let sizes = &context.sizes;
    let rate = sizes.deliver_rate;
    let rates = if context.args.quick {
        vec![rate]
    } else {
        vec![(rate / 2.0).round(), rate]
    };
    let [api_a, api_b] = &cluster.api;
    let rooms = setup::rooms_with_fresh_members(
        api_a,
        &cluster.admin_token,
        "cluster-deliver",
        sizes.deliver_rooms,
        sizes.deliver_members,
    )
    .await?;
    cluster.b_caught_up().await?;
    let delivery =
        deliver::Delivery::open(api_a, api_b, rooms, rates.len(), sizes.deliver_duration).await?;
    // The CPU row below measures every process; no per-step server figure.
    let no_probe: CpuProbe = Arc::new(|| None);
    let mut steps = Vec::new();
    let mut cpu = None;
    for (step, &rate) in rates.iter().enumerate() {
        let last = step + 1 == rates.len();
        let mut processes = cluster.processes().await;
        processes.push((BENCH.into(), Some(std::process::id())));
        let before = last.then(|| CpuSnapshot::now(&processes));
        let delivered = delivery.step(step, rate, &no_probe).await;
        if let Some(before) = before {
            let after = CpuSnapshot::now(&processes);
            cpu = Some((processes, before, after));
        }
        steps.push(delivered);
    }
    let problems = delivery.finish(&steps).await;
    let (mut result, mut works) = deliver::outcome(&steps, &problems, "post")?;
    let headline = steps.last().context("no deliver step ran")?;
    if !context.args.quick && headline.p99_ms() > P99_TARGET.as_secs_f64() * 1000.0 {
        result.push_str(&format!(
            "; **p99 above the {} ms target**",
            P99_TARGET.as_millis()
        ));
        works = false;
    }
    let deliver_row = Row::new(
        "cluster deliver",
        format!(
            "post through api A → message_created on every member's sync WebSocket on api B ({} rooms × {} members), from intended send time",
            sizes.deliver_rooms, sizes.deliver_members
        ),
        format!(
            "≥ {} posts/s, every receipt; p99 ≤ {} ms",
            thousands(1000.0),
            P99_TARGET.as_millis()
        ),
        result,
        "–",
        works,
    );

    let (processes, before, after) = cpu.context("the target step took no CPU readings")?;
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let usage = cpu_usage(&processes, &before, &after, &cluster.database_name);
    let posts = headline.posts.ok;
    let cpu_row = Row::new(
        "cluster cpu",
        format!(
            "CPU time (utime + stime) per post of each process during cluster deliver at {}/s; every process on this one machine ({cores} cores)",
            thousands(headline.posts.rate)
        ),
        "–",
        cpu_result(&usage, posts, after.at.duration_since(before.at), cores),
        "–",
        posts > 0,
    );
    Ok((deliver_row, cpu_row))
}

/// The post ladder, request i through node i % 2.
async fn post_phase(context: &Context, cluster: &Cluster) -> anyhow::Result<Row> {
    let rooms = setup::rooms_with_fresh_members(
        &cluster.api[0],
        &cluster.admin_token,
        "cluster-post",
        context.sizes.rooms,
        POST_MEMBERS,
    )
    .await?;
    cluster.b_caught_up().await?;
    eprintln!("  {} rooms of {POST_MEMBERS} members ready", rooms.len());
    let rooms = Arc::new(rooms);
    let apis = Arc::new(cluster.api.clone());
    let request = request_fn(move |i, _intended| {
        let apis = Arc::clone(&apis);
        let rooms = Arc::clone(&rooms);
        Box::pin(async move {
            let i = usize::try_from(i).unwrap_or(0);
            let node = i % apis.len();
            // Every room gets posts through both nodes, each member through one.
            let room = &rooms[(i / apis.len()) % rooms.len()];
            let author = &room.members[node % room.members.len()];
            let body = format!("load message {i}: the quick brown fox jumps over the lazy dog");
            apis[node].post_message(&author.token, room.id, &body).await
        })
    });
    let ladder = Ladder {
        p99_limit: P99_TARGET,
        ..context.ladder()
    };
    let pids: Vec<u32> = cluster
        .processes()
        .await
        .into_iter()
        .filter_map(|(_, pid)| pid)
        .collect();
    let cpu: CpuProbe = Arc::new(move || {
        let postgres: u64 = processes_named("postgres").iter().map(|p| p.ticks).sum();
        let ours = pids
            .iter()
            .map(|pid| process_cpu(*pid))
            .sum::<Option<Duration>>()?;
        Some(ours + ticks_duration(postgres))
    });
    let outcome = load::climb("cluster post", &ladder, request, cpu).await;
    let mut row = ladder_row(
        context,
        "cluster post",
        format!(
            "POST /v2/rooms/{{id}}/messages over {} rooms, alternately through api A and api B: highest rate meeting the target",
            context.sizes.rooms
        ),
        "Falcon PoC: 2,000 posts/s (p90 ≤ 30 ms, 3 nodes)",
        &outcome,
        None,
    );
    row.result = row
        .result
        .replace("server CPU", "CPU of the whole cluster incl. PostgreSQL");
    Ok(row)
}

/// CPU readings of the watched processes and of PostgreSQL's.
struct CpuSnapshot {
    at: Instant,
    /// Per watched process, in order; None once it is gone.
    processes: Vec<Option<Duration>>,
    /// Every process named `postgres`.
    postgres: Vec<NamedProcess>,
}

impl CpuSnapshot {
    fn now(processes: &[(String, Option<u32>)]) -> Self {
        CpuSnapshot {
            processes: processes
                .iter()
                .map(|(_, pid)| pid.and_then(process_cpu))
                .collect(),
            postgres: processes_named("postgres"),
            at: Instant::now(),
        }
    }
}

/// What one process (or group) used between two snapshots.
#[derive(Debug, PartialEq)]
struct Usage {
    label: String,
    /// None if it could not be read before and after.
    cpu: Option<Duration>,
    /// Counted in the cluster's total (not the bench, not a part of another figure).
    in_total: bool,
}

/// The CPU each watched process used between `before` and `after` (the last one is
/// the bench itself), then PostgreSQL's (all its processes; processes new since
/// `before` count in full, those that ended are lost) and the part of it in backends
/// of `database`.
fn cpu_usage(
    processes: &[(String, Option<u32>)],
    before: &CpuSnapshot,
    after: &CpuSnapshot,
    database: &str,
) -> Vec<Usage> {
    let mut usage: Vec<Usage> = processes
        .iter()
        .zip(before.processes.iter().zip(&after.processes))
        .enumerate()
        .map(|(i, ((label, _), (before, after)))| Usage {
            label: label.clone(),
            cpu: match (before, after) {
                (Some(before), Some(after)) => after.checked_sub(*before),
                _ => None,
            },
            in_total: i + 1 < processes.len(),
        })
        .collect();
    let bench = usage.pop();
    let earlier: HashMap<u32, u64> = before.postgres.iter().map(|p| (p.pid, p.ticks)).collect();
    let mut all = 0;
    let mut ours = 0;
    for process in &after.postgres {
        let used = process
            .ticks
            .saturating_sub(earlier.get(&process.pid).copied().unwrap_or(0));
        all += used;
        if process
            .command_line
            .split_whitespace()
            .any(|word| word == database)
        {
            ours += used;
        }
    }
    usage.push(Usage {
        label: "PostgreSQL (all its processes)".into(),
        cpu: (!after.postgres.is_empty()).then(|| ticks_duration(all)),
        in_total: true,
    });
    usage.push(Usage {
        label: "of which this database's backends".into(),
        cpu: (!after.postgres.is_empty()).then(|| ticks_duration(ours)),
        in_total: false,
    });
    usage.extend(bench);
    usage
}

/// "api A (posts) 85 µs/post (9% of a core); …; cluster total …" over `window`.
fn cpu_result(usage: &[Usage], posts: u64, window: Duration, cores: usize) -> String {
    if posts == 0 {
        return "no post was acknowledged: nothing to divide by".into();
    }
    let window = window.as_secs_f64().max(1e-9);
    let figure = |cpu: Duration| {
        format!(
            "{:.0} µs/post ({:.0}% of a core)",
            cpu.as_secs_f64() * 1e6 / posts as f64,
            cpu.as_secs_f64() / window * 100.0
        )
    };
    let mut parts: Vec<String> = usage
        .iter()
        .map(|usage| match usage.cpu {
            Some(cpu) => format!("{} {}", usage.label, figure(cpu)),
            None => format!("{} not measured", usage.label),
        })
        .collect();
    let sum = |usage: &mut dyn Iterator<Item = &Usage>| -> Duration {
        usage.filter_map(|usage| usage.cpu).sum()
    };
    let cluster = sum(&mut usage.iter().filter(|usage| usage.in_total));
    let everything = cluster + sum(&mut usage.iter().filter(|usage| usage.label == BENCH));
    parts.push(format!("**cluster total {}**", figure(cluster)));
    if cores > 0 {
        parts.push(format!(
            "with the bench {:.0}% of the machine's {cores} cores",
            everything.as_secs_f64() / window / cores as f64 * 100.0
        ));
    }
    format!(
        "{} posts in {window:.1} s (the step and its receipts): {} (CPU ticks are 10 ms)",
        thousands(posts as f64),
        parts.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_is_read_from_either_form() {
        assert_eq!(
            database_name("postgres://postgres@127.0.0.1:5432/postgres?dbname=hb_test_1_0"),
            Some("hb_test_1_0".into())
        );
        assert_eq!(
            database_name("host=127.0.0.1 user=postgres dbname=hb_test_2_3"),
            Some("hb_test_2_3".into())
        );
        assert_eq!(database_name("postgres://postgres@127.0.0.1/x"), None);
    }

    #[test]
    fn cpu_is_divided_per_process_and_postgres_is_summed_by_pid() {
        let postgres = |pid, ticks, command_line: &str| NamedProcess {
            pid,
            ticks,
            command_line: command_line.into(),
        };
        let at = Instant::now();
        let processes = vec![
            ("api A (posts)".to_string(), Some(10)),
            ("nats-server 1".to_string(), Some(11)),
            (BENCH.to_string(), Some(12)),
        ];
        let before = CpuSnapshot {
            at,
            processes: vec![Some(Duration::from_secs(1)), None, Some(Duration::ZERO)],
            postgres: vec![
                postgres(1, 100, "postgres -D /var/lib/postgresql"),
                postgres(
                    2,
                    50,
                    "postgres: 15/main: postgres hb_test_9_0 127.0.0.1(1) idle",
                ),
                postgres(
                    3,
                    70,
                    "postgres: 15/main: postgres hb_test_9_01 127.0.0.1(2) idle",
                ),
            ],
        };
        let after = CpuSnapshot {
            at: at + Duration::from_secs(2),
            processes: vec![
                Some(Duration::from_millis(1200)),
                Some(Duration::from_secs(5)),
                Some(Duration::from_millis(100)),
            ],
            postgres: vec![
                postgres(1, 110, "postgres -D /var/lib/postgresql"),
                postgres(
                    2,
                    70,
                    "postgres: 15/main: postgres hb_test_9_0 127.0.0.1(1) idle",
                ),
                // Another database's backend, and a backend new since `before`.
                postgres(
                    3,
                    75,
                    "postgres: 15/main: postgres hb_test_9_01 127.0.0.1(2) idle",
                ),
                postgres(
                    4,
                    5,
                    "postgres: 15/main: postgres hb_test_9_0 127.0.0.1(3) idle",
                ),
            ],
        };
        let usage = cpu_usage(&processes, &before, &after, "hb_test_9_0");
        let cpu: Vec<(&str, Option<Duration>, bool)> = usage
            .iter()
            .map(|u| (u.label.as_str(), u.cpu, u.in_total))
            .collect();
        assert_eq!(
            cpu,
            [
                ("api A (posts)", Some(Duration::from_millis(200)), true),
                ("nats-server 1", None, true),
                (
                    "PostgreSQL (all its processes)",
                    Some(Duration::from_millis(400)),
                    true
                ),
                (
                    "of which this database's backends",
                    Some(Duration::from_millis(250)),
                    false
                ),
                (BENCH, Some(Duration::from_millis(100)), false),
            ]
        );
        let text = cpu_result(&usage, 100, Duration::from_secs(2), 2);
        assert!(text.starts_with("100 posts in 2.0 s"), "{text}");
        assert!(
            text.contains("api A (posts) 2000 µs/post (10% of a core)"),
            "{text}"
        );
        assert!(text.contains("nats-server 1 not measured"), "{text}");
        assert!(text.contains("bench 1000 µs/post (5% of a core)"), "{text}");
        assert!(
            text.contains("**cluster total 6000 µs/post (30% of a core)**"),
            "{text}"
        );
        assert!(
            text.contains("with the bench 18% of the machine's 2 cores"),
            "{text}"
        );
        assert_eq!(
            cpu_result(&usage, 0, Duration::from_secs(2), 2),
            "no post was acknowledged: nothing to divide by"
        );
    }

    #[test]
    fn the_active_projector_is_read_from_its_metrics() {
        assert!(projecting(
            "# TYPE hayabusa_projector_active gauge\nhayabusa_projector_active 1\n"
        ));
        assert!(!projecting("hayabusa_projector_active 0\n"));
        assert!(!projecting("hayabusa_projector_active_since 1\n"));
        assert!(!projecting("hayabusa_http_requests 1\n"));
    }
}
