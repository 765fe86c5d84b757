//! ChatWork v2 JSON shapes. Only this module knows them; events and read-model rows
//! are converted here and nowhere else.
//!
//! Like ChatWork's, `icon_path` and `avatar_image_url` are absolute URLs; they start
//! with the configured public URL (`base`), never with a request's `Host`.

use hayabusa_store::{
    AccountRow, ContactRequestView, ContactView, FileView, LinkRow, MemberView, MessageView,
    RoomView, StatusCounts, TaskView,
};
use serde::Serialize;

/// The absolute URL of an account's avatar.
pub fn avatar_url(base: &str, account_id: u64) -> String {
    format!("{base}/avatars/{account_id}.png")
}

/// The absolute URL of a room icon preset.
pub fn icon_url(base: &str, preset: &str) -> String {
    format!("{base}/icons/{preset}.png")
}

/// `GET /me`.
#[derive(Serialize)]
pub struct Me {
    account_id: u64,
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

/// `GET /my/status`.
#[derive(Serialize)]
pub struct MyStatus {
    unread_room_num: u64,
    mention_room_num: u64,
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

/// A room in `GET /rooms` and (with description) `GET /rooms/{id}`.
#[derive(Serialize)]
pub struct Room {
    room_id: u64,
    name: String,
    #[serde(rename = "type")]
    room_type: &'static str,
    role: &'static str,
    sticky: bool,
    unread_num: u64,
    mention_num: u64,
    mytask_num: u64,
    message_num: u64,
    file_num: u64,
    task_num: u64,
    icon_path: String,
    last_update_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

impl Room {
    /// The list form (no description).
    pub fn summary(v: &RoomView, base: &str) -> Self {
        Room {
            room_id: v.room.room_id.0,
            name: v.room.name.clone(),
            room_type: v.room.room_type.as_str(),
            role: v.role.as_str(),
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

/// A member in `GET /rooms/{id}/members`.
#[derive(Serialize)]
pub struct Member {
    account_id: u64,
    role: &'static str,
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
            role: m.role.as_str(),
            name: m.account.name.clone(),
            chatwork_id: String::new(),
            organization_id: m.account.organization_id.0,
            organization_name: m.account.organization_name.clone(),
            department: m.account.department.clone(),
            avatar_image_url: avatar_url(base, m.account.account_id.0),
        }
    }
}

/// `account` inside a message.
#[derive(Serialize)]
pub struct AccountRef {
    account_id: u64,
    name: String,
    avatar_image_url: String,
}

/// A message.
#[derive(Serialize)]
pub struct Message {
    message_id: String,
    account: AccountRef,
    body: String,
    send_time: i64,
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
#[derive(Serialize)]
pub struct RoomRef {
    room_id: u64,
    name: String,
    icon_path: String,
}

/// A task (`GET /rooms/{id}/tasks…`; with `room` and without `account` in `GET /my/tasks`).
#[derive(Serialize)]
pub struct Task {
    task_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<RoomRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<AccountRef>,
    assigned_by_account: AccountRef,
    message_id: String,
    body: String,
    limit_time: i64,
    status: String,
    limit_type: String,
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
            status: v.task.status.clone(),
            limit_type: v.task.limit_type.clone(),
        }
    }
}

/// A file.
#[derive(Serialize)]
pub struct File {
    file_id: u64,
    account: AccountRef,
    message_id: String,
    filename: String,
    filesize: u64,
    upload_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
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
#[derive(Serialize)]
pub struct Contact {
    account_id: u64,
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

/// An incoming contact request.
#[derive(Serialize)]
pub struct IncomingRequest {
    request_id: u64,
    account_id: u64,
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

/// A room's invitation link (`/rooms/{id}/link`).
#[derive(Serialize)]
pub struct Link {
    public: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    need_acceptance: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
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
