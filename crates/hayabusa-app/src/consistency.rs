//! Read-your-writes: the last log position each account wrote, and waiting for the
//! read models to reach it before serving that account a read.
//!
//! Writes are acknowledged as soon as their events are durable, without waiting for
//! the projector; the next read by the same account waits (briefly) until the read
//! models include its own writes. Other accounts see them a moment later.

use crate::projector::ProjectionWatch;
use hayabusa_domain::AccountId;
use hayabusa_store::Position;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;

/// How long a read waits for the projector before answering anyway.
pub const MAX_READ_WAIT: Duration = Duration::from_secs(5);

/// How many accounts are tracked before positions already projected are forgotten.
const TRACKED_ACCOUNTS: usize = 100_000;

/// Tracks each account's last write.
#[derive(Debug)]
pub struct WriteTracker {
    last_write: Mutex<HashMap<AccountId, Position>>,
    projection: ProjectionWatch,
}

impl WriteTracker {
    /// A tracker over the projection's progress.
    pub fn new(projection: ProjectionWatch) -> Self {
        WriteTracker {
            last_write: Mutex::new(HashMap::new()),
            projection,
        }
    }

    /// Records that `account` wrote up to `position`.
    pub fn record(&self, account: AccountId, position: Position) {
        let mut last_write = self.last_write.lock();
        if last_write.len() >= TRACKED_ACCOUNTS {
            let projected = self.projection.current();
            last_write.retain(|_, p| *p > projected);
        }
        let entry = last_write.entry(account).or_insert(0);
        *entry = (*entry).max(position);
    }

    /// Waits until the read models include everything `account` wrote (and at least
    /// `position`).
    pub async fn wait_for_own_writes(&self, account: AccountId, position: Position) {
        let own = self.last_write.lock().get(&account).copied().unwrap_or(0);
        let target = own.max(position);
        if !self.projection.wait_for(target, MAX_READ_WAIT).await {
            tracing::warn!(%account, target, "read served before the projector caught up");
        }
    }

    /// The projection's progress.
    pub fn projection(&self) -> &ProjectionWatch {
        &self.projection
    }
}
