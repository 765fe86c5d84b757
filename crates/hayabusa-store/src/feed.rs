//! The commit feed: what each projected batch did, told to every process that serves
//! from the read store but did not project it (API nodes of a cluster). Each of them
//! follows the feed to keep its caches true, to learn how far the read models have
//! got without asking the store, and to wake its sync clients.
//!
//! Notices carry no read-model data and may be lost (the feed is fire-and-forget, as
//! core NATS is): a follower that sees a gap between notices, or a store checkpoint
//! ahead of the notices it heard, drops every cache and wakes every client, so a lost
//! notice only costs time.

use crate::{Position, StoreError};
use async_trait::async_trait;
use futures::stream::BoxStream;
use hayabusa_domain::{AccountId, RoomId};
use serde::{Deserialize, Serialize};

/// One committed projection batch: the read models moved from `from` to `to`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// The checkpoint before the batch.
    pub from: Position,
    /// The checkpoint after it.
    pub to: Position,
    /// Rooms whose messages, members or settings changed (cached pages).
    pub rooms: Vec<RoomId>,
    /// Something every cached page shows changed (an account's name): drop them all.
    pub everything: bool,
    /// Accounts whose row was put again (authentication cache).
    pub accounts: Vec<AccountId>,
    /// Accounts whose token was rotated or revoked.
    pub tokens: Vec<AccountId>,
    /// Rooms with new sync ops up to `to`.
    pub wake_rooms: Vec<RoomId>,
    /// Accounts with new targeted ops or memberships up to `to`.
    pub wake_accounts: Vec<AccountId>,
    /// Too much to list: every cache is dropped and every sync client woken.
    pub wake_all: bool,
}

impl Committed {
    /// The same move with nothing listed: followers drop everything and wake everyone
    /// (for a notice too large to send).
    pub fn coarse(&self) -> Committed {
        Committed {
            from: self.from,
            to: self.to,
            everything: true,
            wake_all: true,
            ..Committed::default()
        }
    }
}

/// Publishing and following commit notices.
#[async_trait]
pub trait CommitFeed: Send + Sync {
    /// Tells every follower (best effort: a lost notice delays, see the module).
    async fn publish(&self, notice: &Committed) -> Result<(), StoreError>;
    /// Follows notices published from now on.
    async fn subscribe(&self) -> Result<BoxStream<'static, Committed>, StoreError>;
}

/// An in-process feed: a broadcast channel (for tests, and for a process's own
/// notices beside a network feed).
#[derive(Clone, Debug)]
pub struct MemoryCommitFeed {
    sender: tokio::sync::broadcast::Sender<Committed>,
}

impl Default for MemoryCommitFeed {
    fn default() -> Self {
        MemoryCommitFeed {
            sender: tokio::sync::broadcast::channel(1_024).0,
        }
    }
}

impl MemoryCommitFeed {
    /// A feed with no followers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many followers are subscribed.
    pub fn followers(&self) -> usize {
        self.sender.receiver_count()
    }
}

#[async_trait]
impl CommitFeed for MemoryCommitFeed {
    async fn publish(&self, notice: &Committed) -> Result<(), StoreError> {
        // No follower is fine.
        let _ = self.sender.send(notice.clone());
        Ok(())
    }

    async fn subscribe(&self) -> Result<BoxStream<'static, Committed>, StoreError> {
        let receiver = self.sender.subscribe();
        // A lagging follower loses notices, as on a real feed.
        Ok(Box::pin(futures::stream::unfold(
            receiver,
            |mut receiver| async move {
                loop {
                    match receiver.recv().await {
                        Ok(notice) => return Some((notice, receiver)),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    }
                }
            },
        )))
    }
}
