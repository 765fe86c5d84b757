//! [`NatsBlobStore`]: the blob store port ([`hayabusa_store::BlobStore`]) on a
//! JetStream object store, so that every node of a cluster reads the files any node
//! stored. Objects are chunked by the object store (files are larger than a NATS
//! message may be); `put` returns after JetStream acknowledged every chunk and the
//! object's metadata (fsync'd with `sync_interval: always`, on a majority with
//! replicas). Keys are the server's generated ones, checked like every adapter does.

use async_nats::Client;
use async_nats::jetstream::object_store::{self, ObjectStore};
use async_nats::jetstream::stream::StorageType;
use async_trait::async_trait;
use futures::StreamExt;
use hayabusa_store::blob::is_valid_key;
use hayabusa_store::{BlobStore, StoreError};
use std::time::SystemTime;
use tokio::io::AsyncReadExt;

/// The default bucket of uploaded files.
pub const DEFAULT_BUCKET: &str = "HAYABUSA_FILES";

/// Files in a JetStream object store bucket.
pub struct NatsBlobStore {
    store: ObjectStore,
}

impl std::fmt::Debug for NatsBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBlobStore").finish_non_exhaustive()
    }
}

fn unavailable(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("file store: {what}: {error}"))
}

fn invalid(key: &str) -> StoreError {
    StoreError::Corrupt(format!("invalid blob key {key:?}"))
}

impl NatsBlobStore {
    /// Opens bucket `bucket` over `client`, creating it (file storage, `replicas`
    /// copies) if it does not exist.
    pub async fn open(client: Client, bucket: &str, replicas: usize) -> Result<Self, StoreError> {
        let jetstream = async_nats::jetstream::new(client);
        let store = match jetstream.get_object_store(bucket).await {
            Ok(store) => store,
            Err(_) => jetstream
                .create_object_store(object_store::Config {
                    bucket: bucket.to_owned(),
                    description: Some("Hayabusa's uploaded files".to_owned()),
                    storage: StorageType::File,
                    num_replicas: replicas,
                    ..Default::default()
                })
                .await
                .map_err(|error| unavailable("creating the bucket", error))?,
        };
        Ok(NatsBlobStore { store })
    }
}

#[async_trait]
impl BlobStore for NatsBlobStore {
    async fn put(&self, key: &str, content: Vec<u8>) -> Result<(), StoreError> {
        if !is_valid_key(key) {
            return Err(invalid(key));
        }
        self.store
            .put(key, &mut content.as_slice())
            .await
            .map(|_| ())
            .map_err(|error| unavailable("storing a file", error))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if !is_valid_key(key) {
            return Ok(None);
        }
        let mut object = match self.store.get(key).await {
            Ok(object) => object,
            Err(error) if error.kind() == object_store::GetErrorKind::NotFound => {
                return Ok(None);
            }
            Err(error) => return Err(unavailable("reading a file", error)),
        };
        let mut content = Vec::new();
        object
            .read_to_end(&mut content)
            .await
            .map_err(|error| unavailable("reading a file", error))?;
        Ok(Some(content))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        if !is_valid_key(key) {
            return Err(invalid(key));
        }
        match self.store.delete(key).await {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
            Err(error) => Err(unavailable("removing a file", error)),
        }
    }

    async fn keys_stored_before(&self, cutoff: SystemTime) -> Result<Vec<String>, StoreError> {
        let mut listing = self
            .store
            .list()
            .await
            .map_err(|error| unavailable("listing files", error))?;
        let mut keys = Vec::new();
        while let Some(info) = listing.next().await {
            let info = info.map_err(|error| unavailable("listing files", error))?;
            let stored = info.modified.map(SystemTime::from);
            if !info.deleted && stored.is_some_and(|stored| stored < cutoff) {
                keys.push(info.name);
            }
        }
        keys.sort();
        Ok(keys)
    }

    async fn remove_leftovers(&self, _cutoff: SystemTime) -> Result<usize, StoreError> {
        // An interrupted put leaves chunks without metadata, which the object store
        // purges when the same name is put again; there are no temporary files.
        Ok(0)
    }
}
