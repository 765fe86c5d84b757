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

/// The stream of a pair of accounts (contact requests and the contact itself).
pub fn contact_pair(a: AccountId, b: AccountId) -> String {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    format!("contact-{low}-{high}")
}

/// The stream that claims an invitation link code (codes are `[A-Za-z0-9_-]`, and
/// case-sensitive, so they are used as they are).
pub fn link_code(code: &str) -> String {
    format!("link-{code}")
}
