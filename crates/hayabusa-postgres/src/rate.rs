//! Rate windows in the `rate_windows` table ([`hayabusa_store::RateWindows`]), so
//! that the API's rate limits hold across every API node of a cluster.
//!
//! A hit is one upsert: it opens the key's window if there is none or it has ended,
//! otherwise counts one more (capped at the limit plus one, so the row says
//! "refused" without growing), and returns the count and the window's end. The row
//! lock serialises concurrent hits of a key, so exactly `limit` are allowed whatever
//! the number of nodes. Time is the database's (`statement_timestamp()`, one instant
//! per statement), never a node's. Ended windows are deleted in the background, at
//! most once per [`SWEEP_EVERY`] per store.

use crate::store::PgReadStore;
use crate::values::store_error;
use async_trait::async_trait;
use hayabusa_store::rate::ceil_seconds;
use hayabusa_store::{RateHit, RateLimit, RateOutcome, RateScope, RateWindows, StoreError};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How often a store deletes ended windows.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// The database's clock in microseconds since the epoch, one value per statement.
macro_rules! now_us {
    () => {
        "(EXTRACT(EPOCH FROM statement_timestamp()) * 1000000)::BIGINT"
    };
}

const HIT: &str = concat!(
    "INSERT INTO rate_windows AS w (scope, key_high, key_low, ends_us, used)
VALUES ($1, $2, $3, ",
    now_us!(),
    " + $4, 1)
ON CONFLICT (scope, key_high, key_low) DO UPDATE
SET ends_us = CASE WHEN w.ends_us <= ",
    now_us!(),
    " THEN EXCLUDED.ends_us ELSE w.ends_us END,
    used = CASE WHEN w.ends_us <= ",
    now_us!(),
    " THEN 1 ELSE LEAST(w.used + 1, $5::BIGINT + 1) END
RETURNING used, ends_us, ",
    now_us!()
);

const GIVE_BACK: &str = "
UPDATE rate_windows SET used = LEAST(used, $5::BIGINT) - 1
WHERE scope = $1 AND key_high = $2 AND key_low = $3 AND ends_us = $4 AND used > 0";

const SWEEP: &str = concat!("DELETE FROM rate_windows WHERE ends_us <= ", now_us!());

/// A key's two halves as the table keeps them.
fn halves(key: u128) -> (i64, i64) {
    // Bit-for-bit: both halves as signed columns.
    ((key >> 64) as u64 as i64, key as u64 as i64)
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros())
        .unwrap_or(i64::MAX / 4)
        .max(1)
}

impl PgReadStore {
    /// Deletes ended windows, unless this store did so less than [`SWEEP_EVERY`] ago
    /// (in the background: the request that triggers it does not wait).
    fn sweep_now_and_then(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let last = &self.inner.last_rate_sweep;
        let previous = last.load(Ordering::Relaxed);
        if now < previous + SWEEP_EVERY.as_secs()
            || last
                .compare_exchange(previous, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            let swept = async {
                let client = store.client().await?;
                client.execute(SWEEP, &[]).await.map_err(store_error)
            };
            match swept.await {
                Ok(deleted) => tracing::debug!(deleted, "swept ended rate windows"),
                Err(error) => tracing::warn!(%error, "sweeping ended rate windows"),
            }
        });
    }
}

#[async_trait]
impl RateWindows for PgReadStore {
    async fn hit(
        &self,
        scope: RateScope,
        key: u128,
        limit: RateLimit,
    ) -> Result<RateOutcome, StoreError> {
        let RateLimit { requests, window } = limit.normalized();
        let (high, low) = halves(key);
        let requests_sql = i64::from(requests);
        let client = self.client().await?;
        let statement = client.prepare_cached(HIT).await.map_err(store_error)?;
        let row = client
            .query_one(
                &statement,
                &[&scope.code(), &high, &low, &micros(window), &requests_sql],
            )
            .await
            .map_err(store_error)?;
        drop(client);
        self.sweep_now_and_then();
        let used: i64 = row.try_get(0).map_err(store_error)?;
        let ends_us: i64 = row.try_get(1).map_err(store_error)?;
        let now_us: i64 = row.try_get(2).map_err(store_error)?;
        let used = u32::try_from(used).unwrap_or(0);
        let ends = Duration::from_micros(u64::try_from(ends_us).unwrap_or(0));
        Ok(RateOutcome::Counted(RateHit {
            allowed: used <= requests,
            limit: requests,
            remaining: requests.saturating_sub(used),
            reset_at: ceil_seconds(ends),
            retry_after: Duration::from_micros(u64::try_from(ends_us - now_us).unwrap_or(0)),
            window: ends_us,
        }))
    }

    async fn give_back(
        &self,
        scope: RateScope,
        key: u128,
        hit: &RateHit,
    ) -> Result<(), StoreError> {
        if !hit.allowed {
            return Ok(());
        }
        let (high, low) = halves(key);
        let limit = i64::from(hit.limit);
        let client = self.client().await?;
        let statement = client
            .prepare_cached(GIVE_BACK)
            .await
            .map_err(store_error)?;
        client
            .execute(
                &statement,
                &[&scope.code(), &high, &low, &hit.window, &limit],
            )
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
