//! Signing in: a sign-in address and password per account (a stream per address,
//! `login-{hash}`, so that an address belongs to one account at most) and an
//! account's sessions (stream `sessions-{account_id}`).

use crate::event::Event;
use crate::ids::AccountId;
use std::collections::HashMap;

/// The stream of an account's sessions.
pub fn sessions_stream(account: AccountId) -> String {
    format!("sessions-{}", account.0)
}

/// The prefixes of the streams that hold credentials (never forwarded).
pub const CREDENTIAL_STREAM_PREFIXES: [&str; 2] = ["login-", "sessions-"];

/// A sign-in address (the `login-{hash}` stream folded).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Login {
    /// The account it belongs to, and its password's hash; None if it is free.
    /// (An address, once claimed, stays its account's.)
    pub holder: Option<(AccountId, String)>,
}

impl Login {
    /// Applies a stored event (others are ignored).
    pub fn evolve(mut self, event: &Event) -> Self {
        match event {
            Event::LoginClaimed {
                account_id,
                password_hash,
                ..
            } => self.holder = Some((*account_id, password_hash.clone())),
            Event::PasswordSet {
                account_id,
                password_hash,
                ..
            } => {
                if let Some((holder, hash)) = &mut self.holder
                    && holder == account_id
                {
                    hash.clone_from(password_hash);
                }
            }
            _ => {}
        }
        self
    }
}

/// An account's live sessions (the `sessions-{id}` stream folded): hash of the
/// cookie → when it expires.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sessions {
    /// Live (or expired but not yet dropped) sessions.
    pub live: HashMap<String, i64>,
}

impl Sessions {
    /// Applies a stored event (others are ignored). Sessions expired by the time a
    /// new one starts are dropped, so the state stays as small as the live ones.
    pub fn evolve(mut self, event: &Event) -> Self {
        match event {
            Event::SessionStarted {
                session_hash,
                expires_at,
                at,
                ..
            } => {
                self.live.retain(|_, expires| *expires > *at);
                self.live.insert(session_hash.clone(), *expires_at);
            }
            Event::SessionEnded { session_hash, .. } => {
                self.live.remove(session_hash);
            }
            Event::SessionsEnded { .. } => self.live.clear(),
            _ => {}
        }
        self
    }

    /// Whether the session of hash `session_hash` works at time `now`.
    pub fn is_live(&self, session_hash: &str, now: i64) -> bool {
        self.live
            .get(session_hash)
            .is_some_and(|expires| *expires > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_has_one_holder_whose_password_can_change() {
        let claimed = Event::LoginClaimed {
            account_id: AccountId(1),
            login_mail: "a@example.com".into(),
            password_hash: "h1".into(),
            at: 1,
        };
        let login = Login::default().evolve(&claimed);
        assert_eq!(login.holder, Some((AccountId(1), "h1".into())));
        let changed = login.evolve(&Event::PasswordSet {
            account_id: AccountId(1),
            password_hash: "h2".into(),
            at: 2,
        });
        assert_eq!(changed.holder, Some((AccountId(1), "h2".into())));
        // Someone else's event changes nothing.
        let same = changed.clone().evolve(&Event::PasswordSet {
            account_id: AccountId(2),
            password_hash: "h3".into(),
            at: 3,
        });
        assert_eq!(same, changed);
    }

    #[test]
    fn sessions_end_one_by_one_all_at_once_or_by_expiring() {
        let start = |hash: &str, at: i64| Event::SessionStarted {
            account_id: AccountId(1),
            session_hash: hash.into(),
            expires_at: at + 100,
            at,
        };
        let sessions = Sessions::default()
            .evolve(&start("a", 0))
            .evolve(&start("b", 10));
        assert!(sessions.is_live("a", 50));
        assert!(!sessions.is_live("a", 100), "expired");
        assert!(!sessions.is_live("c", 50));
        let sessions = sessions.evolve(&Event::SessionEnded {
            account_id: AccountId(1),
            session_hash: "a".into(),
            at: 20,
        });
        assert!(!sessions.is_live("a", 50));
        assert!(sessions.is_live("b", 50));
        // A session started after b expired drops it from the state.
        let sessions = sessions.evolve(&start("c", 200));
        assert_eq!(sessions.live.len(), 1);
        let sessions = sessions.evolve(&Event::SessionsEnded {
            account_id: AccountId(1),
            at: 210,
        });
        assert!(!sessions.is_live("c", 210));
    }
}
