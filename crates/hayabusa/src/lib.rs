//! The `hayabusa` binary's library half: configuration, the data directory, wiring
//! of ports into the application, and running the server. `main.rs` only parses the
//! command line; tests start servers through [`start`].

pub mod backends;
pub mod backup;
pub mod config_file;
pub mod data_dir;

use anyhow::Context;
use hayabusa_app::{App, AppParts, IdGenerator, InProcessHub, NewAccount, SystemClock};
use hayabusa_http::{
    AppState, ConnectionSettings, PublicSettings, RateLimits, SyncSettings, UploadSettings,
};
use hayabusa_store::{BlobStore, CommitFeed, EventLog, ReadStore};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Everything `hayabusa serve` needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the SQLite files, the secret and `admin.token` live.
    pub data_dir: PathBuf,
    /// Which engines hold the event log and the read models.
    pub backends: Backends,
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// What this process does in a cluster ([`Role::All`] on a single node).
    pub role: Role,
    /// This process's snowflake worker id (0–31). In a cluster it is leased: this
    /// one if free, otherwise any free one.
    pub worker_id: u64,
    /// Realtime sync settings (WebSocket origins, timeouts).
    pub sync: SyncSettings,
    /// Rate limits (ChatWork's by default; [`RateLimits::off`] for benchmarks).
    pub rate_limits: RateLimits,
    /// File upload limits.
    pub uploads: UploadSettings,
    /// Rooms whose latest-messages page is kept rendered in memory (0: none).
    pub page_cache_rooms: usize,
    /// Connection timeouts and cap (the cap is lowered at start to fit the
    /// process's open-file limit).
    pub connections: ConnectionSettings,
    /// The URL clients reach the server at (checked with
    /// [`hayabusa_http::public_url::parse_public_url`]); `None`: `http://` and the
    /// listening address.
    pub public_url: Option<String>,
    /// Proxies whose `X-Forwarded-Proto` / `X-Forwarded-Host` are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long a read waits for the projector to reach the writes acknowledged
    /// before it; past it the read is answered 503 with `Retry-After`.
    pub max_read_wait: std::time::Duration,
    /// Webhook deliveries: where they may go, and their retry schedule.
    pub webhooks: WebhookSettings,
    /// A pause before each projection batch, adjustable while the server runs, so
    /// that tests can make the read models lag (zero by default).
    #[doc(hidden)]
    pub projector_delay: hayabusa_app::ProjectorDelay,
}

/// Webhook deliveries.
#[derive(Clone, Debug, Default)]
pub struct WebhookSettings {
    /// Which URLs a webhook may have (https, public addresses by default).
    pub policy: hayabusa_outbound::Policy,
    /// When failed deliveries are tried again.
    pub retries: hayabusa_app::webhooks::RetrySchedule,
}

impl Config {
    /// The defaults of `hayabusa serve` for a data directory, listening on a free
    /// port of 127.0.0.1. Tests and embedders override fields with `..Config::new(dir)`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            backends: Backends::default(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            role: Role::All,
            worker_id: 0,
            sync: SyncSettings::default(),
            rate_limits: RateLimits::default(),
            uploads: UploadSettings::default(),
            page_cache_rooms: hayabusa_app::page_cache::DEFAULT_CAPACITY,
            connections: ConnectionSettings::default(),
            public_url: None,
            trusted_proxies: Vec::new(),
            max_read_wait: hayabusa_app::consistency::DEFAULT_MAX_READ_WAIT,
            webhooks: WebhookSettings::default(),
            projector_delay: hayabusa_app::ProjectorDelay::default(),
        }
    }
}

/// What a process does (`serve --role`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    /// The API and the projector (a single node; in a cluster, a node that is
    /// both, whose projector takes part in the projector lease).
    #[default]
    All,
    /// The API only (a stateless node of a cluster).
    Api,
    /// The projector only, under the projector lease; answers only `/healthz`,
    /// `/readyz` and `/metrics`.
    Projector,
}

impl Role {
    /// From `--role`.
    pub fn parse(raw: &str) -> anyhow::Result<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(Role::All),
            "api" => Ok(Role::Api),
            "projector" => Ok(Role::Projector),
            _ => anyhow::bail!("--role {raw:?}: expected all, api or projector"),
        }
    }

    /// Whether this role serves the API.
    pub fn serves_api(self) -> bool {
        self != Role::Projector
    }

    /// Whether this role projects.
    pub fn projects(self) -> bool {
        self != Role::Api
    }
}

/// Which engines hold the event log and the read models (the embedded SQLite files
/// of the data directory by default), and how the log keeps idempotency keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backends {
    /// The event log.
    pub event_log: backends::EventLogBackend,
    /// The read models.
    pub read_store: backends::ReadStoreBackend,
    /// Uploaded files.
    pub blob_store: backends::BlobStoreBackend,
    /// How many hours the event log keeps an idempotency key: a retry with the key
    /// within them returns the first attempt's result, after them it appends again
    /// (JetStream's duplicate window is set to the same).
    pub idempotency_key_hours: u64,
}

/// The default of [`Backends::idempotency_key_hours`]: the event log port's default.
pub const DEFAULT_IDEMPOTENCY_KEY_HOURS: u64 =
    hayabusa_store::DEFAULT_IDEMPOTENCY_EXPIRY.as_secs() / 3600;

impl Default for Backends {
    fn default() -> Self {
        Backends {
            event_log: backends::EventLogBackend::default(),
            read_store: backends::ReadStoreBackend::default(),
            blob_store: backends::BlobStoreBackend::default(),
            idempotency_key_hours: DEFAULT_IDEMPOTENCY_KEY_HOURS,
        }
    }
}

impl Backends {
    /// The `serve` / `rebuild` flags that choose these engines, secrets included:
    /// for starting a process, never for printing.
    pub fn to_args(&self) -> Vec<String> {
        use backends::{EventLogBackend, ReadStoreBackend};
        let mut args = Vec::new();
        if let EventLogBackend::Nats {
            servers,
            stream,
            replicas,
        } = &self.event_log
        {
            args.extend([
                "--event-log".to_string(),
                servers.expose().to_string(),
                "--event-log-stream".to_string(),
                stream.clone(),
                "--event-log-replicas".to_string(),
                replicas.to_string(),
            ]);
        }
        if let ReadStoreBackend::Postgres(url) = &self.read_store {
            args.extend(["--read-store".to_string(), url.expose().to_string()]);
        }
        match &self.blob_store {
            backends::BlobStoreBackend::Local => {}
            backends::BlobStoreBackend::Nats { .. } => {
                args.extend(["--blob-store".to_string(), "nats".to_string()]);
            }
            backends::BlobStoreBackend::S3(location) => {
                args.extend(["--blob-store".to_string(), location.to_string()]);
            }
        }
        if self.idempotency_key_hours != DEFAULT_IDEMPOTENCY_KEY_HOURS {
            args.extend([
                "--idempotency-key-hours".to_string(),
                self.idempotency_key_hours.to_string(),
            ]);
        }
        args
    }

    /// [`Backends::idempotency_key_hours`] as a duration.
    pub fn idempotency_expiry(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.idempotency_key_hours.saturating_mul(3600))
    }
}

/// The stores of a data directory.
pub struct Stores {
    /// The event log.
    pub log: Arc<dyn EventLog>,
    /// The read store.
    pub read: Arc<dyn ReadStore>,
    /// File contents.
    pub blobs: Arc<dyn BlobStore>,
    /// A cluster's commit feed: present when several processes share the log (NATS
    /// JetStream) and the read models (PostgreSQL), which one of them projects
    /// under the projector lease.
    pub feed: Option<Arc<dyn CommitFeed>>,
    /// Where the API's rate limits count, when several processes may serve it: the
    /// shared read store (PostgreSQL), so that the limits hold across them. None:
    /// this process's memory.
    pub rate_windows: Option<Arc<dyn hayabusa_store::RateWindows>>,
}

/// Opens (creating if needed) the stores: the event log and the read models where
/// `backends` says, the files in `dir`.
pub async fn open_stores(dir: &std::path::Path, backends: &Backends) -> anyhow::Result<Stores> {
    use backends::{EventLogBackend, ReadStoreBackend};
    let mut feed: Option<Arc<dyn CommitFeed>> = None;
    let mut shared_blobs: Option<Arc<dyn BlobStore>> = None;
    let log: Arc<dyn EventLog> = match &backends.event_log {
        EventLogBackend::Embedded => Arc::new(
            hayabusa_sqlite::SqliteEventLog::open_with_settings(
                &dir.join(data_dir::EVENTS_FILE),
                hayabusa_sqlite::LogSettings {
                    idempotency_expiry: backends.idempotency_expiry(),
                    ..hayabusa_sqlite::LogSettings::default()
                },
            )
            .with_context(|| format!("opening the event log in {}", dir.display()))?,
        ),
        EventLogBackend::Nats {
            servers,
            stream,
            replicas,
        } => {
            // Read models built from the embedded log hold its positions, which mean
            // nothing on JetStream: projecting JetStream's events on top of them would
            // mix two logs.
            if dir.join(data_dir::EVENTS_FILE).exists() {
                anyhow::bail!(
                    "{} holds an embedded event log ({}), and its read models were built \
                     from it; use a new data directory for an event log on NATS JetStream",
                    dir.display(),
                    data_dir::EVENTS_FILE
                );
            }
            let options = hayabusa_nats::NatsOptions {
                stream: stream.clone(),
                replicas: *replicas,
                idempotency_expiry: backends.idempotency_expiry(),
                ..hayabusa_nats::NatsOptions::default()
            };
            let log = hayabusa_nats::connect(servers.expose(), options)
                .await
                .with_context(|| format!("opening the event log on NATS JetStream at {servers}"))?;
            if matches!(backends.read_store, ReadStoreBackend::Postgres(_)) {
                feed = Some(Arc::new(log.commit_feed()));
            }
            if let backends::BlobStoreBackend::Nats { bucket } = &backends.blob_store {
                let blobs = log.blob_store(bucket, *replicas).await.with_context(|| {
                    format!("opening the file store (object store {bucket}) at {servers}")
                })?;
                shared_blobs = Some(Arc::new(blobs));
            }
            Arc::new(log)
        }
    };
    let mut rate_windows: Option<Arc<dyn hayabusa_store::RateWindows>> = None;
    let read: Arc<dyn ReadStore> = match &backends.read_store {
        ReadStoreBackend::Embedded => Arc::new(
            hayabusa_sqlite::SqliteReadStore::open(&dir.join(data_dir::READ_MODELS_FILE))
                .with_context(|| format!("opening the read store in {}", dir.display()))?,
        ),
        ReadStoreBackend::Postgres(url) => {
            let store = Arc::new(
                hayabusa_postgres::PgReadStore::connect(
                    url.expose(),
                    hayabusa_postgres::PgOptions::default(),
                )
                .await
                .with_context(|| format!("opening the read store at {url}"))?,
            );
            rate_windows = Some(store.clone());
            store
        }
    };
    if let backends::BlobStoreBackend::S3(location) = &backends.blob_store {
        let blobs = hayabusa_s3::S3BlobStore::connect(location)
            .await
            .with_context(|| format!("opening the file store at {location}"))?;
        shared_blobs = Some(Arc::new(blobs));
    }
    let blobs: Arc<dyn BlobStore> = match shared_blobs {
        Some(blobs) => blobs,
        None if backends.blob_store != backends::BlobStoreBackend::Local => {
            anyhow::bail!(
                "--blob-store nats needs --event-log nats://… (its servers keep the files)"
            )
        }
        None => Arc::new(
            hayabusa_sqlite::LocalBlobStore::open(&dir.join(data_dir::BLOBS_DIR))
                .with_context(|| format!("opening the file store in {}", dir.display()))?,
        ),
    };
    Ok(Stores {
        log,
        read,
        blobs,
        feed,
        rate_windows,
    })
}

/// A running server.
pub struct RunningServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The application (for tests that look inside).
    pub state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    /// The projector or follower, the leased projector, the worker-id lease keeper.
    background: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// Stops accepting, drains requests, stops the projector and waits for both.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.http.await.context("http task")??;
        for task in self.background {
            task.await.context("background task")?;
        }
        Ok(())
    }

    /// Resolves when the server stops by itself (it should not) or on shutdown.
    pub async fn wait(self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        shutdown.await;
        self.stop().await
    }
}

fn shutdown_signal(
    receiver: &watch::Sender<bool>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut receiver = receiver.subscribe();
    async move {
        let _ = receiver.wait_for(|stop| *stop).await;
    }
}

/// Opens the data directory, bootstraps it on first start, and serves the API.
pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
    // The metrics recorder first: a gauge set before it exists (the projector's
    // `hayabusa_projector_active` when it takes the lease at once) would be lost.
    hayabusa_http::metrics::handle();
    let dir = data_dir::prepare(&config.data_dir)?;
    let secret = data_dir::load_or_create_secret(&dir)?;
    let stores = open_stores(&dir, &config.backends).await?;
    if config.role != Role::All && stores.feed.is_none() {
        anyhow::bail!(
            "--role {:?} is for a cluster: give --event-log nats://… and --read-store \
             postgres://… (shared by every node)",
            config.role
        );
    }
    let (shutdown, _) = watch::channel(false);
    let mut background = Vec::new();
    let worker_id = match &stores.feed {
        Some(_) => {
            let lease = lease_worker_id(stores.read.clone(), config.worker_id).await?;
            let worker_id = lease.worker;
            background.push(tokio::spawn(keep_worker_lease(
                stores.read.clone(),
                lease,
                shutdown.clone(),
            )));
            worker_id
        }
        None => config.worker_id,
    };
    let ids = Arc::new(IdGenerator::new(worker_id).context("worker id")?);
    if config.role.serves_api() {
        spawn_blob_sweep(stores.log.clone(), stores.blobs.clone());
    }
    let parts = AppParts {
        log: stores.log.clone(),
        read: stores.read.clone(),
        clock: Arc::new(SystemClock),
        ids,
        secret,
        hub: Arc::new(InProcessHub::new()),
        blobs: stores.blobs,
        page_cache_rooms: config.page_cache_rooms,
        max_read_wait: config.max_read_wait,
        projector_delay: config.projector_delay.clone(),
    };
    let app = match &stores.feed {
        None => {
            let (app, projector) = App::build(parts)
                .await
                .context("building the application")?;
            let stop = shutdown_signal(&shutdown);
            background.push(tokio::spawn(async move {
                projector.run(stop).await;
            }));
            app
        }
        Some(feed) => {
            let (app, follower) = App::build_following(parts, feed.clone())
                .await
                .context("building the application")?;
            background.push(tokio::spawn(follower.run(shutdown_signal(&shutdown))));
            if config.role.projects() {
                background.push(tokio::spawn(hayabusa_app::run_leased_projector(
                    stores.log.clone(),
                    stores.read.clone(),
                    feed.clone(),
                    hayabusa_app::LeaseSettings::new(hayabusa_app::leased::holder_name()),
                    config.projector_delay.clone(),
                    shutdown.subscribe(),
                )));
            }
            app
        }
    };
    if config.role.serves_api() {
        bootstrap_admin(&app, &dir).await?;
    }

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let base_url = match &config.public_url {
        Some(url) => hayabusa_http::public_url::parse_public_url(url)
            .with_context(|| format!("--public-url {url}"))?,
        None => {
            let url = hayabusa_http::public_url::default_public_url(addr);
            if addr.ip().is_unspecified() {
                tracing::warn!(public_url = %url, "no --public-url: download and link URLs will name the loopback address");
            }
            url
        }
    };
    let transport: Arc<dyn hayabusa_app::webhooks::WebhookTransport> = Arc::new(
        hayabusa_outbound::HttpTransport::new(config.webhooks.policy)
            .map_err(|error| anyhow::anyhow!(error))?,
    );
    if config.role.projects() {
        let forwarders = app.forwarder_workers(transport.clone(), config.webhooks.retries);
        background.push(tokio::spawn(forwarders.run_leased(
            stores.read.clone(),
            hayabusa_app::leased::holder_name(),
            shutdown.subscribe(),
        )));
        let workers = app.webhook_workers(transport.clone(), config.webhooks.retries);
        background.push(tokio::spawn(workers.run_leased(
            stores.log.clone(),
            stores.read.clone(),
            hayabusa_app::leased::holder_name(),
            shutdown.subscribe(),
        )));
    }
    let state = Arc::new(AppState {
        app,
        sync: config.sync.clone(),
        rate_limits: config.rate_limits.clone(),
        rate_windows: stores.rate_windows.clone(),
        uploads: config.uploads.clone(),
        connections: ConnectionSettings {
            max_connections: connection_cap(config.connections.max_connections),
            ..config.connections.clone()
        },
        public: PublicSettings {
            base_url,
            trusted_proxies: config.trusted_proxies.clone(),
        },
        api: config.role.serves_api(),
        draining: shutdown.subscribe(),
        webhooks: transport,
    });
    let http = tokio::spawn(hayabusa_http::serve(
        listener,
        state.clone(),
        shutdown_signal(&shutdown),
    ));
    tracing::info!(%addr, role = ?config.role, worker_id, data_dir = %dir.display(), "hayabusa is serving");
    Ok(RunningServer {
        addr,
        state,
        shutdown,
        http,
        background,
    })
}

/// How long a worker-id lease lasts without a renewal, and how often it is renewed.
const WORKER_LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(10);
const WORKER_LEASE_RENEW: std::time::Duration = std::time::Duration::from_secs(2);

/// A held worker-id lease.
struct WorkerLease {
    worker: u64,
    holder: String,
    fence: u64,
}

/// Leases a snowflake worker id: `preferred` if free, otherwise the first free one of
/// 0–31. The holder name is new for every process start, so a restarted process
/// never reuses a lease its previous run might still hold.
async fn lease_worker_id(store: Arc<dyn ReadStore>, preferred: u64) -> anyhow::Result<WorkerLease> {
    let holder = hayabusa_app::leased::holder_name();
    let order = std::iter::once(preferred).chain((0..32).filter(|worker| *worker != preferred));
    for worker in order {
        let name = hayabusa_store::worker_lease(worker);
        if let Some(fence) = store
            .acquire(&name, &holder, WORKER_LEASE_TTL)
            .await
            .context("leasing a worker id")?
        {
            return Ok(WorkerLease {
                worker,
                holder,
                fence,
            });
        }
    }
    anyhow::bail!("all 32 snowflake worker ids are leased by running processes")
}

/// Renews the worker-id lease until shutdown. If it is refused, or cannot be renewed
/// before it might expire, the process stops: another process may take the id.
async fn keep_worker_lease(
    store: Arc<dyn ReadStore>,
    lease: WorkerLease,
    shutdown: watch::Sender<bool>,
) {
    let name = hayabusa_store::worker_lease(lease.worker);
    let mut stopping = shutdown.subscribe();
    tokio::select! {
        why = hayabusa_app::leased::keep_lease(
            store.as_ref(),
            &name,
            &lease.holder,
            lease.fence,
            WORKER_LEASE_TTL,
            WORKER_LEASE_RENEW,
            2 * WORKER_LEASE_RENEW,
        ) => {
            tracing::error!(worker = lease.worker, ?why, "the worker-id lease was lost: stopping");
            let _ = shutdown.send(true);
        }
        stop = async { stopping.wait_for(|stop| *stop).await.is_ok() } => {
            if stop {
                let _ = store.release(&name, &lease.holder, lease.fence).await;
            }
        }
    }
}

/// File descriptors kept out of the connection cap: the stores, uploads in flight
/// and the listener need some.
const RESERVED_FILES: u64 = 64;

/// `wanted` connections, lowered to what the open-file limit allows (with
/// [`RESERVED_FILES`] and an eighth of the limit kept for the rest), so that the
/// server refuses or evicts connections before `accept` fails.
fn connection_cap(wanted: usize) -> usize {
    let Ok((soft, _hard)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    else {
        return wanted;
    };
    let usable = soft.saturating_sub(RESERVED_FILES.max(soft / 8)).max(1);
    let cap = wanted.min(usize::try_from(usable).unwrap_or(usize::MAX));
    if cap < wanted {
        tracing::warn!(
            max_connections = wanted,
            open_file_limit = soft,
            effective = cap,
            "the open-file limit lowers the connection cap; raise it (ulimit -n) for more"
        );
    }
    cap
}

/// Removes, in the background, the blobs no event refers to that were stored at
/// least [`hayabusa_app::ORPHAN_BLOB_GRACE`] before this start, and leftovers of
/// interrupted writes (see [`hayabusa_app::sweep_orphan_blobs`]).
fn spawn_blob_sweep(log: Arc<dyn EventLog>, blobs: Arc<dyn BlobStore>) {
    let cutoff = std::time::SystemTime::now() - hayabusa_app::ORPHAN_BLOB_GRACE;
    tokio::spawn(async move {
        let log: &dyn hayabusa_store::EventReader = log.as_ref();
        match hayabusa_app::sweep_orphan_blobs(log, blobs.as_ref(), cutoff).await {
            Ok(report) if report.orphans.is_empty() && report.leftovers == 0 => {}
            Ok(report) => tracing::info!(
                orphans = report.orphans.len(),
                leftovers = report.leftovers,
                "removed files that no upload refers to"
            ),
            Err(error) => tracing::warn!(%error, "could not sweep the file store"),
        }
    });
}

/// On the first start, creates the administrator account and writes its token to
/// `admin.token` (mode 0600). Safe across a crash at any point: the account is
/// created with a fixed idempotency key and its token is derived, so a rerun writes
/// the same token; once done, a marker keeps a deleted token file deleted.
async fn bootstrap_admin(app: &App, dir: &std::path::Path) -> anyhow::Result<()> {
    if dir.join(data_dir::BOOTSTRAPPED_MARKER).exists() {
        return Ok(());
    }
    let key = hayabusa_app::idempotency::idempotency_key(
        hayabusa_domain::AccountId(0),
        "bootstrap-admin",
        &[],
    )
    .context("bootstrap key")?;
    let created = app
        .commands
        .create_account(
            None,
            NewAccount {
                name: "Administrator".into(),
                organization_name: Some("Hayabusa".into()),
                admin: true,
                ..NewAccount::default()
            },
            Some(key),
        )
        .await
        .context("creating the administrator account")?;
    let token_path = dir.join(data_dir::ADMIN_TOKEN_FILE);
    data_dir::write_private(&token_path, format!("{}\n", created.value.token).as_bytes())?;
    data_dir::write_private(&dir.join(data_dir::BOOTSTRAPPED_MARKER), b"")?;
    tracing::info!(
        account_id = %created.value.account.account_id,
        token_file = %token_path.display(),
        "created the administrator account; its API token is in the token file"
    );
    Ok(())
}

/// `hayabusa rebuild`: drops the read models and replays the whole log.
pub async fn rebuild(data_dir: &std::path::Path, backends: &Backends) -> anyhow::Result<u64> {
    // A data directory served with `--event-log nats://…` has read models but no
    // embedded log: rebuilding it from an empty new one would wipe them.
    if backends.event_log == backends::EventLogBackend::Embedded
        && !data_dir.join(data_dir::EVENTS_FILE).exists()
        && data_dir.join(data_dir::READ_MODELS_FILE).exists()
    {
        anyhow::bail!(
            "{} has read models but no {}: its event log is elsewhere; give the same \
             --event-log the server runs with",
            data_dir.display(),
            data_dir::EVENTS_FILE
        );
    }
    let stores = open_stores(data_dir, backends).await?;
    if !matches!(backends.read_store, backends::ReadStoreBackend::Postgres(_)) {
        let position = hayabusa_app::rebuild(stores.log.clone(), stores.read.clone())
            .await
            .context("rebuilding the read models")?;
        return Ok(position);
    }
    // Read models other processes may be projecting into: rebuild as the projector,
    // under its lease (so no projector writes meanwhile, and this rebuild's batches
    // are refused if one took over).
    let holder = format!("rebuild/{}", hayabusa_app::leased::holder_name());
    let lease = hayabusa_store::PROJECTOR_LEASE;
    let Some(fence) = stores
        .read
        .acquire(lease, &holder, REBUILD_LEASE_TTL)
        .await
        .context("taking the projector lease")?
    else {
        anyhow::bail!(
            "a projector is running on these read models (it holds the projector lease): \
             stop every `serve --role projector` and `--role all` process before rebuilding"
        );
    };
    let keeper = {
        let (read, holder) = (stores.read.clone(), holder.clone());
        tokio::spawn(async move {
            let every = REBUILD_LEASE_TTL / 4;
            let why = hayabusa_app::leased::keep_lease(
                read.as_ref(),
                lease,
                &holder,
                fence,
                REBUILD_LEASE_TTL,
                every,
                every,
            )
            .await;
            tracing::warn!(?why, "lost the projector lease while rebuilding");
        })
    };
    let rebuilt =
        hayabusa_app::projector::rebuild_fenced(stores.log.clone(), stores.read.clone(), fence)
            .await
            .context("rebuilding the read models");
    keeper.abort();
    let _ = stores.read.release(lease, &holder, fence).await;
    rebuilt
}

/// How long `rebuild` holds the projector lease between renewals.
const REBUILD_LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(20);
