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
//! [`CanonicalDump`]: crate::memory_read_store::CanonicalDump

use crate::error::StoreError;
use crate::event_log::Position;
use crate::memory_read_store::MemoryReadStore;
use crate::read_model::{
    AccountRow, Change, MessageRow, MessageView, OpRecord, ReadModelQueries, ReadStore, RoomRow,
    RoomView, StatusCounts,
};
use hayabusa_domain::{AccountId, MessageId, OrganizationId, Role, RoomId, RoomType};
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
            },
            RoomView {
                room: room(ROOM_B, "Room B"),
                role: Role::Member,
                unread_num: 0,
                mention_num: 0,
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
    }
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
