//! The projector of a cluster: several processes may run it, exactly one projects at
//! a time. Each waits as a standby until it acquires the projector lease
//! ([`hayabusa_store::PROJECTOR_LEASE`]), then projects with the lease's fence while a
//! keeper renews the lease. It stops projecting and becomes a standby again when a
//! renewal is refused, when renewals fail for longer than the lease lasts, or when
//! the read store refuses a batch as fenced off; the read store's fence check is what
//! makes a stale projector harmless, the rest only makes it notice sooner.

use crate::projector::{Projector, ProjectorDelay, Stopped};
use hayabusa_store::{CommitFeed, EventReader, Leases, PROJECTOR_LEASE, ReadStore};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How the projector lease is held.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// Who this process is (unique per process start).
    pub holder: String,
    /// How long the lease lasts without a renewal: a standby takes over at most this
    /// long (plus [`LeaseSettings::retry_every`]) after the active projector died.
    pub ttl: Duration,
    /// How often the active projector renews it.
    pub renew_every: Duration,
    /// How often a standby tries to acquire it.
    pub retry_every: Duration,
}

impl LeaseSettings {
    /// The defaults for `holder`: a 3 s lease renewed every second, tried every
    /// half second (a dead projector is replaced within about 3.5 s).
    pub fn new(holder: impl Into<String>) -> Self {
        LeaseSettings {
            holder: holder.into(),
            ttl: Duration::from_secs(3),
            renew_every: Duration::from_secs(1),
            retry_every: Duration::from_millis(500),
        }
    }
}

/// A unique holder name for this process: host name, process id and start time.
pub fn holder_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".to_owned());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or(0);
    format!("{host}/{}/{started}", std::process::id())
}

/// Runs the projector whenever this process holds the lease, until `shutdown` says
/// true; releases the lease on the way out.
pub async fn run_leased_projector(
    log: Arc<dyn EventReader>,
    store: Arc<dyn ReadStore>,
    feed: Arc<dyn CommitFeed>,
    settings: LeaseSettings,
    delay: ProjectorDelay,
    mut shutdown: watch::Receiver<bool>,
) {
    // Looked up at each change: the recorder may be installed after this starts.
    let active = || metrics::gauge!("hayabusa_projector_active");
    loop {
        let Some(fence) = acquire(store.as_ref(), &settings, &mut shutdown).await else {
            return;
        };
        tracing::info!(fence, holder = %settings.holder, "took the projector lease: projecting");
        active().set(1.0);
        let writer: Arc<dyn hayabusa_store::ReadModelWriter> = store.clone();
        let projector = match Projector::new(log.clone(), writer).await {
            Ok(projector) => projector
                .with_feed(feed.clone())
                .with_fence(fence)
                .with_delay(delay.clone()),
            Err(error) => {
                tracing::warn!(%error, "cannot start projecting; giving the lease up");
                let _ = store
                    .release(PROJECTOR_LEASE, &settings.holder, fence)
                    .await;
                active().set(0.0);
                continue;
            }
        };
        let (lost_sender, lost) = tokio::sync::oneshot::channel::<()>();
        let keeper = {
            let (store, settings) = (store.clone(), settings.clone());
            tokio::spawn(async move {
                let why = keep_lease(
                    store.as_ref(),
                    PROJECTOR_LEASE,
                    &settings.holder,
                    fence,
                    settings.ttl,
                    settings.renew_every,
                    settings.renew_every,
                )
                .await;
                tracing::warn!(fence, ?why, "lost the projector lease");
                let _ = lost_sender.send(());
            })
        };
        let mut stop = shutdown.clone();
        let stopped = projector
            .run(async move {
                tokio::select! {
                    _ = stop.wait_for(|stop| *stop) => {}
                    _ = lost => {}
                }
            })
            .await;
        keeper.abort();
        active().set(0.0);
        let shutting_down = *shutdown.borrow();
        if shutting_down || stopped == Stopped::Shutdown {
            // Lost or shutting down: give it up either way (a lost lease ignores this).
            let _ = store
                .release(PROJECTOR_LEASE, &settings.holder, fence)
                .await;
        }
        if shutting_down || stopped == Stopped::LogClosed {
            return;
        }
        tracing::warn!(?stopped, "stopped projecting: standing by");
    }
}

/// Waits as a standby until the lease is acquired (its fence) or shutdown (None).
async fn acquire(
    store: &dyn ReadStore,
    settings: &LeaseSettings,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<u64> {
    let mut said = false;
    loop {
        if *shutdown.borrow() {
            return None;
        }
        match store
            .acquire(PROJECTOR_LEASE, &settings.holder, settings.ttl)
            .await
        {
            Ok(Some(fence)) => return Some(fence),
            Ok(None) if !said => {
                tracing::info!("another process projects: standing by");
                said = true;
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "cannot acquire the projector lease"),
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.retry_every) => {}
            _ = shutdown.wait_for(|stop| *stop) => return None,
        }
    }
}

/// Why [`keep_lease`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseLost {
    /// A renewal was refused: the lease was acquired again since (by anyone).
    TakenOver,
    /// Renewals failed for so long that the lease could expire before the next one.
    MayHaveExpired,
}

/// Renews lease `name` (held by `holder` with `fence`) for `ttl` every `renew_every`
/// (each renewal bounded by `renew_every` too), and returns once it is lost: a
/// renewal refused, or renewals failed until the lease could expire within `margin`.
/// Its holder must stop at once then.
pub async fn keep_lease(
    store: &dyn Leases,
    name: &str,
    holder: &str,
    fence: u64,
    ttl: Duration,
    renew_every: Duration,
    margin: Duration,
) -> LeaseLost {
    // The lease lasts `ttl` from a renewal the store made after it was sent.
    let mut valid_until = tokio::time::Instant::now() + ttl;
    loop {
        tokio::time::sleep(renew_every).await;
        let sent = tokio::time::Instant::now();
        match tokio::time::timeout(renew_every, store.renew(name, holder, fence, ttl)).await {
            Ok(Ok(true)) => valid_until = sent + ttl,
            Ok(Ok(false)) => return LeaseLost::TakenOver,
            Ok(Err(error)) => tracing::warn!(%error, lease = name, "cannot renew a lease"),
            Err(_) => tracing::warn!(lease = name, "renewing a lease timed out"),
        }
        if tokio::time::Instant::now() + margin >= valid_until {
            return LeaseLost::MayHaveExpired;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hayabusa_store::{
        Leases, MemoryCommitFeed, MemoryEventLog, MemoryReadStore, ReadModelWriter,
    };

    fn fast(holder: &str) -> LeaseSettings {
        LeaseSettings {
            holder: holder.to_owned(),
            ttl: Duration::from_millis(300),
            renew_every: Duration::from_millis(100),
            retry_every: Duration::from_millis(50),
        }
    }

    use crate::test_support::append_organization as append;

    async fn projected(store: &MemoryReadStore, position: u64) {
        for _ in 0..500 {
            if store.checkpoint().await.unwrap() >= position {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("not projected to {position}");
    }

    #[tokio::test]
    async fn one_projector_at_a_time_and_a_standby_takes_over() {
        let log = Arc::new(MemoryEventLog::new());
        let store = Arc::new(MemoryReadStore::new());
        let feed: Arc<dyn CommitFeed> = Arc::new(MemoryCommitFeed::new());
        let (stop_a, stopped_a) = watch::channel(false);
        let (stop_b, stopped_b) = watch::channel(false);
        let a = tokio::spawn(run_leased_projector(
            log.clone(),
            store.clone(),
            feed.clone(),
            fast("a"),
            ProjectorDelay::default(),
            stopped_a,
        ));
        append(&log, 1).await;
        projected(&store, log.head()).await;
        let b = tokio::spawn(run_leased_projector(
            log.clone(),
            store.clone(),
            feed.clone(),
            fast("b"),
            ProjectorDelay::default(),
            stopped_b,
        ));
        tokio::time::sleep(Duration::from_millis(200)).await;
        // b stands by: the lease is a's.
        assert_eq!(
            store
                .acquire(PROJECTOR_LEASE, "c", Duration::from_secs(1))
                .await
                .unwrap(),
            None
        );

        // a stops (and releases): b projects what comes next.
        stop_a.send(true).unwrap();
        a.await.unwrap();
        append(&log, 2).await;
        projected(&store, log.head()).await;
        stop_b.send(true).unwrap();
        b.await.unwrap();
    }
}
