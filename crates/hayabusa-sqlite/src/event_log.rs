//! The embedded event log: one SQLite file in WAL mode with group commit.
//!
//! Durability costs one fsync per transaction, and a disk does only a few hundred to
//! a few thousand fsyncs per second. To append far more events than that, one
//! dedicated writer thread owns the only write connection and commits appends in
//! **groups**: it blocks for the first queued request, drains whatever else is queued
//! (up to [`MAX_BATCH_REQUESTS`]), applies them all in one transaction and commits
//! once. Only after that `COMMIT` (with `synchronous=FULL`, the fsync) does it publish
//! the new head and answer each caller. While one group is being synced, the next
//! one queues up, so batches grow by themselves as load grows; and once they hold
//! several requests, the writer also lets the next one gather for up to
//! [`GROUP_GATHER`] (a lone request on a quiet log is committed at once).
//!
//! Each request is validated before it writes anything: its idempotency key is looked
//! up first, then its expected version is checked against a stream-version cache
//! owned by the writer (the committed versions plus an overlay holding the current
//! batch's uncommitted changes). A refused request therefore leaves no trace and does
//! not disturb the others in its batch. Should SQLite itself fail while writing one
//! request, the whole transaction is rolled back, that request is answered with the
//! error, and the rest of the batch is applied again without it.
//!
//! Reads go through a small pool of read-only connections on tokio's blocking
//! threads; WAL lets them run alongside the writer and see only committed data.
//!
//! **The stream index is kept off the acknowledgement path, in a file of its own.**
//! A unique index on `(stream, stream_version)` maintained inside every group commit
//! dirtied one B-tree page per stream in the group, and writing those pages to the WAL
//! cost four times the rest of the commit (measured: 75k appends/s with it, 300k
//! without). So the `events` table has only its position key, and an **indexer
//! thread** copies `(stream, stream_version, position)` into `stream_index` in a
//! second SQLite file ([`index_path`]), in transactions that cover many commits: once
//! the unindexed tail reaches [`IndexSettings::window`] events, or the log has been
//! quiet for [`IndexSettings::idle`]; at most [`IndexSettings::chunk`] events per
//! transaction. Schema version 2 kept the index in the log's own file and the writer
//! filled it between group commits; SQLite has one writer per file, so every chunk
//! paused appends (2,048 events: 3 ms median, 14 ms at worst at 12,000 posts/s). In
//! its own file, the index is written while appends go on. Its transactions skip the
//! fsync (the index is derived: `index_state.indexed_to` is committed with it, and
//! whatever a crash loses — or the whole file — is re-indexed from `events` at the next
//! open). Every lookup by stream — `read_stream`, the writer's version check — reads
//! the index first and then scans the log after `indexed_to`, so nothing appended is
//! ever missed; the tail is bounded by the window. The index is read first because
//! everything it lists was committed to the log before it was indexed: a later look
//! at the log sees it all. The writer's version cache, not the index, is what keeps
//! stream versions unique; the index's primary key double-checks it.

use async_trait::async_trait;
use hayabusa_store::{
    AppendRequest, Appended, EventAppender, EventReader, Position, RecordedEvent, StoreError,
};
use parking_lot::{Condvar, Mutex};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Row, params};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Semaphore, oneshot, watch};

/// The most append requests the writer commits in one transaction.
pub const MAX_BATCH_REQUESTS: usize = 1024;

/// Under load the writer lets a group gather for this long after the previous group
/// started before it commits (PostgreSQL's `commit_delay`): fewer, larger groups, so
/// fewer fsyncs, which on this kind of machine cost more CPU in the kernel than
/// anything else in an append. Measured at 8,000 posts/s: server CPU per post 112 →
/// 98 µs, post p50 +0.25 ms (BENCHMARKS.md).
pub const GROUP_GATHER: Duration = Duration::from_micros(500);

/// Load, for [`GROUP_GATHER`]: the previous group held at least this many requests
/// (PostgreSQL's `commit_siblings`). A lone request after a lone request is
/// committed at once.
pub const GATHER_AFTER_REQUESTS: usize = 2;

/// When the group after one that started at `previous_start` with `previous_len`
/// requests may be committed: at once (None), or once [`GROUP_GATHER`] has passed.
fn gather_until(previous_start: Instant, previous_len: usize) -> Option<Instant> {
    (previous_len >= GATHER_AFTER_REQUESTS).then(|| previous_start + GROUP_GATHER)
}

/// How many read-only connections serve reads at once.
const READ_CONNECTIONS: usize = 4;

/// How often a batch is retried after SQLite failed on one of its requests.
const MAX_BATCH_ATTEMPTS: usize = 4;

/// How long a connection waits on a lock held by another before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// WAL size (in pages) at which the writer checkpoints: 4000 pages of 4 KiB, 16 MiB.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 4000;

/// Page cache of the writer connection, in KiB.
const WRITER_CACHE_KIB: u32 = 64 * 1024;

/// The schema version this code writes, kept in `PRAGMA user_version`. Version 1 had
/// a unique `(stream, stream_version)` index on `events` and no `stream_index`;
/// version 2 kept `stream_index` in the log's file, version 3 in [`index_path`].
pub(crate) const SCHEMA_VERSION: i64 = 3;

/// The `events` table (a macro so the migration can create it under another name).
macro_rules! events_table {
    ($name:literal) => {
        concat!(
            "CREATE TABLE IF NOT EXISTS ",
            $name,
            " (
    position        INTEGER PRIMARY KEY,
    stream          TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL,
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL,
    data            BLOB    NOT NULL,
    recorded_at_ms  INTEGER NOT NULL
);"
        )
    };
}

/// The stream index's file (see [`index_path`]).
const INDEX_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS stream_index (
    stream          TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL,
    position        INTEGER NOT NULL,
    PRIMARY KEY (stream, stream_version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS index_state (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_to      INTEGER NOT NULL
);
INSERT OR IGNORE INTO index_state (id, indexed_to) VALUES (1, 0);
";

/// Everything in the log's file but `events`.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key             TEXT    PRIMARY KEY,
    fingerprint     TEXT    NOT NULL,
    stream          TEXT    NOT NULL,
    first_position  INTEGER NOT NULL,
    event_count     INTEGER NOT NULL,
    stream_version  INTEGER NOT NULL,
    position        INTEGER NOT NULL,
    recorded_at_ms  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
";

/// How far the index reaches, on a reader (the index attached as `idx`); read first,
/// so that the log, read after it, holds everything the index lists.
const SELECT_READER_INDEXED_TO: &str = "SELECT indexed_to FROM idx.index_state";

/// The indexed events of stream `?1` after version `?2`, in version order, at most
/// `?3`; the first half of a stream lookup.
const SELECT_INDEXED: &str = "
SELECT e.position, e.stream, e.stream_version, e.event_type, e.schema_version, e.data,
       e.recorded_at_ms
  FROM idx.stream_index i JOIN events e ON e.position = i.position
 WHERE i.stream = ?1 AND i.stream_version > ?2
 ORDER BY i.stream_version LIMIT ?3";

/// The unindexed events of stream `?1` after version `?2` and position `?4` (how far
/// the index reached), in order, at most `?3`; the second half of a stream lookup (a
/// scan of about the index window).
const SELECT_UNINDEXED: &str = "
SELECT position, stream, stream_version, event_type, schema_version, data, recorded_at_ms
  FROM events
 WHERE position > ?4 AND stream = ?1 AND stream_version > ?2
 ORDER BY position LIMIT ?3";

/// How far the index reaches and the last indexed version of stream `?1` (NULL:
/// none), in one snapshot of the index file.
const SELECT_INDEXED_VERSION: &str = "
SELECT (SELECT indexed_to FROM index_state),
       (SELECT MAX(stream_version) FROM stream_index WHERE stream = ?1)";

/// The last version of stream `?1` after position `?2` (NULL: none), from the log.
const SELECT_TAIL_VERSION: &str =
    "SELECT MAX(stream_version) FROM events WHERE position > ?2 AND stream = ?1";

/// A query of whole events, decoded by [`recorded_event`], with `$filter` appended.
macro_rules! select_events {
    ($filter:literal) => {
        concat!(
            "SELECT position, stream, stream_version, event_type, schema_version, data, \
             recorded_at_ms FROM events ",
            $filter
        )
    };
}

/// When the indexer thread brings the stream index up to date (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexSettings {
    /// Index once this many events are unindexed.
    pub window: u64,
    /// The most events indexed in one transaction.
    pub chunk: u64,
    /// Index what is left once the log's head has not moved for this long.
    pub idle: Duration,
}

impl Default for IndexSettings {
    fn default() -> Self {
        IndexSettings {
            window: 4_096,
            chunk: 16_384,
            idle: Duration::from_millis(20),
        }
    }
}

/// How long idempotency keys are kept by default (the port's default).
pub use hayabusa_store::DEFAULT_IDEMPOTENCY_EXPIRY;

/// Everything that can be tuned when opening the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogSettings {
    /// When the stream index is brought up to date.
    pub index: IndexSettings,
    /// How long an idempotency key is kept: an older key is ignored at once (a retry
    /// with it appends again) and deleted when the log is next opened.
    pub idempotency_expiry: Duration,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            index: IndexSettings::default(),
            idempotency_expiry: DEFAULT_IDEMPOTENCY_EXPIRY,
        }
    }
}

/// The file that holds the stream index of the log at `path`: `events.sqlite` →
/// `events.index.sqlite`. Derived data: deleting it (with the server stopped) only
/// makes the next open re-index the log.
pub fn index_path(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(extension) => format!("{stem}.index.{}", extension.to_string_lossy()),
        None => format!("{stem}.index"),
    };
    path.with_file_name(name)
}

/// Counters of the writer's group commit, cumulative since the log was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Transactions committed with at least one successful append (each one fsync).
    pub batches: u64,
    /// Append requests answered from committed batches, including refused ones.
    pub requests: u64,
    /// Events appended.
    pub events: u64,
}

impl GroupCommitStats {
    /// Events appended per committed transaction (0 before the first commit).
    pub fn events_per_batch(&self) -> f64 {
        if self.batches == 0 {
            0.0
        } else {
            self.events as f64 / self.batches as f64
        }
    }

    /// Requests answered per committed transaction (0 before the first commit).
    pub fn requests_per_batch(&self) -> f64 {
        if self.batches == 0 {
            0.0
        } else {
            self.requests as f64 / self.batches as f64
        }
    }
}

/// The event log on one SQLite file. Appends go to a group-committing writer thread;
/// reads run on a small pool of read-only connections.
///
/// Dropping the log closes the writer's queue; the writer finishes what is queued and
/// the drop waits for it, so the file can be reopened right away.
#[derive(Debug)]
pub struct SqliteEventLog {
    requests: Option<mpsc::Sender<WriteRequest>>,
    writer: Option<thread::JoinHandle<()>>,
    indexer: Option<thread::JoinHandle<()>>,
    index: Arc<IndexShared>,
    head: watch::Receiver<Position>,
    readers: Arc<ReadPool>,
    counters: Arc<Counters>,
}

/// One queued append and where to send its answer.
#[derive(Debug)]
struct WriteRequest {
    request: AppendRequest,
    reply: oneshot::Sender<Result<Appended, StoreError>>,
}

#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    requests: AtomicU64,
    events: AtomicU64,
}

impl SqliteEventLog {
    /// Opens (creating if needed) the event log in the SQLite file at `path` and starts
    /// its writer thread. The parent directory must exist.
    ///
    /// This does blocking file I/O (creating the schema, reading the head); it is quick,
    /// but callers on an async runtime may prefer `spawn_blocking`.
    pub fn open(path: &Path) -> Result<SqliteEventLog, StoreError> {
        Self::open_with(path, IndexSettings::default())
    }

    /// [`open`](Self::open) with explicit stream-index settings. Indexes whatever a
    /// crash left unindexed before returning.
    pub fn open_with(path: &Path, index: IndexSettings) -> Result<SqliteEventLog, StoreError> {
        Self::open_with_settings(
            path,
            LogSettings {
                index,
                ..LogSettings::default()
            },
        )
    }

    /// [`open`](Self::open) with explicit settings. Deletes expired idempotency keys.
    pub fn open_with_settings(
        path: &Path,
        settings: LogSettings,
    ) -> Result<SqliteEventLog, StoreError> {
        let LogSettings {
            index,
            idempotency_expiry,
        } = settings;
        let idempotency_expiry_ms =
            i64::try_from(idempotency_expiry.as_millis()).unwrap_or(i64::MAX);
        let conn = open_writer_connection(path).map_err(store_error)?;
        delete_expired_keys(&conn, idempotency_expiry_ms).map_err(store_error)?;
        let head = read_head(&conn).map_err(store_error)?;
        let index_file = index_path(path);
        let mut indexer = Indexer::open(&index_file, path, head, index).map_err(store_error)?;
        indexer.index_up_to(head).map_err(store_error)?;
        let shared = Arc::clone(&indexer.shared);
        let index_reader = open_reader_connection(&index_file).map_err(store_error)?;
        let (head_sender, head_receiver) = watch::channel(head);
        let (request_sender, request_receiver) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let writer = Writer {
            conn,
            index_reader,
            requests: request_receiver,
            head: head_sender,
            counters: Arc::clone(&counters),
            committed_head: head,
            index: Arc::clone(&shared),
            window: index.window,
            versions: HashMap::new(),
            overlay: HashMap::new(),
            idempotency_expiry_ms,
        };
        let spawn_failed = |error: std::io::Error| {
            StoreError::Unavailable(format!("cannot start an event log thread: {error}"))
        };
        let indexer = thread::Builder::new()
            .name("hayabusa-event-log-indexer".to_owned())
            .spawn(move || indexer.run())
            .map_err(spawn_failed)?;
        let writer = match thread::Builder::new()
            .name("hayabusa-event-log-writer".to_owned())
            .spawn(move || writer.run())
        {
            Ok(writer) => writer,
            Err(error) => {
                shared.stop();
                let _ = indexer.join();
                return Err(spawn_failed(error));
            }
        };
        Ok(SqliteEventLog {
            requests: Some(request_sender),
            writer: Some(writer),
            indexer: Some(indexer),
            index: shared,
            head: head_receiver,
            readers: Arc::new(ReadPool::new(path.to_owned(), index_file)),
            counters,
        })
    }

    /// How well group commit is doing so far.
    pub fn stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            requests: self.counters.requests.load(Ordering::Relaxed),
            events: self.counters.events.load(Ordering::Relaxed),
        }
    }
}

impl Drop for SqliteEventLog {
    fn drop(&mut self) {
        // Closing the queue ends the writer once it has committed what was queued.
        drop(self.requests.take());
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("the event log writer thread panicked");
        }
        // Then the indexer indexes up to the final head and stops.
        self.index.stop();
        if let Some(indexer) = self.indexer.take()
            && indexer.join().is_err()
        {
            tracing::error!("the event log indexer thread panicked");
        }
    }
}

#[async_trait]
impl EventAppender for SqliteEventLog {
    async fn append(&self, request: AppendRequest) -> Result<Appended, StoreError> {
        let unavailable = || StoreError::Unavailable("the event log writer has stopped".into());
        let (reply, answer) = oneshot::channel();
        let requests = self.requests.as_ref().ok_or_else(unavailable)?;
        requests
            .send(WriteRequest { request, reply })
            .map_err(|_| unavailable())?;
        // If the writer dies, it drops the reply sender and this fails instead of hanging.
        answer.await.map_err(|_| unavailable())?
    }
}

#[async_trait]
impl EventReader for SqliteEventLog {
    async fn read_stream(
        &self,
        stream: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let stream = stream.to_owned();
        self.readers
            .run(move |conn| {
                // One snapshot of each file, the index's first (see the module docs).
                // Indexed events all precede the unindexed ones, so the tail is read
                // only when the index runs out.
                let snapshot = conn.unchecked_transaction()?;
                let indexed_to: i64 = snapshot
                    .prepare_cached(SELECT_READER_INDEXED_TO)?
                    .query_row([], |row| row.get(0))?;
                let mut events = snapshot
                    .prepare_cached(SELECT_INDEXED)?
                    .query_map(
                        params![stream, to_sql(after_version), to_sql(limit as u64)],
                        recorded_event,
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                if events.len() < limit {
                    let after = events.last().map_or(after_version, |e| e.stream_version);
                    let rest = (limit - events.len()) as u64;
                    let tail = snapshot
                        .prepare_cached(SELECT_UNINDEXED)?
                        .query_map(
                            params![stream, to_sql(after), to_sql(rest), indexed_to],
                            recorded_event,
                        )?
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    events.extend(tail);
                }
                snapshot.commit()?;
                Ok(events)
            })
            .await
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.readers
            .run(move |conn| {
                let mut statement = conn.prepare_cached(select_events!(
                    "WHERE position > ?1 ORDER BY position LIMIT ?2"
                ))?;
                let rows = statement
                    .query_map(params![to_sql(after), to_sql(limit as u64)], recorded_event)?;
                rows.collect()
            })
            .await
    }

    fn head(&self) -> Position {
        *self.head.borrow()
    }

    fn subscribe(&self) -> watch::Receiver<Position> {
        let mut receiver = self.head.clone();
        // Like `watch::Sender::subscribe`: what was published before is already seen.
        receiver.mark_unchanged();
        receiver
    }
}

// ---------------------------------------------------------------------------------
// The writer thread.
// ---------------------------------------------------------------------------------

/// What the writer thread owns.
struct Writer {
    conn: Connection,
    /// A read-only connection to the index file, for versions the cache lacks.
    index_reader: Connection,
    requests: mpsc::Receiver<WriteRequest>,
    head: watch::Sender<Position>,
    counters: Arc<Counters>,
    /// The last committed position.
    committed_head: Position,
    /// Where the indexer is told of new heads.
    index: Arc<IndexShared>,
    /// The indexer is woken once this many events are unindexed.
    window: u64,
    /// Committed stream versions, filled lazily from the database.
    versions: HashMap<String, u64>,
    /// Stream versions changed by the batch being written, not yet committed.
    overlay: HashMap<String, u64>,
    /// How long idempotency keys count, in milliseconds.
    idempotency_expiry_ms: i64,
}

/// What became of one request within a batch, before the batch is committed.
enum Outcome {
    /// Its events were written from `first_position` on, as versions from `first_version`.
    Appended {
        first_position: Position,
        first_version: u64,
        /// The log position after it.
        position: Position,
        /// The commit time written with its events.
        recorded_at_ms: i64,
    },
    /// Its idempotency key had been seen: the first append's result.
    Duplicate(Appended),
    /// Refused or failed; nothing of it was written.
    Failed(StoreError),
}

/// Why a batch could not be committed.
enum BatchError {
    /// SQLite failed while applying the request at this index; the others may be retried.
    Request(usize, StoreError),
    /// The transaction itself failed (begin or commit).
    Transaction(StoreError),
}

/// The writer's prepared statements for one batch.
struct Statements<'conn> {
    select_key: rusqlite::CachedStatement<'conn>,
    select_events: rusqlite::CachedStatement<'conn>,
    select_indexed_version: rusqlite::CachedStatement<'conn>,
    select_tail_version: rusqlite::CachedStatement<'conn>,
    insert_event: rusqlite::CachedStatement<'conn>,
    insert_key: rusqlite::CachedStatement<'conn>,
}

impl<'conn> Statements<'conn> {
    fn prepare(conn: &'conn Connection, index_reader: &'conn Connection) -> rusqlite::Result<Self> {
        Ok(Statements {
            select_key: conn.prepare_cached(
                "SELECT fingerprint, first_position, event_count, stream_version, position, \
                 recorded_at_ms FROM idempotency_keys WHERE key = ?1",
            )?,
            select_events: conn.prepare_cached(select_events!(
                "WHERE position >= ?1 AND position < ?2 ORDER BY position"
            ))?,
            select_indexed_version: index_reader.prepare_cached(SELECT_INDEXED_VERSION)?,
            select_tail_version: conn.prepare_cached(SELECT_TAIL_VERSION)?,
            insert_event: conn.prepare_cached(
                "INSERT INTO events (position, stream, stream_version, event_type, \
                 schema_version, data, recorded_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?,
            // REPLACE: the key may still be there, expired.
            insert_key: conn.prepare_cached(
                "INSERT OR REPLACE INTO idempotency_keys (key, fingerprint, stream, \
                 first_position, event_count, stream_version, position, recorded_at_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?,
        })
    }
}

impl Writer {
    /// Commits groups of requests until every sender is gone and the queue is empty.
    fn run(mut self) {
        let mut batch = Vec::with_capacity(MAX_BATCH_REQUESTS);
        let mut outcomes = Vec::with_capacity(MAX_BATCH_REQUESTS);
        // `recv` keeps returning queued requests after the log is dropped, and fails
        // only once the queue is empty.
        let mut previous = (Instant::now(), 0);
        while let Ok(first) = self.requests.recv() {
            batch.push(first);
            if let Some(deadline) = gather_until(previous.0, previous.1) {
                // Busy: wait for more requests until the deadline (or a full group).
                while batch.len() < MAX_BATCH_REQUESTS {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match self.requests.recv_timeout(left) {
                        Ok(request) => batch.push(request),
                        Err(_) => break,
                    }
                }
            }
            while batch.len() < MAX_BATCH_REQUESTS {
                match self.requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            previous = (Instant::now(), batch.len());
            self.commit_batch(&mut batch, &mut outcomes);
            self.index.advance(self.committed_head, self.window);
        }
        tracing::debug!(head = self.committed_head, "event log writer stopped");
    }

    /// Applies and commits `batch`, then answers every request in it (emptying it).
    fn commit_batch(&mut self, batch: &mut Vec<WriteRequest>, outcomes: &mut Vec<Outcome>) {
        // Requests that made SQLite fail in an earlier attempt, with their error.
        let mut failed: Vec<(usize, StoreError)> = Vec::new();
        let mut result = Err(BatchError::Transaction(StoreError::Unavailable(
            "the batch was not attempted".into(),
        )));
        for _ in 0..MAX_BATCH_ATTEMPTS {
            result = self.try_batch(batch, &failed, outcomes);
            match &result {
                Ok(_) | Err(BatchError::Transaction(_)) => break,
                Err(BatchError::Request(index, error)) => {
                    tracing::error!(%error, stream = %batch[*index].request.stream,
                        "append failed in SQLite; retrying the rest of its batch");
                    self.rollback();
                    failed.push((*index, error.clone()));
                }
            }
        }
        match result {
            Ok(head) => {
                let events = head - self.committed_head;
                let wrote = outcomes
                    .iter()
                    .any(|outcome| matches!(outcome, Outcome::Appended { .. }));
                self.committed_head = head;
                for (stream, version) in self.overlay.drain() {
                    self.versions.insert(stream, version);
                }
                if wrote {
                    self.counters.batches.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("hayabusa_event_log_commits_total").increment(1);
                }
                metrics::counter!("hayabusa_event_log_appended_events_total").increment(events);
                self.counters
                    .requests
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.counters.events.fetch_add(events, Ordering::Relaxed);
                // Publish the durable head before answering, so that a caller whose
                // append returned never sees an older head.
                if events > 0 {
                    self.head.send_replace(head);
                }
                for (write, outcome) in batch.drain(..).zip(outcomes.drain(..)) {
                    let answer = answer(write.request, outcome);
                    // The caller may have gone away; its append is committed anyway.
                    let _ = write.reply.send(answer);
                }
            }
            Err(BatchError::Transaction(error) | BatchError::Request(_, error)) => {
                tracing::error!(%error, requests = batch.len(), "event log batch failed");
                self.rollback();
                self.resynchronise();
                for write in batch.drain(..) {
                    let _ = write.reply.send(Err(error.clone()));
                }
                outcomes.clear();
            }
        }
    }

    /// One attempt at writing and committing `batch`; returns the new head.
    fn try_batch(
        &mut self,
        batch: &[WriteRequest],
        failed: &[(usize, StoreError)],
        outcomes: &mut Vec<Outcome>,
    ) -> Result<Position, BatchError> {
        outcomes.clear();
        self.overlay.clear();
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|error| BatchError::Transaction(store_error(error)))?;
        let mut statements = Statements::prepare(&self.conn, &self.index_reader)
            .map_err(|error| BatchError::Transaction(store_error(error)))?;
        let mut head = self.committed_head;
        let recorded_at_ms = now_ms();
        for (index, write) in batch.iter().enumerate() {
            if let Some((_, error)) = failed.iter().find(|(failed, _)| *failed == index) {
                outcomes.push(Outcome::Failed(error.clone()));
                continue;
            }
            let outcome = apply(
                &write.request,
                &mut statements,
                &self.versions,
                &mut self.overlay,
                &mut head,
                recorded_at_ms,
                self.idempotency_expiry_ms,
            )
            .map_err(|error| BatchError::Request(index, store_error(error)))?;
            outcomes.push(outcome);
        }
        drop(statements);
        // With WAL and synchronous=FULL, this is where the batch becomes durable.
        self.conn
            .execute_batch("COMMIT")
            .map_err(|error| BatchError::Transaction(store_error(error)))?;
        Ok(head)
    }

    fn rollback(&mut self) {
        if !self.conn.is_autocommit()
            && let Err(error) = self.conn.execute_batch("ROLLBACK")
        {
            tracing::error!(%error, "event log rollback failed");
        }
        self.overlay.clear();
    }

    /// After a failed commit, forgets cached state and rereads the head, so that the
    /// writer continues from what SQLite really holds.
    fn resynchronise(&mut self) {
        self.versions.clear();
        match read_head(&self.conn) {
            Ok(head) => {
                self.committed_head = head;
                self.head.send_if_modified(|published| {
                    let changed = *published != head;
                    *published = head;
                    changed
                });
            }
            Err(error) => tracing::error!(%error, "cannot reread the event log head"),
        }
    }
}

/// Applies one request inside the batch's transaction: the idempotency key first, then
/// the expected version, then the inserts. Returns `Err` only if SQLite fails.
fn apply(
    request: &AppendRequest,
    statements: &mut Statements<'_>,
    versions: &HashMap<String, u64>,
    overlay: &mut HashMap<String, u64>,
    head: &mut Position,
    recorded_at_ms: i64,
    idempotency_expiry_ms: i64,
) -> rusqlite::Result<Outcome> {
    if let Some(key) = &request.idempotency {
        let seen = statements
            .select_key
            .query_row(params![key.key], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    column_u64(row, 1)?,
                    column_u64(row, 2)?,
                    column_u64(row, 3)?,
                    column_u64(row, 4)?,
                    row.get::<_, i64>(5)?,
                ))
            })
            .optional()?;
        // An expired key counts as never seen (and is replaced below).
        let seen = seen.filter(|&(.., key_recorded_at_ms)| {
            key_recorded_at_ms > recorded_at_ms.saturating_sub(idempotency_expiry_ms)
        });
        if let Some((fingerprint, first_position, count, stream_version, position, _)) = seen {
            if fingerprint != key.fingerprint {
                return Ok(Outcome::Failed(StoreError::IdempotencyKeyReused));
            }
            let events = statements
                .select_events
                .query_map(
                    params![to_sql(first_position), to_sql(first_position + count)],
                    recorded_event,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            return Ok(Outcome::Duplicate(Appended {
                events,
                stream_version,
                position,
                duplicate: true,
            }));
        }
    }

    let cached = overlay
        .get(&request.stream)
        .or_else(|| versions.get(&request.stream));
    let actual = match cached {
        Some(&version) => version,
        None => {
            // The index first, then the log after what it covers (see the module docs).
            let (indexed_to, indexed) = statements
                .select_indexed_version
                .query_row(params![request.stream], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, Option<i64>>(1)?))
                })?;
            let tail = statements
                .select_tail_version
                .query_row(params![request.stream, indexed_to], |row| {
                    row.get::<_, Option<i64>>(0)
                })?;
            indexed.max(tail).map_or(0, |version| version.max(0) as u64)
        }
    };
    if !request.expected.admits(actual) {
        return Ok(Outcome::Failed(StoreError::Conflict {
            stream: request.stream.clone(),
            expected: request.expected.to_string(),
            actual,
        }));
    }

    let first_position = *head + 1;
    let first_version = actual + 1;
    for (offset, event) in request.events.iter().enumerate() {
        let offset = offset as u64;
        statements.insert_event.execute(params![
            to_sql(first_position + offset),
            request.stream,
            to_sql(first_version + offset),
            event.event_type,
            event.schema_version,
            event.data,
            recorded_at_ms,
        ])?;
    }
    let count = request.events.len() as u64;
    *head += count;
    let stream_version = actual + count;
    if let Some(key) = &request.idempotency {
        statements.insert_key.execute(params![
            key.key,
            key.fingerprint,
            request.stream,
            to_sql(first_position),
            to_sql(count),
            to_sql(stream_version),
            to_sql(*head),
            recorded_at_ms,
        ])?;
    }
    match overlay.get_mut(&request.stream) {
        Some(version) => *version = stream_version,
        None => {
            overlay.insert(request.stream.clone(), stream_version);
        }
    }
    Ok(Outcome::Appended {
        first_position,
        first_version,
        position: *head,
        recorded_at_ms,
    })
}

/// Turns a committed request and its outcome into the caller's answer, moving the
/// events' payloads instead of copying them.
fn answer(request: AppendRequest, outcome: Outcome) -> Result<Appended, StoreError> {
    match outcome {
        Outcome::Appended {
            first_position,
            first_version,
            position,
            recorded_at_ms,
        } => {
            let count = request.events.len() as u64;
            let stream = request.stream;
            let events = request
                .events
                .into_iter()
                .zip(0..)
                .map(|(event, offset)| RecordedEvent {
                    position: first_position + offset,
                    stream: stream.clone(),
                    stream_version: first_version + offset,
                    event_type: event.event_type,
                    schema_version: event.schema_version,
                    data: event.data,
                    recorded_at_ms,
                })
                .collect();
            Ok(Appended {
                events,
                stream_version: first_version - 1 + count,
                position,
                duplicate: false,
            })
        }
        Outcome::Duplicate(appended) => Ok(appended),
        Outcome::Failed(error) => Err(error),
    }
}

// ---------------------------------------------------------------------------------
// The indexer thread.
// ---------------------------------------------------------------------------------

/// What the writer and the indexer share.
#[derive(Debug, Default)]
struct IndexShared {
    /// The log's committed head, as the writer last reported it.
    head: AtomicU64,
    /// How far the index reaches (committed in the index file).
    indexed_to: AtomicU64,
    /// Set when the log closes: index up to the head and stop.
    stopping: Mutex<bool>,
    wake: Condvar,
}

impl IndexShared {
    /// Called by the writer after a commit: records the head, and wakes the indexer
    /// once the tail reaches `window`. The lock makes the wake-up reach an indexer
    /// that is about to wait (it checks the head under the lock); it is taken only
    /// while a full window is unindexed, and the indexer never holds it while it
    /// indexes.
    fn advance(&self, head: Position, window: u64) {
        self.head.store(head, Ordering::Release);
        if head.saturating_sub(self.indexed_to.load(Ordering::Acquire)) >= window {
            let _checked = self.stopping.lock();
            self.wake.notify_one();
        }
    }

    /// Asks the indexer to index up to the head and stop.
    fn stop(&self) {
        *self.stopping.lock() = true;
        self.wake.notify_one();
    }
}

/// What the indexer thread owns: a write connection to the index file, with the log
/// attached read-only as `log`.
struct Indexer {
    conn: Connection,
    shared: Arc<IndexShared>,
    settings: IndexSettings,
    indexed_to: Position,
}

impl Indexer {
    /// Opens (creating if needed) the index file for the log at `log_path`, whose head
    /// is `head`. An index that reaches beyond the head belongs to another log: it is
    /// emptied.
    fn open(
        path: &Path,
        log_path: &Path,
        head: Position,
        settings: IndexSettings,
    ) -> rusqlite::Result<Indexer> {
        let conn = open_wal_connection(path)?;
        // NORMAL: no fsync per transaction; a crash loses at most the last ones, which
        // the next open re-indexes.
        conn.execute_batch(&format!(
            "PRAGMA synchronous = NORMAL;
             PRAGMA temp_store = MEMORY;
             PRAGMA cache_size = -{WRITER_CACHE_KIB};
             BEGIN; {INDEX_SCHEMA} COMMIT;"
        ))?;
        conn.execute(
            "ATTACH DATABASE ?1 AS log",
            params![log_path.to_string_lossy()],
        )?;
        let mut indexed_to = read_indexed_to(&conn)?;
        if indexed_to > head {
            tracing::warn!(
                indexed_to,
                head,
                path = %path.display(),
                "the stream index reaches beyond the log: re-indexing"
            );
            conn.execute_batch(
                "BEGIN; DELETE FROM stream_index; UPDATE index_state SET indexed_to = 0; COMMIT;",
            )?;
            indexed_to = 0;
        }
        let shared = Arc::new(IndexShared::default());
        shared.head.store(head, Ordering::Release);
        shared.indexed_to.store(indexed_to, Ordering::Release);
        Ok(Indexer {
            conn,
            shared,
            settings,
            indexed_to,
        })
    }

    /// Waits for a full window or a quiet log, indexes, and repeats until stopped;
    /// then indexes up to the final head.
    fn run(mut self) {
        let mut seen_head = self.shared.head.load(Ordering::Acquire);
        loop {
            let (head, stopping) = {
                let mut stopping = self.shared.stopping.lock();
                loop {
                    let head = self.shared.head.load(Ordering::Acquire);
                    let tail = head.saturating_sub(self.indexed_to);
                    // Quiet: the head has not moved for a whole wait.
                    let quiet = tail > 0 && head == seen_head;
                    if *stopping || tail >= self.settings.window || quiet {
                        break (head, *stopping);
                    }
                    seen_head = head;
                    self.shared.wake.wait_for(&mut stopping, self.settings.idle);
                }
            };
            if let Err(error) = self.index_up_to(head) {
                tracing::error!(%error, "indexing the event log failed; will retry");
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                if !stopping {
                    thread::sleep(self.settings.idle);
                    continue;
                }
            }
            if stopping {
                break;
            }
        }
        tracing::debug!(indexed_to = self.indexed_to, "event log indexer stopped");
    }

    /// Copies the committed events after `indexed_to` up to `head` into
    /// `stream_index`, at most [`IndexSettings::chunk`] per transaction.
    fn index_up_to(&mut self, head: Position) -> rusqlite::Result<()> {
        while self.indexed_to < head {
            let from = self.indexed_to;
            let to = head.min(from.saturating_add(self.settings.chunk.max(1)));
            let started = Instant::now();
            self.conn.execute_batch("BEGIN")?;
            self.conn
                .prepare_cached(
                    "INSERT INTO stream_index (stream, stream_version, position)
                     SELECT stream, stream_version, position FROM log.events
                      WHERE position > ?1 AND position <= ?2",
                )?
                .execute(params![to_sql(from), to_sql(to)])?;
            self.conn
                .prepare_cached("UPDATE index_state SET indexed_to = ?1")?
                .execute(params![to_sql(to)])?;
            self.conn.execute_batch("COMMIT")?;
            self.indexed_to = to;
            self.shared.indexed_to.store(to, Ordering::Release);
            tracing::debug!(
                events = to - from,
                micros = started.elapsed().as_micros() as u64,
                "stream index caught up"
            );
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// Reading.
// ---------------------------------------------------------------------------------

/// A few read-only connections, handed out one per blocking read.
#[derive(Debug)]
struct ReadPool {
    path: PathBuf,
    index_path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl ReadPool {
    fn new(path: PathBuf, index_path: PathBuf) -> Self {
        ReadPool {
            path,
            index_path,
            idle: Mutex::new(Vec::with_capacity(READ_CONNECTIONS)),
            permits: Arc::new(Semaphore::new(READ_CONNECTIONS)),
        }
    }

    /// Runs `read` on a pooled connection on a blocking thread.
    async fn run<T, F>(self: &Arc<Self>, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("the read pool is closed".into()))?;
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = match pool.idle.lock().pop() {
                Some(conn) => conn,
                None => open_reader_connection(&pool.path)
                    .and_then(|conn| {
                        conn.execute(
                            "ATTACH DATABASE ?1 AS idx",
                            params![pool.index_path.to_string_lossy()],
                        )?;
                        Ok(conn)
                    })
                    .map_err(store_error)?,
            };
            let result = read(&conn).map_err(store_error);
            pool.idle.lock().push(conn);
            result
        })
        .await
        .map_err(|error| StoreError::Unavailable(format!("event log read task failed: {error}")))?
    }
}

/// Decodes a row selected with [`select_events!`].
pub(crate) fn recorded_event(row: &Row<'_>) -> rusqlite::Result<RecordedEvent> {
    let schema_version = row.get::<_, i64>(4)?;
    Ok(RecordedEvent {
        position: column_u64(row, 0)?,
        stream: row.get(1)?,
        stream_version: column_u64(row, 2)?,
        event_type: row.get(3)?,
        schema_version: u32::try_from(schema_version)
            .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(4, schema_version))?,
        data: row.get(5)?,
        recorded_at_ms: row.get(6)?,
    })
}

// ---------------------------------------------------------------------------------
// Connections and conversions.
// ---------------------------------------------------------------------------------

/// A read-write connection to `path` (created if needed) in WAL mode, with the
/// settings every connection needs.
fn open_wal_connection(path: &Path) -> rusqlite::Result<Connection> {
    crate::ensure_private_file(path).map_err(|e| {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!("creating {}: {e}", path.display())),
        )
    })?;
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    stable_plans(&conn)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!(
                "cannot switch {} to WAL (got {mode})",
                path.display()
            )),
        ));
    }
    Ok(conn)
}

fn open_writer_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = open_wal_connection(path)?;
    // FULL: every commit fsyncs the WAL, so a committed batch survives power loss.
    // The checkpoint runs on this (the writer's) connection after a commit once the
    // WAL holds `WAL_AUTOCHECKPOINT_PAGES`; a larger WAL than SQLite's default (1000
    // pages) lets one checkpoint copy each hot index page once instead of many times.
    conn.execute_batch(&format!(
        "PRAGMA synchronous = FULL;
         PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES};
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -{WRITER_CACHE_KIB};"
    ))?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    match version {
        0 => conn.execute_batch(&format!(
            "BEGIN; {} {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;",
            events_table!("events")
        ))?,
        // Version 1 → 3: rebuild `events` without the unique index; the stream index
        // file starts empty and is filled before the log opens.
        1 => conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;
             {}
             INSERT INTO events_v2 SELECT position, stream, stream_version, event_type,
                 schema_version, data, recorded_at_ms FROM events;
             DROP TABLE events;
             ALTER TABLE events_v2 RENAME TO events;
             {SCHEMA}
             PRAGMA user_version = {SCHEMA_VERSION};
             COMMIT;",
            events_table!("events_v2")
        ))?,
        // Version 2 → 3: the stream index moves to its own file, which is filled
        // before the log opens.
        2 => conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;
             DROP TABLE IF EXISTS stream_index;
             DROP TABLE IF EXISTS index_state;
             PRAGMA user_version = {SCHEMA_VERSION};
             COMMIT;"
        ))?,
        SCHEMA_VERSION => {}
        other => {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                Some(format!("unknown event log schema version {other}")),
            ));
        }
    }
    add_key_times(&conn)?;
    Ok(conn)
}

/// Adds `idempotency_keys.recorded_at_ms` to a log written before keys expired (an
/// additive change that needs no new schema version: older code ignores the column).
/// Keys already there count as recorded now, so they are kept for a full expiry.
fn add_key_times(conn: &Connection) -> rusqlite::Result<()> {
    let has_times: i64 = conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('idempotency_keys') \
         WHERE name = 'recorded_at_ms'",
        [],
        |row| row.get(0),
    )?;
    if has_times == 0 {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;
             ALTER TABLE idempotency_keys ADD COLUMN recorded_at_ms INTEGER NOT NULL DEFAULT 0;
             UPDATE idempotency_keys SET recorded_at_ms = {};
             COMMIT;",
            now_ms()
        ))?;
    }
    Ok(())
}

/// Deletes idempotency keys older than the expiry (once, when the log opens: the
/// writer ignores expired keys, so they need not go at once).
fn delete_expired_keys(conn: &Connection, idempotency_expiry_ms: i64) -> rusqlite::Result<()> {
    let deleted = conn.execute(
        "DELETE FROM idempotency_keys WHERE recorded_at_ms <= ?1",
        params![now_ms().saturating_sub(idempotency_expiry_ms)],
    )?;
    if deleted > 0 {
        tracing::info!(deleted, "deleted expired idempotency keys");
    }
    Ok(())
}

pub(crate) fn open_reader_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    stable_plans(&conn)?;
    Ok(conn)
}

/// Plans must not depend on bound values, or SQLite re-prepares cached statements
/// whenever the values change.
fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

fn read_indexed_to(conn: &Connection) -> rusqlite::Result<Position> {
    let indexed_to: i64 =
        conn.query_row("SELECT indexed_to FROM index_state", [], |row| row.get(0))?;
    Ok(indexed_to.max(0) as u64)
}

fn read_head(conn: &Connection) -> rusqlite::Result<Position> {
    let head: Option<i64> =
        conn.query_row("SELECT MAX(position) FROM events", [], |row| row.get(0))?;
    Ok(head.map_or(0, |head| head.max(0) as u64))
}

/// An unsigned integer column that must not be negative.
pub(crate) fn column_u64(row: &Row<'_>, index: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(index)?;
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, value))
}

/// Positions, versions and limits as SQLite integers, saturating far beyond any
/// value a log reaches.
fn to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Maps SQLite errors to the backend-neutral store error: damaged or undecodable data
/// is `Corrupt`, everything else (I/O, full disk, locks) `Unavailable`.
pub(crate) fn store_error(error: rusqlite::Error) -> StoreError {
    let corrupt = match &error {
        rusqlite::Error::SqliteFailure(failure, _) => matches!(
            failure.code,
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase
        ),
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..) => true,
        _ => false,
    };
    if corrupt {
        StoreError::Corrupt(error.to_string())
    } else {
        StoreError::Unavailable(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_gathers_only_after_a_group_of_several_requests() {
        let start = Instant::now();
        assert_eq!(gather_until(start, 0), None, "the first group");
        assert_eq!(gather_until(start, 1), None, "after a lone request");
        assert_eq!(gather_until(start, 2), Some(start + GROUP_GATHER));
        assert_eq!(gather_until(start, 500), Some(start + GROUP_GATHER));
    }
}
