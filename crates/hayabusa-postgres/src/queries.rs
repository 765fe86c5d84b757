//! Reading: [`ReadModelQueries`] on PostgreSQL, plus the fetch cursors.
//!
//! Every query is one prepared statement (cached per pooled connection) and one round
//! trip; a message's mentions come with its row (a `BIGINT[]`), and lists of accounts
//! are one `= ANY($1)` query, so no query costs a round trip per row.
//!
//! - **Unread counts** are derived per membership by a `LATERAL` subquery over the
//!   room's messages with `seq > read_seq` (the primary key `(room_id, seq)` gives
//!   the range), not written by the viewer; a mention is `to_all` or the viewer in
//!   the message's `mentions`.
//! - **Sync ops**: [`ops_for`](ReadModelQueries::ops_for) walks the account's
//!   membership intervals and reads, per interval, the room's ops in
//!   `sync_ops_by_room (room_id, position, target)` clipped to the interval and the
//!   bounds, plus the account-level ops through the partial index on `(target,
//!   position)`. When the limit cuts inside a position the rest of it is read in
//!   the same `REPEATABLE READ` snapshot.
//! - **Fetch cursors** are written by queries (`take_new_messages`): the cursor row is
//!   created first (`ON CONFLICT DO NOTHING`) and locked (`FOR UPDATE`), so concurrent
//!   fetches of one account and room take turns and never return a message twice.

use crate::store::PgReadStore;
use crate::values::{
    get_bool, get_i64, get_opt_u64, get_role, get_room_type, get_text, get_u64, get_u64_array,
    sql_bound, sql_int, sql_limit, store_error,
};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use hayabusa_domain::{AccountId, FileId, MessageId, OrganizationId, RequestId, RoomId, TaskId};
use hayabusa_store::canonical::status_of;
use hayabusa_store::{
    AccountRow, ContactRequestRow, ContactRequestView, ContactView, FileRow, FileView,
    JoinRequestView, LinkRow, MemberView, MessageRow, MessageView, OpRecord, Position,
    ReadModelQueries, RoomRow, RoomView, StatusCounts, StoreError, TaskFilter, TaskRow, TaskView,
};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// Columns of an account row, read by [`account_from_row`].
pub(crate) const ACCOUNT_COLUMNS: &str = "a.account_id, a.my_room_id, a.organization_id, \
    a.organization_name, a.name, a.mail, a.department, a.title, a.admin, a.token_hash, \
    a.created_at";
/// How many columns [`ACCOUNT_COLUMNS`] has.
const ACCOUNT_COLUMN_COUNT: usize = 11;

/// Columns of a room row, read by [`room_from_row`].
pub(crate) const ROOM_COLUMNS: &str = "r.room_id, r.room_type, r.name, r.description, \
    r.icon_preset, r.last_seq, r.message_num, r.last_update_time";
/// How many columns [`ROOM_COLUMNS`] has.
const ROOM_COLUMN_COUNT: usize = 8;

/// Columns of a message with its author's name, read by [`message_from_row`]; the
/// query joins `accounts a` on the author.
pub(crate) const MESSAGE_COLUMNS: &str = "m.room_id, m.message_id, m.seq, m.account_id, \
    m.body, m.send_time, m.update_time, m.to_all, m.mentions, COALESCE(a.name, '')";

/// Rooms of member `$1` with role and derived counts; a condition on `mb` may follow.
const ROOM_VIEWS: &str = "
SELECT r.room_id, r.room_type, r.name, r.description, r.icon_preset,
       r.last_seq, r.message_num, r.last_update_time, mb.role,
       u.unread, u.mentioned,
       (SELECT COUNT(*) FROM tasks mt
        WHERE mt.room_id = mb.room_id AND mt.account_id = mb.account_id
          AND mt.status = 'open'),
       (SELECT COUNT(*) FROM tasks t WHERE t.room_id = mb.room_id),
       (SELECT COUNT(*) FROM files f WHERE f.room_id = mb.room_id)
FROM members mb
JOIN rooms r ON r.room_id = mb.room_id
CROSS JOIN LATERAL (
    SELECT COUNT(*) AS unread,
           COUNT(CASE WHEN m.to_all OR mb.account_id = ANY (m.mentions) THEN 1 END)
               AS mentioned
    FROM messages m
    WHERE m.room_id = mb.room_id AND m.seq > mb.read_seq AND m.account_id <> mb.account_id
) u
WHERE mb.account_id = $1";

/// Columns of a sync op, read by [`op_from_row`].
pub(crate) const OP_COLUMNS: &str = "o.position, o.idx, o.room_id, o.target, o.op_type, o.payload";

/// The sync ops member `$1` sees with `$2 < position <= $3`, by (position, idx), at
/// most `$4` of them (NULL: all). `UNION` returns an op shared by overlapping
/// intervals once.
const OPS_FOR: &str = "
SELECT o.position, o.idx, o.room_id, o.target, o.op_type, o.payload
FROM membership_intervals i
JOIN sync_ops o
  ON o.room_id = i.room_id
 AND o.position > GREATEST($2::BIGINT, i.from_position - 1)
 AND o.position <= LEAST($3::BIGINT, COALESCE(i.to_position, $3::BIGINT))
WHERE i.account_id = $1::BIGINT AND (o.target IS NULL OR o.target = $1::BIGINT)
UNION
SELECT o.position, o.idx, o.room_id, o.target, o.op_type, o.payload
FROM sync_ops o
WHERE o.room_id IS NULL AND o.target = $1::BIGINT
  AND o.position > $2::BIGINT AND o.position <= $3::BIGINT
ORDER BY 1, 2
LIMIT $4::BIGINT";

/// [`OPS_FOR`] for many requests at once (`$1` accounts, `$2` their `after`, `$3`
/// `up_to`, `$4` the most rows per request): every row names its request (its
/// 1-based ordinal in the arrays), numbered in (position, index) order.
const OPS_FOR_ACCOUNTS: &str = "
SELECT k, position, idx, room_id, target, op_type, payload FROM (
  SELECT u.*, row_number() OVER (PARTITION BY u.k ORDER BY u.position, u.idx) AS n
  FROM (
    SELECT r.k, o.position, o.idx, o.room_id, o.target, o.op_type, o.payload
    FROM UNNEST($1::BIGINT[], $2::BIGINT[]) WITH ORDINALITY AS r(account_id, after, k)
    JOIN membership_intervals i ON i.account_id = r.account_id
    JOIN sync_ops o
      ON o.room_id = i.room_id
     AND o.position > GREATEST(r.after, i.from_position - 1)
     AND o.position <= LEAST($3::BIGINT, COALESCE(i.to_position, $3::BIGINT))
    WHERE o.target IS NULL OR o.target = r.account_id
    UNION
    SELECT r.k, o.position, o.idx, o.room_id, o.target, o.op_type, o.payload
    FROM UNNEST($1::BIGINT[], $2::BIGINT[]) WITH ORDINALITY AS r(account_id, after, k)
    JOIN sync_ops o
      ON o.room_id IS NULL AND o.target = r.account_id
     AND o.position > r.after AND o.position <= $3::BIGINT
  ) u
) numbered
WHERE n <= $4::BIGINT
ORDER BY k, position, idx";

/// Columns of a task view, read by [`task_view_from_row`]; the query joins the room
/// as `r` and the assignee and assigner accounts as `a` and `b`.
pub(crate) const TASK_VIEW_COLUMNS: &str = "t.task_id, t.room_id, t.account_id, \
    t.assigned_by, t.message_id, t.body, t.limit_time, t.limit_type, t.status, \
    COALESCE(r.name, ''), COALESCE(r.icon_preset, ''), COALESCE(a.name, ''), \
    COALESCE(b.name, '')";

/// The joins [`TASK_VIEW_COLUMNS`] reads from, after `tasks t`.
pub(crate) const TASK_VIEW_JOINS: &str = "LEFT JOIN rooms r ON r.room_id = t.room_id
LEFT JOIN accounts a ON a.account_id = t.account_id
LEFT JOIN accounts b ON b.account_id = t.assigned_by";

/// Columns of a file with its uploader's name, read by [`file_view_from_row`]; the
/// query joins `accounts a` on the uploader.
pub(crate) const FILE_VIEW_COLUMNS: &str = "f.file_id, f.room_id, f.account_id, \
    f.message_id, f.filename, f.filesize, f.upload_time, f.blob_key, COALESCE(a.name, '')";

/// Columns of a contact request, read by [`contact_request_from_row`].
pub(crate) const CONTACT_REQUEST_COLUMNS: &str =
    "q.request_id, q.from_account_id, q.to_account_id, q.message, q.at";
/// How many columns [`CONTACT_REQUEST_COLUMNS`] has.
const CONTACT_REQUEST_COLUMN_COUNT: usize = 5;

/// Columns of a link, read by [`link_from_row`].
pub(crate) const LINK_COLUMNS: &str = "l.room_id, l.code, l.need_acceptance, l.description";

/// The latest `$2` messages of room `$1`, oldest first.
fn latest_messages_sql() -> String {
    format!(
        "SELECT {MESSAGE_COLUMNS} FROM
          (SELECT * FROM messages WHERE room_id = $1 ORDER BY seq DESC LIMIT $2) m
          LEFT JOIN accounts a ON a.account_id = m.account_id
          ORDER BY m.seq"
    )
}

/// At most `$3` messages of room `$1` with `seq > $2`, oldest first.
fn messages_after_sql() -> String {
    format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m
          LEFT JOIN accounts a ON a.account_id = m.account_id
          WHERE m.room_id = $1 AND m.seq > $2
          ORDER BY m.seq
          LIMIT $3"
    )
}

/// The account with token hash `$1` (the lowest id if several).
fn account_by_token_hash_sql() -> String {
    format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.token_hash = $1
          ORDER BY a.account_id LIMIT 1"
    )
}

/// The accounts with the ids in `$1`, by id.
fn accounts_sql() -> String {
    format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.account_id = ANY ($1)
          ORDER BY a.account_id"
    )
}

/// Members of room `$1` with a known account, by account id.
fn members_sql() -> String {
    format!(
        "SELECT {ACCOUNT_COLUMNS}, mb.role FROM members mb
          JOIN accounts a ON a.account_id = mb.account_id
          WHERE mb.room_id = $1
          ORDER BY mb.account_id"
    )
}

/// Message `$2` of room `$1`.
fn message_sql() -> String {
    format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m
          LEFT JOIN accounts a ON a.account_id = m.account_id
          WHERE m.room_id = $1 AND m.message_id = $2"
    )
}

/// Tasks of room `$1` with assignee `$2`, assigner `$3` and status `$4` (each NULL =
/// any), by task id, at most `$5`.
fn tasks_of_room_sql() -> String {
    format!(
        "SELECT {TASK_VIEW_COLUMNS} FROM tasks t
          {TASK_VIEW_JOINS}
          WHERE t.room_id = $1
          AND ($2::BIGINT IS NULL OR t.account_id = $2::BIGINT)
          AND ($3::BIGINT IS NULL OR t.assigned_by = $3::BIGINT)
          AND ($4::TEXT IS NULL OR t.status = $4::TEXT)
          ORDER BY t.task_id
          LIMIT $5"
    )
}

/// Task `$2` if it is in room `$1`.
fn task_sql() -> String {
    format!(
        "SELECT {TASK_VIEW_COLUMNS} FROM tasks t
          {TASK_VIEW_JOINS}
          WHERE t.task_id = $2 AND t.room_id = $1"
    )
}

/// Tasks assigned to `$1` in the rooms of `rooms_of($1)` (membership and room row),
/// with assigner `$2` and status `$3` (NULL = any), by task id, at most `$4`.
fn tasks_of_account_sql() -> String {
    format!(
        "SELECT {TASK_VIEW_COLUMNS} FROM members mb
          JOIN rooms r ON r.room_id = mb.room_id
          JOIN tasks t ON t.room_id = mb.room_id AND t.account_id = mb.account_id
          LEFT JOIN accounts a ON a.account_id = t.account_id
          LEFT JOIN accounts b ON b.account_id = t.assigned_by
          WHERE mb.account_id = $1
          AND ($2::BIGINT IS NULL OR t.assigned_by = $2::BIGINT)
          AND ($3::TEXT IS NULL OR t.status = $3::TEXT)
          ORDER BY t.task_id
          LIMIT $4"
    )
}

/// Files of room `$1` (of uploader `$2`, NULL = any), by file id, at most `$3`.
fn files_of_room_sql() -> String {
    format!(
        "SELECT {FILE_VIEW_COLUMNS} FROM files f
          LEFT JOIN accounts a ON a.account_id = f.account_id
          WHERE f.room_id = $1 AND ($2::BIGINT IS NULL OR f.account_id = $2::BIGINT)
          ORDER BY f.file_id
          LIMIT $3"
    )
}

/// File `$2` if it is in room `$1`.
fn file_sql() -> String {
    format!(
        "SELECT {FILE_VIEW_COLUMNS} FROM files f
          LEFT JOIN accounts a ON a.account_id = f.account_id
          WHERE f.file_id = $2 AND f.room_id = $1"
    )
}

/// Contacts of `$1` with a known account row, by contact id.
fn contacts_sql() -> String {
    format!(
        "SELECT {ACCOUNT_COLUMNS}, c.room_id FROM contacts c
          JOIN accounts a ON a.account_id = c.contact_id
          WHERE c.account_id = $1
          ORDER BY c.contact_id"
    )
}

/// Pending requests to `$1` from a known account, by request id.
fn incoming_requests_sql() -> String {
    format!(
        "SELECT {CONTACT_REQUEST_COLUMNS}, {ACCOUNT_COLUMNS} FROM contact_requests q
          JOIN accounts a ON a.account_id = q.from_account_id
          WHERE q.to_account_id = $1
          ORDER BY q.request_id"
    )
}

/// Request `$1`.
fn contact_request_sql() -> String {
    format!(
        "SELECT {CONTACT_REQUEST_COLUMNS} FROM contact_requests q
          WHERE q.request_id = $1"
    )
}

/// The link with code `$1` (codes are unique).
fn link_by_code_sql() -> String {
    format!("SELECT {LINK_COLUMNS} FROM links l WHERE l.code = $1")
}

/// Pending join requests of room `$1` from known accounts, by account id.
fn join_requests_sql() -> String {
    format!(
        "SELECT {ACCOUNT_COLUMNS}, j.at FROM join_requests j
          JOIN accounts a ON a.account_id = j.account_id
          WHERE j.room_id = $1
          ORDER BY j.account_id"
    )
}

// ---------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------

/// Reads [`ACCOUNT_COLUMNS`] starting at column `at`.
pub(crate) fn account_from_row(row: &Row, at: usize) -> Result<AccountRow, StoreError> {
    Ok(AccountRow {
        account_id: AccountId(get_u64(row, at)?),
        my_room_id: RoomId(get_u64(row, at + 1)?),
        organization_id: OrganizationId(get_u64(row, at + 2)?),
        organization_name: get_text(row, at + 3)?,
        name: get_text(row, at + 4)?,
        mail: get_text(row, at + 5)?,
        department: get_text(row, at + 6)?,
        title: get_text(row, at + 7)?,
        admin: get_bool(row, at + 8)?,
        token_hash: get_text(row, at + 9)?,
        created_at: get_i64(row, at + 10)?,
    })
}

/// Reads [`ROOM_COLUMNS`] starting at column `at`.
pub(crate) fn room_from_row(row: &Row, at: usize) -> Result<RoomRow, StoreError> {
    Ok(RoomRow {
        room_id: RoomId(get_u64(row, at)?),
        room_type: get_room_type(row, at + 1)?,
        name: get_text(row, at + 2)?,
        description: get_text(row, at + 3)?,
        icon_preset: get_text(row, at + 4)?,
        last_seq: get_u64(row, at + 5)?,
        message_num: get_u64(row, at + 6)?,
        last_update_time: get_i64(row, at + 7)?,
    })
}

/// Reads [`MESSAGE_COLUMNS`].
pub(crate) fn message_from_row(row: &Row) -> Result<MessageView, StoreError> {
    Ok(MessageView {
        message: MessageRow {
            room_id: RoomId(get_u64(row, 0)?),
            message_id: MessageId(get_u64(row, 1)?),
            seq: get_u64(row, 2)?,
            account_id: AccountId(get_u64(row, 3)?),
            body: get_text(row, 4)?,
            send_time: get_i64(row, 5)?,
            update_time: get_i64(row, 6)?,
            to_all: get_bool(row, 7)?,
            mentions: get_u64_array(row, 8)?.into_iter().map(AccountId).collect(),
        },
        author_name: get_text(row, 9)?,
    })
}

/// Reads [`OP_COLUMNS`].
pub(crate) fn op_from_row(row: &Row) -> Result<OpRecord, StoreError> {
    op_from_row_at(row, 0)
}

/// An op whose columns start at `at`.
fn op_from_row_at(row: &Row, at: usize) -> Result<OpRecord, StoreError> {
    let index = get_u64(row, at + 1)?;
    Ok(OpRecord {
        position: get_u64(row, at)?,
        index: u32::try_from(index)
            .map_err(|_| StoreError::Corrupt(format!("read store: op index {index}")))?,
        room_id: get_opt_u64(row, at + 2)?.map(RoomId),
        target: get_opt_u64(row, at + 3)?.map(AccountId),
        op_type: get_text(row, at + 4)?,
        payload: get_text(row, at + 5)?,
    })
}

/// Reads a row of [`ROOM_VIEWS`].
fn room_view_from_row(row: &Row) -> Result<RoomView, StoreError> {
    Ok(RoomView {
        room: room_from_row(row, 0)?,
        role: get_role(row, ROOM_COLUMN_COUNT)?,
        unread_num: get_u64(row, ROOM_COLUMN_COUNT + 1)?,
        mention_num: get_u64(row, ROOM_COLUMN_COUNT + 2)?,
        mytask_num: get_u64(row, ROOM_COLUMN_COUNT + 3)?,
        task_num: get_u64(row, ROOM_COLUMN_COUNT + 4)?,
        file_num: get_u64(row, ROOM_COLUMN_COUNT + 5)?,
    })
}

/// Reads [`TASK_VIEW_COLUMNS`].
pub(crate) fn task_view_from_row(row: &Row) -> Result<TaskView, StoreError> {
    Ok(TaskView {
        task: TaskRow {
            task_id: TaskId(get_u64(row, 0)?),
            room_id: RoomId(get_u64(row, 1)?),
            account_id: AccountId(get_u64(row, 2)?),
            assigned_by: AccountId(get_u64(row, 3)?),
            message_id: MessageId(get_u64(row, 4)?),
            body: get_text(row, 5)?,
            limit_time: get_i64(row, 6)?,
            limit_type: get_text(row, 7)?,
            status: get_text(row, 8)?,
        },
        room_name: get_text(row, 9)?,
        room_icon_preset: get_text(row, 10)?,
        account_name: get_text(row, 11)?,
        assigned_by_name: get_text(row, 12)?,
    })
}

/// Reads [`FILE_VIEW_COLUMNS`].
pub(crate) fn file_view_from_row(row: &Row) -> Result<FileView, StoreError> {
    Ok(FileView {
        file: FileRow {
            file_id: FileId(get_u64(row, 0)?),
            room_id: RoomId(get_u64(row, 1)?),
            account_id: AccountId(get_u64(row, 2)?),
            message_id: MessageId(get_u64(row, 3)?),
            filename: get_text(row, 4)?,
            filesize: get_u64(row, 5)?,
            upload_time: get_i64(row, 6)?,
            blob_key: get_text(row, 7)?,
        },
        account_name: get_text(row, 8)?,
    })
}

/// Reads [`CONTACT_REQUEST_COLUMNS`].
pub(crate) fn contact_request_from_row(row: &Row) -> Result<ContactRequestRow, StoreError> {
    Ok(ContactRequestRow {
        request_id: RequestId(get_u64(row, 0)?),
        from: AccountId(get_u64(row, 1)?),
        to: AccountId(get_u64(row, 2)?),
        message: get_text(row, 3)?,
        at: get_i64(row, 4)?,
    })
}

/// Reads [`LINK_COLUMNS`].
pub(crate) fn link_from_row(row: &Row) -> Result<LinkRow, StoreError> {
    Ok(LinkRow {
        room_id: RoomId(get_u64(row, 0)?),
        code: get_text(row, 1)?,
        need_acceptance: get_bool(row, 2)?,
        description: get_text(row, 3)?,
    })
}

// ---------------------------------------------------------------------------------
// Running queries
// ---------------------------------------------------------------------------------

/// The rows of one prepared query.
async fn rows<C: GenericClient + Sync>(
    client: &C,
    sql: &str,
    parameters: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(store_error)?;
    client
        .query(&statement, parameters)
        .await
        .map_err(store_error)
}

/// The row of one prepared query, if any.
async fn row<C: GenericClient + Sync>(
    client: &C,
    sql: &str,
    parameters: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(store_error)?;
    client
        .query_opt(&statement, parameters)
        .await
        .map_err(store_error)
}

/// Decodes every row.
fn decode<T>(
    rows: Vec<Row>,
    decode_row: impl Fn(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(decode_row).collect()
}

impl PgReadStore {
    /// The rows of one query on a pooled connection, decoded.
    async fn list<T>(
        &self,
        sql: &str,
        parameters: &[&(dyn ToSql + Sync)],
        decode_row: impl Fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let client = self.client().await?;
        decode(rows(&client, sql, parameters).await?, decode_row)
    }

    /// The row of one query on a pooled connection, decoded, if any.
    async fn find<T>(
        &self,
        sql: &str,
        parameters: &[&(dyn ToSql + Sync)],
        decode_row: impl Fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let client = self.client().await?;
        row(&client, sql, parameters)
            .await?
            .as_ref()
            .map(decode_row)
            .transpose()
    }
}

/// The latest `count` messages of a room, oldest first.
async fn latest_messages<C: GenericClient + Sync>(
    client: &C,
    room: RoomId,
    count: usize,
) -> Result<Vec<MessageView>, StoreError> {
    let sql = latest_messages_sql();
    decode(
        rows(client, &sql, &[&sql_int(room.0)?, &sql_limit(count)]).await?,
        message_from_row,
    )
}

/// At most `count` messages of a room with `seq > after`, oldest first.
async fn messages_after<C: GenericClient + Sync>(
    client: &C,
    room: RoomId,
    after: u64,
    count: usize,
) -> Result<Vec<MessageView>, StoreError> {
    let sql = messages_after_sql();
    decode(
        rows(
            client,
            &sql,
            &[&sql_int(room.0)?, &sql_bound(after), &sql_limit(count)],
        )
        .await?,
        message_from_row,
    )
}

/// [`ReadModelQueries::take_new_messages`] in one transaction: the cursor row is made
/// if missing and locked, so that concurrent fetches of one account and room take
/// turns.
async fn take_new_messages(
    store: &PgReadStore,
    account: AccountId,
    room: RoomId,
    count: usize,
) -> Result<Vec<MessageView>, StoreError> {
    let room_id = sql_int(room.0)?;
    let account_id = sql_int(account.0)?;
    let mut client = store.client().await?;
    let transaction = client.transaction().await.map_err(store_error)?;
    rows(
        &transaction,
        "INSERT INTO fetch_cursors (room_id, account_id, seq) VALUES ($1, $2, NULL)
         ON CONFLICT (room_id, account_id) DO NOTHING",
        &[&room_id, &account_id],
    )
    .await?;
    let locked = row(
        &transaction,
        "SELECT seq FROM fetch_cursors WHERE room_id = $1 AND account_id = $2 FOR UPDATE",
        &[&room_id, &account_id],
    )
    .await?
    .ok_or_else(|| StoreError::Unavailable("read store: the fetch cursor vanished".into()))?;
    let cursor = get_opt_u64(&locked, 0)?;
    let (taken, new_cursor) = match cursor {
        Some(cursor) => {
            let taken = messages_after(&transaction, room, cursor, count).await?;
            let new_cursor = taken.last().map_or(cursor, |view| view.message.seq);
            (taken, new_cursor)
        }
        None => {
            let taken = latest_messages(&transaction, room, count).await?;
            let new_cursor = match taken.last() {
                Some(view) => view.message.seq,
                None => match row(
                    &transaction,
                    "SELECT last_seq FROM rooms WHERE room_id = $1",
                    &[&room_id],
                )
                .await?
                {
                    Some(found) => get_u64(&found, 0)?,
                    None => 0,
                },
            };
            (taken, new_cursor)
        }
    };
    if cursor != Some(new_cursor) {
        rows(
            &transaction,
            "UPDATE fetch_cursors SET seq = $3 WHERE room_id = $1 AND account_id = $2",
            &[&room_id, &account_id, &sql_int(new_cursor)?],
        )
        .await?;
    }
    transaction.commit().await.map_err(store_error)?;
    Ok(taken)
}

/// Rooms of `account` as it sees them, by room id; only `room` if given.
async fn rooms_of(
    store: &PgReadStore,
    account: AccountId,
    only: Option<RoomId>,
) -> Result<Vec<RoomView>, StoreError> {
    let account_id = sql_int(account.0)?;
    match only {
        None => {
            store
                .list(
                    &format!("{ROOM_VIEWS} ORDER BY mb.room_id"),
                    &[&account_id],
                    room_view_from_row,
                )
                .await
        }
        Some(room) => {
            store
                .list(
                    &format!("{ROOM_VIEWS} AND mb.room_id = $2"),
                    &[&account_id, &sql_int(room.0)?],
                    room_view_from_row,
                )
                .await
        }
    }
}

/// The ops of [`OPS_FOR`], decoded.
async fn visible_ops<C: GenericClient + Sync>(
    client: &C,
    account: i64,
    after: i64,
    up_to: i64,
    limit: Option<i64>,
) -> Result<Vec<OpRecord>, StoreError> {
    decode(
        rows(client, OPS_FOR, &[&account, &after, &up_to, &limit]).await?,
        op_from_row,
    )
}

/// [`ReadModelQueries::ops_for`].
async fn ops_for(
    store: &PgReadStore,
    account: AccountId,
    after: Position,
    up_to: Position,
    limit: usize,
) -> Result<Vec<OpRecord>, StoreError> {
    if after >= up_to || limit == 0 {
        return Ok(Vec::new());
    }
    let account_id = sql_int(account.0)?;
    let (after, up_to) = (sql_bound(after), sql_bound(up_to));
    let mut client = store.client().await?;
    // The common case (fewer ops than the limit) is one statement, its own snapshot.
    let ops = visible_ops(&client, account_id, after, up_to, Some(sql_limit(limit))).await?;
    if ops.len() < limit {
        return Ok(ops);
    }
    // One snapshot, so that a position is finished from the data it started in.
    let transaction = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(store_error)?;
    let mut ops = visible_ops(
        &transaction,
        account_id,
        after,
        up_to,
        Some(sql_limit(limit)),
    )
    .await?;
    if ops.len() >= limit
        && let Some(&OpRecord {
            position, index, ..
        }) = ops.last()
    {
        // The limit may have cut inside the last position: add the rest of it.
        let position = sql_bound(position);
        let rest = visible_ops(&transaction, account_id, position - 1, position, None).await?;
        ops.extend(rest.into_iter().filter(|op| op.index > index));
    }
    transaction.commit().await.map_err(store_error)?;
    Ok(ops)
}

/// [`ReadModelQueries::ops_for_accounts`]: one statement for every request, each
/// capped at `limit + 1` rows; a request that reaches the cap may end inside a
/// position, and is asked again alone through [`ops_for`] (which finishes it).
async fn ops_for_accounts(
    store: &PgReadStore,
    requests: &[(AccountId, Position)],
    up_to: Position,
    limit: usize,
) -> Result<Vec<Vec<OpRecord>>, StoreError> {
    let mut answers: Vec<Vec<OpRecord>> = vec![Vec::new(); requests.len()];
    if requests.is_empty() || limit == 0 {
        return Ok(answers);
    }
    let accounts = requests
        .iter()
        .map(|(account, _)| sql_int(account.0))
        .collect::<Result<Vec<i64>, _>>()?;
    let afters: Vec<i64> = requests
        .iter()
        .map(|(_, after)| sql_bound(*after))
        .collect();
    let cap = sql_limit(limit).saturating_add(1);
    let found = {
        let client = store.client().await?;
        rows(
            &client,
            OPS_FOR_ACCOUNTS,
            &[&accounts, &afters, &sql_bound(up_to), &cap],
        )
        .await?
    };
    for row in &found {
        let k: i64 = row.try_get(0).map_err(store_error)?;
        let slot = usize::try_from(k - 1)
            .ok()
            .and_then(|index| answers.get_mut(index))
            .ok_or_else(|| StoreError::Corrupt(format!("ops of an unknown request {k}")))?;
        slot.push(op_from_row_at(row, 1)?);
    }
    for (index, answer) in answers.iter_mut().enumerate() {
        if answer.len() > limit {
            let (account, after) = requests[index];
            *answer = ops_for(store, account, after, up_to, limit).await?;
        }
    }
    Ok(answers)
}

#[async_trait]
impl ReadModelQueries for PgReadStore {
    async fn account_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<AccountRow>, StoreError> {
        self.find(&account_by_token_hash_sql(), &[&token_hash], |row| {
            account_from_row(row, 0)
        })
        .await
    }

    async fn accounts(&self, ids: &[AccountId]) -> Result<Vec<AccountRow>, StoreError> {
        // An id beyond BIGINT cannot be stored, so it is unknown: left out.
        let ids: Vec<i64> = ids
            .iter()
            .filter_map(|id| i64::try_from(id.0).ok())
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.list(&accounts_sql(), &[&ids], |row| account_from_row(row, 0))
            .await
    }

    async fn rooms_of(&self, account: AccountId) -> Result<Vec<RoomView>, StoreError> {
        rooms_of(self, account, None).await
    }

    async fn room_ids_of(&self, account: AccountId) -> Result<Vec<RoomId>, StoreError> {
        self.list(
            "SELECT mb.room_id FROM members mb
             JOIN rooms r ON r.room_id = mb.room_id
             WHERE mb.account_id = $1
             ORDER BY mb.room_id",
            &[&sql_int(account.0)?],
            |row| Ok(RoomId(get_u64(row, 0)?)),
        )
        .await
    }

    async fn room_of(
        &self,
        account: AccountId,
        room: RoomId,
    ) -> Result<Option<RoomView>, StoreError> {
        Ok(rooms_of(self, account, Some(room))
            .await?
            .into_iter()
            .next())
    }

    async fn members(&self, room: RoomId) -> Result<Vec<MemberView>, StoreError> {
        self.list(&members_sql(), &[&sql_int(room.0)?], |row| {
            Ok(MemberView {
                account: account_from_row(row, 0)?,
                role: get_role(row, ACCOUNT_COLUMN_COUNT)?,
            })
        })
        .await
    }

    async fn latest_messages(
        &self,
        room: RoomId,
        limit: usize,
    ) -> Result<Vec<MessageView>, StoreError> {
        let client = self.client().await?;
        latest_messages(&client, room, limit).await
    }

    async fn message(
        &self,
        room: RoomId,
        message: MessageId,
    ) -> Result<Option<MessageView>, StoreError> {
        self.find(
            &message_sql(),
            &[&sql_int(room.0)?, &sql_int(message.0)?],
            message_from_row,
        )
        .await
    }

    async fn take_new_messages(
        &self,
        account: AccountId,
        room: RoomId,
        limit: usize,
    ) -> Result<Vec<MessageView>, StoreError> {
        take_new_messages(self, account, room, limit).await
    }

    async fn set_fetch_cursor_to_latest(
        &self,
        account: AccountId,
        room: RoomId,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        rows(
            &client,
            "INSERT INTO fetch_cursors (room_id, account_id, seq)
             SELECT room_id, $2::BIGINT, last_seq FROM rooms WHERE room_id = $1::BIGINT
             ON CONFLICT (room_id, account_id) DO UPDATE SET seq = EXCLUDED.seq",
            &[&sql_int(room.0)?, &sql_int(account.0)?],
        )
        .await?;
        Ok(())
    }

    async fn status(&self, account: AccountId) -> Result<StatusCounts, StoreError> {
        let rooms = rooms_of(self, account, None).await?;
        Ok(status_of(&rooms))
    }

    async fn tasks_of_room(
        &self,
        room: RoomId,
        filter: &TaskFilter,
        limit: usize,
    ) -> Result<Vec<TaskView>, StoreError> {
        let assignee = filter.account_id.map(|id| sql_int(id.0)).transpose()?;
        let assigner = filter.assigned_by.map(|id| sql_int(id.0)).transpose()?;
        self.list(
            &tasks_of_room_sql(),
            &[
                &sql_int(room.0)?,
                &assignee,
                &assigner,
                &filter.status,
                &sql_limit(limit),
            ],
            task_view_from_row,
        )
        .await
    }

    async fn task(&self, room: RoomId, task: TaskId) -> Result<Option<TaskView>, StoreError> {
        self.find(
            &task_sql(),
            &[&sql_int(room.0)?, &sql_int(task.0)?],
            task_view_from_row,
        )
        .await
    }

    async fn tasks_of_account(
        &self,
        account: AccountId,
        filter: &TaskFilter,
        limit: usize,
    ) -> Result<Vec<TaskView>, StoreError> {
        let assigner = filter.assigned_by.map(|id| sql_int(id.0)).transpose()?;
        self.list(
            &tasks_of_account_sql(),
            &[
                &sql_int(account.0)?,
                &assigner,
                &filter.status,
                &sql_limit(limit),
            ],
            task_view_from_row,
        )
        .await
    }

    async fn files_of_room(
        &self,
        room: RoomId,
        uploader: Option<AccountId>,
        limit: usize,
    ) -> Result<Vec<FileView>, StoreError> {
        let uploader = uploader.map(|id| sql_int(id.0)).transpose()?;
        self.list(
            &files_of_room_sql(),
            &[&sql_int(room.0)?, &uploader, &sql_limit(limit)],
            file_view_from_row,
        )
        .await
    }

    async fn file(&self, room: RoomId, file: FileId) -> Result<Option<FileView>, StoreError> {
        self.find(
            &file_sql(),
            &[&sql_int(room.0)?, &sql_int(file.0)?],
            file_view_from_row,
        )
        .await
    }

    async fn contacts(&self, account: AccountId) -> Result<Vec<ContactView>, StoreError> {
        self.list(&contacts_sql(), &[&sql_int(account.0)?], |row| {
            Ok(ContactView {
                account: account_from_row(row, 0)?,
                room_id: RoomId(get_u64(row, ACCOUNT_COLUMN_COUNT)?),
            })
        })
        .await
    }

    async fn incoming_requests(
        &self,
        account: AccountId,
    ) -> Result<Vec<ContactRequestView>, StoreError> {
        self.list(&incoming_requests_sql(), &[&sql_int(account.0)?], |row| {
            Ok(ContactRequestView {
                request: contact_request_from_row(row)?,
                from: account_from_row(row, CONTACT_REQUEST_COLUMN_COUNT)?,
            })
        })
        .await
    }

    async fn contact_request(
        &self,
        request: RequestId,
    ) -> Result<Option<ContactRequestRow>, StoreError> {
        self.find(
            &contact_request_sql(),
            &[&sql_int(request.0)?],
            contact_request_from_row,
        )
        .await
    }

    async fn link_of_room(&self, room: RoomId) -> Result<Option<LinkRow>, StoreError> {
        self.find(
            &format!("SELECT {LINK_COLUMNS} FROM links l WHERE l.room_id = $1"),
            &[&sql_int(room.0)?],
            link_from_row,
        )
        .await
    }

    async fn link_by_code(&self, code: &str) -> Result<Option<LinkRow>, StoreError> {
        self.find(&link_by_code_sql(), &[&code], link_from_row)
            .await
    }

    async fn join_requests(&self, room: RoomId) -> Result<Vec<JoinRequestView>, StoreError> {
        self.list(&join_requests_sql(), &[&sql_int(room.0)?], |row| {
            Ok(JoinRequestView {
                account: account_from_row(row, 0)?,
                at: get_i64(row, ACCOUNT_COLUMN_COUNT)?,
            })
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
        ops_for(self, account, after, up_to, limit).await
    }

    async fn ops_for_accounts(
        &self,
        requests: &[(AccountId, Position)],
        up_to: Position,
        limit: usize,
    ) -> Result<Vec<Vec<OpRecord>>, StoreError> {
        ops_for_accounts(self, requests, up_to, limit).await
    }

    async fn ops_retained_from(&self) -> Result<Position, StoreError> {
        // Nothing is pruned yet: the whole history is kept.
        Ok(0)
    }
}

/// The queries whose plans the tests check, with example arguments (SQL literals).
pub(crate) fn statements_to_explain() -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("rooms_of", format!("{ROOM_VIEWS} ORDER BY mb.room_id"), "1"),
        (
            "room_of",
            format!("{ROOM_VIEWS} AND mb.room_id = $2"),
            "1, 2",
        ),
        ("ops_for", OPS_FOR.to_owned(), "1, 0, 100, 10"),
        ("latest_messages", latest_messages_sql(), "1, 10"),
        ("messages_after", messages_after_sql(), "1, 5, 10"),
        ("account_by_token_hash", account_by_token_hash_sql(), "'ab'"),
        ("accounts", accounts_sql(), "'{1,2}'"),
        ("members", members_sql(), "1"),
        ("message", message_sql(), "1, 2"),
        (
            "tasks_of_room",
            tasks_of_room_sql(),
            "1, NULL, NULL, NULL, 10",
        ),
        ("task", task_sql(), "1, 2"),
        (
            "tasks_of_account",
            tasks_of_account_sql(),
            "1, NULL, NULL, 10",
        ),
        ("files_of_room", files_of_room_sql(), "1, NULL, 10"),
        ("file", file_sql(), "1, 2"),
        ("contacts", contacts_sql(), "1"),
        ("incoming_requests", incoming_requests_sql(), "1"),
        ("contact_request", contact_request_sql(), "1"),
        ("link_by_code", link_by_code_sql(), "'abc'"),
        ("join_requests", join_requests_sql(), "1"),
    ]
}
