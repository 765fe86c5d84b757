//! Durable positions of the log's consumers other than the projector — a webhook's
//! deliveries, a forwarder's — by name. A consumer saves what it has finished after
//! finishing it, so a crash repeats at most what was in flight (at-least-once) and
//! loses nothing. Every read store keeps them, and `reset` (a rebuild) keeps them too:
//! they are not read models, and rebuilding must not send everything again.

use crate::StoreError;
use async_trait::async_trait;

/// Consumer checkpoints by name.
#[async_trait]
pub trait ConsumerCheckpoints: Send + Sync {
    /// What `consumer` saved last, if anything.
    async fn consumer_checkpoint(&self, consumer: &str) -> Result<Option<String>, StoreError>;
    /// Saves `value` as `consumer`'s checkpoint (durably: it survives a crash once
    /// this returns).
    async fn save_consumer_checkpoint(&self, consumer: &str, value: &str)
    -> Result<(), StoreError>;
}
