//! `hayabusa`: serve the API, rebuild read models, back up and restore, manage
//! accounts and forwarders.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use hayabusa::{Config, config_file, data_dir};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// mimalloc: the server allocates many short-lived buffers per request (measured with
/// the read benchmark: see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "hayabusa",
    version,
    about = "A ChatWork-compatible, event-sourced chat backend"
)]
struct Cli {
    /// A TOML file of settings: `name = value` for any flag that has an environment
    /// variable HAYABUSA_NAME (e.g. `event_log = "nats://…"`). Flags beat the
    /// environment, which beats the file.
    #[arg(long, global = true, env = config_file::CONFIG_ENV, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// Parses the command line, with the defaults of `--config FILE` if one is given.
fn parse_cli() -> anyhow::Result<Cli> {
    use clap::{CommandFactory, FromArgMatches};
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut command = Cli::command();
    if let Some(path) = config_file::path_from(&args) {
        command = config_file::apply(command, &path)?;
    }
    let matches = command.get_matches_from(args);
    Ok(Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit()))
}

// Parsed once per process: the size of `Serve` costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the server: on the embedded SQLite stores, or with the event log on NATS
    /// JetStream (--event-log) and the read models on PostgreSQL (--read-store).
    Serve {
        /// Data directory (created if missing).
        #[arg(long, env = "HAYABUSA_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// Address to listen on.
        #[arg(long, env = "HAYABUSA_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// What this process does: `all` (the API and the projector; a single node),
        /// `api` (a stateless API node of a cluster) or `projector` (a cluster's
        /// projector: one of them projects at a time, under a lease). `api` and
        /// `projector` need --event-log nats://… and --read-store postgres://….
        #[arg(long, env = "HAYABUSA_ROLE", default_value = "all", value_parser = hayabusa::Role::parse)]
        role: hayabusa::Role,
        /// Snowflake worker id of this process (0–31). In a cluster it is leased:
        /// this one if free, otherwise any free one.
        #[arg(long, env = "HAYABUSA_WORKER_ID", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..32))]
        worker_id: u64,
        /// Browser origins allowed to open the sync WebSocket, comma-separated
        /// (same-origin pages and non-browser clients are always allowed).
        #[arg(long, env = "HAYABUSA_WS_ALLOWED_ORIGINS", value_delimiter = ',')]
        ws_allowed_origins: Vec<String>,
        #[command(flatten)]
        stores: StoreArgs,
        #[command(flatten)]
        rate_limits: RateLimitArgs,
        /// Largest file upload accepted, in bytes (413 above).
        #[arg(long, env = "HAYABUSA_MAX_UPLOAD_BYTES", default_value_t = 5 * 1024 * 1024)]
        max_upload_bytes: usize,
        /// Rooms whose latest 100 messages are kept rendered in memory for
        /// `GET /rooms/{id}/messages?force=1` (about 30 KB each; 0 turns it off).
        #[arg(long, env = "HAYABUSA_PAGE_CACHE_ROOMS", default_value_t = hayabusa_app::page_cache::DEFAULT_CAPACITY)]
        page_cache_rooms: usize,
        #[command(flatten)]
        connections: ConnectionArgs,
        /// The URL clients reach the server at, e.g. https://chat.example.com
        /// (download, link, icon and avatar URLs start with it) [default: http:// and
        /// the listening address].
        #[arg(long, env = "HAYABUSA_PUBLIC_URL")]
        public_url: Option<String>,
        /// Proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-Proto and
        /// X-Forwarded-Host are believed; from anyone else they are ignored.
        #[arg(long, env = "HAYABUSA_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_proxy)]
        trusted_proxies: Vec<ipnet::IpNet>,
        /// Longest a read waits for the read models to reach the writes acknowledged
        /// before it, in milliseconds; past it the read is answered 503 with
        /// `Retry-After` (never stale).
        #[arg(long, env = "HAYABUSA_MAX_READ_WAIT_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
        max_read_wait_ms: u64,
        /// Let webhooks reach private, loopback and link-local addresses (closed
        /// networks, tests); refused otherwise, also after DNS resolution.
        #[arg(long, env = "HAYABUSA_WEBHOOK_ALLOW_PRIVATE_NETWORKS", value_parser = clap::builder::BoolishValueParser::new())]
        webhook_allow_private_networks: bool,
        /// Let webhooks have plain http:// URLs (https only otherwise).
        #[arg(long, env = "HAYABUSA_WEBHOOK_ALLOW_HTTP", value_parser = clap::builder::BoolishValueParser::new())]
        webhook_allow_http: bool,
        /// Seconds before the first retry of a failed webhook or forwarder delivery;
        /// each next wait doubles (with ±20% jitter, at least the receiver's
        /// Retry-After).
        #[arg(long, env = "HAYABUSA_DELIVERY_RETRY_FIRST_SECS", default_value_t = 1.0, value_parser = positive_secs)]
        delivery_retry_first_secs: f64,
        /// Longest wait between two attempts at a delivery, in seconds.
        #[arg(long, env = "HAYABUSA_DELIVERY_RETRY_LONGEST_SECS", default_value_t = 3_600.0, value_parser = positive_secs)]
        delivery_retry_longest_secs: f64,
        /// Seconds after its first failure at which a delivery is given up: a
        /// webhook goes on with the next event, a forwarder puts the event in its dead
        /// letters.
        #[arg(long, env = "HAYABUSA_DELIVERY_GIVE_UP_SECS", default_value_t = 86_400.0, value_parser = positive_secs)]
        delivery_give_up_secs: f64,
    },
    /// Drop the read models and rebuild them from the event log (server stopped).
    Rebuild {
        /// Data directory.
        #[arg(long, env = "HAYABUSA_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        #[command(flatten)]
        stores: StoreArgs,
    },
    /// Back up a data directory (the server may be running) into a new directory:
    /// a snapshot of the event log, the secret key, the admin token and the uploaded
    /// files, with a manifest of checksums.
    Backup {
        /// Data directory to back up.
        #[arg(long, env = "HAYABUSA_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// Directory to write the backup to (must be new or empty).
        #[arg(long)]
        to: PathBuf,
    },
    /// Restore a backup into a new data directory and rebuild its read models.
    Restore {
        /// Backup directory written by `hayabusa backup`.
        #[arg(long)]
        from: PathBuf,
        /// Data directory to create (must be new or empty).
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Accounts, through the API of a running server.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Forwarders (every domain event to other systems) and their dead letters,
    /// through the API of a running server.
    Forwarder {
        #[command(subcommand)]
        command: ForwarderCommand,
    },
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create an account and print it with its token (as JSON).
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Make it a server administrator.
        #[arg(long)]
        admin: bool,
        /// Mail address (also the web client's sign-in address, with --password).
        #[arg(long)]
        mail: Option<String>,
        /// Web client password (needs --mail; at least 8 characters).
        #[arg(long, requires = "mail")]
        password: Option<String>,
        /// Organization name (default: the administrator's).
        #[arg(long)]
        organization_name: Option<String>,
        /// Department.
        #[arg(long)]
        department: Option<String>,
        /// Title.
        #[arg(long)]
        title: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Set the web client password of the account that signs in with --mail (read
    /// from standard input, one line).
    SetPassword {
        /// The account's sign-in address.
        #[arg(long)]
        mail: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// How a command reaches a running server's API as an administrator.
#[derive(Args)]
struct ServerArgs {
    /// Server URL.
    #[arg(long, env = "HAYABUSA_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Administrator token (default: read from DATA_DIR/admin.token).
    #[arg(long, env = "HAYABUSA_TOKEN")]
    token: Option<String>,
    /// Data directory holding admin.token.
    #[arg(long, env = "HAYABUSA_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
}

impl ServerArgs {
    fn token(&self) -> anyhow::Result<String> {
        if let Some(token) = &self.token {
            return Ok(token.clone());
        }
        let path = self.data_dir.join(data_dir::ADMIN_TOKEN_FILE);
        Ok(std::fs::read_to_string(&path)
            .with_context(|| {
                format!(
                    "reading the admin token from {} (or pass --token)",
                    path.display()
                )
            })?
            .trim()
            .to_string())
    }

    /// Calls `method path` with `form`, prints the JSON answer, and fails unless it
    /// is a success.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(&str, String)],
    ) -> anyhow::Result<()> {
        let server = self.server.trim_end_matches('/');
        let mut request = reqwest::Client::new()
            .request(method, format!("{server}{path}"))
            .header("X-ChatWorkToken", self.token()?);
        if !form.is_empty() {
            request = request.form(form);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("calling {server}"))?;
        let status = response.status();
        let text = response.text().await.context("reading the answer")?;
        if !text.is_empty() {
            let body: serde_json::Value =
                serde_json::from_str(&text).context("reading the answer")?;
            println!("{}", serde_json::to_string_pretty(&body)?);
        }
        if !status.is_success() {
            anyhow::bail!("the server answered {status}");
        }
        Ok(())
    }
}

#[derive(Subcommand)]
enum ForwarderCommand {
    /// Every forwarder (as JSON).
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Subscribe a destination to the domain events; prints its id and signing
    /// secret.
    Create {
        /// Where events go: https://…, nats://HOST:PORT/SUBJECT or
        /// kafka://HOST:PORT/TOPIC.
        #[arg(long)]
        url: String,
        /// Only these stored event types, comma-separated.
        #[arg(long)]
        event_types: Option<String>,
        /// Only these rooms' events, comma-separated ids.
        #[arg(long)]
        room_ids: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Remove a forwarder.
    Delete {
        /// Its id.
        id: u64,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// The events a forwarder gave up after its retry schedule.
    DeadLetters {
        /// Its id.
        id: u64,
        /// Only those after this log position.
        #[arg(long)]
        after: Option<u64>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Send a forwarder's dead letters again.
    Replay {
        /// Its id.
        id: u64,
        /// Only these positions, comma-separated (every dead letter otherwise).
        #[arg(long)]
        positions: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// A number of seconds, more than 0 and at most 30 days.
fn positive_secs(raw: &str) -> Result<f64, String> {
    let secs: f64 = raw
        .trim()
        .parse()
        .map_err(|_| format!("{raw:?} is not a number of seconds"))?;
    if secs.is_finite() && secs > 0.0 && secs <= 30.0 * 86_400.0 {
        Ok(secs)
    } else {
        Err(format!(
            "{raw:?}: seconds must be more than 0 and at most 30 days"
        ))
    }
}

/// An IP (`10.0.0.1`) or a network (`10.0.0.0/8`).
fn parse_proxy(raw: &str) -> Result<ipnet::IpNet, String> {
    let raw = raw.trim();
    raw.parse::<ipnet::IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{raw:?} is not an IP address or CIDR network"))
}

/// Where the event log and the read models live (`serve`, `rebuild`).
#[derive(Args)]
struct StoreArgs {
    /// The event log: `nats://HOST:PORT[,HOST:PORT…]` for NATS JetStream (2.10.23 or
    /// newer, run with `sync_interval: always`), or `sqlite` for the data directory's
    /// file [default: sqlite].
    #[arg(
        long,
        env = "HAYABUSA_EVENT_LOG",
        value_name = "URL",
        hide_env_values = true
    )]
    event_log: Option<String>,
    /// How many JetStream servers keep each event (1, or 3 in a cluster).
    #[arg(long, env = "HAYABUSA_EVENT_LOG_REPLICAS", default_value_t = 1)]
    event_log_replicas: usize,
    /// The JetStream stream's name.
    #[arg(long, env = "HAYABUSA_EVENT_LOG_STREAM", default_value = hayabusa::backends::DEFAULT_STREAM)]
    event_log_stream: String,
    /// The read models: a PostgreSQL connection string
    /// (`postgres://USER[:PASSWORD]@HOST:PORT/DB`; the schema is created and migrated
    /// on start), or `sqlite` for the data directory's file [default: sqlite].
    #[arg(
        long,
        env = "HAYABUSA_READ_STORE",
        value_name = "URL",
        hide_env_values = true
    )]
    read_store: Option<String>,
    /// Where uploaded files live: `local` (the data directory's `files/`), `nats`
    /// (a JetStream object store on the event log's servers) or
    /// `s3://bucket[/prefix]` (Amazon S3 or an S3-compatible service, set up by the
    /// AWS_* environment variables: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_REGION, AWS_ENDPOINT_URL, AWS_ALLOW_HTTP); every node of a cluster reads
    /// the last two [default: local].
    #[arg(long, env = "HAYABUSA_BLOB_STORE", value_name = "STORE")]
    blob_store: Option<String>,
    /// Hours the event log keeps an idempotency key: a retried request with the same
    /// key within them gets the first attempt's answer, after them it is new.
    #[arg(
        long,
        env = "HAYABUSA_IDEMPOTENCY_KEY_HOURS",
        default_value_t = hayabusa::DEFAULT_IDEMPOTENCY_KEY_HOURS,
        value_parser = clap::value_parser!(u64).range(1..=8760)
    )]
    idempotency_key_hours: u64,
}

impl StoreArgs {
    fn backends(&self) -> anyhow::Result<hayabusa::Backends> {
        Ok(hayabusa::Backends {
            event_log: hayabusa::backends::EventLogBackend::parse(
                self.event_log.as_deref(),
                &self.event_log_stream,
                self.event_log_replicas,
            )?,
            read_store: hayabusa::backends::ReadStoreBackend::parse(self.read_store.as_deref())?,
            blob_store: hayabusa::backends::BlobStoreBackend::parse(self.blob_store.as_deref())?,
            idempotency_key_hours: self.idempotency_key_hours,
        })
    }
}

/// Connection flags of `serve`.
#[derive(Args)]
struct ConnectionArgs {
    /// Seconds a request's headers may take once its first byte has arrived.
    #[arg(long, env = "HAYABUSA_HEADER_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout_secs: u64,
    /// Seconds a request body may go without sending data (then 408, closed).
    #[arg(long, env = "HAYABUSA_BODY_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    body_timeout_secs: u64,
    /// Seconds a connection with no request in progress is kept open.
    #[arg(long, env = "HAYABUSA_IDLE_TIMEOUT_SECS", default_value_t = 75, value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout_secs: u64,
    /// Most open connections, WebSockets included (lowered to fit the open-file
    /// limit); past it the longest-idle connection is closed, or the new one gets 503.
    #[arg(long, env = "HAYABUSA_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,
}

impl ConnectionArgs {
    fn settings(&self) -> hayabusa_http::ConnectionSettings {
        use std::time::Duration;
        hayabusa_http::ConnectionSettings {
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            body_timeout: Duration::from_secs(self.body_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
        }
    }
}

/// Rate-limit flags of `serve`; unset ones take ChatWork's values.
#[derive(Args)]
struct RateLimitArgs {
    /// Requests allowed per account (its API token) in each window [default: 300].
    #[arg(long, env = "HAYABUSA_RATE_LIMIT_REQUESTS", value_parser = clap::value_parser!(u32).range(1..))]
    rate_limit_requests: Option<u32>,
    /// Length of the per-token window in seconds [default: 300].
    #[arg(long, env = "HAYABUSA_RATE_LIMIT_WINDOW_SECS", value_parser = clap::value_parser!(u64).range(1..))]
    rate_limit_window_secs: Option<u64>,
    /// Requests without a valid API token (none, or an invalid one) allowed per peer
    /// address (an IPv6 peer by its /64) in each window [default: 300].
    #[arg(long, env = "HAYABUSA_PEER_RATE_LIMIT_REQUESTS", value_parser = clap::value_parser!(u32).range(1..))]
    peer_rate_limit_requests: Option<u32>,
    /// Length of the per-address window in seconds [default: 300].
    #[arg(long, env = "HAYABUSA_PEER_RATE_LIMIT_WINDOW_SECS", value_parser = clap::value_parser!(u64).range(1..))]
    peer_rate_limit_window_secs: Option<u64>,
    /// Messages, tasks and files that may be posted per room in each window [default: 10].
    #[arg(long, env = "HAYABUSA_ROOM_POST_LIMIT", value_parser = clap::value_parser!(u32).range(1..))]
    room_post_limit: Option<u32>,
    /// Length of the per-room posting window in seconds [default: 10].
    #[arg(long, env = "HAYABUSA_ROOM_POST_WINDOW_SECS", value_parser = clap::value_parser!(u64).range(1..))]
    room_post_window_secs: Option<u64>,
    /// Switch all rate limits off (e.g. for benchmarks).
    #[arg(long, env = "HAYABUSA_NO_RATE_LIMITS", value_parser = clap::builder::BoolishValueParser::new())]
    no_rate_limits: bool,
}

impl RateLimitArgs {
    fn settings(&self) -> hayabusa_http::RateLimits {
        use std::time::Duration;
        if self.no_rate_limits {
            return hayabusa_http::RateLimits::off();
        }
        let defaults = hayabusa_http::RateLimits::default();
        let adjust =
            |limit: Option<hayabusa_http::RateLimit>, requests: Option<u32>, secs: Option<u64>| {
                limit.map(|limit| hayabusa_http::RateLimit {
                    requests: requests.unwrap_or(limit.requests),
                    window: secs.map_or(limit.window, Duration::from_secs),
                })
            };
        hayabusa_http::RateLimits {
            per_token: adjust(
                defaults.per_token,
                self.rate_limit_requests,
                self.rate_limit_window_secs,
            ),
            per_peer: adjust(
                defaults.per_peer,
                self.peer_rate_limit_requests,
                self.peer_rate_limit_window_secs,
            ),
            room_posts: adjust(
                defaults.room_posts,
                self.room_post_limit,
                self.room_post_window_secs,
            ),
            ..defaults
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_target(false)
        .init();
}

async fn shutdown_requested() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Whatever any command creates is for the server's user only.
    data_dir::restrict_umask();
    init_tracing();
    match parse_cli()?.command {
        Command::Serve {
            data_dir,
            listen,
            role,
            worker_id,
            ws_allowed_origins,
            stores,
            rate_limits,
            max_upload_bytes,
            page_cache_rooms,
            connections,
            public_url,
            trusted_proxies,
            max_read_wait_ms,
            webhook_allow_private_networks,
            webhook_allow_http,
            delivery_retry_first_secs,
            delivery_retry_longest_secs,
            delivery_give_up_secs,
        } => {
            let server = hayabusa::start(Config {
                data_dir,
                backends: stores.backends()?,
                listen,
                role,
                worker_id,
                sync: hayabusa_http::SyncSettings {
                    allowed_origins: ws_allowed_origins,
                    ..Default::default()
                },
                rate_limits: rate_limits.settings(),
                uploads: hayabusa_http::UploadSettings {
                    max_bytes: max_upload_bytes,
                },
                page_cache_rooms,
                connections: connections.settings(),
                public_url,
                trusted_proxies,
                max_read_wait: Duration::from_millis(max_read_wait_ms),
                webhooks: hayabusa::WebhookSettings {
                    policy: hayabusa_outbound::Policy {
                        allow_private_networks: webhook_allow_private_networks,
                        allow_http: webhook_allow_http,
                    },
                    retries: hayabusa_app::webhooks::RetrySchedule {
                        first: Duration::from_secs_f64(delivery_retry_first_secs),
                        longest: Duration::from_secs_f64(delivery_retry_longest_secs),
                        give_up_after: Duration::from_secs_f64(delivery_give_up_secs),
                    },
                },
                projector_delay: hayabusa_app::ProjectorDelay::default(),
            })
            .await?;
            server.wait(shutdown_requested()).await?;
        }
        Command::Rebuild { data_dir, stores } => {
            let position = hayabusa::rebuild(&data_dir, &stores.backends()?).await?;
            println!("read models rebuilt up to log position {position}");
        }
        Command::Backup { data_dir, to } => {
            let manifest = hayabusa::backup::backup(&data_dir, &to).await?;
            println!(
                "backed up {} up to log position {} ({} events, {} uploaded files) to {}",
                data_dir.display(),
                manifest.log_position,
                manifest.event_count,
                manifest.blobs(),
                to.display()
            );
        }
        Command::Restore { from, data_dir } => {
            let manifest = hayabusa::backup::restore(&from, &data_dir).await?;
            println!(
                "restored {} to log position {} ({} events, {} uploaded files) in {}; read models rebuilt",
                from.display(),
                manifest.log_position,
                manifest.event_count,
                manifest.blobs(),
                data_dir.display()
            );
        }
        Command::Account {
            command:
                AccountCommand::Create {
                    name,
                    admin,
                    mail,
                    password,
                    organization_name,
                    department,
                    title,
                    server,
                },
        } => {
            let mut form: Vec<(&str, String)> = vec![
                ("name", name),
                ("admin", if admin { "1" } else { "0" }.into()),
            ];
            if let (Some(mail), Some(password)) = (&mail, password) {
                form.push(("login_mail", mail.clone()));
                form.push(("password", password));
            }
            for (key, value) in [
                ("mail", mail),
                ("organization_name", organization_name),
                ("department", department),
                ("title", title),
            ] {
                if let Some(value) = value {
                    form.push((key, value));
                }
            }
            server
                .call(reqwest::Method::POST, "/v2/accounts", &form)
                .await?;
        }
        Command::Account {
            command: AccountCommand::SetPassword { mail, server },
        } => {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            server
                .call(
                    reqwest::Method::PUT,
                    "/v2/admin/password",
                    &[("login_mail", mail.clone()), ("password", password)],
                )
                .await?;
            println!("password set for {mail}");
        }
        Command::Forwarder { command } => forwarder_command(command).await?,
    }
    Ok(())
}

async fn forwarder_command(command: ForwarderCommand) -> anyhow::Result<()> {
    use reqwest::Method;
    let path = |id: u64, rest: &str| format!("/v2/admin/forwarders/{id}{rest}");
    match command {
        ForwarderCommand::List { server } => {
            server.call(Method::GET, "/v2/admin/forwarders", &[]).await
        }
        ForwarderCommand::Create {
            url,
            event_types,
            room_ids,
            server,
        } => {
            let mut form = vec![("url", url)];
            if let Some(types) = event_types {
                form.push(("event_types", types));
            }
            if let Some(rooms) = room_ids {
                form.push(("room_ids", rooms));
            }
            server
                .call(Method::POST, "/v2/admin/forwarders", &form)
                .await
        }
        ForwarderCommand::Delete { id, server } => {
            server.call(Method::DELETE, &path(id, ""), &[]).await?;
            println!("forwarder {id} removed");
            Ok(())
        }
        ForwarderCommand::DeadLetters { id, after, server } => {
            let query = after.map_or_else(String::new, |after| format!("?after={after}"));
            server
                .call(
                    Method::GET,
                    &path(id, &format!("/dead_letters{query}")),
                    &[],
                )
                .await
        }
        ForwarderCommand::Replay {
            id,
            positions,
            server,
        } => {
            let form: Vec<(&str, String)> = positions
                .map(|positions| ("positions", positions))
                .into_iter()
                .collect();
            server.call(Method::POST, &path(id, "/replay"), &form).await
        }
    }
}
