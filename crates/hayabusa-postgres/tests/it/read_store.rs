//! The PostgreSQL read store: the conformance suite, persistence across connections,
//! the id range, the stale-writer fence, the schema version and connection errors.

use crate::support::{TestDatabase, options};
use hayabusa_domain::AccountId;
use hayabusa_postgres::{PgOptions, PgReadStore};
use hayabusa_store::conformance::persistent::{self, sample_changes};
use hayabusa_store::conformance::read_store as conformance;
use hayabusa_store::{Change, RateWindows, ReadModelWriter, StoreError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[tokio::test]
async fn the_postgres_read_store_passes_the_conformance_suite() {
    let database = TestDatabase::create().await;
    let made = AtomicUsize::new(0);
    let url = database.url();
    conformance::run_all(|| {
        // A schema of its own per store: every check starts empty.
        let schema = format!("conformance_{}", made.fetch_add(1, Ordering::Relaxed));
        let url = url.clone();
        async move {
            PgReadStore::connect_to(&url, options(&schema))
                .await
                .unwrap_or_else(|error| panic!("connect to {url}: {error}"))
        }
    })
    .await;
    database.drop().await;
}

#[tokio::test]
async fn the_postgres_rate_windows_pass_the_conformance_suite() {
    let database = TestDatabase::create().await;
    let made = AtomicUsize::new(0);
    hayabusa_store::conformance::rate_windows::run_all(|| {
        // Two pools on one schema, as two API nodes have.
        let schema = format!("rates_{}", made.fetch_add(1, Ordering::Relaxed));
        let database = &database;
        async move {
            let a: std::sync::Arc<dyn hayabusa_store::RateWindows> =
                std::sync::Arc::new(database.store(&schema).await);
            let b: std::sync::Arc<dyn hayabusa_store::RateWindows> =
                std::sync::Arc::new(database.store(&schema).await);
            (a, b)
        }
    })
    .await;
    database.drop().await;
}

#[tokio::test]
async fn ended_rate_windows_are_swept() {
    let database = TestDatabase::create().await;
    let store = database.store("reads").await;
    let short = hayabusa_store::RateLimit {
        requests: 5,
        window: Duration::from_millis(50),
    };
    for key in 0..10_u128 {
        store
            .hit(hayabusa_store::RateScope::Peer, key, short)
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The first hit of a store sweeps (in the background).
    let fresh = database.store("reads").await;
    fresh
        .hit(hayabusa_store::RateScope::Account, 1, short)
        .await
        .unwrap();
    let client = database.client().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left: i64 = client
            .query_one("SELECT COUNT(*) FROM reads.rate_windows", &[])
            .await
            .unwrap()
            .get(0);
        if left <= 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{left} windows left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    database.drop().await;
}

#[tokio::test]
async fn checkpoint_models_and_fetch_cursors_survive_a_new_connection() -> Result<(), StoreError> {
    let database = TestDatabase::create().await;
    persistent::models_survive_reopening(|| database.store("reads")).await?;
    database.drop().await;
    Ok(())
}

#[tokio::test]
async fn ids_beyond_bigint_are_refused_without_a_partial_write() -> Result<(), StoreError> {
    let database = TestDatabase::create().await;
    persistent::ids_beyond_i64_are_refused_without_a_partial_write(database.store("reads").await)
        .await?;
    database.drop().await;
    Ok(())
}

#[tokio::test]
async fn a_stale_writers_batch_is_refused() -> Result<(), StoreError> {
    let database = TestDatabase::create().await;
    let stale = database.store("reads").await;
    let current = database.store("reads").await;
    assert_eq!(stale.checkpoint().await?, 0);
    current.apply(sample_changes(), 5).await?;
    let dump = current.dump().await?;

    let refused = stale
        .apply(
            vec![Change::SetTokenHash {
                account_id: AccountId(1),
                token_hash: "stale".to_owned(),
            }],
            7,
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(StoreError::Conflict {
                ref expected,
                actual: 5,
                ..
            }) if expected == "0"
        ),
        "the writer that read checkpoint 0 cannot write on top of 5: {refused:?}"
    );
    assert_eq!(
        current.dump().await?,
        dump,
        "nothing of the refused batch is kept"
    );

    // A batch at or below the checkpoint is a no-op, as always; one ending exactly at
    // it is the same batch (its commit's answer may have been lost), so the writer
    // goes on from there.
    stale.apply(Vec::new(), 3).await?;
    assert!(stale.apply(Vec::new(), 8).await.is_err());
    stale.apply(Vec::new(), 5).await?;
    stale.apply(Vec::new(), 8).await?;
    assert_eq!(current.checkpoint().await?, 8);
    assert!(
        current.apply(Vec::new(), 9).await.is_err(),
        "now the other writer is the stale one"
    );
    drop((stale, current));
    database.drop().await;
    Ok(())
}

#[tokio::test]
async fn the_schema_is_migrated_once_and_a_newer_one_is_refused() -> Result<(), StoreError> {
    let database = TestDatabase::create().await;
    drop(database.store("reads").await);
    drop(database.store("reads").await);
    let url = database.url();
    let client = database.client().await;
    let versions: i64 = client
        .query_one("SELECT COUNT(*) FROM reads.schema_migrations", &[])
        .await
        .expect("count migrations")
        .get(0);
    // Five migrations so far (the read models; snapshots; leases; rate windows;
    // consumer checkpoints), each recorded once.
    assert_eq!(versions, 5, "each migration ran once");
    client
        .batch_execute(
            "INSERT INTO reads.schema_migrations (version, description) VALUES (99, 'future')",
        )
        .await
        .expect("record a future migration");
    let refused = PgReadStore::connect_to(&url, options("reads")).await;
    assert!(
        matches!(&refused, Err(StoreError::Corrupt(message)) if message.contains("99")),
        "{refused:?}"
    );
    drop(client);
    database.drop().await;
    Ok(())
}

#[tokio::test]
async fn without_a_server_connecting_fails_and_hides_the_password() {
    let refused = PgReadStore::connect(
        "postgres://hayabusa:topsecret@127.0.0.1:1/reads",
        PgOptions {
            connect_timeout: Duration::from_secs(2),
            ..PgOptions::default()
        },
    )
    .await;
    match refused {
        Err(StoreError::Unavailable(message)) => {
            assert!(!message.contains("topsecret"), "{message}");
            assert!(
                message.contains("postgres://hayabusa:***@127.0.0.1:1/reads"),
                "{message}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
