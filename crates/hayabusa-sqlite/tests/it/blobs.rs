//! The local-directory blob store.

use hayabusa_sqlite::LocalBlobStore;
use hayabusa_store::BlobStore;

#[tokio::test]
async fn the_local_blob_store_passes_the_conformance_checks_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open(&dir.path().join("blobs")).unwrap();
    hayabusa_store::blob::conformance(&store).await;
    drop(store);
    let reopened = LocalBlobStore::open(&dir.path().join("blobs")).unwrap();
    assert_eq!(
        reopened.get("file-1").await.unwrap(),
        Some(b"hello".to_vec())
    );
    // Nothing outside the directory was touched.
    assert!(!dir.path().join("etc").exists());
}
