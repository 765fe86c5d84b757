//! Consistent copies of a live event log, for backups.
//!
//! [`snapshot_event_log`] copies the log's file with `VACUUM INTO` on a read-only
//! connection of its own. WAL lets that connection read one committed state of the
//! file while the server's writer goes on appending, so the copy holds exactly the
//! events committed when its read began — a prefix of the log, every acknowledged
//! append up to that moment included — and nothing after. The copy is compacted and
//! switched to a rollback journal, so it is one self-contained file; opening it with
//! [`SqliteEventLog::open`](crate::SqliteEventLog::open) switches it back to WAL and
//! rebuilds its stream index (the index file is derived and is not copied).
//!
//! [`inspect_event_log`] checks a copy (SQLite's `quick_check`, the schema version,
//! gapless positions) and [`visit_events_of_type`] reads its events of one type, so
//! that a backup can find the blobs its events refer to without opening a writer on
//! it.

use crate::event_log::{SCHEMA_VERSION, column_u64, open_reader_connection, store_error};
use hayabusa_store::{Position, RecordedEvent, StoreError};
use rusqlite::{Connection, OpenFlags, params};
use std::fs::OpenOptions;
use std::path::Path;

/// What a copy of the log holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogSnapshot {
    /// The position of its last event (0: empty).
    pub head: Position,
    /// How many events it holds (equal to `head`: positions are gapless from 1).
    pub events: u64,
}

/// Copies the event log at `log` (which a server may be appending to) into a new
/// file at `target` (mode 0600 on Unix; it must not exist yet) and describes the copy.
/// The copy is fsync'd before this returns.
pub fn snapshot_event_log(log: &Path, target: &Path) -> Result<LogSnapshot, StoreError> {
    if !log.is_file() {
        return Err(StoreError::Unavailable(format!(
            "no event log at {}",
            log.display()
        )));
    }
    // Created empty and private first: VACUUM INTO accepts an empty file, and the copy
    // is never readable by others, not even for a moment.
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(target)
        .map_err(|e| io_error(format!("creating {}", target.display()), e))?;

    let source = open_reader_connection(log).map_err(store_error)?;
    source
        .execute("VACUUM INTO ?1", params![target.to_string_lossy()])
        .map_err(store_error)?;
    drop(source);

    // A rollback journal makes the copy one file (a WAL-mode copy would grow `-wal`
    // and `-shm` files beside it whenever it is read).
    let copy = Connection::open_with_flags(target, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(store_error)?;
    let mode: String = copy
        .query_row("PRAGMA journal_mode = DELETE", [], |row| row.get(0))
        .map_err(store_error)?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(StoreError::Unavailable(format!(
            "cannot switch {} to a rollback journal (got {mode})",
            target.display()
        )));
    }
    drop(copy);
    std::fs::File::open(target)
        .and_then(|file| file.sync_all())
        .map_err(|e| io_error(format!("syncing {}", target.display()), e))?;
    inspect_event_log(target)
}

/// Checks the log file at `path` without writing to it (nothing is created beside
/// a copy made by [`snapshot_event_log`]) and describes it: a damaged file, an
/// unknown schema version or a gap in the positions is [`StoreError::Corrupt`].
pub fn inspect_event_log(path: &Path) -> Result<LogSnapshot, StoreError> {
    let conn = open_reader_connection(path).map_err(store_error)?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(store_error)?;
    if check != "ok" {
        return Err(StoreError::Corrupt(format!(
            "{} fails SQLite's check: {check}",
            path.display()
        )));
    }
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(store_error)?;
    if version != SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "{} has event log schema version {version}, this build reads {SCHEMA_VERSION}",
            path.display()
        )));
    }
    let (head, events) = conn
        .query_row(
            "SELECT COALESCE(MAX(position), 0), COUNT(*) FROM events",
            [],
            |row| Ok((column_u64(row, 0)?, column_u64(row, 1)?)),
        )
        .map_err(store_error)?;
    if head != events {
        return Err(StoreError::Corrupt(format!(
            "{} holds {events} events up to position {head}: positions have gaps",
            path.display()
        )));
    }
    Ok(LogSnapshot { head, events })
}

/// Calls `visit` with each event of type `event_type` in the log file at `path`, in
/// log order, without writing to the file.
pub fn visit_events_of_type(
    path: &Path,
    event_type: &str,
    mut visit: impl FnMut(RecordedEvent) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let conn = open_reader_connection(path).map_err(store_error)?;
    let mut statement = conn
        .prepare(
            "SELECT position, stream, stream_version, event_type, schema_version, data, \
             recorded_at_ms FROM events WHERE event_type = ?1 ORDER BY position",
        )
        .map_err(store_error)?;
    let mut rows = statement.query(params![event_type]).map_err(store_error)?;
    while let Some(row) = rows.next().map_err(store_error)? {
        visit(crate::event_log::recorded_event(row).map_err(store_error)?)?;
    }
    Ok(())
}

fn io_error(context: String, error: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("{context}: {error}"))
}
