//! Domain events: the persisted schema of everything that happened.
//!
//! Event names (`type`) and payload fields are a stored format: never rename them,
//! only add optional fields or a new version with an upcaster in [`decode_event`].
//! These types are not API DTOs; the HTTP layer has its own.

use crate::ids::{AccountId, FileId, MessageId, OrganizationId, RequestId, RoomId, TaskId};
use crate::roles::{Role, RoomType};
use serde::{Deserialize, Serialize};

/// The schema version written with every event today.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// One domain event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// An organization name was claimed.
    OrganizationCreated {
        /// The new organization.
        organization_id: OrganizationId,
        /// Its name as first given.
        name: String,
    },
    /// An account was created, with the hash of its API token.
    AccountCreated(AccountCreated),
    /// An account's API token was replaced by the one of a new generation (stream
    /// `account-{id}`): the token it had stops working. A rotation by the account
    /// itself hands the new token out; an administrator's revocation does not.
    AccountTokenRotated {
        /// The account.
        account_id: AccountId,
        /// The new generation (the creation's token is generation 0).
        generation: u64,
        /// Hex SHA-256 of the new generation's token; the token itself is never stored.
        token_hash: String,
        /// Who rotated it: the account itself, or the administrator who revoked it.
        by: AccountId,
        /// Unix seconds.
        at: i64,
    },
    /// A room was created with its initial members.
    RoomCreated {
        /// The room.
        room_id: RoomId,
        /// my, direct or group.
        room_type: RoomType,
        /// Display name.
        name: String,
        /// Description (may be empty).
        description: String,
        /// One of the ChatWork icon presets.
        icon_preset: String,
        /// Who created it.
        created_by: AccountId,
        /// Initial members with their roles.
        members: Vec<(AccountId, Role)>,
        /// Unix seconds.
        at: i64,
    },
    /// Room metadata changed; absent fields are unchanged.
    RoomUpdated {
        /// The room.
        room_id: RoomId,
        /// New name, if changed.
        name: Option<String>,
        /// New description, if changed.
        description: Option<String>,
        /// New icon preset, if changed.
        icon_preset: Option<String>,
        /// Who changed it.
        by: AccountId,
        /// Unix seconds.
        at: i64,
    },
    /// Members joined, left or changed role in one change of the member list.
    MembersChanged {
        /// The room.
        room_id: RoomId,
        /// Newly added members.
        added: Vec<(AccountId, Role)>,
        /// Removed members.
        removed: Vec<AccountId>,
        /// Members whose role changed, with the new role.
        role_changed: Vec<(AccountId, Role)>,
        /// Who changed the list (for a leave, the leaver).
        by: AccountId,
        /// Unix seconds.
        at: i64,
    },
    /// The room was deleted for everyone.
    RoomDeleted {
        /// The room.
        room_id: RoomId,
        /// Who deleted it.
        by: AccountId,
        /// Unix seconds.
        at: i64,
    },
    /// A message was posted.
    MessagePosted {
        /// The room.
        room_id: RoomId,
        /// The new message.
        message_id: MessageId,
        /// Position of the message in its room, from 1, without gaps.
        seq: u64,
        /// The author.
        account_id: AccountId,
        /// Body, verbatim.
        body: String,
        /// Accounts mentioned with `[To:ID]` that are members of the room.
        mentions: Vec<AccountId>,
        /// Whether the body contains `[toall]`.
        to_all: bool,
        /// Whether the author asked to keep the room unread for themselves.
        self_unread: bool,
        /// Unix seconds.
        at: i64,
    },
    /// A message body was edited by its author.
    MessageEdited {
        /// The room.
        room_id: RoomId,
        /// The message.
        message_id: MessageId,
        /// New body.
        body: String,
        /// Mentioned members in the new body.
        mentions: Vec<AccountId>,
        /// Whether the new body contains `[toall]`.
        to_all: bool,
        /// Unix seconds.
        at: i64,
    },
    /// A message was deleted by its author.
    MessageDeleted {
        /// The room.
        room_id: RoomId,
        /// The message.
        message_id: MessageId,
        /// Unix seconds.
        at: i64,
    },
    /// Tasks were assigned (one per assignee), announced by the message `message_id`
    /// (posted in the same append, just before).
    TasksAdded {
        /// The room.
        room_id: RoomId,
        /// The message announcing the tasks.
        message_id: MessageId,
        /// Who assigned them.
        assigned_by: AccountId,
        /// Task text.
        body: String,
        /// One task per assignee.
        tasks: Vec<(TaskId, AccountId)>,
        /// Deadline, Unix seconds (0 = none).
        limit_time: i64,
        /// none, date or time.
        limit_type: String,
        /// Unix seconds.
        at: i64,
    },
    /// A task was marked open or done.
    TaskStatusChanged {
        /// The room.
        room_id: RoomId,
        /// The task.
        task_id: TaskId,
        /// open or done.
        status: String,
        /// Who changed it.
        by: AccountId,
        /// Unix seconds.
        at: i64,
    },
    /// A file was uploaded, announced by the message `message_id` (posted in the same
    /// append, just before).
    FileUploaded {
        /// The room.
        room_id: RoomId,
        /// The file.
        file_id: FileId,
        /// The message announcing it.
        message_id: MessageId,
        /// Uploader.
        account_id: AccountId,
        /// The client's file name (metadata only; sanitized).
        filename: String,
        /// Size in bytes.
        filesize: u64,
        /// Key of the content in the blob store.
        blob_key: String,
        /// Unix seconds.
        at: i64,
    },
    /// The room's invitation link was created or changed.
    LinkSet {
        /// The room.
        room_id: RoomId,
        /// The link code (unique per server).
        code: String,
        /// Whether joining needs an admin's approval.
        need_acceptance: bool,
        /// Description shown with the link.
        description: String,
        /// Who set it.
        by: AccountId,
        /// Unix seconds.
        at: i64,
    },
    /// The room's invitation link was removed.
    LinkRemoved {
        /// The room.
        room_id: RoomId,
        /// The code it had.
        code: String,
        /// Who removed it.
        by: AccountId,
        /// Unix seconds.
        at: i64,
    },
    /// Someone asked to join through a link that needs acceptance.
    JoinRequested {
        /// The room.
        room_id: RoomId,
        /// Who wants to join.
        account_id: AccountId,
        /// Unix seconds.
        at: i64,
    },
    /// A join request was approved (a `MembersChanged` follows) or rejected.
    JoinRequestResolved {
        /// The room.
        room_id: RoomId,
        /// Who asked.
        account_id: AccountId,
        /// Approved?
        approved: bool,
        /// The admin who decided.
        by: AccountId,
        /// Unix seconds.
        at: i64,
    },
    /// An invitation link code was claimed for a room (stream `link-{code}`).
    LinkCodeClaimed {
        /// The code.
        code: String,
        /// The room.
        room_id: RoomId,
    },
    /// An invitation link code was given up and may be claimed again.
    LinkCodeReleased {
        /// The code.
        code: String,
        /// The room that had it.
        room_id: RoomId,
    },
    /// `from` asked `to` to become a contact (stream of the pair).
    ContactRequested {
        /// The request.
        request_id: RequestId,
        /// Who asks.
        from: AccountId,
        /// Who is asked.
        to: AccountId,
        /// A message with the request.
        message: String,
        /// Unix seconds.
        at: i64,
    },
    /// The request was approved: the two are contacts with a direct room.
    ContactApproved {
        /// The request.
        request_id: RequestId,
        /// Who asked.
        from: AccountId,
        /// Who approved.
        to: AccountId,
        /// Their direct room.
        direct_room_id: RoomId,
        /// Unix seconds.
        at: i64,
    },
    /// The request was rejected.
    ContactRejected {
        /// The request.
        request_id: RequestId,
        /// Who asked.
        from: AccountId,
        /// Who rejected.
        to: AccountId,
        /// Unix seconds.
        at: i64,
    },
    /// The two are no longer contacts (their direct room stays).
    ContactRemoved {
        /// Who removed the contact.
        by: AccountId,
        /// The other account.
        other: AccountId,
        /// Unix seconds.
        at: i64,
    },
    /// An account set up a webhook (stream `webhooks`).
    WebhookCreated {
        /// Its id (`webhook_setting_id`).
        webhook_id: u64,
        /// Whose it is.
        account_id: AccountId,
        /// Where deliveries go.
        url: String,
        /// ChatWork's event type names, sorted.
        event_types: Vec<String>,
        /// Only this room's events, if set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room_id: Option<RoomId>,
        /// Unix seconds.
        at: i64,
    },
    /// An account deleted one of its webhooks.
    WebhookDeleted {
        /// Which.
        webhook_id: u64,
        /// Whose it was.
        account_id: AccountId,
        /// Unix seconds.
        at: i64,
    },
    /// The server stopped a webhook's deliveries (its receiver answered 410 Gone).
    WebhookDisabled {
        /// Which.
        webhook_id: u64,
        /// Whose it is.
        account_id: AccountId,
        /// Why.
        reason: String,
        /// Unix seconds.
        at: i64,
    },
    /// An administrator subscribed a destination to the domain events (stream
    /// `forwarders`).
    ForwarderCreated {
        /// Its id.
        forwarder_id: u64,
        /// Where events go.
        url: String,
        /// Only these event types (empty: all).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        event_types: Vec<String>,
        /// Only these rooms' events (empty: all).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        room_ids: Vec<RoomId>,
        /// The administrator.
        by: AccountId,
        /// Unix seconds.
        at: i64,
    },
    /// An administrator removed a forwarder.
    ForwarderDeleted {
        /// Which.
        forwarder_id: u64,
        /// The administrator.
        by: AccountId,
        /// Unix seconds.
        at: i64,
    },
    /// A forwarder gave an event up after its retry schedule: the event is on the
    /// forwarder's dead-letter list (stream `forwarder-{id}`).
    ForwarderDeadLettered {
        /// Which forwarder.
        forwarder_id: u64,
        /// The given-up event's position in the log.
        position: u64,
        /// Its stored type.
        event_type: String,
        /// Its stream.
        stream: String,
        /// Attempts that failed.
        failures: u32,
        /// The last failure.
        reason: String,
        /// Unix seconds.
        at: i64,
    },
    /// An administrator asked for dead letters to be sent again.
    ForwarderReplayRequested {
        /// Which forwarder.
        forwarder_id: u64,
        /// The dead letters' positions.
        positions: Vec<u64>,
        /// The administrator.
        by: AccountId,
        /// Unix seconds.
        at: i64,
    },
    /// A replayed dead letter was delivered: it leaves the list.
    ForwarderDeadLetterDelivered {
        /// Which forwarder.
        forwarder_id: u64,
        /// The event's position in the log.
        position: u64,
        /// Unix seconds.
        at: i64,
    },
    /// An account got a sign-in address and password (stream `login-{hash of the
    /// address}`: one account per address). The password is kept only as an
    /// argon2id hash.
    LoginClaimed {
        /// Whose.
        account_id: AccountId,
        /// The address, as given (compared without case).
        login_mail: String,
        /// PHC string of the argon2id hash.
        password_hash: String,
        /// Unix seconds.
        at: i64,
    },
    /// A sign-in address got a new password.
    PasswordSet {
        /// Whose.
        account_id: AccountId,
        /// PHC string of the argon2id hash.
        password_hash: String,
        /// Unix seconds.
        at: i64,
    },
    /// An account signed in (stream `sessions-{account_id}`).
    SessionStarted {
        /// Who.
        account_id: AccountId,
        /// Hex SHA-256 of the session's cookie value.
        session_hash: String,
        /// When it stops working, Unix seconds.
        expires_at: i64,
        /// Unix seconds.
        at: i64,
    },
    /// A session was signed out.
    SessionEnded {
        /// Whose.
        account_id: AccountId,
        /// Hex SHA-256 of the session's cookie value.
        session_hash: String,
        /// Unix seconds.
        at: i64,
    },
    /// Every session of an account was signed out.
    SessionsEnded {
        /// Whose.
        account_id: AccountId,
        /// Unix seconds.
        at: i64,
    },
    /// An account's read cursor in a room moved (to mark read or unread).
    ReadCursorMoved {
        /// The reader.
        account_id: AccountId,
        /// The room.
        room_id: RoomId,
        /// Every message with `seq <= read_seq` counts as read.
        read_seq: u64,
        /// Unix seconds.
        at: i64,
    },
}

/// Payload of [`Event::AccountCreated`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountCreated {
    /// The account.
    pub account_id: AccountId,
    /// Its own "my" room.
    pub my_room_id: RoomId,
    /// Organization it belongs to.
    pub organization_id: OrganizationId,
    /// That organization's name.
    pub organization_name: String,
    /// Display name.
    pub name: String,
    /// Mail address (may be empty).
    pub mail: String,
    /// Department (may be empty).
    pub department: String,
    /// Title (may be empty).
    pub title: String,
    /// Server administrator?
    pub admin: bool,
    /// Hex SHA-256 of the API token; the token itself is never stored.
    pub token_hash: String,
    /// Unix seconds.
    pub at: i64,
}

impl Event {
    /// The stable stored name of this event.
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::OrganizationCreated { .. } => "organization_created",
            Event::AccountCreated(_) => "account_created",
            Event::AccountTokenRotated { .. } => "account_token_rotated",
            Event::RoomCreated { .. } => "room_created",
            Event::RoomUpdated { .. } => "room_updated",
            Event::MembersChanged { .. } => "members_changed",
            Event::RoomDeleted { .. } => "room_deleted",
            Event::MessagePosted { .. } => "message_posted",
            Event::MessageEdited { .. } => "message_edited",
            Event::MessageDeleted { .. } => "message_deleted",
            Event::ReadCursorMoved { .. } => "read_cursor_moved",
            Event::TasksAdded { .. } => "tasks_added",
            Event::TaskStatusChanged { .. } => "task_status_changed",
            Event::FileUploaded { .. } => "file_uploaded",
            Event::LinkSet { .. } => "link_set",
            Event::LinkRemoved { .. } => "link_removed",
            Event::JoinRequested { .. } => "join_requested",
            Event::JoinRequestResolved { .. } => "join_request_resolved",
            Event::LinkCodeClaimed { .. } => "link_code_claimed",
            Event::LinkCodeReleased { .. } => "link_code_released",
            Event::ContactRequested { .. } => "contact_requested",
            Event::ContactApproved { .. } => "contact_approved",
            Event::ContactRejected { .. } => "contact_rejected",
            Event::ContactRemoved { .. } => "contact_removed",
            Event::WebhookCreated { .. } => "webhook_created",
            Event::WebhookDeleted { .. } => "webhook_deleted",
            Event::WebhookDisabled { .. } => "webhook_disabled",
            Event::ForwarderCreated { .. } => "forwarder_created",
            Event::ForwarderDeleted { .. } => "forwarder_deleted",
            Event::ForwarderDeadLettered { .. } => "forwarder_dead_lettered",
            Event::ForwarderReplayRequested { .. } => "forwarder_replay_requested",
            Event::ForwarderDeadLetterDelivered { .. } => "forwarder_dead_letter_delivered",
            Event::LoginClaimed { .. } => "login_claimed",
            Event::PasswordSet { .. } => "password_set",
            Event::SessionStarted { .. } => "session_started",
            Event::SessionEnded { .. } => "session_ended",
            Event::SessionsEnded { .. } => "sessions_ended",
        }
    }

    /// Serializes to the stored JSON payload (including the `type` tag).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("events always serialize")
    }
}

/// A stored event that could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode stored event {event_type} v{schema_version}: {reason}")]
pub struct DecodeError {
    /// Stored name.
    pub event_type: String,
    /// Stored schema version.
    pub schema_version: u32,
    /// Why.
    pub reason: String,
}

/// Reads a stored event back, upcasting older schema versions (none exist yet).
pub fn decode_event(
    event_type: &str,
    schema_version: u32,
    data: &[u8],
) -> Result<Event, DecodeError> {
    let error = |reason: String| DecodeError {
        event_type: event_type.to_string(),
        schema_version,
        reason,
    };
    if schema_version != EVENT_SCHEMA_VERSION {
        return Err(error(format!("unknown schema version {schema_version}")));
    }
    if event_type == "message_posted"
        && let Some(event) = decode_message_posted(data)
    {
        return Ok(event);
    }
    let event: Event = serde_json::from_slice(data).map_err(|e| error(e.to_string()))?;
    if event.event_type() != event_type {
        return Err(error(format!("payload is a {}", event.event_type())));
    }
    Ok(event)
}

/// The fields of [`Event::MessagePosted`] with its `type` tag, read in one pass.
///
/// An internally tagged enum is decoded by buffering the whole object before picking
/// the variant, which made decoding the bulk of the log (almost all `message_posted`)
/// cost about twice as much as reading this struct directly.
#[derive(Deserialize)]
struct MessagePostedFields {
    #[serde(rename = "type")]
    tag: String,
    room_id: RoomId,
    message_id: MessageId,
    seq: u64,
    account_id: AccountId,
    body: String,
    mentions: Vec<AccountId>,
    to_all: bool,
    self_unread: bool,
    at: i64,
}

/// A `message_posted` payload decoded directly, or None if it is not a well-formed
/// one: the caller then decodes it as any event, with that path's result or error.
fn decode_message_posted(data: &[u8]) -> Option<Event> {
    let fields: MessagePostedFields = serde_json::from_slice(data).ok()?;
    (fields.tag == "message_posted").then_some(Event::MessagePosted {
        room_id: fields.room_id,
        message_id: fields.message_id,
        seq: fields.seq,
        account_id: fields.account_id,
        body: fields.body,
        mentions: fields.mentions,
        to_all: fields.to_all,
        self_unread: fields.self_unread,
        at: fields.at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_posted_decodes_directly_as_the_tagged_enum_would() {
        let payloads = [
            r#"{"type":"message_posted","room_id":1,"message_id":9223372036854775807,"seq":3,"account_id":2,"body":"[To:3] h\u00e9 \"q\"","mentions":[3],"to_all":false,"self_unread":true,"at":-1}"#,
            // The tag anywhere, unknown fields ignored.
            r#"{"room_id":1,"message_id":9,"seq":3,"account_id":2,"body":"","mentions":[],"to_all":true,"self_unread":false,"at":5,"extra":{"a":[1]},"type":"message_posted"}"#,
        ];
        for payload in payloads {
            let direct = decode_message_posted(payload.as_bytes()).expect("decodes directly");
            let tagged: Event = serde_json::from_str(payload).expect("decodes as the enum");
            assert_eq!(direct, tagged);
            assert_eq!(
                decode_event("message_posted", 1, payload.as_bytes()).expect("decodes"),
                tagged
            );
        }
        // Anything else falls back to the enum: its result and its errors.
        let edited = Event::MessageEdited {
            room_id: RoomId(1),
            message_id: MessageId(9),
            body: "b".into(),
            mentions: vec![],
            to_all: false,
            at: 1,
        };
        assert!(decode_message_posted(&edited.encode()).is_none());
        let error = decode_event("message_posted", 1, &edited.encode()).unwrap_err();
        assert_eq!(error.reason, "payload is a message_edited");
        assert!(decode_message_posted(br#"{"type":"message_posted","room_id":1}"#).is_none());
        assert!(decode_event("message_posted", 1, br#"{"type":"message_posted"}"#).is_err());
    }

    #[test]
    fn events_round_trip_through_their_stored_form() {
        let event = Event::MessagePosted {
            room_id: RoomId(1),
            message_id: MessageId(u64::MAX >> 1),
            seq: 1,
            account_id: AccountId(2),
            body: "[To:3] hi".into(),
            mentions: vec![AccountId(3)],
            to_all: false,
            self_unread: false,
            at: 1_700_000_000,
        };
        let bytes = event.encode();
        let back = decode_event("message_posted", 1, &bytes).unwrap();
        assert_eq!(back, event);
        assert!(decode_event("message_edited", 1, &bytes).is_err());
        assert!(decode_event("message_posted", 2, &bytes).is_err());
    }

    #[test]
    fn a_token_rotation_has_a_stable_stored_form() {
        let event = Event::AccountTokenRotated {
            account_id: AccountId(5),
            generation: 2,
            token_hash: "ab".into(),
            by: AccountId(1),
            at: 7,
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({
                "type": "account_token_rotated", "account_id": 5, "generation": 2,
                "token_hash": "ab", "by": 1, "at": 7
            })
        );
        assert_eq!(
            decode_event("account_token_rotated", 1, &event.encode()).unwrap(),
            event
        );
    }

    #[test]
    fn the_stored_name_is_stable() {
        let json = serde_json::to_value(Event::RoomDeleted {
            room_id: RoomId(5),
            by: AccountId(6),
            at: 7,
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "room_deleted", "room_id": 5, "by": 6, "at": 7})
        );
    }
}
