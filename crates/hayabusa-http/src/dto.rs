//! ChatWork v2 JSON shapes. Only this module knows them; events and read-model rows
//! are converted here and nowhere else.
//!
//! Like ChatWork's, `icon_path` and `avatar_image_url` are absolute URLs; they start
//! with the configured public URL (`base`), never with a request's `Host`.
//!
//! Every body the API answers with is one of these types, and each derives
//! [`utoipa::ToSchema`]: the response schemas of `GET /v2/openapi.json` are generated
//! from the very types that are serialized, so the document cannot drift from what
//! the server sends (`crate::openapi` collects them; a test checks served bodies
//! against them).

use hayabusa_domain as domain;
use hayabusa_store::{
    AccountRow, ContactRequestView, ContactView, FileView, JoinRequestView, LinkRow, MemberView,
    MessageView, RoomView, StatusCounts, TaskView,
};
use serde::Serialize;
use utoipa::ToSchema;

/// The absolute URL of an account's avatar.
pub fn avatar_url(base: &str, account_id: u64) -> String {
    format!("{base}/avatars/{account_id}.png")
}

/// The absolute URL of a room icon preset.
pub fn icon_url(base: &str, preset: &str) -> String {
    format!("{base}/icons/{preset}.png")
}

/// Every error answer: ChatWork's list of human-readable reasons.
#[derive(Serialize, ToSchema)]
pub struct Errors {
    /// Why the request was refused (at least one reason).
    #[schema(min_items = 1)]
    pub errors: Vec<String>,
}

/// A room's type.
#[derive(Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoomType {
    /// An account's own room.
    My,
    /// A one-to-one room between contacts.
    Direct,
    /// A group chat.
    Group,
}

impl From<domain::RoomType> for RoomType {
    fn from(t: domain::RoomType) -> Self {
        match t {
            domain::RoomType::My => RoomType::My,
            domain::RoomType::Direct => RoomType::Direct,
            domain::RoomType::Group => RoomType::Group,
        }
    }
}

/// A member's role in a room.
#[derive(Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Changes the room and its members.
    Admin,
    /// Reads and posts.
    Member,
    /// Reads only.
    Readonly,
}

impl From<domain::Role> for Role {
    fn from(r: domain::Role) -> Self {
        match r {
            domain::Role::Admin => Role::Admin,
            domain::Role::Member => Role::Member,
            domain::Role::Readonly => Role::Readonly,
        }
    }
}

/// A task's status.
#[derive(Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Still to be done.
    Open,
    /// Done.
    Done,
}

impl TaskStatus {
    /// The status stored as text (the write side accepts only `open` and `done`).
    fn of(status: &str) -> Self {
        if status == "done" {
            TaskStatus::Done
        } else {
            TaskStatus::Open
        }
    }
}

/// What a task's `limit_time` means.
#[derive(Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LimitType {
    /// No deadline.
    None,
    /// A day.
    Date,
    /// A moment.
    Time,
}

impl LimitType {
    /// The limit type stored as text (the write side accepts only these three).
    fn of(limit_type: &str) -> Self {
        match limit_type {
            "date" => LimitType::Date,
            "time" => LimitType::Time,
            _ => LimitType::None,
        }
    }
}

/// `GET /me`: the caller's own account. Profile fields Hayabusa does not keep are
/// empty strings.
#[derive(Serialize, ToSchema)]
pub struct Me {
    account_id: u64,
    /// The caller's own room (type `my`).
    room_id: u64,
    name: String,
    chatwork_id: String,
    organization_id: u64,
    organization_name: String,
    department: String,
    title: String,
    url: String,
    introduction: String,
    mail: String,
    tel_organization: String,
    tel_extension: String,
    tel_mobile: String,
    skype: String,
    facebook: String,
    twitter: String,
    avatar_image_url: String,
    login_mail: String,
}

impl Me {
    /// The caller's account.
    pub fn new(a: &AccountRow, base: &str) -> Self {
        Me {
            account_id: a.account_id.0,
            room_id: a.my_room_id.0,
            name: a.name.clone(),
            chatwork_id: String::new(),
            organization_id: a.organization_id.0,
            organization_name: a.organization_name.clone(),
            department: a.department.clone(),
            title: a.title.clone(),
            url: String::new(),
            introduction: String::new(),
            mail: a.mail.clone(),
            tel_organization: String::new(),
            tel_extension: String::new(),
            tel_mobile: String::new(),
            skype: String::new(),
            facebook: String::new(),
            twitter: String::new(),
            avatar_image_url: avatar_url(base, a.account_id.0),
            login_mail: a.mail.clone(),
        }
    }
}

/// `GET /my/status`: totals over the caller's rooms.
#[derive(Serialize, ToSchema)]
pub struct MyStatus {
    /// Rooms with unread messages.
    unread_room_num: u64,
    /// Rooms with unread mentions of the caller.
    mention_room_num: u64,
    /// Rooms with open tasks assigned to the caller.
    mytask_room_num: u64,
    unread_num: u64,
    mention_num: u64,
    mytask_num: u64,
}

impl From<StatusCounts> for MyStatus {
    fn from(s: StatusCounts) -> Self {
        MyStatus {
            unread_room_num: s.unread_room_num,
            mention_room_num: s.mention_room_num,
            mytask_room_num: s.mytask_room_num,
            unread_num: s.unread_num,
            mention_num: s.mention_num,
            mytask_num: s.mytask_num,
        }
    }
}

/// A room in `GET /rooms` and (with `description`) `GET /rooms/{room_id}`.
#[derive(Serialize, ToSchema)]
pub struct Room {
    room_id: u64,
    name: String,
    #[serde(rename = "type")]
    room_type: RoomType,
    /// The caller's role.
    role: Role,
    sticky: bool,
    unread_num: u64,
    mention_num: u64,
    mytask_num: u64,
    message_num: u64,
    file_num: u64,
    task_num: u64,
    icon_path: String,
    /// Unix time in seconds.
    last_update_time: i64,
    /// Only in `GET /rooms/{room_id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    description: Option<String>,
}

impl Room {
    /// The list form (no description).
    pub fn summary(v: &RoomView, base: &str) -> Self {
        Room {
            room_id: v.room.room_id.0,
            name: v.room.name.clone(),
            room_type: v.room.room_type.into(),
            role: v.role.into(),
            sticky: false,
            unread_num: v.unread_num,
            mention_num: v.mention_num,
            mytask_num: v.mytask_num,
            message_num: v.room.message_num,
            file_num: v.file_num,
            task_num: v.task_num,
            icon_path: icon_url(base, &v.room.icon_preset),
            last_update_time: v.room.last_update_time,
            description: None,
        }
    }

    /// The detail form (with description).
    pub fn detail(v: &RoomView, base: &str) -> Self {
        Room {
            description: Some(v.room.description.clone()),
            ..Room::summary(v, base)
        }
    }
}

/// A member in `GET /rooms/{room_id}/members`.
#[derive(Serialize, ToSchema)]
pub struct Member {
    account_id: u64,
    role: Role,
    name: String,
    chatwork_id: String,
    organization_id: u64,
    organization_name: String,
    department: String,
    avatar_image_url: String,
}

impl Member {
    /// A member with its role.
    pub fn new(m: &MemberView, base: &str) -> Self {
        Member {
            account_id: m.account.account_id.0,
            role: m.role.into(),
            name: m.account.name.clone(),
            chatwork_id: String::new(),
            organization_id: m.account.organization_id.0,
            organization_name: m.account.organization_name.clone(),
            department: m.account.department.clone(),
            avatar_image_url: avatar_url(base, m.account.account_id.0),
        }
    }
}

/// An account as it appears inside a message, task or file.
#[derive(Serialize, ToSchema)]
pub struct AccountRef {
    account_id: u64,
    name: String,
    avatar_image_url: String,
}

/// A message.
#[derive(Serialize, ToSchema)]
pub struct Message {
    /// A string of digits: message ids are 63-bit, beyond JavaScript's safe integers.
    #[schema(pattern = "^[0-9]+$")]
    message_id: String,
    account: AccountRef,
    /// The text, in ChatWork notation.
    body: String,
    /// Unix time in seconds.
    send_time: i64,
    /// Unix time of the last edit; 0 if never edited.
    update_time: i64,
}

impl Message {
    /// A message with its author.
    pub fn new(v: &MessageView, base: &str) -> Self {
        Message {
            message_id: v.message.message_id.0.to_string(),
            account: account_ref(v.message.account_id.0, &v.author_name, base),
            body: v.message.body.clone(),
            send_time: v.message.send_time,
            update_time: v.message.update_time,
        }
    }
}

fn account_ref(account_id: u64, name: &str, base: &str) -> AccountRef {
    AccountRef {
        account_id,
        name: name.to_string(),
        avatar_image_url: avatar_url(base, account_id),
    }
}

/// `room` inside a task of `GET /my/tasks`.
#[derive(Serialize, ToSchema)]
pub struct RoomRef {
    room_id: u64,
    name: String,
    icon_path: String,
}

/// A task: with `account` (the assignee) in `GET /rooms/{room_id}/tasks…`, with `room`
/// instead in `GET /my/tasks`.
#[derive(Serialize, ToSchema)]
pub struct Task {
    task_id: u64,
    /// Only in `GET /my/tasks`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    room: Option<RoomRef>,
    /// The assignee; not in `GET /my/tasks` (the caller is the assignee).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    account: Option<AccountRef>,
    assigned_by_account: AccountRef,
    /// The message that announced the task.
    #[schema(pattern = "^[0-9]+$")]
    message_id: String,
    body: String,
    /// Deadline, Unix time in seconds; 0 if none.
    limit_time: i64,
    status: TaskStatus,
    limit_type: LimitType,
}

impl Task {
    /// The room form.
    pub fn in_room(v: &TaskView, base: &str) -> Self {
        Task {
            room: None,
            account: Some(account_ref(v.task.account_id.0, &v.account_name, base)),
            ..Task::mine(v, base)
        }
    }

    /// The `/my/tasks` form.
    pub fn mine(v: &TaskView, base: &str) -> Self {
        Task {
            task_id: v.task.task_id.0,
            room: Some(RoomRef {
                room_id: v.task.room_id.0,
                name: v.room_name.clone(),
                icon_path: icon_url(base, &v.room_icon_preset),
            }),
            account: None,
            assigned_by_account: account_ref(v.task.assigned_by.0, &v.assigned_by_name, base),
            message_id: v.task.message_id.0.to_string(),
            body: v.task.body.clone(),
            limit_time: v.task.limit_time,
            status: TaskStatus::of(&v.task.status),
            limit_type: LimitType::of(&v.task.limit_type),
        }
    }
}

/// A file.
#[derive(Serialize, ToSchema)]
pub struct File {
    file_id: u64,
    /// The uploader.
    account: AccountRef,
    /// The message posted with the upload.
    #[schema(pattern = "^[0-9]+$")]
    message_id: String,
    filename: String,
    /// Bytes.
    filesize: u64,
    /// Unix time in seconds.
    upload_time: i64,
    /// A signed URL valid for 30 seconds; only with `create_download_url=1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    download_url: Option<String>,
}

impl File {
    /// A file, with a download URL if one was asked for.
    pub fn new(v: &FileView, download_url: Option<String>, base: &str) -> Self {
        File {
            file_id: v.file.file_id.0,
            account: account_ref(v.file.account_id.0, &v.account_name, base),
            message_id: v.file.message_id.0.to_string(),
            filename: v.file.filename.clone(),
            filesize: v.file.filesize,
            upload_time: v.file.upload_time,
            download_url,
        }
    }
}

/// A contact (`GET /contacts`, and the answer to approving a request).
#[derive(Serialize, ToSchema)]
pub struct Contact {
    account_id: u64,
    /// The direct room shared with the contact.
    room_id: u64,
    name: String,
    chatwork_id: String,
    organization_id: u64,
    organization_name: String,
    department: String,
    avatar_image_url: String,
}

impl Contact {
    /// A contact from its account and direct room.
    pub fn new(account: &AccountRow, room_id: u64, base: &str) -> Self {
        Contact {
            account_id: account.account_id.0,
            room_id,
            name: account.name.clone(),
            chatwork_id: String::new(),
            organization_id: account.organization_id.0,
            organization_name: account.organization_name.clone(),
            department: account.department.clone(),
            avatar_image_url: avatar_url(base, account.account_id.0),
        }
    }

    /// A contact of the list.
    pub fn of(v: &ContactView, base: &str) -> Self {
        Contact::new(&v.account, v.room_id.0, base)
    }
}

/// A contact request waiting for the caller's answer.
#[derive(Serialize, ToSchema)]
pub struct IncomingRequest {
    request_id: u64,
    /// Who asks.
    account_id: u64,
    /// The note sent with the request.
    message: String,
    name: String,
    chatwork_id: String,
    organization_id: u64,
    organization_name: String,
    department: String,
    avatar_image_url: String,
}

impl IncomingRequest {
    /// A pending request to the caller.
    pub fn new(v: &ContactRequestView, base: &str) -> Self {
        IncomingRequest {
            request_id: v.request.request_id.0,
            account_id: v.from.account_id.0,
            message: v.request.message.clone(),
            name: v.from.name.clone(),
            chatwork_id: String::new(),
            organization_id: v.from.organization_id.0,
            organization_name: v.from.organization_name.clone(),
            department: v.from.department.clone(),
            avatar_image_url: avatar_url(base, v.from.account_id.0),
        }
    }
}

/// A room's invitation link (`/rooms/{room_id}/link`): `{"public": false}` alone when
/// the room has none.
#[derive(Serialize, ToSchema)]
pub struct Link {
    /// Whether the room has a link.
    public: bool,
    /// The invitation URL (when public).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    url: Option<String>,
    /// Whether joining needs an admin's acceptance (when public).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    need_acceptance: Option<bool>,
    /// Text shown on the invitation page (when public).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    description: Option<String>,
}

impl Link {
    /// The link, or `{"public": false}` when there is none.
    pub fn new(link: Option<&LinkRow>, base_url: &str) -> Self {
        match link {
            Some(link) => Link {
                public: true,
                url: Some(format!("{base_url}/g/{}", link.code)),
                need_acceptance: Some(link.need_acceptance),
                description: Some(link.description.clone()),
            },
            None => Link {
                public: false,
                url: None,
                need_acceptance: None,
                description: None,
            },
        }
    }
}

/// The room a write created or changed.
#[derive(Serialize, ToSchema)]
pub struct RoomId {
    pub room_id: u64,
}

/// The member list after `PUT /rooms/{room_id}/members`, by role, ids ascending.
#[derive(Serialize, ToSchema)]
pub struct MemberIds {
    pub admin: Vec<u64>,
    pub member: Vec<u64>,
    pub readonly: Vec<u64>,
}

/// The message a write created, changed or deleted.
#[derive(Serialize, ToSchema)]
pub struct MessageId {
    /// A string of digits.
    #[schema(pattern = "^[0-9]+$")]
    pub message_id: String,
}

impl MessageId {
    /// The answer for a message id.
    pub fn new(id: domain::MessageId) -> Self {
        MessageId {
            message_id: id.0.to_string(),
        }
    }
}

/// The caller's counts in a room after marking messages read or unread.
#[derive(Serialize, ToSchema)]
pub struct UnreadCounts {
    pub unread_num: u64,
    pub mention_num: u64,
}

/// The tasks `POST /rooms/{room_id}/tasks` created, one per assignee.
#[derive(Serialize, ToSchema)]
pub struct TaskIds {
    pub task_ids: Vec<u64>,
}

/// The task a write changed.
#[derive(Serialize, ToSchema)]
pub struct TaskId {
    pub task_id: u64,
}

/// The file an upload created.
#[derive(Serialize, ToSchema)]
pub struct FileId {
    pub file_id: u64,
}

/// Whether `POST /links/{code}/join` made the caller a member.
#[derive(Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JoinStatus {
    /// A member now (200).
    Joined,
    /// An admin must accept first (202).
    Pending,
}

/// The answer to joining by link.
#[derive(Serialize, ToSchema)]
pub struct JoinResult {
    pub room_id: u64,
    pub status: JoinStatus,
}

/// An account waiting to join through the invitation link.
#[derive(Serialize, ToSchema)]
pub struct JoinRequest {
    account_id: u64,
    name: String,
    /// Unix time in seconds.
    requested_at: i64,
}

impl From<&JoinRequestView> for JoinRequest {
    fn from(r: &JoinRequestView) -> Self {
        JoinRequest {
            account_id: r.account.account_id.0,
            name: r.account.name.clone(),
            requested_at: r.at,
        }
    }
}

/// The contact request `POST /contacts/requests` made.
#[derive(Serialize, ToSchema)]
pub struct ContactRequestCreated {
    pub request_id: u64,
    /// The account asked.
    pub account_id: u64,
}

/// `POST /me/token` and `POST /accounts/{account_id}/token`: a new API token (shown
/// only here); the account's previous token is refused from this answer on.
#[derive(Serialize, ToSchema)]
pub struct NewToken {
    /// The new API token.
    pub token: String,
}

/// `POST /webhooks`: the new webhook and its token (shown only here): base64 of the
/// key that signs its deliveries (`X-ChatWorkWebhookSignature`, `webhook-signature`).
#[derive(Serialize, ToSchema)]
pub struct CreatedWebhook {
    /// Its id.
    pub webhook_setting_id: String,
    /// Base64 of the signing key.
    pub token: String,
}

/// `POST /admin/forwarders`: the new forwarder and its signing secret (shown only
/// here): base64 of the Standard Webhooks key of its deliveries.
#[derive(Serialize, ToSchema)]
pub struct CreatedForwarder {
    /// Its id.
    pub forwarder_id: String,
    /// Base64 of the signing key.
    pub secret: String,
}

/// A forwarder (`GET /admin/forwarders`).
#[derive(Serialize, ToSchema)]
pub struct ForwarderView {
    /// Its id.
    pub forwarder_id: String,
    /// Where events go.
    pub url: String,
    /// Only these event types (empty: all).
    pub event_types: Vec<String>,
    /// Only these rooms' events (empty: all).
    pub room_ids: Vec<u64>,
    /// The administrator who set it up.
    pub created_by: u64,
}

impl ForwarderView {
    /// The answer for `forwarder`.
    pub fn of(forwarder: &hayabusa_domain::Forwarder) -> Self {
        ForwarderView {
            forwarder_id: forwarder.forwarder_id.to_string(),
            url: forwarder.url.clone(),
            event_types: forwarder.event_types.clone(),
            room_ids: forwarder.room_ids.iter().map(|room| room.0).collect(),
            created_by: forwarder.created_by.0,
        }
    }
}

/// A web session (`POST /session`, `GET /session`).
#[derive(Serialize, ToSchema)]
pub struct Session {
    /// The signed-in account.
    pub account_id: u64,
    /// Send it back in `X-CSRF-Token` on every write signed in by the cookie.
    pub csrf_token: String,
    /// When the session ends, Unix seconds (0 when not told).
    pub expires_at: i64,
}

/// An event a forwarder gave up on after its retry schedule
/// (`GET /admin/forwarders/{id}/dead_letters`).
#[derive(Serialize, ToSchema)]
pub struct DeadLetterView {
    /// The event's position in the log (its envelope's `id`).
    pub position: u64,
    /// Its stored type.
    pub event_type: String,
    /// Its stream.
    pub stream: String,
    /// Attempts that failed.
    pub failures: u32,
    /// The last failure.
    pub reason: String,
    /// When it was given up, Unix seconds.
    pub dead_lettered_time: i64,
    /// An administrator asked for it to be sent again and it has not been yet.
    pub replay_requested: bool,
}

impl DeadLetterView {
    /// The answer for `letter`.
    pub fn of(letter: &hayabusa_domain::DeadLetter) -> Self {
        DeadLetterView {
            position: letter.position,
            event_type: letter.event_type.clone(),
            stream: letter.stream.clone(),
            failures: letter.failures,
            reason: letter.reason.clone(),
            dead_lettered_time: letter.at,
            replay_requested: letter.replay_requested,
        }
    }
}

/// `POST /admin/forwarders/{id}/replay`: the dead letters now waiting to be sent
/// again.
#[derive(Serialize, ToSchema)]
pub struct ReplayRequested {
    /// Their positions, oldest first.
    pub replay_positions: Vec<u64>,
}

/// One of the caller's webhooks (`GET /webhooks`).
#[derive(Serialize, ToSchema)]
pub struct Webhook {
    /// Its id.
    pub webhook_setting_id: String,
    /// Where deliveries go.
    pub url: String,
    /// What it is sent for.
    pub event_types: Vec<String>,
    /// Only this room's events, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room_id: Option<u64>,
    /// `active`, or `disabled` (its receiver answered 410 Gone).
    pub status: String,
}

impl Webhook {
    /// The answer for `setting`.
    pub fn of(setting: &hayabusa_domain::WebhookSetting) -> Self {
        Webhook {
            webhook_setting_id: setting.webhook_id.to_string(),
            url: setting.url.clone(),
            event_types: setting
                .event_types
                .iter()
                .map(|kind| kind.as_str().to_owned())
                .collect(),
            room_id: setting.room_id.map(|room| room.0),
            status: if setting.disabled.is_some() {
                "disabled".into()
            } else {
                "active".into()
            },
        }
    }
}

/// `POST /accounts`: the new account, with its API token (shown only here).
#[derive(Serialize, ToSchema)]
pub struct CreatedAccount {
    account_id: u64,
    /// The account's own room.
    room_id: u64,
    name: String,
    mail: String,
    organization_id: u64,
    organization_name: String,
    department: String,
    title: String,
    /// A server administrator.
    admin: bool,
    /// The account's API token; shown only here.
    token: String,
}

impl CreatedAccount {
    /// The answer for an account just created and its token.
    pub fn new(a: &domain::AccountCreated, token: String) -> Self {
        CreatedAccount {
            account_id: a.account_id.0,
            room_id: a.my_room_id.0,
            name: a.name.clone(),
            mail: a.mail.clone(),
            organization_id: a.organization_id.0,
            organization_name: a.organization_name.clone(),
            department: a.department.clone(),
            title: a.title.clone(),
            admin: a.admin,
            token,
        }
    }
}

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the server answers.
    pub status: String,
    /// The event log's last position.
    pub log_head: u64,
    /// The last position the read models include.
    pub projected: u64,
}

/// `GET /readyz`.
#[derive(Serialize, ToSchema)]
pub struct Ready {
    /// `ready`.
    pub status: String,
    /// The event log's acknowledged head, read from the log for this check.
    pub log_head: u64,
    /// The last position the read models include, as this node knows it.
    pub projected: u64,
}

/// `GET /sync`: the ops after `since`, and the revision to continue after.
#[derive(Serialize, ToSchema)]
pub struct SyncBatch {
    /// Continue after it with `since`.
    pub revision: String,
    /// The ops, oldest first.
    #[schema(value_type = Vec<Op>)]
    pub ops: Vec<serde_json::Value>,
}

/// The kind of an op: the names of `hayabusa_app::ops::OpKind` (a test of the OpenAPI
/// document keeps the two equal).
#[derive(Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OpType {
    MessageCreated,
    MessageUpdated,
    MessageDeleted,
    RoomCreated,
    RoomUpdated,
    RoomDeleted,
    MemberAdded,
    MemberRemoved,
    MemberRoleChanged,
    ReadChanged,
    TaskAdded,
    TaskStatusChanged,
    FileUploaded,
    ContactRequested,
    ContactApproved,
    ContactRejected,
    ContactRemoved,
    Mention,
}

/// One change concerning the caller (`GET /sync`, and one WebSocket text frame of
/// `/sync/ws`), with enough to update a view or to know what to re-fetch. Besides
/// `type` and `revision` an op carries the fields its type needs (`hayabusa_app::ops`
/// builds them; a test checks each kind against this schema).
#[derive(Serialize, ToSchema)]
pub struct Op {
    #[serde(rename = "type")]
    pub op_type: OpType,
    /// This op's own revision: resuming with it as `since` continues after the op.
    pub revision: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub room_id: Option<u64>,
    /// A string of digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, pattern = "^[0-9]+$")]
    pub message_id: Option<String>,
    /// The account the op is about (author, member, assignee, contact).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub account_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub body: Option<String>,
    /// A room's name (`room_created`, `room_updated`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub room_type: Option<RoomType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub icon_preset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub role: Option<Role>,
    /// Unix time in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub send_time: Option<i64>,
    /// Unix time in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub update_time: Option<i64>,
    /// A `mention` of everyone (`[toall]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub to_all: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub task_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub assigned_by_account_id: Option<u64>,
    /// Unix time in seconds; 0 if none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub limit_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub limit_type: Option<LimitType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub status: Option<TaskStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub file_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub filename: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub filesize: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub request_id: Option<u64>,
    /// The account a contact request is addressed to.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub to_account_id: Option<u64>,
    /// The note of a contact request.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub message: Option<String>,
}
