//! Idempotency keys: scoped per account, bound to a fingerprint of the request.

use hayabusa_domain::AccountId;
use hayabusa_store::IdempotencyKey;
use sha2::{Digest, Sha256};

/// Longest accepted client key.
pub const MAX_KEY_LEN: usize = 255;

/// Why a client's key is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Idempotency-Key must be 1 to 255 visible ASCII characters")]
pub struct BadKey;

/// Builds the stored key for `account`'s client `key` on a request described by
/// `request_parts` (method, path, parameters in a canonical order).
pub fn idempotency_key(
    account: AccountId,
    key: &str,
    request_parts: &[&str],
) -> Result<IdempotencyKey, BadKey> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(BadKey);
    }
    let mut digest = Sha256::new();
    for part in request_parts {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part.as_bytes());
    }
    Ok(IdempotencyKey {
        key: format!("{account}:{key}"),
        fingerprint: hex::encode(digest.finalize()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_scoped_per_account_and_fingerprinted_per_request() {
        let a = idempotency_key(AccountId(1), "k", &["POST", "/x", "body=1"]).unwrap();
        let b = idempotency_key(AccountId(2), "k", &["POST", "/x", "body=1"]).unwrap();
        let c = idempotency_key(AccountId(1), "k", &["POST", "/x", "body=2"]).unwrap();
        assert_ne!(a.key, b.key);
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, c.fingerprint);
        assert_eq!(idempotency_key(AccountId(1), "", &[]), Err(BadKey));
        assert_eq!(idempotency_key(AccountId(1), "a b", &[]), Err(BadKey));
        assert_eq!(
            idempotency_key(AccountId(1), &"x".repeat(256), &[]),
            Err(BadKey)
        );
    }
}
