//! Writing: [`ReadModelWriter`] on PostgreSQL.
//!
//! One batch is one transaction. It locks the checkpoint row (`SELECT … FOR UPDATE`,
//! so two writers never interleave), skips a batch at or below the stored checkpoint,
//! refuses one from a stale writer (see [`PgReadStore`]'s fence), applies the changes
//! and moves the checkpoint with `UPDATE … WHERE position = <the one it read>`.
//!
//! Catch-up is mostly `message_posted`: a message insert, the author's read cursor and
//! one sync op each. Runs of those three kinds of change are gathered and written as
//! one statement per kind, whatever the run's length: a binary `COPY` where the rows
//! are known to be new, otherwise a statement with every row's columns passed as
//! arrays and spread by `UNNEST`. Every other change is one prepared statement (or
//! two) of its own, after writing what was gathered. The result is the same rows as
//! applying each change on its own, in order:
//! - gathered messages are copied in when each seq is above its room's stored ones
//!   (one index probe per room) and no stored message has one of their ids (one probe
//!   per message): how posting goes. Otherwise (or when two of the run share a seq or
//!   id) each message of the run is inserted on its own, replacing what holds its seq
//!   or id, as the in-memory reference does;
//! - room counters of inserted messages add up per room (`last_seq` a maximum,
//!   `message_num` a sum, `last_update_time` the last value), one `UPDATE … FROM
//!   UNNEST` for all rooms;
//! - the last read cursor per membership (one `UPDATE … FROM UNNEST`) and the last op
//!   per (position, index) win; ops above the highest stored position (catch-up's)
//!   are copied in, others upserted (`INSERT … SELECT … FROM UNNEST … ON CONFLICT`).
//!
//! Gathered changes touch different rows (messages and room counters, sync ops,
//! members' read cursors), and every other change writes what was gathered first, so
//! writing by kind rather than interleaved changes nothing.

use crate::store::PgReadStore;
use crate::values::{get_bool, get_opt_u64, get_u64, sql_int, store_error};
use deadpool_postgres::Transaction;
use hayabusa_domain::{AccountId, RoomId};
use hayabusa_store::canonical::normalized_mentions;
use hayabusa_store::{Change, MessageRow, OpRecord, Position, StoreError};
use std::collections::{BTreeMap, HashMap, HashSet};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

/// The stored checkpoint, locked until the transaction ends.
const LOCK_CHECKPOINT: &str = "SELECT position FROM checkpoint WHERE id = 0 FOR UPDATE";

/// Moves the checkpoint from `$2` to `$1`; no row if it is not at `$2`.
const MOVE_CHECKPOINT: &str = "UPDATE checkpoint SET position = $1 WHERE id = 0 AND position = $2";

/// The highest seq of each room in `$1` (NULL: it has no message), one index probe
/// per room.
const ROOM_MAX_SEQS: &str = "
SELECT r.room_id,
       (SELECT m.seq FROM messages m WHERE m.room_id = r.room_id ORDER BY m.seq DESC LIMIT 1)
FROM UNNEST($1::BIGINT[]) AS r (room_id)";

/// Whether a stored message has the room and id of one of `($1, $2)`.
const IDS_TAKEN: &str = "
SELECT EXISTS (
    SELECT 1 FROM UNNEST($1::BIGINT[], $2::BIGINT[]) AS n (room_id, message_id)
    JOIN messages m ON m.room_id = n.room_id AND m.message_id = n.message_id
)";

/// Copies a run of messages in; the caller made sure that none of them holds a stored
/// seq or id. Columns in the order of [`MESSAGE_COPY_TYPES`].
const COPY_MESSAGES: &str = "COPY messages (room_id, seq, message_id, account_id, to_all, \
    mentions, send_time, update_time, body) FROM STDIN (FORMAT binary)";

/// The column types of [`COPY_MESSAGES`].
const MESSAGE_COPY_TYPES: [Type; 9] = [
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::BOOL,
    Type::INT8_ARRAY,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
];

/// Adds the counters of messages inserted in bulk to their rooms.
const ADD_ROOM_COUNTERS: &str = "
UPDATE rooms SET last_seq = GREATEST(rooms.last_seq, c.last_seq),
                 message_num = rooms.message_num + c.inserted,
                 last_update_time = c.last_update_time
FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[])
    AS c (room_id, last_seq, inserted, last_update_time)
WHERE rooms.room_id = c.room_id";

/// Removes what holds a message's seq or id, before it replaces them.
const REMOVE_SEQ_OR_ID: &str =
    "DELETE FROM messages WHERE room_id = $1 AND (seq = $2 OR message_id = $3)";

/// One message.
const INSERT_MESSAGE: &str = "
INSERT INTO messages (room_id, seq, message_id, account_id, to_all, mentions, send_time,
                      update_time, body)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// The counters of one message that replaced `$3` others.
const COUNT_REPLACING_MESSAGE: &str = "
UPDATE rooms SET last_seq = GREATEST(last_seq, $2),
                 message_num = GREATEST(message_num + 1 - $3, 0),
                 last_update_time = $4
WHERE room_id = $1";

/// The highest position of a stored op (NULL: none).
const MAX_OP_POSITION: &str = "SELECT MAX(position) FROM sync_ops";

/// Copies sync ops in, all at positions above every stored op's. Columns in the order
/// of [`OP_COPY_TYPES`].
const COPY_OPS: &str = "COPY sync_ops (position, idx, room_id, target, op_type, payload) \
    FROM STDIN (FORMAT binary)";

/// The column types of [`COPY_OPS`].
const OP_COPY_TYPES: [Type; 6] = [
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
];

/// Records sync ops given as arrays (one per (position, index)), replacing stored ones.
const UPSERT_OPS: &str = "
INSERT INTO sync_ops (position, idx, room_id, target, op_type, payload)
SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], $5::TEXT[],
                     $6::TEXT[])
ON CONFLICT (position, idx) DO UPDATE SET room_id = EXCLUDED.room_id,
    target = EXCLUDED.target, op_type = EXCLUDED.op_type, payload = EXCLUDED.payload";

/// Sets read cursors given as arrays (one per membership); non-members are ignored.
const SET_READ_CURSORS: &str = "
UPDATE members SET read_seq = c.read_seq
FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[]) AS c (room_id, account_id, read_seq)
WHERE members.room_id = c.room_id AND members.account_id = c.account_id";

const PUT_ACCOUNT: &str = "
INSERT INTO accounts (account_id, my_room_id, organization_id, organization_name, name, mail,
                      department, title, admin, token_hash, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (account_id) DO UPDATE SET my_room_id = EXCLUDED.my_room_id,
    organization_id = EXCLUDED.organization_id,
    organization_name = EXCLUDED.organization_name, name = EXCLUDED.name,
    mail = EXCLUDED.mail, department = EXCLUDED.department, title = EXCLUDED.title,
    admin = EXCLUDED.admin, token_hash = EXCLUDED.token_hash,
    created_at = EXCLUDED.created_at";

const SET_TOKEN_HASH: &str = "UPDATE accounts SET token_hash = $2 WHERE account_id = $1";

const PUT_ROOM: &str = "
INSERT INTO rooms (room_id, room_type, name, description, icon_preset, last_seq, message_num,
                   last_update_time)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (room_id) DO UPDATE SET room_type = EXCLUDED.room_type, name = EXCLUDED.name,
    description = EXCLUDED.description, icon_preset = EXCLUDED.icon_preset,
    last_seq = EXCLUDED.last_seq, message_num = EXCLUDED.message_num,
    last_update_time = EXCLUDED.last_update_time";

const UPDATE_ROOM: &str = "
UPDATE rooms SET name = COALESCE($2, name), description = COALESCE($3, description),
                 icon_preset = COALESCE($4, icon_preset), last_update_time = $5
WHERE room_id = $1";

/// The tables a deleted room is removed from. Its sync ops and membership intervals
/// stay (history members resume from), and so do the contacts whose direct room it
/// is (the relation is not the room's).
const DELETE_ROOM: [&str; 8] = [
    "DELETE FROM rooms WHERE room_id = $1",
    "DELETE FROM members WHERE room_id = $1",
    "DELETE FROM messages WHERE room_id = $1",
    "DELETE FROM fetch_cursors WHERE room_id = $1",
    "DELETE FROM tasks WHERE room_id = $1",
    "DELETE FROM files WHERE room_id = $1",
    "DELETE FROM links WHERE room_id = $1",
    "DELETE FROM join_requests WHERE room_id = $1",
];

/// A new member's read cursor starts at the room's last seq; an existing member
/// keeps its cursor and changes role.
const PUT_MEMBER: &str = "
INSERT INTO members (room_id, account_id, role, read_seq)
VALUES ($1, $2, $3, COALESCE((SELECT last_seq FROM rooms WHERE room_id = $1), 0))
ON CONFLICT (room_id, account_id) DO UPDATE SET role = EXCLUDED.role";

const REMOVE_MEMBER: &str = "DELETE FROM members WHERE room_id = $1 AND account_id = $2";

const EDIT_MESSAGE: &str = "
UPDATE messages SET body = $3, mentions = $4, to_all = $5, update_time = $6
WHERE room_id = $1 AND message_id = $2";

const TOUCH_ROOM: &str = "UPDATE rooms SET last_update_time = $2 WHERE room_id = $1";

const DELETE_MESSAGE: &str = "DELETE FROM messages WHERE room_id = $1 AND message_id = $2";

const COUNT_DELETED_MESSAGE: &str = "
UPDATE rooms SET message_num = GREATEST(message_num - 1, 0), last_update_time = $2
WHERE room_id = $1";

/// Nothing if an interval is open; a closed one starting at `$3` reopens.
const OPEN_MEMBERSHIP: &str = "
INSERT INTO membership_intervals (account_id, room_id, from_position, to_position)
SELECT $1::BIGINT, $2::BIGINT, $3::BIGINT, CAST(NULL AS BIGINT)
WHERE NOT EXISTS (SELECT 1 FROM membership_intervals
                  WHERE account_id = $1 AND room_id = $2 AND to_position IS NULL)
ON CONFLICT (account_id, room_id, from_position) DO UPDATE SET to_position = NULL";

const CLOSE_MEMBERSHIP: &str = "
UPDATE membership_intervals SET to_position = $3
WHERE account_id = $1 AND room_id = $2 AND to_position IS NULL";

const PUT_TASK: &str = "
INSERT INTO tasks (task_id, room_id, account_id, assigned_by, message_id, body, limit_time,
                   limit_type, status)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (task_id) DO UPDATE SET room_id = EXCLUDED.room_id,
    account_id = EXCLUDED.account_id, assigned_by = EXCLUDED.assigned_by,
    message_id = EXCLUDED.message_id, body = EXCLUDED.body,
    limit_time = EXCLUDED.limit_time, limit_type = EXCLUDED.limit_type,
    status = EXCLUDED.status";

const SET_TASK_STATUS: &str = "UPDATE tasks SET status = $2 WHERE task_id = $1";

const PUT_FILE: &str = "
INSERT INTO files (file_id, room_id, account_id, message_id, filename, filesize, upload_time,
                   blob_key)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (file_id) DO UPDATE SET room_id = EXCLUDED.room_id,
    account_id = EXCLUDED.account_id, message_id = EXCLUDED.message_id,
    filename = EXCLUDED.filename, filesize = EXCLUDED.filesize,
    upload_time = EXCLUDED.upload_time, blob_key = EXCLUDED.blob_key";

const PUT_CONTACT: &str = "
INSERT INTO contacts (account_id, contact_id, room_id) VALUES ($1, $2, $3)
ON CONFLICT (account_id, contact_id) DO UPDATE SET room_id = EXCLUDED.room_id";

const REMOVE_CONTACT: &str = "DELETE FROM contacts WHERE account_id = $1 AND contact_id = $2";

const PUT_CONTACT_REQUEST: &str = "
INSERT INTO contact_requests (request_id, from_account_id, to_account_id, message, at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (request_id) DO UPDATE SET from_account_id = EXCLUDED.from_account_id,
    to_account_id = EXCLUDED.to_account_id, message = EXCLUDED.message, at = EXCLUDED.at";

const REMOVE_CONTACT_REQUEST: &str = "DELETE FROM contact_requests WHERE request_id = $1";

/// A code names at most one link: another room's link with the code goes first.
const TAKE_LINK_CODE: &str = "DELETE FROM links WHERE code = $2 AND room_id <> $1";

const SET_LINK: &str = "
INSERT INTO links (room_id, code, need_acceptance, description) VALUES ($1, $2, $3, $4)
ON CONFLICT (room_id) DO UPDATE SET code = EXCLUDED.code,
    need_acceptance = EXCLUDED.need_acceptance, description = EXCLUDED.description";

const REMOVE_LINK: &str = "DELETE FROM links WHERE room_id = $1";

const PUT_JOIN_REQUEST: &str = "
INSERT INTO join_requests (room_id, account_id, at) VALUES ($1, $2, $3)
ON CONFLICT (room_id, account_id) DO UPDATE SET at = EXCLUDED.at";

const REMOVE_JOIN_REQUEST: &str =
    "DELETE FROM join_requests WHERE room_id = $1 AND account_id = $2";

/// Every read model table; `reset` empties them (fetch cursors stay).
const MODEL_TABLES: &str = "accounts, rooms, members, messages, sync_ops, membership_intervals, \
    tasks, files, contacts, contact_requests, links, join_requests";

/// Runs one statement (prepared once per connection) and returns the rows it changed.
async fn run(
    transaction: &Transaction<'_>,
    sql: &str,
    parameters: &[&(dyn ToSql + Sync)],
) -> Result<u64, StoreError> {
    let statement = transaction.prepare_cached(sql).await.map_err(store_error)?;
    transaction
        .execute(&statement, parameters)
        .await
        .map_err(store_error)
}

/// The error for a batch whose writer is not where the stored checkpoint is.
fn stale_writer(expected: Position, actual: Position) -> StoreError {
    StoreError::Conflict {
        stream: "read store checkpoint".to_owned(),
        expected: expected.to_string(),
        actual,
    }
}

/// [`ReadModelWriter::apply`](hayabusa_store::ReadModelWriter::apply).
///
/// With a projector lease `fence`, the batch is refused unless the fence is the
/// lease's latest ([`crate::leases::check_projector_fence`]); the lease then decides
/// who writes, in place of this store's remembered checkpoint.
pub(crate) async fn apply(
    store: &PgReadStore,
    changes: &[Change],
    checkpoint: Position,
    fence: Option<u64>,
) -> Result<(), StoreError> {
    let new_checkpoint = sql_int(checkpoint)?;
    let mut client = store.client().await?;
    let transaction = client.transaction().await.map_err(store_error)?;
    if let Some(fence) = fence {
        crate::leases::check_projector_fence(&transaction, fence).await?;
    }
    let lock = transaction
        .prepare_cached(LOCK_CHECKPOINT)
        .await
        .map_err(store_error)?;
    let stored = get_u64(
        &transaction
            .query_one(&lock, &[])
            .await
            .map_err(store_error)?,
        0,
    )?;
    if checkpoint <= stored {
        transaction.rollback().await.map_err(store_error)?;
        if checkpoint == stored {
            // This very batch is in (say the answer to its commit was lost): the next
            // one starts here.
            store.note_written_checkpoint(stored);
        }
        return Ok(());
    }
    if let Some(expected) = store.fence()
        && fence.is_none()
        && expected != stored
    {
        transaction.rollback().await.map_err(store_error)?;
        tracing::warn!(
            expected,
            stored,
            "read store batch refused: another writer moved the checkpoint"
        );
        return Err(stale_writer(expected, stored));
    }
    let mut pending = Pending::default();
    for change in changes {
        pending.apply(&transaction, change).await?;
    }
    pending.flush(&transaction).await?;
    let old_checkpoint = sql_int(stored)?;
    if run(
        &transaction,
        MOVE_CHECKPOINT,
        &[&new_checkpoint, &old_checkpoint],
    )
    .await?
        != 1
    {
        // Cannot happen while the row is locked; dropping the transaction rolls back.
        return Err(StoreError::Unavailable(
            "read store: the checkpoint moved during the batch".to_owned(),
        ));
    }
    transaction.commit().await.map_err(store_error)?;
    store.note_written_checkpoint(checkpoint);
    Ok(())
}

/// [`ReadModelWriter::checkpoint`](hayabusa_store::ReadModelWriter::checkpoint).
pub(crate) async fn checkpoint(store: &PgReadStore) -> Result<Position, StoreError> {
    let client = store.client().await?;
    let statement = client
        .prepare_cached("SELECT position FROM checkpoint WHERE id = 0")
        .await
        .map_err(store_error)?;
    let row = client
        .query_one(&statement, &[])
        .await
        .map_err(store_error)?;
    let checkpoint = get_u64(&row, 0)?;
    store.note_read_checkpoint(checkpoint);
    Ok(checkpoint)
}

/// [`ReadModelWriter::reset`](hayabusa_store::ReadModelWriter::reset): empties every
/// read model and sets the checkpoint to 0, in one transaction. Fetch cursors stay.
pub(crate) async fn reset(store: &PgReadStore) -> Result<(), StoreError> {
    let mut client = store.client().await?;
    let transaction = client.transaction().await.map_err(store_error)?;
    transaction
        .batch_execute(&format!(
            "TRUNCATE {MODEL_TABLES}, snapshots; UPDATE checkpoint SET position = 0 WHERE id = 0;"
        ))
        .await
        .map_err(store_error)?;
    transaction.commit().await.map_err(store_error)?;
    store.note_written_checkpoint(0);
    Ok(())
}

/// What a run of inserted messages does to one room's counters, not yet written.
#[derive(Clone, Copy, Debug)]
struct RoomCounters {
    /// The highest seq inserted.
    last_seq: u64,
    /// How many messages were inserted.
    inserted: u64,
    /// The send time of the last one.
    last_update_time: i64,
}

/// The changes gathered since the last write, in order.
#[derive(Default)]
struct Pending<'c> {
    messages: Vec<&'c MessageRow>,
    ops: Vec<&'c OpRecord>,
    cursors: Vec<(RoomId, AccountId, u64)>,
}

impl<'c> Pending<'c> {
    /// Gathers a message insert, read cursor or ops; writes anything else at once,
    /// after what was gathered.
    async fn apply(
        &mut self,
        transaction: &Transaction<'_>,
        change: &'c Change,
    ) -> Result<(), StoreError> {
        match change {
            Change::InsertMessage(message) => self.messages.push(message),
            Change::SetReadCursor {
                account_id,
                room_id,
                read_seq,
            } => self.cursors.push((*room_id, *account_id, *read_seq)),
            Change::RecordOps(ops) => self.ops.extend(ops),
            other => {
                self.flush(transaction).await?;
                apply_change(transaction, other).await?;
            }
        }
        Ok(())
    }

    /// Writes everything gathered.
    async fn flush(&mut self, transaction: &Transaction<'_>) -> Result<(), StoreError> {
        let messages = std::mem::take(&mut self.messages);
        write_messages(transaction, &messages).await?;
        let ops = std::mem::take(&mut self.ops);
        write_ops(transaction, &ops).await?;
        let cursors = std::mem::take(&mut self.cursors);
        write_cursors(transaction, &cursors).await
    }
}

/// Whether two messages of the run share a room and a seq or a message id.
fn share_a_key(messages: &[&MessageRow]) -> bool {
    let mut seqs = HashSet::with_capacity(messages.len());
    let mut ids = HashSet::with_capacity(messages.len());
    messages.iter().any(|message| {
        !seqs.insert((message.room_id, message.seq))
            || !ids.insert((message.room_id, message.message_id))
    })
}

/// A mention list as a `BIGINT[]` parameter, sorted and deduplicated.
fn mention_ids(mentions: &[AccountId]) -> Result<Vec<i64>, StoreError> {
    normalized_mentions(mentions.to_vec())
        .into_iter()
        .map(|id| sql_int(id.0))
        .collect()
}

/// Inserts a run of messages, in order (see the module's documentation).
async fn write_messages(
    transaction: &Transaction<'_>,
    messages: &[&MessageRow],
) -> Result<(), StoreError> {
    if messages.is_empty() {
        return Ok(());
    }
    if !share_a_key(messages) && insert_new_messages(transaction, messages).await? {
        return Ok(());
    }
    for message in messages {
        insert_replacing(transaction, message).await?;
    }
    Ok(())
}

/// Inserts the messages in one statement and adds up their room counters, if no
/// stored message holds one's seq or id; false (and nothing written) otherwise or if
/// a seq is not above its room's stored ones (then they go one at a time).
async fn insert_new_messages(
    transaction: &Transaction<'_>,
    messages: &[&MessageRow],
) -> Result<bool, StoreError> {
    let count = messages.len();
    let mut room_ids = Vec::with_capacity(count);
    let mut message_ids = Vec::with_capacity(count);
    let mut rooms: Vec<(RoomId, RoomCounters)> = Vec::new();
    let mut room_slots: HashMap<RoomId, usize> = HashMap::new();
    for message in messages {
        room_ids.push(sql_int(message.room_id.0)?);
        message_ids.push(sql_int(message.message_id.0)?);
        match room_slots.get(&message.room_id) {
            Some(&slot) => {
                let counters = &mut rooms[slot].1;
                counters.last_seq = counters.last_seq.max(message.seq);
                counters.inserted += 1;
                counters.last_update_time = message.send_time;
            }
            None => {
                room_slots.insert(message.room_id, rooms.len());
                rooms.push((
                    message.room_id,
                    RoomCounters {
                        last_seq: message.seq,
                        inserted: 1,
                        last_update_time: message.send_time,
                    },
                ));
            }
        }
    }
    // Posting gives each message a seq above its room's others: then no stored
    // message holds one of the seqs, and only the ids remain to be checked.
    let room_list: Vec<i64> = rooms
        .iter()
        .map(|(room_id, _)| sql_int(room_id.0))
        .collect::<Result<_, _>>()?;
    let statement = transaction
        .prepare_cached(ROOM_MAX_SEQS)
        .await
        .map_err(store_error)?;
    let mut max_seqs: HashMap<RoomId, u64> = HashMap::with_capacity(rooms.len());
    for row in transaction
        .query(&statement, &[&room_list])
        .await
        .map_err(store_error)?
    {
        if let Some(max) = get_opt_u64(&row, 1)? {
            max_seqs.insert(RoomId(get_u64(&row, 0)?), max);
        }
    }
    let seqs_are_new = messages.iter().all(|message| {
        max_seqs
            .get(&message.room_id)
            .is_none_or(|&max| message.seq > max)
    });
    if !seqs_are_new {
        return Ok(false);
    }
    let statement = transaction
        .prepare_cached(IDS_TAKEN)
        .await
        .map_err(store_error)?;
    let ids_taken = get_bool(
        &transaction
            .query_one(&statement, &[&room_ids, &message_ids])
            .await
            .map_err(store_error)?,
        0,
    )?;
    if ids_taken {
        return Ok(false);
    }
    let sink = transaction
        .copy_in(COPY_MESSAGES)
        .await
        .map_err(store_error)?;
    let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &MESSAGE_COPY_TYPES));
    for message in messages {
        writer
            .as_mut()
            .write(&[
                &sql_int(message.room_id.0)?,
                &sql_int(message.seq)?,
                &sql_int(message.message_id.0)?,
                &sql_int(message.account_id.0)?,
                &message.to_all,
                &mention_ids(&message.mentions)?,
                &message.send_time,
                &message.update_time,
                &message.body,
            ])
            .await
            .map_err(store_error)?;
    }
    let inserted = writer.as_mut().finish().await.map_err(store_error)?;
    if usize::try_from(inserted).ok() != Some(count) {
        return Err(StoreError::Corrupt(format!(
            "read store: {inserted} of {count} messages inserted"
        )));
    }
    let mut counter_rooms = Vec::with_capacity(rooms.len());
    let mut last_seqs = Vec::with_capacity(rooms.len());
    let mut inserted_counts = Vec::with_capacity(rooms.len());
    let mut last_update_times = Vec::with_capacity(rooms.len());
    for (room_id, counters) in rooms {
        counter_rooms.push(sql_int(room_id.0)?);
        last_seqs.push(sql_int(counters.last_seq)?);
        inserted_counts.push(sql_int(counters.inserted)?);
        last_update_times.push(counters.last_update_time);
    }
    run(
        transaction,
        ADD_ROOM_COUNTERS,
        &[
            &counter_rooms,
            &last_seqs,
            &inserted_counts,
            &last_update_times,
        ],
    )
    .await?;
    Ok(true)
}

/// Inserts one message, replacing what holds its seq or id (which then do not count
/// twice).
async fn insert_replacing(
    transaction: &Transaction<'_>,
    message: &MessageRow,
) -> Result<(), StoreError> {
    let room_id = sql_int(message.room_id.0)?;
    let seq = sql_int(message.seq)?;
    let message_id = sql_int(message.message_id.0)?;
    let mentions = mention_ids(&message.mentions)?;
    let removed = run(
        transaction,
        REMOVE_SEQ_OR_ID,
        &[&room_id, &seq, &message_id],
    )
    .await?;
    run(
        transaction,
        INSERT_MESSAGE,
        &[
            &room_id,
            &seq,
            &message_id,
            &sql_int(message.account_id.0)?,
            &message.to_all,
            &mentions,
            &message.send_time,
            &message.update_time,
            &message.body,
        ],
    )
    .await?;
    let removed = i64::try_from(removed).unwrap_or(i64::MAX);
    run(
        transaction,
        COUNT_REPLACING_MESSAGE,
        &[&room_id, &seq, &removed, &message.send_time],
    )
    .await?;
    Ok(())
}

/// Records ops; a later op at the same (position, index) replaces an earlier one.
async fn write_ops(transaction: &Transaction<'_>, ops: &[&OpRecord]) -> Result<(), StoreError> {
    if ops.is_empty() {
        return Ok(());
    }
    let last: BTreeMap<(Position, u32), &OpRecord> = ops
        .iter()
        .map(|op| ((op.position, op.index), *op))
        .collect();
    let mut positions = Vec::with_capacity(last.len());
    let mut indexes = Vec::with_capacity(last.len());
    let mut room_ids: Vec<Option<i64>> = Vec::with_capacity(last.len());
    let mut targets: Vec<Option<i64>> = Vec::with_capacity(last.len());
    let mut op_types: Vec<&str> = Vec::with_capacity(last.len());
    let mut payloads: Vec<&str> = Vec::with_capacity(last.len());
    for op in last.values() {
        positions.push(sql_int(op.position)?);
        indexes.push(i64::from(op.index));
        room_ids.push(op.room_id.map(|room| sql_int(room.0)).transpose()?);
        targets.push(op.target.map(|target| sql_int(target.0)).transpose()?);
        op_types.push(&op.op_type);
        payloads.push(&op.payload);
    }
    // Catch-up records ops at new positions only: copied in, with no conflict to
    // look for.
    let statement = transaction
        .prepare_cached(MAX_OP_POSITION)
        .await
        .map_err(store_error)?;
    let stored_max = get_opt_u64(
        &transaction
            .query_one(&statement, &[])
            .await
            .map_err(store_error)?,
        0,
    )?;
    let all_new = last
        .keys()
        .next()
        .is_some_and(|&(first, _)| stored_max.is_none_or(|max| first > max));
    if all_new {
        let sink = transaction.copy_in(COPY_OPS).await.map_err(store_error)?;
        let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &OP_COPY_TYPES));
        for (at, position) in positions.iter().enumerate() {
            writer
                .as_mut()
                .write(&[
                    position,
                    &indexes[at],
                    &room_ids[at],
                    &targets[at],
                    &op_types[at],
                    &payloads[at],
                ])
                .await
                .map_err(store_error)?;
        }
        writer.as_mut().finish().await.map_err(store_error)?;
    } else {
        run(
            transaction,
            UPSERT_OPS,
            &[
                &positions, &indexes, &room_ids, &targets, &op_types, &payloads,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Sets read cursors; the last one per membership wins.
async fn write_cursors(
    transaction: &Transaction<'_>,
    cursors: &[(RoomId, AccountId, u64)],
) -> Result<(), StoreError> {
    if cursors.is_empty() {
        return Ok(());
    }
    let last: BTreeMap<(RoomId, AccountId), u64> = cursors
        .iter()
        .map(|&(room, account, read_seq)| ((room, account), read_seq))
        .collect();
    let mut room_ids = Vec::with_capacity(last.len());
    let mut account_ids = Vec::with_capacity(last.len());
    let mut read_seqs = Vec::with_capacity(last.len());
    for ((room, account), read_seq) in last {
        room_ids.push(sql_int(room.0)?);
        account_ids.push(sql_int(account.0)?);
        read_seqs.push(sql_int(read_seq)?);
    }
    run(
        transaction,
        SET_READ_CURSORS,
        &[&room_ids, &account_ids, &read_seqs],
    )
    .await?;
    Ok(())
}

/// Applies a change that is not gathered.
async fn apply_change(transaction: &Transaction<'_>, change: &Change) -> Result<(), StoreError> {
    match change {
        Change::PutAccount(account) => {
            run(
                transaction,
                PUT_ACCOUNT,
                &[
                    &sql_int(account.account_id.0)?,
                    &sql_int(account.my_room_id.0)?,
                    &sql_int(account.organization_id.0)?,
                    &account.organization_name,
                    &account.name,
                    &account.mail,
                    &account.department,
                    &account.title,
                    &account.admin,
                    &account.token_hash,
                    &account.created_at,
                ],
            )
            .await?;
        }
        Change::SetTokenHash {
            account_id,
            token_hash,
        } => {
            run(
                transaction,
                SET_TOKEN_HASH,
                &[&sql_int(account_id.0)?, token_hash],
            )
            .await?;
        }
        Change::PutRoom(room) => {
            run(
                transaction,
                PUT_ROOM,
                &[
                    &sql_int(room.room_id.0)?,
                    &room.room_type.as_str(),
                    &room.name,
                    &room.description,
                    &room.icon_preset,
                    &sql_int(room.last_seq)?,
                    &sql_int(room.message_num)?,
                    &room.last_update_time,
                ],
            )
            .await?;
        }
        Change::UpdateRoom {
            room_id,
            name,
            description,
            icon_preset,
            at,
        } => {
            run(
                transaction,
                UPDATE_ROOM,
                &[&sql_int(room_id.0)?, name, description, icon_preset, at],
            )
            .await?;
        }
        Change::DeleteRoom { room_id } => {
            let room_id = sql_int(room_id.0)?;
            for sql in DELETE_ROOM {
                run(transaction, sql, &[&room_id]).await?;
            }
        }
        Change::PutMember {
            room_id,
            account_id,
            role,
        } => {
            run(
                transaction,
                PUT_MEMBER,
                &[
                    &sql_int(room_id.0)?,
                    &sql_int(account_id.0)?,
                    &role.as_str(),
                ],
            )
            .await?;
        }
        Change::RemoveMember {
            room_id,
            account_id,
        } => {
            run(
                transaction,
                REMOVE_MEMBER,
                &[&sql_int(room_id.0)?, &sql_int(account_id.0)?],
            )
            .await?;
        }
        Change::EditMessage {
            room_id,
            message_id,
            body,
            mentions,
            to_all,
            at,
        } => {
            let room_id = sql_int(room_id.0)?;
            let edited = run(
                transaction,
                EDIT_MESSAGE,
                &[
                    &room_id,
                    &sql_int(message_id.0)?,
                    body,
                    &mention_ids(mentions)?,
                    to_all,
                    at,
                ],
            )
            .await?;
            if edited > 0 {
                run(transaction, TOUCH_ROOM, &[&room_id, at]).await?;
            }
        }
        Change::DeleteMessage {
            room_id,
            message_id,
            at,
        } => {
            let room_id = sql_int(room_id.0)?;
            let deleted = run(
                transaction,
                DELETE_MESSAGE,
                &[&room_id, &sql_int(message_id.0)?],
            )
            .await?;
            if deleted > 0 {
                run(transaction, COUNT_DELETED_MESSAGE, &[&room_id, at]).await?;
            }
        }
        Change::InsertMessage(message) => {
            write_messages(transaction, &[message]).await?;
        }
        Change::SetReadCursor {
            account_id,
            room_id,
            read_seq,
        } => {
            write_cursors(transaction, &[(*room_id, *account_id, *read_seq)]).await?;
        }
        Change::RecordOps(ops) => {
            let ops: Vec<&OpRecord> = ops.iter().collect();
            write_ops(transaction, &ops).await?;
        }
        Change::OpenMembership {
            room_id,
            account_id,
            from,
        } => {
            run(
                transaction,
                OPEN_MEMBERSHIP,
                &[
                    &sql_int(account_id.0)?,
                    &sql_int(room_id.0)?,
                    &sql_int(*from)?,
                ],
            )
            .await?;
        }
        Change::CloseMembership {
            room_id,
            account_id,
            to,
        } => {
            run(
                transaction,
                CLOSE_MEMBERSHIP,
                &[
                    &sql_int(account_id.0)?,
                    &sql_int(room_id.0)?,
                    &sql_int(*to)?,
                ],
            )
            .await?;
        }
        Change::PutTask(task) => {
            run(
                transaction,
                PUT_TASK,
                &[
                    &sql_int(task.task_id.0)?,
                    &sql_int(task.room_id.0)?,
                    &sql_int(task.account_id.0)?,
                    &sql_int(task.assigned_by.0)?,
                    &sql_int(task.message_id.0)?,
                    &task.body,
                    &task.limit_time,
                    &task.limit_type,
                    &task.status,
                ],
            )
            .await?;
        }
        Change::SetTaskStatus { task_id, status } => {
            run(
                transaction,
                SET_TASK_STATUS,
                &[&sql_int(task_id.0)?, status],
            )
            .await?;
        }
        Change::PutFile(file) => {
            run(
                transaction,
                PUT_FILE,
                &[
                    &sql_int(file.file_id.0)?,
                    &sql_int(file.room_id.0)?,
                    &sql_int(file.account_id.0)?,
                    &sql_int(file.message_id.0)?,
                    &file.filename,
                    &sql_int(file.filesize)?,
                    &file.upload_time,
                    &file.blob_key,
                ],
            )
            .await?;
        }
        Change::PutContact {
            account_id,
            contact_id,
            room_id,
        } => {
            run(
                transaction,
                PUT_CONTACT,
                &[
                    &sql_int(account_id.0)?,
                    &sql_int(contact_id.0)?,
                    &sql_int(room_id.0)?,
                ],
            )
            .await?;
        }
        Change::RemoveContact {
            account_id,
            contact_id,
        } => {
            run(
                transaction,
                REMOVE_CONTACT,
                &[&sql_int(account_id.0)?, &sql_int(contact_id.0)?],
            )
            .await?;
        }
        Change::PutContactRequest(request) => {
            run(
                transaction,
                PUT_CONTACT_REQUEST,
                &[
                    &sql_int(request.request_id.0)?,
                    &sql_int(request.from.0)?,
                    &sql_int(request.to.0)?,
                    &request.message,
                    &request.at,
                ],
            )
            .await?;
        }
        Change::RemoveContactRequest { request_id } => {
            run(
                transaction,
                REMOVE_CONTACT_REQUEST,
                &[&sql_int(request_id.0)?],
            )
            .await?;
        }
        Change::SetLink(link) => {
            let room_id = sql_int(link.room_id.0)?;
            run(transaction, TAKE_LINK_CODE, &[&room_id, &link.code]).await?;
            run(
                transaction,
                SET_LINK,
                &[
                    &room_id,
                    &link.code,
                    &link.need_acceptance,
                    &link.description,
                ],
            )
            .await?;
        }
        Change::RemoveLink { room_id } => {
            run(transaction, REMOVE_LINK, &[&sql_int(room_id.0)?]).await?;
        }
        Change::PutJoinRequest {
            room_id,
            account_id,
            at,
        } => {
            run(
                transaction,
                PUT_JOIN_REQUEST,
                &[&sql_int(room_id.0)?, &sql_int(account_id.0)?, at],
            )
            .await?;
        }
        Change::RemoveJoinRequest {
            room_id,
            account_id,
        } => {
            run(
                transaction,
                REMOVE_JOIN_REQUEST,
                &[&sql_int(room_id.0)?, &sql_int(account_id.0)?],
            )
            .await?;
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl hayabusa_store::ReadModelWriter for PgReadStore {
    async fn apply(&self, changes: Vec<Change>, checkpoint: Position) -> Result<(), StoreError> {
        apply(self, &changes, checkpoint, None).await
    }

    async fn apply_fenced(
        &self,
        changes: Vec<Change>,
        checkpoint: Position,
        fence: u64,
    ) -> Result<(), StoreError> {
        apply(self, &changes, checkpoint, Some(fence)).await
    }

    async fn checkpoint(&self) -> Result<Position, StoreError> {
        checkpoint(self).await
    }

    async fn reset(&self) -> Result<(), StoreError> {
        reset(self).await
    }

    async fn dump(&self) -> Result<String, StoreError> {
        crate::dump::dump(self).await
    }
}

/// The writes whose plans the tests check, with example arguments (SQL literals).
pub(crate) fn statements_to_explain() -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("room max seqs", ROOM_MAX_SEQS.to_owned(), "'{1,2}'"),
        ("ids taken", IDS_TAKEN.to_owned(), "'{1}', '{1}'"),
        ("max op position", MAX_OP_POSITION.to_owned(), ""),
        (
            "add room counters",
            ADD_ROOM_COUNTERS.to_owned(),
            "'{1}', '{1}', '{1}', '{0}'",
        ),
        (
            "set read cursors",
            SET_READ_CURSORS.to_owned(),
            "'{1}', '{1}', '{1}'",
        ),
        ("remove seq or id", REMOVE_SEQ_OR_ID.to_owned(), "1, 1, 1"),
        (
            "edit message",
            EDIT_MESSAGE.to_owned(),
            "1, 1, 'x', '{}', false, 0",
        ),
        ("delete message", DELETE_MESSAGE.to_owned(), "1, 1"),
        ("open membership", OPEN_MEMBERSHIP.to_owned(), "1, 1, 1"),
        ("close membership", CLOSE_MEMBERSHIP.to_owned(), "1, 1, 1"),
        ("take link code", TAKE_LINK_CODE.to_owned(), "1, 'abc'"),
    ]
}
