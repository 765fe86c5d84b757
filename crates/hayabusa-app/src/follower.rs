//! The follower: how a node that serves from a shared read store, but does not
//! project into it, learns what the projector did. It follows the commit feed and,
//! for each [`Committed`] notice, in this order: invalidates the node's cached pages
//! and authentication entries, announces the new position on the node's
//! [`ProjectionWatch`] (what reads wait on), and wakes the node's sync clients.
//!
//! Notices may be lost. A notice whose `from` is beyond the position the follower
//! reached, or a store checkpoint that stays ahead of the notices for a whole recheck
//! interval, means some were: the follower then drops every cached page and account,
//! moves to the newer position and wakes every sync client (each re-reads its ops),
//! so a lost notice costs time, never correctness.

use crate::auth_cache::AuthCache;
use crate::hub::{Wakeup, WakeupHub};
use crate::page_cache::{PageCache, Touched};
use crate::projection_watch::ProjectionWatch;
use futures::StreamExt;
use hayabusa_store::{CommitFeed, Committed, Position, ReadModelWriter};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the follower compares its position with the store's checkpoint by
/// default: the longest a lost notice delays reads and sync clients (twice this).
pub const DEFAULT_RECHECK: Duration = Duration::from_millis(250);

/// Follows the commit feed for one node.
pub struct Follower {
    store: Arc<dyn ReadModelWriter>,
    feed: Arc<dyn CommitFeed>,
    sender: watch::Sender<Position>,
    hub: Arc<dyn WakeupHub>,
    pages: Option<Arc<PageCache>>,
    auth: Option<Arc<AuthCache>>,
    recheck: Duration,
}

impl Follower {
    /// A follower of `feed` that starts at the store's checkpoint and wakes sync
    /// clients through `hub`.
    pub async fn new(
        store: Arc<dyn ReadModelWriter>,
        feed: Arc<dyn CommitFeed>,
        hub: Arc<dyn WakeupHub>,
    ) -> Result<Self, crate::AppError> {
        let checkpoint = store.checkpoint().await?;
        Ok(Follower {
            store,
            feed,
            sender: watch::channel(checkpoint).0,
            hub,
            pages: None,
            auth: None,
            recheck: DEFAULT_RECHECK,
        })
    }

    /// Invalidates `pages` as notices say.
    pub fn with_page_cache(mut self, pages: Arc<PageCache>) -> Self {
        self.pages = Some(pages);
        self
    }

    /// Invalidates `auth` as notices say.
    pub fn with_auth_cache(mut self, auth: Arc<AuthCache>) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Compares the position with the store's checkpoint every `recheck`.
    pub fn with_recheck(mut self, recheck: Duration) -> Self {
        self.recheck = recheck;
        self
    }

    /// The position the read models have reached, as this node knows it.
    pub fn watch(&self) -> ProjectionWatch {
        ProjectionWatch::from_receiver(self.sender.subscribe())
    }

    /// Follows the feed until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let feed = self.feed.clone();
        tokio::pin!(shutdown);
        let mut ticks = tokio::time::interval(self.recheck);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut notices = None;
        // The checkpoint seen ahead of this follower at the last tick.
        let mut ahead: Option<Position> = None;
        loop {
            if notices.is_none() {
                match feed.subscribe().await {
                    Ok(stream) => {
                        notices = Some(stream);
                        // Notices before the subscription are lost: look at the store.
                        self.recheck_store(&mut ahead, true).await;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot follow commit notices, retrying");
                    }
                }
            }
            tokio::select! {
                notice = async {
                    match notices.as_mut() {
                        Some(stream) => stream.next().await,
                        None => std::future::pending().await,
                    }
                } => match notice {
                    Some(notice) => self.on_notice(notice),
                    None => notices = None,
                },
                _ = ticks.tick() => self.recheck_store(&mut ahead, false).await,
                _ = &mut shutdown => return,
            }
        }
    }

    /// Moves to the store's checkpoint if it was ahead at the last tick too (or at
    /// once, if `now`): the notices for it were lost.
    async fn recheck_store(&self, ahead: &mut Option<Position>, now: bool) {
        let checkpoint = match self.store.checkpoint().await {
            Ok(checkpoint) => checkpoint,
            Err(error) => {
                tracing::warn!(%error, "cannot read the read store's checkpoint");
                return;
            }
        };
        let current = *self.sender.borrow();
        if let Some(seen) = ahead.take()
            && seen > current
        {
            tracing::debug!(seen, current, "commit notices were lost");
            self.jump(checkpoint.max(seen));
        } else if now && checkpoint > current {
            self.jump(checkpoint);
        }
        if checkpoint > *self.sender.borrow() {
            *ahead = Some(checkpoint);
        }
    }

    /// Applies one notice.
    fn on_notice(&self, notice: Committed) {
        let current = *self.sender.borrow();
        if notice.to <= current {
            return;
        }
        if notice.from > current || notice.wake_all {
            self.jump(notice.to);
            return;
        }
        if let Some(pages) = &self.pages {
            pages.invalidate(
                &Touched {
                    rooms: notice.rooms,
                    everything: notice.everything,
                },
                notice.to,
            );
        }
        if let Some(auth) = &self.auth {
            auth.invalidate_accounts(&notice.accounts, &notice.tokens, notice.to);
        }
        self.sender.send_replace(notice.to);
        let wakeups: Vec<Wakeup> = notice
            .wake_rooms
            .into_iter()
            .map(|room| Wakeup::Room(room, notice.to))
            .chain(
                notice
                    .wake_accounts
                    .into_iter()
                    .map(|account| Wakeup::Account(account, notice.to)),
            )
            .collect();
        self.hub.publish(&wakeups);
    }

    /// Moves to `position` without knowing what changed up to it.
    fn jump(&self, position: Position) {
        if position <= *self.sender.borrow() {
            return;
        }
        if let Some(pages) = &self.pages {
            pages.invalidate(
                &Touched {
                    rooms: Vec::new(),
                    everything: true,
                },
                position,
            );
        }
        if let Some(auth) = &self.auth {
            auth.clear(position);
        }
        self.sender.send_replace(position);
        self.hub.wake_all();
        metrics::counter!("hayabusa_follower_jumps_total").increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::InProcessHub;
    use hayabusa_domain::{AccountId, RoomId};
    use hayabusa_store::{MemoryCommitFeed, MemoryReadStore};

    async fn woken(subscription: &crate::hub::Subscription) -> bool {
        tokio::time::timeout(Duration::from_millis(50), subscription.woken())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn notices_move_the_position_and_wake_clients_and_a_gap_wakes_everyone() {
        let store = Arc::new(MemoryReadStore::new());
        let hub = Arc::new(InProcessHub::new());
        let feed = Arc::new(MemoryCommitFeed::new());
        let follower = Follower::new(store.clone(), feed.clone(), hub.clone())
            .await
            .unwrap()
            .with_recheck(Duration::from_secs(3600));
        let watch = follower.watch();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(follower.run(async move {
            let _ = stopped.await;
        }));
        let in_room = hub.subscribe(AccountId(1), vec![RoomId(7)]);
        let elsewhere = hub.subscribe(AccountId(2), vec![RoomId(8)]);
        while feed.followers() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }

        let notice = Committed {
            from: 0,
            to: 10,
            wake_rooms: vec![RoomId(7)],
            ..Committed::default()
        };
        feed.publish(&notice).await.unwrap();
        assert!(watch.wait_for(10, Duration::from_secs(5)).await);
        assert!(woken(&in_room).await, "the room's client is woken");
        assert!(!woken(&elsewhere).await, "another room's client is not");

        // A notice from beyond 10: the one between was lost.
        let after_gap = Committed {
            from: 15,
            to: 20,
            ..Committed::default()
        };
        feed.publish(&after_gap).await.unwrap();
        assert!(watch.wait_for(20, Duration::from_secs(5)).await);
        assert!(woken(&in_room).await && woken(&elsewhere).await);

        // An old notice changes nothing.
        feed.publish(&notice).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(watch.current(), 20);

        stop.send(()).unwrap();
        running.await.unwrap();
    }

    #[tokio::test]
    async fn without_notices_the_store_checkpoint_moves_the_follower() {
        let store = Arc::new(MemoryReadStore::new());
        let hub = Arc::new(InProcessHub::new());
        let feed = Arc::new(MemoryCommitFeed::new());
        let follower = Follower::new(store.clone(), feed, hub.clone())
            .await
            .unwrap()
            .with_recheck(Duration::from_millis(20));
        let watch = follower.watch();
        let client = hub.subscribe(AccountId(1), vec![RoomId(7)]);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(follower.run(async move {
            let _ = stopped.await;
        }));
        // The projector committed, and its notice never came.
        hayabusa_store::ReadModelWriter::apply(store.as_ref(), Vec::new(), 42)
            .await
            .unwrap();
        assert!(watch.wait_for(42, Duration::from_secs(5)).await);
        assert!(woken(&client).await, "clients re-read after lost notices");
        stop.send(()).unwrap();
        running.await.unwrap();
    }
}
