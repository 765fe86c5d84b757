//! The canonical dump of the read models and the status totals: formats every read
//! store adapter shares, so that dumps and totals compare across adapters.
//!
//! [`CanonicalDump`] is the text that [`ReadModelWriter::dump`] returns; the
//! conformance suite compares each adapter's dump with the in-memory reference's.
//! [`status_of`] derives `/my/status` totals from an account's room views, the same
//! way everywhere. Neither belongs to an adapter: adapters import them from here.
//!
//! [`ReadModelWriter::dump`]: crate::read_model::ReadModelWriter::dump

use crate::event_log::Position;
use crate::read_model::{
    AccountRow, ContactRequestRow, FileRow, LinkRow, MessageRow, OpRecord, RoomRow, RoomView,
    StatusCounts, TaskRow,
};
use hayabusa_domain::{AccountId, FileId, RequestId, Role, RoomId, TaskId};
use std::collections::BTreeMap;

/// A key of the sync op table: (position, index).
type OpKey = (Position, u32);

/// A key of the membership interval table: (account, room, from).
type IntervalKey = (AccountId, RoomId, Position);

/// Sorts and deduplicates a mention list: mentions are a set, in account id order.
pub fn normalized_mentions(mut mentions: Vec<AccountId>) -> Vec<AccountId> {
    mentions.sort_unstable();
    mentions.dedup();
    mentions
}

/// Totals over the rooms an account sees (its
/// [`rooms_of`](crate::read_model::ReadModelQueries::rooms_of) views): what
/// [`status`](crate::read_model::ReadModelQueries::status) returns. Every adapter uses
/// it, so the totals are derived the same way everywhere.
pub fn status_of(rooms: &[RoomView]) -> StatusCounts {
    rooms
        .iter()
        .fold(StatusCounts::default(), |mut totals, room| {
            totals.unread_room_num += u64::from(room.unread_num > 0);
            totals.mention_room_num += u64::from(room.mention_num > 0);
            totals.unread_num += room.unread_num;
            totals.mention_num += room.mention_num;
            totals.mytask_room_num += u64::from(room.mytask_num > 0);
            totals.mytask_num += room.mytask_num;
            totals
        })
}

/// Builds the canonical text that
/// [`ReadModelWriter::dump`](crate::read_model::ReadModelWriter::dump) returns, the same
/// for every adapter so that dumps compare across adapters.
///
/// Rows may be fed in any order; [`finish`](Self::finish) orders each table by its
/// primary key. The text is one line per row, tables in this order:
///
/// ```text
/// checkpoint 42
/// account <account_id> my_room_id=<id> organization_id=<id> organization_name="…" name="…" mail="…" department="…" title="…" admin=<bool> token_hash="…" created_at=<secs>
/// room <room_id> room_type=<my|direct|group> name="…" description="…" icon_preset="…" last_seq=<n> message_num=<n> last_update_time=<secs>
/// member <room_id> <account_id> role=<admin|member|readonly> read_seq=<n>
/// message <room_id> <seq> message_id=<id> account_id=<id> send_time=<secs> update_time=<secs> to_all=<bool> mentions=[<id>,…] body="…"
/// interval <account_id> <room_id> <from> to=<position|open>
/// op <position> <index> room_id=<id|none> target=<id|none> op_type="…" payload="…"
/// task <task_id> room_id=<id> account_id=<id> assigned_by=<id> message_id=<id> limit_time=<secs> limit_type="…" status="…" body="…"
/// file <file_id> room_id=<id> account_id=<id> message_id=<id> filesize=<bytes> upload_time=<secs> filename="…" blob_key="…"
/// contact <account_id> <contact_id> room_id=<id>
/// contact_request <request_id> from=<id> to=<id> at=<secs> message="…"
/// link <room_id> code="…" need_acceptance=<bool> description="…"
/// join_request <room_id> <account_id> at=<secs>
/// ```
///
/// Strings are JSON string literals; mentions are sorted and deduplicated.
#[derive(Debug, Default)]
pub struct CanonicalDump {
    checkpoint: Position,
    accounts: BTreeMap<AccountId, String>,
    rooms: BTreeMap<RoomId, String>,
    members: BTreeMap<(RoomId, AccountId), String>,
    messages: BTreeMap<(RoomId, u64), String>,
    intervals: BTreeMap<IntervalKey, String>,
    ops: BTreeMap<OpKey, String>,
    tasks: BTreeMap<TaskId, String>,
    files: BTreeMap<FileId, String>,
    contacts: BTreeMap<(AccountId, AccountId), String>,
    contact_requests: BTreeMap<RequestId, String>,
    links: BTreeMap<RoomId, String>,
    join_requests: BTreeMap<(RoomId, AccountId), String>,
}

/// A string as a JSON literal: unambiguous whatever it contains.
fn quoted(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

impl CanonicalDump {
    /// An empty dump of read models at `checkpoint`.
    pub fn new(checkpoint: Position) -> Self {
        CanonicalDump {
            checkpoint,
            ..Self::default()
        }
    }

    /// Adds an account row.
    pub fn account(&mut self, account: &AccountRow) {
        let line = format!(
            "account {} my_room_id={} organization_id={} organization_name={} name={} mail={} \
             department={} title={} admin={} token_hash={} created_at={}",
            account.account_id,
            account.my_room_id,
            account.organization_id,
            quoted(&account.organization_name),
            quoted(&account.name),
            quoted(&account.mail),
            quoted(&account.department),
            quoted(&account.title),
            account.admin,
            quoted(&account.token_hash),
            account.created_at,
        );
        self.accounts.insert(account.account_id, line);
    }

    /// Adds a room row.
    pub fn room(&mut self, room: &RoomRow) {
        let line = format!(
            "room {} room_type={} name={} description={} icon_preset={} last_seq={} \
             message_num={} last_update_time={}",
            room.room_id,
            room.room_type.as_str(),
            quoted(&room.name),
            quoted(&room.description),
            quoted(&room.icon_preset),
            room.last_seq,
            room.message_num,
            room.last_update_time,
        );
        self.rooms.insert(room.room_id, line);
    }

    /// Adds a membership with its read cursor.
    pub fn member(&mut self, room: RoomId, account: AccountId, role: Role, read_seq: u64) {
        let line = format!(
            "member {room} {account} role={} read_seq={read_seq}",
            role.as_str()
        );
        self.members.insert((room, account), line);
    }

    /// Adds a message with its mentions.
    pub fn message(&mut self, message: &MessageRow) {
        let mention_list = normalized_mentions(message.mentions.clone())
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let line = format!(
            "message {} {} message_id={} account_id={} send_time={} update_time={} to_all={} \
             mentions=[{mention_list}] body={}",
            message.room_id,
            message.seq,
            message.message_id,
            message.account_id,
            message.send_time,
            message.update_time,
            message.to_all,
            quoted(&message.body),
        );
        self.messages.insert((message.room_id, message.seq), line);
    }

    /// Adds a membership interval: `account` sees `room`'s ops from `from` to `to`
    /// (inclusive; None while open).
    pub fn membership_interval(
        &mut self,
        account: AccountId,
        room: RoomId,
        from: Position,
        to: Option<Position>,
    ) {
        let to = to.map_or_else(|| "open".to_owned(), |to| to.to_string());
        let line = format!("interval {account} {room} {from} to={to}");
        self.intervals.insert((account, room, from), line);
    }

    /// Adds a sync op.
    pub fn op(&mut self, op: &OpRecord) {
        let or_none = |id: Option<u64>| id.map_or_else(|| "none".to_owned(), |id| id.to_string());
        let line = format!(
            "op {} {} room_id={} target={} op_type={} payload={}",
            op.position,
            op.index,
            or_none(op.room_id.map(|room| room.0)),
            or_none(op.target.map(|target| target.0)),
            quoted(&op.op_type),
            quoted(&op.payload),
        );
        self.ops.insert((op.position, op.index), line);
    }

    /// Adds a task.
    pub fn task(&mut self, task: &TaskRow) {
        let line = format!(
            "task {} room_id={} account_id={} assigned_by={} message_id={} limit_time={} \
             limit_type={} status={} body={}",
            task.task_id,
            task.room_id,
            task.account_id,
            task.assigned_by,
            task.message_id,
            task.limit_time,
            quoted(&task.limit_type),
            quoted(&task.status),
            quoted(&task.body),
        );
        self.tasks.insert(task.task_id, line);
    }

    /// Adds a file.
    pub fn file(&mut self, file: &FileRow) {
        let line = format!(
            "file {} room_id={} account_id={} message_id={} filesize={} upload_time={} \
             filename={} blob_key={}",
            file.file_id,
            file.room_id,
            file.account_id,
            file.message_id,
            file.filesize,
            file.upload_time,
            quoted(&file.filename),
            quoted(&file.blob_key),
        );
        self.files.insert(file.file_id, line);
    }

    /// Adds one direction of a contact: `account` has `contact`, with their direct
    /// room.
    pub fn contact(&mut self, account: AccountId, contact: AccountId, room: RoomId) {
        let line = format!("contact {account} {contact} room_id={room}");
        self.contacts.insert((account, contact), line);
    }

    /// Adds a pending contact request.
    pub fn contact_request(&mut self, request: &ContactRequestRow) {
        let line = format!(
            "contact_request {} from={} to={} at={} message={}",
            request.request_id,
            request.from,
            request.to,
            request.at,
            quoted(&request.message),
        );
        self.contact_requests.insert(request.request_id, line);
    }

    /// Adds a room's invitation link.
    pub fn link(&mut self, link: &LinkRow) {
        let line = format!(
            "link {} code={} need_acceptance={} description={}",
            link.room_id,
            quoted(&link.code),
            link.need_acceptance,
            quoted(&link.description),
        );
        self.links.insert(link.room_id, line);
    }

    /// Adds a pending join request.
    pub fn join_request(&mut self, room: RoomId, account: AccountId, at: i64) {
        let line = format!("join_request {room} {account} at={at}");
        self.join_requests.insert((room, account), line);
    }

    /// The text: the checkpoint line, then every table ordered by primary key.
    pub fn finish(self) -> String {
        let mut text = format!("checkpoint {}\n", self.checkpoint);
        let lines = self
            .accounts
            .into_values()
            .chain(self.rooms.into_values())
            .chain(self.members.into_values())
            .chain(self.messages.into_values())
            .chain(self.intervals.into_values())
            .chain(self.ops.into_values())
            .chain(self.tasks.into_values())
            .chain(self.files.into_values())
            .chain(self.contacts.into_values())
            .chain(self.contact_requests.into_values())
            .chain(self.links.into_values())
            .chain(self.join_requests.into_values());
        for line in lines {
            text.push_str(&line);
            text.push('\n');
        }
        text
    }
}
