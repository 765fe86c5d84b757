//! Names of event streams: one per aggregate instance.

use hayabusa_domain::{AccountId, RoomId};
use sha2::{Digest, Sha256};

/// The stream of a room: metadata, members, messages and read cursors.
pub fn room(room: RoomId) -> String {
    format!("room-{room}")
}

/// The stream of an account.
pub fn account(account: AccountId) -> String {
    format!("account-{account}")
}

/// The stream that claims an organization name (case-insensitive, trimmed). The name
/// is hashed so any text makes a valid stream name in every backend.
pub fn organization(name: &str) -> String {
    let normalized = name.trim().to_lowercase();
    let digest = Sha256::digest(normalized.as_bytes());
    format!("org-{}", hex::encode(&digest[..16]))
}
