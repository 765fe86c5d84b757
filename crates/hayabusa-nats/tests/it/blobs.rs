//! Files in a JetStream object store: the blob store conformance checks, files larger
//! than a NATS message, and a file stored through one connection read through another
//! (another node).

use hayabusa_nats::testkit::NatsServer;
use hayabusa_nats::{NatsOptions, connect};
use hayabusa_store::BlobStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_object_store_keeps_files_for_every_connection() {
    let server = NatsServer::start();
    let log = connect(&server.url(), NatsOptions::default())
        .await
        .unwrap();
    let blobs = log.blob_store("FILES_TEST", 1).await.unwrap();
    hayabusa_store::blob::conformance(&blobs).await;

    // 3 MB: several times a NATS message's limit.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    blobs.put("file-big", big.clone()).await.unwrap();
    let elsewhere = connect(&server.url(), NatsOptions::default())
        .await
        .unwrap();
    let other = elsewhere.blob_store("FILES_TEST", 1).await.unwrap();
    assert_eq!(other.get("file-big").await.unwrap(), Some(big));
    assert_eq!(other.get("file-1").await.unwrap(), Some(b"hello".to_vec()));
    other.delete("file-big").await.unwrap();
    assert_eq!(blobs.get("file-big").await.unwrap(), None);
}
