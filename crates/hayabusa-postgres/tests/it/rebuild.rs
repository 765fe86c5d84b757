//! `rebuild` on PostgreSQL gives the same canonical dump as the incremental
//! projection, and the same as the in-memory reference rebuilt from the same log.

use crate::support::TestDatabase;
use hayabusa_app::commands::{LinkSettings, NewFile, NewTasks};
use hayabusa_app::{
    App, AppParts, IdGenerator, InProcessHub, NewAccount, NewRoom, Projector, SystemClock,
    TokenSecret,
};
use hayabusa_domain::{AccountId, Role, RoomCommand};
use hayabusa_postgres::PgReadStore;
use hayabusa_store::{
    AccountRow, EventReader, MemoryBlobStore, MemoryEventLog, MemoryReadStore, ReadModelQueries,
    ReadModelWriter, ReadStore,
};
use std::sync::Arc;

/// The app on `log` and `read`, with its projector (not running: tests step it).
async fn app(log: Arc<MemoryEventLog>, read: Arc<dyn ReadStore>) -> (App, Projector) {
    App::build(AppParts {
        log,
        read,
        clock: Arc::new(SystemClock),
        ids: Arc::new(IdGenerator::new(0).expect("worker 0")),
        secret: TokenSecret::new(vec![7; 32]),
        hub: Arc::new(InProcessHub::new()),
        blobs: Arc::new(MemoryBlobStore::default()),
        page_cache_rooms: hayabusa_app::page_cache::DEFAULT_CAPACITY,
        max_read_wait: hayabusa_app::consistency::DEFAULT_MAX_READ_WAIT,
        projector_delay: Default::default(),
    })
    .await
    .expect("build the app")
}

/// Projects everything appended so far (one small batch per command, as when live).
async fn project(projector: &Projector) {
    projector.catch_up().await.expect("project");
}

async fn account_row(read: &PgReadStore, account: AccountId) -> AccountRow {
    read.accounts(&[account])
        .await
        .expect("accounts")
        .pop()
        .expect("the account is projected")
}

async fn create_account(
    app: &App,
    projector: &Projector,
    read: &PgReadStore,
    creator: Option<&AccountRow>,
    name: &str,
) -> AccountRow {
    let created = app
        .commands
        .create_account(
            creator,
            NewAccount {
                name: name.into(),
                admin: creator.is_none(),
                ..NewAccount::default()
            },
            None,
        )
        .await
        .expect("create an account");
    project(projector).await;
    account_row(read, created.value.account.account_id).await
}

#[tokio::test]
async fn rebuild_reproduces_the_incrementally_built_read_models_on_postgres() {
    let database = TestDatabase::create().await;
    let read = database.store("reads").await;
    let log = Arc::new(MemoryEventLog::new());
    let (app, projector) = app(log.clone(), Arc::new(read.clone())).await;
    let commands = &app.commands;

    let alice = create_account(&app, &projector, &read, None, "Alice").await;
    let bob = create_account(&app, &projector, &read, Some(&alice), "Bob").await;
    let carol = create_account(&app, &projector, &read, Some(&alice), "Carol").await;
    let olga = create_account(&app, &projector, &read, Some(&alice), "Olga").await;
    let (a, b) = (alice.account_id, bob.account_id);
    let room = commands
        .create_room(
            &alice,
            NewRoom {
                name: "Room".into(),
                icon_preset: "group".into(),
                members: vec![(b, Role::Member), (carol.account_id, Role::Readonly)],
                ..NewRoom::default()
            },
            None,
        )
        .await
        .expect("create a room")
        .value;
    project(&projector).await;
    let first = commands
        .post_message(a, room, format!("[To:{b}] hi"), false, None)
        .await
        .expect("post")
        .value;
    commands
        .post_message(b, room, "[toall] hello".into(), false, None)
        .await
        .expect("post");
    commands
        .post_message(a, room, "third".into(), false, None)
        .await
        .expect("post");
    project(&projector).await;
    commands
        .execute(
            room,
            a,
            RoomCommand::EditMessage {
                message_id: first,
                body: "edited".into(),
            },
            None,
        )
        .await
        .expect("edit");
    let doomed = commands
        .post_message(b, room, "to delete".into(), false, None)
        .await
        .expect("post")
        .value;
    project(&projector).await;
    commands
        .execute(
            room,
            b,
            RoomCommand::DeleteMessage { message_id: doomed },
            None,
        )
        .await
        .expect("delete");
    commands
        .execute(
            room,
            b,
            RoomCommand::MoveReadCursor {
                message_id: None,
                read: true,
            },
            None,
        )
        .await
        .expect("read");
    commands
        .execute(
            room,
            a,
            RoomCommand::Update {
                name: Some("Renamed".into()),
                description: None,
                icon_preset: Some("beer".into()),
            },
            None,
        )
        .await
        .expect("update the room");
    project(&projector).await;
    let tasks = commands
        .add_tasks(
            a,
            room,
            NewTasks {
                body: "do it".into(),
                to_ids: vec![b, a],
                limit_time: 0,
                limit_type: "none".into(),
            },
            None,
        )
        .await
        .expect("add tasks")
        .value;
    project(&projector).await;
    commands
        .set_task_status(b, room, tasks[0], true)
        .await
        .expect("finish a task");
    commands
        .upload_file(
            a,
            room,
            NewFile {
                filename: "notes.txt".into(),
                content: b"some notes".to_vec(),
                message: "the notes".into(),
            },
            None,
        )
        .await
        .expect("upload");
    project(&projector).await;
    commands
        .create_link(
            a,
            room,
            LinkSettings {
                code: Some("rebuild-me".into()),
                need_acceptance: Some(true),
                description: Some("come in".into()),
            },
        )
        .await
        .expect("create a link");
    project(&projector).await;
    commands
        .join_by_link(olga.account_id, "rebuild-me")
        .await
        .expect("ask to join");
    project(&projector).await;
    commands
        .resolve_join(a, room, olga.account_id, true)
        .await
        .expect("let Olga in");
    project(&projector).await;
    let request = commands
        .request_contact(&bob, carol.account_id, "hi".into())
        .await
        .expect("ask for a contact")
        .value;
    project(&projector).await;
    commands
        .approve_contact(carol.account_id, request)
        .await
        .expect("approve the contact");
    project(&projector).await;
    let gone = commands
        .create_room(
            &alice,
            NewRoom {
                name: "Gone".into(),
                icon_preset: "group".into(),
                members: vec![(b, Role::Member)],
                ..NewRoom::default()
            },
            None,
        )
        .await
        .expect("create a room")
        .value;
    project(&projector).await;
    commands
        .post_message(b, gone, "soon gone".into(), false, None)
        .await
        .expect("post");
    project(&projector).await;
    commands
        .execute(gone, a, RoomCommand::Delete, None)
        .await
        .expect("delete the room");
    project(&projector).await;

    let incremental = read.dump().await.expect("dump");
    for shown in [
        "Renamed",
        "edited",
        "notes.txt",
        "do it",
        "rebuild-me",
        "Olga",
        "contact ",
    ] {
        assert!(
            incremental.contains(shown),
            "the dump shows {shown}:\n{incremental}"
        );
    }
    assert!(
        !incremental
            .lines()
            .any(|line| line.starts_with("message ") && line.contains("soon gone")),
        "the deleted room's messages are gone (its sync ops stay)"
    );

    let head = log.head();
    let reader: Arc<dyn EventReader> = log.clone();
    let position = hayabusa_app::rebuild(reader.clone(), Arc::new(read.clone()))
        .await
        .expect("rebuild");
    assert_eq!(position, head);
    assert_eq!(read.dump().await.expect("dump"), incremental);

    let memory = Arc::new(MemoryReadStore::new());
    hayabusa_app::rebuild(reader, memory.clone())
        .await
        .expect("rebuild in memory");
    assert_eq!(memory.dump().await.expect("dump"), incremental);

    drop((app, projector, read));
    database.drop().await;
}
