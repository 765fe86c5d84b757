//! The PostgreSQL read store: the conformance suite, persistence across connections,
//! the id range, the stale-writer fence, the schema version and connection errors.

use crate::support::{TestDatabase, options};
use hayabusa_domain::{
    AccountId, FileId, MessageId, OrganizationId, RequestId, Role, RoomId, RoomType, TaskId,
};
use hayabusa_postgres::{PgOptions, PgReadStore};
use hayabusa_store::conformance::read_store as conformance;
use hayabusa_store::{
    AccountRow, Change, ContactRequestRow, FileRow, LinkRow, MessageRow, OpRecord,
    ReadModelQueries, ReadModelWriter, RoomRow, StoreError, TaskFilter, TaskRow,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[tokio::test]
async fn the_postgres_read_store_passes_the_conformance_suite() {
    let database = TestDatabase::create().await;
    let made = AtomicUsize::new(0);
    let url = database.url();
    conformance::run_all(|| {
        // A schema of its own per store: every check starts empty.
        let schema = format!("conformance_{}", made.fetch_add(1, Ordering::Relaxed));
        let url = url.clone();
        async move {
            PgReadStore::connect_to(&url, options(&schema))
                .await
                .unwrap_or_else(|error| panic!("connect to {url}: {error}"))
        }
    })
    .await;
    database.drop().await;
}

/// The op recorded by [`changes`].
fn message_op() -> OpRecord {
    OpRecord {
        position: 42,
        index: 0,
        room_id: Some(RoomId(100)),
        target: None,
        op_type: "message_created".to_owned(),
        payload: r#"{"body":"[To:1] hello"}"#.to_owned(),
    }
}

/// The task put by [`changes`].
fn task() -> TaskRow {
    TaskRow {
        task_id: TaskId(5),
        room_id: RoomId(100),
        account_id: AccountId(1),
        assigned_by: AccountId(2),
        message_id: MessageId(7),
        body: "review".to_owned(),
        limit_time: 1_700_086_400,
        limit_type: "date".to_owned(),
        status: "open".to_owned(),
    }
}

/// The link set by [`changes`].
fn link() -> LinkRow {
    LinkRow {
        room_id: RoomId(100),
        code: "join-me".to_owned(),
        need_acceptance: true,
        description: "Welcome".to_owned(),
    }
}

/// One of every kind of row, with the largest message id the domain makes.
fn changes() -> Vec<Change> {
    let alice = AccountId(1);
    let room = RoomId(100);
    vec![
        Change::PutAccount(AccountRow {
            account_id: alice,
            my_room_id: RoomId(50),
            organization_id: OrganizationId(7),
            organization_name: "Hayabusa".to_owned(),
            name: "Alice".to_owned(),
            mail: "alice@example.com".to_owned(),
            department: String::new(),
            title: String::new(),
            admin: true,
            token_hash: "ab".repeat(32),
            created_at: 1_700_000_000,
        }),
        Change::PutRoom(RoomRow {
            room_id: room,
            room_type: RoomType::Group,
            name: "Room".to_owned(),
            description: String::new(),
            icon_preset: "group".to_owned(),
            last_seq: 0,
            message_num: 0,
            last_update_time: 1_700_000_000,
        }),
        Change::PutMember {
            room_id: room,
            account_id: alice,
            role: Role::Admin,
        },
        Change::InsertMessage(MessageRow {
            room_id: room,
            message_id: MessageId(u64::MAX >> 1),
            seq: 1,
            account_id: AccountId(2),
            body: "[To:1] hello".to_owned(),
            send_time: 1_700_000_010,
            update_time: 0,
            mentions: vec![alice],
            to_all: false,
        }),
        Change::OpenMembership {
            room_id: room,
            account_id: alice,
            from: 1,
        },
        Change::RecordOps(vec![message_op()]),
        Change::PutTask(task()),
        Change::PutFile(FileRow {
            file_id: FileId(3),
            room_id: room,
            account_id: alice,
            message_id: MessageId(8),
            filename: "notes.txt".to_owned(),
            filesize: 12,
            upload_time: 1_700_000_020,
            blob_key: "blobs/3".to_owned(),
        }),
        Change::PutContact {
            account_id: alice,
            contact_id: alice,
            room_id: room,
        },
        Change::PutContactRequest(ContactRequestRow {
            request_id: RequestId(4),
            from: alice,
            to: AccountId(2),
            message: "hi".to_owned(),
            at: 1_700_000_030,
        }),
        Change::SetLink(link()),
        Change::PutJoinRequest {
            room_id: room,
            account_id: alice,
            at: 1_700_000_040,
        },
    ]
}

#[tokio::test]
async fn checkpoint_models_and_fetch_cursors_survive_a_new_connection() -> Result<(), StoreError> {
    let database = TestDatabase::create().await;
    let store = database.store("reads").await;
    store.apply(changes(), 42).await?;
    let taken = store
        .take_new_messages(AccountId(1), RoomId(100), 10)
        .await?;
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].message.mentions, vec![AccountId(1)]);
    let dump = store.dump().await?;
    drop(store);

    let reconnected = database.store("reads").await;
    assert_eq!(reconnected.checkpoint().await?, 42);
    assert_eq!(reconnected.dump().await?, dump, "the read models are kept");
    let room = reconnected
        .room_of(AccountId(1), RoomId(100))
        .await?
        .expect("Alice still sees the room");
    assert_eq!((room.unread_num, room.mention_num), (1, 1));
    assert_eq!((room.mytask_num, room.task_num, room.file_num), (1, 1, 1));
    assert_eq!(
        reconnected
            .tasks_of_account(AccountId(1), &TaskFilter::default(), 10)
            .await?
            .into_iter()
            .map(|view| view.task)
            .collect::<Vec<_>>(),
        vec![task()]
    );
    assert_eq!(reconnected.link_by_code("join-me").await?, Some(link()));
    assert_eq!(reconnected.contacts(AccountId(1)).await?.len(), 1);
    assert_eq!(reconnected.join_requests(RoomId(100)).await?.len(), 1);
    assert!(reconnected.contact_request(RequestId(4)).await?.is_some());
    assert_eq!(
        reconnected.ops_for(AccountId(1), 0, 42, 10).await?,
        vec![message_op()]
    );
    assert!(
        reconnected
            .take_new_messages(AccountId(1), RoomId(100), 10)
            .await?
            .is_empty(),
        "the fetch cursor is kept"
    );
    reconnected.apply(changes(), 42).await?;
    assert_eq!(
        reconnected.dump().await?,
        dump,
        "the stored checkpoint makes a replayed batch a no-op"
    );
    drop(reconnected);
    database.drop().await;
    Ok(())
}

#[tokio::test]
async fn ids_beyond_bigint_are_refused_without_a_partial_write() -> Result<(), StoreError> {
    let database = TestDatabase::create().await;
    let store = database.store("reads").await;
    let refusals: Vec<(Change, &str)> = vec![
        (
            Change::PutMember {
                room_id: RoomId(100),
                account_id: AccountId(u64::MAX),
                role: Role::Member,
            },
            "an account id above i64::MAX",
        ),
        (
            Change::RecordOps(vec![OpRecord {
                position: u64::MAX,
                ..message_op()
            }]),
            "an op position above i64::MAX",
        ),
        (
            Change::PutTask(TaskRow {
                task_id: TaskId(u64::MAX),
                ..task()
            }),
            "a task id above i64::MAX",
        ),
        (
            Change::InsertMessage(MessageRow {
                room_id: RoomId(100),
                message_id: MessageId(9),
                seq: 2,
                account_id: AccountId(1),
                body: "mentions an impossible id".to_owned(),
                send_time: 0,
                update_time: 0,
                mentions: vec![AccountId(u64::MAX)],
                to_all: false,
            }),
            "a mention above i64::MAX",
        ),
    ];
    for (change, what) in refusals {
        let mut batch = changes();
        batch.push(change);
        let refused = store.apply(batch, 1).await;
        assert!(
            matches!(refused, Err(StoreError::Corrupt(_))),
            "{what} is refused: {refused:?}"
        );
        assert_eq!(store.checkpoint().await?, 0, "nothing of the batch is kept");
        assert!(store.rooms_of(AccountId(1)).await?.is_empty());
        assert_eq!(store.link_by_code("join-me").await?, None);
    }
    assert!(
        store
            .ops_for(AccountId(1), 0, u64::MAX, usize::MAX)
            .await?
            .is_empty(),
        "bounds above i64::MAX are fine in queries"
    );
    assert!(
        store.accounts(&[AccountId(u64::MAX)]).await?.is_empty(),
        "an id that cannot be stored is unknown"
    );
    store.apply(changes(), 1).await?;
    assert_eq!(
        store.checkpoint().await?,
        1,
        "the store still takes batches"
    );
    drop(store);
    database.drop().await;
    Ok(())
}

#[tokio::test]
async fn a_stale_writers_batch_is_refused() -> Result<(), StoreError> {
    let database = TestDatabase::create().await;
    let stale = database.store("reads").await;
    let current = database.store("reads").await;
    assert_eq!(stale.checkpoint().await?, 0);
    current.apply(changes(), 5).await?;
    let dump = current.dump().await?;

    let refused = stale
        .apply(
            vec![Change::SetTokenHash {
                account_id: AccountId(1),
                token_hash: "stale".to_owned(),
            }],
            7,
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(StoreError::Conflict {
                ref expected,
                actual: 5,
                ..
            }) if expected == "0"
        ),
        "the writer that read checkpoint 0 cannot write on top of 5: {refused:?}"
    );
    assert_eq!(
        current.dump().await?,
        dump,
        "nothing of the refused batch is kept"
    );

    // A batch at or below the checkpoint is a no-op, as always; one ending exactly at
    // it is the same batch (its commit's answer may have been lost), so the writer
    // goes on from there.
    stale.apply(Vec::new(), 3).await?;
    assert!(stale.apply(Vec::new(), 8).await.is_err());
    stale.apply(Vec::new(), 5).await?;
    stale.apply(Vec::new(), 8).await?;
    assert_eq!(current.checkpoint().await?, 8);
    assert!(
        current.apply(Vec::new(), 9).await.is_err(),
        "now the other writer is the stale one"
    );
    drop((stale, current));
    database.drop().await;
    Ok(())
}

#[tokio::test]
async fn the_schema_is_migrated_once_and_a_newer_one_is_refused() -> Result<(), StoreError> {
    let database = TestDatabase::create().await;
    drop(database.store("reads").await);
    drop(database.store("reads").await);
    let url = database.url();
    let client = database.client().await;
    let versions: i64 = client
        .query_one("SELECT COUNT(*) FROM reads.schema_migrations", &[])
        .await
        .expect("count migrations")
        .get(0);
    // Two migrations so far (the read models; snapshots), each recorded once.
    assert_eq!(versions, 2, "each migration ran once");
    client
        .batch_execute(
            "INSERT INTO reads.schema_migrations (version, description) VALUES (99, 'future')",
        )
        .await
        .expect("record a future migration");
    let refused = PgReadStore::connect_to(&url, options("reads")).await;
    assert!(
        matches!(&refused, Err(StoreError::Corrupt(message)) if message.contains("99")),
        "{refused:?}"
    );
    drop(client);
    database.drop().await;
    Ok(())
}

#[tokio::test]
async fn without_a_server_connecting_fails_and_hides_the_password() {
    let refused = PgReadStore::connect(
        "postgres://hayabusa:topsecret@127.0.0.1:1/reads",
        PgOptions {
            connect_timeout: Duration::from_secs(2),
            ..PgOptions::default()
        },
    )
    .await;
    match refused {
        Err(StoreError::Unavailable(message)) => {
            assert!(!message.contains("topsecret"), "{message}");
            assert!(
                message.contains("postgres://hayabusa:***@127.0.0.1:1/reads"),
                "{message}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
