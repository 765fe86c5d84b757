//! Conversions between Rust values and PostgreSQL columns, and errors into
//! [`StoreError`].
//!
//! Ids, sequence numbers and positions are `u64` in Rust and `BIGINT` (signed 64-bit)
//! in PostgreSQL: a value above `i64::MAX` is refused as [`StoreError::Corrupt`]
//! rather than wrapped, and a negative value read back is corrupt too. Query bounds
//! (positions, limits) saturate instead, since nothing above `i64::MAX` is ever
//! stored.

use hayabusa_domain::{Role, RoomType};
use hayabusa_store::StoreError;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

/// Maps a driver error: data the server calls corrupt is `Corrupt`, everything else
/// (connection lost, timeouts, serialization failures, a full disk, …) `Unavailable`,
/// which the projector retries.
pub(crate) fn store_error(error: tokio_postgres::Error) -> StoreError {
    let corrupt = error.code().is_some_and(|code| {
        *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED
    });
    if corrupt {
        StoreError::Corrupt(format!("read store: {error}"))
    } else {
        StoreError::Unavailable(format!("read store: {}", describe(&error)))
    }
}

/// The error with the server's message, detail and hint if it came from the server.
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = format!("{}: {} ({})", db.severity(), db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                text.push_str("; ");
                text.push_str(detail);
            }
            text
        }
        None => error.to_string(),
    }
}

/// Whether the server refused a transaction that may succeed if tried again
/// (serialization failure or deadlock): engines that run `SERIALIZABLE` (CockroachDB,
/// YugabyteDB) ask for such retries routinely.
pub(crate) fn is_retryable(error: &tokio_postgres::Error) -> bool {
    error.code().is_some_and(|code| {
        *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
    })
}

/// A column that cannot be read as what the schema says it holds.
fn decode_error(error: tokio_postgres::Error) -> StoreError {
    StoreError::Corrupt(format!("read store: {error}"))
}

/// A `u64` as a `BIGINT` parameter; above `i64::MAX` is refused.
pub(crate) fn sql_int(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| {
        StoreError::Corrupt(format!(
            "read store: {value} does not fit a signed 64-bit column"
        ))
    })
}

/// A position as a query bound: positions above `i64::MAX` are never stored, so a
/// larger bound means the same as `i64::MAX`.
pub(crate) fn sql_bound(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

/// A `usize` limit as a `BIGINT` (saturating: a limit beyond `i64::MAX` is no limit
/// anyway).
pub(crate) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A `BIGINT` column read back as `u64`.
pub(crate) fn get_u64(row: &Row, index: usize) -> Result<u64, StoreError> {
    let signed: i64 = row.try_get(index).map_err(decode_error)?;
    u64::try_from(signed)
        .map_err(|_| StoreError::Corrupt(format!("read store: negative value {signed}")))
}

/// A nullable `BIGINT` column read back as `Option<u64>`.
pub(crate) fn get_opt_u64(row: &Row, index: usize) -> Result<Option<u64>, StoreError> {
    let signed: Option<i64> = row.try_get(index).map_err(decode_error)?;
    signed
        .map(|signed| {
            u64::try_from(signed)
                .map_err(|_| StoreError::Corrupt(format!("read store: negative value {signed}")))
        })
        .transpose()
}

/// A `BIGINT` column holding seconds (signed).
pub(crate) fn get_i64(row: &Row, index: usize) -> Result<i64, StoreError> {
    row.try_get(index).map_err(decode_error)
}

/// A `TEXT` column.
pub(crate) fn get_text(row: &Row, index: usize) -> Result<String, StoreError> {
    row.try_get(index).map_err(decode_error)
}

/// A `BOOLEAN` column.
pub(crate) fn get_bool(row: &Row, index: usize) -> Result<bool, StoreError> {
    row.try_get(index).map_err(decode_error)
}

/// A `BIGINT[]` column read back as `u64`s.
pub(crate) fn get_u64_array(row: &Row, index: usize) -> Result<Vec<u64>, StoreError> {
    let signed: Vec<i64> = row.try_get(index).map_err(decode_error)?;
    signed
        .into_iter()
        .map(|value| {
            u64::try_from(value)
                .map_err(|_| StoreError::Corrupt(format!("read store: negative value {value}")))
        })
        .collect()
}

/// A name stored as text that must be one of a fixed set.
fn parse_name<T: Copy>(
    row: &Row,
    index: usize,
    what: &str,
    values: &[T],
    name_of: fn(&T) -> &'static str,
) -> Result<T, StoreError> {
    let name = get_text(row, index)?;
    values
        .iter()
        .find(|value| name_of(value) == name)
        .copied()
        .ok_or_else(|| StoreError::Corrupt(format!("read store: unknown {what} {name:?}")))
}

/// A `role` column.
pub(crate) fn get_role(row: &Row, index: usize) -> Result<Role, StoreError> {
    parse_name(
        row,
        index,
        "role",
        &[Role::Admin, Role::Member, Role::Readonly],
        Role::as_str,
    )
}

/// A `room_type` column.
pub(crate) fn get_room_type(row: &Row, index: usize) -> Result<RoomType, StoreError> {
    parse_name(
        row,
        index,
        "room type",
        &[RoomType::My, RoomType::Direct, RoomType::Group],
        RoomType::as_str,
    )
}
