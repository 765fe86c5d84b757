//! `hayabusa backup` and `hayabusa restore`: copies of a data directory taken while
//! the server runs, and new data directories made from them.
//!
//! **A backup is a directory** laid out like a data directory, plus a manifest:
//!
//! - `events.sqlite` — a consistent snapshot of the event log (see
//!   [`hayabusa_sqlite::snapshot_event_log`]): every event committed — so every write
//!   acknowledged — before the backup began, and nothing half-written;
//! - `secret.key`, and `admin.token` and `.bootstrapped` if present (tokens are derived
//!   from the secret: without it every token would be invalid);
//! - `files/` — the blobs that the snapshot's `file_uploaded` events refer to (a blob
//!   is written before its event is appended, so each of them exists);
//! - `manifest.json`, written last: the log position and event count of the snapshot
//!   and every file's size and SHA-256. A directory without it is an unfinished backup.
//!
//! The read models and the stream index are derived and are not copied. Files are
//! created 0600 and directories 0700. Pack the directory with `tar` to move it.
//!
//! A restore goes into a new or empty directory only: it checks the manifest (known
//! file names only), copies each file while checking its size and checksum, checks
//! the log (SQLite's `quick_check`, position and count as recorded, every referenced
//! blob present) and rebuilds the read models from it. Should any of that fail, the
//! target is left as empty as it was found.

use crate::data_dir::{
    ADMIN_TOKEN_FILE, BLOBS_DIR, BOOTSTRAPPED_MARKER, EVENTS_FILE, SECRET_FILE, set_mode,
};
use hayabusa_domain::{Event, decode_event};
use hayabusa_store::StoreError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The manifest's file name in a backup.
pub const MANIFEST_FILE: &str = "manifest.json";
/// What `format` says in a manifest.
const FORMAT: &str = "hayabusa-backup";
/// The layout this code writes and reads.
const FORMAT_VERSION: u32 = 1;
/// The files of a data directory that a backup copies besides the log and blobs;
/// the secret is required, the others are copied if present.
const SMALL_FILES: [&str; 3] = [SECRET_FILE, ADMIN_TOKEN_FILE, BOOTSTRAPPED_MARKER];

/// What went wrong in a backup or a restore.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The source has no event log or no secret.
    #[error("{path} is not a data directory: {reason}")]
    NotADataDir {
        /// The directory.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// The target already holds something.
    #[error("{0} is not empty; choose a new or empty directory")]
    TargetNotEmpty(PathBuf),
    /// The backup's manifest is missing, unreadable or names unexpected files.
    #[error("{path} is not a complete hayabusa backup: {reason}")]
    Invalid {
        /// The backup directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A file of the backup differs from what its manifest records.
    #[error("the backup is damaged: {file}: {reason}")]
    Damaged {
        /// The file, relative to the backup directory.
        file: String,
        /// How it differs.
        reason: String,
    },
    /// A blob that the event log refers to is not in the data directory.
    #[error("the data directory lacks {BLOBS_DIR}/{0}, which an uploaded file refers to")]
    MissingBlob(String),
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// The event log (or its copy) could not be read.
    #[error("event log: {0}")]
    Store(#[from] StoreError),
    /// Rebuilding the restored read models failed.
    #[error("rebuilding the read models: {0:#}")]
    Rebuild(anyhow::Error),
    /// The blocking task running the copy failed.
    #[error("the copy task failed: {0}")]
    Task(String),
}

/// The manifest of a backup (`manifest.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always `hayabusa-backup`.
    pub format: String,
    /// The layout version (1).
    pub version: u32,
    /// When the backup was taken, in Unix milliseconds.
    pub created_at_ms: u64,
    /// The position of the last event in the backup's log.
    pub log_position: u64,
    /// How many events the backup's log holds.
    pub event_count: u64,
    /// Every file of the backup but the manifest.
    pub files: Vec<ManifestFile>,
}

/// One file of a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Its path relative to the backup directory, with `/` separators.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its SHA-256, in lowercase hex.
    pub sha256: String,
}

impl Manifest {
    /// How many blobs (uploaded files' contents) the backup holds.
    pub fn blobs(&self) -> usize {
        self.files
            .iter()
            .filter(|file| blob_key_of(&file.path).is_some())
            .count()
    }
}

/// Backs up the data directory `data_dir` (which a server may be using) into the new
/// or empty directory `to` and returns the manifest written there.
pub async fn backup(data_dir: &Path, to: &Path) -> Result<Manifest, BackupError> {
    let (data_dir, to) = (data_dir.to_path_buf(), to.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let log = data_dir.join(EVENTS_FILE);
        if !log.is_file() {
            return Err(BackupError::NotADataDir {
                path: data_dir,
                reason: format!("no {EVENTS_FILE}"),
            });
        }
        let target = Target::claim(&to)?;
        let manifest = write_backup(&data_dir, &to)?;
        target.keep();
        tracing::info!(
            to = %to.display(),
            log_position = manifest.log_position,
            blobs = manifest.blobs(),
            "backup written"
        );
        Ok(manifest)
    })
    .await
    .map_err(|e| BackupError::Task(e.to_string()))?
}

/// Restores the backup in `from` into the new or empty data directory `data_dir` and
/// rebuilds its read models; returns the backup's manifest.
pub async fn restore(from: &Path, data_dir: &Path) -> Result<Manifest, BackupError> {
    let (from, dir) = (from.to_path_buf(), data_dir.to_path_buf());
    let (manifest, target) = tokio::task::spawn_blocking(move || {
        if !is_missing_or_empty(&dir)? {
            return Err(BackupError::TargetNotEmpty(dir));
        }
        let manifest = read_manifest(&from)?;
        let target = Target::claim(&dir)?;
        copy_backup(&from, &dir, &manifest)?;
        Ok((manifest, target))
    })
    .await
    .map_err(|e| BackupError::Task(e.to_string()))??;
    let position = crate::rebuild(data_dir, &crate::Backends::default())
        .await
        .map_err(BackupError::Rebuild)?;
    if position != manifest.log_position {
        return Err(BackupError::Damaged {
            file: EVENTS_FILE.to_owned(),
            reason: format!(
                "the read models were rebuilt up to position {position}, the manifest records {}",
                manifest.log_position
            ),
        });
    }
    target.keep();
    tracing::info!(
        data_dir = %data_dir.display(),
        log_position = manifest.log_position,
        blobs = manifest.blobs(),
        "backup restored"
    );
    Ok(manifest)
}

/// Writes the backup of `data_dir` into the claimed directory `to`.
fn write_backup(data_dir: &Path, to: &Path) -> Result<Manifest, BackupError> {
    let log = to.join(EVENTS_FILE);
    let snapshot = hayabusa_sqlite::snapshot_event_log(&data_dir.join(EVENTS_FILE), &log)?;
    let (bytes, sha256) = hash_file(&log)?;
    let mut files = vec![ManifestFile {
        path: EVENTS_FILE.to_owned(),
        bytes,
        sha256,
    }];
    for name in SMALL_FILES {
        match copy_private(&data_dir.join(name), &to.join(name)) {
            Ok((bytes, sha256)) => files.push(ManifestFile {
                path: name.to_owned(),
                bytes,
                sha256,
            }),
            Err(CopyError::SourceMissing) if name != SECRET_FILE => {}
            Err(CopyError::SourceMissing) => {
                return Err(BackupError::NotADataDir {
                    path: data_dir.to_path_buf(),
                    reason: format!("no {SECRET_FILE}"),
                });
            }
            Err(CopyError::Io(error)) => return Err(error),
        }
    }
    let blobs = to.join(BLOBS_DIR);
    create_private_dir(&blobs)?;
    for key in blob_keys(&log)? {
        let path = format!("{BLOBS_DIR}/{key}");
        match copy_private(&data_dir.join(BLOBS_DIR).join(&key), &to.join(&path)) {
            Ok((bytes, sha256)) => files.push(ManifestFile {
                path,
                bytes,
                sha256,
            }),
            Err(CopyError::SourceMissing) => return Err(BackupError::MissingBlob(key)),
            Err(CopyError::Io(error)) => return Err(error),
        }
    }
    sync_dir(&blobs)?;
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        version: FORMAT_VERSION,
        created_at_ms: now_ms(),
        log_position: snapshot.head,
        event_count: snapshot.events,
        files,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Invalid {
        path: to.to_path_buf(),
        reason: format!("cannot encode the manifest: {e}"),
    })?;
    crate::data_dir::write_private(&to.join(MANIFEST_FILE), &json).map_err(|e| {
        BackupError::Io {
            context: format!("writing {}", to.join(MANIFEST_FILE).display()),
            source: std::io::Error::other(format!("{e:#}")),
        }
    })?;
    sync_dir(to)?;
    Ok(manifest)
}

/// Reads and checks the manifest of the backup in `from`.
fn read_manifest(from: &Path) -> Result<Manifest, BackupError> {
    let invalid = |reason: String| BackupError::Invalid {
        path: from.to_path_buf(),
        reason,
    };
    let path = from.join(MANIFEST_FILE);
    let text = match fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(invalid(format!(
                "no {MANIFEST_FILE} (a backup writes it last: this one did not finish)"
            )));
        }
        Err(e) => return Err(io(format!("reading {}", path.display()), e)),
    };
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| invalid(format!("{MANIFEST_FILE} cannot be read: {e}")))?;
    if manifest.format != FORMAT || manifest.version != FORMAT_VERSION {
        return Err(invalid(format!(
            "{MANIFEST_FILE} is {} version {}, this build reads {FORMAT} version {FORMAT_VERSION}",
            manifest.format, manifest.version
        )));
    }
    let mut seen = HashSet::new();
    for file in &manifest.files {
        let known = file.path == EVENTS_FILE
            || SMALL_FILES.contains(&file.path.as_str())
            || blob_key_of(&file.path).is_some();
        if !known {
            return Err(invalid(format!(
                "{MANIFEST_FILE} lists an unexpected file {:?}",
                file.path
            )));
        }
        if !seen.insert(file.path.as_str()) {
            return Err(invalid(format!(
                "{MANIFEST_FILE} lists {:?} twice",
                file.path
            )));
        }
    }
    for required in [EVENTS_FILE, SECRET_FILE] {
        if !seen.contains(required) {
            return Err(invalid(format!("{MANIFEST_FILE} lists no {required}")));
        }
    }
    Ok(manifest)
}

/// Copies the files that `manifest` lists from `from` into the claimed directory
/// `dir`, checking each one and then the log.
fn copy_backup(from: &Path, dir: &Path, manifest: &Manifest) -> Result<(), BackupError> {
    let blobs = dir.join(BLOBS_DIR);
    create_private_dir(&blobs)?;
    for file in &manifest.files {
        let (bytes, sha256) = match copy_private(&from.join(&file.path), &dir.join(&file.path)) {
            Ok(copied) => copied,
            Err(CopyError::SourceMissing) => {
                return Err(BackupError::Damaged {
                    file: file.path.clone(),
                    reason: "missing".to_owned(),
                });
            }
            Err(CopyError::Io(error)) => return Err(error),
        };
        if bytes != file.bytes || sha256 != file.sha256 {
            return Err(BackupError::Damaged {
                file: file.path.clone(),
                reason: format!(
                    "{bytes} bytes with SHA-256 {sha256}, the manifest records {} bytes with {}",
                    file.bytes, file.sha256
                ),
            });
        }
    }
    sync_dir(&blobs)?;
    let log = dir.join(EVENTS_FILE);
    let damaged = |reason: String| BackupError::Damaged {
        file: EVENTS_FILE.to_owned(),
        reason,
    };
    let snapshot = hayabusa_sqlite::inspect_event_log(&log).map_err(|e| damaged(e.to_string()))?;
    if (snapshot.head, snapshot.events) != (manifest.log_position, manifest.event_count) {
        return Err(damaged(format!(
            "{} events up to position {}, the manifest records {} up to {}",
            snapshot.events, snapshot.head, manifest.event_count, manifest.log_position
        )));
    }
    let listed: HashSet<&str> = manifest
        .files
        .iter()
        .filter_map(|file| blob_key_of(&file.path))
        .collect();
    for key in blob_keys(&log)? {
        if !listed.contains(key.as_str()) {
            return Err(damaged(format!(
                "an uploaded file refers to {BLOBS_DIR}/{key}, which the backup lacks"
            )));
        }
    }
    sync_dir(dir)
}

/// The blob keys that the `file_uploaded` events of the log file at `log` refer to.
fn blob_keys(log: &Path) -> Result<BTreeSet<String>, BackupError> {
    let mut keys = BTreeSet::new();
    hayabusa_sqlite::visit_events_of_type(log, "file_uploaded", |recorded| {
        match decode_event(
            &recorded.event_type,
            recorded.schema_version,
            &recorded.data,
        ) {
            Ok(Event::FileUploaded { blob_key, .. })
                if hayabusa_store::blob::is_valid_key(&blob_key) =>
            {
                keys.insert(blob_key);
                Ok(())
            }
            Ok(_) => Err(StoreError::Corrupt(format!(
                "the file_uploaded event at position {} has no valid blob key",
                recorded.position
            ))),
            Err(e) => Err(StoreError::Corrupt(format!(
                "event at position {}: {e}",
                recorded.position
            ))),
        }
    })?;
    Ok(keys)
}

/// The blob key of a backup path `files/KEY`, if it is one.
fn blob_key_of(path: &str) -> Option<&str> {
    path.strip_prefix(BLOBS_DIR)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|key| hayabusa_store::blob::is_valid_key(key))
}

/// A target directory that was missing or empty, emptied again (and removed if this
/// created it) unless [`keep`](Target::keep) is called: a failed backup or restore
/// leaves nothing behind.
struct Target {
    dir: PathBuf,
    created: bool,
    keep: bool,
}

impl Target {
    fn claim(dir: &Path) -> Result<Target, BackupError> {
        if !is_missing_or_empty(dir)? {
            return Err(BackupError::TargetNotEmpty(dir.to_path_buf()));
        }
        let created = !dir.exists();
        if created {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent)
                    .map_err(|e| io(format!("creating {}", parent.display()), e))?;
            }
            fs::create_dir(dir).map_err(|e| io(format!("creating {}", dir.display()), e))?;
        }
        set_mode(dir, 0o700).map_err(|e| BackupError::Io {
            context: format!("chmod {}", dir.display()),
            source: std::io::Error::other(format!("{e:#}")),
        })?;
        Ok(Target {
            dir: dir.to_path_buf(),
            created,
            keep: false,
        })
    }

    fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let result = if self.created {
            fs::remove_dir_all(&self.dir)
        } else {
            fs::read_dir(&self.dir).and_then(|entries| {
                for entry in entries {
                    let path = entry?.path();
                    if path.is_dir() {
                        fs::remove_dir_all(&path)?;
                    } else {
                        fs::remove_file(&path)?;
                    }
                }
                Ok(())
            })
        };
        if let Err(error) = result {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot clean up after a failure");
        }
    }
}

fn is_missing_or_empty(dir: &Path) -> Result<bool, BackupError> {
    match fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(io(format!("reading {}", dir.display()), e)),
    }
}

enum CopyError {
    SourceMissing,
    Io(BackupError),
}

/// Copies `from` into a new file `to` (mode 0600), fsync'd; returns its size and
/// SHA-256.
fn copy_private(from: &Path, to: &Path) -> Result<(u64, String), CopyError> {
    let source = match File::open(from) {
        Ok(source) => source,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(CopyError::SourceMissing),
        Err(e) => return Err(CopyError::Io(io(format!("opening {}", from.display()), e))),
    };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut target = options
        .open(to)
        .map_err(|e| CopyError::Io(io(format!("creating {}", to.display()), e)))?;
    let copied = hash_reader(source, |chunk| target.write_all(chunk))
        .map_err(|e| CopyError::Io(io(format!("copying {}", from.display()), e)))?;
    target
        .sync_all()
        .map_err(|e| CopyError::Io(io(format!("syncing {}", to.display()), e)))?;
    Ok(copied)
}

/// The size and SHA-256 of the file at `path`.
fn hash_file(path: &Path) -> Result<(u64, String), BackupError> {
    let file = File::open(path).map_err(|e| io(format!("opening {}", path.display()), e))?;
    hash_reader(file, |_| Ok(())).map_err(|e| io(format!("reading {}", path.display()), e))
}

/// Reads `source` to the end, hashing it and handing each chunk to `sink`.
fn hash_reader(
    mut source: impl Read,
    mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    loop {
        let read = match source.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buffer[..read]);
        sink(&buffer[..read])?;
        bytes += read as u64;
    }
    Ok((bytes, hex::encode(hasher.finalize())))
}

fn create_private_dir(dir: &Path) -> Result<(), BackupError> {
    fs::create_dir(dir).map_err(|e| io(format!("creating {}", dir.display()), e))?;
    set_mode(dir, 0o700).map_err(|e| BackupError::Io {
        context: format!("chmod {}", dir.display()),
        source: std::io::Error::other(format!("{e:#}")),
    })
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| io(format!("syncing {}", dir.display()), e))
}

fn io(context: String, source: std::io::Error) -> BackupError {
    BackupError::Io { context, source }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_blob_paths_with_valid_keys_are_blobs() {
        assert_eq!(blob_key_of("files/file-123"), Some("file-123"));
        assert_eq!(blob_key_of("files/../secret.key"), None);
        assert_eq!(blob_key_of("files/a/b"), None);
        assert_eq!(blob_key_of("files/"), None);
        assert_eq!(blob_key_of("filesfile-1"), None);
        assert_eq!(blob_key_of("/etc/passwd"), None);
    }
}
