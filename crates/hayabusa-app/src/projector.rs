//! The projector (Falcon's read-model-updater): consumes the event log in order from
//! the read store's checkpoint, turns events into read-model [`Change`]s and applies
//! each batch together with its checkpoint in one transaction.
//!
//! After every batch it publishes the position it reached on a watch channel, which
//! is what reads wait on to see every acknowledged write ([`crate::consistency`]).
//!
//! In a cluster the projector holds the projector lease ([`crate::leased`]): its
//! batches are fenced by the lease ([`ReadModelWriter::apply_fenced`]), and instead
//! of touching this process's caches it publishes a [`Committed`] notice after each
//! batch, which every API node's [`crate::follower::Follower`] (this node's too)
//! turns into cache invalidations, its projection position and sync wake-ups.

use crate::auth_cache::AuthCache;
use crate::error::AppError;
use crate::hub::{WakeupHub, wakeups_for};
use crate::page_cache::{PageCache, Touched, touched_by};
use crate::projection_watch::ProjectionWatch;
use hayabusa_domain::{Event, decode_event};
use hayabusa_store::{
    AccountRow, Change, CommitFeed, Committed, ContactRequestRow, EventReader, FileRow, LinkRow,
    MessageRow, Position, ReadModelWriter, RecordedEvent, RoomRow, StoreError, TaskRow,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// How many events one projection batch of the live projector takes from the log
/// (larger batches made readers wait longer for each commit: p99 spikes).
pub const BATCH_SIZE: usize = 2_000;

/// Under load the live projector starts a batch at most this often, so that the
/// events arriving meanwhile go into one transaction instead of a few each (a commit's
/// fixed cost dominated: 4 events per batch at 8,000 posts/s, about 20 with this).
pub const MIN_BATCH_INTERVAL: Duration = Duration::from_millis(1);

/// A batch of at least this many events means load: only after one does the live
/// projector wait out [`MIN_BATCH_INTERVAL`]. After a smaller batch it goes on at once,
/// so that a moderate rate of posts is delivered without the wait (with it, the
/// post → WebSocket p50 at 1,000 posts/s went from 0.7 to 2.5 ms: tokio's timer
/// rounds up to the next millisecond).
pub const GATHER_AFTER_EVENTS: usize = 4;

/// How many events one batch of [`Projector::catch_up`] (a rebuild, nobody waiting)
/// takes: fewer, larger transactions amortise each commit's fixed cost.
pub const CATCH_UP_BATCH_SIZE: usize = 10_000;

/// The read-model changes one event at `position` causes: the read models proper plus
/// the sync feed ([`crate::ops`]). This is the whole projection logic; the adapters
/// only apply changes.
pub fn changes_for(position: Position, event: &Event) -> Vec<Change> {
    let mut changes = model_changes_for(event);
    changes.extend(crate::ops::sync_changes_for(position, event));
    changes
}

fn model_changes_for(event: &Event) -> Vec<Change> {
    match event {
        Event::OrganizationCreated { .. } => vec![],
        Event::AccountCreated(created) => vec![Change::PutAccount(AccountRow {
            account_id: created.account_id,
            my_room_id: created.my_room_id,
            organization_id: created.organization_id,
            organization_name: created.organization_name.clone(),
            name: created.name.clone(),
            mail: created.mail.clone(),
            department: created.department.clone(),
            title: created.title.clone(),
            admin: created.admin,
            token_hash: created.token_hash.clone(),
            created_at: created.at,
        })],
        Event::AccountTokenRotated {
            account_id,
            token_hash,
            ..
        } => vec![Change::SetTokenHash {
            account_id: *account_id,
            token_hash: token_hash.clone(),
        }],
        Event::RoomCreated {
            room_id,
            room_type,
            name,
            description,
            icon_preset,
            members,
            at,
            ..
        } => {
            let mut changes = vec![Change::PutRoom(RoomRow {
                room_id: *room_id,
                room_type: *room_type,
                name: name.clone(),
                description: description.clone(),
                icon_preset: icon_preset.clone(),
                last_seq: 0,
                message_num: 0,
                last_update_time: *at,
            })];
            changes.extend(members.iter().map(|(account_id, role)| Change::PutMember {
                room_id: *room_id,
                account_id: *account_id,
                role: *role,
            }));
            changes
        }
        Event::RoomUpdated {
            room_id,
            name,
            description,
            icon_preset,
            at,
            ..
        } => vec![Change::UpdateRoom {
            room_id: *room_id,
            name: name.clone(),
            description: description.clone(),
            icon_preset: icon_preset.clone(),
            at: *at,
        }],
        Event::MembersChanged {
            room_id,
            added,
            removed,
            role_changed,
            ..
        } => added
            .iter()
            .chain(role_changed)
            .map(|(account_id, role)| Change::PutMember {
                room_id: *room_id,
                account_id: *account_id,
                role: *role,
            })
            .chain(removed.iter().map(|account_id| Change::RemoveMember {
                room_id: *room_id,
                account_id: *account_id,
            }))
            .collect(),
        Event::RoomDeleted { room_id, .. } => vec![Change::DeleteRoom { room_id: *room_id }],
        Event::MessagePosted {
            room_id,
            message_id,
            seq,
            account_id,
            body,
            mentions,
            to_all,
            self_unread,
            at,
        } => {
            let mut changes = vec![Change::InsertMessage(MessageRow {
                room_id: *room_id,
                message_id: *message_id,
                seq: *seq,
                account_id: *account_id,
                body: body.clone(),
                send_time: *at,
                update_time: 0,
                mentions: mentions.clone(),
                to_all: *to_all,
            })];
            if !self_unread {
                // Posting means the author has read the room up to their own message.
                changes.push(Change::SetReadCursor {
                    account_id: *account_id,
                    room_id: *room_id,
                    read_seq: *seq,
                });
            }
            changes
        }
        Event::MessageEdited {
            room_id,
            message_id,
            body,
            mentions,
            to_all,
            at,
        } => vec![Change::EditMessage {
            room_id: *room_id,
            message_id: *message_id,
            body: body.clone(),
            mentions: mentions.clone(),
            to_all: *to_all,
            at: *at,
        }],
        Event::MessageDeleted {
            room_id,
            message_id,
            at,
        } => vec![Change::DeleteMessage {
            room_id: *room_id,
            message_id: *message_id,
            at: *at,
        }],
        Event::ReadCursorMoved {
            account_id,
            room_id,
            read_seq,
            ..
        } => vec![Change::SetReadCursor {
            account_id: *account_id,
            room_id: *room_id,
            read_seq: *read_seq,
        }],
        Event::TasksAdded {
            room_id,
            message_id,
            assigned_by,
            body,
            tasks,
            limit_time,
            limit_type,
            ..
        } => tasks
            .iter()
            .map(|(task_id, account_id)| {
                Change::PutTask(TaskRow {
                    task_id: *task_id,
                    room_id: *room_id,
                    account_id: *account_id,
                    assigned_by: *assigned_by,
                    message_id: *message_id,
                    body: body.clone(),
                    limit_time: *limit_time,
                    limit_type: limit_type.clone(),
                    status: "open".into(),
                })
            })
            .collect(),
        Event::TaskStatusChanged {
            task_id, status, ..
        } => vec![Change::SetTaskStatus {
            task_id: *task_id,
            status: status.clone(),
        }],
        Event::FileUploaded {
            room_id,
            file_id,
            message_id,
            account_id,
            filename,
            filesize,
            blob_key,
            at,
        } => vec![Change::PutFile(FileRow {
            file_id: *file_id,
            room_id: *room_id,
            account_id: *account_id,
            message_id: *message_id,
            filename: filename.clone(),
            filesize: *filesize,
            upload_time: *at,
            blob_key: blob_key.clone(),
        })],
        Event::LinkSet {
            room_id,
            code,
            need_acceptance,
            description,
            ..
        } => vec![Change::SetLink(LinkRow {
            room_id: *room_id,
            code: code.clone(),
            need_acceptance: *need_acceptance,
            description: description.clone(),
        })],
        Event::LinkRemoved { room_id, .. } => vec![Change::RemoveLink { room_id: *room_id }],
        Event::JoinRequested {
            room_id,
            account_id,
            at,
        } => vec![Change::PutJoinRequest {
            room_id: *room_id,
            account_id: *account_id,
            at: *at,
        }],
        Event::JoinRequestResolved {
            room_id,
            account_id,
            ..
        } => vec![Change::RemoveJoinRequest {
            room_id: *room_id,
            account_id: *account_id,
        }],
        Event::LinkCodeClaimed { .. } | Event::LinkCodeReleased { .. } => vec![],
        // Webhook settings live in their stream; deliveries read the sync ops.
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
        | Event::SessionsEnded { .. } => vec![],
        Event::ContactRequested {
            request_id,
            from,
            to,
            message,
            at,
        } => vec![Change::PutContactRequest(ContactRequestRow {
            request_id: *request_id,
            from: *from,
            to: *to,
            message: message.clone(),
            at: *at,
        })],
        Event::ContactApproved {
            request_id,
            from,
            to,
            direct_room_id,
            ..
        } => vec![
            Change::RemoveContactRequest {
                request_id: *request_id,
            },
            Change::PutContact {
                account_id: *from,
                contact_id: *to,
                room_id: *direct_room_id,
            },
            Change::PutContact {
                account_id: *to,
                contact_id: *from,
                room_id: *direct_room_id,
            },
        ],
        Event::ContactRejected { request_id, .. } => vec![Change::RemoveContactRequest {
            request_id: *request_id,
        }],
        Event::ContactRemoved { by, other, .. } => vec![
            Change::RemoveContact {
                account_id: *by,
                contact_id: *other,
            },
            Change::RemoveContact {
                account_id: *other,
                contact_id: *by,
            },
        ],
    }
}

/// Decodes a recorded event, as a store error if it cannot be read.
pub fn decode(recorded: &RecordedEvent) -> Result<Event, StoreError> {
    decode_event(
        &recorded.event_type,
        recorded.schema_version,
        &recorded.data,
    )
    .map_err(|e| StoreError::Corrupt(format!("at position {}: {e}", recorded.position)))
}

/// A pause the live projector takes before each batch, adjustable while it runs: a
/// test-only way to make the projection lag behind acknowledged writes (zero, no
/// pause, unless a test sets it).
#[doc(hidden)]
#[derive(Clone, Debug, Default)]
pub struct ProjectorDelay(Arc<AtomicU64>);

impl ProjectorDelay {
    /// A delay of `delay`.
    pub fn new(delay: Duration) -> Self {
        let this = ProjectorDelay::default();
        this.set(delay);
        this
    }

    /// Changes the delay (from the next batch on).
    pub fn set(&self, delay: Duration) {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.0.store(micros, Ordering::Relaxed);
    }

    /// The delay now.
    pub fn get(&self) -> Duration {
        Duration::from_micros(self.0.load(Ordering::Relaxed))
    }
}

/// A decoded batch, ready to apply.
struct Batch {
    last: Position,
    /// How many events it holds.
    events: usize,
    changes: Vec<Change>,
    wakeups: Vec<crate::hub::Wakeup>,
    touched: Touched,
}

/// Reads the events after `from` and turns them into changes (and wake-ups).
async fn read_batch(
    log: &dyn EventReader,
    from: Position,
    live: bool,
    size: usize,
) -> Result<Option<Batch>, AppError> {
    let events = log.read_all(from, size).await?;
    let Some(last) = events.last().map(|e| e.position) else {
        return Ok(None);
    };
    let mut changes = Vec::with_capacity(events.len() * 3);
    for recorded in &events {
        changes.extend(changes_for(recorded.position, &decode(recorded)?));
    }
    let (wakeups, touched) = if live {
        (wakeups_for(&changes, last), touched_by(&changes))
    } else {
        (Vec::new(), Touched::default())
    };
    Ok(Some(Batch {
        last,
        events: events.len(),
        changes,
        wakeups,
        touched,
    }))
}

/// The projector: one per read store.
pub struct Projector {
    log: Arc<dyn EventReader>,
    store: Arc<dyn ReadModelWriter>,
    sender: watch::Sender<Position>,
    hub: Option<Arc<dyn WakeupHub>>,
    pages: Option<Arc<PageCache>>,
    auth: Option<Arc<AuthCache>>,
    min_batch_interval: Duration,
    delay: ProjectorDelay,
    /// Where commit notices go (a cluster), instead of this process's caches.
    feed: Option<Arc<dyn CommitFeed>>,
    /// The projector lease's fence this projector holds (a cluster).
    fence: Option<u64>,
}

/// Why [`Projector::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Shutdown was asked for.
    Shutdown,
    /// The read store refused a batch: another projector holds the lease now.
    Fenced,
    /// The log's head watch closed (the log is gone).
    LogClosed,
}

impl Projector {
    /// A projector that starts from the store's checkpoint.
    pub async fn new(
        log: Arc<dyn EventReader>,
        store: Arc<dyn ReadModelWriter>,
    ) -> Result<Self, AppError> {
        let checkpoint = store.checkpoint().await?;
        let (sender, _) = watch::channel(checkpoint);
        Ok(Projector {
            log,
            store,
            sender,
            hub: None,
            pages: None,
            auth: None,
            min_batch_interval: MIN_BATCH_INTERVAL,
            delay: ProjectorDelay::default(),
            feed: None,
            fence: None,
        })
    }

    /// Publishes a [`Committed`] notice to `feed` after every batch (best effort).
    pub fn with_feed(mut self, feed: Arc<dyn CommitFeed>) -> Self {
        self.feed = Some(feed);
        self
    }

    /// Applies every batch fenced by the projector lease's `fence`: once another
    /// projector acquired the lease, the next batch is refused and [`Projector::run`]
    /// returns [`Stopped::Fenced`].
    pub fn with_fence(mut self, fence: u64) -> Self {
        self.fence = Some(fence);
        self
    }

    /// Publishes wake-ups to `hub` after every batch.
    pub fn with_hub(mut self, hub: Arc<dyn WakeupHub>) -> Self {
        self.hub = Some(hub);
        self
    }

    /// Invalidates `pages` after every batch (before the position is announced).
    pub fn with_page_cache(mut self, pages: Arc<PageCache>) -> Self {
        self.pages = Some(pages);
        self
    }

    /// Invalidates the accounts whose token changed in `cache` after every batch
    /// (before the position is announced).
    pub fn with_auth_cache(mut self, cache: Arc<AuthCache>) -> Self {
        self.auth = Some(cache);
        self
    }

    /// Under load, starts live batches at most once per `interval` (default
    /// [`MIN_BATCH_INTERVAL`]).
    pub fn with_min_batch_interval(mut self, interval: Duration) -> Self {
        self.min_batch_interval = interval;
        self
    }

    /// Pauses for `delay` before each live batch (tests only).
    #[doc(hidden)]
    pub fn with_delay(mut self, delay: ProjectorDelay) -> Self {
        self.delay = delay;
        self
    }

    /// Whether batches are read for live consumers (wake-ups, cached pages).
    fn live(&self) -> bool {
        self.hub.is_some() || self.pages.is_some() || self.feed.is_some()
    }

    /// Watches the projected position.
    pub fn watch(&self) -> ProjectionWatch {
        ProjectionWatch::from_receiver(self.sender.subscribe())
    }

    /// Projects everything in the log now, then returns the position reached. Reading
    /// and decoding the next batch overlaps with applying the current one.
    pub async fn catch_up(&self) -> Result<Position, AppError> {
        let mut next = self.prefetch(*self.sender.borrow());
        loop {
            let Some(batch) = next
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))??
            else {
                return Ok(*self.sender.borrow());
            };
            next = self.prefetch(batch.last);
            self.apply(batch).await?;
        }
    }

    /// Reads and decodes the batch after `from` in a task of its own.
    fn prefetch(&self, from: Position) -> tokio::task::JoinHandle<Result<Option<Batch>, AppError>> {
        let log = self.log.clone();
        let live = self.live();
        tokio::spawn(async move { read_batch(log.as_ref(), from, live, CATCH_UP_BATCH_SIZE).await })
    }

    async fn apply(&self, batch: Batch) -> Result<(), AppError> {
        // Accounts whose row or token the batch changes (for the authentication
        // caches, this process's or the followers').
        let (accounts, tokens) = match (&self.auth, &self.feed) {
            (None, None) => Default::default(),
            _ => crate::auth_cache::accounts_changed(&batch.changes),
        };
        let from = *self.sender.borrow();
        let started = std::time::Instant::now();
        match self.fence {
            Some(fence) => {
                self.store
                    .apply_fenced(batch.changes, batch.last, fence)
                    .await?
            }
            None => self.store.apply(batch.changes, batch.last).await?,
        }
        metrics::histogram!("hayabusa_projector_apply_seconds")
            .record(started.elapsed().as_secs_f64());
        if let Some(feed) = &self.feed {
            let (wake_rooms, wake_accounts) = crate::hub::split_wakeups(&batch.wakeups);
            let notice = Committed {
                from,
                to: batch.last,
                rooms: batch.touched.rooms.clone(),
                everything: batch.touched.everything,
                accounts: accounts.clone(),
                tokens: tokens.clone(),
                wake_rooms,
                wake_accounts,
                wake_all: false,
            };
            // A lost notice delays followers until they see the gap (see the feed).
            if let Err(error) = feed.publish(&notice).await {
                tracing::warn!(%error, "could not publish a commit notice");
            }
        }
        if let Some(auth) = &self.auth {
            auth.invalidate_accounts(&accounts, &tokens, batch.last);
        }
        metrics::counter!("hayabusa_projector_batches_total").increment(1);
        metrics::counter!("hayabusa_projector_events_total").increment(batch.events as u64);
        if let Some(pages) = &self.pages {
            pages.invalidate(&batch.touched, batch.last);
        }
        self.sender.send_replace(batch.last);
        if let Some(hub) = &self.hub {
            hub.publish(&batch.wakeups);
        }
        Ok(())
    }

    /// One batch: returns how many events it projected, or None if there was nothing new.
    async fn step(&self) -> Result<Option<usize>, AppError> {
        let from = *self.sender.borrow();
        let Some(batch) = read_batch(self.log.as_ref(), from, self.live(), BATCH_SIZE).await?
        else {
            return Ok(None);
        };
        let events = batch.events;
        self.apply(batch).await?;
        Ok(Some(events))
    }

    /// Runs until `shutdown` resolves: projects new events as the log's head moves.
    /// Store errors are logged and retried with backoff; nothing is skipped.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> Stopped {
        let mut head = self.log.subscribe();
        tokio::pin!(shutdown);
        let mut backoff = Duration::from_millis(10);
        loop {
            let delay = self.delay.get();
            if !delay.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = &mut shutdown => return Stopped::Shutdown,
                }
            }
            let started = tokio::time::Instant::now();
            match self.step().await {
                Ok(Some(events)) => {
                    backoff = Duration::from_millis(10);
                    if events >= GATHER_AFTER_EVENTS {
                        // Busy: let the next batch gather what arrives meanwhile.
                        tokio::select! {
                            _ = tokio::time::sleep_until(started + self.min_batch_interval) => {}
                            _ = &mut shutdown => return Stopped::Shutdown,
                        }
                    }
                    continue;
                }
                Ok(None) => {}
                Err(AppError::Store(StoreError::Fenced(reason))) => {
                    tracing::warn!(%reason, "projector fenced off: another projector took over");
                    return Stopped::Fenced;
                }
                Err(error) => {
                    tracing::error!(%error, "projection failed, retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = &mut shutdown => return Stopped::Shutdown,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
            let projected = *self.sender.borrow();
            tokio::select! {
                changed = head.wait_for(|head| *head > projected) => {
                    if changed.is_err() {
                        return Stopped::LogClosed;
                    }
                }
                _ = &mut shutdown => return Stopped::Shutdown,
            }
        }
    }
}

/// Drops every read model and replays the whole log into it. Returns the position
/// reached.
pub async fn rebuild(
    log: Arc<dyn EventReader>,
    store: Arc<dyn ReadModelWriter>,
) -> Result<Position, AppError> {
    store.reset().await?;
    Projector::new(log, store).await?.catch_up().await
}

/// [`rebuild`] by the holder of the projector lease with `fence`: every batch is
/// fenced, so it fails (changing nothing more) if another projector took over.
pub async fn rebuild_fenced(
    log: Arc<dyn EventReader>,
    store: Arc<dyn ReadModelWriter>,
    fence: u64,
) -> Result<Position, AppError> {
    store.reset().await?;
    Projector::new(log, store)
        .await?
        .with_fence(fence)
        .catch_up()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use hayabusa_store::{MemoryEventLog, MemoryReadStore};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A read store that counts the batches applied to it.
    struct CountingStore {
        inner: MemoryReadStore,
        batches: AtomicUsize,
    }

    #[async_trait]
    impl ReadModelWriter for CountingStore {
        async fn apply(
            &self,
            changes: Vec<Change>,
            checkpoint: Position,
        ) -> Result<(), StoreError> {
            self.batches.fetch_add(1, Ordering::SeqCst);
            self.inner.apply(changes, checkpoint).await
        }
        async fn apply_fenced(
            &self,
            changes: Vec<Change>,
            checkpoint: Position,
            fence: u64,
        ) -> Result<(), StoreError> {
            self.batches.fetch_add(1, Ordering::SeqCst);
            self.inner.apply_fenced(changes, checkpoint, fence).await
        }
        async fn checkpoint(&self) -> Result<Position, StoreError> {
            self.inner.checkpoint().await
        }
        async fn reset(&self) -> Result<(), StoreError> {
            self.inner.reset().await
        }
        async fn dump(&self) -> Result<String, StoreError> {
            self.inner.dump().await
        }
    }

    use crate::test_support::append_organization as append;

    #[tokio::test(start_paused = true)]
    async fn a_quiet_log_is_projected_at_once_and_a_busy_one_in_gathered_batches() {
        let interval = Duration::from_millis(50);
        let log = Arc::new(MemoryEventLog::new());
        let store = Arc::new(CountingStore {
            inner: MemoryReadStore::new(),
            batches: AtomicUsize::new(0),
        });
        let projector = Projector::new(log.clone(), store.clone())
            .await
            .unwrap()
            .with_page_cache(Arc::new(PageCache::new(16, {
                let (_, receiver) = watch::channel(0);
                ProjectionWatch::from_receiver(receiver)
            })))
            .with_min_batch_interval(interval);
        let watch = projector.watch();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runner = tokio::spawn(projector.run(async move {
            let _ = stopped.await;
        }));

        // Lone events on a quiet log: each projected at once, without waiting for
        // the interval, however close together.
        let started = tokio::time::Instant::now();
        let mut last = 0;
        for n in 1..=3 {
            last = append(&log, n).await;
            assert!(watch.wait_for(last, Duration::from_secs(5)).await);
        }
        assert!(
            started.elapsed() < interval,
            "waited {:?}",
            started.elapsed()
        );
        assert_eq!(store.batches.load(Ordering::SeqCst), 3);

        // A burst (appended before the projector runs again) is one batch; it means
        // load, so what arrives right after it waits out the interval and is one
        // batch too.
        let burst = tokio::time::Instant::now();
        for n in 10..10 + GATHER_AFTER_EVENTS as u64 {
            last = append(&log, n).await;
        }
        assert!(watch.wait_for(last, Duration::from_secs(5)).await);
        assert_eq!(store.batches.load(Ordering::SeqCst), 4);
        for n in 20..25 {
            last = append(&log, n).await;
            tokio::task::yield_now().await;
        }
        assert!(watch.wait_for(last, Duration::from_secs(5)).await);
        assert!(burst.elapsed() >= interval, "only {:?}", burst.elapsed());
        assert_eq!(store.batches.load(Ordering::SeqCst), 5);

        // Quiet again: the next lone event is projected at once.
        tokio::time::sleep(interval * 2).await;
        let again = tokio::time::Instant::now();
        let later = append(&log, 30).await;
        assert!(watch.wait_for(later, Duration::from_secs(5)).await);
        assert!(again.elapsed() < interval, "waited {:?}", again.elapsed());
        assert_eq!(store.batches.load(Ordering::SeqCst), 6);

        stop.send(()).unwrap();
        runner.await.unwrap();
    }
}
