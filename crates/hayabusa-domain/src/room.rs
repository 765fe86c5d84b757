//! The room aggregate: metadata, members with roles, and the facts about messages
//! that the rules need (author, deleted).
//!
//! `decide` turns a command into events or refuses it; `evolve` folds an event into
//! the state. Both are pure: time and ids arrive inside the command.

use crate::error::DomainError;
use crate::event::Event;
use crate::ids::{AccountId, FileId, MessageId, RoomId, TaskId};
use crate::notation::parse_addressing;
use crate::text::{clean_name, file_name};
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub use crate::roles::{Role, RoomType};

/// Icon presets ChatWork accepts.
pub const ICON_PRESETS: &[&str] = &[
    "group", "check", "document", "meeting", "event", "project", "business", "study", "security",
    "star", "idea", "heart", "magcup", "beer", "music", "sports", "travel",
];

/// Longest room name, in characters.
pub const MAX_ROOM_NAME_CHARS: usize = 255;
/// Longest message body, in characters.
pub const MAX_MESSAGE_CHARS: usize = 65_535;
/// Longest room description, in characters (ChatWork documents none; the same as a
/// message body).
pub const MAX_DESCRIPTION_CHARS: usize = 65_535;

/// What the rules know about one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageFacts {
    /// Who wrote it.
    pub author: AccountId,
    /// Its position in the room.
    pub seq: u64,
    /// Deleted messages cannot be edited or deleted again.
    pub deleted: bool,
}

/// What the rules know about one task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskFacts {
    /// The assignee.
    pub assignee: AccountId,
    /// Who assigned it.
    pub assigned_by: AccountId,
}

/// Task deadline kinds ChatWork accepts.
pub const LIMIT_TYPES: &[&str] = &["none", "date", "time"];

/// The longest invitation link code.
pub const MAX_LINK_CODE_CHARS: usize = 50;

/// Checks an invitation link code: 1–50 characters of `[A-Za-z0-9_-]`.
pub fn validate_link_code(code: &str) -> Result<(), DomainError> {
    let valid = !code.is_empty()
        && code.len() <= MAX_LINK_CODE_CHARS
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(DomainError::Invalid(format!(
            "code must be 1 to {MAX_LINK_CODE_CHARS} characters of A-Z, a-z, 0-9, _ and -"
        )))
    }
}

/// The state of a room as the write side sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Room {
    /// None until created.
    pub info: Option<RoomInfo>,
}

/// A created room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomInfo {
    /// The room.
    pub room_id: RoomId,
    /// Its type.
    pub room_type: RoomType,
    /// Name.
    pub name: String,
    /// Current members.
    pub members: BTreeMap<AccountId, Role>,
    /// Number of messages ever posted (the last seq).
    pub last_seq: u64,
    /// Facts per message.
    pub messages: HashMap<MessageId, MessageFacts>,
    /// Facts per task.
    pub tasks: HashMap<TaskId, TaskFacts>,
    /// The invitation link's code and whether joining needs acceptance.
    pub link: Option<(String, bool)>,
    /// Accounts waiting for an admin to let them in.
    pub pending_joins: BTreeSet<AccountId>,
    /// Deleted rooms refuse everything.
    pub deleted: bool,
}

/// A room command. Who acts is always given; permission facts that need other
/// aggregates (organizations, contacts) are checked by the caller before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoomCommand {
    /// Create a room.
    Create {
        /// New id.
        room_id: RoomId,
        /// Type.
        room_type: RoomType,
        /// Name (1–255 characters).
        name: String,
        /// Description.
        description: String,
        /// Icon preset (one of [`ICON_PRESETS`]).
        icon_preset: String,
        /// Creator.
        creator: AccountId,
        /// Initial members.
        members: Vec<(AccountId, Role)>,
    },
    /// Change name, description or icon.
    Update {
        /// New name.
        name: Option<String>,
        /// New description.
        description: Option<String>,
        /// New icon.
        icon_preset: Option<String>,
    },
    /// Replace the whole member list.
    SetMembers {
        /// The complete new member list.
        members: Vec<(AccountId, Role)>,
    },
    /// The actor leaves the room.
    Leave,
    /// Delete the room for everyone.
    Delete,
    /// Post a message.
    PostMessage {
        /// New id.
        message_id: MessageId,
        /// Body (1–65535 characters).
        body: String,
        /// Keep the room unread for the author.
        self_unread: bool,
    },
    /// Edit one's own message.
    EditMessage {
        /// The message.
        message_id: MessageId,
        /// New body.
        body: String,
    },
    /// Delete one's own message.
    DeleteMessage {
        /// The message.
        message_id: MessageId,
    },
    /// Assign a task to each of `to_ids`, announced by a message.
    AddTasks {
        /// The announcing message's id.
        message_id: MessageId,
        /// One new id per assignee, in the order of `to_ids`.
        task_ids: Vec<TaskId>,
        /// Task text.
        body: String,
        /// Assignees (members of the room).
        to_ids: Vec<AccountId>,
        /// Deadline, Unix seconds (0 = none).
        limit_time: i64,
        /// none, date or time.
        limit_type: String,
    },
    /// Mark a task open or done (its assignee or assigner).
    SetTaskStatus {
        /// The task.
        task_id: TaskId,
        /// Done?
        done: bool,
    },
    /// Record an uploaded file, announced by a message.
    AttachFile {
        /// The file's id.
        file_id: FileId,
        /// The announcing message's id.
        message_id: MessageId,
        /// The client's file name (sanitized).
        filename: String,
        /// Size in bytes.
        filesize: u64,
        /// Where the content is in the blob store.
        blob_key: String,
        /// Text to post with the file (may be empty).
        message: String,
    },
    /// Create (`create`) or change the invitation link. The code must have been
    /// claimed for this room already.
    SetLink {
        /// Code.
        code: String,
        /// Joining needs acceptance.
        need_acceptance: bool,
        /// Description.
        description: String,
        /// true: the link must not exist yet; false: it must exist.
        create: bool,
    },
    /// Remove the invitation link.
    RemoveLink,
    /// The actor (not a member) joins through the link `code`.
    JoinByLink {
        /// The code the actor used.
        code: String,
    },
    /// An admin lets a pending account in, or not.
    ResolveJoin {
        /// Who asked.
        account: AccountId,
        /// Let in?
        approve: bool,
    },
    /// Move the actor's read cursor: read up to a message (or the latest), or unread from one.
    MoveReadCursor {
        /// The message concerned; None = the latest.
        message_id: Option<MessageId>,
        /// true: mark read up to and including it; false: unread from it on.
        read: bool,
    },
}

impl Room {
    /// The room's info if it exists and is not deleted.
    pub fn live(&self) -> Option<&RoomInfo> {
        self.info.as_ref().filter(|info| !info.deleted)
    }

    /// The role of `account` in the live room, if a member.
    pub fn role_of(&self, account: AccountId) -> Option<Role> {
        self.live()
            .and_then(|info| info.members.get(&account).copied())
    }

    /// Decides what `actor`'s command produces at time `at` (Unix seconds).
    pub fn decide(
        &self,
        actor: AccountId,
        command: RoomCommand,
        at: i64,
    ) -> Result<Vec<Event>, DomainError> {
        if let RoomCommand::Create {
            room_id,
            room_type,
            name,
            description,
            icon_preset,
            creator,
            members,
        } = command
        {
            if self.info.is_some() {
                return Err(DomainError::Conflict("the room exists already".into()));
            }
            let name = clean_name(&name);
            validate_room_name(&name)?;
            validate_description(&description)?;
            validate_icon(&icon_preset)?;
            let members = validate_member_list(members)?;
            return Ok(vec![Event::RoomCreated {
                room_id,
                room_type,
                name,
                description,
                icon_preset,
                created_by: creator,
                members,
                at,
            }]);
        }

        let info = self.live().ok_or(DomainError::NotFound("room"))?;
        if let RoomCommand::JoinByLink { code } = &command {
            return join_by_link(info, actor, code, at);
        }
        let role = *info
            .members
            .get(&actor)
            .ok_or(DomainError::NotFound("room"))?;
        let room_id = info.room_id;
        match command {
            RoomCommand::Create { .. } => unreachable!("handled above"),
            RoomCommand::Update {
                name,
                description,
                icon_preset,
            } => {
                require_admin(role)?;
                require_group(info, "change")?;
                let name = name.map(|name| clean_name(&name));
                if let Some(name) = &name {
                    validate_room_name(name)?;
                }
                if let Some(description) = &description {
                    validate_description(description)?;
                }
                if let Some(icon) = &icon_preset {
                    validate_icon(icon)?;
                }
                Ok(vec![Event::RoomUpdated {
                    room_id,
                    name,
                    description,
                    icon_preset,
                    by: actor,
                    at,
                }])
            }
            RoomCommand::SetMembers { members } => {
                require_admin(role)?;
                require_group(info, "change the members of")?;
                let members = validate_member_list(members)?;
                let new: BTreeMap<AccountId, Role> = members.iter().copied().collect();
                let added = members
                    .iter()
                    .filter(|(id, _)| !info.members.contains_key(id))
                    .copied()
                    .collect::<Vec<_>>();
                let removed = info
                    .members
                    .keys()
                    .filter(|id| !new.contains_key(id))
                    .copied()
                    .collect::<Vec<_>>();
                let role_changed = members
                    .iter()
                    .filter(|(id, role)| info.members.get(id).is_some_and(|old| old != role))
                    .copied()
                    .collect::<Vec<_>>();
                if added.is_empty() && removed.is_empty() && role_changed.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![Event::MembersChanged {
                    room_id,
                    added,
                    removed,
                    role_changed,
                    by: actor,
                    at,
                }])
            }
            RoomCommand::Leave => {
                require_group(info, "leave")?;
                let other_admins = info
                    .members
                    .iter()
                    .any(|(id, r)| *id != actor && *r == Role::Admin);
                let others = info.members.len() > 1;
                if role == Role::Admin && others && !other_admins {
                    return Err(DomainError::Conflict(
                        "the last admin cannot leave while other members remain: make another member admin first".into(),
                    ));
                }
                let mut events = vec![Event::MembersChanged {
                    room_id,
                    added: vec![],
                    removed: vec![actor],
                    role_changed: vec![],
                    by: actor,
                    at,
                }];
                if !others {
                    events.push(Event::RoomDeleted {
                        room_id,
                        by: actor,
                        at,
                    });
                }
                Ok(events)
            }
            RoomCommand::Delete => {
                require_admin(role)?;
                require_group(info, "delete")?;
                Ok(vec![Event::RoomDeleted {
                    room_id,
                    by: actor,
                    at,
                }])
            }
            RoomCommand::PostMessage {
                message_id,
                body,
                self_unread,
            } => {
                if role == Role::Readonly {
                    return Err(DomainError::Forbidden(
                        "readonly members cannot post messages".into(),
                    ));
                }
                validate_body(&body)?;
                if info.messages.contains_key(&message_id) {
                    return Err(DomainError::Conflict("message id in use".into()));
                }
                let (mentions, to_all) = addressing_in(info, &body);
                Ok(vec![Event::MessagePosted {
                    room_id,
                    message_id,
                    seq: info.last_seq + 1,
                    account_id: actor,
                    body,
                    mentions,
                    to_all,
                    self_unread,
                    at,
                }])
            }
            RoomCommand::EditMessage { message_id, body } => {
                own_live_message(info, actor, message_id, "edit")?;
                validate_body(&body)?;
                let (mentions, to_all) = addressing_in(info, &body);
                Ok(vec![Event::MessageEdited {
                    room_id,
                    message_id,
                    body,
                    mentions,
                    to_all,
                    at,
                }])
            }
            RoomCommand::DeleteMessage { message_id } => {
                own_live_message(info, actor, message_id, "delete")?;
                Ok(vec![Event::MessageDeleted {
                    room_id,
                    message_id,
                    at,
                }])
            }
            RoomCommand::AddTasks {
                message_id,
                task_ids,
                body,
                to_ids,
                limit_time,
                limit_type,
            } => {
                if role == Role::Readonly {
                    return Err(DomainError::Forbidden(
                        "readonly members cannot create tasks".into(),
                    ));
                }
                validate_body(&body)?;
                if to_ids.is_empty() {
                    return Err(DomainError::Invalid(
                        "to_ids must name at least one member".into(),
                    ));
                }
                let mut seen = BTreeSet::new();
                if let Some(twice) = to_ids.iter().find(|id| !seen.insert(**id)) {
                    return Err(DomainError::Invalid(format!(
                        "account {twice} is listed more than once in to_ids"
                    )));
                }
                let outsiders: Vec<String> = to_ids
                    .iter()
                    .filter(|id| !info.members.contains_key(id))
                    .map(|id| id.to_string())
                    .collect();
                if !outsiders.is_empty() {
                    return Err(DomainError::Invalid(format!(
                        "to_ids must be members of the room: {}",
                        outsiders.join(",")
                    )));
                }
                if !LIMIT_TYPES.contains(&limit_type.as_str()) {
                    return Err(DomainError::Invalid(
                        "limit_type must be one of none, date, time".into(),
                    ));
                }
                if limit_time < 0 {
                    return Err(DomainError::Invalid("limit must be a Unix time".into()));
                }
                if task_ids.len() != to_ids.len() {
                    return Err(DomainError::Invalid("one task id per assignee".into()));
                }
                let announcement = format!("[task]{body}[/task]");
                validate_body(&announcement)?;
                Ok(vec![
                    Event::MessagePosted {
                        room_id,
                        message_id,
                        seq: info.last_seq + 1,
                        account_id: actor,
                        body: announcement,
                        mentions: to_ids.iter().copied().filter(|id| *id != actor).collect(),
                        to_all: false,
                        self_unread: false,
                        at,
                    },
                    Event::TasksAdded {
                        room_id,
                        message_id,
                        assigned_by: actor,
                        body,
                        tasks: task_ids.into_iter().zip(to_ids).collect(),
                        limit_time,
                        limit_type,
                        at,
                    },
                ])
            }
            RoomCommand::SetTaskStatus { task_id, done } => {
                let facts = info
                    .tasks
                    .get(&task_id)
                    .ok_or(DomainError::NotFound("task"))?;
                if actor != facts.assignee && actor != facts.assigned_by {
                    return Err(DomainError::Forbidden(
                        "only the assignee or the assigner can change a task's status".into(),
                    ));
                }
                Ok(vec![Event::TaskStatusChanged {
                    room_id,
                    task_id,
                    status: if done { "done" } else { "open" }.into(),
                    by: actor,
                    at,
                }])
            }
            RoomCommand::AttachFile {
                file_id,
                message_id,
                filename,
                filesize,
                blob_key,
                message,
            } => {
                if role == Role::Readonly {
                    return Err(DomainError::Forbidden(
                        "readonly members cannot upload files".into(),
                    ));
                }
                let filename = file_name(&filename);
                let body = attachment_body(file_id, &filename, &message)?;
                let (mentions, to_all) = addressing_in(info, &body);
                Ok(vec![
                    Event::MessagePosted {
                        room_id,
                        message_id,
                        seq: info.last_seq + 1,
                        account_id: actor,
                        body,
                        mentions,
                        to_all,
                        self_unread: false,
                        at,
                    },
                    Event::FileUploaded {
                        room_id,
                        file_id,
                        message_id,
                        account_id: actor,
                        filename,
                        filesize,
                        blob_key,
                        at,
                    },
                ])
            }
            RoomCommand::SetLink {
                code,
                need_acceptance,
                description,
                create,
            } => {
                require_admin(role)?;
                require_group(info, "share")?;
                validate_link_code(&code)?;
                match (&info.link, create) {
                    (Some(_), true) => {
                        return Err(DomainError::Conflict(
                            "the room has an invitation link already".into(),
                        ));
                    }
                    (None, false) => return Err(DomainError::NotFound("link")),
                    _ => {}
                }
                Ok(vec![Event::LinkSet {
                    room_id,
                    code,
                    need_acceptance,
                    description,
                    by: actor,
                    at,
                }])
            }
            RoomCommand::RemoveLink => {
                require_admin(role)?;
                let (code, _) = info.link.clone().ok_or(DomainError::NotFound("link"))?;
                Ok(vec![Event::LinkRemoved {
                    room_id,
                    code,
                    by: actor,
                    at,
                }])
            }
            RoomCommand::JoinByLink { .. } => unreachable!("handled above"),
            RoomCommand::ResolveJoin { account, approve } => {
                require_admin(role)?;
                if !info.pending_joins.contains(&account) {
                    return Err(DomainError::NotFound("join request"));
                }
                let mut events = vec![Event::JoinRequestResolved {
                    room_id,
                    account_id: account,
                    approved: approve,
                    by: actor,
                    at,
                }];
                if approve && !info.members.contains_key(&account) {
                    events.push(Event::MembersChanged {
                        room_id,
                        added: vec![(account, Role::Member)],
                        removed: vec![],
                        role_changed: vec![],
                        by: actor,
                        at,
                    });
                }
                Ok(events)
            }
            RoomCommand::MoveReadCursor { message_id, read } => {
                let read_seq = match message_id {
                    None => info.last_seq,
                    Some(id) => {
                        let facts = info
                            .messages
                            .get(&id)
                            .ok_or(DomainError::NotFound("message"))?;
                        if read { facts.seq } else { facts.seq - 1 }
                    }
                };
                Ok(vec![Event::ReadCursorMoved {
                    account_id: actor,
                    room_id,
                    read_seq,
                    at,
                }])
            }
        }
    }

    /// Folds one event into the state. Events for other rooms are ignored.
    pub fn evolve(mut self, event: &Event) -> Room {
        match event {
            Event::RoomCreated {
                room_id,
                room_type,
                name,
                members,
                ..
            } => {
                self.info = Some(RoomInfo {
                    room_id: *room_id,
                    room_type: *room_type,
                    name: name.clone(),
                    members: members.iter().copied().collect(),
                    last_seq: 0,
                    messages: HashMap::new(),
                    tasks: HashMap::new(),
                    link: None,
                    pending_joins: BTreeSet::new(),
                    deleted: false,
                });
            }
            Event::RoomUpdated {
                name: Some(name), ..
            } => {
                if let Some(info) = self.info.as_mut() {
                    info.name = name.clone();
                }
            }
            Event::MembersChanged {
                added,
                removed,
                role_changed,
                ..
            } => {
                if let Some(info) = self.info.as_mut() {
                    for (id, role) in added.iter().chain(role_changed) {
                        info.members.insert(*id, *role);
                    }
                    for id in removed {
                        info.members.remove(id);
                    }
                }
            }
            Event::RoomDeleted { .. } => {
                if let Some(info) = self.info.as_mut() {
                    info.deleted = true;
                }
            }
            Event::MessagePosted {
                message_id,
                seq,
                account_id,
                ..
            } => {
                if let Some(info) = self.info.as_mut() {
                    info.last_seq = *seq;
                    info.messages.insert(
                        *message_id,
                        MessageFacts {
                            author: *account_id,
                            seq: *seq,
                            deleted: false,
                        },
                    );
                }
            }
            Event::TasksAdded {
                tasks, assigned_by, ..
            } => {
                if let Some(info) = self.info.as_mut() {
                    for (task_id, assignee) in tasks {
                        info.tasks.insert(
                            *task_id,
                            TaskFacts {
                                assignee: *assignee,
                                assigned_by: *assigned_by,
                            },
                        );
                    }
                }
            }
            Event::LinkSet {
                code,
                need_acceptance,
                ..
            } => {
                if let Some(info) = self.info.as_mut() {
                    info.link = Some((code.clone(), *need_acceptance));
                }
            }
            Event::LinkRemoved { .. } => {
                if let Some(info) = self.info.as_mut() {
                    info.link = None;
                }
            }
            Event::JoinRequested { account_id, .. } => {
                if let Some(info) = self.info.as_mut() {
                    info.pending_joins.insert(*account_id);
                }
            }
            Event::JoinRequestResolved { account_id, .. } => {
                if let Some(info) = self.info.as_mut() {
                    info.pending_joins.remove(account_id);
                }
            }
            Event::MessageDeleted { message_id, .. } => {
                if let Some(facts) = self
                    .info
                    .as_mut()
                    .and_then(|info| info.messages.get_mut(message_id))
                {
                    facts.deleted = true;
                }
            }
            _ => {}
        }
        self
    }
}

fn join_by_link(
    info: &RoomInfo,
    actor: AccountId,
    code: &str,
    at: i64,
) -> Result<Vec<Event>, DomainError> {
    let room_id = info.room_id;
    let need_acceptance = match &info.link {
        Some((link_code, need_acceptance)) if link_code == code => *need_acceptance,
        _ => return Err(DomainError::NotFound("link")),
    };
    if info.members.contains_key(&actor) {
        return Err(DomainError::Conflict(
            "you are a member of this room already".into(),
        ));
    }
    if need_acceptance {
        if info.pending_joins.contains(&actor) {
            return Ok(vec![]);
        }
        return Ok(vec![Event::JoinRequested {
            room_id,
            account_id: actor,
            at,
        }]);
    }
    Ok(vec![Event::MembersChanged {
        room_id,
        added: vec![(actor, Role::Member)],
        removed: vec![],
        role_changed: vec![],
        by: actor,
        at,
    }])
}

fn require_admin(role: Role) -> Result<(), DomainError> {
    if role == Role::Admin {
        Ok(())
    } else {
        Err(DomainError::Forbidden(
            "only room admins can do this".into(),
        ))
    }
}

fn require_group(info: &RoomInfo, what: &str) -> Result<(), DomainError> {
    if info.room_type == RoomType::Group {
        Ok(())
    } else {
        Err(DomainError::Invalid(format!(
            "cannot {what} a {} chat, only a group chat",
            info.room_type.as_str()
        )))
    }
}

fn own_live_message(
    info: &RoomInfo,
    actor: AccountId,
    message_id: MessageId,
    what: &str,
) -> Result<(), DomainError> {
    let facts = info
        .messages
        .get(&message_id)
        .filter(|facts| !facts.deleted)
        .ok_or(DomainError::NotFound("message"))?;
    if facts.author != actor {
        return Err(DomainError::Forbidden(format!(
            "only the author can {what} a message"
        )));
    }
    Ok(())
}

fn addressing_in(info: &RoomInfo, body: &str) -> (Vec<AccountId>, bool) {
    let addressing = parse_addressing(body);
    let mentions = addressing
        .mentions
        .into_iter()
        .filter(|id| info.members.contains_key(id))
        .collect();
    (mentions, addressing.to_all)
}

/// Checks a room name: 1–255 characters, not only white space.
pub fn validate_room_name(name: &str) -> Result<(), DomainError> {
    let chars = name.chars().count();
    if name.trim().is_empty() {
        return Err(DomainError::Invalid("name must not be empty".into()));
    }
    if chars > MAX_ROOM_NAME_CHARS {
        return Err(DomainError::Invalid(format!(
            "name is {chars} characters long, at most {MAX_ROOM_NAME_CHARS} are allowed"
        )));
    }
    Ok(())
}

fn validate_icon(icon: &str) -> Result<(), DomainError> {
    if ICON_PRESETS.contains(&icon) {
        Ok(())
    } else {
        Err(DomainError::Invalid(format!(
            "icon_preset must be one of {}",
            ICON_PRESETS.join(", ")
        )))
    }
}

/// Checks a room description: at most [`MAX_DESCRIPTION_CHARS`] characters.
pub fn validate_description(description: &str) -> Result<(), DomainError> {
    let chars = description.chars().count();
    if chars > MAX_DESCRIPTION_CHARS {
        return Err(DomainError::Invalid(format!(
            "description is {chars} characters long, at most {MAX_DESCRIPTION_CHARS} are allowed"
        )));
    }
    Ok(())
}

/// The body of the message that announces an upload of `filename` (already a
/// [`file_name`]) with the text `message`, checked like any message body. Callers
/// check it before storing the content, so a refused upload stores nothing.
pub fn attachment_body(
    file_id: FileId,
    filename: &str,
    message: &str,
) -> Result<String, DomainError> {
    let download = format!("[download:{file_id}]{filename}[/download]");
    let body = if message.trim().is_empty() {
        download
    } else {
        format!("{message}\n{download}")
    };
    let chars = body.chars().count();
    if chars > MAX_MESSAGE_CHARS {
        return Err(DomainError::Invalid(format!(
            "message is too long: with the file's download tag it is {chars} characters, \
             at most {MAX_MESSAGE_CHARS} are allowed"
        )));
    }
    Ok(body)
}

/// Checks a message body: 1–65535 characters, not only white space.
pub fn validate_body(body: &str) -> Result<(), DomainError> {
    if body.trim().is_empty() {
        return Err(DomainError::Invalid("body must not be empty".into()));
    }
    let chars = body.chars().count();
    if chars > MAX_MESSAGE_CHARS {
        return Err(DomainError::Invalid(format!(
            "body is {chars} characters long, at most {MAX_MESSAGE_CHARS} are allowed"
        )));
    }
    Ok(())
}

/// Checks a member list: no account twice, at least one admin. Sorted by account id.
fn validate_member_list(
    mut members: Vec<(AccountId, Role)>,
) -> Result<Vec<(AccountId, Role)>, DomainError> {
    members.sort();
    if let Some(pair) = members.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(DomainError::Invalid(format!(
            "account {} is listed more than once",
            pair[0].0
        )));
    }
    if !members.iter().any(|(_, role)| *role == Role::Admin) {
        return Err(DomainError::Invalid(
            "members_admin_ids must name at least one admin".into(),
        ));
    }
    Ok(members)
}
