//! Leases in the `leases` table ([`hayabusa_store::Leases`]), expiring by the
//! database's clock (`clock_timestamp()`), so that the processes' clocks never matter.
//!
//! An acquisition is one upsert that takes the row only if it is free (its
//! conditional `DO UPDATE` leaves a live lease of another holder alone) and bumps the
//! fence. A fenced batch reads the projector lease's row `FOR SHARE` in its own
//! transaction, so an acquisition waits for a batch in flight and every later batch
//! of the old holder sees the new fence and is refused.

use crate::store::PgReadStore;
use crate::values::{get_u64, sql_int, store_error};
use async_trait::async_trait;
use deadpool_postgres::Transaction;
use hayabusa_store::{Leases, StoreError};
use std::time::Duration;

const ACQUIRE: &str = "
INSERT INTO leases (name, holder, fence, expires_at)
VALUES ($1, $2, 1, clock_timestamp() + $3::FLOAT8 * INTERVAL '1 second')
ON CONFLICT (name) DO UPDATE
SET holder = EXCLUDED.holder, fence = leases.fence + 1, expires_at = EXCLUDED.expires_at
WHERE leases.expires_at <= clock_timestamp() OR leases.holder = EXCLUDED.holder
RETURNING fence";

const RENEW: &str = "
UPDATE leases SET expires_at = clock_timestamp() + $4::FLOAT8 * INTERVAL '1 second'
WHERE name = $1 AND holder = $2 AND fence = $3";

const RELEASE: &str = "
UPDATE leases SET expires_at = '-infinity'
WHERE name = $1 AND holder = $2 AND fence = $3";

/// The projector lease's fence, locked against acquisitions until the transaction
/// ends.
const LOCK_PROJECTOR_FENCE: &str = "SELECT fence FROM leases WHERE name = $1 FOR SHARE";

/// Refuses (with [`StoreError::Fenced`]) unless `fence` is the projector lease's
/// latest fence; keeps the lease row locked against acquisitions until `transaction`
/// ends.
pub(crate) async fn check_projector_fence(
    transaction: &Transaction<'_>,
    fence: u64,
) -> Result<(), StoreError> {
    let statement = transaction
        .prepare_cached(LOCK_PROJECTOR_FENCE)
        .await
        .map_err(store_error)?;
    let current = match transaction
        .query_opt(&statement, &[&hayabusa_store::PROJECTOR_LEASE])
        .await
        .map_err(store_error)?
    {
        Some(row) => Some(get_u64(&row, 0)?),
        None => None,
    };
    if current == Some(fence) {
        Ok(())
    } else {
        Err(hayabusa_store::lease::fenced(fence, current))
    }
}

#[async_trait]
impl Leases for PgReadStore {
    async fn acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<u64>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(ACQUIRE).await.map_err(store_error)?;
        let row = client
            .query_opt(&statement, &[&name, &holder, &ttl.as_secs_f64()])
            .await
            .map_err(store_error)?;
        row.map(|row| get_u64(&row, 0)).transpose()
    }

    async fn renew(
        &self,
        name: &str,
        holder: &str,
        fence: u64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(RENEW).await.map_err(store_error)?;
        let renewed = client
            .execute(
                &statement,
                &[&name, &holder, &sql_int(fence)?, &ttl.as_secs_f64()],
            )
            .await
            .map_err(store_error)?;
        Ok(renewed == 1)
    }

    async fn release(&self, name: &str, holder: &str, fence: u64) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(RELEASE).await.map_err(store_error)?;
        client
            .execute(&statement, &[&name, &holder, &sql_int(fence)?])
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

#[async_trait]
impl hayabusa_store::ConsumerCheckpoints for PgReadStore {
    async fn consumer_checkpoint(&self, consumer: &str) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT value FROM consumer_checkpoints WHERE consumer = $1")
            .await
            .map_err(store_error)?;
        let row = client
            .query_opt(&statement, &[&consumer])
            .await
            .map_err(store_error)?;
        row.map(|row| row.try_get(0).map_err(store_error))
            .transpose()
    }

    async fn save_consumer_checkpoint(
        &self,
        consumer: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO consumer_checkpoints (consumer, value) VALUES ($1, $2)
                 ON CONFLICT (consumer) DO UPDATE SET value = EXCLUDED.value",
            )
            .await
            .map_err(store_error)?;
        client
            .execute(&statement, &[&consumer, &value])
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
