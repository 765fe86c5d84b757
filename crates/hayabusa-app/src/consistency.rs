//! Read-after-acknowledged-write for every reader: once a write has been acknowledged,
//! every read that starts afterwards sees it, whoever reads.
//!
//! Writes are acknowledged as soon as their events are durable, without waiting for
//! the projector. Before the command handler returns (so before the 2xx), the
//! [`AckTracker`] records the append's last log position under every [`Key`] the
//! events touch ([`keys_of`]): the room of a room-stream event, every account whose
//! own view changes (members added, removed or re-roled, a new room's members, task
//! assignees, both sides of a contact event, a new account), and a link code. A read
//! then waits until the projection has reached the positions acknowledged for what it
//! reads:
//!
//! - nothing at all while every acknowledged position is projected (the fast path: two
//!   atomic loads), and nothing for a room or account with nothing in flight;
//! - a room-scoped read: its room (membership changes are room-stream events, so a
//!   removed member's next read of the room is a 404);
//! - an account-wide read (`/rooms`, `/my/status`, `/my/tasks`, contacts, sync): the
//!   account, then every room the account is a member of once that is projected.
//!
//! The wait is bounded ([`DEFAULT_MAX_READ_WAIT`]); past it the read fails with
//! [`AppError::Lagging`] (503 with `Retry-After`), never with a stale answer.
//!
//! Memory is bounded: positions the projection has reached are forgotten whenever the
//! map has doubled since the last sweep.
//!
//! **Across processes.** The tracker knows only this process's writes. On a log that
//! other processes append to ([`EventReader::is_shared`]), every settle first learns
//! the log's acknowledged head from the log itself ([`AckTracker::learn_log_head`])
//! and counts it as acknowledged under every key: a read on any node waits until the
//! read models reach every write acknowledged anywhere before it began (not only
//! its keys': a node does not know what other nodes' writes touched). Writes that
//! consult no read model do not wait. The reads of the head are coalesced by a
//! [`HeadBarrier`]: one read in flight at a time, serving every request that arrived
//! before it began, so the cost is one round trip to the log's leader per round trip,
//! not per request.

use crate::error::AppError;
use crate::projection_watch::ProjectionWatch;
use hayabusa_domain::{AccountId, Event, RoomId};
use hayabusa_store::{EventReader, Position, ReadModelQueries, StoreError};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long a read waits for the projector by default before answering 503.
pub const DEFAULT_MAX_READ_WAIT: Duration = Duration::from_secs(5);

/// The tracked map is swept (projected entries dropped) no sooner than at this size.
const SWEEP_FLOOR: usize = 4_096;

/// What an acknowledged write changed, as far as readers are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// A room's state, messages, members, tasks, files, link or join requests.
    Room(RoomId),
    /// An account's own view beyond one room: its rooms, contacts, contact requests,
    /// assigned tasks, the account itself.
    Account(AccountId),
    /// The room an invitation link code leads to (a hash of the code: a collision only
    /// makes a join wait for an unrelated link).
    LinkCode(u64),
}

impl Key {
    /// The key of an invitation link code.
    pub fn link_code(code: &str) -> Key {
        Key::LinkCode(BuildHasherDefault::<DefaultHasher>::default().hash_one(code))
    }
}

/// The keys one event touches, appended to `keys`. Every variant is listed on purpose:
/// a new event must decide who has to see it.
///
/// Derived from the event rather than from its read-model changes (as the projector's
/// `wakeups_for` and `touched_by` are) because this runs on the write path of every
/// command, where rendering the changes would copy each message body once more.
pub fn keys_of(event: &Event, keys: &mut Vec<Key>) {
    match event {
        Event::OrganizationCreated { .. } => {}
        Event::AccountCreated(created) => {
            keys.push(Key::Account(created.account_id));
        }
        Event::AccountTokenRotated { account_id, .. } => {
            keys.push(Key::Account(*account_id));
        }
        Event::RoomCreated {
            room_id, members, ..
        } => {
            keys.push(Key::Room(*room_id));
            keys.extend(members.iter().map(|(account, _)| Key::Account(*account)));
        }
        Event::MembersChanged {
            room_id,
            added,
            removed,
            role_changed,
            ..
        } => {
            keys.push(Key::Room(*room_id));
            keys.extend(
                added
                    .iter()
                    .chain(role_changed)
                    .map(|(account, _)| Key::Account(*account))
                    .chain(removed.iter().map(|account| Key::Account(*account))),
            );
        }
        Event::TasksAdded { room_id, tasks, .. } => {
            keys.push(Key::Room(*room_id));
            keys.extend(tasks.iter().map(|(_, account)| Key::Account(*account)));
        }
        Event::LinkSet { room_id, code, .. } | Event::LinkRemoved { room_id, code, .. } => {
            keys.push(Key::Room(*room_id));
            keys.push(Key::link_code(code));
        }
        Event::JoinRequested {
            room_id,
            account_id,
            ..
        }
        | Event::JoinRequestResolved {
            room_id,
            account_id,
            ..
        } => {
            keys.push(Key::Room(*room_id));
            keys.push(Key::Account(*account_id));
        }
        Event::RoomUpdated { room_id, .. }
        | Event::RoomDeleted { room_id, .. }
        | Event::MessagePosted { room_id, .. }
        | Event::MessageEdited { room_id, .. }
        | Event::MessageDeleted { room_id, .. }
        | Event::TaskStatusChanged { room_id, .. }
        | Event::FileUploaded { room_id, .. }
        | Event::ReadCursorMoved { room_id, .. } => keys.push(Key::Room(*room_id)),
        // The room's `LinkSet` / `LinkRemoved` carry what readers see of a code.
        Event::LinkCodeClaimed { .. } | Event::LinkCodeReleased { .. } => {}
        // Webhook settings are read from their stream, not from the read models.
        Event::WebhookCreated { .. }
        | Event::WebhookDeleted { .. }
        | Event::WebhookDisabled { .. }
        | Event::ForwarderCreated { .. }
        | Event::ForwarderDeleted { .. }
        | Event::ForwarderDeadLettered { .. }
        | Event::ForwarderReplayRequested { .. }
        | Event::ForwarderDeadLetterDelivered { .. }
        | Event::LoginClaimed { .. }
        | Event::PasswordSet { .. }
        | Event::SessionStarted { .. }
        | Event::SessionEnded { .. }
        | Event::SessionsEnded { .. } => {}
        Event::ContactRequested { from, to, .. }
        | Event::ContactApproved { from, to, .. }
        | Event::ContactRejected { from, to, .. } => {
            keys.push(Key::Account(*from));
            keys.push(Key::Account(*to));
        }
        Event::ContactRemoved { by, other, .. } => {
            keys.push(Key::Account(*by));
            keys.push(Key::Account(*other));
        }
    }
}

#[derive(Default)]
struct Acked {
    positions: HashMap<Key, Position>,
    /// The size at which the next sweep happens.
    sweep_at: usize,
}

/// The latest acknowledged position per [`Key`], and the waits for them.
#[derive(Debug)]
pub struct AckTracker {
    acked: Mutex<Acked>,
    /// The highest position ever recorded (the fast path compares it with the
    /// projection).
    max_acked: AtomicU64,
    /// Every key counts as acknowledged up to here: the log's head when this process
    /// started (written and acknowledged by an earlier process or another one), which
    /// this process's tracking knows nothing about.
    floor: AtomicU64,
    projection: ProjectionWatch,
    max_wait: Duration,
    /// Reads of a shared log's head (None: only this process appends).
    barrier: Option<Arc<HeadBarrier>>,
}

/// Coalesced reads of a shared log's acknowledged head: [`HeadBarrier::head`]
/// answers with a head read that began after the call did, and at most one read is in
/// flight; the calls that arrive meanwhile share the next one.
pub struct HeadBarrier {
    log: Arc<dyn EventReader>,
    timeout: Duration,
    state: Mutex<BarrierState>,
}

#[derive(Default)]
struct BarrierState {
    /// A read (or the task that starts the next one) is running.
    running: bool,
    /// Callers waiting for a read that has not begun.
    waiting: Vec<tokio::sync::oneshot::Sender<Result<Position, String>>>,
}

impl std::fmt::Debug for HeadBarrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadBarrier").finish_non_exhaustive()
    }
}

impl HeadBarrier {
    /// Reads of `log`'s head, each bounded by `timeout`.
    pub fn new(log: Arc<dyn EventReader>, timeout: Duration) -> Arc<Self> {
        Arc::new(HeadBarrier {
            log,
            timeout,
            state: Mutex::new(BarrierState::default()),
        })
    }

    /// A head at least as high as every append acknowledged before this call.
    pub async fn head(self: &Arc<Self>) -> Result<Position, AppError> {
        let (sender, answer) = tokio::sync::oneshot::channel();
        let start = {
            let mut state = self.state.lock();
            state.waiting.push(sender);
            !std::mem::replace(&mut state.running, true)
        };
        if start {
            tokio::spawn(Arc::clone(self).pump());
        }
        match answer.await {
            Ok(Ok(head)) => Ok(head),
            Ok(Err(reason)) => Err(AppError::Store(StoreError::Unavailable(reason))),
            Err(_) => Err(AppError::Store(StoreError::Unavailable(
                "the event log head reader stopped".into(),
            ))),
        }
    }

    /// Reads the head for everyone waiting, again while anyone arrived meanwhile.
    async fn pump(self: Arc<Self>) {
        loop {
            let waiting = {
                let mut state = self.state.lock();
                if state.waiting.is_empty() {
                    state.running = false;
                    return;
                }
                std::mem::take(&mut state.waiting)
            };
            let started = std::time::Instant::now();
            let head = match tokio::time::timeout(self.timeout, self.log.durable_head()).await {
                Ok(Ok(head)) => Ok(head),
                Ok(Err(error)) => Err(error.to_string()),
                Err(_) => Err("timed out reading the event log head".to_owned()),
            };
            metrics::histogram!("hayabusa_log_head_read_seconds")
                .record(started.elapsed().as_secs_f64());
            for sender in waiting {
                let _ = sender.send(head.clone());
            }
        }
    }
}

impl std::fmt::Debug for Acked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acked")
            .field("tracked", &self.positions.len())
            .finish()
    }
}

impl AckTracker {
    /// A tracker over the projection's progress; reads wait at most `max_wait`.
    pub fn new(projection: ProjectionWatch, max_wait: Duration) -> Self {
        AckTracker {
            acked: Mutex::new(Acked {
                positions: HashMap::new(),
                sweep_at: SWEEP_FLOOR,
            }),
            max_acked: AtomicU64::new(0),
            floor: AtomicU64::new(0),
            projection,
            max_wait,
            barrier: None,
        }
    }

    /// Makes [`AckTracker::learn_log_head`] read `log`'s head before every settle
    /// (for a log that other processes append to).
    pub fn with_shared_log(mut self, log: Arc<dyn EventReader>) -> Self {
        self.barrier = Some(HeadBarrier::new(log, self.max_wait));
        self
    }

    /// On a shared log: reads the log's acknowledged head (coalesced with other
    /// requests) and counts it as acknowledged under every key, so that the waits
    /// that follow cover every write any process acknowledged before now. Nothing
    /// to do on a log only this process appends to.
    pub async fn learn_log_head(&self) -> Result<(), AppError> {
        if let Some(barrier) = &self.barrier {
            let head = barrier.head().await?;
            self.acknowledge_all_up_to(head);
        }
        Ok(())
    }

    /// Records that `events`, appended up to `position` (the append's last event), are
    /// about to be acknowledged. Call it before answering the client.
    pub fn record(&self, events: &[Event], position: Position) {
        let mut keys = Vec::with_capacity(events.len() + 1);
        for event in events {
            keys_of(event, &mut keys);
        }
        self.record_keys(&keys, position);
    }

    /// Records `position` under each of `keys`.
    pub fn record_keys(&self, keys: &[Key], position: Position) {
        self.max_acked.fetch_max(position, Ordering::SeqCst);
        if keys.is_empty() {
            return;
        }
        let mut acked = self.acked.lock();
        if acked.positions.len() >= acked.sweep_at {
            let projected = self.projection.current();
            acked.positions.retain(|_, p| *p > projected);
            acked.sweep_at = SWEEP_FLOOR.max(acked.positions.len() * 2);
        }
        for key in keys {
            let entry = acked.positions.entry(*key).or_insert(0);
            *entry = (*entry).max(position);
        }
    }

    /// Counts everything up to `position` as acknowledged under every key: call it
    /// with the log's head at start, before serving, so that a read after a restart
    /// (or on a process that did not take the writes) sees what was acknowledged
    /// before.
    pub fn acknowledge_all_up_to(&self, position: Position) {
        self.floor.fetch_max(position, Ordering::SeqCst);
        self.max_acked.fetch_max(position, Ordering::SeqCst);
    }

    /// The latest position acknowledged under `key` (0: none that is not projected).
    pub fn acked(&self, key: Key) -> Position {
        self.acked_max([key])
    }

    /// The latest position acknowledged under any of `keys`.
    pub fn acked_max(&self, keys: impl IntoIterator<Item = Key>) -> Position {
        let floor = self.floor.load(Ordering::SeqCst);
        let acked = self.acked.lock();
        keys.into_iter()
            .filter_map(|key| acked.positions.get(&key).copied())
            .max()
            .unwrap_or(0)
            .max(floor)
    }

    /// The highest position ever acknowledged.
    pub fn max_acked(&self) -> Position {
        self.max_acked.load(Ordering::SeqCst)
    }

    /// Whether every acknowledged write is projected (then no read needs to wait).
    pub fn all_projected(&self) -> bool {
        self.max_acked() <= self.projection.current()
    }

    /// Waits until the projection reaches `position`, at most the configured bound;
    /// past it, [`AppError::Lagging`].
    pub async fn wait_for(&self, position: Position) -> Result<(), AppError> {
        let started = std::time::Instant::now();
        let reached = self.projection.wait_for(position, self.max_wait).await;
        metrics::histogram!("hayabusa_read_wait_seconds").record(started.elapsed().as_secs_f64());
        if reached {
            return Ok(());
        }
        let projected = self.projection.current();
        tracing::warn!(
            target = position,
            projected,
            "a read waited too long for the projector"
        );
        metrics::counter!("hayabusa_read_wait_timeouts_total").increment(1);
        Err(AppError::Lagging {
            needed: position,
            projected,
        })
    }

    /// Waits until every acknowledged write under any of `keys` is projected (on a
    /// shared log: every write acknowledged anywhere, see
    /// [`AckTracker::learn_log_head`]).
    pub async fn settle(&self, keys: impl IntoIterator<Item = Key>) -> Result<(), AppError> {
        self.learn_log_head().await?;
        self.settle_keys(keys).await
    }

    async fn settle_keys(&self, keys: impl IntoIterator<Item = Key>) -> Result<(), AppError> {
        if self.all_projected() {
            return Ok(());
        }
        let target = self.acked_max(keys);
        if target <= self.projection.current() {
            return Ok(());
        }
        self.wait_for(target).await
    }

    /// Waits until everything acknowledged for one room is projected: its state,
    /// messages and members (so a removed member's next read of it is refused).
    pub async fn settle_room(&self, room: RoomId) -> Result<(), AppError> {
        self.settle([Key::Room(room)]).await
    }

    /// Waits until everything acknowledged that an account-wide read of `account` shows
    /// is projected: the account's own view (its rooms, contacts, requests, assigned
    /// tasks), then every room it is a member of.
    pub async fn settle_account(
        &self,
        read: &dyn ReadModelQueries,
        account: AccountId,
    ) -> Result<(), AppError> {
        self.learn_log_head().await?;
        if self.all_projected() {
            return Ok(());
        }
        self.settle_keys([Key::Account(account)]).await?;
        if self.all_projected() {
            return Ok(());
        }
        // Membership changes of `account` are projected now: this is its room list.
        let rooms = read.room_ids_of(account).await?;
        self.settle_keys(rooms.into_iter().map(Key::Room)).await
    }

    /// The projection's progress.
    pub fn projection(&self) -> &ProjectionWatch {
        &self.projection
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hayabusa_domain::{MessageId, Role};
    use tokio::sync::watch;

    fn tracker(max_wait: Duration) -> (AckTracker, watch::Sender<Position>) {
        let (sender, receiver) = watch::channel(0);
        (
            AckTracker::new(ProjectionWatch::from_receiver(receiver), max_wait),
            sender,
        )
    }

    #[test]
    fn a_member_change_touches_the_room_and_every_account_it_changes() {
        let mut keys = Vec::new();
        keys_of(
            &Event::MembersChanged {
                room_id: RoomId(1),
                added: vec![(AccountId(2), Role::Member)],
                removed: vec![AccountId(3)],
                role_changed: vec![(AccountId(4), Role::Admin)],
                by: AccountId(4),
                at: 0,
            },
            &mut keys,
        );
        assert_eq!(
            keys,
            vec![
                Key::Room(RoomId(1)),
                Key::Account(AccountId(2)),
                Key::Account(AccountId(4)),
                Key::Account(AccountId(3)),
            ]
        );
    }

    #[test]
    fn a_message_touches_its_room_only_whoever_is_mentioned() {
        let mut keys = Vec::new();
        keys_of(
            &Event::MessagePosted {
                room_id: RoomId(1),
                message_id: MessageId(9),
                seq: 1,
                account_id: AccountId(2),
                body: "[To:3]".into(),
                mentions: vec![AccountId(3)],
                to_all: false,
                self_unread: false,
                at: 0,
            },
            &mut keys,
        );
        assert_eq!(keys, vec![Key::Room(RoomId(1))]);
    }

    #[tokio::test]
    async fn after_a_start_every_read_waits_for_what_the_log_held() {
        let (tracker, sender) = tracker(Duration::from_secs(3600));
        tracker.acknowledge_all_up_to(7);
        let waiting = tracker.settle_room(RoomId(99));
        tokio::pin!(waiting);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut waiting)
                .await
                .is_err(),
            "a room this process never wrote to still waits for the log's head at start"
        );
        sender.send_replace(7);
        waiting.await.unwrap();
        // Once projected, nothing waits.
        tracker.settle_room(RoomId(98)).await.unwrap();
    }

    #[tokio::test]
    async fn reads_of_keys_with_nothing_in_flight_do_not_wait() {
        let (tracker, _sender) = tracker(Duration::from_secs(3600));
        tracker.record_keys(&[Key::Room(RoomId(1))], 5);
        assert!(!tracker.all_projected());
        // Another room: no wait at all, even though the projector is stuck.
        tracker.settle_room(RoomId(2)).await.unwrap();
    }

    #[tokio::test]
    async fn a_read_waits_for_its_rooms_acknowledged_position() {
        let (tracker, sender) = tracker(Duration::from_secs(3600));
        tracker.record_keys(&[Key::Room(RoomId(1))], 5);
        let waiting = tracker.settle_room(RoomId(1));
        tokio::pin!(waiting);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut waiting)
                .await
                .is_err()
        );
        sender.send_replace(4);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut waiting)
                .await
                .is_err()
        );
        sender.send_replace(5);
        waiting.await.unwrap();
    }

    #[tokio::test]
    async fn a_stuck_projector_is_an_error_not_a_stale_answer() {
        let (tracker, _sender) = tracker(Duration::from_millis(10));
        tracker.record_keys(&[Key::Account(AccountId(1))], 3);
        let error = tracker
            .settle([Key::Account(AccountId(1))])
            .await
            .unwrap_err();
        assert!(matches!(
            error,
            AppError::Lagging {
                needed: 3,
                projected: 0
            }
        ));
    }

    #[test]
    fn projected_positions_are_forgotten_when_the_map_grows() {
        let (tracker, sender) = tracker(Duration::from_secs(1));
        for room in 0..SWEEP_FLOOR as u64 {
            tracker.record_keys(&[Key::Room(RoomId(room))], room + 1);
        }
        sender.send_replace(SWEEP_FLOOR as u64);
        tracker.record_keys(&[Key::Room(RoomId(u64::MAX))], SWEEP_FLOOR as u64 + 1);
        assert_eq!(tracker.acked.lock().positions.len(), 1);
        assert_eq!(tracker.acked(Key::Room(RoomId(0))), 0);
        assert_eq!(tracker.max_acked(), SWEEP_FLOOR as u64 + 1);
    }
}
