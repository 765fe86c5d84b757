//! The start-up sweep of the blob store: removes blobs that no `file_uploaded`
//! event refers to (an upload refused after its content was stored, or a crash
//! between storing the content and appending its events) and what interrupted writes
//! left behind.
//!
//! Only blobs stored before a cutoff are candidates (the caller passes "start of this
//! process minus a grace period"), so an upload in flight is never touched: its
//! content is stored moments before its events are appended.

use crate::error::AppError;
use crate::projector::decode;
use hayabusa_domain::Event;
use hayabusa_store::{BlobStore, EventReader};
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

/// How long a blob must have existed before the sweep may remove it.
pub const ORPHAN_BLOB_GRACE: Duration = Duration::from_secs(3600);

/// Events read per page while looking for references.
const PAGE: usize = 4096;

/// What a sweep removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Blobs no event refers to.
    pub orphans: Vec<String>,
    /// Leftovers of interrupted writes.
    pub leftovers: usize,
}

/// Removes leftovers and unreferenced blobs stored before `cutoff`. Reads the whole
/// log up to its current head once when there is a candidate (every blob older than
/// the cutoff is one).
pub async fn sweep_orphan_blobs(
    log: &dyn EventReader,
    blobs: &dyn BlobStore,
    cutoff: SystemTime,
) -> Result<SweepReport, AppError> {
    let leftovers = blobs.remove_leftovers(cutoff).await?;
    let mut candidates: BTreeSet<String> = blobs
        .keys_stored_before(cutoff)
        .await?
        .into_iter()
        .collect();
    if candidates.is_empty() {
        return Ok(SweepReport {
            orphans: Vec::new(),
            leftovers,
        });
    }
    // Every event that could refer to a candidate is at or below the head now: the
    // candidates were stored before the cutoff, and their events (if any) were
    // appended right after.
    let head = log.head();
    let mut after = 0;
    while after < head && !candidates.is_empty() {
        let page = log.read_all(after, PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.position;
        for recorded in &page {
            if recorded.event_type != "file_uploaded" {
                continue;
            }
            if let Event::FileUploaded { blob_key, .. } = decode(recorded)? {
                candidates.remove(&blob_key);
            }
        }
    }
    let mut orphans = Vec::new();
    for key in candidates {
        blobs.delete(&key).await?;
        orphans.push(key);
    }
    Ok(SweepReport { orphans, leftovers })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hayabusa_domain::{AccountId, FileId, MessageId, RoomId};
    use hayabusa_store::{
        AppendRequest, EventAppender, ExpectedVersion, MemoryBlobStore, MemoryEventLog, NewEvent,
    };

    fn uploaded(file: u64) -> NewEvent {
        let event = Event::FileUploaded {
            room_id: RoomId(1),
            file_id: FileId(file),
            message_id: MessageId(file),
            account_id: AccountId(1),
            filename: "a.txt".into(),
            filesize: 1,
            blob_key: format!("file-{file}"),
            at: 0,
        };
        NewEvent {
            event_type: event.event_type().to_string(),
            schema_version: hayabusa_domain::EVENT_SCHEMA_VERSION,
            data: event.encode(),
        }
    }

    #[tokio::test]
    async fn only_unreferenced_blobs_older_than_the_cutoff_are_removed() {
        let log = MemoryEventLog::default();
        let blobs = MemoryBlobStore::default();
        for key in ["file-1", "file-2", "file-3"] {
            blobs.put(key, b"x".to_vec()).await.unwrap();
        }
        log.append(AppendRequest {
            stream: "room-1".into(),
            expected: ExpectedVersion::Any,
            events: vec![uploaded(1), uploaded(3)],
            idempotency: None,
        })
        .await
        .unwrap();
        let before = SystemTime::now() - Duration::from_secs(60);
        let report = sweep_orphan_blobs(&log, &blobs, before).await.unwrap();
        assert!(report.orphans.is_empty(), "nothing is old enough yet");
        let later = SystemTime::now() + Duration::from_secs(60);
        let report = sweep_orphan_blobs(&log, &blobs, later).await.unwrap();
        assert_eq!(report.orphans, vec!["file-2".to_string()]);
        assert!(blobs.get("file-1").await.unwrap().is_some());
        assert!(blobs.get("file-2").await.unwrap().is_none());
        assert!(blobs.get("file-3").await.unwrap().is_some());
    }
}
