//! Real nats-server processes for tests.
//!
//! [`NatsServer::start`] runs the nats-server binary from `$HAYABUSA_NATS_SERVER`, or
//! else from `.tools/venv/bin/nats-server` at the repository root (installed by
//! `scripts/setup-tools`), on a free local port with JetStream on file storage in a
//! temporary directory and `sync_interval: always`, so that every acknowledged append
//! is fsync'd. A missing binary is a test failure that says how to install it, never
//! a skipped test. The server can be killed with SIGKILL and restarted on the same
//! port and store, and is killed when dropped. [`NatsCluster`] runs several as one
//! JetStream cluster.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a starting server may take to say it is ready.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// The nats-server binary to run; panics with instructions if there is none.
pub fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("HAYABUSA_NATS_SERVER") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "HAYABUSA_NATS_SERVER points at {}, which is not a file",
            path.display()
        );
        return path;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/nats-server");
    assert!(
        path.is_file(),
        "nats-server is not installed at {}: run scripts/setup-tools (or set \
         HAYABUSA_NATS_SERVER to a nats-server binary) to run the NATS tests",
        path.display()
    );
    path
}

/// A free TCP port on 127.0.0.1 (free when asked; bound again by the server).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// A nats-server process of a test.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    child: Option<Child>,
    port: u16,
    jetstream: bool,
    /// Its cluster: the cluster port, and the cluster ports of every member.
    cluster: Option<(u16, Vec<u16>)>,
    dir: tempfile::TempDir,
    /// Log of the current run.
    log: PathBuf,
    runs: usize,
}

impl NatsServer {
    /// Starts a single server with JetStream (`sync_interval: always`).
    pub fn start() -> NatsServer {
        NatsServer::start_with(true)
    }

    /// Starts a single server without JetStream.
    pub fn start_without_jetstream() -> NatsServer {
        NatsServer::start_with(false)
    }

    fn start_with(jetstream: bool) -> NatsServer {
        let mut server = NatsServer::new(jetstream, None);
        server.run();
        server
    }

    fn new(jetstream: bool, cluster: Option<(u16, Vec<u16>)>) -> NatsServer {
        let binary = nats_server_binary();
        let dir = tempfile::Builder::new()
            .prefix("hayabusa-nats-")
            .tempdir()
            .expect("temporary directory for nats-server");
        NatsServer {
            binary,
            child: None,
            port: free_port(),
            jetstream,
            cluster,
            log: dir.path().join("nats-server-0.log"),
            dir,
            runs: 0,
        }
    }

    /// The server's name (unique: it holds the client port).
    pub fn name(&self) -> String {
        format!("hayabusa-test-{}", self.port)
    }

    /// The client URL (`nats://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id of the current run (None while killed).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The JetStream store directory.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("jetstream")
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Kills the server with SIGKILL (no shutdown, no flush) and waits for it to end.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `Child::kill` sends SIGKILL on Unix.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store (after [`NatsServer::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }

    /// What the server logged in its current run.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The configuration of JetStream stream `stream` on this server, or None if
    /// there is no such stream.
    pub async fn stream_config(&self, stream: &str) -> Option<serde_json::Value> {
        let client = async_nats::connect(self.url())
            .await
            .unwrap_or_else(|error| panic!("connect to {}: {error}", self.url()));
        crate::api::Api::new(client, stream.to_owned(), Duration::from_secs(5))
            .stream_config()
            .await
            .unwrap_or_else(|error| panic!("stream info of {stream}: {error}"))
    }

    fn config(&self) -> String {
        let mut config = format!(
            "listen: \"127.0.0.1:{port}\"\nserver_name: \"{name}\"\n",
            port = self.port,
            name = self.name()
        );
        if let Some((port, members)) = &self.cluster {
            let routes: Vec<String> = members
                .iter()
                .map(|member| format!("\"nats-route://127.0.0.1:{member}\""))
                .collect();
            config.push_str(&format!(
                "cluster {{\n  name: \"hayabusa-test\"\n  listen: \"127.0.0.1:{port}\"\n  \
                 routes: [{}]\n}}\n",
                routes.join(", ")
            ));
        }
        if self.jetstream {
            config.push_str(&format!(
                "jetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n",
                self.store_dir().display()
            ));
        }
        config
    }

    fn run(&mut self) {
        let config_path = self.dir.path().join("nats-server.conf");
        std::fs::write(&config_path, self.config()).expect("write the nats-server config");
        self.log = self
            .dir
            .path()
            .join(format!("nats-server-{}.log", self.runs));
        self.runs += 1;
        let log = std::fs::File::create(&self.log).expect("create the nats-server log");
        let errors = log.try_clone().expect("clone the log file");
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(errors))
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", self.binary.display()));
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if self.log().contains("Server is ready") {
                return;
            }
            if !self.is_running() {
                panic!("nats-server exited while starting:\n{}", self.log());
            }
            if started.elapsed() > READY_WITHIN {
                panic!(
                    "nats-server did not become ready within {READY_WITHIN:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Several nats-servers forming one JetStream cluster on local ports (each with
/// `sync_interval: always` and a store of its own).
#[derive(Debug)]
pub struct NatsCluster {
    /// The members, in start order.
    pub servers: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `size` servers routed to each other.
    pub fn start(size: usize) -> NatsCluster {
        let cluster_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let mut servers: Vec<NatsServer> = cluster_ports
            .iter()
            .map(|port| NatsServer::new(true, Some((*port, cluster_ports.clone()))))
            .collect();
        for server in &mut servers {
            server.run();
        }
        let cluster = NatsCluster { servers };
        cluster.wait_for_jetstream();
        cluster
    }

    /// Waits until every member answers JetStream API requests (a meta leader is
    /// elected).
    fn wait_for_jetstream(&self) {
        let urls: Vec<String> = self.servers.iter().map(NatsServer::url).collect();
        let started = Instant::now();
        // A thread of its own: the caller may be inside a runtime.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to ask the cluster");
            runtime.block_on(async {
                for url in urls {
                    loop {
                        let answered = match async_nats::connect(url.as_str()).await {
                            Ok(client) => {
                                match tokio::time::timeout(
                                    Duration::from_secs(2),
                                    client.request("$JS.API.INFO", "{}".into()),
                                )
                                .await
                                {
                                    Ok(Ok(answer)) => {
                                        serde_json::from_slice::<serde_json::Value>(&answer.payload)
                                            .is_ok_and(|info| info.get("error").is_none())
                                    }
                                    _ => false,
                                }
                            }
                            Err(_) => false,
                        };
                        if answered {
                            break;
                        }
                        assert!(
                            started.elapsed() < READY_WITHIN,
                            "the JetStream cluster elected no leader within {READY_WITHIN:?}"
                        );
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            });
        })
        .join()
        .expect("the cluster answers");
    }

    /// Every member's client URL, comma-separated (what `--event-log` takes).
    pub fn urls(&self) -> String {
        self.servers
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits (at most `timeout`) until every running member answers for stream
    /// `stream` with a leader and every replica current: after a restart, until the
    /// restarted member has caught up. Panics past `timeout`.
    pub async fn wait_until_current(&mut self, stream: &str, timeout: Duration) {
        let started = Instant::now();
        let mut last = String::new();
        'again: while started.elapsed() < timeout {
            let running: Vec<String> = self
                .servers
                .iter_mut()
                .filter_map(|server| server.is_running().then(|| server.url()))
                .collect();
            for url in &running {
                let Ok(client) = async_nats::connect(url.as_str()).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue 'again;
                };
                let info: Option<serde_json::Value> = match client
                    .request(format!("$JS.API.STREAM.INFO.{stream}"), "{}".into())
                    .await
                {
                    Ok(answer) => serde_json::from_slice(&answer.payload).ok(),
                    Err(_) => None,
                };
                let current = info.as_ref().is_some_and(|info| {
                    info["cluster"]["leader"].is_string()
                        && info["cluster"]["replicas"]
                            .as_array()
                            .is_some_and(|replicas| {
                                replicas.iter().all(|replica| replica["current"] == true)
                            })
                });
                if !current {
                    last = format!(
                        "{url}: {}",
                        info.map(|info| info["cluster"].to_string())
                            .unwrap_or_default()
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue 'again;
                }
            }
            return;
        }
        panic!("stream {stream} was not current on every member within {timeout:?}: {last}");
    }

    /// The index of the member leading stream `stream` (asked of any running
    /// member), or None while it has no leader.
    pub async fn stream_leader(&mut self, stream: &str) -> Option<usize> {
        let running: Vec<String> = self
            .servers
            .iter_mut()
            .filter_map(|server| server.is_running().then(|| server.url()))
            .collect();
        for url in running {
            let Ok(client) = async_nats::connect(url).await else {
                continue;
            };
            let Ok(answer) = client
                .request(format!("$JS.API.STREAM.INFO.{stream}"), "{}".into())
                .await
            else {
                continue;
            };
            let info: serde_json::Value = serde_json::from_slice(&answer.payload).ok()?;
            let leader = info["cluster"]["leader"].as_str()?;
            return self
                .servers
                .iter()
                .position(|server| server.name() == leader);
        }
        None
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
