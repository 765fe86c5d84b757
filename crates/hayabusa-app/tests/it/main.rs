//! Application-layer tests on the in-memory ports, with paused tokio time where time
//! matters.

use hayabusa_app::sync::Revision;
use hayabusa_app::{
    App, AppParts, IdGenerator, InProcessHub, NewAccount, NewRoom, Projector, SystemClock,
    TokenSecret,
};
use hayabusa_domain::Role;
use hayabusa_store::{
    AccountRow, MemoryBlobStore, MemoryEventLog, MemoryReadStore, ReadModelQueries,
};
use std::sync::Arc;
use std::time::Duration;

/// The parts of a test app on `log` and `read` (system clock, in-memory blobs and hub).
fn parts(
    log: Arc<dyn hayabusa_store::EventLog>,
    read: Arc<dyn hayabusa_store::ReadStore>,
) -> AppParts {
    AppParts {
        log,
        read,
        clock: Arc::new(SystemClock),
        ids: Arc::new(IdGenerator::new(0).unwrap()),
        secret: TokenSecret::new(vec![7; 32]),
        hub: Arc::new(InProcessHub::new()),
        blobs: Arc::new(MemoryBlobStore::default()),
        page_cache_rooms: hayabusa_app::page_cache::DEFAULT_CAPACITY,
        max_read_wait: hayabusa_app::consistency::DEFAULT_MAX_READ_WAIT,
        projector_delay: Default::default(),
    }
}

async fn app() -> (Arc<App>, Projector, Arc<MemoryReadStore>) {
    let read = Arc::new(MemoryReadStore::new());
    let (app, projector) = App::build(parts(Arc::new(MemoryEventLog::new()), read.clone()))
        .await
        .unwrap();
    (Arc::new(app), projector, read)
}

async fn account(
    app: &App,
    projector: &Projector,
    read: &MemoryReadStore,
    name: &str,
) -> AccountRow {
    let created = app
        .commands
        .create_account(
            None,
            NewAccount {
                name: name.into(),
                admin: true,
                ..NewAccount::default()
            },
            None,
        )
        .await
        .unwrap();
    projector.catch_up().await.unwrap();
    read.accounts(&[created.value.account.account_id])
        .await
        .unwrap()
        .remove(0)
}

#[tokio::test(start_paused = true)]
async fn a_long_poll_with_nothing_new_returns_empty_after_its_timeout() {
    let (app, projector, read) = app().await;
    let alice = account(&app, &projector, &read, "Alice").await;
    let since = Revision::at(app.sync.current());
    let started = tokio::time::Instant::now();
    let batch = app
        .sync
        .long_poll(alice.account_id, since, Duration::from_secs(30), 100)
        .await
        .unwrap();
    assert!(batch.ops.is_empty());
    assert_eq!(batch.revision, since);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(30) && waited < Duration::from_secs(31),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiting_long_poll_wakes_up_for_a_post_in_its_room_but_not_for_others() {
    let (app, projector, read) = app().await;
    let alice = account(&app, &projector, &read, "Alice").await;
    let bob = account(&app, &projector, &read, "Bob").await;
    let room = app
        .commands
        .create_room(
            &alice,
            NewRoom {
                name: "r".into(),
                icon_preset: "group".into(),
                members: vec![(alice.account_id, Role::Admin)],
                ..NewRoom::default()
            },
            None,
        )
        .await
        .unwrap()
        .value;
    projector.catch_up().await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(projector.run(async move {
        let _ = stopped.await;
    }));
    let since = Revision::at(app.sync.current());
    let waiting_alice = {
        let app = app.clone();
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let batch = app
                .sync
                .long_poll(alice.account_id, since, Duration::from_secs(30), 100)
                .await
                .unwrap();
            (batch, started.elapsed())
        })
    };
    let waiting_bob = {
        let app = app.clone();
        tokio::spawn(async move {
            app.sync
                .long_poll(bob.account_id, since, Duration::from_secs(30), 100)
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    app.commands
        .post_message(alice.account_id, room, "hello".into(), false, None)
        .await
        .unwrap();
    let (batch, waited) = waiting_alice.await.unwrap();
    assert_eq!(batch.ops.len(), 1);
    assert_eq!(batch.ops[0].op_type, "message_created");
    assert!(
        waited < Duration::from_secs(6),
        "woken by the post, not the timeout: {waited:?}"
    );
    let bob_batch = waiting_bob.await.unwrap();
    assert!(bob_batch.ops.is_empty(), "Bob is not in the room");
    let _ = stop.send(());
    runner.await.unwrap();
}

/// An event log that counts the events `read_stream` hands out.
struct CountingLog {
    inner: Arc<MemoryEventLog>,
    read: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl hayabusa_store::EventAppender for CountingLog {
    async fn append(
        &self,
        request: hayabusa_store::AppendRequest,
    ) -> Result<hayabusa_store::Appended, hayabusa_store::StoreError> {
        self.inner.append(request).await
    }
}

#[async_trait::async_trait]
impl hayabusa_store::EventReader for CountingLog {
    async fn read_stream(
        &self,
        stream: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<hayabusa_store::RecordedEvent>, hayabusa_store::StoreError> {
        let events = self.inner.read_stream(stream, after_version, limit).await?;
        self.read
            .fetch_add(events.len(), std::sync::atomic::Ordering::SeqCst);
        Ok(events)
    }
    async fn read_all(
        &self,
        after: hayabusa_store::Position,
        limit: usize,
    ) -> Result<Vec<hayabusa_store::RecordedEvent>, hayabusa_store::StoreError> {
        self.inner.read_all(after, limit).await
    }
    fn head(&self) -> hayabusa_store::Position {
        self.inner.head()
    }
    fn subscribe(&self) -> tokio::sync::watch::Receiver<hayabusa_store::Position> {
        self.inner.subscribe()
    }
}

/// An app (with a cold room cache) on `log` and `read`, projected up to date.
async fn app_on(log: Arc<CountingLog>, read: Arc<MemoryReadStore>) -> (App, Projector) {
    let (app, projector) = App::build(parts(log, read)).await.unwrap();
    projector.catch_up().await.unwrap();
    (app, projector)
}

#[tokio::test]
async fn a_cold_load_of_a_long_room_replays_only_what_came_after_its_snapshot() {
    use hayabusa_app::commands::SNAPSHOT_AFTER_EVENTS;
    use hayabusa_domain::RoomCommand;
    use std::sync::atomic::Ordering;
    let log = Arc::new(CountingLog {
        inner: Arc::new(MemoryEventLog::new()),
        read: Default::default(),
    });
    let read = Arc::new(MemoryReadStore::new());

    // A room with more messages than a snapshot is saved after.
    let (first, projector) = app_on(log.clone(), read.clone()).await;
    let alice = account(&first, &projector, &read, "Alice").await;
    let room = first
        .commands
        .create_room(
            &alice,
            NewRoom {
                name: "Long".into(),
                icon_preset: "group".into(),
                ..NewRoom::default()
            },
            None,
        )
        .await
        .unwrap()
        .value;
    let mut messages = Vec::new();
    for i in 0..SNAPSHOT_AFTER_EVENTS + 200 {
        let posted = first
            .commands
            .post_message(alice.account_id, room, format!("message {i}"), false, None)
            .await
            .unwrap();
        messages.push(posted.value);
    }
    drop(first);

    // The first cold load replays everything (there is no snapshot yet) and saves one.
    let (second, _) = app_on(log.clone(), read.clone()).await;
    log.read.store(0, Ordering::SeqCst);
    second
        .commands
        .post_message(
            alice.account_id,
            room,
            "from the second".into(),
            false,
            None,
        )
        .await
        .unwrap();
    let replayed = log.read.load(Ordering::SeqCst);
    assert!(replayed > SNAPSHOT_AFTER_EVENTS, "{replayed}");
    drop(second);

    // The next cold load starts from the snapshot: one event after it.
    let (third, _) = app_on(log.clone(), read.clone()).await;
    log.read.store(0, Ordering::SeqCst);
    // The state came back whole: the very first message can still be edited, and
    // only by its author's rules.
    third
        .commands
        .execute(
            room,
            alice.account_id,
            RoomCommand::EditMessage {
                message_id: messages[0],
                body: "edited".into(),
            },
            None,
        )
        .await
        .unwrap();
    let replayed = log.read.load(Ordering::SeqCst);
    assert!(
        replayed <= 1,
        "replayed {replayed} events after the snapshot"
    );
}
