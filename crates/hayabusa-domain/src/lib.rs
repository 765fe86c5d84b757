//! Hayabusa's pure domain core: ids, message notation, events and the room
//! aggregate. No I/O, no async, no clock: time and ids are inputs.

pub mod contact;
pub mod error;
pub mod event;
pub mod forwarder;
pub mod ids;
pub mod link;
pub mod login;
pub mod notation;
pub mod roles;
pub mod room;
#[cfg(test)]
mod room_tests;
pub mod text;
pub mod webhook;

pub use contact::{ContactCommand, ContactPair};
pub use error::DomainError;
pub use event::{AccountCreated, DecodeError, EVENT_SCHEMA_VERSION, Event, decode_event};
pub use forwarder::{
    DeadLetter, DeadLetterCommand, DeadLetters, Forwarder, ForwarderCommand, Forwarders,
    dead_letters_stream,
};
pub use ids::{AccountId, FileId, IdError, MessageId, OrganizationId, RequestId, RoomId, TaskId};
pub use link::LinkCode;
pub use login::{Login, Sessions, sessions_stream};
pub use room::{ROOM_STATE_VERSION, Role, Room, RoomCommand, RoomType};
pub use webhook::{
    MAX_WEBHOOKS_PER_ACCOUNT, WebhookCommand, WebhookEventType, WebhookSetting, WebhookSettings,
};
