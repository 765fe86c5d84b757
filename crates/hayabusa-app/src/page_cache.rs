//! The latest-messages page of each busy room, rendered once and served from memory
//! (`GET /rooms/{id}/messages?force=1`, by far the most frequent read), together with
//! the room's member roles so that the membership check needs no query either.
//!
//! The projector invalidates a room after committing any change that alters its
//! messages or members ([`touched_by`]), *before* it announces the new position. An
//! entry records the projected position it was read at (`as_of`, taken before the
//! reads), and is served only while no change to its room was projected after that.
//! A reader that raced a batch therefore never installs a stale page for longer than
//! the batch takes to announce, and read-your-writes (which waits for the announced
//! position) always sees the new page.
//!
//! Memory is bounded: at most `capacity` pages (a page of 100 messages is about
//! 30 KB), and at most [`CHANGE_MARKS`] remembered change positions (beyond that the
//! marks are dropped and every older entry counts as stale).

use crate::projection_watch::ProjectionWatch;
use bytes::Bytes;
use hayabusa_domain::{AccountId, Role, RoomId};
use hayabusa_store::{Change, Position};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Pages kept by default.
pub const DEFAULT_CAPACITY: usize = 1_024;

/// Most per-room change positions remembered before they are folded into one floor.
pub const CHANGE_MARKS: usize = 100_000;

/// What a batch of changes means for cached pages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Touched {
    /// Rooms whose messages or members changed.
    pub rooms: Vec<RoomId>,
    /// An account row changed (names appear on every page): drop everything.
    pub everything: bool,
}

impl Touched {
    /// Whether nothing cached is affected.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty() && !self.everything
    }
}

/// The rooms whose cached pages `changes` invalidate. Every variant is listed on
/// purpose: a new kind of change must decide whether it alters a page.
pub fn touched_by(changes: &[Change]) -> Touched {
    let mut rooms = HashSet::new();
    let mut everything = false;
    for change in changes {
        match change {
            Change::PutAccount(_) => everything = true,
            Change::PutRoom(room) => {
                rooms.insert(room.room_id);
            }
            Change::UpdateRoom { room_id, .. }
            | Change::DeleteRoom { room_id }
            | Change::PutMember { room_id, .. }
            | Change::RemoveMember { room_id, .. }
            | Change::EditMessage { room_id, .. }
            | Change::DeleteMessage { room_id, .. } => {
                rooms.insert(*room_id);
            }
            Change::InsertMessage(message) => {
                rooms.insert(message.room_id);
            }
            Change::SetReadCursor { .. }
            | Change::SetTokenHash { .. }
            | Change::PutTask(_)
            | Change::SetTaskStatus { .. }
            | Change::PutFile(_)
            | Change::PutContactRequest(_)
            | Change::RemoveContactRequest { .. }
            | Change::PutContact { .. }
            | Change::RemoveContact { .. }
            | Change::SetLink(_)
            | Change::RemoveLink { .. }
            | Change::PutJoinRequest { .. }
            | Change::RemoveJoinRequest { .. }
            | Change::RecordOps(_)
            | Change::OpenMembership { .. }
            | Change::CloseMembership { .. } => {}
        }
    }
    Touched {
        rooms: rooms.into_iter().collect(),
        everything,
    }
}

/// One room's cached read.
pub struct RoomPage {
    /// Members and their roles, as of `as_of`.
    roles: HashMap<AccountId, Role>,
    /// The rendered latest messages; `None` when the room has none.
    page: Option<Bytes>,
    /// Accounts whose fetch cursor is known to be at the room's latest message.
    fetched: Mutex<HashSet<AccountId>>,
    as_of: Position,
}

impl RoomPage {
    /// The caller's role, or `None` when they are not a member.
    pub fn role_of(&self, account: AccountId) -> Option<Role> {
        self.roles.get(&account).copied()
    }

    /// The rendered page (`None`: no messages).
    pub fn page(&self) -> Option<Bytes> {
        self.page.clone()
    }

    /// Whether `account`'s fetch cursor is already at this page's latest message.
    pub fn fetched_by(&self, account: AccountId) -> bool {
        self.fetched.lock().contains(&account)
    }

    /// Records that `account`'s fetch cursor was moved to the latest message.
    pub fn mark_fetched(&self, account: AccountId) {
        self.fetched.lock().insert(account);
    }
}

#[derive(Default)]
struct State {
    pages: HashMap<RoomId, Arc<RoomPage>>,
    /// The last projected position that changed each room.
    changed_at: HashMap<RoomId, Position>,
    /// Entries read before this position are stale whatever their room.
    floor: Position,
}

impl State {
    fn is_fresh(&self, room: RoomId, as_of: Position) -> bool {
        as_of >= self.floor && self.changed_at.get(&room).is_none_or(|&at| as_of >= at)
    }
}

/// The cache. Shared by the projector (which invalidates) and the queries.
pub struct PageCache {
    state: Mutex<State>,
    capacity: usize,
    projection: ProjectionWatch,
}

impl PageCache {
    /// A cache of at most `capacity` rooms (0 turns it off) over the projection
    /// `projection` reports.
    pub fn new(capacity: usize, projection: ProjectionWatch) -> Self {
        PageCache {
            state: Mutex::new(State::default()),
            capacity,
            projection,
        }
    }

    /// The position a fill must be tagged with: read it *before* reading the store.
    pub fn fill_position(&self) -> Position {
        self.projection.current()
    }

    /// The room's entry, if cached and fresh.
    pub fn get(&self, room: RoomId) -> Option<Arc<RoomPage>> {
        let state = self.state.lock();
        let page = state.pages.get(&room)?;
        state.is_fresh(room, page.as_of).then(|| page.clone())
    }

    /// Builds an entry from reads made at or after `as_of` and keeps it unless a
    /// change to the room was projected since or the room has no members (no such
    /// room, or a deleted one: ids callers invent take no memory); it is returned
    /// either way.
    pub fn fill(
        &self,
        room: RoomId,
        as_of: Position,
        roles: HashMap<AccountId, Role>,
        page: Option<Bytes>,
    ) -> Arc<RoomPage> {
        let entry = Arc::new(RoomPage {
            roles,
            page,
            fetched: Mutex::new(HashSet::new()),
            as_of,
        });
        if self.capacity == 0 || entry.roles.is_empty() {
            return entry;
        }
        let mut state = self.state.lock();
        if !state.is_fresh(room, as_of) {
            return entry;
        }
        if state.pages.len() >= self.capacity && !state.pages.contains_key(&room) {
            // Evict an arbitrary room (the hasher's order is random).
            if let Some(&victim) = state.pages.keys().next() {
                state.pages.remove(&victim);
            }
        }
        state.pages.insert(room, entry.clone());
        entry
    }

    /// Called by the projector after committing a batch up to `position` and before
    /// announcing it.
    pub fn invalidate(&self, touched: &Touched, position: Position) {
        if touched.is_empty() {
            return;
        }
        let mut state = self.state.lock();
        if touched.everything || state.changed_at.len() + touched.rooms.len() > CHANGE_MARKS {
            state.pages.clear();
            state.changed_at.clear();
            state.floor = state.floor.max(position);
            return;
        }
        for room in &touched.rooms {
            state.pages.remove(room);
            state.changed_at.insert(*room, position);
        }
    }

    /// How many rooms are cached (for tests and metrics).
    pub fn len(&self) -> usize {
        self.state.lock().pages.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hayabusa_store::MessageRow;
    use tokio::sync::watch;

    fn cache(capacity: usize) -> (PageCache, watch::Sender<Position>) {
        let (sender, receiver) = watch::channel(0);
        (
            PageCache::new(capacity, ProjectionWatch::from_receiver(receiver)),
            sender,
        )
    }

    fn roles(accounts: &[u64]) -> HashMap<AccountId, Role> {
        accounts
            .iter()
            .map(|&a| (AccountId(a), Role::Member))
            .collect()
    }

    fn touched(rooms: &[u64]) -> Touched {
        Touched {
            rooms: rooms.iter().map(|&r| RoomId(r)).collect(),
            everything: false,
        }
    }

    #[test]
    fn a_fill_is_served_until_its_room_changes() {
        let (cache, _sender) = cache(10);
        cache.fill(RoomId(1), 5, roles(&[7]), Some(Bytes::from_static(b"[1]")));
        let hit = cache.get(RoomId(1)).expect("cached");
        assert_eq!(hit.role_of(AccountId(7)), Some(Role::Member));
        assert_eq!(hit.role_of(AccountId(8)), None);
        assert_eq!(hit.page(), Some(Bytes::from_static(b"[1]")));

        cache.invalidate(&touched(&[2]), 6);
        assert!(cache.get(RoomId(1)).is_some(), "another room's change");
        cache.invalidate(&touched(&[1]), 7);
        assert!(cache.get(RoomId(1)).is_none());
    }

    #[test]
    fn a_fill_read_before_a_projected_change_is_not_kept() {
        let (cache, _sender) = cache(10);
        // A reader took its position (5), then the projector committed a change to the
        // room at 6 and invalidated, then the reader's (stale) fill arrives.
        cache.invalidate(&touched(&[1]), 6);
        cache.fill(RoomId(1), 5, roles(&[7]), None);
        assert!(cache.get(RoomId(1)).is_none());
        cache.fill(RoomId(1), 6, roles(&[7]), None);
        assert!(cache.get(RoomId(1)).is_some());
    }

    #[test]
    fn an_account_change_drops_everything_older() {
        let (cache, _sender) = cache(10);
        cache.fill(RoomId(1), 5, roles(&[7]), None);
        cache.invalidate(
            &Touched {
                rooms: vec![],
                everything: true,
            },
            9,
        );
        assert!(cache.get(RoomId(1)).is_none());
        cache.fill(RoomId(1), 8, roles(&[7]), None);
        assert!(
            cache.get(RoomId(1)).is_none(),
            "read before the account change"
        );
        cache.fill(RoomId(1), 9, roles(&[7]), None);
        assert!(cache.get(RoomId(1)).is_some());
    }

    #[test]
    fn capacity_bounds_the_pages_and_zero_turns_the_cache_off() {
        let (cache, _sender) = cache(3);
        for room in 0..10 {
            cache.fill(RoomId(room), 1, roles(&[1]), None);
        }
        assert_eq!(cache.len(), 3);

        let (off, _sender) = self::cache(0);
        off.fill(RoomId(1), 1, roles(&[1]), None);
        assert!(off.get(RoomId(1)).is_none());
    }

    #[test]
    fn a_room_without_members_is_not_kept() {
        let (cache, _sender) = cache(10);
        for room in 0..100 {
            let entry = cache.fill(RoomId(room), 1, HashMap::new(), None);
            assert_eq!(entry.role_of(AccountId(1)), None);
        }
        assert!(cache.is_empty());
    }

    #[test]
    fn fetch_marks_belong_to_one_entry() {
        let (cache, _sender) = cache(10);
        let entry = cache.fill(RoomId(1), 1, roles(&[7]), None);
        assert!(!entry.fetched_by(AccountId(7)));
        entry.mark_fetched(AccountId(7));
        assert!(
            cache
                .get(RoomId(1))
                .expect("cached")
                .fetched_by(AccountId(7))
        );
        cache.invalidate(&touched(&[1]), 2);
        let refilled = cache.fill(RoomId(1), 2, roles(&[7]), None);
        assert!(!refilled.fetched_by(AccountId(7)));
    }

    #[test]
    fn messages_and_members_touch_their_room_and_read_cursors_do_not() {
        let message = MessageRow {
            room_id: RoomId(3),
            message_id: hayabusa_domain::MessageId(1),
            seq: 1,
            account_id: AccountId(1),
            body: "hi".into(),
            send_time: 0,
            update_time: 0,
            mentions: vec![],
            to_all: false,
        };
        let changes = vec![
            Change::InsertMessage(message),
            Change::SetReadCursor {
                account_id: AccountId(1),
                room_id: RoomId(4),
                read_seq: 1,
            },
            Change::RemoveMember {
                room_id: RoomId(5),
                account_id: AccountId(2),
            },
        ];
        let mut rooms = touched_by(&changes).rooms;
        rooms.sort();
        assert_eq!(rooms, vec![RoomId(3), RoomId(5)]);
        assert!(!touched_by(&changes).everything);
    }
}
