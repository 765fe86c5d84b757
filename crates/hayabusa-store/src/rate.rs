//! Rate windows: fixed-window request counters, the engine under the API's rate
//! limits (ChatWork's 300 requests per 5 minutes per token, 10 posts per 10 seconds
//! per room, and the per-address limit of callers without a valid token).
//!
//! A key's window opens with its first request and closes `window` later, the
//! instant `x-ratelimit-reset` announces; within it at most `requests` are allowed.
//! A counted request can be given back (a refused post must not use up its room's
//! allowance), but only to the window that counted it.
//!
//! Two engines implement the port [`RateWindows`]:
//! - [`LocalRateWindows`], in the process's memory: a single node's limits. Memory is
//!   bounded: at most `max_keys` windows are open per scope, and when they all are, a
//!   *new* key is refused ([`RateOutcome::Full`]) — a live window is never dropped,
//!   so flooding cannot reset anyone's window.
//! - a shared store (PostgreSQL's `rate_windows` table), so that a limit holds across
//!   every API node of a cluster: the count is one atomic upsert per request.
//!
//! Both pass `conformance::rate_windows`.

use crate::StoreError;
use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One fixed-window limit: at most `requests` in each `window`, counted from a key's
/// first request in the window (ChatWork's `x-ratelimit-reset` semantics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window (at least 1).
    pub requests: u32,
    /// Length of a window.
    pub window: Duration,
}

impl RateLimit {
    /// The limit with `requests` at least 1 and `window` at least 1 ms.
    pub fn normalized(self) -> RateLimit {
        RateLimit {
            requests: self.requests.max(1),
            window: self.window.max(Duration::from_millis(1)),
        }
    }
}

/// What is counted: keys of different scopes never share a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RateScope {
    /// Requests of an account (its valid API tokens).
    Account,
    /// Requests without a valid token, by peer address.
    Peer,
    /// Posts (messages, tasks, files) to a room.
    RoomPosts,
    /// Sign-in attempts for a sign-in address (by a hash of it).
    SignInAddress,
    /// Sign-in attempts from a peer address.
    SignInPeer,
}

impl RateScope {
    /// Every scope.
    pub const ALL: [RateScope; 5] = [
        RateScope::Account,
        RateScope::Peer,
        RateScope::RoomPosts,
        RateScope::SignInAddress,
        RateScope::SignInPeer,
    ];

    /// The scope's number in a shared store.
    pub fn code(self) -> i16 {
        match self {
            RateScope::Account => 1,
            RateScope::Peer => 2,
            RateScope::RoomPosts => 3,
            RateScope::SignInAddress => 4,
            RateScope::SignInPeer => 5,
        }
    }

    fn index(self) -> usize {
        match self {
            RateScope::Account => 0,
            RateScope::Peer => 1,
            RateScope::RoomPosts => 2,
            RateScope::SignInAddress => 3,
            RateScope::SignInPeer => 4,
        }
    }
}

/// A request counted (or refused) in a key's window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateHit {
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
    /// Which window counted it (an engine's own identifier), for
    /// [`RateWindows::give_back`].
    pub window: i64,
}

/// The outcome of [`RateWindows::hit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateOutcome {
    /// The request was counted in its key's window (or refused there: see
    /// [`RateHit::allowed`]).
    Counted(RateHit),
    /// The key has no window and no new one can be opened now (a bounded engine's
    /// every window is open and live); try again after `retry_after`.
    Full {
        /// Time until the oldest window ends.
        retry_after: Duration,
    },
}

/// Fixed-window counters per scope and key.
#[async_trait]
pub trait RateWindows: Send + Sync {
    /// Counts one request of `key` in `scope` under `limit`, unless its window is
    /// used up. Every call for a scope passes the same limit.
    async fn hit(
        &self,
        scope: RateScope,
        key: u128,
        limit: RateLimit,
    ) -> Result<RateOutcome, StoreError>;

    /// Gives back the request `hit` counted for `key`, if its window is still open
    /// (nothing for a refused request or an ended window).
    async fn give_back(&self, scope: RateScope, key: u128, hit: &RateHit)
    -> Result<(), StoreError>;
}

/// Whole seconds, rounded up.
pub fn ceil_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// Rate windows in this process's memory: one node's limits (see the module
/// documentation). At most `max_keys` windows are open per scope.
pub struct LocalRateWindows {
    max_keys: usize,
    scopes: [Mutex<Option<FixedWindowLimiter<u128>>>; 5],
}

impl LocalRateWindows {
    /// Counters tracking at most `max_keys` keys per scope.
    pub fn new(max_keys: usize) -> Self {
        LocalRateWindows {
            max_keys,
            scopes: Default::default(),
        }
    }

    /// Keys with an open window in `scope` (expired ones are dropped on the next hit).
    pub fn tracked_keys(&self, scope: RateScope) -> usize {
        self.scopes[scope.index()]
            .lock()
            .as_ref()
            .map_or(0, FixedWindowLimiter::tracked_keys)
    }
}

impl std::fmt::Debug for LocalRateWindows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRateWindows")
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

#[async_trait]
impl RateWindows for LocalRateWindows {
    async fn hit(
        &self,
        scope: RateScope,
        key: u128,
        limit: RateLimit,
    ) -> Result<RateOutcome, StoreError> {
        let mut slot = self.scopes[scope.index()].lock();
        let limiter = match slot.as_mut() {
            Some(limiter) if limiter.limit == limit.normalized() => limiter,
            _ => slot.insert(FixedWindowLimiter::new(limit, self.max_keys)),
        };
        Ok(match limiter.acquire(key, Instant::now(), unix_now()) {
            Ok(hit) => RateOutcome::Counted(hit),
            Err(Full { retry_after }) => RateOutcome::Full { retry_after },
        })
    }

    async fn give_back(
        &self,
        scope: RateScope,
        key: u128,
        hit: &RateHit,
    ) -> Result<(), StoreError> {
        if let Some(limiter) = self.scopes[scope.index()].lock().as_mut() {
            limiter.release(&key, hit);
        }
        Ok(())
    }
}

/// [`FixedWindowLimiter::acquire`] refused a new key: every window is open and live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full {
    /// Time until the oldest window ends (and a key can be taken again).
    pub retry_after: Duration,
}

/// A keyed fixed-window counter in memory, with time passed in (the engine of
/// [`LocalRateWindows`]).
pub struct FixedWindowLimiter<K> {
    limit: RateLimit,
    max_keys: usize,
    /// The open window of each key.
    live: HashMap<K, Window>,
    /// `(key, window id, opened)` of every window opened, oldest first (entries of
    /// windows dropped early stay until they expire or the queue is compacted).
    opened: VecDeque<(K, i64, Instant)>,
    /// The id of the next window opened.
    next_window: i64,
}

#[derive(Clone, Copy, Debug)]
struct Window {
    id: i64,
    opened: Instant,
    used: u32,
    reset_at: u64,
}

impl<K: Hash + Eq + Clone> FixedWindowLimiter<K> {
    /// A limiter allowing `limit.requests` per `limit.window` and key, tracking at
    /// most `max_keys` keys.
    pub fn new(limit: RateLimit, max_keys: usize) -> Self {
        FixedWindowLimiter {
            limit: limit.normalized(),
            max_keys: max_keys.max(1),
            live: HashMap::new(),
            opened: VecDeque::new(),
            next_window: 1,
        }
    }

    /// Counts one request of `key` at `now` (`unix_now`: the same instant as time
    /// since the Unix epoch), unless its window is used up. A key without a window
    /// gets one only if fewer than `max_keys` are open; otherwise it is refused.
    pub fn acquire(&mut self, key: K, now: Instant, unix_now: Duration) -> Result<RateHit, Full> {
        let RateLimit { requests, window } = self.limit;
        self.expire(now);
        if !self.live.contains_key(&key) {
            if self.live.len() >= self.max_keys {
                let retry_after = self.opened.front().map_or(window, |(_, _, opened)| {
                    (*opened + window).saturating_duration_since(now)
                });
                return Err(Full { retry_after });
            }
            let id = self.next_window;
            self.next_window += 1;
            self.opened.push_back((key.clone(), id, now));
            if self.opened.len() > 2 * self.max_keys {
                self.compact();
            }
            self.live.insert(
                key.clone(),
                Window {
                    id,
                    opened: now,
                    used: 0,
                    reset_at: ceil_seconds(unix_now + window),
                },
            );
        }
        let current = self
            .live
            .get_mut(&key)
            .expect("the key's window was opened above");
        let allowed = current.used < requests;
        if allowed {
            current.used += 1;
        }
        Ok(RateHit {
            allowed,
            limit: requests,
            remaining: requests - current.used,
            reset_at: current.reset_at,
            retry_after: (current.opened + window).saturating_duration_since(now),
            window: current.id,
        })
    }

    /// Gives back the request `hit` counted for `key`, if its window is still open;
    /// a window left with nothing counted is dropped.
    pub fn release(&mut self, key: &K, hit: &RateHit) {
        if !hit.allowed {
            return;
        }
        if let Some(current) = self.live.get_mut(key)
            && current.id == hit.window
        {
            current.used = current.used.saturating_sub(1);
            if current.used == 0 {
                self.live.remove(key);
            }
        }
    }

    /// Keys with an open window (expired ones are dropped on the next acquire).
    pub fn tracked_keys(&self) -> usize {
        self.live.len()
    }

    /// Drops every window that has ended by `now`.
    fn expire(&mut self, now: Instant) {
        let window = self.limit.window;
        while let Some((_, _, opened)) = self.opened.front()
            && now.saturating_duration_since(*opened) >= window
        {
            if let Some((key, id, _)) = self.opened.pop_front()
                && self.live.get(&key).is_some_and(|w| w.id == id)
            {
                self.live.remove(&key);
            }
        }
    }

    /// Drops the queue entries of windows that were dropped early.
    fn compact(&mut self) {
        let live = &self.live;
        self.opened
            .retain(|(key, id, _)| live.get(key).is_some_and(|w| w.id == *id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut limiter = limiter(3, 60, 10);
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
        let mut limiter = limiter(1, 60, 10);
        let now = Instant::now();
        assert!(limiter.acquire(1, now, START_UNIX).unwrap().allowed);
        assert!(!limiter.acquire(1, now, START_UNIX).unwrap().allowed);
        assert!(limiter.acquire(2, now, START_UNIX).unwrap().allowed);
    }

    #[test]
    fn a_released_request_is_given_back_but_only_in_its_own_window() {
        let mut limiter = limiter(2, 10, 10);
        let t0 = Instant::now();
        let kept = limiter.acquire(1, t0, START_UNIX).unwrap();
        let first = limiter.acquire(1, t0, START_UNIX).unwrap();
        limiter.release(&1, &first);
        let second = limiter.acquire(1, t0, START_UNIX).unwrap();
        assert!(second.allowed);
        assert!(!limiter.acquire(1, t0, START_UNIX).unwrap().allowed);
        assert_eq!(kept.window, second.window);

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
        let mut limiter = limiter(5, 10, 10);
        let t0 = Instant::now();
        for room in 0..100 {
            let verdict = limiter.acquire(room, t0, START_UNIX).unwrap();
            limiter.release(&room, &verdict);
        }
        assert_eq!(limiter.tracked_keys(), 0);
        assert!(limiter.opened.len() <= 20, "the queue is compacted");
    }

    #[test]
    fn when_full_new_keys_are_refused_and_live_windows_are_kept() {
        let mut limiter = limiter(5, 10, 100);
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
        assert_eq!(limiter.opened.len(), 1, "the queue shrinks too");
    }

    #[tokio::test]
    async fn the_local_engine_passes_the_conformance_suite() {
        crate::conformance::rate_windows::run_all(|| async {
            let windows: std::sync::Arc<dyn RateWindows> =
                std::sync::Arc::new(LocalRateWindows::new(1_000));
            (windows.clone(), windows)
        })
        .await;
    }

    #[tokio::test]
    async fn the_local_engine_refuses_new_keys_when_full() {
        let windows = LocalRateWindows::new(2);
        let minute = RateLimit {
            requests: 5,
            window: Duration::from_secs(60),
        };
        for key in 0..2 {
            let outcome = windows.hit(RateScope::Peer, key, minute).await.unwrap();
            assert!(matches!(outcome, RateOutcome::Counted(hit) if hit.allowed));
        }
        let outcome = windows.hit(RateScope::Peer, 9, minute).await.unwrap();
        assert!(
            matches!(outcome, RateOutcome::Full { retry_after } if retry_after > Duration::from_secs(55))
        );
        assert_eq!(windows.tracked_keys(RateScope::Peer), 2);
        // Other scopes have their own room.
        let outcome = windows.hit(RateScope::Account, 9, minute).await.unwrap();
        assert!(matches!(outcome, RateOutcome::Counted(_)));
    }
}
