//! Snapshots of a live event log: a consistent prefix taken while appends go on, one
//! self-contained private file that opens as a log again.

use hayabusa_sqlite::{
    SqliteEventLog, inspect_event_log, snapshot_event_log, visit_events_of_type,
};
use hayabusa_store::{AppendRequest, EventAppender, EventReader, ExpectedVersion, NewEvent};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn append(stream: &str, event_type: &str, label: &str) -> AppendRequest {
    AppendRequest {
        stream: stream.to_owned(),
        expected: ExpectedVersion::Any,
        events: vec![NewEvent {
            event_type: event_type.to_owned(),
            schema_version: 2,
            data: format!("{{\"label\":\"{label}\"}}").into_bytes(),
        }],
        idempotency: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_taken_during_appends_is_a_consistent_prefix_of_the_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.sqlite");
    let log = Arc::new(SqliteEventLog::open(&path).expect("open"));
    for i in 0..50 {
        log.append(append("room-1", "before", &i.to_string()))
            .await
            .expect("append");
    }
    let acknowledged = log.head();

    // Writers keep appending while the snapshot is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|writer| {
            let log = Arc::clone(&log);
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    log.append(append(&format!("room-w{writer}"), "during", &i.to_string()))
                        .await
                        .expect("append during the snapshot");
                    i += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let target = dir.path().join("copy.sqlite");
    let snapshot = {
        let (path, target) = (path.clone(), target.clone());
        tokio::task::spawn_blocking(move || snapshot_event_log(&path, &target))
            .await
            .expect("snapshot task")
            .expect("snapshot")
    };
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer");
    }

    assert!(
        snapshot.head >= acknowledged,
        "every acknowledged event is in it"
    );
    assert_eq!(snapshot.events, snapshot.head);
    assert!(
        log.head() > snapshot.head,
        "appends went on after the snapshot ({} vs {})",
        log.head(),
        snapshot.head
    );
    assert_eq!(inspect_event_log(&target).expect("inspect"), snapshot);
    let mut before = 0;
    visit_events_of_type(&target, "before", |event| {
        assert_eq!(event.event_type, "before");
        before += 1;
        Ok(())
    })
    .expect("visit");
    assert_eq!(before, 50);

    // One private file: no WAL beside it.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("copy"))
        .collect();
    assert_eq!(names, vec!["copy.sqlite".to_owned()]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The copy opens as a log holding exactly the original's first events.
    let original = log
        .read_all(0, snapshot.head as usize)
        .await
        .expect("read original");
    let copy = SqliteEventLog::open(&target).expect("open the copy");
    assert_eq!(copy.head(), snapshot.head);
    assert_eq!(
        copy.read_all(0, 1_000_000).await.expect("read copy"),
        original
    );
    let stream = copy.read_stream("room-1", 0, 1_000).await.expect("stream");
    assert_eq!(stream.len(), 50, "the copy's stream index is rebuilt");
}

#[tokio::test]
async fn a_closed_log_can_be_snapshotted_and_a_target_is_never_overwritten() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.sqlite");
    {
        let log = SqliteEventLog::open(&path).expect("open");
        log.append(append("room-1", "x", "1"))
            .await
            .expect("append");
    }
    let target = dir.path().join("copy.sqlite");
    let snapshot = snapshot_event_log(&path, &target).expect("snapshot of a closed log");
    assert_eq!((snapshot.head, snapshot.events), (1, 1));
    assert!(
        snapshot_event_log(&path, &target).is_err(),
        "an existing target is refused"
    );
    assert_eq!(inspect_event_log(&target).expect("inspect").head, 1);
    assert!(
        snapshot_event_log(&dir.path().join("missing.sqlite"), &dir.path().join("c2")).is_err()
    );
}
