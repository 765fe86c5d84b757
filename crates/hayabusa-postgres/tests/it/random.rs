//! Batches of random changes give the in-memory reference's read models (the shared
//! check of `hayabusa_store::conformance::random_batches`).

use crate::support::TestDatabase;
use hayabusa_store::StoreError;
use hayabusa_store::conformance::random_batches;

#[tokio::test]
async fn batches_of_random_changes_give_the_in_memory_references_models() -> Result<(), StoreError>
{
    let database = TestDatabase::create().await;
    random_batches::random_batches_match_the_in_memory_store(
        |seed| {
            let database = &database;
            async move { database.store(&format!("random_{seed}")).await }
        },
        8,
        25,
    )
    .await?;
    database.drop().await;
    Ok(())
}
