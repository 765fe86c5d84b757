//! Signing in with a sign-in address and a password, for the web client.
//!
//! A sign-in address (`login_mail`) belongs to at most one account: its stream,
//! `login-{SHA-256 of the lower-cased address}`, holds the claim and the password's
//! argon2id hash (never the password). A sign-in checks the password and starts a
//! session: an event in the account's `sessions-{id}` stream with the SHA-256 of the
//! session's cookie value (`{account_id}.{64 random hex}`), which the server hands
//! out once, in a cookie. Sessions end one at a time (sign out), all at once (sign
//! out everywhere) or after [`SESSION_SECS`]. Everything is in the log, so every node
//! sees a sign-out as soon as it is acknowledged.
//!
//! Hashing is deliberately slow (about 19 MiB and tens of milliseconds each): at most
//! [`HASHING_AT_ONCE`] run at a time, off the async threads, so sign-in attempts
//! cannot take the server's memory or its cores; the HTTP layer limits attempts per
//! address and per peer on top.

use super::CommandHandler;
use crate::error::AppError;
use crate::tokens::hash_token;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use hayabusa_domain::{AccountId, DomainError, Event, Login, Sessions, sessions_stream};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// How long a session lasts (30 days).
pub const SESSION_SECS: i64 = 30 * 24 * 3600;

/// Passwords are at least this many characters…
pub const MIN_PASSWORD_CHARS: usize = 8;
/// …and at most this many bytes.
pub const MAX_PASSWORD_BYTES: usize = 1_024;
/// Sign-in addresses are at most this many bytes.
pub const MAX_LOGIN_MAIL_BYTES: usize = 254;

/// Password hashes computed at once (each takes about 19 MiB).
pub const HASHING_AT_ONCE: usize = 2;
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HASHING_AT_ONCE);

/// A hash to check passwords against when the address is nobody's, so that an
/// unknown address costs what a wrong password does.
static DECOY: LazyLock<String> = LazyLock::new(|| hash_blocking("decoy password, never anyone's"));

/// A session just started.
#[derive(Clone, Debug)]
pub struct SignedIn {
    /// Whose.
    pub account_id: AccountId,
    /// The cookie's value (handed out once).
    pub cookie: String,
    /// The session's CSRF token.
    pub csrf_token: String,
    /// When it stops working, Unix seconds.
    pub expires_at: i64,
}

/// The stream of sign-in address `login_mail`.
pub fn login_stream(login_mail: &str) -> String {
    let normalized = login_mail.trim().to_lowercase();
    format!(
        "login-{}",
        hex::encode(Sha256::digest(normalized.as_bytes()))
    )
}

fn hash_blocking(password: &str) -> String {
    let salt = {
        use rand::RngCore;
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        SaltString::encode_b64(&bytes).expect("16 bytes are a valid salt")
    };
    // Fails only for inputs beyond argon2's limits (4 GiB), far above ours.
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashes any password of at most MAX_PASSWORD_BYTES")
        .to_string()
}

fn verify_blocking(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Runs `work` on the blocking threads, at most [`HASHING_AT_ONCE`] at a time.
async fn hashing<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let _permit = HASHING
        .acquire()
        .await
        .expect("the semaphore is never closed");
    tokio::task::spawn_blocking(work)
        .await
        .expect("hashing does not panic")
}

/// Checks a sign-in address and a password given to set up; the reason if unfit.
pub fn check_login(login_mail: &str, password: &str) -> Result<(), AppError> {
    let mail = login_mail.trim();
    if mail.is_empty() || mail.len() > MAX_LOGIN_MAIL_BYTES || !mail.contains('@') {
        return Err(AppError::invalid(format!(
            "login_mail must be a mail address of at most {MAX_LOGIN_MAIL_BYTES} bytes"
        )));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(AppError::invalid(format!(
            "password must have at least {MIN_PASSWORD_CHARS} characters and at most \
             {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

impl CommandHandler {
    /// The sign-in address `login_mail` as the log has it.
    pub async fn login(&self, login_mail: &str) -> Result<Login, AppError> {
        Ok(crate::webhooks::fold_stream(
            self.log.as_ref(),
            &login_stream(login_mail),
            Login::default(),
            |login, event, _| login.evolve(event),
        )
        .await?
        .0)
    }

    /// Refuses (409) a sign-in address that is someone else's than `account`'s.
    pub async fn ensure_login_free(
        &self,
        login_mail: &str,
        account: Option<AccountId>,
    ) -> Result<(), AppError> {
        match self.login(login_mail).await?.holder {
            Some((holder, _)) if Some(holder) != account => {
                Err(DomainError::Conflict("login_mail is already another account's".into()).into())
            }
            _ => Ok(()),
        }
    }

    /// Gives `account` the sign-in address `login_mail` with `password` (checked
    /// with [`check_login`] by the caller), or a new password if the address is
    /// its already; 409 if the address is another account's.
    pub async fn set_login(
        &self,
        account: AccountId,
        login_mail: &str,
        password: &str,
    ) -> Result<u64, AppError> {
        check_login(login_mail, password)?;
        let password = password.to_owned();
        let password_hash = hashing(move || hash_blocking(&password)).await;
        let login_mail = login_mail.trim().to_owned();
        self.execute_on_stream(
            &login_stream(&login_mail),
            Login::default,
            |login, event, _| login.evolve(event),
            |login, at| match &login.holder {
                None => Ok(vec![Event::LoginClaimed {
                    account_id: account,
                    login_mail: login_mail.clone(),
                    password_hash: password_hash.clone(),
                    at,
                }]),
                Some((holder, _)) if *holder == account => Ok(vec![Event::PasswordSet {
                    account_id: account,
                    password_hash: password_hash.clone(),
                    at,
                }]),
                Some(_) => Err(DomainError::Conflict(
                    "login_mail is already another account's".into(),
                )),
            },
        )
        .await
    }

    /// An administrator sets the password of the account that signs in with
    /// `login_mail` (404 if it is nobody's).
    pub async fn set_password(
        &self,
        caller: &hayabusa_store::AccountRow,
        login_mail: &str,
        password: &str,
    ) -> Result<u64, AppError> {
        if !caller.admin {
            return Err(AppError::forbidden("only administrators set passwords"));
        }
        check_login(login_mail, password)?;
        let Some((account, _)) = self.login(login_mail).await?.holder else {
            return Err(DomainError::NotFound("login_mail").into());
        };
        self.set_login(account, login_mail, password).await
    }

    /// Checks `password` for `login_mail` and starts a session; `None` if either
    /// is wrong (the caller answers the same for both).
    pub async fn sign_in(
        &self,
        login_mail: &str,
        password: &str,
    ) -> Result<Option<SignedIn>, AppError> {
        if login_mail.len() > MAX_LOGIN_MAIL_BYTES || password.len() > MAX_PASSWORD_BYTES {
            return Ok(None);
        }
        let holder = self.login(login_mail).await?.holder;
        let (account, hash) = match holder {
            Some((account, hash)) => (Some(account), hash),
            None => (None, DECOY.clone()),
        };
        let password = password.to_owned();
        let matches = hashing(move || verify_blocking(&password, &hash)).await;
        let Some(account_id) = account.filter(|_| matches) else {
            return Ok(None);
        };
        let cookie = {
            use rand::RngCore;
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            format!("{}.{}", account_id.0, hex::encode(bytes))
        };
        let session_hash = hash_token(&cookie);
        let at = self.clock.now_secs();
        let expires_at = at.saturating_add(SESSION_SECS);
        let started = Event::SessionStarted {
            account_id,
            session_hash: session_hash.clone(),
            expires_at,
            at,
        };
        self.execute_on_stream(
            &sessions_stream(account_id),
            Sessions::default,
            |sessions, event, _| sessions.evolve(event),
            |_, _| Ok(vec![started.clone()]),
        )
        .await?;
        Ok(Some(SignedIn {
            account_id,
            csrf_token: self.secret.csrf_token(&session_hash),
            cookie,
            expires_at,
        }))
    }

    /// Ends the session of hash `session_hash` of `account`.
    pub async fn sign_out(&self, account: AccountId, session_hash: &str) -> Result<u64, AppError> {
        self.execute_on_stream(
            &sessions_stream(account),
            Sessions::default,
            |sessions, event, _| sessions.evolve(event),
            |sessions, at| {
                Ok(if sessions.live.contains_key(session_hash) {
                    vec![Event::SessionEnded {
                        account_id: account,
                        session_hash: session_hash.to_owned(),
                        at,
                    }]
                } else {
                    Vec::new()
                })
            },
        )
        .await
    }

    /// Ends every session of `account`.
    pub async fn sign_out_everywhere(&self, account: AccountId) -> Result<u64, AppError> {
        self.execute_on_stream(
            &sessions_stream(account),
            Sessions::default,
            |sessions, event, _| sessions.evolve(event),
            |_, at| {
                Ok(vec![Event::SessionsEnded {
                    account_id: account,
                    at,
                }])
            },
        )
        .await
    }
}

/// The account and session hash a session cookie names, if it is well formed.
pub fn parse_session_cookie(cookie: &str) -> Option<(AccountId, String)> {
    let (account, random) = cookie.split_once('.')?;
    let account: u64 = account.parse().ok()?;
    (random.len() == 64 && random.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| (AccountId(account), hash_token(cookie)))
}

/// Whether the session of hash `session_hash` is live in `sessions` now.
pub fn session_is_live(sessions: &Sessions, session_hash: &str) -> bool {
    use crate::clock::Clock;
    sessions.is_live(session_hash, crate::clock::SystemClock.now_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_blocking("correct horse");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_blocking("correct horse", &hash));
        assert!(!verify_blocking("correct horse!", &hash));
        assert!(!verify_blocking("anything", "not a hash"));
    }

    #[test]
    fn addresses_are_compared_without_case_and_cookies_parse_strictly() {
        assert_eq!(
            login_stream(" A@Example.com "),
            login_stream("a@example.com")
        );
        let cookie = format!("42.{}", "ab".repeat(32));
        let (account, hash) = parse_session_cookie(&cookie).unwrap();
        assert_eq!(account, AccountId(42));
        assert_eq!(hash, hash_token(&cookie));
        assert!(parse_session_cookie("42.short").is_none());
        assert!(parse_session_cookie(&format!("x.{}", "ab".repeat(32))).is_none());
        assert!(check_login("a@example.com", "12345678").is_ok());
        assert!(check_login("nope", "12345678").is_err());
        assert!(check_login("a@example.com", "1234567").is_err());
    }
}
