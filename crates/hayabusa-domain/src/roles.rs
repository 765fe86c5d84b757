//! A room's type and a member's role: plain vocabulary shared by the events and the
//! room aggregate (kept apart from both so that neither imports the other for it).

use serde::{Deserialize, Serialize};

/// my (an account's own notes), direct (two people), group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomType {
    /// An account's own room.
    My,
    /// A one-to-one room between contacts.
    Direct,
    /// A group chat.
    Group,
}

impl RoomType {
    /// The ChatWork name.
    pub fn as_str(&self) -> &'static str {
        match self {
            RoomType::My => "my",
            RoomType::Direct => "direct",
            RoomType::Group => "group",
        }
    }
}

/// A member's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Changes metadata and members; at least one per room.
    Admin,
    /// Posts and reads.
    Member,
    /// Reads only.
    Readonly,
}

impl Role {
    /// The ChatWork name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Readonly => "readonly",
        }
    }
}
