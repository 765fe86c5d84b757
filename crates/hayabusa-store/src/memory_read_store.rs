//! The in-memory read store: the reference behaviour of the read store port.
//!
//! Every table is a `BTreeMap` keyed by its primary key, all under one
//! `parking_lot::Mutex`, so a batch of changes and its checkpoint are applied
//! atomically and queries see either all of a batch or none of it. Unit tests of the
//! application layer use it, and the conformance suite compares every other adapter's
//! [`dump`](ReadModelWriter::dump) with this one's.
//!
//! Semantics that the port leaves open and that every adapter shares:
//! - mentions are a set: a message's `mentions` come back sorted by account id,
//!   without duplicates;
//! - members and rooms whose account or room row is unknown are left out of
//!   [`members`](ReadModelQueries::members) and [`rooms_of`](ReadModelQueries::rooms_of);
//! - `InsertMessage` of a seq or message id already present in the room replaces that
//!   message without counting it twice;
//! - `DeleteRoom` also drops the fetch cursors of the room (and, as the port says,
//!   keeps its sync ops and membership intervals);
//! - `set_fetch_cursor_to_latest` on an unknown room does nothing;
//! - `RecordOps` of an op whose (position, index) is already present replaces it;
//! - `OpenMembership` whose `from` equals the `from` of a closed interval of the same
//!   room and account reopens that interval (one row per (account, room, from));
//!   overlapping intervals may coexist and an op they share is returned once;
//! - `CloseMembership` sets the open interval's `to` as given, even below its `from`
//!   (the interval then covers nothing);
//! - an account-level op (`room_id` None) without a target is visible to nobody;
//! - `ops_for` with `limit` 0 returns nothing;
//! - a task is open when its status is exactly `"open"`; `mytask_num` (per room and in
//!   [`status`](ReadModelQueries::status)) counts only open tasks assigned to the
//!   viewer, `task_num` counts every task of the room whatever its status;
//! - [`tasks_of_account`](ReadModelQueries::tasks_of_account) and the task totals of
//!   `status` cover exactly the rooms of [`rooms_of`](ReadModelQueries::rooms_of)
//!   (a membership and a room row), so that `status().mytask_num` is the number of
//!   open tasks `tasks_of_account` lists; tasks stay in a room their assignee left,
//!   and come back if it rejoins;
//! - `PutTask` and `PutFile` replace by id, even when the new row names another room;
//! - a [`TaskView`]'s room name and icon and a task's or file's account names are empty
//!   when the row is unknown; contacts, incoming contact requests and join requests
//!   whose account row is unknown are left out;
//! - `SetLink` replaces the room's link and removes any other room's link with the
//!   same code, so a code names at most one link;
//! - `DeleteRoom` keeps the contacts whose direct room it is (the contact relation is
//!   not the room's);
//! - every limit of 0 returns nothing.
//!
//! The canonical text of a dump is built by [`CanonicalDump`] (in
//! [`crate::canonical`]), which every adapter uses so that dumps can be compared
//! across adapters.

use crate::canonical::{CanonicalDump, normalized_mentions, status_of};
use crate::error::StoreError;
use crate::event_log::Position;
use crate::read_model::{
    AccountRow, Change, ContactRequestRow, ContactRequestView, ContactView, FileRow, FileView,
    JoinRequestView, LinkRow, MemberView, MessageRow, MessageView, OpRecord, ReadModelQueries,
    ReadModelWriter, RoomRow, RoomView, StatusCounts, TaskFilter, TaskRow, TaskView,
};
use async_trait::async_trait;
use hayabusa_domain::{AccountId, FileId, MessageId, RequestId, Role, RoomId, TaskId};
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

/// A read store held in memory. Cheap to create; everything is lost on drop.
#[derive(Debug, Default)]
pub struct MemoryReadStore {
    state: Mutex<State>,
}

impl MemoryReadStore {
    /// An empty store at checkpoint 0.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Everything the store holds.
#[derive(Debug, Default)]
struct State {
    /// The read models: dropped by `reset`.
    models: Models,
    /// Fetch cursors (not a read model): the last seq each caller fetched per room.
    fetch_cursors: BTreeMap<(AccountId, RoomId), u64>,
    /// Aggregate snapshots by stream: dropped by `reset`.
    snapshots: BTreeMap<String, crate::Snapshot>,
    /// Consumer checkpoints by name (kept by `reset`).
    consumers: std::collections::BTreeMap<String, String>,
    /// Leases by name (kept by `reset`).
    leases: BTreeMap<String, crate::lease::LeaseRow>,
}

impl State {
    /// Applies a batch unless `checkpoint` is not above the stored one.
    fn apply(&mut self, changes: Vec<Change>, checkpoint: Position) {
        if checkpoint <= self.models.checkpoint {
            return;
        }
        for change in changes {
            if let Change::DeleteRoom { room_id } = &change {
                let room_id = *room_id;
                self.fetch_cursors
                    .retain(|&(_, cursor_room), _| cursor_room != room_id);
            }
            self.models.apply(change);
        }
        self.models.checkpoint = checkpoint;
    }
}

/// The read models and their checkpoint.
#[derive(Debug, Default)]
struct Models {
    checkpoint: Position,
    accounts: BTreeMap<AccountId, AccountRow>,
    rooms: BTreeMap<RoomId, RoomRow>,
    /// Membership by (room, account).
    members: BTreeMap<(RoomId, AccountId), Membership>,
    /// The same memberships by (account, room), for `rooms_of`.
    rooms_by_account: BTreeSet<(AccountId, RoomId)>,
    /// Messages by (room, seq), mentions sorted and deduplicated.
    messages: BTreeMap<MessageKey, MessageRow>,
    /// Seq of each message by (room, message id).
    message_seqs: BTreeMap<(RoomId, MessageId), u64>,
    /// Sync ops by (position, index).
    ops: BTreeMap<OpKey, OpRecord>,
    /// Keys of the room ops by room: (room, position, index).
    room_ops: BTreeSet<(RoomId, Position, u32)>,
    /// Keys of the targeted account-level ops by target: (target, position, index).
    account_ops: BTreeSet<(AccountId, Position, u32)>,
    /// Membership intervals by (account, room, from): the last position the member
    /// sees, None while the interval is open.
    intervals: BTreeMap<IntervalKey, Option<Position>>,
    /// Tasks by id.
    tasks: BTreeMap<TaskId, TaskRow>,
    /// The same tasks by (room, task id).
    tasks_by_room: BTreeSet<(RoomId, TaskId)>,
    /// Files by id.
    files: BTreeMap<FileId, FileRow>,
    /// The same files by (room, file id).
    files_by_room: BTreeSet<(RoomId, FileId)>,
    /// Contacts by (owner, contact): the direct room of the pair.
    contacts: BTreeMap<(AccountId, AccountId), RoomId>,
    /// Pending contact requests by id.
    contact_requests: BTreeMap<RequestId, ContactRequestRow>,
    /// Invitation links by room; no two share a code.
    links: BTreeMap<RoomId, LinkRow>,
    /// Pending join requests by (room, account): when they were made.
    join_requests: BTreeMap<(RoomId, AccountId), i64>,
}

/// The status that makes a task open (counted in `mytask_num`).
const OPEN: &str = "open";

/// Whether `task` passes every condition `filter` sets.
fn task_matches(filter: &TaskFilter, task: &TaskRow) -> bool {
    filter
        .account_id
        .is_none_or(|account| task.account_id == account)
        && filter
            .assigned_by
            .is_none_or(|assigner| task.assigned_by == assigner)
        && filter
            .status
            .as_deref()
            .is_none_or(|status| task.status == status)
}

/// A key of the sync op table: (position, index).
type OpKey = (Position, u32);

/// A key of the membership interval table: (account, room, from).
type IntervalKey = (AccountId, RoomId, Position);

/// A member's role and read cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Membership {
    role: Role,
    read_seq: u64,
}

/// A key of the message table: (room, seq).
type MessageKey = (RoomId, u64);

/// The key range of a room's messages with `seq > after`.
fn messages_after(room: RoomId, after: u64) -> (Bound<MessageKey>, Bound<MessageKey>) {
    (
        Bound::Excluded((room, after)),
        Bound::Included((room, u64::MAX)),
    )
}

impl Models {
    fn apply(&mut self, change: Change) {
        match change {
            Change::PutAccount(account) => {
                self.accounts.insert(account.account_id, account);
            }
            Change::SetTokenHash {
                account_id,
                token_hash,
            } => {
                if let Some(account) = self.accounts.get_mut(&account_id) {
                    account.token_hash = token_hash;
                }
            }
            Change::PutRoom(room) => {
                self.rooms.insert(room.room_id, room);
            }
            Change::UpdateRoom {
                room_id,
                name,
                description,
                icon_preset,
                at,
            } => {
                if let Some(room) = self.rooms.get_mut(&room_id) {
                    if let Some(name) = name {
                        room.name = name;
                    }
                    if let Some(description) = description {
                        room.description = description;
                    }
                    if let Some(icon_preset) = icon_preset {
                        room.icon_preset = icon_preset;
                    }
                    room.last_update_time = at;
                }
            }
            Change::DeleteRoom { room_id } => self.delete_room(room_id),
            Change::PutMember {
                room_id,
                account_id,
                role,
            } => {
                let last_seq = self.rooms.get(&room_id).map_or(0, |room| room.last_seq);
                self.members
                    .entry((room_id, account_id))
                    .and_modify(|membership| membership.role = role)
                    .or_insert(Membership {
                        role,
                        read_seq: last_seq,
                    });
                self.rooms_by_account.insert((account_id, room_id));
            }
            Change::RemoveMember {
                room_id,
                account_id,
            } => {
                self.members.remove(&(room_id, account_id));
                self.rooms_by_account.remove(&(account_id, room_id));
            }
            Change::InsertMessage(message) => self.insert_message(message),
            Change::EditMessage {
                room_id,
                message_id,
                body,
                mentions,
                to_all,
                at,
            } => {
                let Some(&seq) = self.message_seqs.get(&(room_id, message_id)) else {
                    return;
                };
                if let Some(message) = self.messages.get_mut(&(room_id, seq)) {
                    message.body = body;
                    message.mentions = normalized_mentions(mentions);
                    message.to_all = to_all;
                    message.update_time = at;
                }
                if let Some(room) = self.rooms.get_mut(&room_id) {
                    room.last_update_time = at;
                }
            }
            Change::DeleteMessage {
                room_id,
                message_id,
                at,
            } => {
                let Some(seq) = self.message_seqs.remove(&(room_id, message_id)) else {
                    return;
                };
                self.messages.remove(&(room_id, seq));
                if let Some(room) = self.rooms.get_mut(&room_id) {
                    room.message_num = room.message_num.saturating_sub(1);
                    room.last_update_time = at;
                }
            }
            Change::SetReadCursor {
                account_id,
                room_id,
                read_seq,
            } => {
                if let Some(membership) = self.members.get_mut(&(room_id, account_id)) {
                    membership.read_seq = read_seq;
                }
            }
            Change::RecordOps(ops) => {
                for op in ops {
                    self.record_op(op);
                }
            }
            Change::OpenMembership {
                room_id,
                account_id,
                from,
            } => {
                if self.open_interval(account_id, room_id).is_none() {
                    self.intervals.insert((account_id, room_id, from), None);
                }
            }
            Change::CloseMembership {
                room_id,
                account_id,
                to,
            } => {
                if let Some(key) = self.open_interval(account_id, room_id) {
                    self.intervals.insert(key, Some(to));
                }
            }
            Change::PutTask(task) => {
                if let Some(old) = self.tasks.remove(&task.task_id) {
                    self.tasks_by_room.remove(&(old.room_id, old.task_id));
                }
                self.tasks_by_room.insert((task.room_id, task.task_id));
                self.tasks.insert(task.task_id, task);
            }
            Change::SetTaskStatus { task_id, status } => {
                if let Some(task) = self.tasks.get_mut(&task_id) {
                    task.status = status;
                }
            }
            Change::PutFile(file) => {
                if let Some(old) = self.files.remove(&file.file_id) {
                    self.files_by_room.remove(&(old.room_id, old.file_id));
                }
                self.files_by_room.insert((file.room_id, file.file_id));
                self.files.insert(file.file_id, file);
            }
            Change::PutContact {
                account_id,
                contact_id,
                room_id,
            } => {
                self.contacts.insert((account_id, contact_id), room_id);
            }
            Change::RemoveContact {
                account_id,
                contact_id,
            } => {
                self.contacts.remove(&(account_id, contact_id));
            }
            Change::PutContactRequest(request) => {
                self.contact_requests.insert(request.request_id, request);
            }
            Change::RemoveContactRequest { request_id } => {
                self.contact_requests.remove(&request_id);
            }
            Change::SetLink(link) => {
                // Codes are unique: whichever room held this code loses its link.
                self.links.retain(|_, held| held.code != link.code);
                self.links.insert(link.room_id, link);
            }
            Change::RemoveLink { room_id } => {
                self.links.remove(&room_id);
            }
            Change::PutJoinRequest {
                room_id,
                account_id,
                at,
            } => {
                self.join_requests.insert((room_id, account_id), at);
            }
            Change::RemoveJoinRequest {
                room_id,
                account_id,
            } => {
                self.join_requests.remove(&(room_id, account_id));
            }
        }
    }

    /// Stores one op, replacing one with the same (position, index).
    fn record_op(&mut self, op: OpRecord) {
        let key = (op.position, op.index);
        if let Some(old) = self.ops.remove(&key) {
            match (old.room_id, old.target) {
                (Some(room), _) => {
                    self.room_ops.remove(&(room, key.0, key.1));
                }
                (None, Some(target)) => {
                    self.account_ops.remove(&(target, key.0, key.1));
                }
                (None, None) => {}
            }
        }
        match (op.room_id, op.target) {
            (Some(room), _) => {
                self.room_ops.insert((room, key.0, key.1));
            }
            (None, Some(target)) => {
                self.account_ops.insert((target, key.0, key.1));
            }
            // Visible to nobody, but kept: it is part of the recorded history.
            (None, None) => {}
        }
        self.ops.insert(key, op);
    }

    /// The key of `account`'s open interval in `room`, if any.
    fn open_interval(&self, account: AccountId, room: RoomId) -> Option<IntervalKey> {
        self.intervals
            .range((account, room, 0)..=(account, room, Position::MAX))
            .find(|(_, to)| to.is_none())
            .map(|(&key, _)| key)
    }

    /// The ops `account` sees with `after < position <= up_to`, by (position, index),
    /// at most `limit` unless the last position has more (see
    /// [`ReadModelQueries::ops_for`]).
    fn ops_for(
        &self,
        account: AccountId,
        after: Position,
        up_to: Position,
        limit: usize,
    ) -> Vec<OpRecord> {
        if after >= up_to {
            return Vec::new();
        }
        // `after < up_to <= Position::MAX`, so this cannot overflow.
        let first = after + 1;
        let mut visible: BTreeSet<OpKey> = BTreeSet::new();
        let intervals = self
            .intervals
            .range((account, RoomId(0), 0)..=(account, RoomId(u64::MAX), Position::MAX));
        for (&(_, room, from), &to) in intervals {
            let (low, high) = (first.max(from), to.map_or(up_to, |to| to.min(up_to)));
            if low > high {
                continue;
            }
            visible.extend(
                self.room_ops
                    .range((room, low, 0)..=(room, high, u32::MAX))
                    .map(|&(_, position, index)| (position, index))
                    .filter(|key| {
                        self.ops
                            .get(key)
                            .is_some_and(|op| op.target.is_none_or(|target| target == account))
                    }),
            );
        }
        visible.extend(
            self.account_ops
                .range((account, first, 0)..=(account, up_to, u32::MAX))
                .map(|&(_, position, index)| (position, index)),
        );

        let mut taken: Vec<OpRecord> = Vec::new();
        for key in visible {
            let last_position = taken.last().map(|op| op.position);
            if taken.len() >= limit && last_position != Some(key.0) {
                break;
            }
            if let Some(op) = self.ops.get(&key) {
                taken.push(op.clone());
            }
        }
        taken
    }

    fn delete_room(&mut self, room_id: RoomId) {
        self.rooms.remove(&room_id);
        let members: Vec<AccountId> = self
            .members
            .range((room_id, AccountId(0))..=(room_id, AccountId(u64::MAX)))
            .map(|(&(_, account), _)| account)
            .collect();
        for account in members {
            self.members.remove(&(room_id, account));
            self.rooms_by_account.remove(&(account, room_id));
        }
        self.messages
            .retain(|&(message_room, _), _| message_room != room_id);
        self.message_seqs
            .retain(|&(message_room, _), _| message_room != room_id);
        let tasks: Vec<TaskId> = self.task_ids_of_room(room_id).collect();
        for task in tasks {
            self.tasks.remove(&task);
            self.tasks_by_room.remove(&(room_id, task));
        }
        let files: Vec<FileId> = self.file_ids_of_room(room_id).collect();
        for file in files {
            self.files.remove(&file);
            self.files_by_room.remove(&(room_id, file));
        }
        self.links.remove(&room_id);
        self.join_requests
            .retain(|&(request_room, _), _| request_room != room_id);
    }

    /// The ids of a room's tasks, in id order.
    fn task_ids_of_room(&self, room: RoomId) -> impl Iterator<Item = TaskId> + '_ {
        self.tasks_by_room
            .range((room, TaskId(0))..=(room, TaskId(u64::MAX)))
            .map(|&(_, task)| task)
    }

    /// A room's tasks, in id order.
    fn tasks_in_room(&self, room: RoomId) -> impl Iterator<Item = &TaskRow> + '_ {
        self.task_ids_of_room(room)
            .filter_map(|task| self.tasks.get(&task))
    }

    /// The ids of a room's files, in id order.
    fn file_ids_of_room(&self, room: RoomId) -> impl Iterator<Item = FileId> + '_ {
        self.files_by_room
            .range((room, FileId(0))..=(room, FileId(u64::MAX)))
            .map(|&(_, file)| file)
    }

    /// An account's name, empty if it is unknown.
    fn name_of(&self, account: AccountId) -> String {
        self.accounts
            .get(&account)
            .map(|account| account.name.clone())
            .unwrap_or_default()
    }

    fn task_view(&self, task: &TaskRow) -> TaskView {
        let room = self.rooms.get(&task.room_id);
        TaskView {
            task: task.clone(),
            room_name: room.map(|room| room.name.clone()).unwrap_or_default(),
            room_icon_preset: room
                .map(|room| room.icon_preset.clone())
                .unwrap_or_default(),
            account_name: self.name_of(task.account_id),
            assigned_by_name: self.name_of(task.assigned_by),
        }
    }

    fn tasks_of_room(&self, room: RoomId, filter: &TaskFilter, limit: usize) -> Vec<TaskView> {
        self.tasks_in_room(room)
            .filter(|task| task_matches(filter, task))
            .take(limit)
            .map(|task| self.task_view(task))
            .collect()
    }

    fn tasks_of_account(
        &self,
        account: AccountId,
        filter: &TaskFilter,
        limit: usize,
    ) -> Vec<TaskView> {
        let filter = TaskFilter {
            account_id: Some(account),
            ..filter.clone()
        };
        let mut tasks: Vec<&TaskRow> = self
            .rooms_by_account
            .range((account, RoomId(0))..=(account, RoomId(u64::MAX)))
            .filter(|&&(_, room)| self.rooms.contains_key(&room))
            .flat_map(|&(_, room)| self.tasks_in_room(room))
            .filter(|task| task_matches(&filter, task))
            .collect();
        tasks.sort_unstable_by_key(|task| task.task_id);
        tasks
            .into_iter()
            .take(limit)
            .map(|task| self.task_view(task))
            .collect()
    }

    fn file_view(&self, file: &FileRow) -> FileView {
        FileView {
            file: file.clone(),
            account_name: self.name_of(file.account_id),
        }
    }

    fn insert_message(&mut self, mut message: MessageRow) {
        let room_id = message.room_id;
        message.mentions = normalized_mentions(std::mem::take(&mut message.mentions));
        // A replayed or conflicting insert replaces what is there instead of counting twice.
        let mut removed = 0;
        if let Some(old_seq) = self.message_seqs.remove(&(room_id, message.message_id)) {
            self.messages.remove(&(room_id, old_seq));
            removed += 1;
        }
        if let Some(old) = self.messages.remove(&(room_id, message.seq)) {
            self.message_seqs.remove(&(room_id, old.message_id));
            removed += 1;
        }
        if let Some(room) = self.rooms.get_mut(&room_id) {
            room.last_seq = room.last_seq.max(message.seq);
            room.message_num = (room.message_num + 1).saturating_sub(removed);
            room.last_update_time = message.send_time;
        }
        self.message_seqs
            .insert((room_id, message.message_id), message.seq);
        self.messages.insert((room_id, message.seq), message);
    }

    fn message_view(&self, message: &MessageRow) -> MessageView {
        MessageView {
            message: message.clone(),
            author_name: self
                .accounts
                .get(&message.account_id)
                .map(|account| account.name.clone())
                .unwrap_or_default(),
        }
    }

    /// (unread, mentions) of `viewer` in `room` with its read cursor at `read_seq`.
    fn unread_counts(&self, room: RoomId, viewer: AccountId, read_seq: u64) -> (u64, u64) {
        self.messages
            .range(messages_after(room, read_seq))
            .map(|(_, message)| message)
            .filter(|message| message.account_id != viewer)
            .fold((0, 0), |(unread, mentions), message| {
                let mentioned = message.to_all || message.mentions.binary_search(&viewer).is_ok();
                (unread + 1, mentions + u64::from(mentioned))
            })
    }

    fn room_view(&self, account: AccountId, room_id: RoomId) -> Option<RoomView> {
        let membership = self.members.get(&(room_id, account))?;
        let room = self.rooms.get(&room_id)?;
        let (unread_num, mention_num) = self.unread_counts(room_id, account, membership.read_seq);
        let (mut mytask_num, mut task_num) = (0, 0);
        for task in self.tasks_in_room(room_id) {
            task_num += 1;
            mytask_num += u64::from(task.account_id == account && task.status == OPEN);
        }
        Some(RoomView {
            room: room.clone(),
            role: membership.role,
            unread_num,
            mention_num,
            mytask_num,
            task_num,
            file_num: self.file_ids_of_room(room_id).map(|_| 1).sum(),
        })
    }

    fn rooms_of(&self, account: AccountId) -> Vec<RoomView> {
        self.rooms_by_account
            .range((account, RoomId(0))..=(account, RoomId(u64::MAX)))
            .filter_map(|&(_, room)| self.room_view(account, room))
            .collect()
    }

    fn latest_messages(&self, room: RoomId, limit: usize) -> Vec<MessageView> {
        let mut latest: Vec<MessageView> = self
            .messages
            .range(messages_after(room, 0))
            .rev()
            .take(limit)
            .map(|(_, message)| self.message_view(message))
            .collect();
        latest.reverse();
        latest
    }

    fn dump(&self) -> String {
        let mut dump = CanonicalDump::new(self.checkpoint);
        for account in self.accounts.values() {
            dump.account(account);
        }
        for room in self.rooms.values() {
            dump.room(room);
        }
        for (&(room, account), membership) in &self.members {
            dump.member(room, account, membership.role, membership.read_seq);
        }
        for message in self.messages.values() {
            dump.message(message);
        }
        for (&(account, room, from), &to) in &self.intervals {
            dump.membership_interval(account, room, from, to);
        }
        for op in self.ops.values() {
            dump.op(op);
        }
        for task in self.tasks.values() {
            dump.task(task);
        }
        for file in self.files.values() {
            dump.file(file);
        }
        for (&(account, contact), &room) in &self.contacts {
            dump.contact(account, contact, room);
        }
        for request in self.contact_requests.values() {
            dump.contact_request(request);
        }
        for link in self.links.values() {
            dump.link(link);
        }
        for (&(room, account), &at) in &self.join_requests {
            dump.join_request(room, account, at);
        }
        dump.finish()
    }
}

impl State {
    fn take_new_messages(
        &mut self,
        account: AccountId,
        room: RoomId,
        limit: usize,
    ) -> Vec<MessageView> {
        let models = &self.models;
        let (taken, new_cursor) = match self.fetch_cursors.get(&(account, room)) {
            Some(&cursor) => {
                let taken: Vec<MessageView> = models
                    .messages
                    .range(messages_after(room, cursor))
                    .take(limit)
                    .map(|(_, message)| models.message_view(message))
                    .collect();
                let new_cursor = taken.last().map_or(cursor, |view| view.message.seq);
                (taken, new_cursor)
            }
            None => {
                let taken = models.latest_messages(room, limit);
                let new_cursor = taken.last().map_or_else(
                    || models.rooms.get(&room).map_or(0, |room| room.last_seq),
                    |view| view.message.seq,
                );
                (taken, new_cursor)
            }
        };
        self.fetch_cursors.insert((account, room), new_cursor);
        taken
    }
}

#[async_trait]
impl ReadModelWriter for MemoryReadStore {
    async fn apply(&self, changes: Vec<Change>, checkpoint: Position) -> Result<(), StoreError> {
        let mut state = self.state.lock();
        state.apply(changes, checkpoint);
        Ok(())
    }

    async fn apply_fenced(
        &self,
        changes: Vec<Change>,
        checkpoint: Position,
        fence: u64,
    ) -> Result<(), StoreError> {
        let mut state = self.state.lock();
        let current = state
            .leases
            .get(crate::PROJECTOR_LEASE)
            .map(|lease| lease.fence);
        if current != Some(fence) {
            return Err(crate::lease::fenced(fence, current));
        }
        state.apply(changes, checkpoint);
        Ok(())
    }

    async fn checkpoint(&self) -> Result<Position, StoreError> {
        Ok(self.state.lock().models.checkpoint)
    }

    async fn reset(&self) -> Result<(), StoreError> {
        let mut state = self.state.lock();
        state.models = Models::default();
        state.snapshots.clear();
        Ok(())
    }

    async fn dump(&self) -> Result<String, StoreError> {
        Ok(self.state.lock().models.dump())
    }
}

#[async_trait]
impl crate::SnapshotStore for MemoryReadStore {
    async fn load_snapshot(&self, stream: &str) -> Result<Option<crate::Snapshot>, StoreError> {
        Ok(self.state.lock().snapshots.get(stream).cloned())
    }

    async fn save_snapshot(&self, snapshot: &crate::Snapshot) -> Result<(), StoreError> {
        let mut state = self.state.lock();
        let keep = state
            .snapshots
            .get(&snapshot.stream)
            .is_none_or(|stored| snapshot.replaces(stored));
        if keep {
            state
                .snapshots
                .insert(snapshot.stream.clone(), snapshot.clone());
        }
        Ok(())
    }
}

#[async_trait]
impl crate::ConsumerCheckpoints for MemoryReadStore {
    async fn consumer_checkpoint(&self, consumer: &str) -> Result<Option<String>, StoreError> {
        Ok(self.state.lock().consumers.get(consumer).cloned())
    }

    async fn save_consumer_checkpoint(
        &self,
        consumer: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        self.state
            .lock()
            .consumers
            .insert(consumer.to_owned(), value.to_owned());
        Ok(())
    }
}

#[async_trait]
impl crate::Leases for MemoryReadStore {
    async fn acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<u64>, StoreError> {
        let mut state = self.state.lock();
        let now = crate::lease::now_ms();
        let Some(row) = crate::lease::acquired(state.leases.get(name), holder, ttl, now) else {
            return Ok(None);
        };
        let fence = row.fence;
        state.leases.insert(name.to_owned(), row);
        Ok(Some(fence))
    }

    async fn renew(
        &self,
        name: &str,
        holder: &str,
        fence: u64,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let mut state = self.state.lock();
        let now = crate::lease::now_ms();
        match state.leases.get_mut(name) {
            Some(row) if row.fence == fence && row.holder == holder => {
                row.expires_at_ms = now.saturating_add(crate::lease::ttl_ms(ttl));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, name: &str, holder: &str, fence: u64) -> Result<(), StoreError> {
        let mut state = self.state.lock();
        if let Some(row) = state.leases.get_mut(name)
            && row.fence == fence
            && row.holder == holder
        {
            row.expires_at_ms = 0;
        }
        Ok(())
    }
}

#[async_trait]
impl ReadModelQueries for MemoryReadStore {
    async fn account_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<AccountRow>, StoreError> {
        Ok(self
            .state
            .lock()
            .models
            .accounts
            .values()
            .find(|account| account.token_hash == token_hash)
            .cloned())
    }

    async fn accounts(&self, ids: &[AccountId]) -> Result<Vec<AccountRow>, StoreError> {
        let state = self.state.lock();
        let ids: BTreeSet<AccountId> = ids.iter().copied().collect();
        Ok(ids
            .into_iter()
            .filter_map(|id| state.models.accounts.get(&id).cloned())
            .collect())
    }

    async fn rooms_of(&self, account: AccountId) -> Result<Vec<RoomView>, StoreError> {
        Ok(self.state.lock().models.rooms_of(account))
    }

    async fn room_of(
        &self,
        account: AccountId,
        room: RoomId,
    ) -> Result<Option<RoomView>, StoreError> {
        Ok(self.state.lock().models.room_view(account, room))
    }

    async fn members(&self, room: RoomId) -> Result<Vec<MemberView>, StoreError> {
        let state = self.state.lock();
        let models = &state.models;
        Ok(models
            .members
            .range((room, AccountId(0))..=(room, AccountId(u64::MAX)))
            .filter_map(|(&(_, account), membership)| {
                models.accounts.get(&account).map(|account| MemberView {
                    account: account.clone(),
                    role: membership.role,
                })
            })
            .collect())
    }

    async fn latest_messages(
        &self,
        room: RoomId,
        limit: usize,
    ) -> Result<Vec<MessageView>, StoreError> {
        Ok(self.state.lock().models.latest_messages(room, limit))
    }

    async fn message(
        &self,
        room: RoomId,
        message: MessageId,
    ) -> Result<Option<MessageView>, StoreError> {
        let state = self.state.lock();
        let models = &state.models;
        Ok(models
            .message_seqs
            .get(&(room, message))
            .and_then(|seq| models.messages.get(&(room, *seq)))
            .map(|message| models.message_view(message)))
    }

    async fn take_new_messages(
        &self,
        account: AccountId,
        room: RoomId,
        limit: usize,
    ) -> Result<Vec<MessageView>, StoreError> {
        Ok(self.state.lock().take_new_messages(account, room, limit))
    }

    async fn set_fetch_cursor_to_latest(
        &self,
        account: AccountId,
        room: RoomId,
    ) -> Result<(), StoreError> {
        let mut state = self.state.lock();
        if let Some(last_seq) = state.models.rooms.get(&room).map(|room| room.last_seq) {
            state.fetch_cursors.insert((account, room), last_seq);
        }
        Ok(())
    }

    async fn status(&self, account: AccountId) -> Result<StatusCounts, StoreError> {
        let rooms = self.state.lock().models.rooms_of(account);
        Ok(status_of(&rooms))
    }

    async fn tasks_of_room(
        &self,
        room: RoomId,
        filter: &TaskFilter,
        limit: usize,
    ) -> Result<Vec<TaskView>, StoreError> {
        Ok(self.state.lock().models.tasks_of_room(room, filter, limit))
    }

    async fn task(&self, room: RoomId, task: TaskId) -> Result<Option<TaskView>, StoreError> {
        let state = self.state.lock();
        let models = &state.models;
        Ok(models
            .tasks
            .get(&task)
            .filter(|task| task.room_id == room)
            .map(|task| models.task_view(task)))
    }

    async fn tasks_of_account(
        &self,
        account: AccountId,
        filter: &TaskFilter,
        limit: usize,
    ) -> Result<Vec<TaskView>, StoreError> {
        Ok(self
            .state
            .lock()
            .models
            .tasks_of_account(account, filter, limit))
    }

    async fn files_of_room(
        &self,
        room: RoomId,
        uploader: Option<AccountId>,
        limit: usize,
    ) -> Result<Vec<FileView>, StoreError> {
        let state = self.state.lock();
        let models = &state.models;
        Ok(models
            .file_ids_of_room(room)
            .filter_map(|file| models.files.get(&file))
            .filter(|file| uploader.is_none_or(|uploader| file.account_id == uploader))
            .take(limit)
            .map(|file| models.file_view(file))
            .collect())
    }

    async fn file(&self, room: RoomId, file: FileId) -> Result<Option<FileView>, StoreError> {
        let state = self.state.lock();
        let models = &state.models;
        Ok(models
            .files
            .get(&file)
            .filter(|file| file.room_id == room)
            .map(|file| models.file_view(file)))
    }

    async fn contacts(&self, account: AccountId) -> Result<Vec<ContactView>, StoreError> {
        let state = self.state.lock();
        let models = &state.models;
        Ok(models
            .contacts
            .range((account, AccountId(0))..=(account, AccountId(u64::MAX)))
            .filter_map(|(&(_, contact), &room_id)| {
                models.accounts.get(&contact).map(|contact| ContactView {
                    account: contact.clone(),
                    room_id,
                })
            })
            .collect())
    }

    async fn incoming_requests(
        &self,
        account: AccountId,
    ) -> Result<Vec<ContactRequestView>, StoreError> {
        let state = self.state.lock();
        let models = &state.models;
        Ok(models
            .contact_requests
            .values()
            .filter(|request| request.to == account)
            .filter_map(|request| {
                models
                    .accounts
                    .get(&request.from)
                    .map(|from| ContactRequestView {
                        request: request.clone(),
                        from: from.clone(),
                    })
            })
            .collect())
    }

    async fn contact_request(
        &self,
        request: RequestId,
    ) -> Result<Option<ContactRequestRow>, StoreError> {
        Ok(self
            .state
            .lock()
            .models
            .contact_requests
            .get(&request)
            .cloned())
    }

    async fn link_of_room(&self, room: RoomId) -> Result<Option<LinkRow>, StoreError> {
        Ok(self.state.lock().models.links.get(&room).cloned())
    }

    async fn link_by_code(&self, code: &str) -> Result<Option<LinkRow>, StoreError> {
        Ok(self
            .state
            .lock()
            .models
            .links
            .values()
            .find(|link| link.code == code)
            .cloned())
    }

    async fn join_requests(&self, room: RoomId) -> Result<Vec<JoinRequestView>, StoreError> {
        let state = self.state.lock();
        let models = &state.models;
        Ok(models
            .join_requests
            .range((room, AccountId(0))..=(room, AccountId(u64::MAX)))
            .filter_map(|(&(_, account), &at)| {
                models
                    .accounts
                    .get(&account)
                    .map(|account| JoinRequestView {
                        account: account.clone(),
                        at,
                    })
            })
            .collect())
    }

    async fn ops_for(
        &self,
        account: AccountId,
        after: Position,
        up_to: Position,
        limit: usize,
    ) -> Result<Vec<OpRecord>, StoreError> {
        Ok(self
            .state
            .lock()
            .models
            .ops_for(account, after, up_to, limit))
    }

    async fn ops_retained_from(&self) -> Result<Position, StoreError> {
        // Nothing is pruned yet: the whole history is kept.
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_memory_read_store_passes_the_conformance_suite() {
        crate::conformance::read_store::run_all(|| async { MemoryReadStore::new() }).await;
    }
}
