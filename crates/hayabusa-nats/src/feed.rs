//! [`NatsCommitFeed`]: the commit feed ([`hayabusa_store::CommitFeed`]) on a core
//! NATS subject. Core NATS delivers at most once, which is what the feed promises:
//! a follower that misses a notice sees the gap and starts over from the store.
//!
//! The event log's connection does not echo its own messages back (`no_echo`), so
//! notices published by this process reach this process's followers in-process,
//! with no round trip; other processes hear them on the subject.

use async_nats::Client;
use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use hayabusa_store::{CommitFeed, Committed, StoreError};

/// Notices larger than this are sent coarse ([`Committed::coarse`]): well below the
/// servers' default 1 MiB payload limit.
pub const MAX_NOTICE_BYTES: usize = 256 * 1024;

/// The commit feed on one core NATS subject.
#[derive(Clone, Debug)]
pub struct NatsCommitFeed {
    client: Client,
    subject: String,
    /// This process's own notices, for its own followers.
    local: hayabusa_store::MemoryCommitFeed,
}

impl NatsCommitFeed {
    /// The feed on `subject` over `client` (a connection that does not echo: one
    /// feed per process, shared by its projector and its followers).
    pub fn new(client: Client, subject: String) -> Self {
        NatsCommitFeed {
            client,
            subject,
            local: hayabusa_store::MemoryCommitFeed::new(),
        }
    }
}

/// A notice as sent: JSON, coarse if the full one is too large.
pub fn encode(notice: &Committed) -> Result<Vec<u8>, StoreError> {
    let encode = |notice: &Committed| {
        serde_json::to_vec(notice)
            .map_err(|error| StoreError::Unavailable(format!("encoding a commit notice: {error}")))
    };
    let full = encode(notice)?;
    if full.len() <= MAX_NOTICE_BYTES {
        return Ok(full);
    }
    encode(&notice.coarse())
}

#[async_trait]
impl CommitFeed for NatsCommitFeed {
    async fn publish(&self, notice: &Committed) -> Result<(), StoreError> {
        self.local.publish(notice).await?;
        let payload = encode(notice)?;
        self.client
            .publish(self.subject.clone(), payload.into())
            .await
            .map_err(|error| {
                StoreError::Unavailable(format!("publishing a commit notice: {error}"))
            })
    }

    async fn subscribe(&self) -> Result<BoxStream<'static, Committed>, StoreError> {
        let subscriber = self
            .client
            .subscribe(self.subject.clone())
            .await
            .map_err(|error| {
                StoreError::Unavailable(format!("following commit notices: {error}"))
            })?;
        let local = self.local.subscribe().await?;
        let remote = subscriber.filter_map(|message| async move {
            match serde_json::from_slice::<Committed>(&message.payload) {
                Ok(notice) => Some(notice),
                Err(error) => {
                    // A follower that skips one sees the gap at the next.
                    tracing::warn!(%error, "ignoring an undecodable commit notice");
                    None
                }
            }
        });
        Ok(Box::pin(futures::stream::select(local, remote)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hayabusa_domain::RoomId;

    #[test]
    fn a_notice_too_large_to_send_goes_coarse() {
        let small = Committed {
            from: 1,
            to: 2,
            rooms: vec![RoomId(5)],
            ..Committed::default()
        };
        assert_eq!(
            serde_json::from_slice::<Committed>(&encode(&small).unwrap()).unwrap(),
            small
        );
        let large = Committed {
            from: 1,
            to: 2,
            rooms: (0..100_000).map(RoomId).collect(),
            ..Committed::default()
        };
        let sent: Committed = serde_json::from_slice(&encode(&large).unwrap()).unwrap();
        assert_eq!(sent, large.coarse());
        assert!(sent.wake_all && sent.everything && sent.rooms.is_empty());
    }
}
