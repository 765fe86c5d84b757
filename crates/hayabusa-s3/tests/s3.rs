//! The adapter against a real S3-compatible server (moto): the blob store
//! conformance checks, a file larger than one network read, and a bucket that does
//! not exist failing at start.

use hayabusa_s3::testkit::{BUCKET, S3Server};
use hayabusa_s3::{S3BlobStore, S3Location};
use hayabusa_store::BlobStore;

#[tokio::test]
async fn the_adapter_passes_the_conformance_checks_on_an_s3_server() {
    let server = S3Server::start();
    hayabusa_store::blob::conformance(&server.blob_store("conformance").await).await;
    // Another prefix of the same bucket sees none of those files.
    let other = server.blob_store("elsewhere").await;
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    assert!(other.keys_stored_before(later).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_large_file_comes_back_whole() {
    let server = S3Server::start();
    let blobs = server.blob_store("files").await;
    let content: Vec<u8> = (0..6_000_000u32).map(|i| (i % 251) as u8).collect();
    blobs.put("large-1", content.clone()).await.unwrap();
    assert_eq!(blobs.get("large-1").await.unwrap(), Some(content));
}

#[tokio::test]
async fn connecting_checks_the_bucket() {
    let server = S3Server::start();
    let location = S3Location::parse(&format!("s3://{BUCKET}/files")).unwrap();
    let blobs = S3BlobStore::connect_with(&location, &server.env())
        .await
        .expect("the bucket answers");
    blobs.put("file-1", b"hello".to_vec()).await.unwrap();
    let missing = S3Location::parse("s3://no-such-bucket").unwrap();
    let refused = S3BlobStore::connect_with(&missing, &server.env())
        .await
        .expect_err("no bucket");
    assert!(refused.to_string().contains("no-such-bucket"), "{refused}");
}
