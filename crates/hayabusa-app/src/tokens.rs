//! API tokens: random-looking, derived with HMAC from a server secret and the
//! account, and stored only as a SHA-256 hash.
//!
//! Deriving instead of drawing at random lets a retried `POST /v2/accounts` with the
//! same `Idempotency-Key` return the very token of the first attempt without the
//! token ever being stored. Whoever holds the events but not the secret (kept in its
//! own file) cannot compute a token. Tokens are 256-bit, so a fast hash is the right
//! tool for looking them up (a password hash like argon2 buys nothing here and would
//! cost milliseconds per request).
//!
//! Each account has a token *generation*, moved on by an `account_token_rotated`
//! event (`POST /v2/me/token`, or an administrator's revocation): the token is derived
//! from the secret, the account and the generation, so a new generation makes the old
//! token worthless. Generation 0 is derived exactly as before generations existed, so
//! the tokens of existing data directories stay valid.

use hayabusa_domain::AccountId;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The server secret tokens are derived from.
#[derive(Clone)]
pub struct TokenSecret(Vec<u8>);

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSecret(..)")
    }
}

impl TokenSecret {
    /// Wraps secret bytes (at least 32 are expected).
    pub fn new(bytes: Vec<u8>) -> Self {
        TokenSecret(bytes)
    }

    /// A fresh random secret.
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut bytes = vec![0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        TokenSecret(bytes)
    }

    /// The raw bytes (to persist).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The token of webhook `setting_id`: base64 of `HMAC(secret, "hayabusa webhook
    /// token v1:" ‖ id)`, 32 bytes. ChatWork's receivers decode it from base64 and
    /// use the bytes as the key of the delivery signatures.
    pub fn webhook_token(&self, setting_id: u64) -> String {
        use base64::Engine;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"hayabusa webhook token v1:");
        mac.update(&setting_id.to_be_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    /// The signing secret of forwarder `forwarder_id` (base64 of 32 bytes; the
    /// Standard Webhooks key of its deliveries).
    pub fn forwarder_secret(&self, forwarder_id: u64) -> String {
        use base64::Engine;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"hayabusa forwarder secret v1:");
        mac.update(&forwarder_id.to_be_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    /// The API token of `account` at generation 0 (the one its creation hands out):
    /// 64 hex characters.
    pub fn token_for(&self, account: AccountId) -> String {
        self.token_at(account, 0)
    }

    /// The API token of `account` at `generation`: 64 hex characters. Generation 0
    /// is `HMAC(secret, "hayabusa api token v1:" ‖ account)`, as before generations
    /// existed; later ones add the generation under a label of their own.
    pub fn token_at(&self, account: AccountId, generation: u64) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        if generation == 0 {
            mac.update(b"hayabusa api token v1:");
            mac.update(&account.0.to_be_bytes());
        } else {
            mac.update(b"hayabusa api token v2:");
            mac.update(&account.0.to_be_bytes());
            mac.update(&generation.to_be_bytes());
        }
        hex::encode(mac.finalize().into_bytes())
    }
}

impl TokenSecret {
    /// The CSRF token of the session whose cookie hashes to `session_hash`: what a
    /// page signed in with that cookie sends back in `X-CSRF-Token` on its writes.
    pub fn csrf_token(&self, session_hash: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"hayabusa csrf v1:");
        mac.update(session_hash.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The signature of a download URL for `file` in `room`, valid until `expires`
    /// (Unix seconds).
    pub fn download_signature(&self, room: u64, file: u64, expires: i64) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"hayabusa download v1:");
        mac.update(&room.to_be_bytes());
        mac.update(&file.to_be_bytes());
        mac.update(&expires.to_be_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `signature` is the one for these values (compared in constant time).
    pub fn verify_download(&self, room: u64, file: u64, expires: i64, signature: &str) -> bool {
        let Ok(given) = hex::decode(signature) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"hayabusa download v1:");
        mac.update(&room.to_be_bytes());
        mac.update(&file.to_be_bytes());
        mac.update(&expires.to_be_bytes());
        mac.verify_slice(&given).is_ok()
    }
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_signatures_verify_only_for_the_same_values() {
        let secret = TokenSecret::new(vec![3; 32]);
        let signature = secret.download_signature(1, 2, 100);
        assert!(secret.verify_download(1, 2, 100, &signature));
        assert!(!secret.verify_download(1, 2, 101, &signature));
        assert!(!secret.verify_download(1, 3, 100, &signature));
        assert!(!secret.verify_download(1, 2, 100, "zz"));
        assert!(!TokenSecret::new(vec![4; 32]).verify_download(1, 2, 100, &signature));
    }

    #[test]
    fn tokens_differ_per_account_and_per_secret_and_hash_stably() {
        let a = TokenSecret::new(vec![1; 32]);
        let b = TokenSecret::new(vec![2; 32]);
        assert_ne!(a.token_for(AccountId(1)), a.token_for(AccountId(2)));
        assert_ne!(a.token_for(AccountId(1)), b.token_for(AccountId(1)));
        assert_eq!(a.token_for(AccountId(1)), a.token_for(AccountId(1)));
        assert_eq!(a.token_for(AccountId(1)).len(), 64);
        assert_eq!(hash_token("x"), hash_token("x"));
        assert_ne!(hash_token("x"), a.token_for(AccountId(1)));
    }

    #[test]
    fn generation_zero_is_the_token_of_old_data_directories_and_later_ones_differ() {
        let secret = TokenSecret::new(vec![1; 32]);
        // HMAC-SHA256(secret, "hayabusa api token v1:" ‖ be64(1)), as computed before
        // generations existed.
        let mut mac = Hmac::<Sha256>::new_from_slice(&[1; 32]).unwrap();
        mac.update(b"hayabusa api token v1:");
        mac.update(&1u64.to_be_bytes());
        let old = hex::encode(mac.finalize().into_bytes());
        assert_eq!(secret.token_at(AccountId(1), 0), old);
        assert_eq!(secret.token_for(AccountId(1)), old);
        let tokens: std::collections::HashSet<String> = (0..4)
            .map(|generation| secret.token_at(AccountId(1), generation))
            .chain((0..4).map(|generation| secret.token_at(AccountId(2), generation)))
            .collect();
        assert_eq!(
            tokens.len(),
            8,
            "every account and generation has its own token"
        );
        assert_eq!(
            secret.token_at(AccountId(1), 3),
            secret.token_at(AccountId(1), 3)
        );
    }
}
