//! The local-directory blob store of the embedded deployment: one file per blob,
//! named by its generated key, written to a temporary file, fsync'd and renamed so a
//! crash never leaves half a file under a key.

use hayabusa_store::blob::is_valid_key;
use hayabusa_store::{BlobStore, StoreError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Blobs as files in a directory.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    dir: PathBuf,
}

impl LocalBlobStore {
    /// Uses (and creates) `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
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
}

#[async_trait::async_trait]
impl BlobStore for LocalBlobStore {
    async fn put(&self, key: &str, content: Vec<u8>) -> Result<(), StoreError> {
        let path = self.path(key)?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let tmp = path.with_extension("partial");
            let mut file = std::fs::File::create(&tmp)?;
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
}
