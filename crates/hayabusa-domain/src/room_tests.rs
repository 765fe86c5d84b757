//! Given events / when command / then events (or error) for the room aggregate.

use crate::error::DomainError;
use crate::event::Event;
use crate::ids::{AccountId, MessageId, RoomId};
use crate::room::{Role, Room, RoomCommand, RoomType};

const ROOM: RoomId = RoomId(100);
const ALICE: AccountId = AccountId(1);
const BOB: AccountId = AccountId(2);
const CAROL: AccountId = AccountId(3);
const AT: i64 = 1_700_000_000;

fn given(events: &[Event]) -> Room {
    events.iter().fold(Room::default(), Room::evolve)
}

fn when(room: &Room, actor: AccountId, command: RoomCommand) -> Result<Vec<Event>, DomainError> {
    room.decide(actor, command, AT)
}

fn created(members: &[(AccountId, Role)]) -> Event {
    Event::RoomCreated {
        room_id: ROOM,
        room_type: RoomType::Group,
        name: "Project".into(),
        description: String::new(),
        icon_preset: "group".into(),
        created_by: ALICE,
        members: members.to_vec(),
        at: AT,
    }
}

fn group() -> Event {
    created(&[
        (ALICE, Role::Admin),
        (BOB, Role::Member),
        (CAROL, Role::Readonly),
    ])
}

fn posted(id: u64, seq: u64, by: AccountId) -> Event {
    Event::MessagePosted {
        room_id: ROOM,
        message_id: MessageId(id),
        seq,
        account_id: by,
        body: "hello".into(),
        mentions: vec![],
        to_all: false,
        self_unread: false,
        at: AT,
    }
}

fn post(id: u64, body: &str) -> RoomCommand {
    RoomCommand::PostMessage {
        message_id: MessageId(id),
        body: body.into(),
        self_unread: false,
    }
}

#[test]
fn creating_a_room_records_its_sorted_members() {
    let command = RoomCommand::Create {
        room_id: ROOM,
        room_type: RoomType::Group,
        name: "Project".into(),
        description: String::new(),
        icon_preset: "group".into(),
        creator: ALICE,
        members: vec![
            (CAROL, Role::Readonly),
            (ALICE, Role::Admin),
            (BOB, Role::Member),
        ],
    };
    assert_eq!(when(&given(&[]), ALICE, command), Ok(vec![group()]));
}

#[test]
fn a_room_needs_an_admin_a_valid_name_and_no_account_twice() {
    let create = |name: &str, members: Vec<(AccountId, Role)>, icon: &str| RoomCommand::Create {
        room_id: ROOM,
        room_type: RoomType::Group,
        name: name.into(),
        description: String::new(),
        icon_preset: icon.into(),
        creator: ALICE,
        members,
    };
    let room = given(&[]);
    assert!(matches!(
        when(
            &room,
            ALICE,
            create("x", vec![(ALICE, Role::Member)], "group")
        ),
        Err(DomainError::Invalid(_))
    ));
    assert!(matches!(
        when(
            &room,
            ALICE,
            create(" ", vec![(ALICE, Role::Admin)], "group")
        ),
        Err(DomainError::Invalid(_))
    ));
    assert!(matches!(
        when(
            &room,
            ALICE,
            create(&"n".repeat(256), vec![(ALICE, Role::Admin)], "group")
        ),
        Err(DomainError::Invalid(_))
    ));
    assert!(matches!(
        when(
            &room,
            ALICE,
            create(
                "x",
                vec![(ALICE, Role::Admin), (ALICE, Role::Member)],
                "group"
            )
        ),
        Err(DomainError::Invalid(_))
    ));
    assert!(matches!(
        when(
            &room,
            ALICE,
            create("x", vec![(ALICE, Role::Admin)], "unicorn")
        ),
        Err(DomainError::Invalid(_))
    ));
    assert!(
        when(
            &room,
            ALICE,
            create(&"n".repeat(255), vec![(ALICE, Role::Admin)], "star")
        )
        .is_ok()
    );
}

#[test]
fn a_member_posts_a_message_with_the_next_seq_and_its_member_mentions() {
    let room = given(&[group(), posted(10, 1, ALICE)]);
    let events = when(&room, BOB, post(11, "[To:1] [To:999] hi [toall]")).unwrap();
    assert_eq!(
        events,
        vec![Event::MessagePosted {
            room_id: ROOM,
            message_id: MessageId(11),
            seq: 2,
            account_id: BOB,
            body: "[To:1] [To:999] hi [toall]".into(),
            mentions: vec![ALICE],
            to_all: true,
            self_unread: false,
            at: AT,
        }]
    );
}

#[test]
fn readonly_members_cannot_post_and_non_members_do_not_see_the_room() {
    let room = given(&[group()]);
    assert!(matches!(
        when(&room, CAROL, post(1, "hi")),
        Err(DomainError::Forbidden(_))
    ));
    assert_eq!(
        when(&room, AccountId(9), post(1, "hi")),
        Err(DomainError::NotFound("room"))
    );
}

#[test]
fn bodies_must_be_between_1_and_65535_characters() {
    let room = given(&[group()]);
    assert!(matches!(
        when(&room, ALICE, post(1, "  \n")),
        Err(DomainError::Invalid(_))
    ));
    assert!(matches!(
        when(&room, ALICE, post(1, &"あ".repeat(65_536))),
        Err(DomainError::Invalid(_))
    ));
    assert!(when(&room, ALICE, post(1, &"あ".repeat(65_535))).is_ok());
}

#[test]
fn only_the_author_edits_or_deletes_a_message_and_deleted_ones_are_gone() {
    let room = given(&[group(), posted(10, 1, BOB)]);
    let edit = |body: &str| RoomCommand::EditMessage {
        message_id: MessageId(10),
        body: body.into(),
    };
    let delete = RoomCommand::DeleteMessage {
        message_id: MessageId(10),
    };
    assert!(matches!(
        when(&room, ALICE, edit("x")),
        Err(DomainError::Forbidden(_))
    ));
    assert!(matches!(
        when(&room, ALICE, delete.clone()),
        Err(DomainError::Forbidden(_))
    ));
    assert!(matches!(
        when(&room, BOB, edit("new")).as_deref(),
        Ok([Event::MessageEdited { .. }])
    ));
    let deleted = when(&room, BOB, delete.clone()).unwrap();
    let room = given(&[group(), posted(10, 1, BOB), deleted[0].clone()]);
    assert_eq!(
        when(&room, BOB, edit("again")),
        Err(DomainError::NotFound("message"))
    );
    assert_eq!(
        when(&room, BOB, delete),
        Err(DomainError::NotFound("message"))
    );
}

#[test]
fn only_admins_change_members_and_the_diff_is_recorded() {
    let room = given(&[group()]);
    let set = RoomCommand::SetMembers {
        members: vec![
            (ALICE, Role::Admin),
            (BOB, Role::Admin),
            (AccountId(4), Role::Member),
        ],
    };
    assert!(matches!(
        when(&room, BOB, set.clone()),
        Err(DomainError::Forbidden(_))
    ));
    assert_eq!(
        when(&room, ALICE, set),
        Ok(vec![Event::MembersChanged {
            room_id: ROOM,
            added: vec![(AccountId(4), Role::Member)],
            removed: vec![CAROL],
            role_changed: vec![(BOB, Role::Admin)],
            by: ALICE,
            at: AT,
        }])
    );
    let no_admin = RoomCommand::SetMembers {
        members: vec![(ALICE, Role::Member)],
    };
    assert!(matches!(
        when(&room, ALICE, no_admin),
        Err(DomainError::Invalid(_))
    ));
}

#[test]
fn the_last_admin_cannot_leave_while_others_remain_but_the_last_member_closes_the_room() {
    let room = given(&[group()]);
    assert!(matches!(
        when(&room, ALICE, RoomCommand::Leave),
        Err(DomainError::Conflict(_))
    ));
    assert!(when(&room, BOB, RoomCommand::Leave).is_ok());
    let alone = given(&[created(&[(ALICE, Role::Admin)])]);
    let events = when(&alone, ALICE, RoomCommand::Leave).unwrap();
    assert!(matches!(
        events.as_slice(),
        [Event::MembersChanged { .. }, Event::RoomDeleted { .. }]
    ));
}

#[test]
fn a_removed_member_loses_access_and_a_deleted_room_refuses_everything() {
    let removed = Event::MembersChanged {
        room_id: ROOM,
        added: vec![],
        removed: vec![BOB],
        role_changed: vec![],
        by: ALICE,
        at: AT,
    };
    let room = given(&[group(), removed]);
    assert_eq!(
        when(&room, BOB, post(1, "hi")),
        Err(DomainError::NotFound("room"))
    );
    assert!(matches!(
        when(&room, BOB, RoomCommand::Delete),
        Err(DomainError::NotFound(_))
    ));
    let room = given(&[
        group(),
        Event::RoomDeleted {
            room_id: ROOM,
            by: ALICE,
            at: AT,
        },
    ]);
    assert_eq!(
        when(&room, ALICE, post(1, "hi")),
        Err(DomainError::NotFound("room"))
    );
}

#[test]
fn my_rooms_cannot_be_renamed_or_left() {
    let my = Event::RoomCreated {
        room_id: ROOM,
        room_type: RoomType::My,
        name: "Alice".into(),
        description: String::new(),
        icon_preset: "group".into(),
        created_by: ALICE,
        members: vec![(ALICE, Role::Admin)],
        at: AT,
    };
    let room = given(&[my]);
    let rename = RoomCommand::Update {
        name: Some("x".into()),
        description: None,
        icon_preset: None,
    };
    assert!(matches!(
        when(&room, ALICE, rename),
        Err(DomainError::Invalid(_))
    ));
    assert!(matches!(
        when(&room, ALICE, RoomCommand::Leave),
        Err(DomainError::Invalid(_))
    ));
    assert!(when(&room, ALICE, post(1, "note to self")).is_ok());
}

#[test]
fn read_cursors_move_to_a_message_or_just_before_it() {
    let room = given(&[
        group(),
        posted(10, 1, ALICE),
        posted(11, 2, ALICE),
        posted(12, 3, ALICE),
    ]);
    let read = |message_id, read| RoomCommand::MoveReadCursor { message_id, read };
    let seq_of = |events: Vec<Event>| match events.as_slice() {
        [Event::ReadCursorMoved { read_seq, .. }] => *read_seq,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(seq_of(when(&room, BOB, read(None, true)).unwrap()), 3);
    assert_eq!(
        seq_of(when(&room, BOB, read(Some(MessageId(11)), true)).unwrap()),
        2
    );
    assert_eq!(
        seq_of(when(&room, BOB, read(Some(MessageId(11)), false)).unwrap()),
        1
    );
    assert_eq!(
        when(&room, BOB, read(Some(MessageId(99)), true)),
        Err(DomainError::NotFound("message"))
    );
}

fn add_tasks(to_ids: Vec<AccountId>) -> RoomCommand {
    RoomCommand::AddTasks {
        message_id: MessageId(500),
        task_ids: (0..to_ids.len() as u64)
            .map(|i| crate::ids::TaskId(900 + i))
            .collect(),
        body: "Write the report".into(),
        to_ids,
        limit_time: 0,
        limit_type: "none".into(),
    }
}

#[test]
fn tasks_are_assigned_to_members_with_an_announcing_message() {
    let room = given(&[group(), posted(10, 1, ALICE)]);
    let events = when(&room, ALICE, add_tasks(vec![BOB, CAROL])).unwrap();
    match events.as_slice() {
        [
            Event::MessagePosted {
                seq,
                body,
                mentions,
                ..
            },
            Event::TasksAdded {
                tasks, message_id, ..
            },
        ] => {
            assert_eq!(*seq, 2);
            assert_eq!(body, "[task]Write the report[/task]");
            assert_eq!(mentions, &vec![BOB, CAROL]);
            assert_eq!(*message_id, MessageId(500));
            assert_eq!(
                tasks,
                &vec![
                    (crate::ids::TaskId(900), BOB),
                    (crate::ids::TaskId(901), CAROL)
                ]
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        when(&room, CAROL, add_tasks(vec![BOB])),
        Err(DomainError::Forbidden(_))
    ));
    assert!(matches!(
        when(&room, ALICE, add_tasks(vec![])),
        Err(DomainError::Invalid(_))
    ));
    assert!(matches!(
        when(&room, ALICE, add_tasks(vec![AccountId(77)])),
        Err(DomainError::Invalid(_))
    ));
    assert!(matches!(
        when(&room, ALICE, add_tasks(vec![BOB, BOB])),
        Err(DomainError::Invalid(_))
    ));
}

#[test]
fn only_the_assignee_or_assigner_changes_a_task() {
    let room = given(&[group()]);
    let added = when(&room, ALICE, add_tasks(vec![BOB])).unwrap();
    let mut history = vec![group()];
    history.extend(added);
    let room = given(&history);
    let done = |task| RoomCommand::SetTaskStatus {
        task_id: crate::ids::TaskId(task),
        done: true,
    };
    assert!(when(&room, BOB, done(900)).is_ok());
    assert!(when(&room, ALICE, done(900)).is_ok());
    assert!(matches!(
        when(&room, CAROL, done(900)),
        Err(DomainError::Forbidden(_))
    ));
    assert_eq!(
        when(&room, BOB, done(1)),
        Err(DomainError::NotFound("task"))
    );
}

#[test]
fn readonly_members_cannot_upload_and_a_file_is_announced_by_a_message() {
    let room = given(&[group()]);
    let attach = RoomCommand::AttachFile {
        file_id: crate::ids::FileId(3),
        message_id: MessageId(4),
        filename: "a.txt".into(),
        filesize: 1,
        blob_key: "k".into(),
        message: "see".into(),
    };
    assert!(matches!(
        when(&room, CAROL, attach.clone()),
        Err(DomainError::Forbidden(_))
    ));
    let events = when(&room, BOB, attach).unwrap();
    assert!(
        matches!(&events[0], Event::MessagePosted { body, .. } if body == "see\n[download:3]a.txt[/download]")
    );
    assert!(matches!(&events[1], Event::FileUploaded { .. }));
}

#[test]
fn joining_by_link_respects_the_code_and_acceptance() {
    let link = |need_acceptance| Event::LinkSet {
        room_id: ROOM,
        code: "team".into(),
        need_acceptance,
        description: String::new(),
        by: ALICE,
        at: AT,
    };
    let dave = AccountId(4);
    let join = |code: &str| RoomCommand::JoinByLink { code: code.into() };
    let open = given(&[group(), link(false)]);
    assert!(matches!(
        when(&open, dave, join("team")).as_deref(),
        Ok([Event::MembersChanged { .. }])
    ));
    assert_eq!(
        when(&open, dave, join("other")),
        Err(DomainError::NotFound("link"))
    );
    assert!(matches!(
        when(&open, BOB, join("team")),
        Err(DomainError::Conflict(_))
    ));
    let guarded = given(&[group(), link(true)]);
    let requested = when(&guarded, dave, join("team")).unwrap();
    assert!(matches!(
        requested.as_slice(),
        [Event::JoinRequested { .. }]
    ));
    let mut history = vec![group(), link(true)];
    history.extend(requested);
    let pending = given(&history);
    let approve = RoomCommand::ResolveJoin {
        account: dave,
        approve: true,
    };
    assert!(matches!(
        when(&pending, BOB, approve.clone()),
        Err(DomainError::Forbidden(_))
    ));
    assert!(matches!(
        when(&pending, ALICE, approve).as_deref(),
        Ok([
            Event::JoinRequestResolved { approved: true, .. },
            Event::MembersChanged { .. }
        ])
    ));
    let no_link = given(&[group()]);
    assert_eq!(
        when(&no_link, dave, join("team")),
        Err(DomainError::NotFound("link"))
    );
}
