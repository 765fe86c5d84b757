//! Conformance suite of the read store port.
//!
//! Every adapter runs [`run_all`] with a factory of fresh, empty stores:
//!
//! ```ignore
//! hayabusa_store::conformance::read_store::run_all(|| async { MemoryReadStore::new() }).await;
//! ```
//!
//! Each check is also a public function, so an adapter can run one alone while
//! debugging. Checks panic with a message naming what went wrong. Besides the
//! behaviour of every [`Change`] and every query, the suite feeds the same changes to
//! the adapter and to [`MemoryReadStore`] and requires identical dumps and query
//! results: the in-memory store is the reference behaviour, and [`CanonicalDump`] is
//! the shared text format.
//!
//! Most sync checks apply each batch at the log position its ops carry, as the
//! projector does.
//!
//! [`CanonicalDump`]: crate::canonical::CanonicalDump

use crate::error::StoreError;
use crate::event_log::Position;
use crate::memory_read_store::MemoryReadStore;
use crate::read_model::{
    AccountRow, Change, ContactRequestRow, ContactView, FileRow, LinkRow, MessageRow, MessageView,
    OpRecord, ReadModelQueries, ReadStore, RoomRow, RoomView, StatusCounts, TaskFilter, TaskRow,
};
use hayabusa_domain::{
    AccountId, FileId, MessageId, OrganizationId, RequestId, Role, RoomId, RoomType, TaskId,
};
use std::collections::BTreeSet;
use std::future::Future;

/// Runs every check, each on a fresh store from `make`.
pub async fn run_all<S, F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: ReadStore + 'static,
{
    a_new_store_is_empty(&make().await).await;
    accounts_are_found_by_token_hash_and_by_id(&make().await).await;
    a_new_token_hash_replaces_the_old_one(&make().await).await;
    rooms_are_listed_by_room_id_with_the_viewers_role(&make().await).await;
    members_are_listed_by_account_id_and_roles_change_in_place(&make().await).await;
    room_updates_keep_the_fields_that_are_not_given(&make().await).await;
    messages_update_their_room_and_are_listed_oldest_first(&make().await).await;
    edits_replace_body_and_addressing(&make().await).await;
    deleted_messages_disappear_and_stop_counting(&make().await).await;
    unread_and_mentions_are_derived_from_the_read_cursor(&make().await).await;
    a_new_member_starts_with_nothing_unread(&make().await).await;
    read_cursors_of_non_members_are_ignored(&make().await).await;
    status_totals_span_all_rooms(&make().await).await;
    deleting_a_room_removes_everything_in_it(&make().await, &make().await).await;
    fetch_cursors_return_only_new_messages(&make().await).await;
    a_forced_fetch_moves_the_fetch_cursor_to_the_latest_message(&make().await).await;
    concurrent_fetches_never_return_a_message_twice(&make().await).await;
    applying_an_old_checkpoint_changes_nothing(&make().await).await;
    reset_clears_the_read_models_but_keeps_fetch_cursors(&make().await, &make().await).await;
    dumps_are_equal_for_the_same_changes_however_they_are_batched(&make().await, &make().await)
        .await;
    dump_matches_the_in_memory_reference(&make().await).await;
    ops_are_visible_during_membership_intervals(&make().await).await;
    overlapping_membership_intervals_show_an_op_once(&make().await).await;
    targeted_and_account_level_ops_are_seen_only_by_their_target(&make().await).await;
    ops_come_by_position_and_index_within_the_bounds(&make().await).await;
    a_limit_never_splits_the_ops_of_one_position(&make().await).await;
    deleting_a_room_keeps_its_ops_and_membership_intervals(&make().await).await;
    dumps_include_ops_and_membership_intervals(&make().await, &make().await).await;
    tasks_of_a_room_are_filtered_and_listed_by_task_id(&make().await).await;
    task_status_changes_and_replacements_apply_in_place(&make().await).await;
    rooms_derive_task_and_file_counts_per_viewer(&make().await).await;
    status_totals_count_open_tasks_in_the_accounts_rooms(&make().await).await;
    tasks_of_an_account_come_from_the_rooms_it_is_a_member_of(&make().await).await;
    files_are_listed_by_file_id_and_found_only_in_their_room(&make().await).await;
    contacts_are_one_directional_and_listed_by_contact_id(&make().await).await;
    contact_requests_are_pending_until_removed(&make().await).await;
    a_room_has_one_link_and_a_code_names_one_link(&make().await).await;
    join_requests_are_listed_by_account_id(&make().await).await;
    deleting_a_room_removes_its_tasks_files_link_and_join_requests(&make().await, &make().await)
        .await;
    reset_clears_tasks_files_contacts_links_and_requests(&make().await, &make().await).await;
    dumps_include_tasks_files_contacts_links_and_requests(&make().await, &make().await).await;
    snapshots_are_kept_per_stream_never_move_back_and_go_with_a_reset(&make().await).await;
    a_lease_has_one_holder_until_it_expires_or_is_released(&make().await).await;
    a_fenced_batch_applies_only_with_the_projector_leases_latest_fence(&make().await).await;
    consumer_checkpoints_are_kept_by_name_and_survive_a_reset(&make().await).await;
}

/// Consumer checkpoints: none at first, the last saved value per name, and a reset of
/// the read models keeps them.
pub async fn consumer_checkpoints_are_kept_by_name_and_survive_a_reset<S: ReadStore>(store: &S) {
    assert_eq!(store.consumer_checkpoint("webhook-1").await.unwrap(), None);
    store
        .save_consumer_checkpoint("webhook-1", "12:3")
        .await
        .unwrap();
    store
        .save_consumer_checkpoint("webhook-2", "7")
        .await
        .unwrap();
    store
        .save_consumer_checkpoint("webhook-1", "15")
        .await
        .unwrap();
    assert_eq!(
        store
            .consumer_checkpoint("webhook-1")
            .await
            .unwrap()
            .as_deref(),
        Some("15")
    );
    store.reset().await.unwrap();
    assert_eq!(
        store
            .consumer_checkpoint("webhook-2")
            .await
            .unwrap()
            .as_deref(),
        Some("7"),
        "a reset keeps consumer checkpoints"
    );
}

/// How long the lease checks' leases last.
const LEASE_TTL: std::time::Duration = std::time::Duration::from_millis(400);

/// Leases: one holder at a time; a renewal needs the latest fence; expiry and release
/// free the lease, and every acquisition has a higher fence; names are independent
/// and a reset keeps them.
pub async fn a_lease_has_one_holder_until_it_expires_or_is_released<S: ReadStore>(store: &S) {
    let long = std::time::Duration::from_secs(60);
    let first = store
        .acquire("worker-1", "a", long)
        .await
        .unwrap()
        .expect("a free lease is acquired");
    assert_eq!(
        store.acquire("worker-1", "b", long).await.unwrap(),
        None,
        "a held lease is not acquired by another holder"
    );
    let other_name = store.acquire("worker-2", "b", long).await.unwrap();
    assert!(other_name.is_some(), "names are independent");
    assert!(store.renew("worker-1", "a", first, long).await.unwrap());
    assert!(!store.renew("worker-1", "b", first, long).await.unwrap());
    assert!(!store.renew("worker-1", "a", first + 1, long).await.unwrap());

    // The holder acquiring again fences off its older fence.
    let again = store
        .acquire("worker-1", "a", long)
        .await
        .unwrap()
        .expect("its holder acquires a lease again");
    assert!(again > first, "fence {again} after {first}");
    assert!(!store.renew("worker-1", "a", first, long).await.unwrap());

    // A release frees it at once.
    store.release("worker-1", "a", first).await.unwrap();
    assert_eq!(
        store.acquire("worker-1", "b", long).await.unwrap(),
        None,
        "a release with an old fence changes nothing"
    );
    store.release("worker-1", "a", again).await.unwrap();
    let taken = store
        .acquire("worker-1", "b", LEASE_TTL)
        .await
        .unwrap()
        .expect("a released lease is acquired");
    assert!(taken > again);
    assert!(!store.renew("worker-1", "a", again, long).await.unwrap());

    // Expiry frees it; a reset keeps leases.
    store.reset().await.unwrap();
    assert_eq!(store.acquire("worker-1", "c", long).await.unwrap(), None);
    tokio::time::sleep(LEASE_TTL * 2).await;
    let after_expiry = store
        .acquire("worker-1", "c", long)
        .await
        .unwrap()
        .expect("an expired lease is acquired");
    assert!(after_expiry > taken);
    assert!(!store.renew("worker-1", "b", taken, long).await.unwrap());
}

/// A fenced batch applies only while its fence is the projector lease's latest; a
/// refused one changes nothing.
pub async fn a_fenced_batch_applies_only_with_the_projector_leases_latest_fence<S: ReadStore>(
    store: &S,
) {
    use crate::PROJECTOR_LEASE;
    let batch = |n: u64| vec![Change::PutAccount(account(AccountId(n), &format!("n{n}")))];
    let refused = store.apply_fenced(batch(1), 10, 1).await;
    assert!(
        matches!(refused, Err(StoreError::Fenced(_))),
        "no lease held: {refused:?}"
    );
    assert_eq!(store.checkpoint().await.unwrap(), 0);

    let long = std::time::Duration::from_secs(60);
    let old = store
        .acquire(PROJECTOR_LEASE, "p1", long)
        .await
        .unwrap()
        .unwrap();
    store.apply_fenced(batch(1), 10, old).await.unwrap();
    assert_eq!(store.checkpoint().await.unwrap(), 10);

    store.release(PROJECTOR_LEASE, "p1", old).await.unwrap();
    let new = store
        .acquire(PROJECTOR_LEASE, "p2", long)
        .await
        .unwrap()
        .unwrap();
    let dump = store.dump().await.unwrap();
    let refused = store.apply_fenced(batch(2), 20, old).await;
    assert!(
        matches!(refused, Err(StoreError::Fenced(_))),
        "a stale projector's batch: {refused:?}"
    );
    assert_eq!(store.checkpoint().await.unwrap(), 10);
    assert_eq!(
        store.dump().await.unwrap(),
        dump,
        "a refused batch changes nothing"
    );
    assert_eq!(store.accounts(&[AccountId(2)]).await.unwrap(), vec![]);

    store.apply_fenced(batch(2), 20, new).await.unwrap();
    assert_eq!(store.checkpoint().await.unwrap(), 20);
    assert_eq!(store.accounts(&[AccountId(2)]).await.unwrap().len(), 1);
}

/// Snapshots: one per stream; a newer revision or another format replaces it, an
/// older one of the same format does not; a reset drops them; dumps leave them out.
pub async fn snapshots_are_kept_per_stream_never_move_back_and_go_with_a_reset<S: ReadStore>(
    store: &S,
) {
    use crate::Snapshot;
    let snapshot = |stream: &str, revision: u64, format: u32, data: &[u8]| Snapshot {
        stream: stream.to_string(),
        revision,
        format,
        data: data.to_vec(),
    };
    assert_eq!(store.load_snapshot("room-1").await.unwrap(), None);
    let dump_before = store.dump().await.unwrap();
    let first = snapshot("room-1", 10, 1, b"ten");
    store.save_snapshot(&first).await.unwrap();
    store
        .save_snapshot(&snapshot("room-2", 3, 1, &[0, 255, 1]))
        .await
        .unwrap();
    assert_eq!(store.load_snapshot("room-1").await.unwrap(), Some(first));
    assert_eq!(
        store.dump().await.unwrap(),
        dump_before,
        "snapshots are not read models"
    );
    // Older of the same format: kept out. Newer: replaces.
    store
        .save_snapshot(&snapshot("room-1", 9, 1, b"nine"))
        .await
        .unwrap();
    assert_eq!(
        store.load_snapshot("room-1").await.unwrap().unwrap().data,
        b"ten"
    );
    let newer = snapshot("room-1", 25, 1, &vec![7; 100_000]);
    store.save_snapshot(&newer).await.unwrap();
    assert_eq!(store.load_snapshot("room-1").await.unwrap(), Some(newer));
    // Another format replaces whatever its revision.
    let reformatted = snapshot("room-1", 5, 2, b"v2");
    store.save_snapshot(&reformatted).await.unwrap();
    assert_eq!(
        store.load_snapshot("room-1").await.unwrap(),
        Some(reformatted)
    );
    assert_eq!(
        store.load_snapshot("room-2").await.unwrap().unwrap().data,
        vec![0, 255, 1]
    );
    store.reset().await.unwrap();
    assert_eq!(store.load_snapshot("room-1").await.unwrap(), None);
    assert_eq!(store.load_snapshot("room-2").await.unwrap(), None);
}

// ---------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------

const ALICE: AccountId = AccountId(1);
const BOB: AccountId = AccountId(2);
const CAROL: AccountId = AccountId(3);
/// An account that is never put: its messages have no author name.
const DAVE: AccountId = AccountId(4);

const ROOM_A: RoomId = RoomId(100);
const ROOM_B: RoomId = RoomId(200);
const ROOM_C: RoomId = RoomId(300);

/// Unix seconds at which the fixtures start.
const T0: i64 = 1_700_000_000;

fn token_hash(account: AccountId) -> String {
    format!("{:064x}", account.0 * 0x1234_5678_9abc)
}

fn account(account_id: AccountId, name: &str) -> AccountRow {
    AccountRow {
        account_id,
        my_room_id: RoomId(10_000 + account_id.0),
        organization_id: OrganizationId(7),
        organization_name: "Hayabusa \"Inc.\"".to_owned(),
        name: name.to_owned(),
        mail: format!("{}@example.com", name.to_lowercase()),
        department: "Engineering".to_owned(),
        title: String::new(),
        admin: account_id == ALICE,
        token_hash: token_hash(account_id),
        created_at: T0,
    }
}

fn room(room_id: RoomId, name: &str) -> RoomRow {
    RoomRow {
        room_id,
        room_type: RoomType::Group,
        name: name.to_owned(),
        description: format!("About {name}\nsecond line"),
        icon_preset: "group".to_owned(),
        last_seq: 0,
        message_num: 0,
        last_update_time: T0,
    }
}

fn message_id(room: RoomId, seq: u64) -> MessageId {
    MessageId((1 << 60) + room.0 * 1_000_000 + seq)
}

fn send_time(seq: u64) -> i64 {
    T0 + 10 * i64::try_from(seq).unwrap_or(i64::MAX / 20)
}

fn message(room_id: RoomId, seq: u64, author: AccountId, body: &str) -> MessageRow {
    MessageRow {
        room_id,
        message_id: message_id(room_id, seq),
        seq,
        account_id: author,
        body: body.to_owned(),
        send_time: send_time(seq),
        update_time: 0,
        mentions: Vec::new(),
        to_all: false,
    }
}

fn mentioning(mut message: MessageRow, mentions: &[AccountId]) -> MessageRow {
    message.mentions = mentions.to_vec();
    message
}

fn to_all(mut message: MessageRow) -> MessageRow {
    message.to_all = true;
    message
}

fn put_member(room_id: RoomId, account_id: AccountId, role: Role) -> Change {
    Change::PutMember {
        room_id,
        account_id,
        role,
    }
}

fn insert(message: MessageRow) -> Change {
    Change::InsertMessage(message)
}

fn read_up_to(account_id: AccountId, room_id: RoomId, read_seq: u64) -> Change {
    Change::SetReadCursor {
        account_id,
        room_id,
        read_seq,
    }
}

/// Alice, Bob and Carol; room A (Alice admin, Bob member, Carol readonly) and room B
/// (Alice admin, Bob member).
fn two_rooms() -> Vec<Change> {
    vec![
        Change::PutAccount(account(ALICE, "Alice")),
        Change::PutAccount(account(BOB, "Bob")),
        Change::PutAccount(account(CAROL, "Carol")),
        Change::PutRoom(room(ROOM_A, "Room A")),
        Change::PutRoom(room(ROOM_B, "Room B")),
        put_member(ROOM_A, ALICE, Role::Admin),
        put_member(ROOM_A, BOB, Role::Member),
        put_member(ROOM_A, CAROL, Role::Readonly),
        put_member(ROOM_B, ALICE, Role::Admin),
        put_member(ROOM_B, BOB, Role::Member),
    ]
}

/// An untargeted op of `room` with a payload naming it.
fn room_op(position: Position, index: u32, room: RoomId, op_type: &str) -> OpRecord {
    OpRecord {
        position,
        index,
        room_id: Some(room),
        target: None,
        op_type: op_type.to_owned(),
        payload: format!(r#"{{"room_id":{room},"op":"{position}.{index}","text":"é\n\"x\""}}"#),
    }
}

/// `op`, seen only by `target`.
fn targeted(mut op: OpRecord, target: AccountId) -> OpRecord {
    op.target = Some(target);
    op
}

/// An account-level op (no room) for `target`.
fn account_op(position: Position, index: u32, target: AccountId, op_type: &str) -> OpRecord {
    OpRecord {
        position,
        index,
        room_id: None,
        target: Some(target),
        op_type: op_type.to_owned(),
        payload: format!(r#"{{"account_id":{target},"op":"{position}.{index}"}}"#),
    }
}

fn record(ops: Vec<OpRecord>) -> Change {
    Change::RecordOps(ops)
}

fn open(room_id: RoomId, account_id: AccountId, from: Position) -> Change {
    Change::OpenMembership {
        room_id,
        account_id,
        from,
    }
}

fn close(room_id: RoomId, account_id: AccountId, to: Position) -> Change {
    Change::CloseMembership {
        room_id,
        account_id,
        to,
    }
}

const OPEN: &str = "open";
const DONE: &str = "done";

/// A task of `room` assigned to `assignee` by `assigner`, with a text naming it.
fn task(
    id: u64,
    room_id: RoomId,
    assignee: AccountId,
    assigner: AccountId,
    status: &str,
) -> TaskRow {
    TaskRow {
        task_id: TaskId(id),
        room_id,
        account_id: assignee,
        assigned_by: assigner,
        message_id: message_id(room_id, id),
        body: format!("task {id}\n\"quoted\" é"),
        limit_time: T0 + 86_400 * i64::try_from(id).unwrap_or(0),
        limit_type: if id.is_multiple_of(2) { "date" } else { "time" }.to_owned(),
        status: status.to_owned(),
    }
}

fn put_task(
    id: u64,
    room_id: RoomId,
    assignee: AccountId,
    assigner: AccountId,
    status: &str,
) -> Change {
    Change::PutTask(task(id, room_id, assignee, assigner, status))
}

fn set_task_status(id: u64, status: &str) -> Change {
    Change::SetTaskStatus {
        task_id: TaskId(id),
        status: status.to_owned(),
    }
}

/// A file of `room` uploaded by `uploader`.
fn file(id: u64, room_id: RoomId, uploader: AccountId) -> FileRow {
    FileRow {
        file_id: FileId(id),
        room_id,
        account_id: uploader,
        message_id: message_id(room_id, 500 + id),
        filename: format!("report {id}.pdf"),
        filesize: 1_000 * id,
        upload_time: T0 + i64::try_from(id).unwrap_or(0),
        blob_key: format!("blobs/{id:08}"),
    }
}

fn put_file(id: u64, room_id: RoomId, uploader: AccountId) -> Change {
    Change::PutFile(file(id, room_id, uploader))
}

fn put_contact(account_id: AccountId, contact_id: AccountId, room_id: RoomId) -> Change {
    Change::PutContact {
        account_id,
        contact_id,
        room_id,
    }
}

fn contact_request(id: u64, from: AccountId, to: AccountId) -> ContactRequestRow {
    ContactRequestRow {
        request_id: RequestId(id),
        from,
        to,
        message: format!("request {id}: \"please\""),
        at: T0 + i64::try_from(id).unwrap_or(0),
    }
}

fn put_request(id: u64, from: AccountId, to: AccountId) -> Change {
    Change::PutContactRequest(contact_request(id, from, to))
}

fn link(room_id: RoomId, code: &str, need_acceptance: bool) -> LinkRow {
    LinkRow {
        room_id,
        code: code.to_owned(),
        need_acceptance,
        description: format!("Join {room_id} with {code}"),
    }
}

fn put_join_request(room_id: RoomId, account_id: AccountId, at: i64) -> Change {
    Change::PutJoinRequest {
        room_id,
        account_id,
        at,
    }
}

/// Batches that use every kind of change. Batch `n` stands for the event at log
/// position `n`: its ops carry that position.
fn scenario() -> Vec<Vec<Change>> {
    let mut first = two_rooms();
    first.extend([
        open(ROOM_A, ALICE, 1),
        open(ROOM_A, BOB, 1),
        open(ROOM_A, CAROL, 1),
        open(ROOM_B, ALICE, 1),
        open(ROOM_B, BOB, 1),
        record(vec![
            room_op(1, 0, ROOM_A, "room_created"),
            room_op(1, 1, ROOM_B, "room_created"),
            account_op(1, 2, ALICE, "contact_added"),
        ]),
        put_contact(ALICE, BOB, ROOM_B),
        put_contact(BOB, ALICE, ROOM_B),
        put_request(1, CAROL, ALICE),
    ]);
    vec![
        first,
        vec![
            insert(message(ROOM_A, 1, ALICE, "hello")),
            insert(mentioning(
                message(ROOM_A, 2, BOB, "[To:1] Alice\nlook"),
                &[ALICE],
            )),
            insert(to_all(message(ROOM_A, 3, CAROL, "[toall] news"))),
            insert(mentioning(
                message(ROOM_B, 1, BOB, "[To:3][To:1]"),
                &[CAROL, ALICE, ALICE],
            )),
            record(vec![
                room_op(2, 0, ROOM_A, "message_created"),
                room_op(2, 1, ROOM_A, "message_created"),
                targeted(room_op(2, 2, ROOM_A, "mention"), ALICE),
                room_op(2, 3, ROOM_A, "message_created"),
                room_op(2, 4, ROOM_B, "message_created"),
                targeted(room_op(2, 5, ROOM_B, "mention"), CAROL),
            ]),
            put_task(1, ROOM_A, ALICE, BOB, OPEN),
            put_task(2, ROOM_A, BOB, ALICE, OPEN),
            put_task(3, ROOM_B, ALICE, BOB, OPEN),
            put_task(4, ROOM_B, BOB, BOB, DONE),
            put_file(1, ROOM_A, ALICE),
            put_file(2, ROOM_B, BOB),
            Change::SetLink(link(ROOM_B, "room-b", false)),
            put_join_request(ROOM_B, CAROL, T0 + 20),
            put_join_request(ROOM_A, DAVE, T0 + 21),
        ],
        vec![
            Change::UpdateRoom {
                room_id: ROOM_A,
                name: Some("Room A, renamed".to_owned()),
                description: None,
                icon_preset: Some("star".to_owned()),
                at: T0 + 1_000,
            },
            record(vec![room_op(3, 0, ROOM_A, "room_updated")]),
            set_task_status(1, DONE),
            Change::SetLink(link(ROOM_A, "room-a", true)),
            put_contact(ALICE, CAROL, ROOM_C),
        ],
        vec![
            read_up_to(ALICE, ROOM_A, 2),
            Change::EditMessage {
                room_id: ROOM_A,
                message_id: message_id(ROOM_A, 2),
                body: "[To:3] Carol instead".to_owned(),
                mentions: vec![CAROL],
                to_all: false,
                at: T0 + 1_100,
            },
            insert(message(ROOM_A, 4, DAVE, "from nobody known")),
            record(vec![
                targeted(room_op(4, 0, ROOM_A, "read_changed"), ALICE),
                room_op(4, 1, ROOM_A, "message_updated"),
                room_op(4, 2, ROOM_A, "message_created"),
            ]),
            put_task(5, ROOM_A, CAROL, ALICE, OPEN),
            put_file(3, ROOM_A, DAVE),
            Change::RemoveContactRequest {
                request_id: RequestId(1),
            },
            put_request(2, DAVE, BOB),
            put_request(3, ALICE, BOB),
        ],
        vec![
            Change::DeleteMessage {
                room_id: ROOM_A,
                message_id: message_id(ROOM_A, 1),
                at: T0 + 1_200,
            },
            put_member(ROOM_A, BOB, Role::Admin),
            Change::RemoveMember {
                room_id: ROOM_A,
                account_id: CAROL,
            },
            close(ROOM_A, CAROL, 5),
            record(vec![
                room_op(5, 0, ROOM_A, "message_deleted"),
                room_op(5, 1, ROOM_A, "member_changed"),
                room_op(5, 2, ROOM_A, "member_removed"),
            ]),
            set_task_status(99, DONE),
            Change::RemoveJoinRequest {
                room_id: ROOM_A,
                account_id: DAVE,
            },
            put_join_request(ROOM_A, BOB, T0 + 50),
        ],
        vec![
            Change::PutRoom(room(ROOM_C, "Room C")),
            put_member(ROOM_C, CAROL, Role::Admin),
            insert(message(ROOM_C, 1, CAROL, "alone")),
            Change::DeleteRoom { room_id: ROOM_B },
            Change::PutAccount(account(BOB, "Robert")),
            open(ROOM_C, CAROL, 6),
            close(ROOM_B, ALICE, 6),
            close(ROOM_B, BOB, 6),
            record(vec![
                room_op(6, 0, ROOM_C, "room_created"),
                room_op(6, 1, ROOM_C, "message_created"),
                room_op(6, 2, ROOM_B, "room_deleted"),
                account_op(6, 3, BOB, "profile_changed"),
            ]),
            Change::SetLink(link(ROOM_C, "room-a", false)),
            Change::RemoveContact {
                account_id: BOB,
                contact_id: ALICE,
            },
            put_task(6, ROOM_C, CAROL, CAROL, OPEN),
        ],
    ]
}

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// Unwraps a store result or panics naming the operation.
fn ok<T>(result: Result<T, StoreError>, operation: &str) -> T {
    result.unwrap_or_else(|error| panic!("{operation} failed: {error}"))
}

/// Feeds batches of changes to a store at increasing checkpoints (1, 2, 3, …).
struct Feeder<'a, S> {
    store: &'a S,
    checkpoint: Position,
}

impl<'a, S: ReadStore> Feeder<'a, S> {
    fn new(store: &'a S) -> Self {
        Feeder {
            store,
            checkpoint: 0,
        }
    }

    async fn apply(&mut self, changes: Vec<Change>) {
        self.checkpoint += 1;
        let checkpoint = self.checkpoint;
        ok(
            self.store.apply(changes, checkpoint).await,
            &format!("apply at checkpoint {checkpoint}"),
        );
    }
}

async fn view<S: ReadStore>(store: &S, account: AccountId, room: RoomId) -> RoomView {
    ok(store.room_of(account, room).await, "room_of")
        .unwrap_or_else(|| panic!("account {account} should see room {room}"))
}

/// (unread_num, mention_num) of `account` in `room`.
async fn counts<S: ReadStore>(store: &S, account: AccountId, room: RoomId) -> (u64, u64) {
    let view = view(store, account, room).await;
    (view.unread_num, view.mention_num)
}

async fn room_row<S: ReadStore>(store: &S, account: AccountId, room: RoomId) -> RoomRow {
    view(store, account, room).await.room
}

fn seqs(messages: &[MessageView]) -> Vec<u64> {
    messages.iter().map(|view| view.message.seq).collect()
}

async fn latest_seqs<S: ReadStore>(store: &S, room: RoomId, limit: usize) -> Vec<u64> {
    seqs(&ok(
        store.latest_messages(room, limit).await,
        "latest_messages",
    ))
}

async fn take_seqs<S: ReadStore>(
    store: &S,
    account: AccountId,
    room: RoomId,
    limit: usize,
) -> Vec<u64> {
    seqs(&ok(
        store.take_new_messages(account, room, limit).await,
        "take_new_messages",
    ))
}

async fn dump<S: ReadStore>(store: &S) -> String {
    ok(store.dump().await, "dump")
}

/// Applies `changes` at checkpoint `position` (the log position of their event).
async fn apply_at<S: ReadStore>(store: &S, position: Position, changes: Vec<Change>) {
    ok(
        store.apply(changes, position).await,
        &format!("apply at checkpoint {position}"),
    );
}

/// (position, index) of each op.
fn op_keys(ops: &[OpRecord]) -> Vec<(Position, u32)> {
    ops.iter().map(|op| (op.position, op.index)).collect()
}

/// (position, index) of the ops `account` sees in `(after, up_to]`, at most `limit`.
async fn ops_seen<S: ReadStore>(
    store: &S,
    account: AccountId,
    after: Position,
    up_to: Position,
    limit: usize,
) -> Vec<(Position, u32)> {
    op_keys(&ok(
        store.ops_for(account, after, up_to, limit).await,
        "ops_for",
    ))
}

/// (position, index) of every op `account` sees.
async fn all_ops_seen<S: ReadStore>(store: &S, account: AccountId) -> Vec<(Position, u32)> {
    ops_seen(store, account, 0, Position::MAX, usize::MAX).await
}

/// The positions of every op `account` sees.
async fn positions_seen<S: ReadStore>(store: &S, account: AccountId) -> Vec<Position> {
    all_ops_seen(store, account)
        .await
        .into_iter()
        .map(|(position, _)| position)
        .collect()
}

/// Ids of tasks of `room` matching `filter`, at most `limit`.
async fn room_task_ids<S: ReadStore>(
    store: &S,
    room: RoomId,
    filter: &TaskFilter,
    limit: usize,
) -> Vec<u64> {
    ok(
        store.tasks_of_room(room, filter, limit).await,
        "tasks_of_room",
    )
    .into_iter()
    .map(|view| view.task.task_id.0)
    .collect()
}

/// Ids of tasks listed for `account` matching `filter`, at most `limit`.
async fn account_task_ids<S: ReadStore>(
    store: &S,
    account: AccountId,
    filter: &TaskFilter,
    limit: usize,
) -> Vec<u64> {
    ok(
        store.tasks_of_account(account, filter, limit).await,
        "tasks_of_account",
    )
    .into_iter()
    .map(|view| view.task.task_id.0)
    .collect()
}

/// Ids of files of `room` (of `uploader` if given), at most `limit`.
async fn file_ids<S: ReadStore>(
    store: &S,
    room: RoomId,
    uploader: Option<AccountId>,
    limit: usize,
) -> Vec<u64> {
    ok(
        store.files_of_room(room, uploader, limit).await,
        "files_of_room",
    )
    .into_iter()
    .map(|view| view.file.file_id.0)
    .collect()
}

/// (mytask_num, task_num, file_num) of `account` in `room`.
async fn task_counts<S: ReadStore>(store: &S, account: AccountId, room: RoomId) -> (u64, u64, u64) {
    let view = view(store, account, room).await;
    (view.mytask_num, view.task_num, view.file_num)
}

/// (mytask_room_num, mytask_num) of `account`'s status.
async fn task_totals<S: ReadStore>(store: &S, account: AccountId) -> (u64, u64) {
    let status = ok(store.status(account).await, "status");
    (status.mytask_room_num, status.mytask_num)
}

/// (contact id, direct room) of `account`'s contacts.
async fn contact_pairs<S: ReadStore>(store: &S, account: AccountId) -> Vec<(AccountId, RoomId)> {
    ok(store.contacts(account).await, "contacts")
        .into_iter()
        .map(|contact| (contact.account.account_id, contact.room_id))
        .collect()
}

/// (request id, asking account) of the requests addressed to `account`.
async fn incoming_ids<S: ReadStore>(store: &S, account: AccountId) -> Vec<(u64, AccountId)> {
    ok(store.incoming_requests(account).await, "incoming_requests")
        .into_iter()
        .map(|view| (view.request.request_id.0, view.from.account_id))
        .collect()
}

/// (account, at) of the join requests of `room`.
async fn join_pairs<S: ReadStore>(store: &S, room: RoomId) -> Vec<(AccountId, i64)> {
    ok(store.join_requests(room).await, "join_requests")
        .into_iter()
        .map(|view| (view.account.account_id, view.at))
        .collect()
}

fn filter(
    account_id: Option<AccountId>,
    assigned_by: Option<AccountId>,
    status: Option<&str>,
) -> TaskFilter {
    TaskFilter {
        account_id,
        assigned_by,
        status: status.map(str::to_owned),
    }
}

/// A dump without its checkpoint line, to compare read models reached through
/// different numbers of batches.
async fn models_dump<S: ReadStore>(store: &S) -> String {
    dump(store)
        .await
        .lines()
        .filter(|line| !line.starts_with("checkpoint "))
        .map(|line| format!("{line}\n"))
        .collect()
}

// ---------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------

/// A fresh store is at checkpoint 0 and every query comes back empty.
pub async fn a_new_store_is_empty<S: ReadStore>(store: &S) {
    assert_eq!(ok(store.checkpoint().await, "checkpoint"), 0);
    assert_eq!(
        ok(
            store.account_by_token_hash(&token_hash(ALICE)).await,
            "account_by_token_hash"
        ),
        None
    );
    assert!(ok(store.accounts(&[ALICE, BOB]).await, "accounts").is_empty());
    assert!(ok(store.rooms_of(ALICE).await, "rooms_of").is_empty());
    assert_eq!(ok(store.room_of(ALICE, ROOM_A).await, "room_of"), None);
    assert!(ok(store.members(ROOM_A).await, "members").is_empty());
    assert!(latest_seqs(store, ROOM_A, 10).await.is_empty());
    assert_eq!(
        ok(
            store.message(ROOM_A, message_id(ROOM_A, 1)).await,
            "message"
        ),
        None
    );
    assert!(take_seqs(store, ALICE, ROOM_A, 10).await.is_empty());
    assert_eq!(
        ok(store.status(ALICE).await, "status"),
        StatusCounts::default()
    );
    assert!(all_ops_seen(store, ALICE).await.is_empty());
    assert!(
        room_task_ids(store, ROOM_A, &TaskFilter::default(), 10)
            .await
            .is_empty()
    );
    assert_eq!(ok(store.task(ROOM_A, TaskId(1)).await, "task"), None);
    assert!(
        account_task_ids(store, ALICE, &TaskFilter::default(), 10)
            .await
            .is_empty()
    );
    assert!(file_ids(store, ROOM_A, None, 10).await.is_empty());
    assert_eq!(ok(store.file(ROOM_A, FileId(1)).await, "file"), None);
    assert!(ok(store.contacts(ALICE).await, "contacts").is_empty());
    assert!(incoming_ids(store, ALICE).await.is_empty());
    assert_eq!(
        ok(store.contact_request(RequestId(1)).await, "contact_request"),
        None
    );
    assert_eq!(ok(store.link_of_room(ROOM_A).await, "link_of_room"), None);
    assert_eq!(ok(store.link_by_code("code").await, "link_by_code"), None);
    assert!(join_pairs(store, ROOM_A).await.is_empty());
    assert_eq!(
        ok(store.ops_retained_from().await, "ops_retained_from"),
        0,
        "a store keeps the whole op history"
    );
}

/// Accounts are found by token hash and by id, in id order; a put replaces.
pub async fn accounts_are_found_by_token_hash_and_by_id<S: ReadStore>(store: &S) {
    let mut feeder = Feeder::new(store);
    feeder
        .apply(vec![
            Change::PutAccount(account(CAROL, "Carol")),
            Change::PutAccount(account(ALICE, "Alice")),
            Change::PutAccount(account(BOB, "Bob")),
        ])
        .await;

    let found = ok(
        store.account_by_token_hash(&token_hash(BOB)).await,
        "account_by_token_hash",
    );
    assert_eq!(
        found,
        Some(account(BOB, "Bob")),
        "account_by_token_hash should return Bob's row"
    );
    assert_eq!(
        ok(
            store.account_by_token_hash("no such hash").await,
            "account_by_token_hash"
        ),
        None,
        "an unknown token hash finds nobody"
    );
    assert_eq!(
        ok(
            store.accounts(&[CAROL, DAVE, ALICE, CAROL]).await,
            "accounts"
        ),
        vec![account(ALICE, "Alice"), account(CAROL, "Carol")],
        "accounts come in id order, once each, unknown ids left out"
    );
    assert!(ok(store.accounts(&[]).await, "accounts").is_empty());

    let mut renamed = account(ALICE, "Alice Liddell");
    renamed.token_hash = "f".repeat(64);
    renamed.admin = false;
    feeder
        .apply(vec![Change::PutAccount(renamed.clone())])
        .await;
    assert_eq!(
        ok(
            store.account_by_token_hash(&token_hash(ALICE)).await,
            "account_by_token_hash"
        ),
        None,
        "a replaced account's old token hash no longer finds it"
    );
    assert_eq!(
        ok(
            store.account_by_token_hash(&"f".repeat(64)).await,
            "account_by_token_hash"
        ),
        Some(renamed.clone()),
        "PutAccount replaces the whole row"
    );
    assert_eq!(
        ok(store.accounts(&[ALICE]).await, "accounts"),
        vec![renamed]
    );
}

/// `SetTokenHash` replaces an account's token hash and nothing else: the old hash
/// finds nobody, the new one finds the account; an unknown account is ignored.
pub async fn a_new_token_hash_replaces_the_old_one<S: ReadStore>(store: &S) {
    let mut feeder = Feeder::new(store);
    feeder
        .apply(vec![
            Change::PutAccount(account(ALICE, "Alice")),
            Change::PutAccount(account(BOB, "Bob")),
        ])
        .await;
    let rotated = "e".repeat(64);
    feeder
        .apply(vec![
            Change::SetTokenHash {
                account_id: ALICE,
                token_hash: rotated.clone(),
            },
            Change::SetTokenHash {
                account_id: DAVE,
                token_hash: "d".repeat(64),
            },
        ])
        .await;
    let mut expected = account(ALICE, "Alice");
    expected.token_hash = rotated.clone();
    assert_eq!(
        ok(
            store.account_by_token_hash(&token_hash(ALICE)).await,
            "account_by_token_hash"
        ),
        None,
        "the old token hash finds nobody"
    );
    assert_eq!(
        ok(
            store.account_by_token_hash(&rotated).await,
            "account_by_token_hash"
        ),
        Some(expected.clone()),
        "the new token hash finds the account, with every other field unchanged"
    );
    assert_eq!(
        ok(
            store.account_by_token_hash(&token_hash(BOB)).await,
            "account_by_token_hash"
        ),
        Some(account(BOB, "Bob")),
        "other accounts keep their tokens"
    );
    assert_eq!(
        ok(
            store.account_by_token_hash(&"d".repeat(64)).await,
            "account_by_token_hash"
        ),
        None,
        "a token hash for an unknown account creates nothing"
    );
    assert_eq!(
        ok(store.accounts(&[ALICE, DAVE]).await, "accounts"),
        vec![expected]
    );
}

/// `rooms_of` lists a member's rooms by room id with its role; `room_of` is None for a
/// non-member; `PutRoom` replaces the row.
pub async fn rooms_are_listed_by_room_id_with_the_viewers_role<S: ReadStore>(store: &S) {
    let mut feeder = Feeder::new(store);
    feeder
        .apply(vec![
            Change::PutAccount(account(ALICE, "Alice")),
            Change::PutAccount(account(BOB, "Bob")),
            Change::PutAccount(account(CAROL, "Carol")),
            Change::PutRoom(room(ROOM_C, "Room C")),
            Change::PutRoom(room(ROOM_B, "Room B")),
            Change::PutRoom(room(ROOM_A, "Room A")),
            put_member(ROOM_B, ALICE, Role::Member),
            put_member(ROOM_A, ALICE, Role::Admin),
            put_member(ROOM_A, BOB, Role::Readonly),
            put_member(ROOM_C, BOB, Role::Admin),
        ])
        .await;

    let alice_rooms = ok(store.rooms_of(ALICE).await, "rooms_of");
    assert_eq!(
        alice_rooms,
        vec![
            RoomView {
                room: room(ROOM_A, "Room A"),
                role: Role::Admin,
                unread_num: 0,
                mention_num: 0,
                mytask_num: 0,
                task_num: 0,
                file_num: 0,
            },
            RoomView {
                room: room(ROOM_B, "Room B"),
                role: Role::Member,
                unread_num: 0,
                mention_num: 0,
                mytask_num: 0,
                task_num: 0,
                file_num: 0,
            },
        ],
        "rooms_of(Alice) should list rooms A and B by room id with her roles"
    );
    let bob_rooms: Vec<(RoomId, Role)> = ok(store.rooms_of(BOB).await, "rooms_of")
        .into_iter()
        .map(|view| (view.room.room_id, view.role))
        .collect();
    assert_eq!(
        bob_rooms,
        vec![(ROOM_A, Role::Readonly), (ROOM_C, Role::Admin)]
    );
    assert!(ok(store.rooms_of(CAROL).await, "rooms_of").is_empty());
    assert!(ok(store.rooms_of(DAVE).await, "rooms_of").is_empty());

    feeder
        .apply(vec![
            put_member(RoomId(999), ALICE, Role::Member),
            put_member(ROOM_A, DAVE, Role::Member),
        ])
        .await;
    assert_eq!(
        ok(store.rooms_of(ALICE).await, "rooms_of").len(),
        2,
        "a membership in a room without a room row is left out of rooms_of"
    );
    for who in [ALICE, BOB, CAROL, DAVE] {
        let listed: Vec<RoomId> = ok(store.rooms_of(who).await, "rooms_of")
            .into_iter()
            .map(|view| view.room.room_id)
            .collect();
        assert_eq!(
            ok(store.room_ids_of(who).await, "room_ids_of"),
            listed,
            "room_ids_of lists the rooms of rooms_of"
        );
    }
    let members: Vec<AccountId> = ok(store.members(ROOM_A).await, "members")
        .into_iter()
        .map(|member| member.account.account_id)
        .collect();
    assert_eq!(
        members,
        vec![ALICE, BOB],
        "a member without an account row is left out of members"
    );

    assert_eq!(
        ok(store.room_of(ALICE, ROOM_C).await, "room_of"),
        None,
        "room_of is None for an existing room the account is not a member of"
    );
    assert_eq!(
        ok(store.room_of(CAROL, ROOM_A).await, "room_of"),
        None,
        "room_of is None for a non-member"
    );
    assert_eq!(
        ok(store.room_of(ALICE, RoomId(999)).await, "room_of"),
        None,
        "room_of is None for an unknown room"
    );
    assert_eq!(Some(alice_rooms[1].clone()), {
        ok(store.room_of(ALICE, ROOM_B).await, "room_of")
    });

    let mut replaced = room(ROOM_A, "Room A v2");
    replaced.room_type = RoomType::Direct;
    replaced.icon_preset = "meeting".to_owned();
    replaced.last_update_time = T0 + 50;
    feeder.apply(vec![Change::PutRoom(replaced.clone())]).await;
    assert_eq!(
        room_row(store, BOB, ROOM_A).await,
        replaced,
        "PutRoom replaces the room row and keeps its members"
    );
}

/// `members` lists a room's members by account id; a second `PutMember` changes the
/// role and keeps the read cursor; `RemoveMember` removes membership and cursor.
pub async fn members_are_listed_by_account_id_and_roles_change_in_place<S: ReadStore>(store: &S) {
    let mut feeder = Feeder::new(store);
    feeder
        .apply(vec![
            Change::PutAccount(account(ALICE, "Alice")),
            Change::PutAccount(account(BOB, "Bob")),
            Change::PutAccount(account(CAROL, "Carol")),
            Change::PutRoom(room(ROOM_A, "Room A")),
            Change::PutRoom(room(ROOM_B, "Room B")),
            put_member(ROOM_A, CAROL, Role::Readonly),
            put_member(ROOM_A, ALICE, Role::Admin),
            put_member(ROOM_A, BOB, Role::Member),
            put_member(ROOM_B, BOB, Role::Admin),
        ])
        .await;

    let members: Vec<(AccountRow, Role)> = ok(store.members(ROOM_A).await, "members")
        .into_iter()
        .map(|member| (member.account, member.role))
        .collect();
    assert_eq!(
        members,
        vec![
            (account(ALICE, "Alice"), Role::Admin),
            (account(BOB, "Bob"), Role::Member),
            (account(CAROL, "Carol"), Role::Readonly),
        ],
        "members come by account id with their account rows and roles"
    );
    assert!(ok(store.members(ROOM_C).await, "members").is_empty());

    feeder
        .apply(vec![insert(message(ROOM_A, 1, ALICE, "before the change"))])
        .await;
    assert_eq!(counts(store, BOB, ROOM_A).await, (1, 0));
    feeder
        .apply(vec![put_member(ROOM_A, BOB, Role::Admin)])
        .await;
    assert_eq!(view(store, BOB, ROOM_A).await.role, Role::Admin);
    assert_eq!(
        counts(store, BOB, ROOM_A).await,
        (1, 0),
        "a role change keeps the member's read cursor"
    );

    feeder
        .apply(vec![Change::RemoveMember {
            room_id: ROOM_A,
            account_id: CAROL,
        }])
        .await;
    let remaining: Vec<AccountId> = ok(store.members(ROOM_A).await, "members")
        .into_iter()
        .map(|member| member.account.account_id)
        .collect();
    assert_eq!(remaining, vec![ALICE, BOB]);
    assert_eq!(ok(store.room_of(CAROL, ROOM_A).await, "room_of"), None);
    assert!(ok(store.rooms_of(CAROL).await, "rooms_of").is_empty());
    assert_eq!(
        ok(store.status(CAROL).await, "status"),
        StatusCounts::default(),
        "a removed member's unread messages no longer count"
    );

    feeder
        .apply(vec![put_member(ROOM_A, CAROL, Role::Member)])
        .await;
    assert_eq!(
        counts(store, CAROL, ROOM_A).await,
        (0, 0),
        "a re-added member starts again at the room's last seq"
    );
}

/// `UpdateRoom` changes only the fields it carries and sets `last_update_time`.
pub async fn room_updates_keep_the_fields_that_are_not_given<S: ReadStore>(store: &S) {
    let mut feeder = Feeder::new(store);
    feeder.apply(two_rooms()).await;

    feeder
        .apply(vec![Change::UpdateRoom {
            room_id: ROOM_A,
            name: Some("New name".to_owned()),
            description: None,
            icon_preset: None,
            at: T0 + 100,
        }])
        .await;
    let mut expected = room(ROOM_A, "Room A");
    expected.name = "New name".to_owned();
    expected.last_update_time = T0 + 100;
    assert_eq!(room_row(store, ALICE, ROOM_A).await, expected);

    feeder
        .apply(vec![Change::UpdateRoom {
            room_id: ROOM_A,
            name: None,
            description: Some(String::new()),
            icon_preset: Some("idea".to_owned()),
            at: T0 + 200,
        }])
        .await;
    expected.description = String::new();
    expected.icon_preset = "idea".to_owned();
    expected.last_update_time = T0 + 200;
    assert_eq!(room_row(store, BOB, ROOM_A).await, expected);
    assert_eq!(
        room_row(store, ALICE, ROOM_B).await,
        room(ROOM_B, "Room B"),
        "other rooms are untouched"
    );
}

/// `InsertMessage` sets the room's `last_seq`, `message_num` and `last_update_time`;
/// `latest_messages` and `message` return views with the author's name.
pub async fn messages_update_their_room_and_are_listed_oldest_first<S: ReadStore>(store: &S) {
    let mut feeder = Feeder::new(store);
    feeder.apply(two_rooms()).await;
    feeder
        .apply(vec![
            insert(message(ROOM_A, 1, ALICE, "one")),
            insert(message(ROOM_A, 2, BOB, "two")),
            insert(message(ROOM_A, 3, CAROL, "three")),
        ])
        .await;
    feeder
        .apply(vec![
            insert(mentioning(
                message(ROOM_A, 4, BOB, "[To:3][To:2] four"),
                &[CAROL, BOB, CAROL],
            )),
            insert(message(ROOM_A, 5, DAVE, "five, by an unknown account")),
        ])
        .await;

    let row = room_row(store, ALICE, ROOM_A).await;
    assert_eq!(
        (row.last_seq, row.message_num, row.last_update_time),
        (5, 5, send_time(5)),
        "after five messages the room has last_seq 5, message_num 5 and the last send time"
    );
    assert_eq!(room_row(store, ALICE, ROOM_B).await, room(ROOM_B, "Room B"));

    assert_eq!(latest_seqs(store, ROOM_A, 3).await, vec![3, 4, 5]);
    assert_eq!(latest_seqs(store, ROOM_A, 100).await, vec![1, 2, 3, 4, 5]);
    assert!(latest_seqs(store, ROOM_A, 0).await.is_empty());
    assert!(latest_seqs(store, ROOM_B, 10).await.is_empty());

    let fourth = ok(
        store.message(ROOM_A, message_id(ROOM_A, 4)).await,
        "message",
    );
    assert_eq!(
        fourth,
        Some(MessageView {
            message: mentioning(message(ROOM_A, 4, BOB, "[To:3][To:2] four"), &[BOB, CAROL]),
            author_name: "Bob".to_owned(),
        }),
        "a message comes back whole, mentions sorted and deduplicated, with its author's name"
    );
    let fifth = ok(
        store.message(ROOM_A, message_id(ROOM_A, 5)).await,
        "message",
    )
    .unwrap_or_else(|| panic!("message 5 should exist"));
    assert_eq!(fifth.author_name, "", "an unknown author has an empty name");
    assert_eq!(
        ok(
            store.message(ROOM_B, message_id(ROOM_A, 4)).await,
            "message"
        ),
        None,
        "a message is only found in its own room"
    );
    let latest = ok(store.latest_messages(ROOM_A, 2).await, "latest_messages");
    assert_eq!(latest.first(), fourth.as_ref());
    assert_eq!(latest.last(), Some(&fifth));

    feeder
        .apply(vec![insert(message(
            ROOM_A,
            5,
            DAVE,
            "five, inserted again",
        ))])
        .await;
    let row = room_row(store, ALICE, ROOM_A).await;
    assert_eq!(
        (row.last_seq, row.message_num),
        (5, 5),
        "inserting a message that is already there replaces it without counting it twice"
    );
    assert_eq!(
        ok(store.latest_messages(ROOM_A, 1).await, "latest_messages")
            .first()
            .map(|view| view.message.body.as_str()),
        Some("five, inserted again")
    );
}

/// `EditMessage` replaces body, mentions and `to_all`, sets `update_time` and the
/// room's `last_update_time`; mention counts follow the edit.
pub async fn edits_replace_body_and_addressing<S: ReadStore>(store: &S) {
    let mut feeder = Feeder::new(store);
    feeder.apply(two_rooms()).await;
    feeder
        .apply(vec![
            insert(mentioning(message(ROOM_A, 1, ALICE, "[To:3] hi"), &[CAROL])),
            insert(message(ROOM_A, 2, ALICE, "plain")),
        ])
        .await;
    assert_eq!(counts(store, CAROL, ROOM_A).await, (2, 1));
    assert_eq!(counts(store, BOB, ROOM_A).await, (2, 0));

    feeder
        .apply(vec![Change::EditMessage {
            room_id: ROOM_A,
            message_id: message_id(ROOM_A, 1),
            body: "[To:2] hi Bob".to_owned(),
            mentions: vec![BOB],
            to_all: false,
            at: T0 + 500,
        }])
        .await;
    let edited = ok(
        store.message(ROOM_A, message_id(ROOM_A, 1)).await,
        "message",
    )
    .unwrap_or_else(|| panic!("the edited message should exist"));
    let mut expected = mentioning(message(ROOM_A, 1, ALICE, "[To:2] hi Bob"), &[BOB]);
    expected.update_time = T0 + 500;
    assert_eq!(
        edited.message, expected,
        "the edit replaces body and mentions"
    );
    assert_eq!(
        room_row(store, ALICE, ROOM_A).await.last_update_time,
        T0 + 500
    );
    assert_eq!(
        counts(store, CAROL, ROOM_A).await,
        (2, 0),
        "an edit that drops a mention drops it from the mention count"
    );
    assert_eq!(counts(store, BOB, ROOM_A).await, (2, 1));

    feeder
        .apply(vec![Change::EditMessage {
            room_id: ROOM_A,
            message_id: message_id(ROOM_A, 2),
            body: "[toall] everyone".to_owned(),
            mentions: Vec::new(),
            to_all: true,
            at: T0 + 600,
        }])
        .await;
    assert_eq!(counts(store, CAROL, ROOM_A).await, (2, 1));
    assert_eq!(counts(store, BOB, ROOM_A).await, (2, 2));
    assert!(
        ok(
            store.message(ROOM_A, message_id(ROOM_A, 2)).await,
            "message"
        )
        .is_some_and(|view| view.message.to_all && view.message.update_time == T0 + 600)
    );

    let before = models_dump(store).await;
    feeder
        .apply(vec![Change::EditMessage {
            room_id: ROOM_A,
            message_id: message_id(ROOM_A, 99),
            body: "ghost".to_owned(),
            mentions: vec![CAROL],
            to_all: true,
            at: T0 + 700,
        }])
        .await;
    assert_eq!(
        models_dump(store).await,
        before,
        "editing an unknown message changes nothing"
    );
}

/// `DeleteMessage` removes the message and its mentions from every query and
/// decrements `message_num`.
pub async fn deleted_messages_disappear_and_stop_counting<S: ReadStore>(store: &S) {
    let mut feeder = Feeder::new(store);
    feeder.apply(two_rooms()).await;
    feeder
        .apply(vec![
            insert(message(ROOM_A, 1, BOB, "one")),
            insert(mentioning(message(ROOM_A, 2, BOB, "[To:1] two"), &[ALICE])),
            insert(message(ROOM_A, 3, BOB, "three")),
        ])
        .await;
    assert_eq!(counts(store, ALICE, ROOM_A).await, (3, 1));

    feeder
        .apply(vec![Change::DeleteMessage {
            room_id: ROOM_A,
            message_id: message_id(ROOM_A, 2),
            at: T0 + 900,
        }])
        .await;
    assert_eq!(
        ok(
            store.message(ROOM_A, message_id(ROOM_A, 2)).await,
            "message"
        ),
        None,
        "a deleted message is not found"
    );
    assert_eq!(latest_seqs(store, ROOM_A, 10).await, vec![1, 3]);
    let row = room_row(store, ALICE, ROOM_A).await;
    assert_eq!(
        (row.last_seq, row.message_num, row.last_update_time),
        (3, 2, T0 + 900),
        "deleting decrements message_num, keeps last_seq and sets last_update_time"
    );
    assert_eq!(
        counts(store, ALICE, ROOM_A).await,
        (2, 0),
        "a deleted message is neither unread nor a mention"
    );

    let before = models_dump(store).await;
    feeder
        .apply(vec![Change::DeleteMessage {
            room_id: ROOM_A,
            message_id: message_id(ROOM_A, 2),
            at: T0 + 950,
        }])
        .await;
    assert_eq!(
        models_dump(store).await,
        before,
        "deleting a message twice changes nothing"
    );

    feeder
        .apply(vec![insert(message(ROOM_A, 4, CAROL, "four"))])
        .await;
    let row = room_row(store, ALICE, ROOM_A).await;
    assert_eq!((row.last_seq, row.message_num), (4, 3));
    assert_eq!(latest_seqs(store, ROOM_A, 2).await, vec![3, 4]);
}

/// Unread counts messages after the read cursor not written by the viewer; mentions
/// are those of them addressed to the viewer or to all.
pub async fn unread_and_mentions_are_derived_from_the_read_cursor<S: ReadStore>(store: &S) {
    let mut feeder = Feeder::new(store);
    feeder.apply(two_rooms()).await;
    feeder
        .apply(vec![
            insert(message(ROOM_A, 1, ALICE, "hi")),
            insert(mentioning(message(ROOM_A, 2, BOB, "[To:1]"), &[ALICE])),
            insert(to_all(message(ROOM_A, 3, BOB, "[toall]"))),
            insert(mentioning(message(ROOM_A, 4, CAROL, "[To:2]"), &[BOB])),
            insert(to_all(mentioning(
                message(ROOM_A, 5, ALICE, "[toall][To:1]"),
                &[ALICE],
            ))),
        ])
        .await;

    assert_eq!(
        counts(store, ALICE, ROOM_A).await,
        (3, 2),
        "Alice: 2, 3, 4 unread (her own 1 and 5 are not); 2 (To) and 3 (toall) mention her"
    );
    assert_eq!(
        counts(store, BOB, ROOM_A).await,
        (3, 2),
        "Bob: 1, 4, 5 unread; 4 (To) and 5 (toall) mention him"
    );
    assert_eq!(
        counts(store, CAROL, ROOM_A).await,
        (4, 2),
        "Carol: 1, 2, 3, 5 unread; 3 and 5 are to all"
    );

    feeder.apply(vec![read_up_to(ALICE, ROOM_A, 3)]).await;
    assert_eq!(
        counts(store, ALICE, ROOM_A).await,
        (1, 0),
        "after reading up to 3 only message 4 is unread"
    );
    assert_eq!(
        counts(store, BOB, ROOM_A).await,
        (3, 2),
        "read cursors are per member"
    );

    feeder.apply(vec![read_up_to(ALICE, ROOM_A, 5)]).await;
    assert_eq!(counts(store, ALICE, ROOM_A).await, (0, 0));

    feeder.apply(vec![read_up_to(ALICE, ROOM_A, 1)]).await;
    assert_eq!(
        counts(store, ALICE, ROOM_A).await,
        (3, 2),
        "a read cursor may move back (mark as unread)"
    );

    feeder.apply(vec![read_up_to(BOB, ROOM_A, 5)]).await;
    feeder
        .apply(vec![insert(mentioning(
            message(ROOM_A, 6, ALICE, "[To:2]"),
            &[BOB],
        ))])
        .await;
    assert_eq!(
        counts(store, BOB, ROOM_A).await,
        (1, 1),
        "a message after the cursor is unread"
    );
    assert_eq!(
        counts(store, ALICE, ROOM_A).await,
        (3, 2),
        "the viewer's own new message is not unread"
    );
}

/// A member added to a room with history has nothing unread until the next message.
pub async fn a_new_member_starts_with_nothing_unread<S: ReadStore>(store: &S) {
    let mut feeder = Feeder::new(store);
    feeder.apply(two_rooms()).await;
    feeder
        .apply(vec![
            insert(message(ROOM_B, 1, ALICE, "one")),
            insert(mentioning(message(ROOM_B, 2, BOB, "[To:3]"), &[CAROL])),
            insert(to_all(message(ROOM_B, 3, BOB, "[toall]"))),
        ])
        .await;
    feeder
        .apply(vec![put_member(ROOM_B, CAROL, Role::Member)])
        .await;
    assert_eq!(
        counts(store, CAROL, ROOM_B).await,
        (0, 0),
        "history is visible to a new member but not unread"
    );
    assert_eq!(latest_seqs(store, ROOM_B, 10).await, vec![1, 2, 3]);

    feeder
        .apply(vec![insert(mentioning(
            message(ROOM_B, 4, ALICE, "[To:3] welcome"),
            &[CAROL],
        ))])
        .await;
    assert_eq!(counts(store, CAROL, ROOM_B).await, (1, 1));

    feeder
        .apply(vec![
            insert(message(ROOM_A, 1, ALICE, "in the same batch")),
            put_member(ROOM_A, DAVE, Role::Member),
        ])
        .await;
    assert_eq!(
        counts(store, DAVE, ROOM_A).await,
        (0, 0),
        "a member added after a message of the same batch starts after it"
    );
}

/// `SetReadCursor` for an account that is not a member does nothing.
pub async fn read_cursors_of_non_members_are_ignored<S: ReadStore>(store: &S) {
    let mut feeder = Feeder::new(store);
    feeder.apply(two_rooms()).await;
    feeder
        .apply(vec![
            insert(message(ROOM_B, 1, ALICE, "one")),
            insert(message(ROOM_B, 2, BOB, "two")),
        ])
        .await;

    let before = models_dump(store).await;
    feeder.apply(vec![read_up_to(CAROL, ROOM_B, 0)]).await;
    assert_eq!(
        models_dump(store).await,
        before,
        "a non-member's read cursor is not stored"
    );
    assert_eq!(ok(store.room_of(CAROL, ROOM_B).await, "room_of"), None);

    feeder
        .apply(vec![put_member(ROOM_B, CAROL, Role::Member)])
        .await;
    assert_eq!(
        counts(store, CAROL, ROOM_B).await,
        (0, 0),
        "an ignored cursor does not survive into a later membership"
    );
}

/// `status` sums unread and mentions over all of an account's rooms.
pub async fn status_totals_span_all_rooms<S: ReadStore>(store: &S) {
    let mut feeder = Feeder::new(store);
    feeder.apply(two_rooms()).await;
    feeder
        .apply(vec![
            Change::PutRoom(room(ROOM_C, "Room C")),
            put_member(ROOM_C, ALICE, Role::Admin),
            put_member(ROOM_C, CAROL, Role::Member),
            insert(mentioning(message(ROOM_A, 1, BOB, "[To:1]"), &[ALICE])),
            insert(message(ROOM_A, 2, CAROL, "hi")),
            insert(message(ROOM_B, 1, BOB, "one")),
            insert(message(ROOM_B, 2, BOB, "two")),
            insert(message(ROOM_B, 3, ALICE, "mine")),
            insert(message(ROOM_B, 4, BOB, "four")),
            insert(message(ROOM_C, 1, ALICE, "only mine")),
        ])
        .await;

    assert_eq!(
        ok(store.status(ALICE).await, "status"),
        StatusCounts {
            unread_room_num: 2,
            mention_room_num: 1,
            unread_num: 5,
            mention_num: 1,
            mytask_room_num: 0,
            mytask_num: 0,
        },
        "Alice: room A has 2 unread with 1 mention, room B 3 unread, room C none"
    );
    assert_eq!(
        ok(store.status(CAROL).await, "status"),
        StatusCounts {
            unread_room_num: 2,
            mention_room_num: 0,
            unread_num: 2,
            mention_num: 0,
            mytask_room_num: 0,
            mytask_num: 0,
        },
        "Carol: room A has Bob's message unread, room C Alice's; room B is not hers"
    );
    assert_eq!(
        ok(store.status(DAVE).await, "status"),
        StatusCounts::default()
    );

    feeder
        .apply(vec![
            read_up_to(ALICE, ROOM_A, 2),
            read_up_to(ALICE, ROOM_B, 3),
        ])
        .await;
    assert_eq!(
        ok(store.status(ALICE).await, "status"),
        StatusCounts {
            unread_room_num: 1,
            mention_room_num: 0,
            unread_num: 1,
            mention_num: 0,
            mytask_room_num: 0,
            mytask_num: 0,
        }
    );
}

/// `DeleteRoom` removes the room, its members, messages, mentions and read cursors;
/// a room later created with the same id starts empty.
pub async fn deleting_a_room_removes_everything_in_it<S: ReadStore>(store: &S, other: &S) {
    let mut feeder = Feeder::new(store);
    feeder.apply(two_rooms()).await;
    feeder
        .apply(vec![
            insert(mentioning(message(ROOM_A, 1, BOB, "[To:3]"), &[CAROL])),
            insert(to_all(message(ROOM_A, 2, BOB, "[toall]"))),
            insert(message(ROOM_B, 1, BOB, "in B")),
            read_up_to(ALICE, ROOM_A, 1),
        ])
        .await;
    assert_eq!(take_seqs(store, ALICE, ROOM_A, 10).await, vec![1, 2]);
    feeder
        .apply(vec![Change::DeleteRoom { room_id: ROOM_A }])
        .await;

    assert_eq!(ok(store.room_of(ALICE, ROOM_A).await, "room_of"), None);
    let alice_rooms: Vec<RoomId> = ok(store.rooms_of(ALICE).await, "rooms_of")
        .into_iter()
        .map(|view| view.room.room_id)
        .collect();
    assert_eq!(alice_rooms, vec![ROOM_B]);
    assert!(ok(store.rooms_of(CAROL).await, "rooms_of").is_empty());
    assert!(ok(store.members(ROOM_A).await, "members").is_empty());
    assert!(latest_seqs(store, ROOM_A, 10).await.is_empty());
    assert_eq!(
        ok(
            store.message(ROOM_A, message_id(ROOM_A, 1)).await,
            "message"
        ),
        None
    );
    assert_eq!(
        ok(store.status(CAROL).await, "status"),
        StatusCounts::default()
    );
    assert_eq!(latest_seqs(store, ROOM_B, 10).await, vec![1]);
    assert_eq!(counts(store, ALICE, ROOM_B).await, (1, 0));

    // The same models, reached without room A ever existing.
    let mut other_feeder = Feeder::new(other);
    let mut without_room_a: Vec<Change> = two_rooms()
        .into_iter()
        .filter(|change| {
            !matches!(change, Change::PutRoom(row) if row.room_id == ROOM_A)
                && !matches!(change, Change::PutMember { room_id, .. } if *room_id == ROOM_A)
        })
        .collect();
    without_room_a.push(insert(message(ROOM_B, 1, BOB, "in B")));
    other_feeder.apply(without_room_a).await;
    assert_eq!(
        models_dump(store).await,
        models_dump(other).await,
        "after DeleteRoom nothing of the room is left in the read models"
    );

    feeder
        .apply(vec![
            Change::PutRoom(room(ROOM_A, "Room A again")),
            put_member(ROOM_A, ALICE, Role::Admin),
            put_member(ROOM_A, CAROL, Role::Member),
            insert(message(ROOM_A, 1, BOB, "a new first message")),
        ])
        .await;
    assert_eq!(
        ok(
            store.message(ROOM_A, message_id(ROOM_A, 1)).await,
            "message"
        )
        .map(|view| view.message.mentions),
        Some(Vec::new()),
        "mentions of a deleted room do not attach to a new message with the same seq"
    );
    assert_eq!(counts(store, CAROL, ROOM_A).await, (1, 0));
    assert_eq!(counts(store, ALICE, ROOM_A).await, (1, 0));
    assert_eq!(latest_seqs(store, ROOM_A, 10).await, vec![1]);
}

/// `take_new_messages` returns the latest messages on a first call, then only the
/// messages after the caller's fetch cursor; each caller and room has its own cursor.
pub async fn fetch_cursors_return_only_new_messages<S: ReadStore>(store: &S) {
    let mut feeder = Feeder::new(store);
    feeder.apply(two_rooms()).await;
    assert!(
        take_seqs(store, BOB, ROOM_B, 10).await.is_empty(),
        "a first fetch in an empty room is empty"
    );
    feeder
        .apply(
            (1..=5)
                .map(|seq| insert(message(ROOM_A, seq, BOB, "m")))
                .collect(),
        )
        .await;

    assert_eq!(
        take_seqs(store, ALICE, ROOM_A, 3).await,
        vec![3, 4, 5],
        "a first fetch returns the latest `limit` messages, oldest first"
    );
    assert!(
        take_seqs(store, ALICE, ROOM_A, 3).await.is_empty(),
        "a fetch with nothing new returns nothing"
    );

    feeder
        .apply(vec![
            insert(message(ROOM_A, 6, CAROL, "six")),
            insert(message(ROOM_A, 7, ALICE, "seven, her own")),
        ])
        .await;
    let taken = ok(
        store.take_new_messages(ALICE, ROOM_A, 100).await,
        "take_new_messages",
    );
    assert_eq!(
        seqs(&taken),
        vec![6, 7],
        "the next fetch returns only new messages"
    );
    assert_eq!(taken[0].author_name, "Carol");
    assert!(take_seqs(store, ALICE, ROOM_A, 100).await.is_empty());

    feeder
        .apply(
            (8..=10)
                .map(|seq| insert(message(ROOM_A, seq, BOB, "m")))
                .collect(),
        )
        .await;
    assert_eq!(
        take_seqs(store, ALICE, ROOM_A, 2).await,
        vec![8, 9],
        "more new messages than `limit`: the oldest of them first"
    );
    assert_eq!(take_seqs(store, ALICE, ROOM_A, 2).await, vec![10]);

    feeder
        .apply(vec![
            insert(message(ROOM_A, 11, BOB, "eleven")),
            insert(message(ROOM_A, 12, BOB, "twelve")),
            Change::DeleteMessage {
                room_id: ROOM_A,
                message_id: message_id(ROOM_A, 11),
                at: T0 + 2_000,
            },
        ])
        .await;
    assert_eq!(
        take_seqs(store, ALICE, ROOM_A, 10).await,
        vec![12],
        "deleted messages are never fetched"
    );

    assert_eq!(
        take_seqs(store, BOB, ROOM_A, 100).await,
        (1..=10).chain([12]).collect::<Vec<_>>(),
        "each caller has its own cursor"
    );
    assert!(
        take_seqs(store, ALICE, ROOM_B, 10).await.is_empty(),
        "each room has its own cursor"
    );
    feeder
        .apply(vec![insert(message(ROOM_B, 1, BOB, "first in B"))])
        .await;
    assert_eq!(take_seqs(store, ALICE, ROOM_B, 10).await, vec![1]);
    assert_eq!(
        take_seqs(store, BOB, ROOM_B, 10).await,
        vec![1],
        "a cursor taken in an empty room starts before the first message"
    );
}

/// `set_fetch_cursor_to_latest` (after a force=1 fetch) makes the next fetch return
/// only newer messages.
pub async fn a_forced_fetch_moves_the_fetch_cursor_to_the_latest_message<S: ReadStore>(store: &S) {
    let mut feeder = Feeder::new(store);
    feeder.apply(two_rooms()).await;
    feeder
        .apply(
            (1..=3)
                .map(|seq| insert(message(ROOM_A, seq, BOB, "m")))
                .collect(),
        )
        .await;

    ok(
        store.set_fetch_cursor_to_latest(ALICE, ROOM_A).await,
        "set_fetch_cursor_to_latest",
    );
    assert!(
        take_seqs(store, ALICE, ROOM_A, 100).await.is_empty(),
        "after a forced fetch nothing is new"
    );
    feeder
        .apply(vec![insert(message(ROOM_A, 4, BOB, "four"))])
        .await;
    assert_eq!(take_seqs(store, ALICE, ROOM_A, 100).await, vec![4]);

    assert_eq!(take_seqs(store, BOB, ROOM_A, 2).await, vec![3, 4]);
    feeder
        .apply(
            (5..=7)
                .map(|seq| insert(message(ROOM_A, seq, CAROL, "m")))
                .collect(),
        )
        .await;
    ok(
        store.set_fetch_cursor_to_latest(BOB, ROOM_A).await,
        "set_fetch_cursor_to_latest",
    );
    assert!(
        take_seqs(store, BOB, ROOM_A, 100).await.is_empty(),
        "a forced fetch also moves an existing cursor forward"
    );
    assert_eq!(
        take_seqs(store, ALICE, ROOM_A, 100).await,
        vec![5, 6, 7],
        "other callers' cursors stay"
    );
}

/// Concurrent fetches by one caller hand out every new message exactly once.
pub async fn concurrent_fetches_never_return_a_message_twice<S: ReadStore>(store: &S) {
    let mut feeder = Feeder::new(store);
    feeder.apply(two_rooms()).await;
    ok(
        store.set_fetch_cursor_to_latest(ALICE, ROOM_A).await,
        "set_fetch_cursor_to_latest",
    );
    feeder
        .apply(
            (1..=8)
                .map(|seq| insert(message(ROOM_A, seq, BOB, "m")))
                .collect(),
        )
        .await;

    let (first, second, third, fourth) = tokio::join!(
        take_seqs(store, ALICE, ROOM_A, 2),
        take_seqs(store, ALICE, ROOM_A, 2),
        take_seqs(store, ALICE, ROOM_A, 2),
        take_seqs(store, ALICE, ROOM_A, 2),
    );
    let mut all: Vec<u64> = [first, second, third, fourth].concat();
    let distinct: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        all.len(),
        "concurrent fetches returned a message twice: {all:?}"
    );
    all.sort_unstable();
    assert_eq!(all, (1..=8).collect::<Vec<_>>());
}

/// A batch whose checkpoint is not above the stored one is skipped entirely.
pub async fn applying_an_old_checkpoint_changes_nothing<S: ReadStore>(store: &S) {
    ok(store.apply(two_rooms(), 5).await, "apply at checkpoint 5");
    assert_eq!(ok(store.checkpoint().await, "checkpoint"), 5);
    let before = dump(store).await;

    for stale in [5, 3, 0] {
        ok(
            store
                .apply(
                    vec![
                        insert(message(ROOM_A, 1, BOB, "replayed")),
                        Change::DeleteRoom { room_id: ROOM_B },
                        put_member(ROOM_A, DAVE, Role::Admin),
                        open(ROOM_A, DAVE, stale),
                        record(vec![room_op(stale, 0, ROOM_A, "message_created")]),
                        put_task(1, ROOM_A, ALICE, BOB, OPEN),
                        put_file(1, ROOM_A, ALICE),
                        Change::SetLink(link(ROOM_A, "stale", false)),
                    ],
                    stale,
                )
                .await,
            "apply at a stale checkpoint",
        );
        assert_eq!(
            dump(store).await,
            before,
            "re-applying checkpoint {stale} after 5 must change nothing"
        );
        assert_eq!(ok(store.checkpoint().await, "checkpoint"), 5);
    }
    assert!(latest_seqs(store, ROOM_A, 10).await.is_empty());
    assert!(
        all_ops_seen(store, DAVE).await.is_empty(),
        "ops and intervals of a stale batch are skipped too"
    );

    ok(
        store
            .apply(vec![insert(message(ROOM_A, 1, BOB, "fresh"))], 6)
            .await,
        "apply at checkpoint 6",
    );
    assert_eq!(ok(store.checkpoint().await, "checkpoint"), 6);
    assert_eq!(latest_seqs(store, ROOM_A, 10).await, vec![1]);
    assert_eq!(counts(store, ALICE, ROOM_A).await, (1, 0));

    ok(store.apply(Vec::new(), 9).await, "apply an empty batch");
    assert_eq!(
        ok(store.checkpoint().await, "checkpoint"),
        9,
        "an empty batch still moves the checkpoint"
    );
}

/// `reset` drops the read models and the checkpoint but keeps fetch cursors.
pub async fn reset_clears_the_read_models_but_keeps_fetch_cursors<S: ReadStore>(
    store: &S,
    empty: &S,
) {
    let batches = || {
        let mut first = two_rooms();
        first.extend([
            open(ROOM_A, ALICE, 1),
            record(vec![
                room_op(1, 0, ROOM_A, "room_created"),
                account_op(1, 1, ALICE, "contact_added"),
            ]),
        ]);
        let mut second: Vec<Change> = (1..=3)
            .map(|seq| insert(message(ROOM_A, seq, BOB, "m")))
            .collect();
        second.extend([
            close(ROOM_A, ALICE, 2),
            record(vec![room_op(2, 0, ROOM_A, "member_removed")]),
        ]);
        vec![first, second]
    };
    let mut feeder = Feeder::new(store);
    for batch in batches() {
        feeder.apply(batch).await;
    }
    assert_eq!(take_seqs(store, ALICE, ROOM_A, 10).await, vec![1, 2, 3]);
    let ops_before = all_ops_seen(store, ALICE).await;
    assert_eq!(ops_before, vec![(1, 0), (1, 1), (2, 0)]);

    ok(store.reset().await, "reset");
    assert_eq!(ok(store.checkpoint().await, "checkpoint"), 0);
    assert_eq!(
        dump(store).await,
        dump(empty).await,
        "after reset the dump is that of an empty store"
    );
    assert!(ok(store.rooms_of(ALICE).await, "rooms_of").is_empty());
    assert!(ok(store.members(ROOM_A).await, "members").is_empty());
    assert!(latest_seqs(store, ROOM_A, 10).await.is_empty());
    assert_eq!(
        ok(
            store.account_by_token_hash(&token_hash(ALICE)).await,
            "account_by_token_hash"
        ),
        None
    );
    assert!(
        all_ops_seen(store, ALICE).await.is_empty(),
        "reset drops the sync ops and membership intervals"
    );

    // Rebuild from the start of the log, plus one message more.
    let mut rebuild = Feeder::new(store);
    for batch in batches() {
        rebuild.apply(batch).await;
    }
    rebuild
        .apply(vec![insert(message(ROOM_A, 4, BOB, "after the rebuild"))])
        .await;
    assert_eq!(ok(store.checkpoint().await, "checkpoint"), 3);
    assert_eq!(
        take_seqs(store, ALICE, ROOM_A, 10).await,
        vec![4],
        "fetch cursors survive a reset: only the message after the rebuild is new"
    );
    assert_eq!(
        all_ops_seen(store, ALICE).await,
        ops_before,
        "the rebuild brings the ops back"
    );
}

/// Two stores fed the same changes dump the same text, whatever the batching; the
/// dump excludes fetch cursors and differs as soon as the models differ.
pub async fn dumps_are_equal_for_the_same_changes_however_they_are_batched<S: ReadStore>(
    one: &S,
    other: &S,
) {
    let batches = scenario();
    let mut one_at_a_time = Feeder::new(one);
    for change in batches.iter().flatten() {
        one_at_a_time.apply(vec![change.clone()]).await;
    }
    let checkpoint = one_at_a_time.checkpoint;
    // The other store gets everything in one batch, reaching the same checkpoint.
    ok(
        other
            .apply(batches.into_iter().flatten().collect(), checkpoint)
            .await,
        "apply the whole scenario at once",
    );

    let dump_one = dump(one).await;
    assert_eq!(
        dump_one,
        dump(other).await,
        "two stores fed the same changes must dump the same text"
    );
    assert_eq!(
        dump(one).await,
        dump_one,
        "dumping twice gives the same text"
    );

    let _ = take_seqs(one, ALICE, ROOM_A, 10).await;
    ok(
        one.set_fetch_cursor_to_latest(BOB, ROOM_C).await,
        "set_fetch_cursor_to_latest",
    );
    assert_eq!(
        dump(one).await,
        dump_one,
        "fetch cursors are not part of the dump"
    );

    let next = checkpoint + 1;
    ok(
        one.apply(vec![read_up_to(BOB, ROOM_A, 1)], next).await,
        "apply",
    );
    ok(
        other.apply(vec![read_up_to(BOB, ROOM_A, 2)], next).await,
        "apply",
    );
    assert_ne!(
        dump(one).await,
        dump(other).await,
        "stores whose read cursors differ must dump differently"
    );

    let next = next + 1;
    ok(
        one.apply(vec![read_up_to(BOB, ROOM_A, 2)], next).await,
        "apply",
    );
    ok(
        other
            .apply(vec![insert(message(ROOM_C, 2, CAROL, "extra"))], next)
            .await,
        "apply",
    );
    assert_ne!(
        dump(one).await,
        dump(other).await,
        "stores whose messages differ must dump differently"
    );
}

/// The adapter's dump equals the in-memory reference store's after the same changes.
pub async fn dump_matches_the_in_memory_reference<S: ReadStore>(store: &S) {
    let reference = MemoryReadStore::new();
    let mut feeder = Feeder::new(store);
    let mut reference_feeder = Feeder::new(&reference);
    for batch in scenario() {
        feeder.apply(batch.clone()).await;
        reference_feeder.apply(batch).await;
        assert_eq!(
            dump(store).await,
            dump(&reference).await,
            "the dump differs from the in-memory reference after checkpoint {}",
            feeder.checkpoint
        );
    }
    for account in [ALICE, BOB, CAROL, DAVE] {
        assert_eq!(
            ok(store.rooms_of(account).await, "rooms_of"),
            ok(reference.rooms_of(account).await, "rooms_of"),
            "rooms_of({account}) differs from the in-memory reference"
        );
        assert_eq!(
            ok(store.status(account).await, "status"),
            ok(reference.status(account).await, "status"),
            "status({account}) differs from the in-memory reference"
        );
        for (after, up_to, limit) in [(0, Position::MAX, usize::MAX), (0, 6, 3), (1, 5, 1)] {
            assert_eq!(
                ok(store.ops_for(account, after, up_to, limit).await, "ops_for"),
                ok(
                    reference.ops_for(account, after, up_to, limit).await,
                    "ops_for"
                ),
                "ops_for({account}, {after}, {up_to}, {limit}) differs from the in-memory \
                 reference"
            );
        }
    }
    // Many accounts at once (one of them twice, from two revisions) answer as each
    // alone does, the limit finishing a position as ops_for does.
    let requests = [
        (ALICE, 0),
        (BOB, 1),
        (CAROL, 0),
        (DAVE, 2),
        (ALICE, 3),
        (BOB, 0),
    ];
    for (up_to, limit) in [(Position::MAX, usize::MAX), (6, 3), (5, 1), (4, 100)] {
        let together = ok(
            store.ops_for_accounts(&requests, up_to, limit).await,
            "ops_for_accounts",
        );
        let mut alone = Vec::new();
        for (account, after) in requests {
            alone.push(ok(
                reference.ops_for(account, after, up_to, limit).await,
                "ops_for",
            ));
        }
        assert_eq!(
            together, alone,
            "ops_for_accounts(…, {up_to}, {limit}) differs from ops_for one by one"
        );
    }
    for room in [ROOM_A, ROOM_B, ROOM_C] {
        assert_eq!(
            ok(store.latest_messages(room, 100).await, "latest_messages"),
            ok(
                reference.latest_messages(room, 100).await,
                "latest_messages"
            ),
            "latest_messages({room}) differs from the in-memory reference"
        );
        assert_eq!(
            ok(store.members(room).await, "members"),
            ok(reference.members(room).await, "members"),
            "members({room}) differs from the in-memory reference"
        );
        for task_filter in task_filters() {
            assert_eq!(
                ok(
                    store.tasks_of_room(room, &task_filter, 100).await,
                    "tasks_of_room"
                ),
                ok(
                    reference.tasks_of_room(room, &task_filter, 100).await,
                    "tasks_of_room"
                ),
                "tasks_of_room({room}, {task_filter:?}) differs from the in-memory reference"
            );
        }
        for id in 1..=6 {
            assert_eq!(
                ok(store.task(room, TaskId(id)).await, "task"),
                ok(reference.task(room, TaskId(id)).await, "task"),
                "task({room}, {id}) differs from the in-memory reference"
            );
        }
        for uploader in [None, Some(ALICE), Some(DAVE)] {
            assert_eq!(
                ok(
                    store.files_of_room(room, uploader, 100).await,
                    "files_of_room"
                ),
                ok(
                    reference.files_of_room(room, uploader, 100).await,
                    "files_of_room"
                ),
                "files_of_room({room}, {uploader:?}) differs from the in-memory reference"
            );
        }
        for id in 1..=3 {
            assert_eq!(
                ok(store.file(room, FileId(id)).await, "file"),
                ok(reference.file(room, FileId(id)).await, "file"),
                "file({room}, {id}) differs from the in-memory reference"
            );
        }
        assert_eq!(
            ok(store.link_of_room(room).await, "link_of_room"),
            ok(reference.link_of_room(room).await, "link_of_room"),
            "link_of_room({room}) differs from the in-memory reference"
        );
        assert_eq!(
            ok(store.join_requests(room).await, "join_requests"),
            ok(reference.join_requests(room).await, "join_requests"),
            "join_requests({room}) differs from the in-memory reference"
        );
    }
    for account in [ALICE, BOB, CAROL, DAVE] {
        for task_filter in task_filters() {
            assert_eq!(
                ok(
                    store.tasks_of_account(account, &task_filter, 100).await,
                    "tasks_of_account"
                ),
                ok(
                    reference.tasks_of_account(account, &task_filter, 100).await,
                    "tasks_of_account"
                ),
                "tasks_of_account({account}, {task_filter:?}) differs from the in-memory \
                 reference"
            );
        }
        assert_eq!(
            ok(store.contacts(account).await, "contacts"),
            ok(reference.contacts(account).await, "contacts"),
            "contacts({account}) differs from the in-memory reference"
        );
        assert_eq!(
            ok(store.incoming_requests(account).await, "incoming_requests"),
            ok(
                reference.incoming_requests(account).await,
                "incoming_requests"
            ),
            "incoming_requests({account}) differs from the in-memory reference"
        );
    }
    for id in 1..=3 {
        assert_eq!(
            ok(
                store.contact_request(RequestId(id)).await,
                "contact_request"
            ),
            ok(
                reference.contact_request(RequestId(id)).await,
                "contact_request"
            ),
            "contact_request({id}) differs from the in-memory reference"
        );
    }
    for code in ["room-a", "room-b", "none"] {
        assert_eq!(
            ok(store.link_by_code(code).await, "link_by_code"),
            ok(reference.link_by_code(code).await, "link_by_code"),
            "link_by_code({code}) differs from the in-memory reference"
        );
    }
}

/// Task filters that the reference comparison tries.
fn task_filters() -> Vec<TaskFilter> {
    vec![
        TaskFilter::default(),
        filter(Some(ALICE), None, None),
        filter(None, Some(BOB), None),
        filter(None, None, Some(OPEN)),
        filter(Some(CAROL), Some(ALICE), Some(OPEN)),
    ]
}

/// A member sees a room's ops from its interval's `from` (inclusive) to its `to`
/// (inclusive: the op that removed it, nothing after) and again from a new interval's
/// `from`; opening an open interval or closing none changes nothing.
pub async fn ops_are_visible_during_membership_intervals<S: ReadStore>(store: &S) {
    apply_at(
        store,
        1,
        vec![
            open(ROOM_A, ALICE, 1),
            open(ROOM_A, CAROL, 1),
            record(vec![room_op(1, 0, ROOM_A, "room_created")]),
        ],
    )
    .await;
    apply_at(
        store,
        2,
        vec![
            open(ROOM_B, ALICE, 2),
            record(vec![room_op(2, 0, ROOM_B, "room_created")]),
        ],
    )
    .await;
    apply_at(
        store,
        3,
        vec![record(vec![room_op(3, 0, ROOM_A, "message_created")])],
    )
    .await;
    apply_at(
        store,
        4,
        vec![
            open(ROOM_A, BOB, 4),
            record(vec![room_op(4, 0, ROOM_A, "member_added")]),
        ],
    )
    .await;

    let before = models_dump(store).await;
    apply_at(store, 5, vec![open(ROOM_A, ALICE, 5), open(ROOM_A, BOB, 5)]).await;
    assert_eq!(
        models_dump(store).await,
        before,
        "opening an interval that is already open changes nothing"
    );
    apply_at(
        store,
        6,
        vec![close(ROOM_A, DAVE, 6), close(ROOM_B, CAROL, 6)],
    )
    .await;
    assert_eq!(
        models_dump(store).await,
        before,
        "closing where no interval is open changes nothing"
    );

    apply_at(
        store,
        7,
        vec![record(vec![room_op(7, 0, ROOM_A, "message_created")])],
    )
    .await;
    apply_at(
        store,
        8,
        vec![
            close(ROOM_A, CAROL, 8),
            record(vec![room_op(8, 0, ROOM_A, "member_removed")]),
        ],
    )
    .await;
    apply_at(
        store,
        9,
        vec![record(vec![room_op(9, 0, ROOM_A, "message_created")])],
    )
    .await;
    apply_at(
        store,
        10,
        vec![
            open(ROOM_A, CAROL, 10),
            record(vec![room_op(10, 0, ROOM_A, "member_added")]),
        ],
    )
    .await;
    apply_at(
        store,
        11,
        vec![record(vec![room_op(11, 0, ROOM_A, "message_created")])],
    )
    .await;
    apply_at(
        store,
        12,
        vec![record(vec![room_op(12, 0, ROOM_B, "message_created")])],
    )
    .await;

    assert_eq!(
        positions_seen(store, ALICE).await,
        vec![1, 2, 3, 4, 7, 8, 9, 10, 11, 12],
        "Alice, a member of both rooms throughout, sees every op"
    );
    assert_eq!(
        positions_seen(store, BOB).await,
        vec![4, 7, 8, 9, 10, 11],
        "Bob, who joined room A at 4, sees its ops from 4 on and none of room B"
    );
    assert_eq!(
        positions_seen(store, CAROL).await,
        vec![1, 3, 4, 7, 8, 10, 11],
        "Carol sees room A's ops up to her removal at 8 (included), none at 9, and \
         again from her re-adding at 10"
    );
    assert!(
        positions_seen(store, DAVE).await.is_empty(),
        "a non-member sees nothing"
    );
    assert_eq!(
        ops_seen(store, CAROL, 4, 10, usize::MAX).await,
        vec![(7, 0), (8, 0), (10, 0)],
        "the bounds and the intervals combine"
    );
    assert_eq!(
        ok(store.ops_for(BOB, 3, 4, 10).await, "ops_for"),
        vec![room_op(4, 0, ROOM_A, "member_added")],
        "an op comes back whole"
    );
    assert_eq!(
        ok(store.ops_retained_from().await, "ops_retained_from"),
        0,
        "nothing is pruned"
    );
}

/// Intervals of one member that overlap (removed and re-added by the same event, or
/// reopened at the same `from`) show each op once.
pub async fn overlapping_membership_intervals_show_an_op_once<S: ReadStore>(store: &S) {
    apply_at(
        store,
        1,
        vec![
            open(ROOM_A, ALICE, 1),
            record(vec![room_op(1, 0, ROOM_A, "room_created")]),
        ],
    )
    .await;
    apply_at(
        store,
        2,
        vec![
            close(ROOM_A, ALICE, 2),
            open(ROOM_A, ALICE, 2),
            record(vec![
                room_op(2, 0, ROOM_A, "member_removed"),
                room_op(2, 1, ROOM_A, "member_added"),
            ]),
        ],
    )
    .await;
    apply_at(
        store,
        3,
        vec![
            close(ROOM_A, ALICE, 3),
            record(vec![room_op(3, 0, ROOM_A, "member_removed")]),
        ],
    )
    .await;
    apply_at(
        store,
        4,
        vec![
            open(ROOM_A, ALICE, 4),
            close(ROOM_A, ALICE, 4),
            open(ROOM_A, ALICE, 4),
            record(vec![room_op(4, 0, ROOM_A, "member_added")]),
        ],
    )
    .await;
    apply_at(
        store,
        5,
        vec![record(vec![room_op(5, 0, ROOM_A, "message_created")])],
    )
    .await;

    assert_eq!(
        all_ops_seen(store, ALICE).await,
        vec![(1, 0), (2, 0), (2, 1), (3, 0), (4, 0), (5, 0)],
        "every op once, in order; reopening at the same `from` reopens the interval"
    );
    assert_eq!(
        ops_seen(store, ALICE, 0, 5, 2).await,
        vec![(1, 0), (2, 0), (2, 1)],
        "overlapping intervals do not make a position look longer than it is"
    );
}

/// A targeted op of a room is seen only by its target, and only while it is a member;
/// an account-level op is seen by its target, member of any room or not.
pub async fn targeted_and_account_level_ops_are_seen_only_by_their_target<S: ReadStore>(store: &S) {
    apply_at(
        store,
        1,
        vec![
            open(ROOM_A, ALICE, 1),
            open(ROOM_A, BOB, 1),
            record(vec![room_op(1, 0, ROOM_A, "room_created")]),
        ],
    )
    .await;
    apply_at(
        store,
        2,
        vec![record(vec![
            room_op(2, 0, ROOM_A, "message_created"),
            targeted(room_op(2, 1, ROOM_A, "mention"), BOB),
            targeted(room_op(2, 2, ROOM_A, "mention"), DAVE),
        ])],
    )
    .await;
    apply_at(
        store,
        3,
        vec![record(vec![targeted(
            room_op(3, 0, ROOM_A, "read_changed"),
            ALICE,
        )])],
    )
    .await;
    let untargeted_account_op = OpRecord {
        target: None,
        ..account_op(4, 2, ALICE, "broadcast")
    };
    apply_at(
        store,
        4,
        vec![record(vec![
            account_op(4, 0, ALICE, "contact_added"),
            account_op(4, 1, DAVE, "contact_added"),
            untargeted_account_op,
        ])],
    )
    .await;
    apply_at(
        store,
        5,
        vec![
            close(ROOM_A, BOB, 5),
            record(vec![room_op(5, 0, ROOM_A, "member_removed")]),
        ],
    )
    .await;
    apply_at(
        store,
        6,
        vec![record(vec![targeted(
            room_op(6, 0, ROOM_A, "mention"),
            BOB,
        )])],
    )
    .await;
    apply_at(
        store,
        7,
        vec![record(vec![account_op(7, 0, BOB, "contact_added")])],
    )
    .await;

    assert_eq!(
        all_ops_seen(store, ALICE).await,
        vec![(1, 0), (2, 0), (3, 0), (4, 0), (5, 0)],
        "Alice sees the untargeted ops, those targeted at her and her account-level op"
    );
    assert_eq!(
        ok(
            store.ops_for(BOB, 0, Position::MAX, usize::MAX).await,
            "ops_for"
        ),
        vec![
            room_op(1, 0, ROOM_A, "room_created"),
            room_op(2, 0, ROOM_A, "message_created"),
            targeted(room_op(2, 1, ROOM_A, "mention"), BOB),
            room_op(5, 0, ROOM_A, "member_removed"),
            account_op(7, 0, BOB, "contact_added"),
        ],
        "Bob sees his mention while a member, not the one after his removal, and his \
         account-level op"
    );
    assert_eq!(
        all_ops_seen(store, DAVE).await,
        vec![(4, 1)],
        "a non-member sees only its account-level ops, not room ops targeted at it"
    );
    assert!(
        all_ops_seen(store, CAROL).await.is_empty(),
        "an account-level op without a target is seen by nobody"
    );
}

/// Ops come ordered by (position, index) whatever order they were recorded in, with
/// `after < position <= up_to`.
pub async fn ops_come_by_position_and_index_within_the_bounds<S: ReadStore>(store: &S) {
    apply_at(
        store,
        10,
        vec![
            open(ROOM_A, ALICE, 1),
            open(ROOM_B, ALICE, 1),
            record(vec![
                room_op(5, 1, ROOM_B, "message_created"),
                room_op(5, 0, ROOM_B, "message_created"),
            ]),
            record(vec![
                room_op(3, 2, ROOM_A, "message_created"),
                room_op(3, 0, ROOM_A, "message_created"),
                room_op(3, 1, ROOM_A, "message_created"),
            ]),
            record(vec![room_op(7, 0, ROOM_A, "message_created")]),
            record(vec![account_op(4, 0, ALICE, "contact_added")]),
            record(vec![
                room_op(2, 1, ROOM_B, "message_created"),
                room_op(2, 0, ROOM_A, "message_created"),
            ]),
            record(vec![room_op(1, 0, ROOM_A, "room_created")]),
        ],
    )
    .await;

    let all = vec![
        (1, 0),
        (2, 0),
        (2, 1),
        (3, 0),
        (3, 1),
        (3, 2),
        (4, 0),
        (5, 0),
        (5, 1),
        (7, 0),
    ];
    assert_eq!(
        all_ops_seen(store, ALICE).await,
        all,
        "ops of all rooms and account-level ops are merged by (position, index)"
    );
    assert_eq!(
        ops_seen(store, ALICE, 2, 5, usize::MAX).await,
        vec![(3, 0), (3, 1), (3, 2), (4, 0), (5, 0), (5, 1)],
        "`after` is exclusive and `up_to` inclusive"
    );
    assert_eq!(ops_seen(store, ALICE, 0, 1, 100).await, vec![(1, 0)]);
    assert_eq!(
        ops_seen(store, ALICE, 5, 6, 100).await,
        Vec::<(Position, u32)>::new(),
        "a range without ops is empty"
    );
    assert_eq!(
        ops_seen(store, ALICE, 6, Position::MAX, 100).await,
        vec![(7, 0)]
    );
    for (after, up_to) in [
        (5, 5),
        (6, 3),
        (0, 0),
        (7, 7),
        (Position::MAX, Position::MAX),
    ] {
        assert!(
            ops_seen(store, ALICE, after, up_to, 100).await.is_empty(),
            "ops_for({after}, {up_to}) must be empty"
        );
    }
}

/// `limit` bounds the number of ops, but the ops of the last position returned always
/// come complete (only those the account sees), so that paging by position loses
/// nothing.
pub async fn a_limit_never_splits_the_ops_of_one_position<S: ReadStore>(store: &S) {
    apply_at(
        store,
        1,
        vec![
            open(ROOM_A, ALICE, 1),
            open(ROOM_A, BOB, 1),
            record(vec![
                room_op(1, 0, ROOM_A, "room_created"),
                targeted(room_op(1, 1, ROOM_A, "mention"), BOB),
                room_op(1, 2, ROOM_A, "member_added"),
            ]),
        ],
    )
    .await;
    apply_at(
        store,
        2,
        vec![record(vec![room_op(2, 0, ROOM_A, "message_created")])],
    )
    .await;
    apply_at(
        store,
        3,
        vec![record(vec![
            room_op(3, 0, ROOM_A, "message_created"),
            account_op(3, 1, ALICE, "contact_added"),
            targeted(room_op(3, 2, ROOM_A, "mention"), ALICE),
        ])],
    )
    .await;
    apply_at(
        store,
        4,
        vec![record(vec![room_op(4, 0, ROOM_A, "message_created")])],
    )
    .await;

    let all = vec![(1, 0), (1, 2), (2, 0), (3, 0), (3, 1), (3, 2), (4, 0)];
    assert_eq!(all_ops_seen(store, ALICE).await, all);
    let expected_by_limit: [(usize, usize); 8] = [
        (0, 0),
        (1, 2),
        (2, 2),
        (3, 3),
        (4, 6),
        (5, 6),
        (6, 6),
        (7, 7),
    ];
    for (limit, count) in expected_by_limit {
        assert_eq!(
            ops_seen(store, ALICE, 0, Position::MAX, limit).await,
            all[..count].to_vec(),
            "with limit {limit} Alice gets the first {count} ops: the position the \
             limit cuts into comes complete"
        );
    }
    assert_eq!(
        ops_seen(store, ALICE, 0, 3, 5).await,
        all[..6].to_vec(),
        "the limit and up_to combine"
    );
    assert_eq!(
        ops_seen(store, BOB, 0, Position::MAX, 1).await,
        vec![(1, 0), (1, 1), (1, 2)],
        "Bob's first position includes his mention"
    );

    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = ops_seen(store, ALICE, after, 4, 1).await;
        let Some(&(last, _)) = page.last() else {
            break;
        };
        assert!(
            page.iter().all(|&(position, _)| position == last),
            "with limit 1 each page is one whole position: {page:?}"
        );
        paged.extend(page);
        after = last;
    }
    assert_eq!(paged, all, "paging by position returns every op once");
}

/// `DeleteRoom` keeps the room's ops and membership intervals: members still fetch
/// the room's history, and intervals stay open until closed.
pub async fn deleting_a_room_keeps_its_ops_and_membership_intervals<S: ReadStore>(store: &S) {
    let mut first = two_rooms();
    first.extend([
        open(ROOM_A, ALICE, 1),
        open(ROOM_A, BOB, 1),
        open(ROOM_B, ALICE, 1),
        record(vec![
            room_op(1, 0, ROOM_A, "room_created"),
            room_op(1, 1, ROOM_B, "room_created"),
        ]),
    ]);
    apply_at(store, 1, first).await;
    apply_at(
        store,
        2,
        vec![
            insert(message(ROOM_A, 1, BOB, "hello")),
            record(vec![room_op(2, 0, ROOM_A, "message_created")]),
        ],
    )
    .await;
    apply_at(
        store,
        3,
        vec![
            Change::DeleteRoom { room_id: ROOM_A },
            close(ROOM_A, ALICE, 3),
            close(ROOM_A, BOB, 3),
            record(vec![room_op(3, 0, ROOM_A, "room_deleted")]),
        ],
    )
    .await;
    apply_at(
        store,
        4,
        vec![
            Change::DeleteRoom { room_id: ROOM_B },
            record(vec![room_op(4, 0, ROOM_B, "room_deleted")]),
        ],
    )
    .await;
    apply_at(
        store,
        5,
        vec![record(vec![
            room_op(5, 0, ROOM_A, "message_created"),
            room_op(5, 1, ROOM_B, "message_created"),
        ])],
    )
    .await;

    assert_eq!(ok(store.room_of(ALICE, ROOM_A).await, "room_of"), None);
    assert!(ok(store.rooms_of(ALICE).await, "rooms_of").is_empty());
    assert_eq!(
        all_ops_seen(store, BOB).await,
        vec![(1, 0), (2, 0), (3, 0)],
        "a deleted room's ops stay, up to and including the deletion"
    );
    assert_eq!(
        all_ops_seen(store, ALICE).await,
        vec![(1, 0), (1, 1), (2, 0), (3, 0), (4, 0), (5, 1)],
        "DeleteRoom leaves intervals alone: only CloseMembership closes them"
    );
    let dump = models_dump(store).await;
    assert!(
        dump.lines().any(|line| line.starts_with("op 3 0 "))
            && dump
                .lines()
                .any(|line| line.starts_with("interval 1 100 1 ")),
        "the dump keeps the deleted room's ops and intervals:\n{dump}"
    );
}

/// The dump includes sync ops and membership intervals: stores that differ only in
/// them dump differently, and the same ones dump the same.
pub async fn dumps_include_ops_and_membership_intervals<S: ReadStore>(one: &S, other: &S) {
    let batch = || {
        vec![
            open(ROOM_A, ALICE, 1),
            record(vec![
                room_op(1, 0, ROOM_A, "room_created"),
                account_op(1, 1, BOB, "contact_added"),
            ]),
        ]
    };
    apply_at(one, 1, batch()).await;
    apply_at(other, 1, batch()).await;
    assert_eq!(dump(one).await, dump(other).await);
    assert!(
        !models_dump(one).await.is_empty(),
        "ops and intervals are in the dump"
    );

    apply_at(one, 2, vec![close(ROOM_A, ALICE, 2)]).await;
    apply_at(other, 2, vec![close(ROOM_A, ALICE, 3)]).await;
    assert_ne!(
        dump(one).await,
        dump(other).await,
        "stores whose intervals end at different positions must dump differently"
    );
    apply_at(one, 3, vec![close(ROOM_A, ALICE, 9)]).await;
    assert_ne!(dump(one).await, dump(other).await);

    apply_at(one, 4, vec![open(ROOM_A, ALICE, 4), open(ROOM_B, BOB, 4)]).await;
    apply_at(other, 4, vec![open(ROOM_B, BOB, 4), open(ROOM_A, ALICE, 4)]).await;
    let mut third_op = room_op(4, 0, ROOM_B, "message_created");
    apply_at(one, 5, vec![record(vec![third_op.clone()])]).await;
    third_op.payload.push(' ');
    apply_at(other, 5, vec![record(vec![third_op.clone()])]).await;
    assert_ne!(
        models_dump(one).await,
        models_dump(other).await,
        "stores whose op payloads differ must dump differently"
    );

    // Recording an op again replaces it.
    apply_at(one, 6, vec![record(vec![third_op])]).await;
    apply_at(other, 6, Vec::new()).await;
    assert_eq!(
        dump(one).await.replace("to=2\n", "to=3\n"),
        dump(other).await,
        "stores with the same ops and intervals dump the same"
    );
}

// ---------------------------------------------------------------------------------
// Tasks, files, contacts, contact requests, invitation links and join requests
// ---------------------------------------------------------------------------------

/// `tasks_of_room` lists a room's tasks by task id, filtered by assignee, assigner and
/// status (`None` = any), at most `limit`; each view carries the room's name and icon
/// and the names of assignee and assigner (empty if unknown). `task` finds a task only
/// in its own room.
pub async fn tasks_of_a_room_are_filtered_and_listed_by_task_id<S: ReadStore>(store: &S) {
    let mut feeder = Feeder::new(store);
    feeder.apply(two_rooms()).await;
    feeder
        .apply(vec![
            put_task(30, ROOM_A, BOB, ALICE, OPEN),
            put_task(10, ROOM_A, ALICE, BOB, OPEN),
            put_task(20, ROOM_A, CAROL, ALICE, DONE),
            put_task(40, ROOM_B, ALICE, ALICE, OPEN),
            put_task(50, ROOM_A, DAVE, DAVE, OPEN),
            put_task(60, RoomId(999), ALICE, BOB, OPEN),
        ])
        .await;

    let all = TaskFilter::default();
    assert_eq!(
        room_task_ids(store, ROOM_A, &all, 100).await,
        vec![10, 20, 30, 50],
        "tasks_of_room lists the room's tasks by task id"
    );
    let views = ok(
        store.tasks_of_room(ROOM_A, &all, 100).await,
        "tasks_of_room",
    );
    assert_eq!(views[0].task, task(10, ROOM_A, ALICE, BOB, OPEN));
    assert_eq!(
        (
            views[0].room_name.as_str(),
            views[0].room_icon_preset.as_str(),
            views[0].account_name.as_str(),
            views[0].assigned_by_name.as_str()
        ),
        ("Room A", "group", "Alice", "Bob"),
        "a task view carries its room's name and icon and the assignee's and assigner's names"
    );
    assert_eq!(
        (
            views[3].account_name.as_str(),
            views[3].assigned_by_name.as_str()
        ),
        ("", ""),
        "names of unknown accounts are empty"
    );

    for (task_filter, expected, what) in [
        (filter(Some(ALICE), None, None), vec![10], "assignee Alice"),
        (
            filter(None, Some(ALICE), None),
            vec![20, 30],
            "assigner Alice",
        ),
        (filter(None, None, Some(DONE)), vec![20], "done"),
        (filter(None, None, Some(OPEN)), vec![10, 30, 50], "open"),
        (
            filter(None, Some(ALICE), Some(OPEN)),
            vec![30],
            "open, by Alice",
        ),
        (
            filter(Some(CAROL), Some(ALICE), Some(DONE)),
            vec![20],
            "Carol's done, by Alice",
        ),
        (
            filter(Some(ALICE), None, Some(DONE)),
            vec![],
            "Alice's done",
        ),
        (filter(Some(DAVE), Some(DAVE), None), vec![50], "Dave's"),
    ] {
        assert_eq!(
            room_task_ids(store, ROOM_A, &task_filter, 100).await,
            expected,
            "tasks_of_room(A) filtered to {what}"
        );
    }
    assert_eq!(room_task_ids(store, ROOM_A, &all, 2).await, vec![10, 20]);
    assert_eq!(
        room_task_ids(store, ROOM_A, &filter(None, None, Some(OPEN)), 2).await,
        vec![10, 30],
        "the limit applies after the filter"
    );
    assert!(room_task_ids(store, ROOM_A, &all, 0).await.is_empty());
    assert_eq!(room_task_ids(store, ROOM_B, &all, 100).await, vec![40]);
    assert!(room_task_ids(store, ROOM_C, &all, 100).await.is_empty());

    assert_eq!(
        ok(store.task(ROOM_A, TaskId(10)).await, "task"),
        Some(views[0].clone()),
        "task returns the same view as tasks_of_room"
    );
    assert_eq!(
        ok(store.task(ROOM_B, TaskId(10)).await, "task"),
        None,
        "a task is not found through another room"
    );
    assert_eq!(ok(store.task(ROOM_A, TaskId(99)).await, "task"), None);
    let orphan = ok(store.task(RoomId(999), TaskId(60)).await, "task")
        .unwrap_or_else(|| panic!("a task of an unknown room is still found in it"));
    assert_eq!(
        (orphan.room_name.as_str(), orphan.room_icon_preset.as_str()),
        ("", ""),
        "the room name and icon of an unknown room are empty"
    );

    feeder
        .apply(vec![
            Change::UpdateRoom {
                room_id: ROOM_A,
                name: Some("Renamed".to_owned()),
                description: None,
                icon_preset: Some("star".to_owned()),
                at: T0 + 5,
            },
            Change::PutAccount(account(BOB, "Robert")),
            Change::PutAccount(account(DAVE, "Dave")),
        ])
        .await;
    let renamed = ok(store.task(ROOM_A, TaskId(10)).await, "task")
        .unwrap_or_else(|| panic!("task 10 is still in room A"));
    assert_eq!(
        (
            renamed.room_name.as_str(),
            renamed.room_icon_preset.as_str(),
            renamed.assigned_by_name.as_str()
        ),
        ("Renamed", "star", "Robert"),
        "names are joined at query time"
    );
    let dave_task = ok(store.task(ROOM_A, TaskId(50)).await, "task")
        .unwrap_or_else(|| panic!("task 50 is still in room A"));
    assert_eq!(dave_task.account_name, "Dave");
}

/// `SetTaskStatus` changes one task's status (and nothing if the task is unknown);
/// `PutTask` replaces a task by id, even moving it to another room.
pub async fn task_status_changes_and_replacements_apply_in_place<S: ReadStore>(store: &S) {
    let mut feeder = Feeder::new(store);
    feeder.apply(two_rooms()).await;
    feeder
        .apply(vec![
            put_task(1, ROOM_A, ALICE, BOB, OPEN),
            put_task(2, ROOM_A, BOB, ALICE, OPEN),
        ])
        .await;

    feeder.apply(vec![set_task_status(1, DONE)]).await;
    assert_eq!(
        ok(store.task(ROOM_A, TaskId(1)).await, "task").map(|view| view.task),
        Some(task(1, ROOM_A, ALICE, BOB, DONE)),
        "SetTaskStatus changes only the status"
    );
    assert_eq!(
        room_task_ids(store, ROOM_A, &filter(None, None, Some(OPEN)), 10).await,
        vec![2]
    );
    let before = models_dump(store).await;
    feeder.apply(vec![set_task_status(99, OPEN)]).await;
    assert_eq!(
        models_dump(store).await,
        before,
        "SetTaskStatus of an unknown task changes nothing"
    );
    assert_eq!(
        ok(store.task(ROOM_A, TaskId(99)).await, "task"),
        None,
        "SetTaskStatus does not create a task"
    );

    let mut moved = task(2, ROOM_B, CAROL, BOB, DONE);
    moved.body = "moved".to_owned();
    feeder.apply(vec![Change::PutTask(moved.clone())]).await;
    assert_eq!(
        room_task_ids(store, ROOM_A, &TaskFilter::default(), 10).await,
        vec![1],
        "a replaced task leaves its old room"
    );
    assert_eq!(
        room_task_ids(store, ROOM_B, &TaskFilter::default(), 10).await,
        vec![2]
    );
    assert_eq!(ok(store.task(ROOM_A, TaskId(2)).await, "task"), None);
    assert_eq!(
        ok(store.task(ROOM_B, TaskId(2)).await, "task").map(|view| view.task),
        Some(moved),
        "PutTask replaces the whole row"
    );
    assert_eq!(task_counts(store, BOB, ROOM_A).await, (0, 1, 0));
    assert_eq!(task_counts(store, BOB, ROOM_B).await, (0, 1, 0));
}

/// A room view's `mytask_num` counts the room's open tasks assigned to the viewer,
/// `task_num` every task of the room whatever its status or assignee, `file_num` the
/// room's files; all derived at query time.
pub async fn rooms_derive_task_and_file_counts_per_viewer<S: ReadStore>(store: &S) {
    let mut feeder = Feeder::new(store);
    feeder.apply(two_rooms()).await;
    feeder
        .apply(vec![
            put_task(1, ROOM_A, ALICE, BOB, OPEN),
            put_task(2, ROOM_A, ALICE, ALICE, OPEN),
            put_task(3, ROOM_A, ALICE, BOB, DONE),
            put_task(4, ROOM_A, BOB, ALICE, OPEN),
            put_task(5, ROOM_B, BOB, ALICE, OPEN),
            put_task(6, ROOM_B, BOB, BOB, DONE),
            put_task(7, ROOM_B, CAROL, BOB, OPEN),
            put_file(1, ROOM_A, ALICE),
            put_file(2, ROOM_A, BOB),
            put_file(3, ROOM_A, DAVE),
        ])
        .await;

    assert_eq!(
        task_counts(store, ALICE, ROOM_A).await,
        (2, 4, 3),
        "Alice in A: 2 open tasks of hers (the done one does not count), 4 tasks, 3 files"
    );
    assert_eq!(task_counts(store, BOB, ROOM_A).await, (1, 4, 3));
    assert_eq!(
        task_counts(store, CAROL, ROOM_A).await,
        (0, 4, 3),
        "a viewer without tasks still sees the room's totals"
    );
    assert_eq!(
        task_counts(store, BOB, ROOM_B).await,
        (1, 3, 0),
        "Bob in B: his done task and Carol's do not count as his"
    );
    assert_eq!(task_counts(store, ALICE, ROOM_B).await, (0, 3, 0));
    for account in [ALICE, BOB, CAROL] {
        let listed = ok(store.rooms_of(account).await, "rooms_of");
        for room in &listed {
            assert_eq!(
                Some(room.clone()),
                ok(store.room_of(account, room.room.room_id).await, "room_of"),
                "rooms_of and room_of derive the same counts"
            );
        }
    }

    feeder
        .apply(vec![set_task_status(1, DONE), set_task_status(3, OPEN)])
        .await;
    assert_eq!(task_counts(store, ALICE, ROOM_A).await, (2, 4, 3));
    feeder
        .apply(vec![
            set_task_status(2, DONE),
            put_file(4, ROOM_B, ALICE),
            put_task(8, ROOM_A, DAVE, DAVE, OPEN),
        ])
        .await;
    assert_eq!(task_counts(store, ALICE, ROOM_A).await, (1, 5, 3));
    assert_eq!(task_counts(store, ALICE, ROOM_B).await, (0, 3, 1));
    feeder
        .apply(vec![put_task(4, ROOM_A, ALICE, ALICE, OPEN)])
        .await;
    assert_eq!(
        task_counts(store, ALICE, ROOM_A).await,
        (2, 5, 3),
        "a replaced task counts once, for its new assignee"
    );
    assert_eq!(task_counts(store, BOB, ROOM_A).await, (0, 5, 3));
    assert_eq!(
        view(store, ALICE, ROOM_A).await.room,
        room(ROOM_A, "Room A"),
        "tasks and files change no room row"
    );
}

/// `status` adds `mytask_room_num` (rooms with an open task assigned to the account)
/// and `mytask_num` (those open tasks) over the rooms the account is a member of.
pub async fn status_totals_count_open_tasks_in_the_accounts_rooms<S: ReadStore>(store: &S) {
    let mut feeder = Feeder::new(store);
    feeder.apply(two_rooms()).await;
    feeder
        .apply(vec![
            Change::PutRoom(room(ROOM_C, "Room C")),
            put_member(ROOM_C, CAROL, Role::Admin),
            put_task(1, ROOM_A, ALICE, BOB, OPEN),
            put_task(2, ROOM_A, ALICE, BOB, OPEN),
            put_task(3, ROOM_B, ALICE, BOB, OPEN),
            put_task(4, ROOM_B, ALICE, BOB, DONE),
            put_task(5, ROOM_A, BOB, ALICE, DONE),
            put_task(6, ROOM_C, ALICE, CAROL, OPEN),
            put_task(7, ROOM_B, CAROL, ALICE, OPEN),
        ])
        .await;

    assert_eq!(
        task_totals(store, ALICE).await,
        (2, 3),
        "Alice: 2 open in A, 1 in B; the done one and room C's (not hers) do not count"
    );
    assert_eq!(
        task_totals(store, BOB).await,
        (0, 0),
        "Bob's only task is done"
    );
    assert_eq!(
        task_totals(store, CAROL).await,
        (0, 0),
        "Carol's task is in room B, which she is not a member of"
    );
    assert_eq!(task_totals(store, DAVE).await, (0, 0));
    let status = ok(store.status(ALICE).await, "status");
    assert_eq!(
        (status.unread_num, status.unread_room_num),
        (0, 0),
        "tasks are not messages"
    );

    feeder
        .apply(vec![put_member(ROOM_B, CAROL, Role::Member)])
        .await;
    assert_eq!(
        task_totals(store, CAROL).await,
        (1, 1),
        "joining a room brings its open tasks into the totals"
    );
    feeder
        .apply(vec![
            Change::RemoveMember {
                room_id: ROOM_A,
                account_id: ALICE,
            },
            set_task_status(3, DONE),
        ])
        .await;
    assert_eq!(
        task_totals(store, ALICE).await,
        (0, 0),
        "leaving a room takes its tasks out of the totals"
    );
    feeder
        .apply(vec![put_member(ROOM_A, ALICE, Role::Member)])
        .await;
    assert_eq!(
        task_totals(store, ALICE).await,
        (1, 2),
        "rejoining brings the tasks that stayed in the room back"
    );

    // A membership in a room without a room row counts nowhere, as in rooms_of.
    feeder
        .apply(vec![
            put_member(RoomId(999), ALICE, Role::Member),
            put_task(8, RoomId(999), ALICE, BOB, OPEN),
        ])
        .await;
    assert_eq!(task_totals(store, ALICE).await, (1, 2));
}

/// `tasks_of_account` lists the tasks assigned to the account in the rooms it is
/// currently a member of, by task id, filtered by assigner and status (the filter's
/// assignee is ignored), at most `limit`; its open tasks are what `status` counts.
pub async fn tasks_of_an_account_come_from_the_rooms_it_is_a_member_of<S: ReadStore>(store: &S) {
    let mut feeder = Feeder::new(store);
    feeder.apply(two_rooms()).await;
    feeder
        .apply(vec![
            Change::PutRoom(room(ROOM_C, "Room C")),
            put_member(ROOM_C, CAROL, Role::Admin),
            put_task(5, ROOM_A, ALICE, BOB, OPEN),
            put_task(1, ROOM_A, ALICE, ALICE, OPEN),
            put_task(3, ROOM_B, ALICE, BOB, OPEN),
            put_task(7, ROOM_B, ALICE, BOB, DONE),
            put_task(2, ROOM_C, ALICE, CAROL, OPEN),
            put_task(4, ROOM_A, BOB, ALICE, OPEN),
            put_task(6, ROOM_B, ALICE, DAVE, OPEN),
        ])
        .await;

    let all = TaskFilter::default();
    assert_eq!(
        account_task_ids(store, ALICE, &all, 100).await,
        vec![1, 3, 5, 6, 7],
        "Alice's tasks in rooms A and B by task id; room C is not hers"
    );
    assert_eq!(
        account_task_ids(store, ALICE, &filter(Some(BOB), None, None), 100).await,
        vec![1, 3, 5, 6, 7],
        "the filter's account_id is ignored"
    );
    assert_eq!(
        account_task_ids(store, ALICE, &filter(None, None, Some(OPEN)), 100).await,
        vec![1, 3, 5, 6]
    );
    assert_eq!(
        account_task_ids(store, ALICE, &filter(None, Some(BOB), None), 100).await,
        vec![3, 5, 7]
    );
    assert_eq!(
        account_task_ids(store, ALICE, &filter(None, Some(BOB), Some(DONE)), 100).await,
        vec![7]
    );
    assert_eq!(account_task_ids(store, ALICE, &all, 2).await, vec![1, 3]);
    assert!(account_task_ids(store, ALICE, &all, 0).await.is_empty());
    assert_eq!(account_task_ids(store, BOB, &all, 100).await, vec![4]);
    assert!(account_task_ids(store, CAROL, &all, 100).await.is_empty());
    assert!(account_task_ids(store, DAVE, &all, 100).await.is_empty());

    let views = ok(
        store.tasks_of_account(ALICE, &all, 100).await,
        "tasks_of_account",
    );
    let rooms: Vec<(u64, &str)> = views
        .iter()
        .map(|view| (view.task.task_id.0, view.room_name.as_str()))
        .collect();
    assert_eq!(
        rooms,
        vec![
            (1, "Room A"),
            (3, "Room B"),
            (5, "Room A"),
            (6, "Room B"),
            (7, "Room B")
        ]
    );
    assert_eq!(
        Some(views[3].clone()),
        ok(store.task(ROOM_B, TaskId(6)).await, "task"),
        "tasks_of_account returns the same views as task"
    );
    assert_eq!(views[3].assigned_by_name, "", "Dave is unknown");
    let open_listed = account_task_ids(store, ALICE, &filter(None, None, Some(OPEN)), 100)
        .await
        .len();
    assert_eq!(
        ok(store.status(ALICE).await, "status").mytask_num,
        u64::try_from(open_listed).unwrap_or(u64::MAX),
        "status counts exactly the open tasks tasks_of_account lists"
    );

    feeder
        .apply(vec![Change::RemoveMember {
            room_id: ROOM_B,
            account_id: ALICE,
        }])
        .await;
    assert_eq!(
        account_task_ids(store, ALICE, &all, 100).await,
        vec![1, 5],
        "tasks of a room the account left are no longer listed"
    );
    assert_eq!(
        room_task_ids(store, ROOM_B, &filter(Some(ALICE), None, None), 100).await,
        vec![3, 6, 7],
        "they stay in the room"
    );
    feeder
        .apply(vec![put_member(ROOM_C, ALICE, Role::Member)])
        .await;
    assert_eq!(
        account_task_ids(store, ALICE, &all, 100).await,
        vec![1, 2, 5],
        "joining a room lists the tasks already assigned there"
    );

    // A membership in a room without a room row counts nowhere, as in rooms_of.
    feeder
        .apply(vec![
            put_member(RoomId(999), ALICE, Role::Member),
            put_task(8, RoomId(999), ALICE, BOB, OPEN),
        ])
        .await;
    assert_eq!(
        account_task_ids(store, ALICE, &all, 100).await,
        vec![1, 2, 5],
        "tasks of a room without a room row are not listed"
    );
}

/// `files_of_room` lists a room's files by file id, optionally one uploader's, at most
/// `limit`, with the uploader's name (empty if unknown); `file` finds a file only in
/// its own room; `PutFile` replaces by id.
pub async fn files_are_listed_by_file_id_and_found_only_in_their_room<S: ReadStore>(store: &S) {
    let mut feeder = Feeder::new(store);
    feeder.apply(two_rooms()).await;
    feeder
        .apply(vec![
            put_file(30, ROOM_A, BOB),
            put_file(10, ROOM_A, ALICE),
            put_file(20, ROOM_A, DAVE),
            put_file(40, ROOM_B, ALICE),
        ])
        .await;

    assert_eq!(file_ids(store, ROOM_A, None, 100).await, vec![10, 20, 30]);
    let views = ok(
        store.files_of_room(ROOM_A, None, 100).await,
        "files_of_room",
    );
    assert_eq!(views[0].file, file(10, ROOM_A, ALICE));
    assert_eq!(views[0].account_name, "Alice");
    assert_eq!(views[1].account_name, "", "an unknown uploader has no name");
    assert_eq!(file_ids(store, ROOM_A, Some(ALICE), 100).await, vec![10]);
    assert_eq!(file_ids(store, ROOM_A, Some(DAVE), 100).await, vec![20]);
    assert!(file_ids(store, ROOM_A, Some(CAROL), 100).await.is_empty());
    assert_eq!(file_ids(store, ROOM_A, None, 2).await, vec![10, 20]);
    assert_eq!(
        file_ids(store, ROOM_A, Some(BOB), 1).await,
        vec![30],
        "the limit applies after the uploader filter"
    );
    assert!(file_ids(store, ROOM_A, None, 0).await.is_empty());
    assert_eq!(file_ids(store, ROOM_B, None, 100).await, vec![40]);
    assert!(file_ids(store, ROOM_C, None, 100).await.is_empty());

    assert_eq!(
        ok(store.file(ROOM_A, FileId(10)).await, "file"),
        Some(views[0].clone())
    );
    assert_eq!(
        ok(store.file(ROOM_B, FileId(10)).await, "file"),
        None,
        "a file is not found through another room"
    );
    assert_eq!(ok(store.file(ROOM_A, FileId(99)).await, "file"), None);

    let mut moved = file(30, ROOM_B, BOB);
    moved.filename = "renamed.txt".to_owned();
    moved.filesize = 7;
    feeder
        .apply(vec![
            Change::PutFile(moved.clone()),
            Change::PutAccount(account(DAVE, "Dave")),
        ])
        .await;
    assert_eq!(file_ids(store, ROOM_A, None, 100).await, vec![10, 20]);
    assert_eq!(file_ids(store, ROOM_B, None, 100).await, vec![30, 40]);
    assert_eq!(
        ok(store.file(ROOM_B, FileId(30)).await, "file").map(|view| view.file),
        Some(moved),
        "PutFile replaces the whole row"
    );
    assert_eq!(
        ok(store.file(ROOM_A, FileId(20)).await, "file").map(|view| view.account_name),
        Some("Dave".to_owned()),
        "the uploader's name is joined at query time"
    );
    assert_eq!(task_counts(store, ALICE, ROOM_A).await, (0, 0, 2));
    assert_eq!(task_counts(store, ALICE, ROOM_B).await, (0, 0, 2));
}

/// A contact is one direction: `PutContact` gives the owner a contact with their
/// direct room (replacing the room), `RemoveContact` removes that direction only.
/// `contacts` lists by contact id and leaves out contacts without an account row.
pub async fn contacts_are_one_directional_and_listed_by_contact_id<S: ReadStore>(store: &S) {
    let mut feeder = Feeder::new(store);
    feeder.apply(two_rooms()).await;
    feeder
        .apply(vec![
            put_contact(ALICE, CAROL, RoomId(301)),
            put_contact(ALICE, BOB, RoomId(201)),
            put_contact(BOB, ALICE, RoomId(201)),
            put_contact(ALICE, DAVE, RoomId(401)),
        ])
        .await;

    assert_eq!(
        ok(store.contacts(ALICE).await, "contacts"),
        vec![
            ContactView {
                account: account(BOB, "Bob"),
                room_id: RoomId(201),
            },
            ContactView {
                account: account(CAROL, "Carol"),
                room_id: RoomId(301),
            },
        ],
        "contacts come by contact id with their account rows; unknown accounts are left out"
    );
    assert_eq!(contact_pairs(store, BOB).await, vec![(ALICE, RoomId(201))]);
    assert!(
        contact_pairs(store, CAROL).await.is_empty(),
        "a contact is one direction"
    );

    feeder
        .apply(vec![
            put_contact(ALICE, BOB, RoomId(202)),
            Change::RemoveContact {
                account_id: ALICE,
                contact_id: CAROL,
            },
            Change::RemoveContact {
                account_id: CAROL,
                contact_id: ALICE,
            },
            Change::PutAccount(account(DAVE, "Dave")),
        ])
        .await;
    assert_eq!(
        contact_pairs(store, ALICE).await,
        vec![(BOB, RoomId(202)), (DAVE, RoomId(401))],
        "PutContact replaces the room; RemoveContact removes; a contact whose account \
         becomes known appears"
    );
    assert_eq!(
        contact_pairs(store, BOB).await,
        vec![(ALICE, RoomId(201))],
        "the other direction is untouched"
    );
}

/// `incoming_requests` lists the pending requests addressed to an account by request
/// id, with the asking account's row (requests from unknown accounts are left out);
/// `contact_request` finds one by id; `PutContactRequest` replaces by id and
/// `RemoveContactRequest` ends it.
pub async fn contact_requests_are_pending_until_removed<S: ReadStore>(store: &S) {
    let mut feeder = Feeder::new(store);
    feeder.apply(two_rooms()).await;
    feeder
        .apply(vec![
            put_request(30, BOB, ALICE),
            put_request(10, CAROL, ALICE),
            put_request(20, ALICE, BOB),
            put_request(40, DAVE, ALICE),
        ])
        .await;

    let incoming = ok(store.incoming_requests(ALICE).await, "incoming_requests");
    assert_eq!(
        incoming
            .iter()
            .map(|view| (view.request.clone(), view.from.clone()))
            .collect::<Vec<_>>(),
        vec![
            (contact_request(10, CAROL, ALICE), account(CAROL, "Carol")),
            (contact_request(30, BOB, ALICE), account(BOB, "Bob")),
        ],
        "incoming requests by request id with the asking account; Dave is unknown"
    );
    assert_eq!(incoming_ids(store, BOB).await, vec![(20, ALICE)]);
    assert!(
        incoming_ids(store, CAROL).await.is_empty(),
        "outgoing requests are not incoming"
    );
    assert_eq!(
        ok(
            store.contact_request(RequestId(40)).await,
            "contact_request"
        ),
        Some(contact_request(40, DAVE, ALICE)),
        "contact_request finds a request whatever its accounts"
    );
    assert_eq!(
        ok(
            store.contact_request(RequestId(99)).await,
            "contact_request"
        ),
        None
    );

    let mut replaced = contact_request(30, BOB, ALICE);
    replaced.message = "again".to_owned();
    replaced.at = T0 + 999;
    feeder
        .apply(vec![
            Change::PutContactRequest(replaced.clone()),
            Change::RemoveContactRequest {
                request_id: RequestId(10),
            },
            Change::RemoveContactRequest {
                request_id: RequestId(99),
            },
        ])
        .await;
    assert_eq!(
        ok(store.incoming_requests(ALICE).await, "incoming_requests")
            .into_iter()
            .map(|view| view.request)
            .collect::<Vec<_>>(),
        vec![replaced.clone()]
    );
    assert_eq!(
        ok(
            store.contact_request(RequestId(10)).await,
            "contact_request"
        ),
        None,
        "a removed request is no longer pending"
    );
    assert_eq!(
        ok(
            store.contact_request(RequestId(30)).await,
            "contact_request"
        ),
        Some(replaced)
    );

    let mut readdressed = contact_request(30, BOB, CAROL);
    readdressed.message = "to Carol".to_owned();
    feeder
        .apply(vec![Change::PutContactRequest(readdressed)])
        .await;
    assert!(
        incoming_ids(store, ALICE).await.is_empty(),
        "a replaced request leaves its old addressee"
    );
    assert_eq!(incoming_ids(store, CAROL).await, vec![(30, BOB)]);
}

/// A room has at most one invitation link and a code names at most one link:
/// `SetLink` replaces the room's link and removes another room's link with the same
/// code; `RemoveLink` removes the room's link.
pub async fn a_room_has_one_link_and_a_code_names_one_link<S: ReadStore>(store: &S) {
    let mut feeder = Feeder::new(store);
    feeder.apply(two_rooms()).await;
    feeder
        .apply(vec![Change::SetLink(link(ROOM_A, "alpha", false))])
        .await;
    assert_eq!(
        ok(store.link_of_room(ROOM_A).await, "link_of_room"),
        Some(link(ROOM_A, "alpha", false))
    );
    assert_eq!(
        ok(store.link_by_code("alpha").await, "link_by_code"),
        Some(link(ROOM_A, "alpha", false))
    );
    assert_eq!(ok(store.link_by_code("beta").await, "link_by_code"), None);
    assert_eq!(
        ok(store.link_by_code("ALPHA").await, "link_by_code"),
        None,
        "codes are compared exactly"
    );
    assert_eq!(ok(store.link_of_room(ROOM_B).await, "link_of_room"), None);

    feeder
        .apply(vec![Change::SetLink(link(ROOM_A, "beta", true))])
        .await;
    assert_eq!(
        ok(store.link_of_room(ROOM_A).await, "link_of_room"),
        Some(link(ROOM_A, "beta", true)),
        "SetLink replaces the room's link"
    );
    assert_eq!(
        ok(store.link_by_code("alpha").await, "link_by_code"),
        None,
        "the room's old code no longer finds a link"
    );

    feeder
        .apply(vec![Change::SetLink(link(ROOM_B, "beta", false))])
        .await;
    assert_eq!(
        ok(store.link_by_code("beta").await, "link_by_code"),
        Some(link(ROOM_B, "beta", false)),
        "a code names one link: the latest room that set it"
    );
    assert_eq!(
        ok(store.link_of_room(ROOM_A).await, "link_of_room"),
        None,
        "the room that held the code loses its link"
    );

    feeder
        .apply(vec![
            Change::SetLink(link(ROOM_A, "gamma", false)),
            Change::SetLink(link(ROOM_C, "delta", false)),
            Change::RemoveLink { room_id: ROOM_B },
            Change::RemoveLink {
                room_id: RoomId(999),
            },
        ])
        .await;
    assert_eq!(ok(store.link_of_room(ROOM_B).await, "link_of_room"), None);
    assert_eq!(ok(store.link_by_code("beta").await, "link_by_code"), None);
    assert_eq!(
        ok(store.link_of_room(ROOM_A).await, "link_of_room"),
        Some(link(ROOM_A, "gamma", false))
    );
    assert_eq!(
        ok(store.link_by_code("delta").await, "link_by_code"),
        Some(link(ROOM_C, "delta", false)),
        "a link may belong to a room without a room row"
    );
    feeder
        .apply(vec![Change::SetLink(link(ROOM_B, "beta", false))])
        .await;
    assert_eq!(
        ok(store.link_by_code("beta").await, "link_by_code"),
        Some(link(ROOM_B, "beta", false)),
        "a removed link's code can be set again"
    );
}

/// `join_requests` lists a room's pending join requests by account id with the
/// account rows (unknown accounts left out); `PutJoinRequest` replaces the time,
/// `RemoveJoinRequest` ends one request.
pub async fn join_requests_are_listed_by_account_id<S: ReadStore>(store: &S) {
    let mut feeder = Feeder::new(store);
    feeder.apply(two_rooms()).await;
    feeder
        .apply(vec![
            put_join_request(ROOM_A, CAROL, T0 + 3),
            put_join_request(ROOM_A, BOB, T0 + 1),
            put_join_request(ROOM_A, DAVE, T0 + 2),
            put_join_request(ROOM_B, CAROL, T0 + 4),
        ])
        .await;

    let requests = ok(store.join_requests(ROOM_A).await, "join_requests");
    assert_eq!(
        requests
            .iter()
            .map(|view| (view.account.clone(), view.at))
            .collect::<Vec<_>>(),
        vec![
            (account(BOB, "Bob"), T0 + 1),
            (account(CAROL, "Carol"), T0 + 3)
        ],
        "join requests by account id with account rows; Dave is unknown"
    );
    assert_eq!(join_pairs(store, ROOM_B).await, vec![(CAROL, T0 + 4)]);
    assert!(join_pairs(store, ROOM_C).await.is_empty());

    feeder
        .apply(vec![
            put_join_request(ROOM_A, BOB, T0 + 9),
            Change::RemoveJoinRequest {
                room_id: ROOM_A,
                account_id: CAROL,
            },
            Change::RemoveJoinRequest {
                room_id: ROOM_C,
                account_id: CAROL,
            },
            Change::PutAccount(account(DAVE, "Dave")),
        ])
        .await;
    assert_eq!(
        join_pairs(store, ROOM_A).await,
        vec![(BOB, T0 + 9), (DAVE, T0 + 2)],
        "PutJoinRequest replaces; RemoveJoinRequest removes one room's request"
    );
    assert_eq!(
        join_pairs(store, ROOM_B).await,
        vec![(CAROL, T0 + 4)],
        "Carol's request for room B stays"
    );
}

/// Tasks, files, contacts, requests, links and join requests in rooms A and B, with
/// contacts and a request that no room owns.
fn rooms_with_everything() -> Vec<Change> {
    let mut changes = two_rooms();
    changes.extend([
        put_task(1, ROOM_A, ALICE, BOB, OPEN),
        put_task(2, ROOM_A, BOB, ALICE, DONE),
        put_task(3, ROOM_B, ALICE, BOB, OPEN),
        put_file(1, ROOM_A, ALICE),
        put_file(2, ROOM_B, BOB),
        Change::SetLink(link(ROOM_A, "room-a", true)),
        Change::SetLink(link(ROOM_B, "room-b", false)),
        put_join_request(ROOM_A, CAROL, T0 + 1),
        put_join_request(ROOM_B, CAROL, T0 + 2),
        put_contact(ALICE, BOB, ROOM_A),
        put_contact(BOB, ALICE, ROOM_A),
        put_request(1, CAROL, BOB),
    ]);
    changes
}

/// `DeleteRoom` also removes the room's tasks, files, link and join requests; contacts
/// whose direct room it is stay; a room later created with the same id starts with
/// none of them.
pub async fn deleting_a_room_removes_its_tasks_files_link_and_join_requests<S: ReadStore>(
    store: &S,
    other: &S,
) {
    let mut feeder = Feeder::new(store);
    feeder.apply(rooms_with_everything()).await;
    assert_eq!(task_totals(store, ALICE).await, (2, 2));
    feeder
        .apply(vec![Change::DeleteRoom { room_id: ROOM_A }])
        .await;

    let all = TaskFilter::default();
    assert!(room_task_ids(store, ROOM_A, &all, 100).await.is_empty());
    assert_eq!(ok(store.task(ROOM_A, TaskId(1)).await, "task"), None);
    assert_eq!(account_task_ids(store, ALICE, &all, 100).await, vec![3]);
    assert_eq!(task_totals(store, ALICE).await, (1, 1));
    assert!(file_ids(store, ROOM_A, None, 100).await.is_empty());
    assert_eq!(ok(store.file(ROOM_A, FileId(1)).await, "file"), None);
    assert_eq!(ok(store.link_of_room(ROOM_A).await, "link_of_room"), None);
    assert_eq!(ok(store.link_by_code("room-a").await, "link_by_code"), None);
    assert!(join_pairs(store, ROOM_A).await.is_empty());

    assert_eq!(room_task_ids(store, ROOM_B, &all, 100).await, vec![3]);
    assert_eq!(file_ids(store, ROOM_B, None, 100).await, vec![2]);
    assert_eq!(
        ok(store.link_by_code("room-b").await, "link_by_code"),
        Some(link(ROOM_B, "room-b", false))
    );
    assert_eq!(join_pairs(store, ROOM_B).await, vec![(CAROL, T0 + 2)]);
    assert_eq!(
        contact_pairs(store, ALICE).await,
        vec![(BOB, ROOM_A)],
        "contacts whose direct room is deleted stay"
    );
    assert_eq!(incoming_ids(store, BOB).await, vec![(1, CAROL)]);

    // The same models, reached without room A's rows ever existing.
    let without_room_a: Vec<Change> = rooms_with_everything()
        .into_iter()
        .filter(|change| match change {
            Change::PutRoom(row) => row.room_id != ROOM_A,
            Change::PutMember { room_id, .. } | Change::PutJoinRequest { room_id, .. } => {
                *room_id != ROOM_A
            }
            Change::PutTask(row) => row.room_id != ROOM_A,
            Change::PutFile(row) => row.room_id != ROOM_A,
            Change::SetLink(row) => row.room_id != ROOM_A,
            _ => true,
        })
        .collect();
    Feeder::new(other).apply(without_room_a).await;
    assert_eq!(
        models_dump(store).await,
        models_dump(other).await,
        "after DeleteRoom nothing of the room is left but the contacts through it"
    );

    feeder
        .apply(vec![
            Change::PutRoom(room(ROOM_A, "Room A again")),
            put_member(ROOM_A, ALICE, Role::Admin),
            Change::SetLink(link(ROOM_B, "room-a", false)),
        ])
        .await;
    assert_eq!(
        task_counts(store, ALICE, ROOM_A).await,
        (0, 0, 0),
        "a room created again with the same id has no tasks or files"
    );
    assert_eq!(ok(store.link_of_room(ROOM_A).await, "link_of_room"), None);
    assert_eq!(
        ok(store.link_by_code("room-a").await, "link_by_code"),
        Some(link(ROOM_B, "room-a", false)),
        "the deleted room's code is free again"
    );
}

/// `reset` drops tasks, files, contacts, contact requests, links and join requests;
/// rebuilding brings them back exactly.
pub async fn reset_clears_tasks_files_contacts_links_and_requests<S: ReadStore>(
    store: &S,
    empty: &S,
) {
    let mut feeder = Feeder::new(store);
    feeder.apply(rooms_with_everything()).await;
    let before = dump(store).await;

    ok(store.reset().await, "reset");
    assert_eq!(
        dump(store).await,
        dump(empty).await,
        "after reset the dump is that of an empty store"
    );
    let all = TaskFilter::default();
    assert!(room_task_ids(store, ROOM_A, &all, 100).await.is_empty());
    assert!(account_task_ids(store, ALICE, &all, 100).await.is_empty());
    assert_eq!(ok(store.task(ROOM_A, TaskId(1)).await, "task"), None);
    assert!(file_ids(store, ROOM_A, None, 100).await.is_empty());
    assert!(ok(store.contacts(ALICE).await, "contacts").is_empty());
    assert_eq!(
        ok(store.contact_request(RequestId(1)).await, "contact_request"),
        None
    );
    assert_eq!(ok(store.link_by_code("room-a").await, "link_by_code"), None);
    assert_eq!(ok(store.link_of_room(ROOM_B).await, "link_of_room"), None);
    assert!(join_pairs(store, ROOM_A).await.is_empty());

    Feeder::new(store).apply(rooms_with_everything()).await;
    assert_eq!(
        dump(store).await,
        before,
        "a rebuild brings everything back"
    );
}

/// The dump includes tasks, files, contacts, contact requests, links and join
/// requests: stores that differ in any field of them dump differently, and the same
/// ones dump the same.
pub async fn dumps_include_tasks_files_contacts_links_and_requests<S: ReadStore>(
    one: &S,
    other: &S,
) {
    apply_at(one, 1, rooms_with_everything()).await;
    // The same rows, put in another order.
    apply_at(
        other,
        1,
        rooms_with_everything().into_iter().rev().collect(),
    )
    .await;
    assert_eq!(
        dump(one).await,
        dump(other).await,
        "stores with the same rows dump the same"
    );
    let text = models_dump(one).await;
    for prefix in [
        "task 1 ",
        "file 2 ",
        "contact 1 2 ",
        "contact_request 1 ",
        "link 100 ",
        "join_request 200 3 ",
    ] {
        assert!(
            text.lines().any(|line| line.starts_with(prefix)),
            "the dump has a line starting with {prefix:?}:\n{text}"
        );
    }

    let mut other_body = task(1, ROOM_A, ALICE, BOB, OPEN);
    other_body.body.push('!');
    let mut bigger = file(2, ROOM_B, BOB);
    bigger.filesize += 1;
    let mut other_blob = file(2, ROOM_B, BOB);
    other_blob.blob_key.push('x');
    let mut reworded = contact_request(1, CAROL, BOB);
    reworded.message.push('?');
    let mut described = link(ROOM_B, "room-b", false);
    described.description.push('.');
    let differences: Vec<(Change, &str)> = vec![
        (set_task_status(1, DONE), "a task's status"),
        (Change::PutTask(other_body), "a task's body"),
        (Change::PutFile(bigger), "a file's size"),
        (Change::PutFile(other_blob), "a file's blob key"),
        (put_contact(ALICE, BOB, ROOM_C), "a contact's room"),
        (put_contact(CAROL, ALICE, ROOM_C), "a contact"),
        (Change::PutContactRequest(reworded), "a request's message"),
        (
            Change::RemoveContactRequest {
                request_id: RequestId(1),
            },
            "a request",
        ),
        (
            Change::SetLink(link(ROOM_A, "room-a", false)),
            "a link's need_acceptance",
        ),
        (Change::SetLink(described), "a link's description"),
        (Change::RemoveLink { room_id: ROOM_A }, "a link"),
        (
            put_join_request(ROOM_A, CAROL, T0 + 5),
            "a join request's time",
        ),
        (
            Change::RemoveJoinRequest {
                room_id: ROOM_B,
                account_id: CAROL,
            },
            "a join request",
        ),
    ];
    let mut position = 1;
    for (change, what) in differences {
        position += 1;
        apply_at(one, position, vec![change.clone()]).await;
        apply_at(other, position, Vec::new()).await;
        assert_ne!(
            dump(one).await,
            dump(other).await,
            "stores that differ in {what} must dump differently"
        );
        apply_at(other, position + 1, vec![change]).await;
        apply_at(one, position + 1, Vec::new()).await;
        position += 1;
        assert_eq!(
            dump(one).await,
            dump(other).await,
            "after the same change ({what}) the dumps agree again"
        );
    }
}
