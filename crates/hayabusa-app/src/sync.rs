//! The sync gateway's logic (LINE's fetchOps): every account sees one ordered stream
//! of ops with revisions; a client that comes back with its last revision gets exactly
//! what it missed.
//!
//! A revision is opaque to clients. Today it is the event-log position as a decimal
//! string (`"123"`: everything up to and including position 123), or `"123:1"` for an
//! op that is not the last of its position (everything up to op 1 of position 123),
//! so that a client resuming from any op's revision gets exactly the ops after it.
//! When the log is partitioned a revision becomes a vector of partition positions with
//! a distinct syntax, and these stay parseable.

use crate::consistency::AckTracker;
use crate::error::AppError;
use crate::hub::{Subscription, WakeupHub};
use crate::ops::OpKind;
use hayabusa_domain::{AccountId, RoomId};
use hayabusa_store::{EventReader, OpRecord, Position, ReadModelQueries};
use std::sync::Arc;

/// Default and maximum long-poll wait, seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// Longest long-poll wait, seconds.
pub const MAX_TIMEOUT_SECS: u64 = 60;
/// Default and maximum number of ops per answer.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest `limit`.
pub const MAX_LIMIT: usize = 1_000;

/// Why a sync request is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SyncError {
    /// The revision is not one this server hands out.
    #[error("since must be a revision returned by this server: {0}")]
    Malformed(String),
    /// The revision is ahead of everything this server has written.
    #[error("since is ahead of the server's current revision: {0}")]
    Future(String),
    /// History before this revision is no longer kept.
    #[error(
        "the history after revision {0} is no longer available: fetch the current state and sync from the current revision"
    )]
    Gone(String),
}

/// A point in an account's op stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Revision {
    /// Log position.
    pub position: Position,
    /// Within that position, the last op index seen; None = all of the position.
    pub index: Option<u32>,
}

impl Revision {
    /// Everything up to and including `position`.
    pub fn at(position: Position) -> Self {
        Revision {
            position,
            index: None,
        }
    }

    /// Whether an op comes after this revision.
    pub fn precedes(&self, op: &OpRecord) -> bool {
        match self.index {
            None => op.position > self.position,
            Some(index) => {
                op.position > self.position || (op.position == self.position && op.index > index)
            }
        }
    }
}

impl std::fmt::Display for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            None => write!(f, "{}", self.position),
            Some(index) => write!(f, "{}:{index}", self.position),
        }
    }
}

fn digits(raw: &str, max_len: usize) -> Option<&str> {
    (!raw.is_empty() && raw.len() <= max_len && raw.bytes().all(|b| b.is_ascii_digit()))
        .then_some(raw)
}

/// Parses a client's revision.
pub fn parse_revision(raw: &str) -> Result<Revision, SyncError> {
    let malformed = || SyncError::Malformed(raw.chars().take(40).collect());
    let (position, index) = match raw.split_once(':') {
        Some((position, index)) => (position, Some(index)),
        None => (raw, None),
    };
    let position: Position = digits(position, 20)
        .and_then(|p| p.parse().ok())
        .ok_or_else(malformed)?;
    let index = match index {
        None => None,
        Some(index) => Some(
            digits(index, 10)
                .and_then(|i| i.parse::<u32>().ok())
                .ok_or_else(malformed)?,
        ),
    };
    if index.is_some() && position == 0 {
        return Err(malformed());
    }
    Ok(Revision { position, index })
}

/// Formats a position as a revision for clients.
pub fn format_revision(position: Position) -> String {
    Revision::at(position).to_string()
}

/// The revision each op of a batch carries: the bare position for the last op of its
/// position, `position:index` for the others.
pub fn op_revisions(ops: &[OpRecord]) -> Vec<Revision> {
    ops.iter()
        .enumerate()
        .map(|(i, op)| {
            let last_of_position = ops
                .get(i + 1)
                .is_none_or(|next| next.position != op.position);
            Revision {
                position: op.position,
                index: (!last_of_position).then_some(op.index),
            }
        })
        .collect()
}

/// One answer: the ops and the revision to continue from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// The revision after these ops.
    pub revision: Revision,
    /// The ops, in order.
    pub ops: Vec<OpRecord>,
}

/// Serves ops.
pub struct SyncService {
    read: Arc<dyn ReadModelQueries>,
    log: Arc<dyn EventReader>,
    writes: Arc<AckTracker>,
    hub: Arc<dyn WakeupHub>,
    /// On a shared log (a cluster, with the read models in a database every node
    /// queries over the network): the fetches of all streams go through one
    /// [`OpsBatcher`], so that a post waking N sockets costs one query, not N.
    batcher: Option<Arc<OpsBatcher>>,
}

/// Coalesced op fetches: at most one [`ReadModelQueries::ops_for_accounts`] in
/// flight; the fetches that arrive meanwhile share the next one. Each answer reaches
/// the highest `up_to` of its batch (a position the node had reached when that fetch
/// was asked), which the caller takes as its revision.
pub struct OpsBatcher {
    read: Arc<dyn ReadModelQueries>,
    waiting: parking_lot::Mutex<BatcherState>,
}

#[derive(Default)]
struct BatcherState {
    running: bool,
    requests: Vec<OpsRequest>,
}

struct OpsRequest {
    account: AccountId,
    after: Position,
    up_to: Position,
    limit: usize,
    answer: tokio::sync::oneshot::Sender<Result<(Vec<OpRecord>, Position), String>>,
}

impl OpsBatcher {
    /// Fetches from `read`.
    pub fn new(read: Arc<dyn ReadModelQueries>) -> Arc<Self> {
        Arc::new(OpsBatcher {
            read,
            waiting: parking_lot::Mutex::new(BatcherState::default()),
        })
    }

    /// `ops_for(account, after, up_to', limit)` for some `up_to' >= up_to` that the
    /// node has reached; returns the ops and `up_to'`.
    pub async fn ops_for(
        self: &Arc<Self>,
        account: AccountId,
        after: Position,
        up_to: Position,
        limit: usize,
    ) -> Result<(Vec<OpRecord>, Position), AppError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let start = {
            let mut state = self.waiting.lock();
            state.requests.push(OpsRequest {
                account,
                after,
                up_to,
                limit,
                answer,
            });
            !std::mem::replace(&mut state.running, true)
        };
        if start {
            tokio::spawn(Arc::clone(self).pump());
        }
        match answered.await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(reason)) => Err(AppError::Store(hayabusa_store::StoreError::Unavailable(
                reason,
            ))),
            Err(_) => Err(AppError::Store(hayabusa_store::StoreError::Unavailable(
                "the op fetcher stopped".into(),
            ))),
        }
    }

    /// Answers everyone waiting, again while anyone arrived meanwhile; requests with
    /// another limit go in a statement of their own.
    async fn pump(self: Arc<Self>) {
        loop {
            let requests = {
                let mut state = self.waiting.lock();
                if state.requests.is_empty() {
                    state.running = false;
                    return;
                }
                std::mem::take(&mut state.requests)
            };
            metrics::histogram!("hayabusa_sync_fetch_batch_size").record(requests.len() as f64);
            let up_to = requests.iter().map(|r| r.up_to).max().unwrap_or(0);
            let mut by_limit: Vec<(usize, Vec<OpsRequest>)> = Vec::new();
            for request in requests {
                match by_limit
                    .iter_mut()
                    .find(|(limit, _)| *limit == request.limit)
                {
                    Some((_, group)) => group.push(request),
                    None => by_limit.push((request.limit, vec![request])),
                }
            }
            for (limit, group) in by_limit {
                let asked: Vec<(AccountId, Position)> =
                    group.iter().map(|r| (r.account, r.after)).collect();
                match self.read.ops_for_accounts(&asked, up_to, limit).await {
                    Ok(answers) => {
                        for (request, ops) in group.into_iter().zip(answers) {
                            let _ = request.answer.send(Ok((ops, up_to)));
                        }
                    }
                    Err(error) => {
                        let reason = error.to_string();
                        for request in group {
                            let _ = request.answer.send(Err(reason.clone()));
                        }
                    }
                }
            }
        }
    }
}

impl std::fmt::Debug for OpsBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpsBatcher").finish_non_exhaustive()
    }
}

impl SyncService {
    /// A gateway over the read store, woken by `hub`.
    pub fn new(
        read: Arc<dyn ReadModelQueries>,
        log: Arc<dyn EventReader>,
        writes: Arc<AckTracker>,
        hub: Arc<dyn WakeupHub>,
    ) -> Self {
        let batcher = log.is_shared().then(|| OpsBatcher::new(read.clone()));
        SyncService {
            read,
            log,
            writes,
            hub,
            batcher,
        }
    }

    /// The current revision (what the read models reflect).
    pub fn current(&self) -> Position {
        self.writes.projection().current()
    }

    /// Checks a client's revision: not ahead of the log, history still there. Waits
    /// (briefly) for the projector if the revision is durable but not projected yet.
    pub async fn check(&self, since: Revision) -> Result<Result<(), SyncError>, AppError> {
        // The log's head is a cached lower bound on a shared log, which the projector
        // (reading the log directly) may be ahead of: a revision it handed out is valid.
        if since.position > self.log.head().max(self.current()) {
            // Another node may have handed it out: learn the log's head first.
            self.writes.learn_log_head().await?;
            if since.position > self.log.head().max(self.writes.max_acked()) {
                return Ok(Err(SyncError::Future(since.to_string())));
            }
        }
        if since.position > self.current() {
            self.writes.wait_for(since.position).await?;
        }
        if since.position < self.read.ops_retained_from().await? {
            return Ok(Err(SyncError::Gone(since.to_string())));
        }
        Ok(Ok(()))
    }

    /// Waits until every write acknowledged before now that `account`'s op stream
    /// shows is projected (call it before the first fetch of a request).
    pub async fn settle(&self, account: AccountId) -> Result<(), AppError> {
        self.writes
            .settle_account(self.read.as_ref(), account)
            .await
    }

    /// Ops after `since`, at once (possibly none).
    pub async fn fetch(
        &self,
        account: AccountId,
        since: Revision,
        limit: usize,
    ) -> Result<Batch, AppError> {
        let up_to = self.current().max(since.position);
        // A revision inside a position re-reads that position and drops what was seen.
        let after = match since.index {
            Some(_) => since.position - 1,
            None => since.position,
        };
        let (mut ops, up_to) = match &self.batcher {
            Some(batcher) => batcher.ops_for(account, after, up_to, limit).await?,
            None => (
                self.read.ops_for(account, after, up_to, limit).await?,
                up_to,
            ),
        };
        let fetched = ops.len();
        ops.retain(|op| since.precedes(op));
        let revision = match ops.last() {
            Some(last) if fetched >= limit => Revision::at(last.position),
            _ => Revision::at(up_to),
        };
        Ok(Batch { revision, ops })
    }

    /// The rooms `account` listens to now.
    pub async fn rooms_of(&self, account: AccountId) -> Result<Vec<RoomId>, AppError> {
        Ok(self
            .read
            .rooms_of(account)
            .await?
            .into_iter()
            .map(|r| r.room.room_id)
            .collect())
    }

    /// Registers a waiter for `account` (and its current rooms).
    pub async fn subscribe(&self, account: AccountId) -> Result<Subscription, AppError> {
        let rooms = self.rooms_of(account).await?;
        Ok(self.hub.subscribe(account, rooms))
    }

    /// `account`'s live op stream from `since`: the one way both sync transports
    /// (long-poll and WebSocket) follow an account. It registers for wake-ups before
    /// anything is read, so none is missed between a read and a wait.
    pub async fn stream(
        &self,
        account: AccountId,
        since: Revision,
    ) -> Result<OpStream<'_>, AppError> {
        let subscription = self.subscribe(account).await?;
        Ok(OpStream {
            service: self,
            account,
            revision: since,
            subscription,
        })
    }

    /// Long-poll: ops after `since` as soon as there are any, or an empty batch after
    /// `timeout`.
    pub async fn long_poll(
        &self,
        account: AccountId,
        since: Revision,
        timeout: std::time::Duration,
        limit: usize,
    ) -> Result<Batch, AppError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut stream = self.stream(account, since).await?;
        loop {
            let batch = stream.next_page(limit).await?;
            if !batch.ops.is_empty() {
                return Ok(batch);
            }
            tokio::select! {
                _ = stream.woken() => {}
                _ = tokio::time::sleep_until(deadline) => return stream.next_page(limit).await,
            }
        }
    }
}

/// One account's op stream ([`SyncService::stream`]): pages of ops in order, a wait
/// for more, and the rooms it listens to kept current — when a page holds an op that
/// may change the account's rooms ([`OpKind::changes_rooms`]), it listens to the
/// account's rooms again.
pub struct OpStream<'a> {
    service: &'a SyncService,
    account: AccountId,
    revision: Revision,
    subscription: Subscription,
}

impl OpStream<'_> {
    /// The ops after the stream's revision now, at most `limit` (possibly none); the
    /// stream continues after them.
    pub async fn next_page(&mut self, limit: usize) -> Result<Batch, AppError> {
        let batch = self
            .service
            .fetch(self.account, self.revision, limit)
            .await?;
        self.revision = batch.revision;
        let rooms_may_change = batch
            .ops
            .iter()
            .any(|op| OpKind::parse(&op.op_type).is_some_and(OpKind::changes_rooms));
        if rooms_may_change {
            self.subscription
                .set_rooms(self.service.rooms_of(self.account).await?);
        }
        Ok(batch)
    }

    /// Waits until there may be more ops (returns at once if a wake-up came since
    /// the last wait).
    pub async fn woken(&self) {
        self.subscription.woken().await;
    }

    /// Where the stream is.
    pub fn revision(&self) -> Revision {
        self.revision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_are_decimal_positions_with_an_optional_op_index() {
        assert_eq!(parse_revision("0"), Ok(Revision::at(0)));
        assert_eq!(parse_revision("12345"), Ok(Revision::at(12345)));
        assert_eq!(
            parse_revision("12:3"),
            Ok(Revision {
                position: 12,
                index: Some(3)
            })
        );
        for bad in [
            "",
            "-1",
            "1.5",
            "abc",
            "1 ",
            "0:1",
            "1:",
            ":1",
            "1:2:3",
            "1:x",
            "99999999999999999999999",
            "18446744073709551616",
        ] {
            assert!(
                matches!(parse_revision(bad), Err(SyncError::Malformed(_))),
                "{bad}"
            );
        }
        assert_eq!(format_revision(7), "7");
        assert_eq!(
            Revision {
                position: 7,
                index: Some(0)
            }
            .to_string(),
            "7:0"
        );
    }

    fn op(position: Position, index: u32) -> OpRecord {
        OpRecord {
            position,
            index,
            room_id: None,
            target: None,
            op_type: "x".into(),
            payload: "{}".into(),
        }
    }

    #[test]
    fn only_the_last_op_of_a_position_carries_the_bare_position() {
        let ops = [op(5, 0), op(5, 1), op(6, 0)];
        let revisions: Vec<String> = op_revisions(&ops).iter().map(|r| r.to_string()).collect();
        assert_eq!(revisions, vec!["5:0", "5", "6"]);
        let resume = parse_revision("5:0").unwrap();
        assert!(!resume.precedes(&ops[0]));
        assert!(resume.precedes(&ops[1]));
        assert!(resume.precedes(&ops[2]));
        assert!(!Revision::at(5).precedes(&ops[1]));
    }
}
