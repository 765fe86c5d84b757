//! The accept loop and connections: hyper-util's HTTP/1 + HTTP/2 connection builder
//! under a loop that bounds what a hostile client can hold.
//!
//! - **Header timeout**: once a request's first byte has arrived on an otherwise idle
//!   connection, the request must reach the application within `header_timeout`.
//! - **Idle timeout**: a connection with no request in progress (fresh, or kept alive
//!   after a response) is closed after `idle_timeout`.
//! - **Body timeout**: every request body is wrapped in tower-http's `TimeoutBody`: a
//!   body that delivers nothing for `body_timeout` fails, the handler answers 408
//!   and the connection is closed.
//! - **Connection cap**: at most `max_connections` are open (upgraded WebSockets
//!   included: the slot travels with the socket). Past it, the connection idle the
//!   longest is closed to make room; when every connection is busy with a request,
//!   the new one gets a 503 `{"errors":[…]}` and is closed.
//! - **Accept errors**: out of file descriptors (`EMFILE`, `ENFILE`) or memory, the
//!   loop logs, backs off briefly and goes on accepting.
//!
//! A request in progress (a long-poll, a slow download) is never cut by the idle or
//! header timeout; an upgraded WebSocket has its own pings.

use crate::state::ConnectionSettings;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

/// Pause after an accept error that is not the peer's fault (e.g. `EMFILE`).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How long a refused connection may take to receive its 503.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// The body of the answer to a connection past the cap.
const REFUSAL: &str = r#"{"errors":["too many connections, try again later"]}"#;
/// "No request has started": the value of [`Slot::head_started`] between requests.
const NONE: u64 = u64::MAX;

/// The open connections.
struct Tracker {
    epoch: Instant,
    next_id: AtomicU64,
    slots: Mutex<HashMap<u64, Arc<Slot>>>,
}

/// What the accept loop and a connection's watchdog know about one connection.
struct Slot {
    /// Requests whose response has not been fully written yet.
    in_flight: AtomicU32,
    /// Milliseconds since the epoch when the last request ended (or the connection
    /// was accepted).
    idle_since: AtomicU64,
    /// Milliseconds since the epoch when the first byte of the next request arrived,
    /// or [`NONE`].
    head_started: AtomicU64,
    /// The connection was upgraded (a WebSocket): it is never evicted.
    upgraded: AtomicBool,
    /// The accept loop chose this connection to make room.
    evicted: AtomicBool,
    /// Wakes the watchdog: to evict, or because the state above changed.
    wake: Notify,
}

impl Tracker {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Registers a connection if there is room, making room by evicting the
    /// connection idle the longest; `None` when every connection is busy.
    fn admit(self: &Arc<Self>, max: usize) -> Option<SlotGuard> {
        let mut slots = self.slots.lock();
        let live = slots
            .values()
            .filter(|s| !s.evicted.load(Ordering::Relaxed))
            .count();
        if live >= max {
            let victim = slots
                .iter()
                .filter(|(_, s)| s.evictable())
                .min_by_key(|(id, s)| (s.idle_since.load(Ordering::Relaxed), **id))
                .map(|(_, s)| s)?;
            victim.evicted.store(true, Ordering::Relaxed);
            victim.wake.notify_one();
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(self.now()),
            head_started: AtomicU64::new(NONE),
            upgraded: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            wake: Notify::new(),
        });
        slots.insert(id, slot.clone());
        Some(SlotGuard {
            tracker: self.clone(),
            id,
            slot,
        })
    }
}

impl Slot {
    fn evictable(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
            && !self.upgraded.load(Ordering::Relaxed)
            && !self.evicted.load(Ordering::Relaxed)
    }

    /// When the connection must be closed if nothing changes (ms since the epoch),
    /// and why; `None` while a request is in progress.
    fn deadline(&self, settings: &ConnectionSettings) -> Option<(u64, &'static str)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let head = self.head_started.load(Ordering::Acquire);
        if head != NONE {
            Some((
                head.saturating_add(settings.header_timeout.as_millis() as u64),
                "header timeout",
            ))
        } else {
            Some((
                self.idle_since
                    .load(Ordering::Acquire)
                    .saturating_add(settings.idle_timeout.as_millis() as u64),
                "idle timeout",
            ))
        }
    }
}

/// A connection's place in the [`Tracker`], released when the socket is dropped
/// (after an upgrade, when the WebSocket closes).
struct SlotGuard {
    tracker: Arc<Tracker>,
    id: u64,
    slot: Arc<Slot>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.tracker.slots.lock().remove(&self.id);
    }
}

/// A request in progress on a connection; dropped with the response body.
struct InFlight {
    tracker: Arc<Tracker>,
    slot: Arc<Slot>,
}

impl InFlight {
    fn begin(tracker: &Arc<Tracker>, slot: &Arc<Slot>) -> Self {
        slot.in_flight.fetch_add(1, Ordering::AcqRel);
        slot.head_started.store(NONE, Ordering::Release);
        InFlight {
            tracker: tracker.clone(),
            slot: slot.clone(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.slot.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.slot
                .idle_since
                .store(self.tracker.now(), Ordering::Release);
            self.slot.wake.notify_one();
        }
    }
}

/// The socket of a connection: notes the first byte of each request and carries
/// the connection's slot (into the WebSocket, after an upgrade).
struct TrackedStream {
    stream: TcpStream,
    guard: SlotGuard,
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            let slot = &self.guard.slot;
            if slot.in_flight.load(Ordering::Acquire) == 0
                && slot.head_started.load(Ordering::Acquire) == NONE
            {
                slot.head_started
                    .store(self.guard.tracker.now(), Ordering::Release);
                slot.wake.notify_one();
            }
        }
        polled
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// An accept error that comes from the peer (ignore it) rather than from this
/// process or the system (back off).
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves `service` on `listener` until `shutdown` resolves, then lets the open
/// connections finish their requests.
pub async fn run<S>(
    listener: TcpListener,
    service: S,
    settings: ConnectionSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let tracker = Arc::new(Tracker {
        epoch: Instant::now(),
        next_id: AtomicU64::new(0),
        slots: Mutex::new(HashMap::new()),
    });
    let settings = Arc::new(settings);
    let (stop, stopped) = watch::channel(false);
    // Every connection task holds a clone; `closed()` resolves when all are gone.
    let (alive, all_closed) = tokio::sync::mpsc::channel::<()>(1);
    let mut shutdown = pin!(shutdown);
    let mut last_warning: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                    tracing::error!(%error, open = tracker.slots.lock().len(), "accept failed; backing off");
                    last_warning = Some(Instant::now());
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Some(guard) = tracker.admit(settings.max_connections) else {
            tracing::warn!(%peer, max_connections = settings.max_connections, "connection refused: every connection is busy");
            tokio::spawn(refuse(stream));
            continue;
        };
        tokio::spawn(connection(
            TrackedStream { stream, guard },
            peer,
            service.clone(),
            tracker.clone(),
            settings.clone(),
            stopped.clone(),
            alive.clone(),
        ));
    }
    drop(listener);
    let _ = stop.send(true);
    drop(alive);
    let mut all_closed = all_closed;
    let _ = all_closed.recv().await;
    Ok(())
}

/// Answers a connection past the cap with a 503 and closes it.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        let response = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
             retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{REFUSAL}",
            REFUSAL.len()
        );
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

/// Serves one connection until it closes, times out, is evicted or upgraded.
async fn connection<S>(
    stream: TrackedStream,
    peer: SocketAddr,
    service: S,
    tracker: Arc<Tracker>,
    settings: Arc<ConnectionSettings>,
    mut stopped: watch::Receiver<bool>,
    _alive: tokio::sync::mpsc::Sender<()>,
) where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let slot = stream.guard.slot.clone();
    let body_timeout = settings.body_timeout;
    let hyper_service = {
        let tracker = tracker.clone();
        let slot = slot.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let in_flight = InFlight::begin(&tracker, &slot);
            let mut request = request.map(|body| Body::new(TimeoutBody::new(body_timeout, body)));
            request.extensions_mut().insert(ConnectInfo(peer));
            let service = service.clone();
            async move {
                let response = service.oneshot(request).await?;
                Ok::<_, Infallible>(response.map(move |body| {
                    // The request counts as in progress until its body is written.
                    Body::new(body.map_frame(move |frame| {
                        let _ = &in_flight;
                        frame
                    }))
                }))
            }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().header_read_timeout(None);
    builder.http2().enable_connect_protocol();
    let mut conn =
        pin!(builder.serve_connection_with_upgrades(TokioIo::new(stream), hyper_service));
    let mut draining = *stopped.borrow();
    if draining {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        let deadline = slot.deadline(&settings);
        let sleep_for = deadline.map_or(Duration::from_secs(3600), |(at, _)| {
            Duration::from_millis(at.saturating_sub(tracker.now()))
        });
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                break;
            }
            () = slot.wake.notified() => {
                if slot.evicted.load(Ordering::Relaxed) && slot.in_flight.load(Ordering::Acquire) == 0 {
                    tracing::debug!(%peer, "closing an idle connection to make room for a new one");
                    break;
                }
            }
            () = tokio::time::sleep(sleep_for) => {
                if let Some((at, reason)) = slot.deadline(&settings)
                    && at <= tracker.now()
                {
                    tracing::debug!(%peer, reason, "closing a connection");
                    break;
                }
            }
            changed = stopped.changed(), if !draining => {
                if changed.is_err() || *stopped.borrow() {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
    // If the socket lives on, it was upgraded: its slot goes with it.
    slot.upgraded.store(true, Ordering::Relaxed);
}
