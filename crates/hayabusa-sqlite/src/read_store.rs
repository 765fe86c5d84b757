//! The read store on SQLite: the embedded adapter of the read store port.
//!
//! One database file holds the read models (accounts, rooms, members with their read
//! cursors, messages, mentions, sync ops, membership intervals, tasks, files,
//! contacts, contact requests, invitation links and join requests), the projector's
//! checkpoint and the fetch cursors.
//!
//! - **Transactions.** [`apply`](ReadModelWriter::apply) runs one `IMMEDIATE`
//!   transaction that checks the stored checkpoint, applies the changes and stores the
//!   new checkpoint, so a batch and its checkpoint commit together or not at all.
//! - **Durability.** WAL with `synchronous=NORMAL`: a power loss may drop the last
//!   commits, but never tears one, and since the checkpoint lives in the same
//!   transaction as the models the projector simply resumes from an older position.
//!   The read models can always be rebuilt from the event log.
//! - **Connections.** One writer connection behind a mutex (apply, reset, fetch
//!   cursors) and a small pool of reader connections for queries; WAL lets readers
//!   run while the writer commits. All SQLite work runs in
//!   [`tokio::task::spawn_blocking`].
//! - **Unread counts** are derived at query time: for each membership, the messages
//!   with `seq > read_seq` not written by the viewer, found through an index on
//!   `messages (room_id, seq, account_id, to_all)`, so counting costs O(unread) and
//!   posting a message writes no row per member. A mention is one row per mentioned
//!   account in `mentions (room_id, seq, account_id)`, plus `to_all` on the message.
//! - **Sync ops** are stored once per event in `sync_ops (position, idx)`, never once
//!   per member. [`ops_for`](ReadModelQueries::ops_for) starts from the account's
//!   `membership_intervals` and reads, per interval, an index range of the room's ops
//!   (`sync_ops_by_room (room_id, position, target)`) clipped to the interval and the
//!   requested bounds; account-level ops come from a partial index on
//!   `(target, position)` over the rows without a room. No query scans all ops.
//! - **Task and file counts** of a room view are derived at query time too: the open
//!   tasks assigned to the viewer and all tasks of the room are counted in the index
//!   `tasks_by_room (room_id, account_id, status)`, the files in `files_by_room
//!   (room_id)`. Every per-room or per-account query of tasks, files, contacts,
//!   contact requests, links and join requests reads an index range; none scans a
//!   table.
//! - **Schema.** Created on open; its version is `PRAGMA user_version`. A file with a
//!   newer version than this code knows is refused; an older one gets the tables it
//!   lacks (the schema is all `CREATE … IF NOT EXISTS`), and its `messages` table, which
//!   had a primary key up to version 3, is copied into one without (see
//!   [`MESSAGES_TABLE`]).
//!
//! Ids and sequence numbers are `u64` in Rust and signed 64-bit integers in SQLite;
//! a value above `i64::MAX` is refused rather than wrapped.

use async_trait::async_trait;
use hayabusa_domain::{
    AccountId, FileId, MessageId, OrganizationId, RequestId, Role, RoomId, RoomType, TaskId,
};
use hayabusa_store::canonical::{CanonicalDump, status_of};
use hayabusa_store::{
    AccountRow, Change, ContactRequestRow, ContactRequestView, ContactView, FileRow, FileView,
    JoinRequestView, LinkRow, MemberView, MessageRow, MessageView, OpRecord, Position,
    ReadModelQueries, ReadModelWriter, RoomRow, RoomView, StatusCounts, StoreError, TaskFilter,
    TaskRow, TaskView,
};
use parking_lot::Mutex;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Row, ToSql, Transaction,
    TransactionBehavior, params,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The schema version this code writes and reads (`PRAGMA user_version`).
///
/// 2 added `sync_ops` and `membership_intervals`; 3 added `tasks`, `files`, `contacts`,
/// `contact_requests`, `links` and `join_requests`; 4 dropped the primary key of
/// `messages` (see [`MESSAGES_TABLE`]); 6 added `leases`; 7 added
/// `consumer_checkpoints`. An older file gets the tables it lacks on open, and its
/// `messages` are copied into the new table.
const SCHEMA_VERSION: i64 = 7;

/// Reader connections kept open between queries.
const MAX_IDLE_READERS: usize = 6;

/// Batches of at least this many changes are freed on another thread after they are
/// applied (see [`SqliteReadStore::apply`](ReadModelWriter::apply)).
const DROP_ELSEWHERE: usize = 256;

/// How long a connection waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The whole schema, idempotent.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS snapshots (
    stream TEXT PRIMARY KEY,
    revision INTEGER NOT NULL,
    format INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    position INTEGER NOT NULL
);
INSERT OR IGNORE INTO checkpoint (id, position) VALUES (0, 0);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    fence INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS consumer_checkpoints (
    consumer TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS accounts (
    account_id INTEGER PRIMARY KEY,
    my_room_id INTEGER NOT NULL,
    organization_id INTEGER NOT NULL,
    organization_name TEXT NOT NULL,
    name TEXT NOT NULL,
    mail TEXT NOT NULL,
    department TEXT NOT NULL,
    title TEXT NOT NULL,
    admin INTEGER NOT NULL,
    token_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS accounts_by_token_hash ON accounts (token_hash);

CREATE TABLE IF NOT EXISTS rooms (
    room_id INTEGER PRIMARY KEY,
    room_type TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    icon_preset TEXT NOT NULL,
    last_seq INTEGER NOT NULL,
    message_num INTEGER NOT NULL,
    last_update_time INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS members (
    room_id INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    role TEXT NOT NULL,
    read_seq INTEGER NOT NULL,
    PRIMARY KEY (room_id, account_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_by_account ON members (account_id, room_id);

CREATE TABLE IF NOT EXISTS messages (
    room_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    to_all INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    send_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_by_id ON messages (room_id, message_id);
CREATE INDEX IF NOT EXISTS messages_for_unread ON messages (room_id, seq, account_id, to_all);

CREATE TABLE IF NOT EXISTS mentions (
    room_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    PRIMARY KEY (room_id, seq, account_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS fetch_cursors (
    room_id INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (room_id, account_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS sync_ops (
    position INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    room_id INTEGER,
    target INTEGER,
    op_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (position, idx)
);
CREATE INDEX IF NOT EXISTS sync_ops_by_room ON sync_ops (room_id, position, target);
CREATE INDEX IF NOT EXISTS sync_ops_by_target ON sync_ops (target, position)
    WHERE room_id IS NULL;

CREATE TABLE IF NOT EXISTS membership_intervals (
    account_id INTEGER NOT NULL,
    room_id INTEGER NOT NULL,
    from_position INTEGER NOT NULL,
    to_position INTEGER,
    PRIMARY KEY (account_id, room_id, from_position)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS tasks (
    task_id INTEGER PRIMARY KEY,
    room_id INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    assigned_by INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    body TEXT NOT NULL,
    limit_time INTEGER NOT NULL,
    limit_type TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_room ON tasks (room_id, account_id, status);

CREATE TABLE IF NOT EXISTS files (
    file_id INTEGER PRIMARY KEY,
    room_id INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    filename TEXT NOT NULL,
    filesize INTEGER NOT NULL,
    upload_time INTEGER NOT NULL,
    blob_key TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS files_by_room ON files (room_id);

CREATE TABLE IF NOT EXISTS contacts (
    account_id INTEGER NOT NULL,
    contact_id INTEGER NOT NULL,
    room_id INTEGER NOT NULL,
    PRIMARY KEY (account_id, contact_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS contact_requests (
    request_id INTEGER PRIMARY KEY,
    from_account_id INTEGER NOT NULL,
    to_account_id INTEGER NOT NULL,
    message TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS contact_requests_by_recipient ON contact_requests (to_account_id);

CREATE TABLE IF NOT EXISTS links (
    room_id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    need_acceptance INTEGER NOT NULL,
    description TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS join_requests (
    room_id INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (room_id, account_id)
) WITHOUT ROWID;
";

/// The columns of `messages`, as [`SCHEMA`] creates the table.
///
/// The table has no primary key: `(room_id, seq)` is unique because the writer keeps
/// it so ([`BatchWriter`] inserts a message without looking only when its seq is above
/// every seq of its room, and otherwise replaces what holds the seq or the id), and
/// every lookup by `(room_id, seq)` reads the prefix of `messages_for_unread`. A key
/// would be one more B-tree to insert into and check per message (schema 3 and
/// before had one; [`migrate`] copies such a table into this one).
const MESSAGES_TABLE: &str = "room_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    to_all INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    send_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    body TEXT NOT NULL";

/// Columns of an account row, read by [`account_from_row`].
const ACCOUNT_COLUMNS: &str = "a.account_id, a.my_room_id, a.organization_id, \
    a.organization_name, a.name, a.mail, a.department, a.title, a.admin, a.token_hash, \
    a.created_at";
/// How many columns [`ACCOUNT_COLUMNS`] has.
const ACCOUNT_COLUMN_COUNT: usize = 11;

/// Columns of a room row, read by [`room_from_row`].
const ROOM_COLUMNS: &str = "r.room_id, r.room_type, r.name, r.description, r.icon_preset, \
    r.last_seq, r.message_num, r.last_update_time";
/// How many columns [`ROOM_COLUMNS`] has.
const ROOM_COLUMN_COUNT: usize = 8;

/// Columns of a message with its author's name, read by [`message_from_row`]; the
/// query joins `accounts a` on the author.
const MESSAGE_COLUMNS: &str = "m.room_id, m.message_id, m.seq, m.account_id, m.body, \
    m.send_time, m.update_time, m.to_all, COALESCE(a.name, '')";

/// Rooms of member `?1` with role and derived counts; a condition on `mb` may follow.
///
/// Unread and mention counts come from the messages joined after the read cursor; the
/// task and file counts are scalar subqueries on index ranges of the room.
const ROOM_VIEWS: &str = "
SELECT r.room_id, r.room_type, r.name, r.description, r.icon_preset,
       r.last_seq, r.message_num, r.last_update_time, mb.role,
       COUNT(m.seq),
       COALESCE(SUM(m.to_all OR EXISTS (
           SELECT 1 FROM mentions x
           WHERE x.room_id = m.room_id AND x.seq = m.seq AND x.account_id = mb.account_id
       )), 0),
       (SELECT COUNT(*) FROM tasks mt
        WHERE mt.room_id = mb.room_id AND mt.account_id = mb.account_id
          AND mt.status = 'open'),
       (SELECT COUNT(*) FROM tasks t WHERE t.room_id = mb.room_id),
       (SELECT COUNT(*) FROM files f WHERE f.room_id = mb.room_id)
FROM members mb
JOIN rooms r ON r.room_id = mb.room_id
LEFT JOIN messages m
       ON m.room_id = mb.room_id AND m.seq > mb.read_seq AND m.account_id <> mb.account_id
WHERE mb.account_id = ?1";

/// Columns of a sync op, read by [`op_from_row`].
const OP_COLUMNS: &str = "o.position, o.idx, o.room_id, o.target, o.op_type, o.payload";

/// The sync ops member `?1` sees with `?2 < position <= ?3`, by (position, idx), at
/// most `?4` of them.
///
/// The first arm walks the account's membership intervals and reads each room's ops
/// through `sync_ops_by_room`, bounded by the interval clipped to `(?2, ?3]`; `UNION`
/// returns an op shared by overlapping intervals once. The second arm reads the
/// account-level ops targeted at `?1` through the partial index `sync_ops_by_target`.
const OPS_FOR: &str = "
SELECT o.position, o.idx, o.room_id, o.target, o.op_type, o.payload
FROM membership_intervals i
JOIN sync_ops o
  ON o.room_id = i.room_id
 AND o.position > MAX(?2, i.from_position - 1)
 AND o.position <= MIN(?3, COALESCE(i.to_position, ?3))
WHERE i.account_id = ?1 AND (o.target IS NULL OR o.target = ?1)
UNION
SELECT o.position, o.idx, o.room_id, o.target, o.op_type, o.payload
FROM sync_ops o
WHERE o.room_id IS NULL AND o.target = ?1 AND o.position > ?2 AND o.position <= ?3
ORDER BY 1, 2
LIMIT ?4";

/// Columns of a task view, read by [`task_view_from_row`]; the query joins the room
/// as `r` and the assignee and assigner accounts as `a` and `b`.
const TASK_VIEW_COLUMNS: &str = "t.task_id, t.room_id, t.account_id, t.assigned_by, \
    t.message_id, t.body, t.limit_time, t.limit_type, t.status, COALESCE(r.name, ''), \
    COALESCE(r.icon_preset, ''), COALESCE(a.name, ''), COALESCE(b.name, '')";

/// The joins [`TASK_VIEW_COLUMNS`] reads from, after `tasks t`.
const TASK_VIEW_JOINS: &str = "LEFT JOIN rooms r ON r.room_id = t.room_id
LEFT JOIN accounts a ON a.account_id = t.account_id
LEFT JOIN accounts b ON b.account_id = t.assigned_by";

/// Tasks of room `?1` with assignee `?2`, assigner `?3` and status `?4` (each NULL =
/// any), by task id, at most `?5`: an index range of `tasks_by_room`.
fn tasks_of_room_sql() -> String {
    format!(
        "SELECT {TASK_VIEW_COLUMNS} FROM tasks t
{TASK_VIEW_JOINS}
WHERE t.room_id = ?1
  AND (?2 IS NULL OR t.account_id = ?2)
  AND (?3 IS NULL OR t.assigned_by = ?3)
  AND (?4 IS NULL OR t.status = ?4)
ORDER BY t.task_id
LIMIT ?5"
    )
}

/// Task `?2` if it is in room `?1`.
fn task_sql() -> String {
    format!(
        "SELECT {TASK_VIEW_COLUMNS} FROM tasks t
{TASK_VIEW_JOINS}
WHERE t.task_id = ?2 AND t.room_id = ?1"
    )
}

/// Tasks assigned to `?1` in the rooms of `rooms_of(?1)` (membership and room row),
/// with assigner `?2` and status `?3` (NULL = any), by task id, at most `?4`. Walks the
/// account's memberships and reads, per room, the index range of its tasks.
fn tasks_of_account_sql() -> String {
    format!(
        "SELECT {TASK_VIEW_COLUMNS} FROM members mb
JOIN rooms r ON r.room_id = mb.room_id
JOIN tasks t ON t.room_id = mb.room_id AND t.account_id = mb.account_id
LEFT JOIN accounts a ON a.account_id = t.account_id
LEFT JOIN accounts b ON b.account_id = t.assigned_by
WHERE mb.account_id = ?1
  AND (?2 IS NULL OR t.assigned_by = ?2)
  AND (?3 IS NULL OR t.status = ?3)
ORDER BY t.task_id
LIMIT ?4"
    )
}

/// Columns of a file with its uploader's name, read by [`file_view_from_row`]; the
/// query joins `accounts a` on the uploader.
const FILE_VIEW_COLUMNS: &str = "f.file_id, f.room_id, f.account_id, f.message_id, \
    f.filename, f.filesize, f.upload_time, f.blob_key, COALESCE(a.name, '')";

/// Files of room `?1` (of uploader `?2`, NULL = any), by file id, at most `?3`.
fn files_of_room_sql() -> String {
    format!(
        "SELECT {FILE_VIEW_COLUMNS} FROM files f
LEFT JOIN accounts a ON a.account_id = f.account_id
WHERE f.room_id = ?1 AND (?2 IS NULL OR f.account_id = ?2)
ORDER BY f.file_id
LIMIT ?3"
    )
}

/// File `?2` if it is in room `?1`.
fn file_sql() -> String {
    format!(
        "SELECT {FILE_VIEW_COLUMNS} FROM files f
LEFT JOIN accounts a ON a.account_id = f.account_id
WHERE f.file_id = ?2 AND f.room_id = ?1"
    )
}

/// Contacts of `?1` with a known account row, by contact id.
fn contacts_sql() -> String {
    format!(
        "SELECT {ACCOUNT_COLUMNS}, c.room_id FROM contacts c
JOIN accounts a ON a.account_id = c.contact_id
WHERE c.account_id = ?1
ORDER BY c.contact_id"
    )
}

/// Columns of a contact request, read by [`contact_request_from_row`].
const CONTACT_REQUEST_COLUMNS: &str =
    "q.request_id, q.from_account_id, q.to_account_id, q.message, q.at";
/// How many columns [`CONTACT_REQUEST_COLUMNS`] has.
const CONTACT_REQUEST_COLUMN_COUNT: usize = 5;

/// Pending requests to `?1` from a known account, by request id.
fn incoming_requests_sql() -> String {
    format!(
        "SELECT {CONTACT_REQUEST_COLUMNS}, {ACCOUNT_COLUMNS} FROM contact_requests q
JOIN accounts a ON a.account_id = q.from_account_id
WHERE q.to_account_id = ?1
ORDER BY q.request_id"
    )
}

/// Request `?1`.
fn contact_request_sql() -> String {
    format!("SELECT {CONTACT_REQUEST_COLUMNS} FROM contact_requests q WHERE q.request_id = ?1")
}

/// Columns of a link, read by [`link_from_row`].
const LINK_COLUMNS: &str = "l.room_id, l.code, l.need_acceptance, l.description";

/// The link of room `?1`.
fn link_of_room_sql() -> String {
    format!("SELECT {LINK_COLUMNS} FROM links l WHERE l.room_id = ?1")
}

/// The link with code `?1` (codes are unique).
fn link_by_code_sql() -> String {
    format!("SELECT {LINK_COLUMNS} FROM links l WHERE l.code = ?1")
}

/// Pending join requests of room `?1` from known accounts, by account id.
fn join_requests_sql() -> String {
    format!(
        "SELECT {ACCOUNT_COLUMNS}, j.at FROM join_requests j
JOIN accounts a ON a.account_id = j.account_id
WHERE j.room_id = ?1
ORDER BY j.account_id"
    )
}

/// A read store in one SQLite file. Cheap to clone; clones share the connections.
#[derive(Clone, Debug)]
pub struct SqliteReadStore {
    inner: Arc<Inner>,
    /// At most this many queries run at once, each on a pooled connection: opening a
    /// connection per query under load would cost far more than waiting for one.
    reader_permits: Arc<tokio::sync::Semaphore>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    idle_readers: Mutex<Vec<Connection>>,
}

impl SqliteReadStore {
    /// Opens (or creates) the read store at `path`, creating or checking the schema.
    ///
    /// Blocks while it opens the file: call it at startup or inside
    /// `spawn_blocking`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        crate::ensure_private_file(path)
            .map_err(|e| StoreError::Unavailable(format!("creating {}: {e}", path.display())))?;
        let writer = Connection::open(path).map_err(store_error)?;
        configure(&writer).map_err(store_error)?;
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(store_error)?;
        writer
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(store_error)?;
        // The projector rewrites the same index pages batch after batch: keep them
        // cached (64 MiB).
        writer
            .pragma_update(None, "cache_size", -65_536)
            .map_err(store_error)?;
        // A multi-row insert keeps a statement journal (the pages it changes, to undo
        // it alone if it fails). SQLite spills one beyond 64 KiB to a temporary file,
        // which with 64-row inserts meant a write system call per journaled page, as
        // many as the WAL got: keep them in memory (they are freed with the statement).
        writer
            .pragma_update(None, "temp_store", "MEMORY")
            .map_err(store_error)?;
        migrate(&writer)?;
        tracing::debug!(path = %path.display(), schema_version = SCHEMA_VERSION, "read store opened");
        Ok(SqliteReadStore {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer: Mutex::new(writer),
                idle_readers: Mutex::new(Vec::new()),
            }),
            reader_permits: Arc::new(tokio::sync::Semaphore::new(MAX_IDLE_READERS)),
        })
    }

    /// Runs `work` on the writer connection in a blocking task.
    async fn with_writer<T, W>(&self, work: W) -> Result<T, StoreError>
    where
        T: Send + 'static,
        W: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        run_blocking(move || {
            let mut writer = inner.writer.lock();
            work(&mut writer).map_err(store_error)
        })
        .await
    }

    /// Runs `work` on a reader connection from the pool in a blocking task.
    async fn with_reader<T, W>(&self, work: W) -> Result<T, StoreError>
    where
        T: Send + 'static,
        W: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let _permit = self
            .reader_permits
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("the reader pool is closed".into()))?;
        let inner = Arc::clone(&self.inner);
        run_blocking(move || {
            let mut reader = inner.reader().map_err(store_error)?;
            let result = work(&mut reader).map_err(store_error);
            inner.give_back(reader);
            result
        })
        .await
    }
}

impl Inner {
    /// An idle reader connection, or a new one.
    fn reader(&self) -> rusqlite::Result<Connection> {
        if let Some(reader) = self.idle_readers.lock().pop() {
            return Ok(reader);
        }
        let reader = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure(&reader)?;
        reader.pragma_update(None, "query_only", true)?;
        Ok(reader)
    }

    /// Keeps a reader for the next query unless enough are idle.
    fn give_back(&self, reader: Connection) {
        let mut idle = self.idle_readers.lock();
        if idle.len() < MAX_IDLE_READERS {
            idle.push(reader);
        }
    }
}

/// Settings every connection needs.
fn configure(connection: &Connection) -> rusqlite::Result<()> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.set_prepared_statement_cache_capacity(128);
    // Query planner stability: plans must not depend on bound values, or SQLite
    // re-prepares a cached statement whenever they change (measured: most of the CPU
    // of the sync gateway went into re-preparing the ops query per account).
    connection.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// Creates the schema, or checks that the file's schema is one this code knows.
fn migrate(connection: &Connection) -> Result<(), StoreError> {
    let version: i64 = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(store_error)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "read store schema version {version} is newer than the supported {SCHEMA_VERSION}"
        )));
    }
    // Schema 3 and before: `messages` had a primary key, whose index SQLite names
    // sqlite_autoindex_messages_1. Copy the rows into a table without one (its
    // indexes are dropped with the old table and made again by the schema).
    let keyed_messages: bool = connection
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema
                            WHERE type = 'index' AND name = 'sqlite_autoindex_messages_1')",
            [],
            |row| row.get(0),
        )
        .map_err(store_error)?;
    let copy_messages = if keyed_messages {
        format!(
            "CREATE TABLE messages_v4 ({MESSAGES_TABLE});
             INSERT INTO messages_v4 (room_id, seq, account_id, to_all, message_id, send_time,
                 update_time, body)
             SELECT room_id, seq, account_id, to_all, message_id, send_time, update_time, body
             FROM messages ORDER BY room_id, seq;
             DROP TABLE messages;
             ALTER TABLE messages_v4 RENAME TO messages;"
        )
    } else {
        String::new()
    };
    connection
        .execute_batch(&format!(
            "BEGIN IMMEDIATE; {copy_messages} {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION};
             COMMIT;"
        ))
        .map_err(store_error)
}

/// Runs blocking SQLite work off the async runtime.
async fn run_blocking<T, W>(work: W) -> Result<T, StoreError>
where
    T: Send + 'static,
    W: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| StoreError::Unavailable(format!("read store task failed: {error}")))?
}

/// Maps a SQLite error to the backend-neutral store error: unreadable data is
/// `Corrupt`, everything else (busy, I/O, full disk, …) `Unavailable`.
fn store_error(error: rusqlite::Error) -> StoreError {
    let corrupt = match &error {
        rusqlite::Error::SqliteFailure(failure, _) => matches!(
            failure.code,
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase
        ),
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::ToSqlConversionFailure(..) => true,
        _ => false,
    };
    if corrupt {
        StoreError::Corrupt(format!("read store: {error}"))
    } else {
        StoreError::Unavailable(format!("read store: {error}"))
    }
}

// ---------------------------------------------------------------------------------
// Conversions between Rust values and SQLite columns
// ---------------------------------------------------------------------------------

/// A `u64` stored as a SQLite integer: values above `i64::MAX` are refused both ways.
#[derive(Clone, Copy, Debug)]
struct Int(u64);

impl ToSql for Int {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        i64::try_from(self.0)
            .map(ToSqlOutput::from)
            .map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))
    }
}

impl FromSql for Int {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let signed = i64::column_result(value)?;
        u64::try_from(signed)
            .map(Int)
            .map_err(|_| FromSqlError::OutOfRange(signed))
    }
}

/// A `usize` limit as a SQLite integer (saturating: a limit beyond `i64::MAX` is no
/// limit anyway).
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn get_u64(row: &Row<'_>, index: usize) -> rusqlite::Result<u64> {
    Ok(row.get::<_, Int>(index)?.0)
}

/// A name stored as text that must be one of a fixed set.
fn parse_name<T: Copy>(
    row: &Row<'_>,
    index: usize,
    what: &str,
    values: &[T],
    name_of: fn(&T) -> &'static str,
) -> rusqlite::Result<T> {
    let name: String = row.get(index)?;
    values
        .iter()
        .find(|value| name_of(value) == name)
        .copied()
        .ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                index,
                rusqlite::types::Type::Text,
                format!("unknown {what} {name:?}").into(),
            )
        })
}

fn role_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Role> {
    parse_name(
        row,
        index,
        "role",
        &[Role::Admin, Role::Member, Role::Readonly],
        Role::as_str,
    )
}

fn room_type_at(row: &Row<'_>, index: usize) -> rusqlite::Result<RoomType> {
    parse_name(
        row,
        index,
        "room type",
        &[RoomType::My, RoomType::Direct, RoomType::Group],
        RoomType::as_str,
    )
}

/// Reads [`ACCOUNT_COLUMNS`] starting at column `at`.
fn account_from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<AccountRow> {
    Ok(AccountRow {
        account_id: AccountId(get_u64(row, at)?),
        my_room_id: RoomId(get_u64(row, at + 1)?),
        organization_id: OrganizationId(get_u64(row, at + 2)?),
        organization_name: row.get(at + 3)?,
        name: row.get(at + 4)?,
        mail: row.get(at + 5)?,
        department: row.get(at + 6)?,
        title: row.get(at + 7)?,
        admin: row.get(at + 8)?,
        token_hash: row.get(at + 9)?,
        created_at: row.get(at + 10)?,
    })
}

/// Reads [`ROOM_COLUMNS`] starting at column `at`.
fn room_from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<RoomRow> {
    Ok(RoomRow {
        room_id: RoomId(get_u64(row, at)?),
        room_type: room_type_at(row, at + 1)?,
        name: row.get(at + 2)?,
        description: row.get(at + 3)?,
        icon_preset: row.get(at + 4)?,
        last_seq: get_u64(row, at + 5)?,
        message_num: get_u64(row, at + 6)?,
        last_update_time: row.get(at + 7)?,
    })
}

/// Reads [`MESSAGE_COLUMNS`]; mentions are filled in by [`attach_mentions`].
fn message_from_row(row: &Row<'_>) -> rusqlite::Result<MessageView> {
    Ok(MessageView {
        message: MessageRow {
            room_id: RoomId(get_u64(row, 0)?),
            message_id: MessageId(get_u64(row, 1)?),
            seq: get_u64(row, 2)?,
            account_id: AccountId(get_u64(row, 3)?),
            body: row.get(4)?,
            send_time: row.get(5)?,
            update_time: row.get(6)?,
            mentions: Vec::new(),
            to_all: row.get(7)?,
        },
        author_name: row.get(8)?,
    })
}

/// Reads [`OP_COLUMNS`].
fn op_from_row(row: &Row<'_>) -> rusqlite::Result<OpRecord> {
    Ok(OpRecord {
        position: get_u64(row, 0)?,
        index: row.get(1)?,
        room_id: row.get::<_, Option<Int>>(2)?.map(|id| RoomId(id.0)),
        target: row.get::<_, Option<Int>>(3)?.map(|id| AccountId(id.0)),
        op_type: row.get(4)?,
        payload: row.get(5)?,
    })
}

/// Reads a row of [`ROOM_VIEWS`].
fn room_view_from_row(row: &Row<'_>) -> rusqlite::Result<RoomView> {
    Ok(RoomView {
        room: room_from_row(row, 0)?,
        role: role_at(row, ROOM_COLUMN_COUNT)?,
        unread_num: get_u64(row, ROOM_COLUMN_COUNT + 1)?,
        mention_num: get_u64(row, ROOM_COLUMN_COUNT + 2)?,
        mytask_num: get_u64(row, ROOM_COLUMN_COUNT + 3)?,
        task_num: get_u64(row, ROOM_COLUMN_COUNT + 4)?,
        file_num: get_u64(row, ROOM_COLUMN_COUNT + 5)?,
    })
}

/// Reads [`TASK_VIEW_COLUMNS`].
fn task_view_from_row(row: &Row<'_>) -> rusqlite::Result<TaskView> {
    Ok(TaskView {
        task: TaskRow {
            task_id: TaskId(get_u64(row, 0)?),
            room_id: RoomId(get_u64(row, 1)?),
            account_id: AccountId(get_u64(row, 2)?),
            assigned_by: AccountId(get_u64(row, 3)?),
            message_id: MessageId(get_u64(row, 4)?),
            body: row.get(5)?,
            limit_time: row.get(6)?,
            limit_type: row.get(7)?,
            status: row.get(8)?,
        },
        room_name: row.get(9)?,
        room_icon_preset: row.get(10)?,
        account_name: row.get(11)?,
        assigned_by_name: row.get(12)?,
    })
}

/// Reads [`FILE_VIEW_COLUMNS`].
fn file_view_from_row(row: &Row<'_>) -> rusqlite::Result<FileView> {
    Ok(FileView {
        file: FileRow {
            file_id: FileId(get_u64(row, 0)?),
            room_id: RoomId(get_u64(row, 1)?),
            account_id: AccountId(get_u64(row, 2)?),
            message_id: MessageId(get_u64(row, 3)?),
            filename: row.get(4)?,
            filesize: get_u64(row, 5)?,
            upload_time: row.get(6)?,
            blob_key: row.get(7)?,
        },
        account_name: row.get(8)?,
    })
}

/// Reads [`CONTACT_REQUEST_COLUMNS`].
fn contact_request_from_row(row: &Row<'_>) -> rusqlite::Result<ContactRequestRow> {
    Ok(ContactRequestRow {
        request_id: RequestId(get_u64(row, 0)?),
        from: AccountId(get_u64(row, 1)?),
        to: AccountId(get_u64(row, 2)?),
        message: row.get(3)?,
        at: row.get(4)?,
    })
}

/// Reads [`LINK_COLUMNS`].
fn link_from_row(row: &Row<'_>) -> rusqlite::Result<LinkRow> {
    Ok(LinkRow {
        room_id: RoomId(get_u64(row, 0)?),
        code: row.get(1)?,
        need_acceptance: row.get(2)?,
        description: row.get(3)?,
    })
}

// ---------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------

fn stored_checkpoint(connection: &Connection) -> rusqlite::Result<Position> {
    Ok(connection
        .prepare_cached("SELECT position FROM checkpoint WHERE id = 0")?
        .query_row([], |row| get_u64(row, 0))
        .optional()?
        .unwrap_or(0))
}

/// The outcome of [`apply_batch`] for a fenced batch whose fence is not the projector
/// lease's: the lease's fence (None: never held).
struct FencedOff(Option<u64>);

fn apply_batch(
    connection: &mut Connection,
    changes: &[Change],
    checkpoint: Position,
    fence: Option<u64>,
) -> rusqlite::Result<Result<(), FencedOff>> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(fence) = fence {
        let current =
            lease_row(&transaction, hayabusa_store::PROJECTOR_LEASE)?.map(|row| row.fence);
        if current != Some(fence) {
            return Ok(Err(FencedOff(current)));
        }
    }
    if checkpoint <= stored_checkpoint(&transaction)? {
        // Already applied: dropping the transaction rolls it back.
        return Ok(Ok(()));
    }
    let mut batch = BatchWriter::new(&transaction);
    for change in changes {
        batch.apply(change)?;
    }
    batch.flush()?;
    // Gives its statements back to the cache.
    drop(batch);
    transaction
        .prepare_cached("UPDATE checkpoint SET position = ?1 WHERE id = 0")?
        .execute(params![Int(checkpoint)])?;
    transaction.commit().map(Ok)
}

/// The stored row of lease `name`.
fn lease_row(
    connection: &Connection,
    name: &str,
) -> rusqlite::Result<Option<hayabusa_store::lease::LeaseRow>> {
    connection
        .prepare_cached("SELECT holder, fence, expires_at_ms FROM leases WHERE name = ?1")?
        .query_row(params![name], |row| {
            Ok(hayabusa_store::lease::LeaseRow {
                holder: row.get(0)?,
                fence: row.get::<_, Int>(1)?.0,
                expires_at_ms: row.get(2)?,
            })
        })
        .optional()
}

/// Stores lease `name`'s row.
fn put_lease(
    connection: &Connection,
    name: &str,
    row: &hayabusa_store::lease::LeaseRow,
) -> rusqlite::Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO leases (name, holder, fence, expires_at_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO UPDATE
             SET holder = excluded.holder, fence = excluded.fence,
                 expires_at_ms = excluded.expires_at_ms",
        )?
        .execute(params![name, row.holder, Int(row.fence), row.expires_at_ms])
        .map(|_| ())
}

/// What the messages inserted in a batch do to one room's counters, not yet written.
#[derive(Clone, Copy, Debug)]
struct RoomCounters {
    /// The highest seq inserted.
    last_seq: u64,
    /// How many messages were inserted (none replaced another).
    inserted: u64,
    /// The send time of the last one inserted.
    last_update_time: i64,
}

/// How many rows one multi-row `INSERT` takes: a run of rows is written in statements
/// of the largest of these sizes that fits, so a handful of statements (each prepared
/// once and cached) serve runs of any length.
const INSERT_CHUNKS: [usize; 5] = [256, 64, 16, 4, 1];

/// The columns of a message row, in the order [`bind_message`] binds them.
///
/// `OR IGNORE`: a row whose id is taken is skipped rather than failing the statement.
/// A multi-row statement that can fail must journal every page it changes to undo
/// itself; with 100 rooms interleaved that was a sixth of the writer's work.
const MESSAGE_INSERT: &str = "INSERT OR IGNORE INTO messages (room_id, seq, account_id, \
    to_all, message_id, send_time, update_time, body) VALUES ";
/// How many parameters [`bind_message`] binds.
const MESSAGE_PARAMETERS: usize = 8;

/// The columns of a sync op row, in the order [`bind_op`] binds them.
///
/// `OR IGNORE` for the same reason as [`MESSAGE_INSERT`]; a chunk that skipped a row
/// is redone row by row with [`OP_REPLACE`].
const OP_INSERT: &str =
    "INSERT OR IGNORE INTO sync_ops (position, idx, room_id, target, op_type, payload) VALUES ";
/// One sync op replacing the op at its position and index, if any.
const OP_REPLACE: &str =
    "INSERT OR REPLACE INTO sync_ops (position, idx, room_id, target, op_type, payload) VALUES ";
/// How many parameters [`bind_op`] binds.
const OP_PARAMETERS: usize = 6;

/// `prefix` followed by `rows` groups of `parameters` placeholders.
fn multi_row_sql(prefix: &str, parameters: usize, rows: usize) -> String {
    let group = format!("({})", vec!["?"; parameters].join(", "));
    format!("{prefix}{}", vec![group; rows].join(", "))
}

/// `rows` cut, front to back, into chunks of the sizes in [`INSERT_CHUNKS`], each
/// the largest that fits what is left.
fn insert_chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let size = INSERT_CHUNKS
            .into_iter()
            .find(|&size| size <= rows.len())
            .unwrap_or(1);
        let (chunk, rest) = rows.split_at(size);
        rows = rest;
        Some(chunk)
    })
}

/// The multi-row insert of `rows` rows (one of [`INSERT_CHUNKS`]) from `statements`,
/// prepared into it on first use.
fn chunk_statement<'s, 't>(
    transaction: &'t Transaction<'t>,
    statements: &'s mut [Option<rusqlite::CachedStatement<'t>>; INSERT_CHUNKS.len()],
    prefix: &str,
    parameters: usize,
    rows: usize,
) -> rusqlite::Result<&'s mut rusqlite::CachedStatement<'t>> {
    let index = INSERT_CHUNKS.iter().position(|&size| size == rows).ok_or(
        rusqlite::Error::InvalidParameterCount(rows, INSERT_CHUNKS[0]),
    )?;
    let slot = &mut statements[index];
    Ok(match slot {
        Some(statement) => statement,
        None => slot.insert(transaction.prepare_cached(&multi_row_sql(prefix, parameters, rows))?),
    })
}

/// Binds a message row from parameter `at` (1-based) on.
fn bind_message(
    statement: &mut rusqlite::Statement<'_>,
    at: usize,
    message: &MessageRow,
) -> rusqlite::Result<()> {
    statement.raw_bind_parameter(at, Int(message.room_id.0))?;
    statement.raw_bind_parameter(at + 1, Int(message.seq))?;
    statement.raw_bind_parameter(at + 2, Int(message.account_id.0))?;
    statement.raw_bind_parameter(at + 3, message.to_all)?;
    statement.raw_bind_parameter(at + 4, Int(message.message_id.0))?;
    statement.raw_bind_parameter(at + 5, message.send_time)?;
    statement.raw_bind_parameter(at + 6, message.update_time)?;
    statement.raw_bind_parameter(at + 7, &message.body)
}

/// Binds a sync op row from parameter `at` (1-based) on.
fn bind_op(
    statement: &mut rusqlite::Statement<'_>,
    at: usize,
    op: &OpRecord,
) -> rusqlite::Result<()> {
    statement.raw_bind_parameter(at, Int(op.position))?;
    statement.raw_bind_parameter(at + 1, op.index)?;
    statement.raw_bind_parameter(at + 2, op.room_id.map(|room| Int(room.0)))?;
    statement.raw_bind_parameter(at + 3, op.target.map(|target| Int(target.0)))?;
    statement.raw_bind_parameter(at + 4, &op.op_type)?;
    statement.raw_bind_parameter(at + 5, &op.payload)
}

/// Applies the changes of one batch inside its transaction.
///
/// Catch-up is mostly `message_posted`: a message insert, the author's read cursor and
/// one sync op each. Those three kinds of change are gathered rather than written one
/// statement each:
/// - message and op rows are inserted with multi-row `INSERT`s (see
///   [`INSERT_CHUNKS`]). A message is inserted without looking when its seq is above
///   every seq of its room (the highest is read once per room and batch, then kept up
///   to date) — how messages are posted — and its id is free, which the unique index
///   checks: `INSERT OR IGNORE` skips a message whose id is taken, and the skipped
///   ones then replace, in order, what holds their id. A message whose seq may be
///   taken replaces what holds its seq or id, as before. Ops likewise: a chunk that
///   skipped one is redone one `INSERT OR REPLACE` at a time. (A multi-row statement
///   that could fail instead would have to journal every page it changes.)
/// - the room counters of inserted messages add up per room (`last_seq` a maximum,
///   `message_num` a sum, `last_update_time` the last value) and the last read cursor
///   per membership wins, each written as one `UPDATE` per room or membership.
///
/// Everything gathered is written when the batch ends and before any other change,
/// which may read or write rooms and members (or messages): every change sees exactly
/// the rows it would have seen had each change been applied on its own, in order.
/// Gathered changes touch different tables (messages and mentions, sync ops, the
/// counters of rooms, the cursors of members), so writing them by table rather than
/// interleaved gives the same rows too.
struct BatchWriter<'t, 'c> {
    transaction: &'t Transaction<'t>,
    /// At least the highest seq of each room's messages (None: it has none), read when
    /// the batch first inserts into the room. Nothing but an insert adds a message, so
    /// after deletions this may be too high, which only sends an insert the long way.
    max_seqs: HashMap<RoomId, Option<u64>>,
    messages: Vec<&'c MessageRow>,
    ops: Vec<&'c OpRecord>,
    /// The multi-row inserts by chunk size (as in [`INSERT_CHUNKS`]), prepared on first
    /// use and kept for the batch rather than looked up in the cache per chunk.
    message_inserts: [Option<rusqlite::CachedStatement<'t>>; INSERT_CHUNKS.len()],
    op_inserts: [Option<rusqlite::CachedStatement<'t>>; INSERT_CHUNKS.len()],
    rooms: HashMap<RoomId, RoomCounters>,
    cursors: HashMap<(RoomId, AccountId), u64>,
}

impl<'t, 'c> BatchWriter<'t, 'c> {
    fn new(transaction: &'t Transaction<'t>) -> Self {
        BatchWriter {
            transaction,
            max_seqs: HashMap::new(),
            messages: Vec::new(),
            ops: Vec::new(),
            message_inserts: Default::default(),
            op_inserts: Default::default(),
            rooms: HashMap::new(),
            cursors: HashMap::new(),
        }
    }

    fn apply(&mut self, change: &'c Change) -> rusqlite::Result<()> {
        match change {
            Change::InsertMessage(message) => self.messages.push(message),
            Change::SetReadCursor {
                account_id,
                room_id,
                read_seq,
            } => {
                self.cursors.insert((*room_id, *account_id), *read_seq);
            }
            Change::RecordOps(ops) => self.ops.extend(ops),
            other => {
                self.flush()?;
                apply_change(self.transaction, other)?;
            }
        }
        Ok(())
    }

    /// Writes everything gathered.
    fn flush(&mut self) -> rusqlite::Result<()> {
        self.write_messages()?;
        self.write_ops()?;
        self.write_counters()
    }

    /// Inserts the gathered messages, in order.
    fn write_messages(&mut self) -> rusqlite::Result<()> {
        let messages = std::mem::take(&mut self.messages);
        for chunk in insert_chunks(&messages) {
            let size = chunk.len();
            if size == 1 || !self.seqs_are_new(chunk)? {
                // One message, or a seq that may be taken: one at a time.
                for message in chunk {
                    self.insert_message(message)?;
                }
                continue;
            }
            if self.insert_message_rows(chunk)? == size {
                for message in chunk {
                    self.inserted(message)?;
                }
                continue;
            }
            // Some ids were taken. The seqs were all new, so a message is in if and
            // only if its seq is; the others replace, in order, what holds their id
            // (the rows after them that are in hold neither their seq nor their id).
            for message in chunk {
                let present = self
                    .transaction
                    .prepare_cached("SELECT 1 FROM messages WHERE room_id = ?1 AND seq = ?2")?
                    .exists(params![Int(message.room_id.0), Int(message.seq)])?;
                if present {
                    self.inserted(message)?;
                } else {
                    self.insert_message(message)?;
                }
            }
        }
        Ok(())
    }

    /// The highest seq of a room's messages (or more, see [`Self::max_seqs`]).
    fn max_seq(&mut self, room_id: RoomId) -> rusqlite::Result<Option<u64>> {
        if let Some(&max) = self.max_seqs.get(&room_id) {
            return Ok(max);
        }
        let max = self
            .transaction
            .prepare_cached("SELECT MAX(seq) FROM messages WHERE room_id = ?1")?
            .query_row(params![Int(room_id.0)], |row| row.get::<_, Option<Int>>(0))?
            .map(|max| max.0);
        self.max_seqs.insert(room_id, max);
        Ok(max)
    }

    /// Whether each message's seq is above every seq of its room, the earlier messages
    /// of `messages` included: then no message holds it.
    fn seqs_are_new(&mut self, messages: &[&MessageRow]) -> rusqlite::Result<bool> {
        let mut earlier: Vec<(RoomId, u64)> = Vec::with_capacity(messages.len());
        for message in messages {
            let max = match earlier.iter().rfind(|(room, _)| *room == message.room_id) {
                Some(&(_, seq)) => Some(seq),
                None => self.max_seq(message.room_id)?,
            };
            if max.is_some_and(|max| message.seq <= max) {
                return Ok(false);
            }
            earlier.push((message.room_id, message.seq));
        }
        Ok(true)
    }

    /// Keeps [`Self::max_seqs`] up to date after a message is inserted.
    fn note_seq(&mut self, message: &MessageRow) {
        if let Some(max) = self.max_seqs.get_mut(&message.room_id) {
            *max = Some(max.map_or(message.seq, |max| max.max(message.seq)));
        }
    }

    /// Inserts message rows in one statement; false (and nothing inserted) if a
    /// message of the room has the id of one of them, or two of them share one. Their
    /// seqs must be free (there is no key on them to check).
    fn insert_message_rows(&mut self, messages: &[&MessageRow]) -> rusqlite::Result<usize> {
        let insert = chunk_statement(
            self.transaction,
            &mut self.message_inserts,
            MESSAGE_INSERT,
            MESSAGE_PARAMETERS,
            messages.len(),
        )?;
        for (row, message) in messages.iter().enumerate() {
            bind_message(insert, 1 + row * MESSAGE_PARAMETERS, message)?;
        }
        insert.raw_execute()
    }

    /// The mentions and deferred room counters of a message just inserted.
    fn inserted(&mut self, message: &MessageRow) -> rusqlite::Result<()> {
        self.note_seq(message);
        insert_mentions(
            self.transaction,
            message.room_id,
            message.seq,
            &message.mentions,
        )?;
        self.rooms
            .entry(message.room_id)
            .and_modify(|counters| {
                counters.last_seq = counters.last_seq.max(message.seq);
                counters.inserted += 1;
                counters.last_update_time = message.send_time;
            })
            .or_insert(RoomCounters {
                last_seq: message.seq,
                inserted: 1,
                last_update_time: message.send_time,
            });
        Ok(())
    }

    /// Inserts one message. The common case — its seq is above the room's others and
    /// no message has its id — is one `INSERT` (the id's unique index checks that) and
    /// deferred counters; a replayed or conflicting insert replaces what is there
    /// instead of counting twice.
    fn insert_message(&mut self, message: &MessageRow) -> rusqlite::Result<()> {
        if self.seqs_are_new(&[message])? && self.insert_message_rows(&[message])? == 1 {
            return self.inserted(message);
        }
        let room_id = message.room_id;
        let replaced: Vec<u64> = self
            .transaction
            .prepare_cached(
                "SELECT seq FROM messages WHERE room_id = ?1 AND (seq = ?2 OR message_id = ?3)",
            )?
            .query_map(
                params![Int(room_id.0), Int(message.seq), Int(message.message_id.0)],
                |row| get_u64(row, 0),
            )?
            .collect::<rusqlite::Result<_>>()?;
        for &seq in &replaced {
            remove_message(self.transaction, room_id, seq)?;
        }
        if self.insert_message_rows(&[message])? != 1 {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
                Some("message still conflicts after removing its seq and id".to_owned()),
            ));
        }
        self.note_seq(message);
        insert_mentions(self.transaction, room_id, message.seq, &message.mentions)?;
        // The clamp below depends on the current count: write the deferred ones first.
        self.write_counters()?;
        let replaced_count = i64::try_from(replaced.len()).unwrap_or(i64::MAX);
        self.transaction
            .prepare_cached(
                "UPDATE rooms SET last_seq = MAX(last_seq, ?2),
                     message_num = MAX(message_num + 1 - ?3, 0),
                     last_update_time = ?4
                 WHERE room_id = ?1",
            )?
            .execute(params![
                Int(room_id.0),
                Int(message.seq),
                replaced_count,
                message.send_time
            ])?;
        Ok(())
    }

    /// Inserts the gathered sync ops, in order (a later op replaces an earlier one at
    /// the same position and index, as one statement per op would).
    fn write_ops(&mut self) -> rusqlite::Result<()> {
        let ops = std::mem::take(&mut self.ops);
        for chunk in insert_chunks(&ops) {
            let size = chunk.len();
            let insert = chunk_statement(
                self.transaction,
                &mut self.op_inserts,
                OP_INSERT,
                OP_PARAMETERS,
                size,
            )?;
            for (row, op) in chunk.iter().enumerate() {
                bind_op(insert, 1 + row * OP_PARAMETERS, op)?;
            }
            if insert.raw_execute()? < size {
                // A position and index were taken: replace one op at a time, in order
                // (ops the chunk inserted replace themselves).
                let mut replace = self.transaction.prepare_cached(&multi_row_sql(
                    OP_REPLACE,
                    OP_PARAMETERS,
                    1,
                ))?;
                for op in chunk {
                    bind_op(&mut replace, 1, op)?;
                    replace.raw_execute()?;
                }
            }
        }
        Ok(())
    }

    /// Writes the deferred room counters and read cursors.
    fn write_counters(&mut self) -> rusqlite::Result<()> {
        if !self.rooms.is_empty() {
            let mut update = self.transaction.prepare_cached(
                "UPDATE rooms SET last_seq = MAX(last_seq, ?2),
                     message_num = message_num + ?3,
                     last_update_time = ?4
                 WHERE room_id = ?1",
            )?;
            for (room_id, counters) in self.rooms.drain() {
                update.execute(params![
                    Int(room_id.0),
                    Int(counters.last_seq),
                    Int(counters.inserted),
                    counters.last_update_time,
                ])?;
            }
        }
        if !self.cursors.is_empty() {
            let mut update = self.transaction.prepare_cached(
                "UPDATE members SET read_seq = ?3 WHERE room_id = ?1 AND account_id = ?2",
            )?;
            for ((room_id, account_id), read_seq) in self.cursors.drain() {
                update.execute(params![Int(room_id.0), Int(account_id.0), Int(read_seq)])?;
            }
        }
        Ok(())
    }
}

/// The seq of a message in a room, if it exists.
fn seq_of(
    transaction: &Transaction<'_>,
    room_id: RoomId,
    message_id: MessageId,
) -> rusqlite::Result<Option<u64>> {
    transaction
        .prepare_cached("SELECT seq FROM messages WHERE room_id = ?1 AND message_id = ?2")?
        .query_row(params![Int(room_id.0), Int(message_id.0)], |row| {
            get_u64(row, 0)
        })
        .optional()
}

/// Removes one message and its mentions.
fn remove_message(
    transaction: &Transaction<'_>,
    room_id: RoomId,
    seq: u64,
) -> rusqlite::Result<()> {
    transaction
        .prepare_cached("DELETE FROM messages WHERE room_id = ?1 AND seq = ?2")?
        .execute(params![Int(room_id.0), Int(seq)])?;
    transaction
        .prepare_cached("DELETE FROM mentions WHERE room_id = ?1 AND seq = ?2")?
        .execute(params![Int(room_id.0), Int(seq)])?;
    Ok(())
}

/// Stores the mentions of a message (duplicates collapse into one row).
fn insert_mentions(
    transaction: &Transaction<'_>,
    room_id: RoomId,
    seq: u64,
    mentions: &[AccountId],
) -> rusqlite::Result<()> {
    if mentions.is_empty() {
        return Ok(());
    }
    let mut insert = transaction.prepare_cached(
        "INSERT OR IGNORE INTO mentions (room_id, seq, account_id) VALUES (?1, ?2, ?3)",
    )?;
    for account in mentions {
        insert.execute(params![Int(room_id.0), Int(seq), Int(account.0)])?;
    }
    Ok(())
}

fn apply_change(transaction: &Transaction<'_>, change: &Change) -> rusqlite::Result<()> {
    match change {
        Change::PutAccount(account) => {
            transaction
                .prepare_cached(
                    "INSERT OR REPLACE INTO accounts (account_id, my_room_id, organization_id,
                         organization_name, name, mail, department, title, admin, token_hash,
                         created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?
                .execute(params![
                    Int(account.account_id.0),
                    Int(account.my_room_id.0),
                    Int(account.organization_id.0),
                    account.organization_name,
                    account.name,
                    account.mail,
                    account.department,
                    account.title,
                    account.admin,
                    account.token_hash,
                    account.created_at,
                ])?;
        }
        Change::SetTokenHash {
            account_id,
            token_hash,
        } => {
            transaction
                .prepare_cached("UPDATE accounts SET token_hash = ?2 WHERE account_id = ?1")?
                .execute(params![Int(account_id.0), token_hash])?;
        }
        Change::PutRoom(room) => {
            transaction
                .prepare_cached(
                    "INSERT OR REPLACE INTO rooms (room_id, room_type, name, description,
                         icon_preset, last_seq, message_num, last_update_time)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    Int(room.room_id.0),
                    room.room_type.as_str(),
                    room.name,
                    room.description,
                    room.icon_preset,
                    Int(room.last_seq),
                    Int(room.message_num),
                    room.last_update_time,
                ])?;
        }
        Change::UpdateRoom {
            room_id,
            name,
            description,
            icon_preset,
            at,
        } => {
            transaction
                .prepare_cached(
                    "UPDATE rooms SET name = COALESCE(?2, name),
                         description = COALESCE(?3, description),
                         icon_preset = COALESCE(?4, icon_preset),
                         last_update_time = ?5
                     WHERE room_id = ?1",
                )?
                .execute(params![Int(room_id.0), name, description, icon_preset, at])?;
        }
        Change::DeleteRoom { room_id } => {
            // Contacts whose direct room this is stay: the relation is not the room's.
            for table in [
                "rooms",
                "members",
                "messages",
                "mentions",
                "fetch_cursors",
                "tasks",
                "files",
                "links",
                "join_requests",
            ] {
                transaction
                    .prepare_cached(&format!("DELETE FROM {table} WHERE room_id = ?1"))?
                    .execute(params![Int(room_id.0)])?;
            }
        }
        Change::PutMember {
            room_id,
            account_id,
            role,
        } => {
            transaction
                .prepare_cached(
                    "INSERT INTO members (room_id, account_id, role, read_seq)
                     VALUES (?1, ?2, ?3,
                             COALESCE((SELECT last_seq FROM rooms WHERE room_id = ?1), 0))
                     ON CONFLICT (room_id, account_id) DO UPDATE SET role = excluded.role",
                )?
                .execute(params![Int(room_id.0), Int(account_id.0), role.as_str()])?;
        }
        Change::RemoveMember {
            room_id,
            account_id,
        } => {
            transaction
                .prepare_cached("DELETE FROM members WHERE room_id = ?1 AND account_id = ?2")?
                .execute(params![Int(room_id.0), Int(account_id.0)])?;
        }
        Change::EditMessage {
            room_id,
            message_id,
            body,
            mentions,
            to_all,
            at,
        } => {
            let Some(seq) = seq_of(transaction, *room_id, *message_id)? else {
                return Ok(());
            };
            transaction
                .prepare_cached(
                    "UPDATE messages SET body = ?3, to_all = ?4, update_time = ?5
                     WHERE room_id = ?1 AND seq = ?2",
                )?
                .execute(params![Int(room_id.0), Int(seq), body, to_all, at])?;
            transaction
                .prepare_cached("DELETE FROM mentions WHERE room_id = ?1 AND seq = ?2")?
                .execute(params![Int(room_id.0), Int(seq)])?;
            insert_mentions(transaction, *room_id, seq, mentions)?;
            transaction
                .prepare_cached("UPDATE rooms SET last_update_time = ?2 WHERE room_id = ?1")?
                .execute(params![Int(room_id.0), at])?;
        }
        Change::DeleteMessage {
            room_id,
            message_id,
            at,
        } => {
            let Some(seq) = seq_of(transaction, *room_id, *message_id)? else {
                return Ok(());
            };
            remove_message(transaction, *room_id, seq)?;
            transaction
                .prepare_cached(
                    "UPDATE rooms SET message_num = MAX(message_num - 1, 0), last_update_time = ?2
                     WHERE room_id = ?1",
                )?
                .execute(params![Int(room_id.0), at])?;
        }
        Change::InsertMessage(_) | Change::SetReadCursor { .. } | Change::RecordOps(_) => {
            unreachable!("BatchWriter::apply handles message inserts, read cursors and ops")
        }
        Change::OpenMembership {
            room_id,
            account_id,
            from,
        } => {
            // Nothing if an interval is open; a closed one starting at `from` reopens.
            transaction
                .prepare_cached(
                    "INSERT INTO membership_intervals (account_id, room_id, from_position,
                         to_position)
                     SELECT ?1, ?2, ?3, NULL
                     WHERE NOT EXISTS (
                         SELECT 1 FROM membership_intervals
                         WHERE account_id = ?1 AND room_id = ?2 AND to_position IS NULL
                     )
                     ON CONFLICT (account_id, room_id, from_position)
                         DO UPDATE SET to_position = NULL",
                )?
                .execute(params![Int(account_id.0), Int(room_id.0), Int(*from)])?;
        }
        Change::CloseMembership {
            room_id,
            account_id,
            to,
        } => {
            transaction
                .prepare_cached(
                    "UPDATE membership_intervals SET to_position = ?3
                     WHERE account_id = ?1 AND room_id = ?2 AND to_position IS NULL",
                )?
                .execute(params![Int(account_id.0), Int(room_id.0), Int(*to)])?;
        }
        Change::PutTask(task) => {
            transaction
                .prepare_cached(
                    "INSERT OR REPLACE INTO tasks (task_id, room_id, account_id, assigned_by,
                         message_id, body, limit_time, limit_type, status)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    Int(task.task_id.0),
                    Int(task.room_id.0),
                    Int(task.account_id.0),
                    Int(task.assigned_by.0),
                    Int(task.message_id.0),
                    task.body,
                    task.limit_time,
                    task.limit_type,
                    task.status,
                ])?;
        }
        Change::SetTaskStatus { task_id, status } => {
            transaction
                .prepare_cached("UPDATE tasks SET status = ?2 WHERE task_id = ?1")?
                .execute(params![Int(task_id.0), status])?;
        }
        Change::PutFile(file) => {
            transaction
                .prepare_cached(
                    "INSERT OR REPLACE INTO files (file_id, room_id, account_id, message_id,
                         filename, filesize, upload_time, blob_key)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    Int(file.file_id.0),
                    Int(file.room_id.0),
                    Int(file.account_id.0),
                    Int(file.message_id.0),
                    file.filename,
                    Int(file.filesize),
                    file.upload_time,
                    file.blob_key,
                ])?;
        }
        Change::PutContact {
            account_id,
            contact_id,
            room_id,
        } => {
            transaction
                .prepare_cached(
                    "INSERT OR REPLACE INTO contacts (account_id, contact_id, room_id)
                     VALUES (?1, ?2, ?3)",
                )?
                .execute(params![
                    Int(account_id.0),
                    Int(contact_id.0),
                    Int(room_id.0)
                ])?;
        }
        Change::RemoveContact {
            account_id,
            contact_id,
        } => {
            transaction
                .prepare_cached("DELETE FROM contacts WHERE account_id = ?1 AND contact_id = ?2")?
                .execute(params![Int(account_id.0), Int(contact_id.0)])?;
        }
        Change::PutContactRequest(request) => {
            transaction
                .prepare_cached(
                    "INSERT OR REPLACE INTO contact_requests (request_id, from_account_id,
                         to_account_id, message, at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    Int(request.request_id.0),
                    Int(request.from.0),
                    Int(request.to.0),
                    request.message,
                    request.at,
                ])?;
        }
        Change::RemoveContactRequest { request_id } => {
            transaction
                .prepare_cached("DELETE FROM contact_requests WHERE request_id = ?1")?
                .execute(params![Int(request_id.0)])?;
        }
        Change::SetLink(link) => {
            // REPLACE drops both the room's previous link and any other room's link with
            // the same code (the code is UNIQUE).
            transaction
                .prepare_cached(
                    "INSERT OR REPLACE INTO links (room_id, code, need_acceptance, description)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    Int(link.room_id.0),
                    link.code,
                    link.need_acceptance,
                    link.description,
                ])?;
        }
        Change::RemoveLink { room_id } => {
            transaction
                .prepare_cached("DELETE FROM links WHERE room_id = ?1")?
                .execute(params![Int(room_id.0)])?;
        }
        Change::PutJoinRequest {
            room_id,
            account_id,
            at,
        } => {
            transaction
                .prepare_cached(
                    "INSERT OR REPLACE INTO join_requests (room_id, account_id, at)
                     VALUES (?1, ?2, ?3)",
                )?
                .execute(params![Int(room_id.0), Int(account_id.0), at])?;
        }
        Change::RemoveJoinRequest {
            room_id,
            account_id,
        } => {
            transaction
                .prepare_cached("DELETE FROM join_requests WHERE room_id = ?1 AND account_id = ?2")?
                .execute(params![Int(room_id.0), Int(account_id.0)])?;
        }
    }
    Ok(())
}

fn reset_models(connection: &mut Connection) -> rusqlite::Result<()> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    transaction.execute_batch(
        "DELETE FROM accounts;
         DELETE FROM rooms;
         DELETE FROM members;
         DELETE FROM messages;
         DELETE FROM mentions;
         DELETE FROM sync_ops;
         DELETE FROM membership_intervals;
         DELETE FROM tasks;
         DELETE FROM files;
         DELETE FROM contacts;
         DELETE FROM contact_requests;
         DELETE FROM links;
         DELETE FROM join_requests;
         DELETE FROM snapshots;
         UPDATE checkpoint SET position = 0 WHERE id = 0;",
    )?;
    transaction.commit()
}

// ---------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------

/// Fills in the mentions of messages of one room, given in ascending seq order.
fn attach_mentions(
    connection: &Connection,
    room_id: RoomId,
    messages: &mut [MessageView],
) -> rusqlite::Result<()> {
    let (Some(first), Some(last)) = (messages.first(), messages.last()) else {
        return Ok(());
    };
    let (first, last) = (first.message.seq, last.message.seq);
    let mut by_seq: BTreeMap<u64, Vec<AccountId>> = BTreeMap::new();
    let mut query = connection.prepare_cached(
        "SELECT seq, account_id FROM mentions
         WHERE room_id = ?1 AND seq BETWEEN ?2 AND ?3
         ORDER BY seq, account_id",
    )?;
    let rows = query.query_map(params![Int(room_id.0), Int(first), Int(last)], |row| {
        Ok((get_u64(row, 0)?, AccountId(get_u64(row, 1)?)))
    })?;
    for row in rows {
        let (seq, account) = row?;
        by_seq.entry(seq).or_default().push(account);
    }
    for view in messages {
        if let Some(mentions) = by_seq.remove(&view.message.seq) {
            view.message.mentions = mentions;
        }
    }
    Ok(())
}

/// The latest `count` messages of a room, oldest first.
fn latest_messages(
    connection: &Connection,
    room_id: RoomId,
    count: usize,
) -> rusqlite::Result<Vec<MessageView>> {
    let mut messages = connection
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM
                 (SELECT * FROM messages WHERE room_id = ?1 ORDER BY seq DESC LIMIT ?2) m
             LEFT JOIN accounts a ON a.account_id = m.account_id
             ORDER BY m.seq"
        ))?
        .query_map(params![Int(room_id.0), sql_limit(count)], message_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    attach_mentions(connection, room_id, &mut messages)?;
    Ok(messages)
}

/// At most `count` messages of a room with `seq > after`, oldest first.
fn messages_after(
    connection: &Connection,
    room_id: RoomId,
    after: u64,
    count: usize,
) -> rusqlite::Result<Vec<MessageView>> {
    let mut messages = connection
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m
             LEFT JOIN accounts a ON a.account_id = m.account_id
             WHERE m.room_id = ?1 AND m.seq > ?2
             ORDER BY m.seq
             LIMIT ?3"
        ))?
        .query_map(
            params![Int(room_id.0), Int(after), sql_limit(count)],
            message_from_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    attach_mentions(connection, room_id, &mut messages)?;
    Ok(messages)
}

fn take_new_messages(
    connection: &mut Connection,
    account: AccountId,
    room: RoomId,
    count: usize,
) -> rusqlite::Result<Vec<MessageView>> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let cursor = transaction
        .prepare_cached("SELECT seq FROM fetch_cursors WHERE room_id = ?1 AND account_id = ?2")?
        .query_row(params![Int(room.0), Int(account.0)], |row| get_u64(row, 0))
        .optional()?;
    let (taken, new_cursor) = match cursor {
        Some(cursor) => {
            let taken = messages_after(&transaction, room, cursor, count)?;
            let new_cursor = taken.last().map_or(cursor, |view| view.message.seq);
            (taken, new_cursor)
        }
        None => {
            let taken = latest_messages(&transaction, room, count)?;
            let new_cursor = match taken.last() {
                Some(view) => view.message.seq,
                None => transaction
                    .prepare_cached("SELECT last_seq FROM rooms WHERE room_id = ?1")?
                    .query_row(params![Int(room.0)], |row| get_u64(row, 0))
                    .optional()?
                    .unwrap_or(0),
            };
            (taken, new_cursor)
        }
    };
    if cursor != Some(new_cursor) {
        transaction
            .prepare_cached(
                "INSERT OR REPLACE INTO fetch_cursors (room_id, account_id, seq)
                 VALUES (?1, ?2, ?3)",
            )?
            .execute(params![Int(room.0), Int(account.0), Int(new_cursor)])?;
    }
    transaction.commit()?;
    Ok(taken)
}

fn rooms_of(
    connection: &Connection,
    account: AccountId,
    only: Option<RoomId>,
) -> rusqlite::Result<Vec<RoomView>> {
    match only {
        None => connection
            .prepare_cached(&format!(
                "{ROOM_VIEWS} GROUP BY mb.room_id ORDER BY mb.room_id"
            ))?
            .query_map(params![Int(account.0)], room_view_from_row)?
            .collect(),
        Some(room) => connection
            .prepare_cached(&format!(
                "{ROOM_VIEWS} AND mb.room_id = ?2 GROUP BY mb.room_id"
            ))?
            .query_map(params![Int(account.0), Int(room.0)], room_view_from_row)?
            .collect(),
    }
}

/// A position as a query bound: positions above `i64::MAX` are never stored, so a
/// larger bound means the same as `i64::MAX`.
fn position_bound(position: Position) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

/// Runs [`OPS_FOR`] with SQLite bounds.
fn visible_ops(
    connection: &Connection,
    account: AccountId,
    after: i64,
    up_to: i64,
    limit: i64,
) -> rusqlite::Result<Vec<OpRecord>> {
    connection
        .prepare_cached(OPS_FOR)?
        .query_map(params![Int(account.0), after, up_to, limit], op_from_row)?
        .collect()
}

fn ops_for(
    connection: &mut Connection,
    account: AccountId,
    after: Position,
    up_to: Position,
    limit: usize,
) -> rusqlite::Result<Vec<OpRecord>> {
    if after >= up_to || limit == 0 {
        return Ok(Vec::new());
    }
    // The common case (fewer ops than the limit) is one statement, its own snapshot.
    let ops = visible_ops(
        connection,
        account,
        position_bound(after),
        position_bound(up_to),
        sql_limit(limit),
    )?;
    if ops.len() < limit {
        return Ok(ops);
    }
    // One read transaction, so that a position is finished from the same snapshot.
    let transaction = connection.transaction()?;
    let mut ops = visible_ops(
        &transaction,
        account,
        position_bound(after),
        position_bound(up_to),
        sql_limit(limit),
    )?;
    if ops.len() >= limit
        && let Some(&OpRecord {
            position, index, ..
        }) = ops.last()
    {
        // The limit may have cut inside the last position: add the rest of it.
        let position = position_bound(position);
        let rest = visible_ops(&transaction, account, position - 1, position, -1)?;
        ops.extend(rest.into_iter().filter(|op| op.index > index));
    }
    transaction.commit()?;
    Ok(ops)
}

fn dump_models(connection: &mut Connection) -> rusqlite::Result<String> {
    // One read transaction, so that the dump is one consistent snapshot.
    let transaction = connection.transaction()?;
    let mut dump = CanonicalDump::new(stored_checkpoint(&transaction)?);
    {
        let mut query = transaction.prepare(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts a ORDER BY a.account_id"
        ))?;
        let mut rows = query.query([])?;
        while let Some(row) = rows.next()? {
            dump.account(&account_from_row(row, 0)?);
        }
    }
    {
        let mut query = transaction.prepare(&format!(
            "SELECT {ROOM_COLUMNS} FROM rooms r ORDER BY r.room_id"
        ))?;
        let mut rows = query.query([])?;
        while let Some(row) = rows.next()? {
            dump.room(&room_from_row(row, 0)?);
        }
    }
    {
        let mut query = transaction.prepare(
            "SELECT room_id, account_id, role, read_seq FROM members
             ORDER BY room_id, account_id",
        )?;
        let mut rows = query.query([])?;
        while let Some(row) = rows.next()? {
            dump.member(
                RoomId(get_u64(row, 0)?),
                AccountId(get_u64(row, 1)?),
                role_at(row, 2)?,
                get_u64(row, 3)?,
            );
        }
    }
    {
        let mut mentions: BTreeMap<(u64, u64), Vec<AccountId>> = BTreeMap::new();
        let mut query = transaction.prepare(
            "SELECT room_id, seq, account_id FROM mentions ORDER BY room_id, seq, account_id",
        )?;
        let mut rows = query.query([])?;
        while let Some(row) = rows.next()? {
            mentions
                .entry((get_u64(row, 0)?, get_u64(row, 1)?))
                .or_default()
                .push(AccountId(get_u64(row, 2)?));
        }
        let mut query = transaction.prepare(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m
             LEFT JOIN accounts a ON a.account_id = m.account_id
             ORDER BY m.room_id, m.seq"
        ))?;
        let mut rows = query.query([])?;
        while let Some(row) = rows.next()? {
            let mut message = message_from_row(row)?.message;
            message.mentions = mentions
                .remove(&(message.room_id.0, message.seq))
                .unwrap_or_default();
            dump.message(&message);
        }
    }
    {
        let mut query = transaction.prepare(
            "SELECT account_id, room_id, from_position, to_position FROM membership_intervals
             ORDER BY account_id, room_id, from_position",
        )?;
        let mut rows = query.query([])?;
        while let Some(row) = rows.next()? {
            dump.membership_interval(
                AccountId(get_u64(row, 0)?),
                RoomId(get_u64(row, 1)?),
                get_u64(row, 2)?,
                row.get::<_, Option<Int>>(3)?.map(|to| to.0),
            );
        }
    }
    {
        let mut query = transaction.prepare(&format!(
            "SELECT {OP_COLUMNS} FROM sync_ops o ORDER BY o.position, o.idx"
        ))?;
        let mut rows = query.query([])?;
        while let Some(row) = rows.next()? {
            dump.op(&op_from_row(row)?);
        }
    }
    {
        // Names are not part of the dump: the joins only fill the view's extra columns.
        let mut query = transaction.prepare(&format!(
            "SELECT {TASK_VIEW_COLUMNS} FROM tasks t {TASK_VIEW_JOINS} ORDER BY t.task_id"
        ))?;
        let mut rows = query.query([])?;
        while let Some(row) = rows.next()? {
            dump.task(&task_view_from_row(row)?.task);
        }
    }
    {
        let mut query = transaction.prepare(&format!(
            "SELECT {FILE_VIEW_COLUMNS} FROM files f
             LEFT JOIN accounts a ON a.account_id = f.account_id
             ORDER BY f.file_id"
        ))?;
        let mut rows = query.query([])?;
        while let Some(row) = rows.next()? {
            dump.file(&file_view_from_row(row)?.file);
        }
    }
    {
        let mut query = transaction.prepare(
            "SELECT account_id, contact_id, room_id FROM contacts ORDER BY account_id, contact_id",
        )?;
        let mut rows = query.query([])?;
        while let Some(row) = rows.next()? {
            dump.contact(
                AccountId(get_u64(row, 0)?),
                AccountId(get_u64(row, 1)?),
                RoomId(get_u64(row, 2)?),
            );
        }
    }
    {
        let mut query = transaction.prepare(&format!(
            "SELECT {CONTACT_REQUEST_COLUMNS} FROM contact_requests q ORDER BY q.request_id"
        ))?;
        let mut rows = query.query([])?;
        while let Some(row) = rows.next()? {
            dump.contact_request(&contact_request_from_row(row)?);
        }
    }
    {
        let mut query = transaction.prepare(&format!(
            "SELECT {LINK_COLUMNS} FROM links l ORDER BY l.room_id"
        ))?;
        let mut rows = query.query([])?;
        while let Some(row) = rows.next()? {
            dump.link(&link_from_row(row)?);
        }
    }
    {
        let mut query = transaction.prepare(
            "SELECT room_id, account_id, at FROM join_requests ORDER BY room_id, account_id",
        )?;
        let mut rows = query.query([])?;
        while let Some(row) = rows.next()? {
            dump.join_request(
                RoomId(get_u64(row, 0)?),
                AccountId(get_u64(row, 1)?),
                row.get(2)?,
            );
        }
    }
    transaction.commit()?;
    Ok(dump.finish())
}

#[async_trait]
impl ReadModelWriter for SqliteReadStore {
    async fn apply(&self, changes: Vec<Change>, checkpoint: Position) -> Result<(), StoreError> {
        self.apply_changes(changes, checkpoint, None).await
    }

    async fn apply_fenced(
        &self,
        changes: Vec<Change>,
        checkpoint: Position,
        fence: u64,
    ) -> Result<(), StoreError> {
        self.apply_changes(changes, checkpoint, Some(fence)).await
    }

    async fn checkpoint(&self) -> Result<Position, StoreError> {
        self.with_reader(|connection| stored_checkpoint(connection))
            .await
    }

    async fn reset(&self) -> Result<(), StoreError> {
        self.with_writer(reset_models).await
    }

    async fn dump(&self) -> Result<String, StoreError> {
        self.with_reader(dump_models).await
    }
}

impl SqliteReadStore {
    /// [`ReadModelWriter::apply`], fenced by the projector lease if `fence` is given.
    async fn apply_changes(
        &self,
        changes: Vec<Change>,
        checkpoint: Position,
        fence: Option<u64>,
    ) -> Result<(), StoreError> {
        let (changes, outcome) = self
            .with_writer(move |connection| {
                let outcome = apply_batch(connection, &changes, checkpoint, fence)?;
                Ok((changes, outcome))
            })
            .await?;
        if changes.len() >= DROP_ELSEWHERE {
            // Freeing a catch-up batch (thousands of strings) took a good part of the
            // writer's time: free it on a blocking thread instead, so that the
            // projector can hand the writer its next batch meanwhile.
            tokio::task::spawn_blocking(move || drop(changes));
        }
        outcome.map_err(|FencedOff(current)| {
            hayabusa_store::lease::fenced(fence.unwrap_or_default(), current)
        })
    }
}

#[async_trait]
impl hayabusa_store::Leases for SqliteReadStore {
    async fn acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<u64>, StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.with_writer(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = hayabusa_store::lease::now_ms();
            let row = lease_row(&transaction, &name)?;
            let Some(row) = hayabusa_store::lease::acquired(row.as_ref(), &holder, ttl, now) else {
                return Ok(None);
            };
            put_lease(&transaction, &name, &row)?;
            transaction.commit()?;
            Ok(Some(row.fence))
        })
        .await
    }

    async fn renew(
        &self,
        name: &str,
        holder: &str,
        fence: u64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.with_writer(move |connection| {
            let expires =
                hayabusa_store::lease::now_ms().saturating_add(hayabusa_store::lease::ttl_ms(ttl));
            let renewed = connection
                .prepare_cached(
                    "UPDATE leases SET expires_at_ms = ?4
                     WHERE name = ?1 AND holder = ?2 AND fence = ?3",
                )?
                .execute(params![name, holder, Int(fence), expires])?;
            Ok(renewed == 1)
        })
        .await
    }

    async fn release(&self, name: &str, holder: &str, fence: u64) -> Result<(), StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.with_writer(move |connection| {
            connection
                .prepare_cached(
                    "UPDATE leases SET expires_at_ms = 0
                     WHERE name = ?1 AND holder = ?2 AND fence = ?3",
                )?
                .execute(params![name, holder, Int(fence)])
                .map(|_| ())
        })
        .await
    }
}

#[async_trait]
impl hayabusa_store::ConsumerCheckpoints for SqliteReadStore {
    async fn consumer_checkpoint(&self, consumer: &str) -> Result<Option<String>, StoreError> {
        let consumer = consumer.to_owned();
        self.with_reader(move |connection| {
            connection
                .prepare_cached("SELECT value FROM consumer_checkpoints WHERE consumer = ?1")?
                .query_row(params![consumer], |row| row.get(0))
                .optional()
        })
        .await
    }

    async fn save_consumer_checkpoint(
        &self,
        consumer: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        let (consumer, value) = (consumer.to_owned(), value.to_owned());
        self.with_writer(move |connection| {
            connection
                .prepare_cached(
                    "INSERT INTO consumer_checkpoints (consumer, value) VALUES (?1, ?2)
                     ON CONFLICT (consumer) DO UPDATE SET value = excluded.value",
                )?
                .execute(params![consumer, value])
                .map(|_| ())
        })
        .await
    }
}

#[async_trait]
impl hayabusa_store::SnapshotStore for SqliteReadStore {
    async fn load_snapshot(
        &self,
        stream: &str,
    ) -> Result<Option<hayabusa_store::Snapshot>, StoreError> {
        let stream = stream.to_owned();
        self.with_reader(move |connection| {
            connection
                .prepare_cached("SELECT revision, format, data FROM snapshots WHERE stream = ?1")?
                .query_row(params![stream], |row| {
                    Ok(hayabusa_store::Snapshot {
                        revision: row.get::<_, Int>(0)?.0,
                        format: row.get(1)?,
                        data: row.get(2)?,
                        stream: stream.clone(),
                    })
                })
                .optional()
        })
        .await
    }

    async fn save_snapshot(&self, snapshot: &hayabusa_store::Snapshot) -> Result<(), StoreError> {
        let snapshot = snapshot.clone();
        self.with_writer(move |connection| {
            connection
                .prepare_cached(
                    "INSERT INTO snapshots (stream, revision, format, data) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (stream) DO UPDATE
                     SET revision = excluded.revision, format = excluded.format, data = excluded.data
                     WHERE snapshots.format <> excluded.format
                        OR snapshots.revision < excluded.revision",
                )?
                .execute(params![
                    snapshot.stream,
                    Int(snapshot.revision),
                    snapshot.format,
                    snapshot.data
                ])
                .map(|_| ())
        })
        .await
    }
}

#[async_trait]
impl ReadModelQueries for SqliteReadStore {
    async fn account_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<AccountRow>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.with_reader(move |connection| {
            connection
                .prepare_cached(&format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.token_hash = ?1
                     ORDER BY a.account_id LIMIT 1"
                ))?
                .query_row(params![token_hash], |row| account_from_row(row, 0))
                .optional()
        })
        .await
    }

    async fn accounts(&self, ids: &[AccountId]) -> Result<Vec<AccountRow>, StoreError> {
        let ids: BTreeSet<AccountId> = ids.iter().copied().collect();
        self.with_reader(move |connection| {
            let transaction = connection.transaction()?;
            let mut found = Vec::with_capacity(ids.len());
            {
                let mut query = transaction.prepare_cached(&format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.account_id = ?1"
                ))?;
                // An id SQLite cannot store is no account's (as on every store).
                for id in ids.into_iter().filter(|id| i64::try_from(id.0).is_ok()) {
                    if let Some(account) = query
                        .query_row(params![Int(id.0)], |row| account_from_row(row, 0))
                        .optional()?
                    {
                        found.push(account);
                    }
                }
            }
            transaction.commit()?;
            Ok(found)
        })
        .await
    }

    async fn rooms_of(&self, account: AccountId) -> Result<Vec<RoomView>, StoreError> {
        self.with_reader(move |connection| rooms_of(connection, account, None))
            .await
    }

    async fn room_ids_of(&self, account: AccountId) -> Result<Vec<RoomId>, StoreError> {
        self.with_reader(move |connection| {
            connection
                .prepare_cached(
                    "SELECT mb.room_id FROM members mb
                     JOIN rooms r ON r.room_id = mb.room_id
                     WHERE mb.account_id = ?1
                     ORDER BY mb.room_id",
                )?
                .query_map(params![Int(account.0)], |row| Ok(RoomId(get_u64(row, 0)?)))?
                .collect()
        })
        .await
    }

    async fn room_of(
        &self,
        account: AccountId,
        room: RoomId,
    ) -> Result<Option<RoomView>, StoreError> {
        self.with_reader(move |connection| {
            Ok(rooms_of(connection, account, Some(room))?
                .into_iter()
                .next())
        })
        .await
    }

    async fn members(&self, room: RoomId) -> Result<Vec<MemberView>, StoreError> {
        self.with_reader(move |connection| {
            connection
                .prepare_cached(&format!(
                    "SELECT {ACCOUNT_COLUMNS}, mb.role FROM members mb
                     JOIN accounts a ON a.account_id = mb.account_id
                     WHERE mb.room_id = ?1
                     ORDER BY mb.account_id"
                ))?
                .query_map(params![Int(room.0)], |row| {
                    Ok(MemberView {
                        account: account_from_row(row, 0)?,
                        role: role_at(row, ACCOUNT_COLUMN_COUNT)?,
                    })
                })?
                .collect()
        })
        .await
    }

    async fn latest_messages(
        &self,
        room: RoomId,
        limit: usize,
    ) -> Result<Vec<MessageView>, StoreError> {
        self.with_reader(move |connection| {
            let transaction = connection.transaction()?;
            let messages = latest_messages(&transaction, room, limit)?;
            transaction.commit()?;
            Ok(messages)
        })
        .await
    }

    async fn message(
        &self,
        room: RoomId,
        message: MessageId,
    ) -> Result<Option<MessageView>, StoreError> {
        self.with_reader(move |connection| {
            let transaction = connection.transaction()?;
            let found = transaction
                .prepare_cached(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages m
                     LEFT JOIN accounts a ON a.account_id = m.account_id
                     WHERE m.room_id = ?1 AND m.message_id = ?2"
                ))?
                .query_row(params![Int(room.0), Int(message.0)], message_from_row)
                .optional()?;
            let mut found: Vec<MessageView> = found.into_iter().collect();
            attach_mentions(&transaction, room, &mut found)?;
            transaction.commit()?;
            Ok(found.pop())
        })
        .await
    }

    async fn take_new_messages(
        &self,
        account: AccountId,
        room: RoomId,
        limit: usize,
    ) -> Result<Vec<MessageView>, StoreError> {
        self.with_writer(move |connection| take_new_messages(connection, account, room, limit))
            .await
    }

    async fn set_fetch_cursor_to_latest(
        &self,
        account: AccountId,
        room: RoomId,
    ) -> Result<(), StoreError> {
        self.with_writer(move |connection| {
            connection
                .prepare_cached(
                    "INSERT OR REPLACE INTO fetch_cursors (room_id, account_id, seq)
                     SELECT room_id, ?2, last_seq FROM rooms WHERE room_id = ?1",
                )?
                .execute(params![Int(room.0), Int(account.0)])?;
            Ok(())
        })
        .await
    }

    async fn status(&self, account: AccountId) -> Result<StatusCounts, StoreError> {
        let rooms = self.rooms_of(account).await?;
        Ok(status_of(&rooms))
    }

    async fn tasks_of_room(
        &self,
        room: RoomId,
        filter: &TaskFilter,
        limit: usize,
    ) -> Result<Vec<TaskView>, StoreError> {
        let filter = filter.clone();
        self.with_reader(move |connection| {
            connection
                .prepare_cached(&tasks_of_room_sql())?
                .query_map(
                    params![
                        Int(room.0),
                        filter.account_id.map(|account| Int(account.0)),
                        filter.assigned_by.map(|account| Int(account.0)),
                        filter.status,
                        sql_limit(limit),
                    ],
                    task_view_from_row,
                )?
                .collect()
        })
        .await
    }

    async fn task(&self, room: RoomId, task: TaskId) -> Result<Option<TaskView>, StoreError> {
        self.with_reader(move |connection| {
            connection
                .prepare_cached(&task_sql())?
                .query_row(params![Int(room.0), Int(task.0)], task_view_from_row)
                .optional()
        })
        .await
    }

    async fn tasks_of_account(
        &self,
        account: AccountId,
        filter: &TaskFilter,
        limit: usize,
    ) -> Result<Vec<TaskView>, StoreError> {
        let filter = filter.clone();
        self.with_reader(move |connection| {
            connection
                .prepare_cached(&tasks_of_account_sql())?
                .query_map(
                    params![
                        Int(account.0),
                        filter.assigned_by.map(|account| Int(account.0)),
                        filter.status,
                        sql_limit(limit),
                    ],
                    task_view_from_row,
                )?
                .collect()
        })
        .await
    }

    async fn files_of_room(
        &self,
        room: RoomId,
        uploader: Option<AccountId>,
        limit: usize,
    ) -> Result<Vec<FileView>, StoreError> {
        self.with_reader(move |connection| {
            connection
                .prepare_cached(&files_of_room_sql())?
                .query_map(
                    params![
                        Int(room.0),
                        uploader.map(|account| Int(account.0)),
                        sql_limit(limit)
                    ],
                    file_view_from_row,
                )?
                .collect()
        })
        .await
    }

    async fn file(&self, room: RoomId, file: FileId) -> Result<Option<FileView>, StoreError> {
        self.with_reader(move |connection| {
            connection
                .prepare_cached(&file_sql())?
                .query_row(params![Int(room.0), Int(file.0)], file_view_from_row)
                .optional()
        })
        .await
    }

    async fn contacts(&self, account: AccountId) -> Result<Vec<ContactView>, StoreError> {
        self.with_reader(move |connection| {
            connection
                .prepare_cached(&contacts_sql())?
                .query_map(params![Int(account.0)], |row| {
                    Ok(ContactView {
                        account: account_from_row(row, 0)?,
                        room_id: RoomId(get_u64(row, ACCOUNT_COLUMN_COUNT)?),
                    })
                })?
                .collect()
        })
        .await
    }

    async fn incoming_requests(
        &self,
        account: AccountId,
    ) -> Result<Vec<ContactRequestView>, StoreError> {
        self.with_reader(move |connection| {
            connection
                .prepare_cached(&incoming_requests_sql())?
                .query_map(params![Int(account.0)], |row| {
                    Ok(ContactRequestView {
                        request: contact_request_from_row(row)?,
                        from: account_from_row(row, CONTACT_REQUEST_COLUMN_COUNT)?,
                    })
                })?
                .collect()
        })
        .await
    }

    async fn contact_request(
        &self,
        request: RequestId,
    ) -> Result<Option<ContactRequestRow>, StoreError> {
        self.with_reader(move |connection| {
            connection
                .prepare_cached(&contact_request_sql())?
                .query_row(params![Int(request.0)], contact_request_from_row)
                .optional()
        })
        .await
    }

    async fn link_of_room(&self, room: RoomId) -> Result<Option<LinkRow>, StoreError> {
        self.with_reader(move |connection| {
            connection
                .prepare_cached(&link_of_room_sql())?
                .query_row(params![Int(room.0)], link_from_row)
                .optional()
        })
        .await
    }

    async fn link_by_code(&self, code: &str) -> Result<Option<LinkRow>, StoreError> {
        let code = code.to_owned();
        self.with_reader(move |connection| {
            connection
                .prepare_cached(&link_by_code_sql())?
                .query_row(params![code], link_from_row)
                .optional()
        })
        .await
    }

    async fn join_requests(&self, room: RoomId) -> Result<Vec<JoinRequestView>, StoreError> {
        self.with_reader(move |connection| {
            connection
                .prepare_cached(&join_requests_sql())?
                .query_map(params![Int(room.0)], |row| {
                    Ok(JoinRequestView {
                        account: account_from_row(row, 0)?,
                        at: row.get(ACCOUNT_COLUMN_COUNT)?,
                    })
                })?
                .collect()
        })
        .await
    }

    async fn ops_for(
        &self,
        account: AccountId,
        after: Position,
        up_to: Position,
        limit: usize,
    ) -> Result<Vec<OpRecord>, StoreError> {
        self.with_reader(move |connection| ops_for(connection, account, after, up_to, limit))
            .await
    }

    async fn ops_retained_from(&self) -> Result<Position, StoreError> {
        // Nothing is pruned yet: the whole history is kept.
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The query plan of a statement (every parameter bound to 1), one detail per line.
    fn plan(connection: &Connection, sql: &str) -> String {
        let mut query = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("explain");
        let parameters = std::iter::repeat_n(1_i64, query.parameter_count());
        let details: Vec<String> = query
            .query_map(rusqlite::params_from_iter(parameters), |row| {
                row.get::<_, String>(3)
            })
            .expect("query plan")
            .collect::<rusqlite::Result<_>>()
            .expect("query plan rows");
        details.join("\n")
    }

    #[test]
    fn unread_counting_reads_only_an_index_range_of_each_rooms_messages() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteReadStore::open(&dir.path().join("read.db")).expect("open");
        let writer = store.inner.writer.lock();
        let plan = plan(
            &writer,
            &format!("{ROOM_VIEWS} GROUP BY mb.room_id ORDER BY mb.room_id"),
        );
        assert!(
            !plan.contains("SCAN m ") && !plan.ends_with("SCAN m"),
            "messages must not be scanned:\n{plan}"
        );
        assert!(
            plan.contains("messages_for_unread") && plan.contains("seq>?"),
            "messages must be read through the (room_id, seq, …) index:\n{plan}"
        );
        assert!(
            plan.contains("members_by_account"),
            "memberships must be found by account:\n{plan}"
        );
        assert!(
            !plan.contains("SCAN x"),
            "mentions must be looked up:\n{plan}"
        );
    }

    #[test]
    fn ops_for_reads_only_index_ranges_of_the_accounts_rooms_and_targeted_ops() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteReadStore::open(&dir.path().join("read.db")).expect("open");
        let writer = store.inner.writer.lock();
        let plan = plan(&writer, OPS_FOR);
        assert!(
            !plan.lines().any(|line| line.starts_with("SCAN")),
            "no table may be scanned:\n{plan}"
        );
        assert!(
            plan.contains("SEARCH i USING PRIMARY KEY (account_id=?)"),
            "membership intervals must be found by account:\n{plan}"
        );
        assert!(
            plan.contains("sync_ops_by_room (room_id=? AND position>? AND position<?)"),
            "a room's ops must be read as a position range of the room index:\n{plan}"
        );
        assert!(
            plan.contains("sync_ops_by_target (target=? AND position>? AND position<?)"),
            "account-level ops must be read through the partial target index:\n{plan}"
        );
    }

    #[test]
    fn room_views_count_tasks_and_files_in_index_ranges_of_the_room() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteReadStore::open(&dir.path().join("read.db")).expect("open");
        let writer = store.inner.writer.lock();
        let plan = plan(
            &writer,
            &format!("{ROOM_VIEWS} GROUP BY mb.room_id ORDER BY mb.room_id"),
        );
        assert!(
            !plan.lines().any(|line| line.starts_with("SCAN")),
            "no table may be scanned:\n{plan}"
        );
        assert!(
            plan.contains(
                "SEARCH mt USING COVERING INDEX tasks_by_room \
                 (room_id=? AND account_id=? AND status=?)"
            ),
            "the viewer's open tasks must be counted in one index range:\n{plan}"
        );
        assert!(
            plan.contains("SEARCH t USING COVERING INDEX tasks_by_room (room_id=?)"),
            "the room's tasks must be counted in the room's index range:\n{plan}"
        );
        assert!(
            plan.contains("SEARCH f USING COVERING INDEX files_by_room (room_id=?)"),
            "the room's files must be counted in the room's index range:\n{plan}"
        );
    }

    #[test]
    fn per_room_and_per_account_queries_read_index_ranges_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteReadStore::open(&dir.path().join("read.db")).expect("open");
        let writer = store.inner.writer.lock();
        let expectations = [
            (
                tasks_of_room_sql(),
                "SEARCH t USING INDEX tasks_by_room (room_id=?)",
            ),
            (task_sql(), "SEARCH t USING INTEGER PRIMARY KEY (rowid=?)"),
            (
                tasks_of_account_sql(),
                "SEARCH t USING INDEX tasks_by_room (room_id=? AND account_id=?)",
            ),
            (
                files_of_room_sql(),
                "SEARCH f USING INDEX files_by_room (room_id=?)",
            ),
            (file_sql(), "SEARCH f USING INTEGER PRIMARY KEY (rowid=?)"),
            (contacts_sql(), "SEARCH c USING PRIMARY KEY (account_id=?)"),
            (
                incoming_requests_sql(),
                "SEARCH q USING INDEX contact_requests_by_recipient (to_account_id=?)",
            ),
            (
                contact_request_sql(),
                "SEARCH q USING INTEGER PRIMARY KEY (rowid=?)",
            ),
            (
                link_of_room_sql(),
                "SEARCH l USING INTEGER PRIMARY KEY (rowid=?)",
            ),
            (link_by_code_sql(), "(code=?)"),
            (
                join_requests_sql(),
                "SEARCH j USING PRIMARY KEY (room_id=?)",
            ),
        ];
        for (sql, expected) in expectations {
            let plan = plan(&writer, &sql);
            assert!(
                !plan.lines().any(|line| line.starts_with("SCAN")),
                "no table may be scanned:\n{sql}\n{plan}"
            );
            assert!(
                plan.contains(expected),
                "expected `{expected}` in the plan of\n{sql}\n{plan}"
            );
        }
        let plan = plan(&writer, &tasks_of_account_sql());
        assert!(
            plan.contains("members_by_account (account_id=?)"),
            "tasks_of_account must start from the account's memberships:\n{plan}"
        );
    }

    #[test]
    fn the_schema_creates_messages_as_the_migration_does() {
        assert!(SCHEMA.contains(&format!(
            "CREATE TABLE IF NOT EXISTS messages (\n    {MESSAGES_TABLE}\n);"
        )));
    }

    #[tokio::test]
    async fn a_version_3_file_gets_its_messages_copied_into_a_table_without_a_key()
    -> Result<(), StoreError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("read.db");
        let room_id = RoomId(100);
        let message = |seq: u64, body: &str| MessageRow {
            room_id,
            message_id: MessageId(1_000 + seq),
            seq,
            account_id: AccountId(1),
            body: body.to_owned(),
            send_time: 7,
            update_time: 0,
            mentions: vec![AccountId(2)],
            to_all: false,
        };
        let store = SqliteReadStore::open(&path)?;
        store
            .apply(
                vec![
                    Change::PutRoom(RoomRow {
                        room_id,
                        room_type: RoomType::Group,
                        name: "Room".to_owned(),
                        description: String::new(),
                        icon_preset: "group".to_owned(),
                        last_seq: 0,
                        message_num: 0,
                        last_update_time: 0,
                    }),
                    Change::InsertMessage(message(1, "one")),
                    Change::InsertMessage(message(2, "two")),
                ],
                1,
            )
            .await?;
        let before = store.dump().await?;
        drop(store);
        Connection::open(&path)
            .and_then(|connection| {
                connection.execute_batch(
                    "ALTER TABLE messages RENAME TO unkeyed;
                     DROP INDEX messages_by_id; DROP INDEX messages_for_unread;
                     CREATE TABLE messages (
                         room_id INTEGER NOT NULL, seq INTEGER NOT NULL,
                         account_id INTEGER NOT NULL, to_all INTEGER NOT NULL,
                         message_id INTEGER NOT NULL, send_time INTEGER NOT NULL,
                         update_time INTEGER NOT NULL, body TEXT NOT NULL,
                         PRIMARY KEY (room_id, seq));
                     CREATE UNIQUE INDEX messages_by_id ON messages (room_id, message_id);
                     CREATE INDEX messages_for_unread
                         ON messages (room_id, seq, account_id, to_all);
                     INSERT INTO messages SELECT * FROM unkeyed;
                     DROP TABLE unkeyed;
                     PRAGMA user_version = 3;",
                )
            })
            .expect("make a version 3 file");

        let store = SqliteReadStore::open(&path)?;
        assert_eq!(store.dump().await?, before);
        {
            let writer = store.inner.writer.lock();
            let indexes: Vec<String> = writer
                .prepare(
                    "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'messages'
                     ORDER BY name",
                )
                .and_then(|mut query| {
                    query
                        .query_map([], |row| row.get(0))?
                        .collect::<rusqlite::Result<_>>()
                })
                .expect("indexes");
            assert_eq!(indexes, ["messages_by_id", "messages_for_unread"]);
            let version: i64 = writer
                .pragma_query_value(None, "user_version", |row| row.get(0))
                .expect("user_version");
            assert_eq!(version, SCHEMA_VERSION);
        }
        // A taken seq is still replaced, not duplicated.
        store
            .apply(vec![Change::InsertMessage(message(2, "two again"))], 2)
            .await?;
        let view = store
            .latest_messages(room_id, 10)
            .await?
            .into_iter()
            .map(|view| view.message.body)
            .collect::<Vec<_>>();
        assert_eq!(view, ["one", "two again"]);
        Ok(())
    }

    #[tokio::test]
    async fn a_version_2_file_gets_the_task_file_contact_and_link_tables() -> Result<(), StoreError>
    {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("read.db");
        let room = RoomRow {
            room_id: RoomId(100),
            room_type: RoomType::Group,
            name: "Room".to_owned(),
            description: String::new(),
            icon_preset: "group".to_owned(),
            last_seq: 0,
            message_num: 0,
            last_update_time: 0,
        };
        let store = SqliteReadStore::open(&path)?;
        store
            .apply(
                vec![
                    Change::PutRoom(room.clone()),
                    Change::PutMember {
                        room_id: RoomId(100),
                        account_id: AccountId(1),
                        role: Role::Admin,
                    },
                ],
                1,
            )
            .await?;
        drop(store);
        Connection::open(&path)
            .and_then(|connection| {
                connection.execute_batch(
                    "DROP TABLE tasks; DROP TABLE files; DROP TABLE contacts;
                     DROP TABLE contact_requests; DROP TABLE links; DROP TABLE join_requests;
                     PRAGMA user_version = 2;",
                )
            })
            .expect("make a version 2 file");

        let store = SqliteReadStore::open(&path)?;
        let task = TaskRow {
            task_id: TaskId(7),
            room_id: RoomId(100),
            account_id: AccountId(1),
            assigned_by: AccountId(1),
            message_id: MessageId(9),
            body: "do it".to_owned(),
            limit_time: 0,
            limit_type: "none".to_owned(),
            status: "open".to_owned(),
        };
        let link = LinkRow {
            room_id: RoomId(100),
            code: "abc".to_owned(),
            need_acceptance: false,
            description: String::new(),
        };
        store
            .apply(
                vec![Change::PutTask(task.clone()), Change::SetLink(link.clone())],
                2,
            )
            .await?;
        let view = store
            .room_of(AccountId(1), RoomId(100))
            .await?
            .expect("the old file's membership is kept");
        assert_eq!((view.room, view.mytask_num, view.task_num), (room, 1, 1));
        assert_eq!(
            store
                .task(RoomId(100), TaskId(7))
                .await?
                .map(|view| view.task),
            Some(task)
        );
        assert_eq!(store.link_by_code("abc").await?, Some(link));
        let version: i64 = store
            .inner
            .writer
            .lock()
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .expect("user_version");
        assert_eq!(version, SCHEMA_VERSION);
        Ok(())
    }

    #[tokio::test]
    async fn a_version_1_file_gets_the_sync_tables() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("read.db");
        drop(SqliteReadStore::open(&path)?);
        Connection::open(&path)
            .and_then(|connection| {
                connection.execute_batch(
                    "DROP TABLE sync_ops; DROP TABLE membership_intervals;
                     PRAGMA user_version = 1;",
                )
            })
            .expect("make a version 1 file");

        let store = SqliteReadStore::open(&path)?;
        let op = OpRecord {
            position: 1,
            index: 0,
            room_id: Some(RoomId(100)),
            target: None,
            op_type: "room_created".to_owned(),
            payload: "{}".to_owned(),
        };
        store
            .apply(
                vec![
                    Change::OpenMembership {
                        room_id: RoomId(100),
                        account_id: AccountId(1),
                        from: 1,
                    },
                    Change::RecordOps(vec![op.clone()]),
                ],
                1,
            )
            .await?;
        assert_eq!(store.ops_for(AccountId(1), 0, 1, 10).await?, vec![op]);
        let version: i64 = store
            .inner
            .writer
            .lock()
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .expect("user_version");
        assert_eq!(version, SCHEMA_VERSION);
        Ok(())
    }

    #[tokio::test]
    async fn batches_of_random_changes_give_the_in_memory_references_models()
    -> Result<(), StoreError> {
        let dir = tempfile::tempdir().expect("temp dir");
        hayabusa_store::conformance::random_batches::random_batches_match_the_in_memory_store(
            |seed| {
                let path = dir.path().join(format!("read-{seed}.db"));
                async move { SqliteReadStore::open(&path).expect("open the read store") }
            },
            16,
            40,
        )
        .await
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("read.db");
        drop(SqliteReadStore::open(&path).expect("open"));
        Connection::open(&path)
            .and_then(|connection| connection.pragma_update(None, "user_version", 99))
            .expect("bump the schema version");
        assert!(matches!(
            SqliteReadStore::open(&path),
            Err(StoreError::Corrupt(_))
        ));
    }
}
