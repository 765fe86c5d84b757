//! Rate limits as ChatWork applies them: per account (its API token; default 300
//! requests per 5 minutes), announced by `x-ratelimit-limit`, `x-ratelimit-remaining`
//! and `x-ratelimit-reset` on every response to a counted request (error responses
//! included); and per room for posting messages, tasks and files (default 10 per 10
//! seconds). Requests without a valid token (none, or an invalid one: failed logins)
//! are counted per peer address instead (an IPv6 peer by its /64), so a caller cannot
//! get a fresh allowance by inventing tokens. Beyond a limit the answer is 429 with
//! ChatWork's `{"errors":[…]}`.
//!
//! All limits are fixed windows: a key's window opens with its first request and
//! closes `window` later, which is the instant `x-ratelimit-reset` announces. (A GCRA
//! limiter such as `governor` refills continuously and so has no such reset instant
//! nor a count that only goes down; hence this small limiter.)
//!
//! Only keys an attacker cannot mint freely hold state: accounts (authenticated first,
//! through the authentication cache), peer addresses, and rooms only while a post is
//! in flight or once one succeeded. Memory is bounded: all windows of a limit have the
//! same length, so they expire in the order they opened and a queue drops expired ones
//! in amortised O(1); at most `max_tracked_keys` windows are open per limit, and when
//! they are all open and live a *new* key is refused (429) — a live window is never
//! dropped, so flooding cannot reset anyone's window, one's own included.
//!
//! A room post is counted when it is let through and given back when the handler
//! does not answer 2xx, so refused posts (a non-member's 404, a readonly member's
//! 403, a bad body's 400) cannot use up a room's allowance; a window left with nothing
//! counted is dropped at once, so posts to rooms that do not exist leave nothing behind.

use crate::auth::{Caller, token_of};
use crate::error::ApiError;
use crate::params::Params;
use crate::state::{AppState, RateLimit, RateLimits};
use axum::extract::{ConnectInfo, OriginalUri, RawPathParams, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Header: the limit (requests per window).
pub const LIMIT_HEADER: &str = "x-ratelimit-limit";
/// Header: requests left in the current window.
pub const REMAINING_HEADER: &str = "x-ratelimit-remaining";
/// Header: Unix time (seconds) at which the current window ends.
pub const RESET_HEADER: &str = "x-ratelimit-reset";

/// A keyed fixed-window counter.
pub struct FixedWindowLimiter<K> {
    limit: RateLimit,
    max_keys: usize,
    windows: Mutex<Windows<K>>,
}

struct Windows<K> {
    /// The open window of each key.
    live: HashMap<K, Window>,
    /// `(key, opened)` of every window opened, oldest first (entries of windows
    /// dropped early stay until they expire or the queue is compacted).
    opened: VecDeque<(K, Instant)>,
}

#[derive(Clone, Copy, Debug)]
struct Window {
    opened: Instant,
    used: u32,
    reset_at: u64,
}

/// The outcome of [`FixedWindowLimiter::acquire`] for a key with a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the request may go on (it was counted then).
    pub allowed: bool,
    /// Requests allowed per window.
    pub limit: u32,
    /// Requests left in this window after this one.
    pub remaining: u32,
    /// Unix time (whole seconds, rounded up) at which this window ends.
    pub reset_at: u64,
    /// Time until this window ends.
    pub retry_after: Duration,
    window_opened: Instant,
}

/// [`FixedWindowLimiter::acquire`] refused a new key: every window is open and live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full {
    /// Time until the oldest window ends (and a key can be taken again).
    pub retry_after: Duration,
}

impl<K: Hash + Eq + Clone> FixedWindowLimiter<K> {
    /// A limiter allowing `limit.requests` per `limit.window` and key, tracking at
    /// most `max_keys` keys.
    pub fn new(limit: RateLimit, max_keys: usize) -> Self {
        FixedWindowLimiter {
            limit: RateLimit {
                requests: limit.requests.max(1),
                window: limit.window.max(Duration::from_millis(1)),
            },
            max_keys: max_keys.max(1),
            windows: Mutex::new(Windows {
                live: HashMap::new(),
                opened: VecDeque::new(),
            }),
        }
    }

    /// Counts one request of `key` at `now` (`unix_now`: the same instant as time
    /// since the Unix epoch), unless its window is used up. A key without a window
    /// gets one only if fewer than `max_keys` are open; otherwise it is refused.
    pub fn acquire(&self, key: K, now: Instant, unix_now: Duration) -> Result<Verdict, Full> {
        let RateLimit { requests, window } = self.limit;
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        windows.expire(now, window);
        if !windows.live.contains_key(&key) {
            if windows.live.len() >= self.max_keys {
                let retry_after = windows.opened.front().map_or(window, |(_, opened)| {
                    (*opened + window).saturating_duration_since(now)
                });
                return Err(Full { retry_after });
            }
            windows.opened.push_back((key.clone(), now));
            if windows.opened.len() > 2 * self.max_keys {
                windows.compact();
            }
        }
        let current = windows.live.entry(key).or_insert_with(|| Window {
            opened: now,
            used: 0,
            reset_at: ceil_seconds(unix_now + window),
        });
        let allowed = current.used < requests;
        if allowed {
            current.used += 1;
        }
        Ok(Verdict {
            allowed,
            limit: requests,
            remaining: requests - current.used,
            reset_at: current.reset_at,
            retry_after: (current.opened + window).saturating_duration_since(now),
            window_opened: current.opened,
        })
    }

    /// Gives back the request `verdict` counted for `key`, if its window is still
    /// open; a window left with nothing counted is dropped.
    pub fn release(&self, key: &K, verdict: &Verdict) {
        if !verdict.allowed {
            return;
        }
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(current) = windows.live.get_mut(key)
            && current.opened == verdict.window_opened
        {
            current.used = current.used.saturating_sub(1);
            if current.used == 0 {
                windows.live.remove(key);
            }
        }
    }

    /// Keys with an open window (expired ones are dropped on the next acquire).
    pub fn tracked_keys(&self) -> usize {
        self.windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .live
            .len()
    }
}

impl<K: Hash + Eq> Windows<K> {
    /// Drops every window that has ended by `now`.
    fn expire(&mut self, now: Instant, window: Duration) {
        while let Some((_, opened)) = self.opened.front()
            && now.saturating_duration_since(*opened) >= window
        {
            if let Some((key, opened)) = self.opened.pop_front()
                && self.live.get(&key).is_some_and(|w| w.opened == opened)
            {
                self.live.remove(&key);
            }
        }
    }

    /// Drops the queue entries of windows that were dropped early.
    fn compact(&mut self) {
        let live = &self.live;
        self.opened
            .retain(|(key, opened)| live.get(key).is_some_and(|w| w.opened == *opened));
    }
}

fn ceil_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// The limits of one server, shared by all requests.
pub struct RateLimiter {
    per_account: Option<FixedWindowLimiter<u64>>,
    per_peer: Option<FixedWindowLimiter<u128>>,
    room_posts: Option<FixedWindowLimiter<u64>>,
}

impl RateLimiter {
    /// Limiters for `settings` (a limit that is `None` is off).
    pub fn new(settings: &RateLimits) -> Self {
        let max_keys = settings.max_tracked_keys;
        RateLimiter {
            per_account: settings
                .per_token
                .map(|limit| FixedWindowLimiter::new(limit, max_keys)),
            per_peer: settings
                .per_peer
                .map(|limit| FixedWindowLimiter::new(limit, max_keys)),
            room_posts: settings
                .room_posts
                .map(|limit| FixedWindowLimiter::new(limit, max_keys)),
        }
    }
}

/// The key of a peer address: an IPv4 address, or the /64 prefix of an IPv6 one (a
/// single host commonly has a whole /64). Unknown peers share one key.
pub fn peer_key(peer: Option<IpAddr>) -> u128 {
    match peer.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => u128::from(u32::from(v4)),
        Some(IpAddr::V6(v6)) => (u128::from(v6) & !u128::from(u64::MAX)) | (1 << 32),
        None => u128::MAX,
    }
}

/// The token a request carries: `X-ChatWorkToken`, `Authorization: Bearer`, or (for
/// the sync WebSocket, which browsers cannot give headers) `?token=`.
fn token_of_request(request: Request, path: &str) -> (Request, Option<String>) {
    let (parts, body) = request.into_parts();
    let token = token_of(&parts).or_else(|| {
        (path == "/v2/sync/ws")
            .then(|| {
                Params::from_query(parts.uri.query())
                    .get("token")
                    .map(str::to_string)
            })
            .flatten()
    });
    (Request::from_parts(parts, body), token)
}

fn set_headers(headers: &mut HeaderMap, verdict: &Verdict) {
    headers.insert(LIMIT_HEADER, HeaderValue::from(verdict.limit));
    headers.insert(REMAINING_HEADER, HeaderValue::from(verdict.remaining));
    headers.insert(RESET_HEADER, HeaderValue::from(verdict.reset_at));
}

fn too_many_requests(message: String, retry_after: Duration) -> Response {
    let mut response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, message).into_response();
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        HeaderValue::from(ceil_seconds(retry_after).max(1)),
    );
    response
}

fn too_many_clients(full: Full) -> Response {
    tracing::warn!("rate limiter full: refusing a new client");
    too_many_requests(
        format!(
            "Rate limit exceeded: too many clients right now; try again in {} seconds",
            ceil_seconds(full.retry_after).max(1)
        ),
        full.retry_after,
    )
}

/// What a request is counted as.
enum Counted {
    Account(Verdict),
    Peer(Verdict),
    Nothing,
}

/// The middleware (`axum::middleware::from_fn_with_state`): authenticates the
/// request's token (through the authentication cache; the [`Caller`] is handed on so
/// the handler does not look it up again), counts it against its account's limit or,
/// without a valid token, against its peer's; answers 429 beyond either; adds the
/// counted window's `x-ratelimit-*` headers to whatever the answer is.
pub async fn enforce(
    State((limiter, state)): State<(Arc<RateLimiter>, Arc<AppState>)>,
    request: Request,
    next: Next,
) -> Response {
    if limiter.per_account.is_none() && limiter.per_peer.is_none() {
        return next.run(request).await;
    }
    let path = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| request.uri().path(), |original| original.0.path())
        .to_string();
    if path == "/healthz" || path == "/readyz" {
        // Probes of load balancers are not API traffic.
        return next.run(request).await;
    }
    let now = Instant::now();
    let unix_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();

    let (mut request, token) = token_of_request(request, &path);
    let account = match token {
        Some(token) => state.app.queries.authenticate(&token).await.ok(),
        None => None,
    };
    let counted = match (&account, &limiter.per_account, &limiter.per_peer) {
        (Some(account), Some(per_account), _) => {
            match per_account.acquire(account.account_id.0, now, unix_now) {
                Ok(verdict) => Counted::Account(verdict),
                Err(full) => return too_many_clients(full),
            }
        }
        (Some(_), None, _) | (None, _, None) => Counted::Nothing,
        (None, _, Some(per_peer)) => {
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip());
            match per_peer.acquire(peer_key(peer), now, unix_now) {
                Ok(verdict) => Counted::Peer(verdict),
                Err(full) => return too_many_clients(full),
            }
        }
    };
    if let Some(account) = account {
        request.extensions_mut().insert(Caller(account));
    }
    let with_headers = |mut response: Response| {
        if let Counted::Account(verdict) | Counted::Peer(verdict) = &counted {
            set_headers(response.headers_mut(), verdict);
        }
        response
    };
    match &counted {
        Counted::Account(verdict) if !verdict.allowed => {
            let window = limiter
                .per_account
                .as_ref()
                .map_or(0, |l| l.limit.window.as_secs());
            return with_headers(too_many_requests(
                format!(
                    "Rate limit exceeded: at most {} requests per {window} seconds per API \
                     token; the limit resets at {} (x-ratelimit-reset)",
                    verdict.limit, verdict.reset_at
                ),
                verdict.retry_after,
            ));
        }
        Counted::Peer(verdict) if !verdict.allowed => {
            let window = limiter
                .per_peer
                .as_ref()
                .map_or(0, |l| l.limit.window.as_secs());
            tracing::debug!(path, "per-address rate limit reached");
            return with_headers(too_many_requests(
                format!(
                    "Rate limit exceeded: at most {} requests without a valid API token per \
                     {window} seconds from one address; the limit resets at {} \
                     (x-ratelimit-reset)",
                    verdict.limit, verdict.reset_at
                ),
                verdict.retry_after,
            ));
        }
        _ => {}
    }
    with_headers(next.run(request).await)
}

/// The route layer of the posting routes (`POST /v2/rooms/{room_id}/messages`,
/// `…/tasks`, `…/files`; `axum::middleware::from_fn_with_state`): counts the post
/// against its room, answers 429 beyond the limit, and gives the post back if the
/// handler does not answer 2xx. A room id that does not parse is left to the handler.
pub async fn limit_room_posts(
    State(limiter): State<Arc<RateLimiter>>,
    params: RawPathParams,
    request: Request,
    next: Next,
) -> Response {
    let Some(room_posts) = &limiter.room_posts else {
        return next.run(request).await;
    };
    let Some(room) = params
        .iter()
        .find(|(name, _)| *name == "room_id")
        .and_then(|(_, value)| value.parse::<u64>().ok())
    else {
        return next.run(request).await;
    };
    let now = Instant::now();
    let unix_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let verdict = match room_posts.acquire(room, now, unix_now) {
        Ok(verdict) => verdict,
        Err(full) => return too_many_clients(full),
    };
    if !verdict.allowed {
        tracing::debug!(room_id = room, "room posting rate limit reached");
        return too_many_requests(
            format!(
                "Rate limit exceeded: at most {} messages, tasks and files per {} seconds \
                 in a room; try again in {} seconds",
                verdict.limit,
                room_posts.limit.window.as_secs(),
                ceil_seconds(verdict.retry_after).max(1)
            ),
            verdict.retry_after,
        );
    }
    let response = next.run(request).await;
    if !response.status().is_success() {
        room_posts.release(&room, &verdict);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::handler::Handler;
    use axum::routing::post;
    use tower::ServiceExt;

    const START_UNIX: Duration = Duration::from_millis(1_700_000_000_250);

    fn limiter(requests: u32, window_secs: u64, max_keys: usize) -> FixedWindowLimiter<u64> {
        FixedWindowLimiter::new(
            RateLimit {
                requests,
                window: Duration::from_secs(window_secs),
            },
            max_keys,
        )
    }

    #[test]
    fn counts_down_refuses_at_the_limit_and_resets_when_the_window_ends() {
        let limiter = limiter(3, 60, 10);
        let t0 = Instant::now();
        let at = |secs: u64| {
            (
                t0 + Duration::from_secs(secs),
                START_UNIX + Duration::from_secs(secs),
            )
        };

        let remaining: Vec<(bool, u32, u64)> = (0..5)
            .map(|i| {
                let (now, unix) = at(i);
                let v = limiter.acquire(7, now, unix).unwrap();
                (v.allowed, v.remaining, v.reset_at)
            })
            .collect();
        let reset = 1_700_000_061; // ⌈1_700_000_000.25 + 60⌉, the same for the whole window
        assert_eq!(
            remaining,
            vec![
                (true, 2, reset),
                (true, 1, reset),
                (true, 0, reset),
                (false, 0, reset),
                (false, 0, reset)
            ]
        );
        let (now, unix) = at(59);
        let refused = limiter.acquire(7, now, unix).unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_secs(1));

        let (now, unix) = at(60);
        let fresh = limiter.acquire(7, now, unix).unwrap();
        assert!(fresh.allowed);
        assert_eq!(fresh.remaining, 2);
        assert_eq!(fresh.reset_at, 1_700_000_121);
    }

    #[test]
    fn keys_are_counted_separately() {
        let limiter = limiter(1, 60, 10);
        let now = Instant::now();
        assert!(limiter.acquire(1, now, START_UNIX).unwrap().allowed);
        assert!(!limiter.acquire(1, now, START_UNIX).unwrap().allowed);
        assert!(limiter.acquire(2, now, START_UNIX).unwrap().allowed);
    }

    #[test]
    fn a_released_request_is_given_back_but_only_in_its_own_window() {
        let limiter = limiter(2, 10, 10);
        let t0 = Instant::now();
        let kept = limiter.acquire(1, t0, START_UNIX).unwrap();
        let first = limiter.acquire(1, t0, START_UNIX).unwrap();
        limiter.release(&1, &first);
        let second = limiter.acquire(1, t0, START_UNIX).unwrap();
        assert!(second.allowed);
        assert!(!limiter.acquire(1, t0, START_UNIX).unwrap().allowed);
        assert_eq!(kept.window_opened, second.window_opened);

        // A release from an ended window does not credit the next one.
        let later = t0 + Duration::from_secs(10);
        let unix_later = START_UNIX + Duration::from_secs(10);
        assert!(limiter.acquire(1, later, unix_later).unwrap().allowed);
        assert!(limiter.acquire(1, later, unix_later).unwrap().allowed);
        limiter.release(&1, &second);
        assert!(!limiter.acquire(1, later, unix_later).unwrap().allowed);
        // Releasing a refused request gives nothing back.
        let refused = limiter.acquire(1, later, unix_later).unwrap();
        limiter.release(&1, &refused);
        assert!(!limiter.acquire(1, later, unix_later).unwrap().allowed);
    }

    #[test]
    fn a_window_with_nothing_left_counted_is_dropped() {
        let limiter = limiter(5, 10, 10);
        let t0 = Instant::now();
        for room in 0..100 {
            let verdict = limiter.acquire(room, t0, START_UNIX).unwrap();
            limiter.release(&room, &verdict);
        }
        assert_eq!(limiter.tracked_keys(), 0);
        assert!(
            limiter.windows.lock().unwrap().opened.len() <= 20,
            "the queue is compacted"
        );
    }

    #[test]
    fn when_full_new_keys_are_refused_and_live_windows_are_kept() {
        let limiter = limiter(5, 10, 100);
        let t0 = Instant::now();
        let mine = limiter.acquire(0, t0, START_UNIX).unwrap();
        assert_eq!(mine.remaining, 4);
        for key in 1..100 {
            limiter.acquire(key, t0, START_UNIX).unwrap();
        }
        let soon = t0 + Duration::from_secs(3);
        for key in 100..1_000 {
            let full = limiter.acquire(key, soon, START_UNIX).unwrap_err();
            assert_eq!(full.retry_after, Duration::from_secs(7));
        }
        assert_eq!(limiter.tracked_keys(), 100, "the cap holds");
        // Flooding did not reset anyone's window, the oldest included.
        assert_eq!(limiter.acquire(0, soon, START_UNIX).unwrap().remaining, 3);

        // Once their windows end, idle keys are dropped and new ones fit again.
        let later = t0 + Duration::from_secs(11);
        assert!(limiter.acquire(5_000, later, START_UNIX).unwrap().allowed);
        assert_eq!(limiter.tracked_keys(), 1);
        assert_eq!(
            limiter.windows.lock().unwrap().opened.len(),
            1,
            "the queue shrinks too"
        );
    }

    #[test]
    fn peers_are_keyed_by_ipv4_address_or_ipv6_prefix() {
        let key = |ip: &str| peer_key(Some(ip.parse().unwrap()));
        assert_eq!(key("192.0.2.1"), key("192.0.2.1"));
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"), "IPv4-mapped");
        assert_eq!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:2:ffff::9"),
            "one /64"
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_ne!(key("::1"), key("0.0.0.1"));
        assert_ne!(peer_key(None), key("255.255.255.255"));
    }

    fn posting_app(settings: &RateLimits) -> Router {
        let limiter = Arc::new(RateLimiter::new(settings));
        let handler = |axum::extract::Path(room): axum::extract::Path<u64>| async move {
            if room == 404 {
                ApiError::not_found("room").into_response()
            } else {
                "posted".into_response()
            }
        };
        Router::new().route(
            "/v2/rooms/{room_id}/messages",
            post(handler.layer(axum::middleware::from_fn_with_state(
                limiter,
                limit_room_posts,
            ))),
        )
    }

    async fn post_to(app: &Router, room: &str) -> StatusCode {
        app.clone()
            .oneshot(
                Request::post(format!("/v2/rooms/{room}/messages"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn posts_per_room_are_limited_and_refused_posts_leave_nothing() {
        let settings = RateLimits {
            room_posts: Some(RateLimit {
                requests: 2,
                window: Duration::from_secs(60),
            }),
            max_tracked_keys: 3,
            ..RateLimits::off()
        };
        let app = posting_app(&settings);
        // Posts the handler refuses neither count nor take a key.
        for _ in 0..10 {
            assert_eq!(post_to(&app, "404").await, StatusCode::NOT_FOUND);
        }
        for _ in 0..2 {
            assert_eq!(post_to(&app, "1").await, StatusCode::OK);
        }
        assert_eq!(post_to(&app, "1").await, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(post_to(&app, "2").await, StatusCode::OK);
        assert_eq!(post_to(&app, "3").await, StatusCode::OK);
        // Every window is live: a fourth room waits, the others keep their counts.
        assert_eq!(post_to(&app, "4").await, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(post_to(&app, "2").await, StatusCode::OK);
        assert_eq!(post_to(&app, "2").await, StatusCode::TOO_MANY_REQUESTS);
        // A room id that does not parse is the handler's to refuse.
        assert_eq!(post_to(&app, "x").await, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn limits_off_let_every_post_through() {
        let app = posting_app(&RateLimits::off());
        for _ in 0..50 {
            assert_eq!(post_to(&app, "1").await, StatusCode::OK);
        }
    }
}
