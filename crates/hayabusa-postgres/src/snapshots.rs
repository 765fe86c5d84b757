//! Aggregate snapshots in the `snapshots` table (one row per stream).

use crate::store::PgReadStore;
use crate::values::{get_u64, sql_int, store_error};
use async_trait::async_trait;
use hayabusa_store::{Snapshot, SnapshotStore, StoreError};

#[async_trait]
impl SnapshotStore for PgReadStore {
    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT revision, format, data FROM snapshots WHERE stream = $1")
            .await
            .map_err(store_error)?;
        let Some(row) = client
            .query_opt(&statement, &[&stream])
            .await
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        let format = get_u64(&row, 1)?;
        Ok(Some(Snapshot {
            stream: stream.to_owned(),
            revision: get_u64(&row, 0)?,
            format: u32::try_from(format).map_err(|_| {
                StoreError::Corrupt(format!("read store: snapshot format {format} out of range"))
            })?,
            data: row.try_get(2).map_err(store_error)?,
        }))
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO snapshots (stream, revision, format, data) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (stream) DO UPDATE
                 SET revision = EXCLUDED.revision, format = EXCLUDED.format, data = EXCLUDED.data
                 WHERE snapshots.format <> EXCLUDED.format
                    OR snapshots.revision < EXCLUDED.revision",
            )
            .await
            .map_err(store_error)?;
        client
            .execute(
                &statement,
                &[
                    &snapshot.stream,
                    &sql_int(snapshot.revision)?,
                    &i64::from(snapshot.format),
                    &snapshot.data,
                ],
            )
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
