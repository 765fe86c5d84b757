//! Rate limits as ChatWork applies them: per API token (default 300 requests per
//! 5 minutes), announced by `x-ratelimit-limit`, `x-ratelimit-remaining` and
//! `x-ratelimit-reset` on every response to a request that carries a token (error
//! responses included); and per room for posting messages and tasks (default 10 per
//! 10 seconds). Beyond a limit the answer is 429 with ChatWork's `{"errors":[…]}`.
//!
//! Both limits are fixed windows: a key's window opens with its first request and
//! closes `window` later, which is the instant `x-ratelimit-reset` announces. (A GCRA
//! limiter such as `governor` refills continuously and so has no such reset instant
//! nor a count that only goes down; hence this small limiter.)
//!
//! Keys are never raw tokens: the per-token limit is keyed by the first 128 bits of the
//! token's SHA-256 ([`hayabusa_app::hash_token`]). A token is counted whether or not
//! it is valid, so the limit needs no store look-up; requests without a token are not
//! counted. Memory is bounded: all windows of a limit have the same length, so they
//! expire in the order they opened and a queue drops expired ones in amortised O(1);
//! at most `max_tracked_keys` windows are live per limit (beyond, the oldest goes).
//!
//! A room post is counted when it is let through and given back when the handler
//! does not answer 2xx, so refused posts (a non-member's 404, a readonly member's
//! 403, a bad body's 400) cannot use up a room's allowance.

use crate::auth::token_of;
use crate::error::ApiError;
use crate::params::Params;
use crate::state::{RateLimit, RateLimits};
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Header: the per-token limit (requests per window).
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
    /// `(key, opened)` of every open window, oldest first.
    opened: VecDeque<(K, Instant)>,
}

#[derive(Clone, Copy, Debug)]
struct Window {
    opened: Instant,
    used: u32,
    reset_at: u64,
}

/// The outcome of [`FixedWindowLimiter::acquire`].
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
    /// since the Unix epoch), unless its window is used up.
    pub fn acquire(&self, key: K, now: Instant, unix_now: Duration) -> Verdict {
        let RateLimit { requests, window } = self.limit;
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        windows.expire(now, window);
        if !windows.live.contains_key(&key) {
            if windows.live.len() >= self.max_keys {
                windows.forget_oldest();
            }
            windows.opened.push_back((key.clone(), now));
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
        Verdict {
            allowed,
            limit: requests,
            remaining: requests - current.used,
            reset_at: current.reset_at,
            retry_after: (current.opened + window).saturating_duration_since(now),
            window_opened: current.opened,
        }
    }

    /// Gives back the request `verdict` counted for `key`, if its window is still open.
    pub fn release(&self, key: &K, verdict: &Verdict) {
        if !verdict.allowed {
            return;
        }
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(current) = windows.live.get_mut(key)
            && current.opened == verdict.window_opened
        {
            current.used = current.used.saturating_sub(1);
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
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some((key, opened)) = self.opened.pop_front()
            && self.live.get(&key).is_some_and(|w| w.opened == opened)
        {
            self.live.remove(&key);
        }
    }
}

fn ceil_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// The limits of one server, shared by all requests.
pub struct RateLimiter {
    per_token: Option<FixedWindowLimiter<u128>>,
    room_posts: Option<FixedWindowLimiter<u64>>,
}

impl RateLimiter {
    /// Limiters for `settings` (a limit that is `None` is off).
    pub fn new(settings: &RateLimits) -> Self {
        RateLimiter {
            per_token: settings
                .per_token
                .map(|limit| FixedWindowLimiter::new(limit, settings.max_tracked_keys)),
            room_posts: settings
                .room_posts
                .map(|limit| FixedWindowLimiter::new(limit, settings.max_tracked_keys)),
        }
    }
}

/// The key of a token: the first 128 bits of its SHA-256.
fn token_key(token: &str) -> u128 {
    let hash = hayabusa_app::hash_token(token);
    u128::from_str_radix(&hash[..32], 16).expect("hash_token yields hex")
}

/// The room of `POST /v2/rooms/{room_id}/messages` or `…/tasks`.
pub fn room_of_post(method: &Method, path: &str) -> Option<u64> {
    if method != Method::POST {
        return None;
    }
    let (room, resource) = path.strip_prefix("/v2/rooms/")?.split_once('/')?;
    matches!(resource, "messages" | "tasks")
        .then(|| room.parse().ok())
        .flatten()
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

/// The middleware (`axum::middleware::from_fn_with_state`): counts the request
/// against its token's and, for a post, its room's limit; answers 429 beyond either;
/// adds the token's `x-ratelimit-*` headers to whatever the answer is.
pub async fn enforce(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    if limiter.per_token.is_none() && limiter.room_posts.is_none() {
        return next.run(request).await;
    }
    let path = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| request.uri().path(), |original| original.0.path())
        .to_string();
    let now = Instant::now();
    let unix_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();

    let (request, token) = token_of_request(request, &path);
    let token_verdict = match (&limiter.per_token, token) {
        (Some(per_token), Some(token)) => Some(per_token.acquire(token_key(&token), now, unix_now)),
        _ => None,
    };
    let with_token_headers = |mut response: Response| {
        if let Some(verdict) = &token_verdict {
            set_headers(response.headers_mut(), verdict);
        }
        response
    };
    if let Some(verdict) = &token_verdict
        && !verdict.allowed
    {
        return with_token_headers(too_many_requests(
            format!(
                "Rate limit exceeded: at most {} requests per {} seconds per API token; \
                 the limit resets at {} (x-ratelimit-reset)",
                verdict.limit,
                limiter
                    .per_token
                    .as_ref()
                    .map_or(0, |l| l.limit.window.as_secs()),
                verdict.reset_at
            ),
            verdict.retry_after,
        ));
    }

    let room_post = match (&limiter.room_posts, room_of_post(request.method(), &path)) {
        (Some(room_posts), Some(room)) => {
            let verdict = room_posts.acquire(room, now, unix_now);
            if !verdict.allowed {
                tracing::debug!(room_id = room, "room posting rate limit reached");
                return with_token_headers(too_many_requests(
                    format!(
                        "Rate limit exceeded: at most {} messages and tasks per {} seconds \
                         in a room; try again in {} seconds",
                        verdict.limit,
                        room_posts.limit.window.as_secs(),
                        ceil_seconds(verdict.retry_after).max(1)
                    ),
                    verdict.retry_after,
                ));
            }
            Some((room_posts, room, verdict))
        }
        _ => None,
    };

    let response = next.run(request).await;
    if let Some((room_posts, room, verdict)) = room_post
        && !response.status().is_success()
    {
        room_posts.release(&room, &verdict);
    }
    with_token_headers(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::{get, post};
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
                let v = limiter.acquire(7, now, unix);
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
        let refused = limiter.acquire(7, now, unix);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_secs(1));

        let (now, unix) = at(60);
        let fresh = limiter.acquire(7, now, unix);
        assert!(fresh.allowed);
        assert_eq!(fresh.remaining, 2);
        assert_eq!(fresh.reset_at, 1_700_000_121);
    }

    #[test]
    fn keys_are_counted_separately() {
        let limiter = limiter(1, 60, 10);
        let now = Instant::now();
        assert!(limiter.acquire(1, now, START_UNIX).allowed);
        assert!(!limiter.acquire(1, now, START_UNIX).allowed);
        assert!(limiter.acquire(2, now, START_UNIX).allowed);
    }

    #[test]
    fn a_released_request_is_given_back_but_only_in_its_own_window() {
        let limiter = limiter(1, 10, 10);
        let t0 = Instant::now();
        let first = limiter.acquire(1, t0, START_UNIX);
        limiter.release(&1, &first);
        let second = limiter.acquire(1, t0, START_UNIX);
        assert!(second.allowed);
        assert!(!limiter.acquire(1, t0, START_UNIX).allowed);

        // A release from an ended window does not credit the next one.
        let later = t0 + Duration::from_secs(10);
        let third = limiter.acquire(1, later, START_UNIX + Duration::from_secs(10));
        assert!(third.allowed);
        limiter.release(&1, &second);
        assert!(!limiter.acquire(1, later, START_UNIX).allowed);
        // Releasing a refused request gives nothing back.
        let refused = limiter.acquire(1, later, START_UNIX);
        limiter.release(&1, &refused);
        assert!(!limiter.acquire(1, later, START_UNIX).allowed);
    }

    #[test]
    fn memory_is_bounded_by_expiry_and_by_the_key_cap() {
        let limiter = limiter(5, 10, 100);
        let t0 = Instant::now();
        for key in 0..1_000 {
            limiter.acquire(key, t0, START_UNIX);
        }
        assert_eq!(limiter.tracked_keys(), 100, "the cap holds");
        // The newest windows survived; the oldest were forgotten.
        assert_eq!(limiter.acquire(999, t0, START_UNIX).remaining, 3);
        assert_eq!(limiter.acquire(0, t0, START_UNIX).remaining, 4);

        // Once their windows end, idle keys are dropped.
        let later = t0 + Duration::from_secs(11);
        limiter.acquire(5_000, later, START_UNIX);
        assert_eq!(limiter.tracked_keys(), 1);
        assert_eq!(
            limiter.windows.lock().unwrap().opened.len(),
            1,
            "the queue shrinks too"
        );
    }

    #[test]
    fn posts_of_messages_and_tasks_name_their_room() {
        assert_eq!(
            room_of_post(&Method::POST, "/v2/rooms/42/messages"),
            Some(42)
        );
        assert_eq!(room_of_post(&Method::POST, "/v2/rooms/42/tasks"), Some(42));
        assert_eq!(room_of_post(&Method::GET, "/v2/rooms/42/messages"), None);
        assert_eq!(room_of_post(&Method::PUT, "/v2/rooms/42/messages"), None);
        assert_eq!(room_of_post(&Method::POST, "/v2/rooms/42/files"), None);
        assert_eq!(
            room_of_post(&Method::POST, "/v2/rooms/42/messages/read"),
            None
        );
        assert_eq!(room_of_post(&Method::POST, "/v2/rooms/x/messages"), None);
        assert_eq!(room_of_post(&Method::POST, "/v2/rooms"), None);
    }

    #[test]
    fn token_keys_are_hashes_not_tokens() {
        assert_eq!(token_key("secret"), token_key("secret"));
        assert_ne!(token_key("secret"), token_key("secret2"));
    }

    fn app(settings: &RateLimits) -> Router {
        Router::new()
            .route("/v2/me", get(|| async { "me" }))
            .route(
                "/v2/rooms/{room_id}/messages",
                post(
                    |axum::extract::Path(room): axum::extract::Path<u64>| async move {
                        if room == 404 {
                            ApiError::not_found("room").into_response()
                        } else {
                            "posted".into_response()
                        }
                    },
                ),
            )
            .fallback(|| async { ApiError::not_found("endpoint") })
            .layer(axum::middleware::from_fn_with_state(
                Arc::new(RateLimiter::new(settings)),
                enforce,
            ))
    }

    fn small_limits() -> RateLimits {
        RateLimits {
            per_token: Some(RateLimit {
                requests: 4,
                window: Duration::from_secs(60),
            }),
            room_posts: Some(RateLimit {
                requests: 2,
                window: Duration::from_secs(60),
            }),
            max_tracked_keys: 100,
        }
    }

    async fn call(app: &Router, method: Method, uri: &str, token: Option<&str>) -> Response {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header("x-chatworktoken", token);
        }
        app.clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn header(response: &Response, name: &str) -> Option<String> {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }

    #[tokio::test]
    async fn every_answer_to_a_token_has_the_headers_and_the_excess_is_429() {
        let app = app(&small_limits());
        let ok = call(&app, Method::GET, "/v2/me", Some("t")).await;
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(header(&ok, LIMIT_HEADER).as_deref(), Some("4"));
        assert_eq!(header(&ok, REMAINING_HEADER).as_deref(), Some("3"));
        let reset: u64 = header(&ok, RESET_HEADER).unwrap().parse().unwrap();
        let unix_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            (unix_now + 59..=unix_now + 61).contains(&reset),
            "{reset} vs {unix_now}"
        );

        let missing = call(&app, Method::GET, "/v2/nothing", Some("t")).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(header(&missing, REMAINING_HEADER).as_deref(), Some("2"));
        // The same token in `Authorization: Bearer` is the same key.
        let bearer = app
            .clone()
            .oneshot(
                Request::get("/v2/me")
                    .header("authorization", "Bearer t")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(header(&bearer, REMAINING_HEADER).as_deref(), Some("1"));
        call(&app, Method::GET, "/v2/me", Some("t")).await;

        let refused = call(&app, Method::GET, "/v2/me", Some("t")).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&refused, REMAINING_HEADER).as_deref(), Some("0"));
        assert_eq!(header(&refused, RESET_HEADER), Some(reset.to_string()));
        assert!(header(&refused, "retry-after").is_some());
        let body = axum::body::to_bytes(refused.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(
            body["errors"][0]
                .as_str()
                .unwrap()
                .starts_with("Rate limit exceeded"),
            "{body}"
        );

        // Another token has its own allowance; no token is not counted.
        let other = call(&app, Method::GET, "/v2/me", Some("u")).await;
        assert_eq!(header(&other, REMAINING_HEADER).as_deref(), Some("3"));
        let anonymous = call(&app, Method::GET, "/v2/me", None).await;
        assert_eq!(anonymous.status(), StatusCode::OK);
        assert_eq!(header(&anonymous, LIMIT_HEADER), None);
    }

    #[tokio::test]
    async fn posts_per_room_are_limited_and_refused_posts_do_not_count() {
        let mut limits = small_limits();
        limits.per_token = None;
        let app = app(&limits);
        for _ in 0..5 {
            let refused_by_handler =
                call(&app, Method::POST, "/v2/rooms/404/messages", Some("t")).await;
            assert_eq!(refused_by_handler.status(), StatusCode::NOT_FOUND);
        }
        for _ in 0..2 {
            let posted = call(&app, Method::POST, "/v2/rooms/1/messages", Some("t")).await;
            assert_eq!(posted.status(), StatusCode::OK);
            assert_eq!(
                header(&posted, LIMIT_HEADER),
                None,
                "the token limit is off"
            );
        }
        let refused = call(&app, Method::POST, "/v2/rooms/1/messages", Some("u")).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        let other_room = call(&app, Method::POST, "/v2/rooms/2/messages", Some("t")).await;
        assert_eq!(other_room.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn limits_off_let_everything_through_without_headers() {
        let app = app(&RateLimits::off());
        for _ in 0..50 {
            let posted = call(&app, Method::POST, "/v2/rooms/1/messages", Some("t")).await;
            assert_eq!(posted.status(), StatusCode::OK);
            assert_eq!(header(&posted, LIMIT_HEADER), None);
        }
    }
}
