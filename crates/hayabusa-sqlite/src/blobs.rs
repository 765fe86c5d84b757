//! The local-directory blob store of the embedded deployment: one file per blob,
//! named by its generated key, written to a temporary file, fsync'd and renamed so a
//! crash never leaves half a file under a key. The directory is created 0700 and
//! every file 0600: blobs are readable by the server's user only.

use hayabusa_store::blob::is_valid_key;
use hayabusa_store::{BlobStore, StoreError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The extension of a blob being written (renamed to its key once durable).
const TEMP_EXTENSION: &str = "partial";

/// Blobs as files in a directory.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    dir: PathBuf,
}

impl LocalBlobStore {
    /// Uses (and creates, mode 0700) `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        crate::private_dir(dir)
            .map_err(|e| StoreError::Unavailable(format!("creating {}: {e}", dir.display())))?;
        Ok(LocalBlobStore {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        if is_valid_key(key) {
            Ok(self.dir.join(key))
        } else {
            Err(StoreError::Corrupt(format!("invalid blob key {key:?}")))
        }
    }

    /// The directory's entries with their modification times, on a blocking thread.
    async fn entries(&self) -> Result<Vec<(String, SystemTime)>, StoreError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<Vec<(String, SystemTime)>> {
            let mut entries = Vec::new();
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let metadata = entry.metadata()?;
                if !metadata.is_file() {
                    continue;
                }
                if let Ok(name) = entry.file_name().into_string() {
                    entries.push((name, metadata.modified()?));
                }
            }
            Ok(entries)
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
        .map_err(|e| StoreError::Unavailable(format!("listing blobs: {e}")))
    }
}

#[async_trait::async_trait]
impl BlobStore for LocalBlobStore {
    async fn put(&self, key: &str, content: Vec<u8>) -> Result<(), StoreError> {
        let path = self.path(key)?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let tmp = path.with_extension(TEMP_EXTENSION);
            let mut file = crate::private_file_options().open(&tmp)?;
            file.write_all(&content)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&dir)?.sync_all()
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
        .map_err(|e| StoreError::Unavailable(format!("writing blob: {e}")))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Ok(path) = self.path(key) else {
            return Ok(None);
        };
        match tokio::fs::read(&path).await {
            Ok(content) => Ok(Some(content)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Unavailable(format!("reading blob: {e}"))),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::Unavailable(format!("removing blob: {e}"))),
        }
    }

    async fn keys_stored_before(&self, cutoff: SystemTime) -> Result<Vec<String>, StoreError> {
        let mut keys: Vec<String> = self
            .entries()
            .await?
            .into_iter()
            .filter(|(name, modified)| is_valid_key(name) && *modified < cutoff)
            .map(|(name, _)| name)
            .collect();
        keys.sort();
        Ok(keys)
    }

    async fn remove_leftovers(&self, cutoff: SystemTime) -> Result<usize, StoreError> {
        let mut removed = 0;
        for (name, modified) in self.entries().await? {
            let is_temp = name
                .strip_suffix(TEMP_EXTENSION)
                .and_then(|stem| stem.strip_suffix('.'))
                .is_some_and(is_valid_key);
            if is_temp && modified < cutoff {
                match tokio::fs::remove_file(self.dir.join(&name)).await {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(StoreError::Unavailable(format!(
                            "removing a temporary blob: {e}"
                        )));
                    }
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn leftover_temporary_files_are_removed_once_older_than_the_cutoff() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = dir.path().join("files");
        let store = LocalBlobStore::open(&files).expect("open");
        std::fs::write(files.join("file-7.partial"), b"half").expect("write");
        std::fs::write(files.join("notes.txt"), b"not ours").expect("write");
        let past = SystemTime::now() - Duration::from_secs(3600);
        assert_eq!(store.remove_leftovers(past).await.expect("sweep"), 0);
        let future = SystemTime::now() + Duration::from_secs(3600);
        assert_eq!(store.remove_leftovers(future).await.expect("sweep"), 1);
        assert!(!files.join("file-7.partial").exists());
        assert!(
            files.join("notes.txt").exists(),
            "foreign files are left alone"
        );
        assert!(
            store
                .keys_stored_before(future)
                .await
                .expect("list")
                .is_empty()
        );
    }
}
