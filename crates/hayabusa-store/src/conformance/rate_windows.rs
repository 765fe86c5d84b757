//! The rate windows port ([`RateWindows`]): what every engine must do. `make` gives
//! two handles on one fresh set of counters (for a shared store: two connection
//! pools, as two API nodes would have), so that the checks can tell a limit that
//! holds across handles from one that holds per handle.

use crate::rate::{RateHit, RateLimit, RateOutcome, RateScope, RateWindows};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Two handles on the same counters.
pub type Pair = (Arc<dyn RateWindows>, Arc<dyn RateWindows>);

/// Runs every check, each on fresh counters from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Pair>,
{
    a_window_counts_down_and_refuses_at_the_limit(make().await).await;
    keys_and_scopes_are_counted_separately(make().await).await;
    a_new_window_opens_when_one_ends(make().await).await;
    a_given_back_request_counts_again_only_in_its_own_window(make().await).await;
    concurrent_requests_through_both_handles_never_exceed_the_limit(make().await).await;
}

fn limit(requests: u32, window: Duration) -> RateLimit {
    RateLimit { requests, window }
}

/// A key no earlier run used (shared stores may outlive a run).
fn fresh_key() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
        << 8
}

fn unix_seconds_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

async fn hit(windows: &dyn RateWindows, scope: RateScope, key: u128, limit: RateLimit) -> RateHit {
    match windows.hit(scope, key, limit).await.unwrap() {
        RateOutcome::Counted(hit) => hit,
        RateOutcome::Full { .. } => panic!("a handful of keys fill no engine"),
    }
}

/// Within a window: `remaining` counts down through both handles, the request past
/// the limit is refused, and every hit announces the same reset instant, one window
/// after the first request.
pub async fn a_window_counts_down_and_refuses_at_the_limit((a, b): Pair) {
    let key = fresh_key();
    let minute = limit(3, Duration::from_secs(60));
    let before = unix_seconds_now();
    let mut seen = Vec::new();
    for (i, windows) in [&a, &b, &a, &b, &a].into_iter().enumerate() {
        let hit = hit(windows.as_ref(), RateScope::Account, key, minute).await;
        assert_eq!(hit.limit, 3);
        assert!(
            hit.retry_after <= Duration::from_secs(60) && hit.retry_after > Duration::from_secs(50),
            "hit {i}: retry after {:?}",
            hit.retry_after
        );
        seen.push((hit.allowed, hit.remaining, hit.reset_at));
    }
    let reset = seen[0].2;
    assert!(
        (before + 60..=before + 62).contains(&reset),
        "reset {reset} one minute after {before}"
    );
    assert_eq!(
        seen,
        vec![
            (true, 2, reset),
            (true, 1, reset),
            (true, 0, reset),
            (false, 0, reset),
            (false, 0, reset)
        ]
    );
}

/// Each key of each scope has its own window.
pub async fn keys_and_scopes_are_counted_separately((a, b): Pair) {
    let key = fresh_key();
    let one = limit(1, Duration::from_secs(60));
    assert!(hit(a.as_ref(), RateScope::Account, key, one).await.allowed);
    assert!(!hit(b.as_ref(), RateScope::Account, key, one).await.allowed);
    assert!(
        hit(b.as_ref(), RateScope::Account, key + 1, one)
            .await
            .allowed
    );
    for scope in [RateScope::Peer, RateScope::RoomPosts] {
        assert!(
            hit(a.as_ref(), scope, key, one).await.allowed,
            "{scope:?} does not share the account's window"
        );
    }
    // Keys of the whole 128 bits are told apart.
    let high = u128::MAX - key;
    assert!(hit(a.as_ref(), RateScope::Peer, high, one).await.allowed);
    assert!(!hit(b.as_ref(), RateScope::Peer, high, one).await.allowed);
    assert!(
        hit(a.as_ref(), RateScope::Peer, high ^ (1 << 100), one)
            .await
            .allowed
    );
}

/// When a window ends, the next request opens a fresh one with a later reset.
pub async fn a_new_window_opens_when_one_ends((a, b): Pair) {
    let key = fresh_key();
    let short = limit(2, Duration::from_millis(300));
    let first = hit(a.as_ref(), RateScope::RoomPosts, key, short).await;
    assert!(
        hit(b.as_ref(), RateScope::RoomPosts, key, short)
            .await
            .allowed
    );
    assert!(
        !hit(a.as_ref(), RateScope::RoomPosts, key, short)
            .await
            .allowed
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let fresh = hit(b.as_ref(), RateScope::RoomPosts, key, short).await;
    assert!(fresh.allowed, "a new window after the old one ended");
    assert_eq!(fresh.remaining, 1);
    assert_ne!(fresh.window, first.window);
    assert!(fresh.reset_at > first.reset_at);
}

/// A given-back request may be used again in its window; giving back a refused
/// request, or one from a window that has ended, changes nothing.
pub async fn a_given_back_request_counts_again_only_in_its_own_window((a, b): Pair) {
    let key = fresh_key();
    let two = limit(2, Duration::from_millis(400));
    let kept = hit(a.as_ref(), RateScope::RoomPosts, key, two).await;
    let first = hit(b.as_ref(), RateScope::RoomPosts, key, two).await;
    assert!(kept.allowed && first.allowed);
    let refused = hit(a.as_ref(), RateScope::RoomPosts, key, two).await;
    assert!(!refused.allowed);
    b.give_back(RateScope::RoomPosts, key, &refused)
        .await
        .unwrap();
    assert!(
        !hit(a.as_ref(), RateScope::RoomPosts, key, two)
            .await
            .allowed,
        "giving back a refused request frees nothing"
    );
    a.give_back(RateScope::RoomPosts, key, &first)
        .await
        .unwrap();
    let again = hit(b.as_ref(), RateScope::RoomPosts, key, two).await;
    assert!(again.allowed, "a given-back request is free again");
    assert_eq!(again.remaining, 0);
    assert_eq!(again.window, kept.window);
    assert!(
        !hit(a.as_ref(), RateScope::RoomPosts, key, two)
            .await
            .allowed
    );

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let next = hit(a.as_ref(), RateScope::RoomPosts, key, two).await;
    let last = hit(b.as_ref(), RateScope::RoomPosts, key, two).await;
    assert!(next.allowed && last.allowed);
    a.give_back(RateScope::RoomPosts, key, &again)
        .await
        .unwrap();
    assert!(
        !hit(b.as_ref(), RateScope::RoomPosts, key, two)
            .await
            .allowed,
        "a request of an ended window does not credit the next one"
    );
}

/// Many requests at once, half through each handle: exactly `limit` are allowed.
pub async fn concurrent_requests_through_both_handles_never_exceed_the_limit((a, b): Pair) {
    let key = fresh_key();
    let twenty = limit(20, Duration::from_secs(60));
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let windows = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(
                async move { hit(windows.as_ref(), RateScope::Account, key, twenty).await },
            )
        })
        .collect();
    let mut allowed = 0;
    let mut remaining = Vec::new();
    for task in tasks {
        let hit = task.await.unwrap();
        if hit.allowed {
            allowed += 1;
            remaining.push(hit.remaining);
        }
    }
    assert_eq!(allowed, 20, "exactly the limit is allowed");
    remaining.sort_unstable();
    assert_eq!(remaining, (0..20).collect::<Vec<u32>>(), "each count once");
}
