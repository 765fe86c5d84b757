//! Shared state of the HTTP layer.

use hayabusa_app::App;
use std::sync::Arc;
use std::time::Duration;

/// What every handler gets.
pub struct AppState {
    /// The application.
    pub app: App,
    /// Sync gateway settings.
    pub sync: SyncSettings,
    /// File upload settings.
    pub uploads: UploadSettings,
    /// Rate limits (ChatWork's by default).
    pub rate_limits: RateLimits,
    /// Where the rate limits count: None for this process's memory (one node), or a
    /// store every API node shares, so that the limits hold across a cluster.
    pub rate_windows: Option<std::sync::Arc<dyn hayabusa_store::RateWindows>>,
    /// Connection timeouts and the connection cap.
    pub connections: ConnectionSettings,
    /// How the server names itself in absolute URLs.
    pub public: PublicSettings,
    /// Whether this node serves the API; a cluster's projector-role node does not,
    /// and answers only `/healthz`, `/readyz` and `/metrics`.
    pub api: bool,
    /// Becomes true when the server starts shutting down (SIGTERM): `/readyz` says
    /// so, long-polls answer at once with what they have, and sync WebSockets close
    /// with 1001 (going away), so that their clients resume on another node.
    pub draining: tokio::sync::watch::Receiver<bool>,
    /// How webhook deliveries leave the server: which URLs a webhook may have.
    pub webhooks: Arc<dyn hayabusa_app::webhooks::WebhookTransport>,
}

impl AppState {
    /// Resolves once the server is shutting down (never, if its sender is gone
    /// without having said so).
    pub async fn drained(&self) {
        let mut draining = self.draining.clone();
        if draining.wait_for(|draining| *draining).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Whether the server is shutting down.
    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }
}

/// Timeouts and the cap on concurrent connections of the HTTP server.
#[derive(Clone, Debug)]
pub struct ConnectionSettings {
    /// Once a request's first byte has arrived, its headers must be complete within
    /// this time, or the connection is closed.
    pub header_timeout: Duration,
    /// A request body that delivers no data for this long is cut: 408, and the
    /// connection is closed.
    pub body_timeout: Duration,
    /// A connection with no request in progress (new, or kept alive after a
    /// response) is closed after this time.
    pub idle_timeout: Duration,
    /// Most connections open at once (WebSockets included). Past it the connection
    /// idle the longest is closed to make room; when every connection is busy, the
    /// new one gets a 503 and is closed.
    pub max_connections: usize,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            max_connections: 10_000,
        }
    }
}

/// The public base URL and the proxies trusted to override it.
#[derive(Clone, Debug)]
pub struct PublicSettings {
    /// `scheme://host[:port][/prefix]` without a trailing slash, e.g.
    /// `https://chat.example.com`: download, link, icon and avatar URLs start with it.
    pub base_url: String,
    /// Peers whose `X-Forwarded-Proto` and `X-Forwarded-Host` are believed; from
    /// anyone else those headers are ignored.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for PublicSettings {
    fn default() -> Self {
        PublicSettings {
            base_url: "http://localhost".into(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// File upload settings.
#[derive(Clone, Debug)]
pub struct UploadSettings {
    /// Largest file accepted, in bytes (413 above).
    pub max_bytes: usize,
}

impl Default for UploadSettings {
    fn default() -> Self {
        UploadSettings {
            max_bytes: 5 * 1024 * 1024,
        }
    }
}

/// The smallest WebSocket write buffer: the largest op frame fits in it.
pub const MIN_WRITE_BUFFER: usize = 1024 * 1024;

/// Settings of the realtime sync endpoints.
#[derive(Clone, Debug)]
pub struct SyncSettings {
    /// Browser origins allowed to open a WebSocket (exact `scheme://host[:port]`).
    /// A request without `Origin` (not a browser) is always allowed; one whose origin
    /// is the server's own (scheme and host, see `public_url`) too.
    pub allowed_origins: Vec<String>,
    /// A WebSocket whose client does not take a frame within this time is a slow
    /// consumer: it is closed and resumes from its last revision.
    pub send_timeout: Duration,
    /// Interval of WebSocket pings; a client that has not answered the previous ping
    /// by the next one is disconnected.
    pub ping_interval: Duration,
    /// Bytes the server may buffer for one WebSocket; must hold the largest op
    /// (a 65,535-character message, JSON-escaped), so at least [`MIN_WRITE_BUFFER`].
    pub max_write_buffer: usize,
    /// Ops read from the store per page when catching a WebSocket up.
    pub page_size: usize,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            allowed_origins: Vec::new(),
            send_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(30),
            max_write_buffer: MIN_WRITE_BUFFER,
            page_size: 500,
        }
    }
}

pub use hayabusa_store::RateLimit;

/// Rate limits of the API; `None` switches a limit off (e.g. for benchmarks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests per account, i.e. per valid API token (ChatWork: 300 per 5 minutes).
    /// Every response to a request with a valid token has the `x-ratelimit-*` headers
    /// of this limit.
    pub per_token: Option<RateLimit>,
    /// Requests without a valid API token (none, or an invalid one) per peer address
    /// (an IPv6 peer by its /64); default 300 per 5 minutes. Their responses have the
    /// `x-ratelimit-*` headers of this limit. `/healthz` is not counted.
    pub per_peer: Option<RateLimit>,
    /// Messages and tasks posted per room, by anyone (ChatWork: 10 per 10 seconds).
    pub room_posts: Option<RateLimit>,
    /// Failed sign-in attempts per sign-in address (default 10 per 15 minutes).
    pub sign_in_address: Option<RateLimit>,
    /// Sign-in attempts per peer address (default 30 per 15 minutes).
    pub sign_in_peer: Option<RateLimit>,
    /// Most keys (accounts, peers, rooms) each limit tracks at once in a node's
    /// memory, which bounds memory whatever callers send: when every window is open,
    /// a new key is refused (429) until the oldest ends; a live window is never
    /// forgotten. (A shared store keeps windows on disk and sweeps ended ones.)
    pub max_tracked_keys: usize,
}

impl RateLimits {
    /// No limits at all.
    pub fn off() -> Self {
        RateLimits {
            per_token: None,
            per_peer: None,
            room_posts: None,
            sign_in_address: None,
            sign_in_peer: None,
            ..RateLimits::default()
        }
    }
}

impl Default for RateLimits {
    /// ChatWork's limits.
    fn default() -> Self {
        RateLimits {
            per_token: Some(RateLimit {
                requests: 300,
                window: Duration::from_secs(5 * 60),
            }),
            per_peer: Some(RateLimit {
                requests: 300,
                window: Duration::from_secs(5 * 60),
            }),
            room_posts: Some(RateLimit {
                requests: 10,
                window: Duration::from_secs(10),
            }),
            sign_in_address: Some(RateLimit {
                requests: 10,
                window: Duration::from_secs(15 * 60),
            }),
            sign_in_peer: Some(RateLimit {
                requests: 30,
                window: Duration::from_secs(15 * 60),
            }),
            max_tracked_keys: 100_000,
        }
    }
}
