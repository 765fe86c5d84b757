//! The sync feed (LINE's operations): which ops an event causes, and the membership
//! intervals that decide who sees them.
//!
//! Ops are recorded once per event — never once per member. A member sees a room's
//! ops from the position it joined (inclusive) to the position it was removed
//! (inclusive): an added account sees its own `member_added` and everything after; a
//! removed one sees its `member_removed` and nothing after. Ops meant for one account
//! only (`read_changed`, a `[To:ID]` `mention`) carry a target.
//!
//! Payloads are the sync API's op fields (a read model shaped for the gateway); the
//! HTTP layer adds `type` and `revision`.

use hayabusa_domain::{AccountId, Event, RoomId};
use hayabusa_store::{Change, OpRecord, Position};
use serde::Serialize;
use serde_json::{Value, json};

/// The kinds of op (an op's `op_type` is one of their names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// `message_created`.
    MessageCreated,
    /// `message_updated`.
    MessageUpdated,
    /// `message_deleted`.
    MessageDeleted,
    /// `room_created`: the account is in a new room.
    RoomCreated,
    /// `room_updated`.
    RoomUpdated,
    /// `room_deleted`.
    RoomDeleted,
    /// `member_added`.
    MemberAdded,
    /// `member_removed`.
    MemberRemoved,
    /// `member_role_changed`.
    MemberRoleChanged,
    /// `read_changed` (targeted).
    ReadChanged,
    /// `task_added`.
    TaskAdded,
    /// `task_status_changed`.
    TaskStatusChanged,
    /// `file_uploaded`.
    FileUploaded,
    /// `contact_requested`.
    ContactRequested,
    /// `contact_approved`.
    ContactApproved,
    /// `contact_rejected`.
    ContactRejected,
    /// `contact_removed`.
    ContactRemoved,
    /// `mention` (targeted).
    Mention,
}

impl OpKind {
    /// Every kind.
    pub const ALL: [OpKind; 18] = [
        OpKind::MessageCreated,
        OpKind::MessageUpdated,
        OpKind::MessageDeleted,
        OpKind::RoomCreated,
        OpKind::RoomUpdated,
        OpKind::RoomDeleted,
        OpKind::MemberAdded,
        OpKind::MemberRemoved,
        OpKind::MemberRoleChanged,
        OpKind::ReadChanged,
        OpKind::TaskAdded,
        OpKind::TaskStatusChanged,
        OpKind::FileUploaded,
        OpKind::ContactRequested,
        OpKind::ContactApproved,
        OpKind::ContactRejected,
        OpKind::ContactRemoved,
        OpKind::Mention,
    ];

    /// Its name, the op's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::MessageCreated => "message_created",
            OpKind::MessageUpdated => "message_updated",
            OpKind::MessageDeleted => "message_deleted",
            OpKind::RoomCreated => "room_created",
            OpKind::RoomUpdated => "room_updated",
            OpKind::RoomDeleted => "room_deleted",
            OpKind::MemberAdded => "member_added",
            OpKind::MemberRemoved => "member_removed",
            OpKind::MemberRoleChanged => "member_role_changed",
            OpKind::ReadChanged => "read_changed",
            OpKind::TaskAdded => "task_added",
            OpKind::TaskStatusChanged => "task_status_changed",
            OpKind::FileUploaded => "file_uploaded",
            OpKind::ContactRequested => "contact_requested",
            OpKind::ContactApproved => "contact_approved",
            OpKind::ContactRejected => "contact_rejected",
            OpKind::ContactRemoved => "contact_removed",
            OpKind::Mention => "mention",
        }
    }

    /// The kind named `name` (an op's `op_type`).
    pub fn parse(name: &str) -> Option<OpKind> {
        OpKind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// Whether an op of this kind may change which rooms its account follows (the
    /// sync gateway then listens to the account's rooms again).
    pub fn changes_rooms(self) -> bool {
        matches!(
            self,
            OpKind::RoomCreated | OpKind::MemberAdded | OpKind::MemberRemoved
        )
    }
}

/// The sync changes of one event at `position`.
pub fn sync_changes_for(position: Position, event: &Event) -> Vec<Change> {
    let mut ops = OpsBuilder {
        position,
        ops: Vec::new(),
    };
    let mut changes = Vec::new();
    match event {
        Event::OrganizationCreated { .. }
        | Event::AccountCreated(_)
        | Event::AccountTokenRotated { .. } => {}
        Event::RoomCreated {
            room_id,
            room_type,
            name,
            members,
            ..
        } => {
            for (account_id, _) in members {
                changes.push(Change::OpenMembership {
                    room_id: *room_id,
                    account_id: *account_id,
                    from: position,
                });
            }
            ops.room(
                *room_id,
                "room_created",
                json!({"room_id": room_id.0, "name": name, "room_type": room_type.as_str()}),
            );
        }
        Event::RoomUpdated {
            room_id,
            name,
            description,
            icon_preset,
            ..
        } => {
            let mut payload = json!({"room_id": room_id.0});
            for (key, value) in [
                ("name", name),
                ("description", description),
                ("icon_preset", icon_preset),
            ] {
                if let Some(value) = value {
                    payload[key] = json!(value);
                }
            }
            ops.room(*room_id, "room_updated", payload);
        }
        Event::MembersChanged {
            room_id,
            added,
            removed,
            role_changed,
            ..
        } => {
            for (account_id, role) in added {
                changes.push(Change::OpenMembership {
                    room_id: *room_id,
                    account_id: *account_id,
                    from: position,
                });
                ops.room(
                    *room_id,
                    "member_added",
                    json!({"room_id": room_id.0, "account_id": account_id.0, "role": role.as_str()}),
                );
            }
            for (account_id, role) in role_changed {
                ops.room(
                    *room_id,
                    "member_role_changed",
                    json!({"room_id": room_id.0, "account_id": account_id.0, "role": role.as_str()}),
                );
            }
            for account_id in removed {
                changes.push(Change::CloseMembership {
                    room_id: *room_id,
                    account_id: *account_id,
                    to: position,
                });
                ops.room(
                    *room_id,
                    "member_removed",
                    json!({"room_id": room_id.0, "account_id": account_id.0}),
                );
            }
        }
        Event::RoomDeleted { room_id, .. } => {
            // No op follows in a deleted room, so intervals may stay open.
            ops.room(*room_id, "room_deleted", json!({"room_id": room_id.0}));
        }
        Event::MessagePosted {
            room_id,
            message_id,
            account_id,
            body,
            mentions,
            to_all,
            at,
            ..
        } => {
            // The most frequent event by far: its payloads are serialized straight from
            // structs (keys in the order `json!` maps print them) rather than built as
            // `Value` maps first.
            ops.room_payload(
                *room_id,
                "message_created",
                payload(&MessageCreatedPayload {
                    account_id: account_id.0,
                    body,
                    message_id: AsString(message_id.0),
                    room_id: room_id.0,
                    send_time: *at,
                }),
            );
            let mention = || {
                payload(&MentionPayload {
                    account_id: account_id.0,
                    message_id: AsString(message_id.0),
                    room_id: room_id.0,
                    to_all: *to_all,
                })
            };
            if *to_all {
                ops.room_payload(*room_id, "mention", mention());
            } else {
                for target in mentions.iter().filter(|m| *m != account_id) {
                    ops.push_payload(Some(*room_id), Some(*target), "mention", mention());
                }
            }
        }
        Event::MessageEdited {
            room_id,
            message_id,
            body,
            at,
            ..
        } => ops.room(
            *room_id,
            "message_updated",
            json!({
                "room_id": room_id.0,
                "message_id": message_id.0.to_string(),
                "body": body,
                "update_time": at,
            }),
        ),
        Event::MessageDeleted {
            room_id,
            message_id,
            ..
        } => ops.room(
            *room_id,
            "message_deleted",
            json!({"room_id": room_id.0, "message_id": message_id.0.to_string()}),
        ),
        Event::TasksAdded {
            room_id,
            message_id,
            assigned_by,
            body,
            tasks,
            limit_time,
            limit_type,
            ..
        } => {
            for (task_id, account_id) in tasks {
                ops.room(
                    *room_id,
                    "task_added",
                    json!({
                        "room_id": room_id.0,
                        "task_id": task_id.0,
                        "account_id": account_id.0,
                        "assigned_by_account_id": assigned_by.0,
                        "message_id": message_id.0.to_string(),
                        "body": body,
                        "limit_time": limit_time,
                        "limit_type": limit_type,
                    }),
                );
            }
        }
        Event::TaskStatusChanged {
            room_id,
            task_id,
            status,
            by,
            ..
        } => ops.room(
            *room_id,
            "task_status_changed",
            json!({"room_id": room_id.0, "task_id": task_id.0, "status": status, "account_id": by.0}),
        ),
        Event::FileUploaded {
            room_id,
            file_id,
            message_id,
            account_id,
            filename,
            filesize,
            ..
        } => ops.room(
            *room_id,
            "file_uploaded",
            json!({
                "room_id": room_id.0,
                "file_id": file_id.0,
                "message_id": message_id.0.to_string(),
                "account_id": account_id.0,
                "filename": filename,
                "filesize": filesize,
            }),
        ),
        Event::LinkSet { .. }
        | Event::LinkRemoved { .. }
        | Event::JoinRequested { .. }
        | Event::JoinRequestResolved { .. }
        | Event::LinkCodeClaimed { .. }
        | Event::LinkCodeReleased { .. }
        | Event::WebhookCreated { .. }
        | Event::WebhookDeleted { .. }
        | Event::WebhookDisabled { .. }
        | Event::ForwarderCreated { .. }
        | Event::ForwarderDeleted { .. }
        | Event::ForwarderDeadLettered { .. }
        | Event::ForwarderReplayRequested { .. }
        | Event::ForwarderDeadLetterDelivered { .. }
        | Event::LoginClaimed { .. }
        | Event::PasswordSet { .. }
        | Event::SessionStarted { .. }
        | Event::SessionEnded { .. }
        | Event::SessionsEnded { .. } => {}
        Event::ContactRequested {
            request_id,
            from,
            to,
            message,
            ..
        } => {
            let payload = json!({"request_id": request_id.0, "account_id": from.0, "to_account_id": to.0, "message": message});
            ops.targeted(None, *to, "contact_requested", payload.clone());
            ops.targeted(None, *from, "contact_requested", payload);
        }
        Event::ContactApproved {
            request_id,
            from,
            to,
            direct_room_id,
            ..
        } => {
            ops.targeted(
                None,
                *from,
                "contact_approved",
                json!({"request_id": request_id.0, "account_id": to.0, "room_id": direct_room_id.0}),
            );
            ops.targeted(
                None,
                *to,
                "contact_approved",
                json!({"request_id": request_id.0, "account_id": from.0, "room_id": direct_room_id.0}),
            );
        }
        Event::ContactRejected {
            request_id, from, to, ..
        } => {
            ops.targeted(None, *from, "contact_rejected", json!({"request_id": request_id.0, "account_id": to.0}));
            ops.targeted(None, *to, "contact_rejected", json!({"request_id": request_id.0, "account_id": from.0}));
        }
        Event::ContactRemoved { by, other, .. } => {
            ops.targeted(None, *by, "contact_removed", json!({"account_id": other.0}));
            ops.targeted(None, *other, "contact_removed", json!({"account_id": by.0}));
        }
        Event::ReadCursorMoved {
            account_id,
            room_id,
            ..
        } => ops.targeted(
            Some(*room_id),
            *account_id,
            "read_changed",
            json!({"room_id": room_id.0, "account_id": account_id.0}),
        ),
    }
    if !ops.ops.is_empty() {
        changes.push(Change::RecordOps(ops.ops));
    }
    changes
}

struct OpsBuilder {
    position: Position,
    ops: Vec<OpRecord>,
}

impl OpsBuilder {
    fn push(
        &mut self,
        room_id: Option<RoomId>,
        target: Option<AccountId>,
        op_type: &str,
        payload: Value,
    ) {
        self.push_payload(room_id, target, op_type, payload.to_string());
    }

    fn push_payload(
        &mut self,
        room_id: Option<RoomId>,
        target: Option<AccountId>,
        op_type: &str,
        payload: String,
    ) {
        // Every test that projects events checks that each op is of a known kind.
        debug_assert!(
            OpKind::parse(op_type).is_some(),
            "unknown op kind {op_type}"
        );
        self.ops.push(OpRecord {
            position: self.position,
            index: self.ops.len() as u32,
            room_id,
            target,
            op_type: op_type.to_string(),
            payload,
        });
    }

    fn room(&mut self, room_id: RoomId, op_type: &str, payload: Value) {
        self.push(Some(room_id), None, op_type, payload);
    }

    fn room_payload(&mut self, room_id: RoomId, op_type: &str, payload: String) {
        self.push_payload(Some(room_id), None, op_type, payload);
    }

    fn targeted(
        &mut self,
        room_id: Option<RoomId>,
        target: AccountId,
        op_type: &str,
        payload: Value,
    ) {
        self.push(room_id, Some(target), op_type, payload);
    }
}

/// The JSON text of a payload struct.
fn payload(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("a struct of integers, strings and bools serializes")
}

/// A number serialized as a JSON string (message ids exceed what JSON clients read
/// exactly as numbers).
struct AsString(u64);

impl Serialize for AsString {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// The payload of `message_created`: the fields in key order, as `json!` prints them.
#[derive(Serialize)]
struct MessageCreatedPayload<'a> {
    account_id: u64,
    body: &'a str,
    message_id: AsString,
    room_id: u64,
    send_time: i64,
}

/// The payload of `mention`: the fields in key order, as `json!` prints them.
#[derive(Serialize)]
struct MentionPayload {
    account_id: u64,
    message_id: AsString,
    room_id: u64,
    to_all: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_kinds_are_named_once_and_three_change_an_accounts_rooms() {
        let names: std::collections::HashSet<&str> =
            OpKind::ALL.iter().map(|kind| kind.as_str()).collect();
        assert_eq!(names.len(), OpKind::ALL.len());
        for kind in OpKind::ALL {
            assert_eq!(OpKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(OpKind::parse("message_posted"), None);
        let changing: Vec<OpKind> = OpKind::ALL
            .into_iter()
            .filter(|kind| kind.changes_rooms())
            .collect();
        assert_eq!(
            changing,
            vec![
                OpKind::RoomCreated,
                OpKind::MemberAdded,
                OpKind::MemberRemoved
            ]
        );
    }
    use hayabusa_domain::{MessageId, Role};

    fn ops_of(changes: &[Change]) -> Vec<(String, Option<AccountId>)> {
        changes
            .iter()
            .filter_map(|c| match c {
                Change::RecordOps(ops) => Some(
                    ops.iter()
                        .map(|o| (o.op_type.clone(), o.target))
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect()
    }

    #[test]
    fn a_message_makes_one_op_for_the_room_plus_one_per_mentioned_account_not_per_member() {
        let event = Event::MessagePosted {
            room_id: RoomId(1),
            message_id: MessageId(9),
            seq: 1,
            account_id: AccountId(2),
            body: "[To:3][To:2] hi".into(),
            mentions: vec![AccountId(3), AccountId(2)],
            to_all: false,
            self_unread: false,
            at: 5,
        };
        let changes = sync_changes_for(7, &event);
        assert_eq!(
            ops_of(&changes),
            vec![
                ("message_created".into(), None),
                ("mention".into(), Some(AccountId(3)))
            ]
        );
        let Change::RecordOps(ops) = &changes[0] else {
            panic!()
        };
        assert!(ops.iter().all(|o| o.position == 7));
        assert_eq!(ops.iter().map(|o| o.index).collect::<Vec<_>>(), vec![0, 1]);
    }

    #[test]
    fn message_payloads_are_the_json_maps_they_always_were() {
        for (body, to_all) in [
            ("[To:3][To:2] hi", false),
            (
                "quote \" backslash \\ newline \n tab \t nul \u{0} é 日本 😀",
                true,
            ),
            ("", false),
        ] {
            let event = Event::MessagePosted {
                room_id: RoomId(376_441_559_617_536),
                message_id: MessageId(u64::MAX),
                seq: 1,
                account_id: AccountId(2),
                body: body.into(),
                mentions: vec![AccountId(3), AccountId(2)],
                to_all,
                self_unread: false,
                at: -5,
            };
            let Change::RecordOps(ops) = &sync_changes_for(7, &event)[0] else {
                panic!()
            };
            let mention = json!({
                "room_id": 376_441_559_617_536_u64,
                "message_id": u64::MAX.to_string(),
                "account_id": 2,
                "to_all": to_all,
            })
            .to_string();
            assert_eq!(
                ops.iter().map(|o| o.payload.clone()).collect::<Vec<_>>(),
                vec![
                    json!({
                        "room_id": 376_441_559_617_536_u64,
                        "message_id": u64::MAX.to_string(),
                        "account_id": 2,
                        "body": body,
                        "send_time": -5,
                    })
                    .to_string(),
                    mention
                ]
            );
        }
    }

    #[test]
    fn member_changes_open_and_close_intervals_at_the_events_position() {
        let event = Event::MembersChanged {
            room_id: RoomId(1),
            added: vec![(AccountId(4), Role::Member)],
            removed: vec![AccountId(5)],
            role_changed: vec![(AccountId(6), Role::Admin)],
            by: AccountId(6),
            at: 1,
        };
        let changes = sync_changes_for(11, &event);
        assert!(changes.contains(&Change::OpenMembership {
            room_id: RoomId(1),
            account_id: AccountId(4),
            from: 11
        }));
        assert!(changes.contains(&Change::CloseMembership {
            room_id: RoomId(1),
            account_id: AccountId(5),
            to: 11
        }));
        assert_eq!(
            ops_of(&changes),
            vec![
                ("member_added".into(), None),
                ("member_role_changed".into(), None),
                ("member_removed".into(), None)
            ]
        );
    }
}
