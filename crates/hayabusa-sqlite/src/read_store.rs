//! The read store on SQLite: the embedded adapter of the read store port.
//!
//! One database file holds the read models (accounts, rooms, members with their read
//! cursors, messages, mentions, sync ops and membership intervals), the projector's
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
//! - **Schema.** Created on open; its version is `PRAGMA user_version`. A file with a
//!   newer version than this code knows is refused; an older one gets the tables it
//!   lacks (the schema is all `CREATE … IF NOT EXISTS`).
//!
//! Ids and sequence numbers are `u64` in Rust and signed 64-bit integers in SQLite;
//! a value above `i64::MAX` is refused rather than wrapped.

use async_trait::async_trait;
use hayabusa_domain::{AccountId, MessageId, OrganizationId, Role, RoomId, RoomType};
use hayabusa_store::memory_read_store::CanonicalDump;
use hayabusa_store::{
    AccountRow, Change, MemberView, MessageRow, MessageView, OpRecord, Position, ReadModelQueries,
    ReadModelWriter, RoomRow, RoomView, StatusCounts, StoreError,
};
use parking_lot::Mutex;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Row, ToSql, Transaction,
    TransactionBehavior, params,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The schema version this code writes and reads (`PRAGMA user_version`).
///
/// 2 added `sync_ops` and `membership_intervals`; a version 1 file gets them on open.
const SCHEMA_VERSION: i64 = 2;

/// Reader connections kept open between queries.
const MAX_IDLE_READERS: usize = 4;

/// How long a connection waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The whole schema, idempotent.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    position INTEGER NOT NULL
);
INSERT OR IGNORE INTO checkpoint (id, position) VALUES (0, 0);

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
    body TEXT NOT NULL,
    PRIMARY KEY (room_id, seq)
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
";

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
const ROOM_VIEWS: &str = "
SELECT r.room_id, r.room_type, r.name, r.description, r.icon_preset,
       r.last_seq, r.message_num, r.last_update_time, mb.role,
       COUNT(m.seq),
       COALESCE(SUM(m.to_all OR EXISTS (
           SELECT 1 FROM mentions x
           WHERE x.room_id = m.room_id AND x.seq = m.seq AND x.account_id = mb.account_id
       )), 0)
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

/// A read store in one SQLite file. Cheap to clone; clones share the connections.
#[derive(Clone, Debug)]
pub struct SqliteReadStore {
    inner: Arc<Inner>,
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
        let writer = Connection::open(path).map_err(store_error)?;
        configure(&writer).map_err(store_error)?;
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(store_error)?;
        writer
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(store_error)?;
        migrate(&writer)?;
        tracing::debug!(path = %path.display(), schema_version = SCHEMA_VERSION, "read store opened");
        Ok(SqliteReadStore {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer: Mutex::new(writer),
                idle_readers: Mutex::new(Vec::new()),
            }),
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
    connection.set_prepared_statement_cache_capacity(64);
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
    connection
        .execute_batch(&format!(
            "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
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

fn apply_batch(
    connection: &mut Connection,
    changes: Vec<Change>,
    checkpoint: Position,
) -> rusqlite::Result<()> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if checkpoint <= stored_checkpoint(&transaction)? {
        // Already applied: dropping the transaction rolls it back.
        return Ok(());
    }
    for change in changes {
        apply_change(&transaction, change)?;
    }
    transaction
        .prepare_cached("UPDATE checkpoint SET position = ?1 WHERE id = 0")?
        .execute(params![Int(checkpoint)])?;
    transaction.commit()
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
    let mut insert = transaction.prepare_cached(
        "INSERT OR IGNORE INTO mentions (room_id, seq, account_id) VALUES (?1, ?2, ?3)",
    )?;
    for account in mentions {
        insert.execute(params![Int(room_id.0), Int(seq), Int(account.0)])?;
    }
    Ok(())
}

fn apply_change(transaction: &Transaction<'_>, change: Change) -> rusqlite::Result<()> {
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
            for table in ["rooms", "members", "messages", "mentions", "fetch_cursors"] {
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
        Change::InsertMessage(message) => insert_message(transaction, message)?,
        Change::EditMessage {
            room_id,
            message_id,
            body,
            mentions,
            to_all,
            at,
        } => {
            let Some(seq) = seq_of(transaction, room_id, message_id)? else {
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
            insert_mentions(transaction, room_id, seq, &mentions)?;
            transaction
                .prepare_cached("UPDATE rooms SET last_update_time = ?2 WHERE room_id = ?1")?
                .execute(params![Int(room_id.0), at])?;
        }
        Change::DeleteMessage {
            room_id,
            message_id,
            at,
        } => {
            let Some(seq) = seq_of(transaction, room_id, message_id)? else {
                return Ok(());
            };
            remove_message(transaction, room_id, seq)?;
            transaction
                .prepare_cached(
                    "UPDATE rooms SET message_num = MAX(message_num - 1, 0), last_update_time = ?2
                     WHERE room_id = ?1",
                )?
                .execute(params![Int(room_id.0), at])?;
        }
        Change::SetReadCursor {
            account_id,
            room_id,
            read_seq,
        } => {
            transaction
                .prepare_cached(
                    "UPDATE members SET read_seq = ?3 WHERE room_id = ?1 AND account_id = ?2",
                )?
                .execute(params![Int(room_id.0), Int(account_id.0), Int(read_seq)])?;
        }
        Change::RecordOps(ops) => {
            let mut insert = transaction.prepare_cached(
                "INSERT OR REPLACE INTO sync_ops (position, idx, room_id, target, op_type, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for op in ops {
                insert.execute(params![
                    Int(op.position),
                    op.index,
                    op.room_id.map(|room| Int(room.0)),
                    op.target.map(|target| Int(target.0)),
                    op.op_type,
                    op.payload,
                ])?;
            }
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
                .execute(params![Int(account_id.0), Int(room_id.0), Int(from)])?;
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
                .execute(params![Int(account_id.0), Int(room_id.0), Int(to)])?;
        }
    }
    Ok(())
}

fn insert_message(transaction: &Transaction<'_>, message: MessageRow) -> rusqlite::Result<()> {
    let room_id = message.room_id;
    // A replayed or conflicting insert replaces what is there instead of counting twice.
    let replaced: Vec<u64> = transaction
        .prepare_cached(
            "SELECT seq FROM messages WHERE room_id = ?1 AND (seq = ?2 OR message_id = ?3)",
        )?
        .query_map(
            params![Int(room_id.0), Int(message.seq), Int(message.message_id.0)],
            |row| get_u64(row, 0),
        )?
        .collect::<rusqlite::Result<_>>()?;
    for &seq in &replaced {
        remove_message(transaction, room_id, seq)?;
    }
    transaction
        .prepare_cached(
            "INSERT INTO messages (room_id, seq, account_id, to_all, message_id, send_time,
                 update_time, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            Int(room_id.0),
            Int(message.seq),
            Int(message.account_id.0),
            message.to_all,
            Int(message.message_id.0),
            message.send_time,
            message.update_time,
            message.body,
        ])?;
    insert_mentions(transaction, room_id, message.seq, &message.mentions)?;
    let replaced_count = i64::try_from(replaced.len()).unwrap_or(i64::MAX);
    transaction
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
    transaction.commit()?;
    Ok(dump.finish())
}

#[async_trait]
impl ReadModelWriter for SqliteReadStore {
    async fn apply(&self, changes: Vec<Change>, checkpoint: Position) -> Result<(), StoreError> {
        self.with_writer(move |connection| apply_batch(connection, changes, checkpoint))
            .await
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
                for id in ids {
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
        Ok(rooms
            .iter()
            .fold(StatusCounts::default(), |mut totals, room| {
                totals.unread_room_num += u64::from(room.unread_num > 0);
                totals.mention_room_num += u64::from(room.mention_num > 0);
                totals.unread_num += room.unread_num;
                totals.mention_num += room.mention_num;
                totals
            }))
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
