//! The authentication cache: token hash → account, so that a request costs no store
//! query to authenticate. It must never serve a token that was rotated or revoked.
//!
//! Three things keep it honest:
//!
//! - The projector invalidates every account whose token changed after committing a
//!   batch and before announcing its position ([`AuthCache::invalidate`]); this is
//!   what every process that projects the log does, so it holds for other nodes too.
//! - A fill is kept only if no invalidation happened since the fill began
//!   ([`AuthCache::fill_epoch`]): a lookup that raced a rotation neither installs nor
//!   uses the old row after the projector dropped it; it reads the store again.
//! - The command that rotates a token records it here *before* its 200
//!   ([`AuthCache::rotated`]): until the projector has applied the rotation, the
//!   account is accepted only with its new token's hash, so the old token is refused
//!   from the acknowledgement on, even while the read store still has the old hash.
//!
//! Memory is bounded by the number of accounts (one entry per account: a new token
//! replaces the old one's entry) and by a capacity beyond which everything is dropped.

use crate::projection_watch::ProjectionWatch;
use hayabusa_domain::AccountId;
use hayabusa_store::{AccountRow, Change, Position};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// How many accounts the cache keeps before it starts over.
pub const DEFAULT_CAPACITY: usize = 100_000;

#[derive(Default)]
struct State {
    by_hash: HashMap<String, Arc<AccountRow>>,
    hash_of: HashMap<AccountId, String>,
    /// Moves on with every invalidation; a fill that began before is not kept.
    epoch: u64,
    /// Rotations this process acknowledged that the projection had not reached then:
    /// account → (position of the rotation, hash of the account's current token).
    pending: HashMap<AccountId, (Position, String)>,
}

impl State {
    fn forget(&mut self, account: AccountId) {
        if let Some(hash) = self.hash_of.remove(&account) {
            self.by_hash.remove(&hash);
        }
    }

    /// Whether `account` may be authenticated with a token of hash `hash`.
    fn accepts(&self, account: &AccountRow) -> bool {
        self.pending
            .get(&account.account_id)
            .is_none_or(|(_, current)| *current == account.token_hash)
    }
}

/// The cache, shared by the queries (which fill it), the projector and the command
/// handler (which invalidate it).
pub struct AuthCache {
    state: Mutex<State>,
    capacity: usize,
    projection: ProjectionWatch,
    /// Accounts whose token changed, for connections that authenticated once and
    /// stay open (sync WebSockets): they check their token again and close.
    token_changes: tokio::sync::broadcast::Sender<AccountId>,
}

/// How many token changes an open connection may fall behind before it is told it
/// lagged (and then checks its token anyway).
const TOKEN_CHANGES_BUFFER: usize = 256;

impl AuthCache {
    /// A cache of at most `capacity` accounts over the projection `projection`
    /// reports.
    pub fn new(capacity: usize, projection: ProjectionWatch) -> Self {
        AuthCache {
            state: Mutex::new(State::default()),
            capacity: capacity.max(1),
            projection,
            token_changes: tokio::sync::broadcast::channel(TOKEN_CHANGES_BUFFER).0,
        }
    }

    /// Follows the accounts whose token is rotated or revoked from now on (by this
    /// process's commands, and by the projector for every process that projects).
    pub fn token_changes(&self) -> tokio::sync::broadcast::Receiver<AccountId> {
        self.token_changes.subscribe()
    }

    /// The account of the token hash `hash`, if cached.
    pub fn get(&self, hash: &str) -> Option<Arc<AccountRow>> {
        let state = self.state.lock();
        state
            .by_hash
            .get(hash)
            .filter(|account| state.accepts(account))
            .cloned()
    }

    /// Whether `account` (as read from the store) may be authenticated: false while
    /// a rotation of its token is acknowledged but not yet projected and `account`
    /// still has the old hash.
    pub fn accepts(&self, account: &AccountRow) -> bool {
        self.state.lock().accepts(account)
    }

    /// The value a fill must be tagged with: read it *before* reading the store.
    pub fn fill_epoch(&self) -> u64 {
        self.state.lock().epoch
    }

    /// Keeps `account`, read from the store after [`AuthCache::fill_epoch`] returned
    /// `epoch`, unless a token was rotated since or its token is being replaced.
    /// Returns false if a rotation came in between: the read may be stale, read again.
    pub fn fill(&self, epoch: u64, account: Arc<AccountRow>) -> bool {
        let mut state = self.state.lock();
        if state.epoch != epoch {
            return false;
        }
        if !state.accepts(&account) {
            return true;
        }
        if state.hash_of.len() >= self.capacity && !state.hash_of.contains_key(&account.account_id)
        {
            state.by_hash.clear();
            state.hash_of.clear();
        }
        state.forget(account.account_id);
        state
            .hash_of
            .insert(account.account_id, account.token_hash.clone());
        state.by_hash.insert(account.token_hash.clone(), account);
        true
    }

    /// Called by the command handler once a rotation of `account`'s token to one of
    /// hash `token_hash` is durable at `position`, before it is acknowledged.
    pub fn rotated(&self, account: AccountId, position: Position, token_hash: String) {
        let mut state = self.state.lock();
        state.epoch += 1;
        state.forget(account);
        // Nobody listening is fine.
        let _ = self.token_changes.send(account);
        // Checked under the lock: the projector announces a position only after its
        // invalidation (which takes the lock), so a position seen here as projected
        // has had its invalidation and needs no marker.
        if position <= self.projection.current() {
            return;
        }
        let newer = state
            .pending
            .get(&account)
            .is_some_and(|(at, _)| *at > position);
        if !newer {
            state.pending.insert(account, (position, token_hash));
        }
    }

    /// Called by the projector after committing `changes` up to `position` and before
    /// announcing it.
    pub fn invalidate(&self, changes: &[Change], position: Position) {
        let (put, tokens) = accounts_changed(changes);
        self.invalidate_accounts(&put, &tokens, position);
    }

    /// [`AuthCache::invalidate`] by what changed: the accounts whose row was put
    /// again and those whose token changed (from a commit notice of another node's
    /// projector).
    pub fn invalidate_accounts(&self, put: &[AccountId], tokens: &[AccountId], position: Position) {
        let mut state = self.state.lock();
        for account in put {
            state.forget(*account);
        }
        for account in tokens {
            state.epoch += 1;
            state.forget(*account);
            let _ = self.token_changes.send(*account);
        }
        if !state.pending.is_empty() {
            state.pending.retain(|_, (at, _)| *at > position);
        }
    }

    /// Drops every cached account, for a follower that may have missed
    /// invalidations up to `position`. Open connections cannot be told which token
    /// changed: they are left to the next invalidation they hear of.
    pub fn clear(&self, position: Position) {
        let mut state = self.state.lock();
        state.epoch += 1;
        state.by_hash.clear();
        state.hash_of.clear();
        state.pending.retain(|_, (at, _)| *at > position);
    }

    /// How many accounts are cached (for tests).
    pub fn len(&self) -> usize {
        self.state.lock().by_hash.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The accounts whose row `changes` put again (only a rebuild puts an existing
/// account again; a new one is not cached) and those whose token they change.
pub fn accounts_changed(changes: &[Change]) -> (Vec<AccountId>, Vec<AccountId>) {
    let mut put = Vec::new();
    let mut tokens = Vec::new();
    for change in changes {
        match change {
            Change::PutAccount(account) => put.push(account.account_id),
            Change::SetTokenHash { account_id, .. } => tokens.push(*account_id),
            _ => {}
        }
    }
    (put, tokens)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hayabusa_domain::{OrganizationId, RoomId};
    use tokio::sync::watch;

    fn cache() -> (AuthCache, watch::Sender<Position>) {
        let (sender, receiver) = watch::channel(0);
        (
            AuthCache::new(10, ProjectionWatch::from_receiver(receiver)),
            sender,
        )
    }

    fn row(account: u64, hash: &str) -> Arc<AccountRow> {
        Arc::new(AccountRow {
            account_id: AccountId(account),
            my_room_id: RoomId(account),
            organization_id: OrganizationId(1),
            organization_name: "o".into(),
            name: "n".into(),
            mail: String::new(),
            department: String::new(),
            title: String::new(),
            admin: false,
            token_hash: hash.into(),
            created_at: 0,
        })
    }

    fn rotation(account: u64, hash: &str) -> Change {
        Change::SetTokenHash {
            account_id: AccountId(account),
            token_hash: hash.into(),
        }
    }

    #[test]
    fn a_projected_rotation_drops_the_old_entry() {
        let (cache, _sender) = cache();
        cache.fill(cache.fill_epoch(), row(1, "old"));
        cache.fill(cache.fill_epoch(), row(2, "other"));
        assert!(cache.get("old").is_some());
        cache.invalidate(&[rotation(1, "new")], 5);
        assert!(cache.get("old").is_none());
        assert!(cache.get("other").is_some(), "other accounts stay");
    }

    #[test]
    fn a_fill_that_raced_an_invalidation_is_not_kept() {
        let (cache, _sender) = cache();
        let epoch = cache.fill_epoch();
        // The store was read (old hash), then the projector committed the rotation.
        cache.invalidate(&[rotation(1, "new")], 5);
        assert!(!cache.fill(epoch, row(1, "old")), "read again");
        assert!(cache.get("old").is_none());
    }

    #[test]
    fn an_acknowledged_rotation_refuses_the_old_hash_until_projected() {
        let (cache, sender) = cache();
        cache.fill(cache.fill_epoch(), row(1, "old"));
        cache.rotated(AccountId(1), 7, "new".into());
        assert!(cache.get("old").is_none());
        // The read store still has the old hash: refused, and not cached.
        assert!(!cache.accepts(&row(1, "old")));
        cache.fill(cache.fill_epoch(), row(1, "old"));
        assert!(cache.get("old").is_none());
        assert!(cache.accepts(&row(1, "new")));
        assert!(cache.accepts(&row(2, "old")), "only that account");

        // A batch before the rotation keeps the marker; the rotation's batch clears it.
        cache.invalidate(&[], 6);
        assert!(!cache.accepts(&row(1, "old")));
        cache.invalidate(&[rotation(1, "new")], 7);
        sender.send_replace(7);
        cache.fill(cache.fill_epoch(), row(1, "new"));
        assert!(cache.get("new").is_some());
    }

    #[test]
    fn an_already_projected_rotation_leaves_no_marker() {
        let (cache, sender) = cache();
        sender.send_replace(9);
        // A retried request's rotation (position 7) that was projected and then
        // superseded: the current token must keep working.
        cache.rotated(AccountId(1), 7, "older".into());
        assert!(cache.accepts(&row(1, "current")));
    }

    #[test]
    fn capacity_bounds_the_entries() {
        let (cache, _sender) = cache();
        for account in 0..25 {
            cache.fill(cache.fill_epoch(), row(account, &format!("h{account}")));
            assert!(cache.len() <= 10);
        }
        // A new token of a cached account replaces its entry.
        cache.fill(cache.fill_epoch(), row(24, "h24b"));
        assert!(cache.get("h24").is_none());
        assert!(cache.get("h24b").is_some());
    }
}
