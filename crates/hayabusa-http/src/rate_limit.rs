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
//! nor a count that only goes down; hence these counters.)
//!
//! The windows are counted by a [`RateWindows`] engine (`hayabusa_store::rate`): this
//! process's memory on a single node, or a store every API node shares (PostgreSQL's
//! `rate_windows`), so that ChatWork's per-token limit holds across a cluster rather
//! than per node. While the shared store fails, each node counts in its own memory
//! (the limits then hold per node) and says so in its log and metrics.
//!
//! Only keys an attacker cannot mint freely hold state: accounts (authenticated first,
//! through the authentication cache), peer addresses, and rooms only while a post is
//! in flight or once one succeeded. In memory, at most `max_tracked_keys` windows are
//! open per limit, and when they are all open and live a *new* key is refused (429) —
//! a live window is never dropped, so flooding cannot reset anyone's window, one's own
//! included.
//!
//! A room post is counted when it is let through and given back when the handler
//! does not answer 2xx, so refused posts (a non-member's 404, a readonly member's
//! 403, a bad body's 400) cannot use up a room's allowance; a window left with nothing
//! counted is dropped at once, so posts to rooms that do not exist leave nothing behind.

use crate::auth::{Caller, token_of};
use crate::error::ApiError;
use crate::params::Params;
use crate::state::{AppState, RateLimits};
use axum::extract::{ConnectInfo, OriginalUri, RawPathParams, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hayabusa_store::rate::ceil_seconds;
use hayabusa_store::{LocalRateWindows, RateHit, RateLimit, RateOutcome, RateScope, RateWindows};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Header: the limit (requests per window).
pub const LIMIT_HEADER: &str = "x-ratelimit-limit";
/// Header: requests left in the current window.
pub const REMAINING_HEADER: &str = "x-ratelimit-remaining";
/// Header: Unix time (seconds) at which the current window ends.
pub const RESET_HEADER: &str = "x-ratelimit-reset";

/// Which engine counted a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    Main,
    Fallback,
}

/// The limits of one server, shared by all requests.
pub struct RateLimiter {
    limits: RateLimits,
    /// Where requests are counted: this process's memory, or a store every API node
    /// shares.
    windows: Arc<dyn RateWindows>,
    /// With a shared store: this node's own counters, used while the store fails
    /// (the limits then hold per node rather than not at all).
    fallback: Option<LocalRateWindows>,
    /// When (Unix seconds) a failure of the shared store was last logged.
    last_failure_logged: AtomicU64,
}

impl RateLimiter {
    /// Limiters for `settings` (a limit that is `None` is off), counting in `shared`
    /// if given (with this node's memory as a fallback), otherwise in this node's
    /// memory.
    pub fn new(settings: &RateLimits, shared: Option<Arc<dyn RateWindows>>) -> Self {
        let local = || LocalRateWindows::new(settings.max_tracked_keys);
        let (windows, fallback): (Arc<dyn RateWindows>, _) = match shared {
            Some(shared) => (shared, Some(local())),
            None => (Arc::new(local()), None),
        };
        RateLimiter {
            limits: settings.clone(),
            windows,
            fallback,
            last_failure_logged: AtomicU64::new(0),
        }
    }

    /// Counts a request of `key` in `scope`.
    async fn hit(&self, scope: RateScope, key: u128, limit: RateLimit) -> (RateOutcome, Engine) {
        let error = match self.windows.hit(scope, key, limit).await {
            Ok(outcome) => return (outcome, Engine::Main),
            Err(error) => error,
        };
        self.failed("counting a request", &error);
        let outcome = match &self.fallback {
            Some(fallback) => fallback.hit(scope, key, limit).await,
            None => Err(error),
        };
        // The local engine does not fail; were it to, the request goes uncounted.
        let outcome = outcome.unwrap_or(RateOutcome::Counted(RateHit {
            allowed: true,
            limit: limit.requests,
            remaining: limit.requests,
            reset_at: 0,
            retry_after: Duration::ZERO,
            window: 0,
        }));
        (outcome, Engine::Fallback)
    }

    /// Gives back a request `hit` counted.
    async fn give_back(&self, scope: RateScope, key: u128, hit: &RateHit, engine: Engine) {
        let result = match (engine, &self.fallback) {
            (Engine::Main, _) => self.windows.give_back(scope, key, hit).await,
            (Engine::Fallback, Some(fallback)) => fallback.give_back(scope, key, hit).await,
            (Engine::Fallback, None) => Ok(()),
        };
        if let Err(error) = result {
            self.failed("giving back a request", &error);
        }
    }

    /// Notes a failure of the shared store (logged at most every 10 seconds).
    fn failed(&self, what: &str, error: &hayabusa_store::StoreError) {
        ::metrics::counter!("hayabusa_rate_limit_store_failures_total").increment(1);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let last = self.last_failure_logged.load(Ordering::Relaxed);
        if now >= last + 10
            && self
                .last_failure_logged
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(%error, "rate limits: {what} in the shared store failed; counting on this node meanwhile");
        }
    }
}

/// A sign-in attempt counted against its address's limit (given back if it
/// succeeds: only failures count against an address).
pub struct SignInAttempt {
    address: Option<(u128, RateHit, Engine)>,
}

impl RateLimiter {
    /// Counts a sign-in attempt for the sign-in address of key `address` from
    /// `peer`; the 429 answer if either's limit is reached.
    pub async fn sign_in_attempt(
        &self,
        address: u128,
        peer: Option<IpAddr>,
    ) -> Result<SignInAttempt, Response> {
        if let Some(limit) = self.limits.sign_in_peer {
            match self
                .hit(RateScope::SignInPeer, peer_key(peer), limit)
                .await
                .0
            {
                RateOutcome::Counted(hit) if !hit.allowed => {
                    return Err(too_many_requests(
                        format!(
                            "Too many sign-in attempts from this address; try again in {} seconds",
                            ceil_seconds(hit.retry_after).max(1)
                        ),
                        hit.retry_after,
                    ));
                }
                RateOutcome::Counted(_) => {}
                RateOutcome::Full { retry_after } => return Err(too_many_clients(retry_after)),
            }
        }
        let Some(limit) = self.limits.sign_in_address else {
            return Ok(SignInAttempt { address: None });
        };
        match self.hit(RateScope::SignInAddress, address, limit).await {
            (RateOutcome::Counted(hit), _) if !hit.allowed => Err(too_many_requests(
                format!(
                    "Too many failed sign-ins for this account; try again in {} seconds",
                    ceil_seconds(hit.retry_after).max(1)
                ),
                hit.retry_after,
            )),
            (RateOutcome::Counted(hit), engine) => Ok(SignInAttempt {
                address: Some((address, hit, engine)),
            }),
            (RateOutcome::Full { retry_after }, _) => Err(too_many_clients(retry_after)),
        }
    }

    /// The attempt succeeded: it does not count against its address.
    pub async fn sign_in_succeeded(&self, attempt: SignInAttempt) {
        if let Some((address, hit, engine)) = attempt.address {
            self.give_back(RateScope::SignInAddress, address, &hit, engine)
                .await;
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

fn set_headers(headers: &mut HeaderMap, verdict: &RateHit) {
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

fn too_many_clients(retry_after: Duration) -> Response {
    tracing::warn!("rate limiter full: refusing a new client");
    too_many_requests(
        format!(
            "Rate limit exceeded: too many clients right now; try again in {} seconds",
            ceil_seconds(retry_after).max(1)
        ),
        retry_after,
    )
}

/// What a request is counted as.
enum Counted {
    Account(RateHit),
    Peer(RateHit),
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
    if limiter.limits.per_token.is_none() && limiter.limits.per_peer.is_none() {
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
    let (request, token) = token_of_request(request, &path);
    let (mut parts, body) = request.into_parts();
    let (account, session) = match crate::auth::authenticate(&parts, &state, token).await {
        Ok((account, session)) => (Some(account), session),
        Err(_) => (None, None),
    };
    if let Some(session) = session {
        parts.extensions.insert(session);
    }
    let mut request = Request::from_parts(parts, body);
    let counted = match (&account, limiter.limits.per_token, limiter.limits.per_peer) {
        (Some(account), Some(per_token), _) => {
            let key = u128::from(account.account_id.0);
            match limiter.hit(RateScope::Account, key, per_token).await.0 {
                RateOutcome::Counted(verdict) => Counted::Account(verdict),
                RateOutcome::Full { retry_after } => return too_many_clients(retry_after),
            }
        }
        (Some(_), None, _) | (None, _, None) => Counted::Nothing,
        (None, _, Some(per_peer)) => {
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip());
            match limiter
                .hit(RateScope::Peer, peer_key(peer), per_peer)
                .await
                .0
            {
                RateOutcome::Counted(verdict) => Counted::Peer(verdict),
                RateOutcome::Full { retry_after } => return too_many_clients(retry_after),
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
                .limits
                .per_token
                .map_or(0, |limit| limit.window.as_secs());
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
                .limits
                .per_peer
                .map_or(0, |limit| limit.window.as_secs());
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
    let Some(room_posts) = limiter.limits.room_posts else {
        return next.run(request).await;
    };
    let Some(room) = params
        .iter()
        .find(|(name, _)| *name == "room_id")
        .and_then(|(_, value)| value.parse::<u64>().ok())
    else {
        return next.run(request).await;
    };
    let (verdict, engine) = match limiter
        .hit(RateScope::RoomPosts, u128::from(room), room_posts)
        .await
    {
        (RateOutcome::Counted(verdict), engine) => (verdict, engine),
        (RateOutcome::Full { retry_after }, _) => return too_many_clients(retry_after),
    };
    if !verdict.allowed {
        tracing::debug!(room_id = room, "room posting rate limit reached");
        return too_many_requests(
            format!(
                "Rate limit exceeded: at most {} messages, tasks and files per {} seconds \
                 in a room; try again in {} seconds",
                verdict.limit,
                room_posts.window.as_secs(),
                ceil_seconds(verdict.retry_after).max(1)
            ),
            verdict.retry_after,
        );
    }
    let response = next.run(request).await;
    if !response.status().is_success() {
        limiter
            .give_back(RateScope::RoomPosts, u128::from(room), &verdict, engine)
            .await;
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
        posting_app_counting_in(settings, None)
    }

    fn posting_app_counting_in(
        settings: &RateLimits,
        shared: Option<Arc<dyn RateWindows>>,
    ) -> Router {
        let limiter = Arc::new(RateLimiter::new(settings, shared));
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

    /// A shared store that is down.
    struct Down;

    #[async_trait::async_trait]
    impl RateWindows for Down {
        async fn hit(
            &self,
            _: RateScope,
            _: u128,
            _: RateLimit,
        ) -> Result<RateOutcome, hayabusa_store::StoreError> {
            Err(hayabusa_store::StoreError::Unavailable("down".into()))
        }

        async fn give_back(
            &self,
            _: RateScope,
            _: u128,
            _: &RateHit,
        ) -> Result<(), hayabusa_store::StoreError> {
            Err(hayabusa_store::StoreError::Unavailable("down".into()))
        }
    }

    #[tokio::test]
    async fn while_the_shared_store_fails_the_node_counts_on_its_own() {
        let settings = RateLimits {
            room_posts: Some(RateLimit {
                requests: 2,
                window: Duration::from_secs(60),
            }),
            ..RateLimits::off()
        };
        let app = posting_app_counting_in(&settings, Some(Arc::new(Down)));
        assert_eq!(post_to(&app, "404").await, StatusCode::NOT_FOUND);
        for _ in 0..2 {
            assert_eq!(post_to(&app, "1").await, StatusCode::OK);
        }
        assert_eq!(post_to(&app, "1").await, StatusCode::TOO_MANY_REQUESTS);
    }

    #[tokio::test]
    async fn limits_off_let_every_post_through() {
        let app = posting_app(&RateLimits::off());
        for _ in 0..50 {
            assert_eq!(post_to(&app, "1").await, StatusCode::OK);
        }
    }
}
