//! Checks for read stores that keep their data (SQLite, PostgreSQL), beside the
//! behavioural suite of [`super::read_store`] that every store runs:
//!
//! - [`models_survive_reopening`]: the checkpoint, every kind of read model, sync ops,
//!   membership intervals and fetch cursors are there after the store is opened again,
//!   and the stored checkpoint still makes a replayed batch a no-op;
//! - [`ids_beyond_i64_are_refused_without_a_partial_write`]: stores with signed 64-bit
//!   columns refuse a batch holding an id they cannot store, and keep nothing of it.
//!
//! [`sample_changes`] is one row of every kind, for an adapter's own tests too.

use crate::error::StoreError;
use crate::read_model::{
    AccountRow, Change, ContactRequestRow, FileRow, LinkRow, MessageRow, OpRecord, ReadStore,
    RoomRow, TaskFilter, TaskRow,
};
use hayabusa_domain::{
    AccountId, FileId, MessageId, OrganizationId, RequestId, Role, RoomId, RoomType, TaskId,
};
use std::future::Future;

/// The checkpoint [`sample_changes`] are applied at in these checks.
const AT: u64 = 42;

/// The op recorded by [`sample_changes`].
pub fn sample_op() -> OpRecord {
    OpRecord {
        position: AT,
        index: 0,
        room_id: Some(RoomId(100)),
        target: None,
        op_type: "message_created".to_owned(),
        payload: r#"{"body":"[To:1] hello"}"#.to_owned(),
    }
}

/// The task put by [`sample_changes`].
pub fn sample_task() -> TaskRow {
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

/// The link set by [`sample_changes`].
pub fn sample_link() -> LinkRow {
    LinkRow {
        room_id: RoomId(100),
        code: "join-me".to_owned(),
        need_acceptance: true,
        description: "Welcome".to_owned(),
    }
}

/// One change of every kind (account 1 "Alice" in room 100, a message from account 2
/// that mentions her, with the largest message id the domain makes).
pub fn sample_changes() -> Vec<Change> {
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
        Change::RecordOps(vec![sample_op()]),
        Change::PutTask(sample_task()),
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
        Change::SetLink(sample_link()),
        Change::PutJoinRequest {
            room_id: room,
            account_id: alice,
            at: 1_700_000_040,
        },
    ]
}

/// Applies [`sample_changes`] through one store from `open`, takes Alice's new
/// messages (moving her fetch cursor), drops it, and checks everything through a
/// second store from `open` on the same storage.
pub async fn models_survive_reopening<S, F, Fut>(open: F) -> Result<(), StoreError>
where
    S: ReadStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let alice = AccountId(1);
    let room = RoomId(100);
    let store = open().await;
    store.apply(sample_changes(), AT).await?;
    let taken = store.take_new_messages(alice, room, 10).await?;
    assert_eq!(taken.len(), 1, "Alice's one new message");
    assert_eq!(taken[0].message.mentions, vec![alice], "with its mention");
    let dump = store.dump().await?;
    drop(store);

    let reopened = open().await;
    assert_eq!(reopened.checkpoint().await?, AT, "the checkpoint is kept");
    assert_eq!(reopened.dump().await?, dump, "the read models are kept");
    let view = reopened
        .room_of(alice, room)
        .await?
        .expect("Alice still sees the room");
    assert_eq!((view.unread_num, view.mention_num), (1, 1));
    assert_eq!(
        (view.mytask_num, view.task_num, view.file_num),
        (1, 1, 1),
        "tasks and files are kept"
    );
    assert_eq!(
        reopened
            .tasks_of_account(alice, &TaskFilter::default(), 10)
            .await?
            .into_iter()
            .map(|view| view.task)
            .collect::<Vec<_>>(),
        vec![sample_task()]
    );
    assert_eq!(reopened.link_by_code("join-me").await?, Some(sample_link()));
    assert_eq!(reopened.contacts(alice).await?.len(), 1);
    assert_eq!(reopened.join_requests(room).await?.len(), 1);
    assert!(reopened.contact_request(RequestId(4)).await?.is_some());
    assert_eq!(
        reopened.ops_for(alice, 0, AT, 10).await?,
        vec![sample_op()],
        "sync ops and membership intervals are kept"
    );
    assert!(
        reopened
            .take_new_messages(alice, room, 10)
            .await?
            .is_empty(),
        "the fetch cursor is kept"
    );
    reopened.apply(sample_changes(), AT).await?;
    assert_eq!(
        reopened.dump().await?,
        dump,
        "the stored checkpoint makes a replayed batch a no-op"
    );
    Ok(())
}

/// Each of an account id, an op position, a task id and a mention above `i64::MAX`
/// in a batch makes the store refuse the whole batch (`Corrupt`) and keep nothing of
/// it; queries with such bounds still work; the store then takes a good batch.
pub async fn ids_beyond_i64_are_refused_without_a_partial_write<S: ReadStore>(
    store: S,
) -> Result<(), StoreError> {
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
                ..sample_op()
            }]),
            "an op position above i64::MAX",
        ),
        (
            Change::PutTask(TaskRow {
                task_id: TaskId(u64::MAX),
                ..sample_task()
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
        let mut batch = sample_changes();
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
    store.apply(sample_changes(), 1).await?;
    assert_eq!(
        store.checkpoint().await?,
        1,
        "the store still takes batches"
    );
    Ok(())
}
