//! Embedded adapters: the group-commit SQLite event log, the SQLite read store,
//! the local-directory blob store, and consistent copies of a live log for backups.
//! Every file they create is mode 0600 and every directory 0700.

pub mod blobs;
pub mod event_log;
pub mod read_store;
pub mod snapshot;

pub use blobs::LocalBlobStore;
pub use event_log::{
    DEFAULT_IDEMPOTENCY_EXPIRY, GroupCommitStats, IndexSettings, LogSettings, SqliteEventLog,
    index_path,
};
pub use read_store::SqliteReadStore;
pub use snapshot::{LogSnapshot, inspect_event_log, snapshot_event_log, visit_events_of_type};

use std::fs::{DirBuilder, File, OpenOptions};
use std::path::Path;

/// Options that create a new file readable and writable by its owner only (0600).
pub(crate) fn private_file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Creates `path` empty with mode 0600 unless it exists, so that SQLite (which gives
/// its `-wal` and `-shm` files the database file's mode) never makes a file other
/// users can read. An existing file keeps its mode.
pub(crate) fn ensure_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(file) => file.sync_all(),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates the directory `path` (and its parents) with mode 0700 unless it exists.
pub(crate) fn private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)?;
    // A new directory's entry is durable once its parent is synced.
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}
