//! Leases: a named right that one holder has at a time, until it expires unless
//! renewed. Hayabusa's processes use them for what must never run twice at once
//! across a cluster: the active projector ([`PROJECTOR_LEASE`]) and each snowflake
//! worker id ([`worker_lease`]).
//!
//! Every acquisition hands out a higher **fence**. The read store checks the
//! projector lease's fence in the same transaction as a batch
//! ([`ReadModelWriter::apply_fenced`](crate::ReadModelWriter::apply_fenced)), so a
//! projector that lost its lease without noticing (paused, partitioned) has its next
//! commit refused rather than merely being unlikely to commit.
//!
//! Expiry is judged by one clock, the store's (PostgreSQL's `clock_timestamp()`, the
//! machine's for the embedded stores), never by the holders' clocks.

use crate::StoreError;
use async_trait::async_trait;
use std::time::Duration;

/// The lease of the active projector.
pub const PROJECTOR_LEASE: &str = "projector";

/// The lease of snowflake worker id `worker`.
pub fn worker_lease(worker: u64) -> String {
    format!("worker-{worker}")
}

/// Named leases with fences.
#[async_trait]
pub trait Leases: Send + Sync {
    /// Takes `name` for `holder` for `ttl` if it is free (never held, released or
    /// expired). Returns the new fence, higher than every earlier one of `name`, or
    /// None if someone holds it. A holder that acquires a lease it still holds gets
    /// a new fence too (its old one is fenced off).
    async fn acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<u64>, StoreError>;

    /// Extends the lease to `ttl` from now if `fence` is still its latest fence (held
    /// by `holder`, not acquired since). Returns whether it did; false means the lease
    /// is lost and its holder must stop.
    async fn renew(
        &self,
        name: &str,
        holder: &str,
        fence: u64,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Gives the lease up at once (if `fence` still holds it), so that a standby need
    /// not wait for it to expire.
    async fn release(&self, name: &str, holder: &str, fence: u64) -> Result<(), StoreError>;
}

/// A lease as an embedded store keeps it (times in milliseconds since the epoch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRow {
    /// Who holds (or last held) it.
    pub holder: String,
    /// Its latest fence.
    pub fence: u64,
    /// When it expires.
    pub expires_at_ms: i64,
}

/// Now, in milliseconds since the epoch (the embedded stores' lease clock).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `ttl` in milliseconds, at least 1.
pub fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// The acquisition rule of the embedded stores, on the row of `name` (None: never
/// held): the new row, or None if the lease is taken.
pub fn acquired(
    row: Option<&LeaseRow>,
    holder: &str,
    ttl: Duration,
    now_ms: i64,
) -> Option<LeaseRow> {
    let fence = match row {
        Some(row) if row.expires_at_ms > now_ms && row.holder != holder => return None,
        Some(row) => row.fence + 1,
        None => 1,
    };
    Some(LeaseRow {
        holder: holder.to_owned(),
        fence,
        expires_at_ms: now_ms.saturating_add(ttl_ms(ttl)),
    })
}

/// The error for a batch whose projector lease was acquired again since `fence`.
pub fn fenced(fence: u64, current: Option<u64>) -> StoreError {
    StoreError::Fenced(match current {
        Some(current) => format!(
            "the projector lease's fence is {current}, this projector holds {fence}: \
             another projector took over"
        ),
        None => format!("no projector lease is held (this projector holds fence {fence})"),
    })
}
