//! Shared state of the HTTP layer.

use hayabusa_app::App;
use std::time::Duration;

/// What every handler gets.
pub struct AppState {
    /// The application.
    pub app: App,
    /// Sync gateway settings.
    pub sync: SyncSettings,
}

/// The smallest WebSocket write buffer: the largest op frame fits in it.
pub const MIN_WRITE_BUFFER: usize = 1024 * 1024;

/// Settings of the realtime sync endpoints.
#[derive(Clone, Debug)]
pub struct SyncSettings {
    /// Browser origins allowed to open a WebSocket (exact `scheme://host[:port]`).
    /// A request without `Origin` (not a browser) is always allowed; one whose origin
    /// matches its own `Host` too.
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
