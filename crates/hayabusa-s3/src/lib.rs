//! [`S3BlobStore`]: the blob store port ([`hayabusa_store::BlobStore`]) on Amazon S3
//! or any S3-compatible service (MinIO, Ceph RGW, Cloudflare R2, …), through the
//! `object_store` crate, so that every node of a cluster reads the files any node
//! stored.
//!
//! - Objects are named `<prefix>/<key>` in one bucket; keys are the server's
//!   generated ones, checked like every adapter does, so no client input reaches an
//!   object name.
//! - `put` is one `PUT Object` and returns once the service acknowledged it (S3
//!   acknowledges a write after storing it durably; an S3-compatible service's
//!   guarantee is its own). An object is never visible half-written, so there are
//!   no leftovers to remove.
//! - Settings come from the environment as the AWS tools name them
//!   (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//!   `AWS_REGION`, `AWS_ENDPOINT_URL` for an S3-compatible service,
//!   `AWS_ALLOW_HTTP=true` for one without TLS), the bucket and prefix from the URL
//!   `s3://bucket[/prefix]`.

#[cfg(feature = "testkit")]
pub mod testkit;

use async_trait::async_trait;
use futures::TryStreamExt;
use hayabusa_store::blob::is_valid_key;
use hayabusa_store::{BlobStore, StoreError};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::sync::Arc;
use std::time::SystemTime;

/// Where files go: a bucket and a prefix in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// The prefix of every object name (no leading or trailing `/`; may be empty).
    pub prefix: String,
}

impl S3Location {
    /// Parses `s3://bucket[/prefix]`.
    pub fn parse(url: &str) -> Result<S3Location, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{url:?} is not an s3://bucket[/prefix] URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return Err(format!(
                "{bucket:?} is not an S3 bucket name (3–63 of a-z, 0-9, '-' and '.')"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|part| part == "." || part == ".." || (part.is_empty() && !prefix.is_empty()))
        {
            return Err(format!("{prefix:?} is not a plain object name prefix"));
        }
        Ok(S3Location {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// Files in an S3 bucket (or any `object_store` store).
pub struct S3BlobStore {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    location: String,
}

impl std::fmt::Debug for S3BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3BlobStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

fn unavailable(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("file store: {what}: {error}"))
}

fn invalid(key: &str) -> StoreError {
    StoreError::Corrupt(format!("invalid blob key {key:?}"))
}

impl S3BlobStore {
    /// The store at `location`, with the service's settings from the environment
    /// (see the crate documentation). Checks that the bucket answers.
    pub async fn connect(location: &S3Location) -> Result<S3BlobStore, StoreError> {
        S3BlobStore::connect_with(location, &[]).await
    }

    /// As [`connect`](S3BlobStore::connect), with `settings` (`AWS_*` names and
    /// values) over the environment's.
    pub async fn connect_with(
        location: &S3Location,
        settings: &[(String, String)],
    ) -> Result<S3BlobStore, StoreError> {
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&location.bucket);
        for (name, value) in settings {
            let key = name
                .to_ascii_lowercase()
                .parse()
                .map_err(|error| unavailable(&format!("the setting {name}"), error))?;
            builder = builder.with_config(key, value);
        }
        let store = builder
            .build()
            .map_err(|error| unavailable(&format!("configuring {location}"), error))?;
        let blobs = S3BlobStore::on(Arc::new(store), &location.prefix, location.to_string());
        blobs.check().await?;
        Ok(blobs)
    }

    /// Files under `prefix` of any `object_store` store.
    pub fn on(store: Arc<dyn ObjectStore>, prefix: &str, location: String) -> S3BlobStore {
        S3BlobStore {
            store,
            prefix: Path::from(prefix),
            location,
        }
    }

    /// Lists at most one object, so that a wrong bucket, endpoint or key fails at
    /// start rather than at the first upload.
    async fn check(&self) -> Result<(), StoreError> {
        let mut listing = self.store.list(Some(&self.prefix));
        listing
            .try_next()
            .await
            .map_err(|error| unavailable(&format!("reaching {}", self.location), error))?;
        Ok(())
    }

    fn path(&self, key: &str) -> Path {
        self.prefix.clone().join(key)
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(&self, key: &str, content: Vec<u8>) -> Result<(), StoreError> {
        if !is_valid_key(key) {
            return Err(invalid(key));
        }
        self.store
            .put(&self.path(key), PutPayload::from(content))
            .await
            .map(|_| ())
            .map_err(|error| unavailable("storing a file", error))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if !is_valid_key(key) {
            return Ok(None);
        }
        let object = match self.store.get(&self.path(key)).await {
            Ok(object) => object,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(unavailable("reading a file", error)),
        };
        let content = object
            .bytes()
            .await
            .map_err(|error| unavailable("reading a file", error))?;
        Ok(Some(content.to_vec()))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        if !is_valid_key(key) {
            return Err(invalid(key));
        }
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(unavailable("removing a file", error)),
        }
    }

    async fn keys_stored_before(&self, cutoff: SystemTime) -> Result<Vec<String>, StoreError> {
        let objects: Vec<_> = self
            .store
            .list(Some(&self.prefix))
            .try_collect()
            .await
            .map_err(|error| unavailable("listing files", error))?;
        let mut keys: Vec<String> = objects
            .into_iter()
            .filter(|object| SystemTime::from(object.last_modified) < cutoff)
            .filter_map(|object| {
                // Only the files directly under the prefix that the server could
                // have named; anything else in the bucket is not ours.
                let key = object.location.filename()?.to_owned();
                (object.location == self.path(&key) && is_valid_key(&key)).then_some(key)
            })
            .collect();
        keys.sort();
        Ok(keys)
    }

    async fn remove_leftovers(&self, _cutoff: SystemTime) -> Result<usize, StoreError> {
        // A PUT is atomic: an interrupted one leaves nothing behind.
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_a_bucket_and_a_plain_prefix() {
        let parsed = S3Location::parse("s3://chat-files/prod/uploads/").unwrap();
        assert_eq!(parsed.bucket, "chat-files");
        assert_eq!(parsed.prefix, "prod/uploads");
        assert_eq!(parsed.to_string(), "s3://chat-files/prod/uploads");
        assert_eq!(S3Location::parse("s3://files").unwrap().prefix, "");
        for bad in [
            "files",
            "http://files",
            "s3://",
            "s3://Files",
            "s3://a",
            "s3://files/../x",
            "s3://files/a//b",
        ] {
            assert!(S3Location::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_adapter_passes_the_conformance_checks_on_object_stores_memory_engine() {
        let store = Arc::new(object_store::memory::InMemory::new());
        // Something else in the bucket is not listed as a file.
        store
            .put(&Path::from("other/file-9"), PutPayload::from_static(b"x"))
            .await
            .unwrap();
        store
            .put(
                &Path::from("files/nested/file-8"),
                PutPayload::from_static(b"x"),
            )
            .await
            .unwrap();
        let blobs = S3BlobStore::on(store, "files", "memory".into());
        hayabusa_store::blob::conformance(&blobs).await;
    }
}
