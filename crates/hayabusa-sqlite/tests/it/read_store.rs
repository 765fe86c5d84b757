//! The SQLite read store: the conformance suite and persistence across reopening.

use hayabusa_sqlite::SqliteReadStore;
use hayabusa_store::StoreError;
use hayabusa_store::conformance::persistent;
use hayabusa_store::conformance::read_store as conformance;
use std::sync::atomic::{AtomicUsize, Ordering};

#[tokio::test]
async fn the_sqlite_read_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let opened = AtomicUsize::new(0);
    conformance::run_all(|| {
        let path = dir.path().join(format!(
            "read-{}.db",
            opened.fetch_add(1, Ordering::Relaxed)
        ));
        async move { SqliteReadStore::open(&path).expect("open the read store") }
    })
    .await;
}

#[tokio::test]
async fn checkpoint_models_and_fetch_cursors_survive_a_reopen() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("read.db");
    persistent::models_survive_reopening(|| async {
        SqliteReadStore::open(&path).expect("open the read store")
    })
    .await
}

#[tokio::test]
async fn ids_beyond_sqlite_integers_are_refused_without_a_partial_write() -> Result<(), StoreError>
{
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteReadStore::open(&dir.path().join("read.db"))?;
    persistent::ids_beyond_i64_are_refused_without_a_partial_write(store).await
}
