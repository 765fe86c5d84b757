//! The wake-up hub: the projector announces "room R / account A reached position P";
//! the hub wakes only the sync waiters concerned. Wake-ups carry no data — a woken
//! waiter re-reads its ops from the read store — so a lost or duplicate wake-up can
//! delay an op but never lose or repeat one.
//!
//! In a cluster the projector runs elsewhere: each API node's commit-feed follower
//! ([`crate::follower`]) publishes the wake-ups of every batch to its own hub.

use hayabusa_domain::{AccountId, RoomId};
use hayabusa_store::{Change, Position};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::Notify;

/// What a projected batch reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Wakeup {
    /// A room's feed has ops up to this position.
    Room(RoomId, Position),
    /// An account has targeted ops (or a new membership) up to this position.
    Account(AccountId, Position),
}

/// The wake-ups a batch of changes calls for (one per room and account at most).
pub fn wakeups_for(changes: &[Change], position: Position) -> Vec<Wakeup> {
    let mut rooms = HashSet::new();
    let mut accounts = HashSet::new();
    for change in changes {
        match change {
            Change::RecordOps(ops) => {
                for op in ops {
                    match (op.target, op.room_id) {
                        (Some(account), _) => accounts.insert(account),
                        (None, Some(room)) => rooms.insert(room),
                        (None, None) => false,
                    };
                }
            }
            Change::OpenMembership { account_id, .. }
            | Change::CloseMembership { account_id, .. } => {
                accounts.insert(*account_id);
            }
            _ => {}
        }
    }
    rooms
        .into_iter()
        .map(|room| Wakeup::Room(room, position))
        .chain(
            accounts
                .into_iter()
                .map(|account| Wakeup::Account(account, position)),
        )
        .collect()
}

/// The rooms and the accounts of `wakeups`.
pub fn split_wakeups(wakeups: &[Wakeup]) -> (Vec<RoomId>, Vec<AccountId>) {
    let mut rooms = Vec::new();
    let mut accounts = Vec::new();
    for wakeup in wakeups {
        match wakeup {
            Wakeup::Room(room, _) => rooms.push(*room),
            Wakeup::Account(account, _) => accounts.push(*account),
        }
    }
    (rooms, accounts)
}

/// Publishes and delivers wake-ups.
pub trait WakeupHub: Send + Sync {
    /// Wakes the waiters concerned by any of `wakeups`.
    fn publish(&self, wakeups: &[Wakeup]);
    /// Wakes every waiter (after wake-ups may have been lost: each re-reads its ops).
    fn wake_all(&self);
    /// Registers a waiter for `account` and its `rooms`. Wake-ups published after this
    /// call are never missed by the returned subscription.
    fn subscribe(&self, account: AccountId, rooms: Vec<RoomId>) -> Subscription;
}

/// A registered waiter. Dropping it unregisters it.
pub struct Subscription {
    notify: Arc<Notify>,
    registration: Box<dyn Registration>,
}

/// The hub-specific part of a subscription.
pub trait Registration: Send + Sync {
    /// Replaces the rooms the waiter listens to.
    fn set_rooms(&self, rooms: Vec<RoomId>);
}

impl Subscription {
    /// A subscription from its parts (for hub implementations).
    pub fn new(notify: Arc<Notify>, registration: Box<dyn Registration>) -> Self {
        Subscription {
            notify,
            registration,
        }
    }

    /// Waits for the next wake-up (returns at once if one came since the last wait).
    pub async fn woken(&self) {
        self.notify.notified().await;
    }

    /// Replaces the rooms listened to (after joining or leaving a room).
    pub fn set_rooms(&self, rooms: Vec<RoomId>) {
        self.registration.set_rooms(rooms);
    }
}

type WaiterId = u64;

#[derive(Default)]
struct Registry {
    next_id: WaiterId,
    waiters: HashMap<WaiterId, (AccountId, Vec<RoomId>, Arc<Notify>)>,
    by_room: HashMap<RoomId, HashSet<WaiterId>>,
    by_account: HashMap<AccountId, HashSet<WaiterId>>,
}

impl Registry {
    fn unlink_rooms(&mut self, id: WaiterId, rooms: &[RoomId]) {
        for room in rooms {
            if let Some(set) = self.by_room.get_mut(room) {
                set.remove(&id);
                if set.is_empty() {
                    self.by_room.remove(room);
                }
            }
        }
    }
}

/// The in-process hub: waiters indexed by room and by account.
#[derive(Default, Clone)]
pub struct InProcessHub {
    registry: Arc<Mutex<Registry>>,
}

impl InProcessHub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of registered waiters (for metrics and tests).
    pub fn waiters(&self) -> usize {
        self.registry.lock().waiters.len()
    }
}

impl WakeupHub for InProcessHub {
    fn publish(&self, wakeups: &[Wakeup]) {
        let registry = self.registry.lock();
        let mut woken = HashSet::new();
        for wakeup in wakeups {
            let ids = match wakeup {
                Wakeup::Room(room, _) => registry.by_room.get(room),
                Wakeup::Account(account, _) => registry.by_account.get(account),
            };
            for id in ids.into_iter().flatten() {
                if woken.insert(*id)
                    && let Some((_, _, notify)) = registry.waiters.get(id)
                {
                    notify.notify_one();
                }
            }
        }
    }

    fn wake_all(&self) {
        for (_, _, notify) in self.registry.lock().waiters.values() {
            notify.notify_one();
        }
    }

    fn subscribe(&self, account: AccountId, rooms: Vec<RoomId>) -> Subscription {
        let notify = Arc::new(Notify::new());
        let mut registry = self.registry.lock();
        let id = registry.next_id;
        registry.next_id += 1;
        for room in &rooms {
            registry.by_room.entry(*room).or_default().insert(id);
        }
        registry.by_account.entry(account).or_default().insert(id);
        registry
            .waiters
            .insert(id, (account, rooms, notify.clone()));
        Subscription::new(
            notify,
            Box::new(InProcessRegistration {
                id,
                registry: self.registry.clone(),
            }),
        )
    }
}

struct InProcessRegistration {
    id: WaiterId,
    registry: Arc<Mutex<Registry>>,
}

impl Registration for InProcessRegistration {
    fn set_rooms(&self, rooms: Vec<RoomId>) {
        let mut registry = self.registry.lock();
        let Some(old) = registry
            .waiters
            .get(&self.id)
            .map(|(_, rooms, _)| rooms.clone())
        else {
            return;
        };
        registry.unlink_rooms(self.id, &old);
        for room in &rooms {
            registry.by_room.entry(*room).or_default().insert(self.id);
        }
        if let Some(waiter) = registry.waiters.get_mut(&self.id) {
            waiter.1 = rooms;
        }
    }
}

impl Drop for InProcessRegistration {
    fn drop(&mut self) {
        let mut registry = self.registry.lock();
        if let Some((account, rooms, _)) = registry.waiters.remove(&self.id) {
            registry.unlink_rooms(self.id, &rooms);
            if let Some(set) = registry.by_account.get_mut(&account) {
                set.remove(&self.id);
                if set.is_empty() {
                    registry.by_account.remove(&account);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn is_woken(subscription: &Subscription) -> bool {
        tokio::time::timeout(Duration::from_millis(20), subscription.woken())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn only_the_waiters_concerned_are_woken_and_a_wakeup_before_waiting_is_kept() {
        let hub = InProcessHub::new();
        let alice = hub.subscribe(AccountId(1), vec![RoomId(10)]);
        let bob = hub.subscribe(AccountId(2), vec![RoomId(20)]);
        hub.publish(&[Wakeup::Room(RoomId(10), 5)]);
        assert!(
            is_woken(&alice).await,
            "published before waiting, still delivered"
        );
        assert!(!is_woken(&bob).await);
        hub.publish(&[Wakeup::Account(AccountId(2), 6)]);
        assert!(is_woken(&bob).await);
        bob.set_rooms(vec![RoomId(10)]);
        hub.publish(&[Wakeup::Room(RoomId(20), 7)]);
        assert!(!is_woken(&bob).await, "no longer listening to room 20");
        hub.publish(&[Wakeup::Room(RoomId(10), 8)]);
        assert!(is_woken(&bob).await);
        drop(alice);
        drop(bob);
        assert_eq!(hub.waiters(), 0);
        assert!(hub.registry.lock().by_room.is_empty());
    }
}
