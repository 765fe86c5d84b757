//! The SQLite read store: the conformance suite and persistence across reopening.

use hayabusa_domain::{
    AccountId, FileId, MessageId, OrganizationId, RequestId, Role, RoomId, RoomType, TaskId,
};
use hayabusa_sqlite::SqliteReadStore;
use hayabusa_store::conformance::read_store as conformance;
use hayabusa_store::{
    AccountRow, Change, ContactRequestRow, FileRow, LinkRow, MessageRow, OpRecord,
    ReadModelQueries, ReadModelWriter, RoomRow, StoreError, TaskFilter, TaskRow,
};
use std::sync::atomic::{AtomicUsize, Ordering};

#[tokio::test]
async fn the_sqlite_read_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let opened = AtomicUsize::new(0);
    conformance::run_all(|| {
        let path = dir.path().join(format!(
            "read-{}.db",
            opened.fetch_add(1, Ordering::Relaxed)
        ));
        async move { SqliteReadStore::open(&path).expect("open the read store") }
    })
    .await;
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

#[tokio::test]
async fn checkpoint_models_and_fetch_cursors_survive_a_reopen() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("read.db");

    let store = SqliteReadStore::open(&path)?;
    store.apply(changes(), 42).await?;
    let taken = store
        .take_new_messages(AccountId(1), RoomId(100), 10)
        .await?;
    assert_eq!(taken.len(), 1);
    let dump = store.dump().await?;
    drop(store);

    let reopened = SqliteReadStore::open(&path)?;
    assert_eq!(reopened.checkpoint().await?, 42);
    assert_eq!(
        reopened.dump().await?,
        dump,
        "the read models survive a reopen"
    );
    let room = reopened
        .room_of(AccountId(1), RoomId(100))
        .await?
        .expect("Alice still sees the room");
    assert_eq!((room.unread_num, room.mention_num), (1, 1));
    assert_eq!(
        (room.mytask_num, room.task_num, room.file_num),
        (1, 1, 1),
        "tasks and files survive a reopen"
    );
    assert_eq!(
        reopened
            .tasks_of_account(AccountId(1), &TaskFilter::default(), 10)
            .await?
            .into_iter()
            .map(|view| view.task)
            .collect::<Vec<_>>(),
        vec![task()]
    );
    assert_eq!(reopened.link_by_code("join-me").await?, Some(link()));
    assert_eq!(reopened.contacts(AccountId(1)).await?.len(), 1);
    assert_eq!(reopened.join_requests(RoomId(100)).await?.len(), 1);
    assert!(reopened.contact_request(RequestId(4)).await?.is_some());
    assert_eq!(
        reopened.ops_for(AccountId(1), 0, 42, 10).await?,
        vec![message_op()],
        "sync ops and membership intervals survive a reopen"
    );
    assert!(
        reopened
            .take_new_messages(AccountId(1), RoomId(100), 10)
            .await?
            .is_empty(),
        "the fetch cursor survives a reopen"
    );

    reopened.apply(changes(), 42).await?;
    assert_eq!(
        reopened.dump().await?,
        dump,
        "the stored checkpoint still makes a replayed batch a no-op"
    );
    Ok(())
}

#[tokio::test]
async fn ids_beyond_sqlite_integers_are_refused_without_a_partial_write() -> Result<(), StoreError>
{
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteReadStore::open(&dir.path().join("read.db"))?;
    let mut batch = changes();
    batch.push(Change::PutMember {
        room_id: RoomId(100),
        account_id: AccountId(u64::MAX),
        role: Role::Member,
    });
    let refused = store.apply(batch, 1).await;
    assert!(
        matches!(refused, Err(StoreError::Corrupt(_))),
        "an id above i64::MAX is refused: {refused:?}"
    );
    assert_eq!(store.checkpoint().await?, 0, "nothing of the batch is kept");
    assert!(store.rooms_of(AccountId(1)).await?.is_empty());

    let mut batch = changes();
    batch.push(Change::RecordOps(vec![OpRecord {
        position: u64::MAX,
        ..message_op()
    }]));
    let refused = store.apply(batch, 1).await;
    assert!(
        matches!(refused, Err(StoreError::Corrupt(_))),
        "an op position above i64::MAX is refused: {refused:?}"
    );
    assert!(
        store
            .ops_for(AccountId(1), 0, u64::MAX, usize::MAX)
            .await?
            .is_empty(),
        "nothing of the batch is kept, and bounds above i64::MAX are fine in queries"
    );

    let mut batch = changes();
    batch.push(Change::PutTask(TaskRow {
        task_id: TaskId(u64::MAX),
        ..task()
    }));
    let refused = store.apply(batch, 1).await;
    assert!(
        matches!(refused, Err(StoreError::Corrupt(_))),
        "a task id above i64::MAX is refused: {refused:?}"
    );
    assert_eq!(store.link_by_code("join-me").await?, None);
    assert_eq!(store.checkpoint().await?, 0, "nothing of the batch is kept");
    Ok(())
}
