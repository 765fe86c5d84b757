//! ChatWork v2 JSON shapes. Only this module knows them; events and read-model rows
//! are converted here and nowhere else.

use hayabusa_store::{AccountRow, MemberView, MessageView, RoomView, StatusCounts};
use serde::Serialize;

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

impl From<&AccountRow> for Me {
    fn from(a: &AccountRow) -> Self {
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
            avatar_image_url: String::new(),
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
            mytask_room_num: 0,
            unread_num: s.unread_num,
            mention_num: s.mention_num,
            mytask_num: 0,
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
    pub fn summary(v: &RoomView) -> Self {
        Room {
            room_id: v.room.room_id.0,
            name: v.room.name.clone(),
            room_type: v.room.room_type.as_str(),
            role: v.role.as_str(),
            sticky: false,
            unread_num: v.unread_num,
            mention_num: v.mention_num,
            mytask_num: 0,
            message_num: v.room.message_num,
            file_num: 0,
            task_num: 0,
            icon_path: format!("/icons/{}.png", v.room.icon_preset),
            last_update_time: v.room.last_update_time,
            description: None,
        }
    }

    /// The detail form (with description).
    pub fn detail(v: &RoomView) -> Self {
        Room {
            description: Some(v.room.description.clone()),
            ..Room::summary(v)
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

impl From<&MemberView> for Member {
    fn from(m: &MemberView) -> Self {
        Member {
            account_id: m.account.account_id.0,
            role: m.role.as_str(),
            name: m.account.name.clone(),
            chatwork_id: String::new(),
            organization_id: m.account.organization_id.0,
            organization_name: m.account.organization_name.clone(),
            department: m.account.department.clone(),
            avatar_image_url: String::new(),
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

impl From<&MessageView> for Message {
    fn from(v: &MessageView) -> Self {
        Message {
            message_id: v.message.message_id.0.to_string(),
            account: AccountRef {
                account_id: v.message.account_id.0,
                name: v.author_name.clone(),
                avatar_image_url: String::new(),
            },
            body: v.message.body.clone(),
            send_time: v.message.send_time,
            update_time: v.message.update_time,
        }
    }
}
