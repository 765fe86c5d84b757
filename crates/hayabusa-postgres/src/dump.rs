//! The canonical dump of the read models ([`CanonicalDump`]), read in one
//! `REPEATABLE READ` snapshot so that it shows one moment of the store.

use crate::queries::{
    ACCOUNT_COLUMNS, CONTACT_REQUEST_COLUMNS, FILE_VIEW_COLUMNS, LINK_COLUMNS, MESSAGE_COLUMNS,
    OP_COLUMNS, ROOM_COLUMNS, TASK_VIEW_COLUMNS, TASK_VIEW_JOINS, account_from_row,
    contact_request_from_row, file_view_from_row, link_from_row, message_from_row, op_from_row,
    room_from_row, task_view_from_row,
};
use crate::store::PgReadStore;
use crate::values::{get_i64, get_opt_u64, get_role, get_u64, store_error};
use deadpool_postgres::Transaction;
use hayabusa_domain::{AccountId, RoomId};
use hayabusa_store::StoreError;
use hayabusa_store::canonical::CanonicalDump;
use tokio_postgres::Row;

/// Every row of one query, in the snapshot of `transaction`.
async fn all(transaction: &Transaction<'_>, sql: &str) -> Result<Vec<Row>, StoreError> {
    transaction.query(sql, &[]).await.map_err(store_error)
}

/// [`ReadModelWriter::dump`](hayabusa_store::ReadModelWriter::dump).
pub(crate) async fn dump(store: &PgReadStore) -> Result<String, StoreError> {
    let mut client = store.client().await?;
    let transaction = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(store_error)?;
    let checkpoint = match all(&transaction, "SELECT position FROM checkpoint WHERE id = 0")
        .await?
        .first()
    {
        Some(row) => get_u64(row, 0)?,
        None => 0,
    };
    let mut dump = CanonicalDump::new(checkpoint);
    for row in all(
        &transaction,
        &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a"),
    )
    .await?
    {
        dump.account(&account_from_row(&row, 0)?);
    }
    for row in all(&transaction, &format!("SELECT {ROOM_COLUMNS} FROM rooms r")).await? {
        dump.room(&room_from_row(&row, 0)?);
    }
    for row in all(
        &transaction,
        "SELECT room_id, account_id, role, read_seq FROM members",
    )
    .await?
    {
        dump.member(
            RoomId(get_u64(&row, 0)?),
            AccountId(get_u64(&row, 1)?),
            get_role(&row, 2)?,
            get_u64(&row, 3)?,
        );
    }
    for row in all(
        &transaction,
        &format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m
             LEFT JOIN accounts a ON a.account_id = m.account_id"
        ),
    )
    .await?
    {
        dump.message(&message_from_row(&row)?.message);
    }
    for row in all(
        &transaction,
        "SELECT account_id, room_id, from_position, to_position FROM membership_intervals",
    )
    .await?
    {
        dump.membership_interval(
            AccountId(get_u64(&row, 0)?),
            RoomId(get_u64(&row, 1)?),
            get_u64(&row, 2)?,
            get_opt_u64(&row, 3)?,
        );
    }
    for row in all(
        &transaction,
        &format!("SELECT {OP_COLUMNS} FROM sync_ops o"),
    )
    .await?
    {
        dump.op(&op_from_row(&row)?);
    }
    // Names are not part of the dump: the joins only fill the view's other columns.
    for row in all(
        &transaction,
        &format!("SELECT {TASK_VIEW_COLUMNS} FROM tasks t {TASK_VIEW_JOINS}"),
    )
    .await?
    {
        dump.task(&task_view_from_row(&row)?.task);
    }
    for row in all(
        &transaction,
        &format!(
            "SELECT {FILE_VIEW_COLUMNS} FROM files f
             LEFT JOIN accounts a ON a.account_id = f.account_id"
        ),
    )
    .await?
    {
        dump.file(&file_view_from_row(&row)?.file);
    }
    for row in all(
        &transaction,
        "SELECT account_id, contact_id, room_id FROM contacts",
    )
    .await?
    {
        dump.contact(
            AccountId(get_u64(&row, 0)?),
            AccountId(get_u64(&row, 1)?),
            RoomId(get_u64(&row, 2)?),
        );
    }
    for row in all(
        &transaction,
        &format!("SELECT {CONTACT_REQUEST_COLUMNS} FROM contact_requests q"),
    )
    .await?
    {
        dump.contact_request(&contact_request_from_row(&row)?);
    }
    for row in all(&transaction, &format!("SELECT {LINK_COLUMNS} FROM links l")).await? {
        dump.link(&link_from_row(&row)?);
    }
    for row in all(
        &transaction,
        "SELECT room_id, account_id, at FROM join_requests",
    )
    .await?
    {
        dump.join_request(
            RoomId(get_u64(&row, 0)?),
            AccountId(get_u64(&row, 1)?),
            get_i64(&row, 2)?,
        );
    }
    transaction.commit().await.map_err(store_error)?;
    Ok(dump.finish())
}
