//! The read store port: flattened read models built by the projector and served by
//! the query side.
//!
//! The projector turns events into [`Change`]s (the projection logic lives once, in
//! the application layer) and hands each batch to [`ReadModelWriter::apply`] together
//! with the log position it reaches; adapters apply the changes and store that
//! checkpoint in **one transaction**. Applying is idempotent per checkpoint: a batch
//! whose checkpoint is not above the stored one is skipped.
//!
//! Unread and mention counts are *derived* at query time from the member's read
//! cursor (`read_seq`) and the room's message sequence numbers: posting a message
//! writes the message (and one row per mentioned account), never a row per member.

use crate::error::StoreError;
use crate::event_log::Position;
use async_trait::async_trait;
use hayabusa_domain::{
    AccountId, FileId, MessageId, OrganizationId, RequestId, Role, RoomId, RoomType, TaskId,
};

/// An account as the read side knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountRow {
    /// The account.
    pub account_id: AccountId,
    /// Its "my" room.
    pub my_room_id: RoomId,
    /// Organization.
    pub organization_id: OrganizationId,
    /// Organization name.
    pub organization_name: String,
    /// Display name.
    pub name: String,
    /// Mail address.
    pub mail: String,
    /// Department.
    pub department: String,
    /// Title.
    pub title: String,
    /// Server administrator?
    pub admin: bool,
    /// Hex SHA-256 of its API token.
    pub token_hash: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// A room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomRow {
    /// The room.
    pub room_id: RoomId,
    /// my, direct, group.
    pub room_type: RoomType,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Icon preset.
    pub icon_preset: String,
    /// Seq of the last message posted (0 if none).
    pub last_seq: u64,
    /// Number of messages not deleted.
    pub message_num: u64,
    /// Unix seconds of the last change to the room or its messages.
    pub last_update_time: i64,
}

/// A room as one member sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomView {
    /// The room.
    pub room: RoomRow,
    /// The viewer's role.
    pub role: Role,
    /// Messages not deleted, not by the viewer, with `seq > read_seq`.
    pub unread_num: u64,
    /// Of those, how many mention the viewer (`[To:viewer]` or `[toall]`).
    pub mention_num: u64,
    /// Open tasks of the room assigned to the viewer.
    pub mytask_num: u64,
    /// All tasks of the room.
    pub task_num: u64,
    /// Files of the room.
    pub file_num: u64,
}

/// A message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageRow {
    /// The room.
    pub room_id: RoomId,
    /// The message.
    pub message_id: MessageId,
    /// Position in the room.
    pub seq: u64,
    /// Author.
    pub account_id: AccountId,
    /// Body, verbatim.
    pub body: String,
    /// Unix seconds.
    pub send_time: i64,
    /// Unix seconds of the last edit, 0 if never edited.
    pub update_time: i64,
    /// Mentioned members.
    pub mentions: Vec<AccountId>,
    /// `[toall]`?
    pub to_all: bool,
}

/// A message with its author's display data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageView {
    /// The message.
    pub message: MessageRow,
    /// Author's name (empty if the account is unknown).
    pub author_name: String,
}

/// A member with account data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberView {
    /// The account.
    pub account: AccountRow,
    /// Role in the room.
    pub role: Role,
}

/// Totals over all rooms of one account (ChatWork `/my/status`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// Rooms with unread messages.
    pub unread_room_num: u64,
    /// Rooms with unread mentions.
    pub mention_room_num: u64,
    /// Unread messages.
    pub unread_num: u64,
    /// Unread mentions.
    pub mention_num: u64,
    /// Rooms with open tasks assigned to the account.
    pub mytask_room_num: u64,
    /// Open tasks assigned to the account.
    pub mytask_num: u64,
}

/// A task (one per assignee).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRow {
    /// The task.
    pub task_id: TaskId,
    /// Its room.
    pub room_id: RoomId,
    /// The assignee.
    pub account_id: AccountId,
    /// Who assigned it.
    pub assigned_by: AccountId,
    /// The message that announced it.
    pub message_id: MessageId,
    /// Task text.
    pub body: String,
    /// Deadline, Unix seconds (0 = none).
    pub limit_time: i64,
    /// none, date or time.
    pub limit_type: String,
    /// open or done.
    pub status: String,
}

/// A task with the names around it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskView {
    /// The task.
    pub task: TaskRow,
    /// Its room's name.
    pub room_name: String,
    /// Its room's icon preset.
    pub room_icon_preset: String,
    /// The assignee's name (empty if unknown).
    pub account_name: String,
    /// The assigner's name (empty if unknown).
    pub assigned_by_name: String,
}

/// Which tasks to list; `None` = any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskFilter {
    /// Assignee.
    pub account_id: Option<AccountId>,
    /// Assigner.
    pub assigned_by: Option<AccountId>,
    /// open or done.
    pub status: Option<String>,
}

/// An uploaded file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRow {
    /// The file.
    pub file_id: FileId,
    /// Its room.
    pub room_id: RoomId,
    /// Uploader.
    pub account_id: AccountId,
    /// The message that announced it.
    pub message_id: MessageId,
    /// File name (metadata only).
    pub filename: String,
    /// Size in bytes.
    pub filesize: u64,
    /// Unix seconds.
    pub upload_time: i64,
    /// Key of the content in the blob store.
    pub blob_key: String,
}

/// A file with its uploader's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileView {
    /// The file.
    pub file: FileRow,
    /// Uploader's name (empty if unknown).
    pub account_name: String,
}

/// A contact of an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactView {
    /// The contact's account.
    pub account: AccountRow,
    /// The direct room of the pair.
    pub room_id: RoomId,
}

/// A pending contact request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactRequestRow {
    /// The request.
    pub request_id: RequestId,
    /// Who asks.
    pub from: AccountId,
    /// Who is asked.
    pub to: AccountId,
    /// Message with the request.
    pub message: String,
    /// Unix seconds.
    pub at: i64,
}

/// A pending contact request with the asking account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactRequestView {
    /// The request.
    pub request: ContactRequestRow,
    /// The asking account.
    pub from: AccountRow,
}

/// A room's invitation link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkRow {
    /// The room.
    pub room_id: RoomId,
    /// Code (unique per server).
    pub code: String,
    /// Joining needs an admin's approval.
    pub need_acceptance: bool,
    /// Description.
    pub description: String,
}

/// A pending request to join a room through its link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinRequestView {
    /// Who asks.
    pub account: AccountRow,
    /// Unix seconds.
    pub at: i64,
}

/// One sync operation (LINE's fetchOps), as recorded by the projector.
///
/// Ops form a per-room feed (plus account-level ops with `room_id = None`). They are
/// written **once per event**, never once per member: who sees an op is decided at
/// read time from membership intervals ([`Change::OpenMembership`] /
/// [`Change::CloseMembership`]) and the op's optional `target`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpRecord {
    /// Log position of the event that caused it (the op's revision).
    pub position: Position,
    /// Index among the ops of the same event (0, 1, …).
    pub index: u32,
    /// The room it concerns; None for account-level ops (contacts, later).
    pub room_id: Option<RoomId>,
    /// If set, only this account sees the op (e.g. `read_changed`, `mention`).
    pub target: Option<AccountId>,
    /// Op type (`message_created`, `member_added`, …).
    pub op_type: String,
    /// The op's fields as a JSON object (text).
    pub payload: String,
}

/// A mutation of the read models, computed by the projector from events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Insert an account (replaces one with the same id).
    PutAccount(AccountRow),
    /// Replace an account's token hash (its token was rotated or revoked): the old
    /// hash finds nobody from then on. Nothing happens for an unknown account.
    SetTokenHash {
        /// The account.
        account_id: AccountId,
        /// Hex SHA-256 of its current token.
        token_hash: String,
    },
    /// Insert a room (replaces one with the same id).
    PutRoom(RoomRow),
    /// Change room metadata; `None` fields stay.
    UpdateRoom {
        /// The room.
        room_id: RoomId,
        /// New name.
        name: Option<String>,
        /// New description.
        description: Option<String>,
        /// New icon.
        icon_preset: Option<String>,
        /// Unix seconds.
        at: i64,
    },
    /// Remove a room with its members, messages, mentions, cursors, tasks, files, link
    /// and join requests. Its sync ops and membership intervals stay: they are history
    /// that members resume from.
    DeleteRoom {
        /// The room.
        room_id: RoomId,
    },
    /// Add a member or change its role. A new member's read cursor starts at the room's
    /// `last_seq` (history is visible but not unread); an existing cursor is kept.
    PutMember {
        /// The room.
        room_id: RoomId,
        /// The member.
        account_id: AccountId,
        /// Role.
        role: Role,
    },
    /// Remove a member and its read cursor for the room.
    RemoveMember {
        /// The room.
        room_id: RoomId,
        /// The member.
        account_id: AccountId,
    },
    /// Insert a message; sets the room's `last_seq`, bumps `message_num` and
    /// `last_update_time`.
    InsertMessage(MessageRow),
    /// Replace a message's body and addressing; sets `update_time`.
    EditMessage {
        /// The room.
        room_id: RoomId,
        /// The message.
        message_id: MessageId,
        /// New body.
        body: String,
        /// Mentioned members.
        mentions: Vec<AccountId>,
        /// `[toall]`?
        to_all: bool,
        /// Unix seconds.
        at: i64,
    },
    /// Remove a message (and its mentions); decrements `message_num`.
    DeleteMessage {
        /// The room.
        room_id: RoomId,
        /// The message.
        message_id: MessageId,
        /// Unix seconds.
        at: i64,
    },
    /// Record sync ops (all of one event, in index order).
    RecordOps(Vec<OpRecord>),
    /// `account` is a member of `room` from log position `from` (inclusive) on: it sees
    /// the room's ops at positions `>= from`. Opening an already open interval keeps it.
    OpenMembership {
        /// The room.
        room_id: RoomId,
        /// The member.
        account_id: AccountId,
        /// First position the member sees.
        from: Position,
    },
    /// Closes `account`'s open interval in `room` at log position `to` (inclusive: the
    /// member still sees the op that removed it, and nothing after).
    CloseMembership {
        /// The room.
        room_id: RoomId,
        /// The member.
        account_id: AccountId,
        /// Last position the member sees.
        to: Position,
    },
    /// Insert a task (replaces one with the same id).
    PutTask(TaskRow),
    /// Set a task's status (ignored if unknown).
    SetTaskStatus {
        /// The task.
        task_id: TaskId,
        /// open or done.
        status: String,
    },
    /// Insert a file (replaces one with the same id).
    PutFile(FileRow),
    /// `account_id` has `contact_id` as a contact, with their direct room (one
    /// direction; the projector emits both).
    PutContact {
        /// The owner of the contact list.
        account_id: AccountId,
        /// The contact.
        contact_id: AccountId,
        /// Their direct room.
        room_id: RoomId,
    },
    /// Remove one direction of a contact.
    RemoveContact {
        /// The owner of the contact list.
        account_id: AccountId,
        /// The contact.
        contact_id: AccountId,
    },
    /// A pending contact request (replaces one with the same id).
    PutContactRequest(ContactRequestRow),
    /// A contact request is no longer pending.
    RemoveContactRequest {
        /// The request.
        request_id: RequestId,
    },
    /// Set a room's invitation link (replaces the previous one of the room).
    SetLink(LinkRow),
    /// Remove a room's invitation link.
    RemoveLink {
        /// The room.
        room_id: RoomId,
    },
    /// A pending request to join a room.
    PutJoinRequest {
        /// The room.
        room_id: RoomId,
        /// Who asks.
        account_id: AccountId,
        /// Unix seconds.
        at: i64,
    },
    /// A join request is no longer pending.
    RemoveJoinRequest {
        /// The room.
        room_id: RoomId,
        /// Who asked.
        account_id: AccountId,
    },
    /// Set a member's read cursor (ignored if not a member).
    SetReadCursor {
        /// The reader.
        account_id: AccountId,
        /// The room.
        room_id: RoomId,
        /// Everything with `seq <= read_seq` is read.
        read_seq: u64,
    },
}

/// Writing projections (used by the projector only).
#[async_trait]
pub trait ReadModelWriter: Send + Sync {
    /// Applies `changes` and stores `checkpoint` in one transaction. Does nothing if
    /// `checkpoint` is not above the stored checkpoint.
    async fn apply(&self, changes: Vec<Change>, checkpoint: Position) -> Result<(), StoreError>;
    /// [`ReadModelWriter::apply`] by the projector holding the projector lease
    /// ([`crate::PROJECTOR_LEASE`]) with `fence`: refused with
    /// [`StoreError::Fenced`], changing nothing, unless `fence` is still the lease's
    /// latest fence, checked in the same transaction as the changes.
    async fn apply_fenced(
        &self,
        changes: Vec<Change>,
        checkpoint: Position,
        fence: u64,
    ) -> Result<(), StoreError>;
    /// The log position the read models reflect.
    async fn checkpoint(&self) -> Result<Position, StoreError>;
    /// Drops every read model and the checkpoint (for a rebuild). Fetch cursors stay.
    async fn reset(&self) -> Result<(), StoreError>;
    /// A canonical text dump of every read model (not fetch cursors), for comparing a
    /// rebuilt store with an incrementally built one.
    async fn dump(&self) -> Result<String, StoreError>;
}

/// Queries.
#[async_trait]
pub trait ReadModelQueries: Send + Sync {
    /// The account owning a token hash.
    async fn account_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<AccountRow>, StoreError>;
    /// Accounts by id, in id order; unknown ids are left out.
    async fn accounts(&self, ids: &[AccountId]) -> Result<Vec<AccountRow>, StoreError>;
    /// Rooms `account` is a member of, by room id.
    async fn rooms_of(&self, account: AccountId) -> Result<Vec<RoomView>, StoreError>;
    /// The ids of the rooms `account` is a member of, by room id (what
    /// [`ReadModelQueries::rooms_of`] lists, without the counts; adapters override it
    /// with a cheaper query).
    async fn room_ids_of(&self, account: AccountId) -> Result<Vec<RoomId>, StoreError> {
        Ok(self
            .rooms_of(account)
            .await?
            .into_iter()
            .map(|view| view.room.room_id)
            .collect())
    }
    /// One room as `account` sees it; None if it is not a member.
    async fn room_of(
        &self,
        account: AccountId,
        room: RoomId,
    ) -> Result<Option<RoomView>, StoreError>;
    /// Members of a room, by account id.
    async fn members(&self, room: RoomId) -> Result<Vec<MemberView>, StoreError>;
    /// The latest `limit` messages of a room, oldest first.
    async fn latest_messages(
        &self,
        room: RoomId,
        limit: usize,
    ) -> Result<Vec<MessageView>, StoreError>;
    /// One message.
    async fn message(
        &self,
        room: RoomId,
        message: MessageId,
    ) -> Result<Option<MessageView>, StoreError>;
    /// The messages after `account`'s fetch cursor in `room` (oldest first, at most
    /// `limit`), moving the cursor past them atomically. A caller without a cursor gets
    /// the latest `limit` messages.
    async fn take_new_messages(
        &self,
        account: AccountId,
        room: RoomId,
        limit: usize,
    ) -> Result<Vec<MessageView>, StoreError>;
    /// Moves `account`'s fetch cursor in `room` to the latest message (after a force=1
    /// fetch, so that the next force=0 returns only newer ones).
    async fn set_fetch_cursor_to_latest(
        &self,
        account: AccountId,
        room: RoomId,
    ) -> Result<(), StoreError>;
    /// Totals over all of `account`'s rooms.
    async fn status(&self, account: AccountId) -> Result<StatusCounts, StoreError>;
    /// Tasks of a room matching `filter`, by task id, at most `limit`.
    async fn tasks_of_room(
        &self,
        room: RoomId,
        filter: &TaskFilter,
        limit: usize,
    ) -> Result<Vec<TaskView>, StoreError>;
    /// One task of a room.
    async fn task(&self, room: RoomId, task: TaskId) -> Result<Option<TaskView>, StoreError>;
    /// Tasks assigned to `account` in rooms it is a member of, matching the filter's
    /// `assigned_by` and `status` (its `account_id` is ignored), by task id, at most
    /// `limit`.
    async fn tasks_of_account(
        &self,
        account: AccountId,
        filter: &TaskFilter,
        limit: usize,
    ) -> Result<Vec<TaskView>, StoreError>;
    /// Files of a room, optionally only one uploader's, by file id, at most `limit`.
    async fn files_of_room(
        &self,
        room: RoomId,
        uploader: Option<AccountId>,
        limit: usize,
    ) -> Result<Vec<FileView>, StoreError>;
    /// One file of a room.
    async fn file(&self, room: RoomId, file: FileId) -> Result<Option<FileView>, StoreError>;
    /// `account`'s contacts, by contact account id.
    async fn contacts(&self, account: AccountId) -> Result<Vec<ContactView>, StoreError>;
    /// Pending contact requests addressed to `account`, by request id.
    async fn incoming_requests(
        &self,
        account: AccountId,
    ) -> Result<Vec<ContactRequestView>, StoreError>;
    /// One pending contact request.
    async fn contact_request(
        &self,
        request: RequestId,
    ) -> Result<Option<ContactRequestRow>, StoreError>;
    /// A room's invitation link.
    async fn link_of_room(&self, room: RoomId) -> Result<Option<LinkRow>, StoreError>;
    /// The link with this code.
    async fn link_by_code(&self, code: &str) -> Result<Option<LinkRow>, StoreError>;
    /// Pending join requests of a room, by account id.
    async fn join_requests(&self, room: RoomId) -> Result<Vec<JoinRequestView>, StoreError>;
    /// The sync ops `account` sees with `after < position <= up_to`, ordered by
    /// (position, index): ops of rooms during the account's membership intervals
    /// (untargeted or targeted at it) and account-level ops targeted at it. Returns at
    /// most `limit` ops but never splits one position's ops (it may return more than
    /// `limit` to finish the last position).
    async fn ops_for(
        &self,
        account: AccountId,
        after: Position,
        up_to: Position,
        limit: usize,
    ) -> Result<Vec<OpRecord>, StoreError>;
    /// [`ops_for`](ReadModelQueries::ops_for) of several accounts at once: one answer
    /// per request (an account and its `after`; an account may come twice), in
    /// order, all with the same `up_to` and `limit`. A store whose every query is a
    /// round trip answers them in one (PostgreSQL); the default asks one by one.
    async fn ops_for_accounts(
        &self,
        requests: &[(AccountId, Position)],
        up_to: Position,
        limit: usize,
    ) -> Result<Vec<Vec<OpRecord>>, StoreError> {
        let mut answers = Vec::with_capacity(requests.len());
        for &(account, after) in requests {
            answers.push(self.ops_for(account, after, up_to, limit).await?);
        }
        Ok(answers)
    }
    /// The lowest position `ops_for` can still answer from (0 = history complete).
    /// A client whose revision is below it has lost history and must resync.
    async fn ops_retained_from(&self) -> Result<Position, StoreError>;
}

/// A whole read store: read models, the aggregates' snapshots kept beside them, and
/// the leases of the processes that share it.
pub trait ReadStore:
    ReadModelWriter
    + ReadModelQueries
    + crate::SnapshotStore
    + crate::Leases
    + crate::ConsumerCheckpoints
{
}
impl<
    T: ReadModelWriter
        + ReadModelQueries
        + crate::SnapshotStore
        + crate::Leases
        + crate::ConsumerCheckpoints,
> ReadStore for T
{
}
