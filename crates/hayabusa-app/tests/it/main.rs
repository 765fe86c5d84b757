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

async fn app() -> (Arc<App>, Projector, Arc<MemoryReadStore>) {
    let read = Arc::new(MemoryReadStore::new());
    let (app, projector) = App::build(AppParts {
        log: Arc::new(MemoryEventLog::new()),
        read: read.clone(),
        clock: Arc::new(SystemClock),
        ids: Arc::new(IdGenerator::new(0).unwrap()),
        secret: TokenSecret::new(vec![7; 32]),
        hub: Arc::new(InProcessHub::new()),
        blobs: Arc::new(MemoryBlobStore::default()),
        page_cache_rooms: hayabusa_app::page_cache::DEFAULT_CAPACITY,
        max_read_wait: hayabusa_app::consistency::DEFAULT_MAX_READ_WAIT,
        projector_delay: Default::default(),
    })
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
