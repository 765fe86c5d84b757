//! The command side: authorise, load the aggregate, decide, append with optimistic
//! concurrency, retry a bounded number of times on conflict.
//!
//! Room state is kept in a write-side cache, one entry per room behind its own async
//! mutex, so a command costs O(1) reads however long the room's history is: the
//! cached state is appended against with `Exactly(version)`; only a conflict (another
//! writer process) or a cold cache reads the stream, and then only what is new.
//!
//! Every append is recorded in the [`AckTracker`] before the command returns, so that
//! every read that starts after the answer sees it ([`crate::consistency`]); commands
//! that consult the read store wait the same way for what they read.

mod contacts;
mod files;
mod forwarders;
mod links;
pub mod signin;
mod tasks;
mod tokens;
mod webhooks;

pub use webhooks::CreatedWebhook;

pub use files::{MAX_FILENAME_CHARS, NewFile, sanitize_filename};
pub use links::{Joined, LinkSettings};
pub use tasks::NewTasks;

use crate::auth_cache::{self, AuthCache};
use crate::clock::{Clock, IdGenerator};
use crate::consistency::{AckTracker, Key};
use crate::error::AppError;
use crate::projector::decode;
use crate::streams;
use crate::tokens::{TokenSecret, hash_token};
use hayabusa_domain::text::{clean_name, ellipsize_list};
use hayabusa_domain::{
    AccountCreated, AccountId, DomainError, Event, MessageId, OrganizationId, Role, Room,
    RoomCommand, RoomId, RoomType,
};
use hayabusa_store::{
    AccountRow, AppendRequest, Appended, BlobStore, EventLog, ExpectedVersion, IdempotencyKey,
    NewEvent, Position, ReadModelQueries, Snapshot, SnapshotStore, StoreError,
};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// How many times a command is re-decided after a concurrency conflict.
const MAX_ATTEMPTS: usize = 5;
/// How many rooms the write-side cache keeps before evicting idle ones.
const ROOM_CACHE_CAPACITY: usize = 50_000;
/// Longest account name, organization name, department and title, in characters.
pub const MAX_ACCOUNT_NAME_CHARS: usize = 255;

/// The result of a write: a value and the log position that makes it visible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written<T> {
    /// The result.
    pub value: T,
    /// Reads that wait for the projection to reach this position see the write.
    pub position: Position,
}

/// A new account and its token (shown once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedAccount {
    /// The account as recorded.
    pub account: AccountCreated,
    /// Its API token.
    pub token: String,
}

/// Input for creating an account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewAccount {
    /// Display name (required).
    pub name: String,
    /// Mail address.
    pub mail: String,
    /// Organization by name; None = the creator's organization.
    pub organization_name: Option<String>,
    /// Department.
    pub department: String,
    /// Title.
    pub title: String,
    /// Server administrator?
    pub admin: bool,
}

/// Input for creating a group room.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewRoom {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Icon preset.
    pub icon_preset: String,
    /// Members with roles (the creator is added as admin if absent).
    pub members: Vec<(AccountId, Role)>,
}

#[derive(Default)]
struct CachedRoom {
    state: Room,
    version: u64,
    /// False after a duplicate or an error: read the stream before the next decide.
    fresh: bool,
}

/// Executes commands.
pub struct CommandHandler {
    log: Arc<dyn EventLog>,
    read: Arc<dyn ReadModelQueries>,
    writes: Arc<AckTracker>,
    clock: Arc<dyn Clock>,
    ids: Arc<IdGenerator>,
    secret: TokenSecret,
    blobs: Arc<dyn BlobStore>,
    auth: Arc<AuthCache>,
    rooms: Mutex<HashMap<RoomId, Arc<tokio::sync::Mutex<CachedRoom>>>>,
    /// Where rooms' snapshots are kept (none: every cold load replays the stream).
    snapshots: Option<Arc<dyn SnapshotStore>>,
}

/// A cold load of a room that replays at least this many events saves a snapshot of
/// the result, so that the next cold load replays only what came after it.
pub const SNAPSHOT_AFTER_EVENTS: usize = 1_000;

/// The format of room snapshots: the room state's version and the event schema's
/// (a change of either makes old snapshots useless; they are replaced on next load).
pub fn room_snapshot_format() -> u32 {
    (hayabusa_domain::ROOM_STATE_VERSION << 16) | hayabusa_domain::EVENT_SCHEMA_VERSION
}

fn new_events(events: &[Event]) -> Vec<NewEvent> {
    events
        .iter()
        .map(|event| NewEvent {
            event_type: event.event_type().to_string(),
            schema_version: hayabusa_domain::EVENT_SCHEMA_VERSION,
            data: event.encode(),
        })
        .collect()
}

fn suffixed(key: &Option<IdempotencyKey>, suffix: &str) -> Option<IdempotencyKey> {
    key.as_ref().map(|k| IdempotencyKey {
        key: format!("{}{suffix}", k.key),
        fingerprint: k.fingerprint.clone(),
    })
}

impl CommandHandler {
    /// A handler over the given ports.
    pub fn new(
        log: Arc<dyn EventLog>,
        read: Arc<dyn ReadModelQueries>,
        writes: Arc<AckTracker>,
        clock: Arc<dyn Clock>,
        ids: Arc<IdGenerator>,
        secret: TokenSecret,
        blobs: Arc<dyn BlobStore>,
    ) -> Self {
        let auth = Arc::new(AuthCache::new(
            auth_cache::DEFAULT_CAPACITY,
            writes.projection().clone(),
        ));
        CommandHandler {
            log,
            read,
            writes,
            clock,
            ids,
            secret,
            blobs,
            auth,
            rooms: Mutex::new(HashMap::new()),
            snapshots: None,
        }
    }

    /// Loads rooms from, and saves them to, snapshots in `store`.
    pub fn with_snapshots(mut self, store: Arc<dyn SnapshotStore>) -> Self {
        self.snapshots = Some(store);
        self
    }

    /// Records token rotations in `cache` (the queries' authentication cache) before
    /// acknowledging them.
    pub fn with_auth_cache(mut self, cache: Arc<AuthCache>) -> Self {
        self.auth = cache;
        self
    }

    /// The token secret (to recompute a token).
    pub fn secret(&self) -> &TokenSecret {
        &self.secret
    }

    /// Appends `events` and records them as acknowledged (every append goes through
    /// here, so that every acknowledged write is tracked before its answer).
    async fn append(
        &self,
        stream: String,
        expected: ExpectedVersion,
        events: &[Event],
        idempotency: Option<IdempotencyKey>,
    ) -> Result<Appended, StoreError> {
        let appended = self
            .log
            .append(AppendRequest {
                stream,
                expected,
                events: new_events(events),
                idempotency,
            })
            .await?;
        if appended.duplicate {
            // The first attempt's events, which may be answered now for the first time
            // (a concurrent retry). An undecodable one is refused by the caller.
            let first: Vec<Event> = appended
                .events
                .iter()
                .filter_map(|recorded| decode(recorded).ok())
                .collect();
            self.writes.record(&first, appended.position);
        } else {
            self.writes.record(events, appended.position);
        }
        Ok(appended)
    }

    /// Creates an account (and its "my" room). `creator` is None only for the
    /// bootstrap administrator. Only administrators may create accounts.
    pub async fn create_account(
        &self,
        creator: Option<&AccountRow>,
        input: NewAccount,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<Written<CreatedAccount>, AppError> {
        if let Some(creator) = creator
            && !creator.admin
        {
            return Err(AppError::forbidden(
                "only administrators can create accounts",
            ));
        }
        // Names are shown to others: cleaned of invisible controls (the domain's rule).
        let name = clean_name(&input.name);
        if name.is_empty() {
            return Err(AppError::invalid("name must not be empty"));
        }
        let department = clean_name(&input.department);
        let title = clean_name(&input.title);
        for (field, value) in [
            ("name", &name),
            ("department", &department),
            ("title", &title),
        ] {
            if value.chars().count() > MAX_ACCOUNT_NAME_CHARS {
                return Err(AppError::invalid(format!(
                    "{field} is longer than {MAX_ACCOUNT_NAME_CHARS} characters"
                )));
            }
        }
        let organization_name = input.organization_name.map(|org| clean_name(&org));
        let (organization_id, organization_name) = match (organization_name, creator) {
            (Some(org), _) if !org.is_empty() => {
                if org.chars().count() > MAX_ACCOUNT_NAME_CHARS {
                    return Err(AppError::invalid(format!(
                        "organization_name is longer than {MAX_ACCOUNT_NAME_CHARS} characters"
                    )));
                }
                (self.organization(&org).await?, org)
            }
            (_, Some(creator)) => (creator.organization_id, creator.organization_name.clone()),
            (_, None) => {
                let org = "Hayabusa".to_string();
                (self.organization(&org).await?, org)
            }
        };
        let at = self.clock.now_secs();
        let account_id = self.ids.account(self.clock.as_ref());
        let my_room_id = self.ids.room(self.clock.as_ref());
        let created = AccountCreated {
            account_id,
            my_room_id,
            organization_id,
            organization_name,
            name,
            mail: input.mail,
            department,
            title,
            admin: input.admin,
            token_hash: hash_token(&self.secret.token_for(account_id)),
            at,
        };
        let appended = self
            .append(
                streams::account(account_id),
                ExpectedVersion::NoStream,
                &[Event::AccountCreated(created)],
                idempotency.clone(),
            )
            .await?;
        // On a retried request this is the first attempt's account.
        let created = match appended.events.first().map(decode).transpose()? {
            Some(Event::AccountCreated(created)) => created,
            _ => {
                return Err(
                    StoreError::Corrupt("account stream without its creation".into()).into(),
                );
            }
        };
        let my_room = Event::RoomCreated {
            room_id: created.my_room_id,
            room_type: RoomType::My,
            name: created.name.clone(),
            description: String::new(),
            icon_preset: "group".into(),
            created_by: created.account_id,
            members: vec![(created.account_id, Role::Admin)],
            at: created.at,
        };
        let room_appended = match self
            .append(
                streams::room(created.my_room_id),
                ExpectedVersion::NoStream,
                &[my_room],
                suffixed(&idempotency, "#my-room"),
            )
            .await
        {
            Ok(appended) => appended.position,
            // The first attempt created it already.
            Err(StoreError::Conflict { .. }) => appended.position,
            Err(e) => return Err(e.into()),
        };
        let token = self.secret.token_for(created.account_id);
        let position = room_appended.max(appended.position);
        Ok(Written {
            value: CreatedAccount {
                account: created,
                token,
            },
            position,
        })
    }

    /// The id of the organization named `name`, claiming the name if it is new.
    async fn organization(&self, name: &str) -> Result<OrganizationId, AppError> {
        let stream = streams::organization(name);
        for _ in 0..MAX_ATTEMPTS {
            if let Some(first) = self.log.read_stream(&stream, 0, 1).await?.first() {
                if let Event::OrganizationCreated {
                    organization_id, ..
                } = decode(first)?
                {
                    return Ok(organization_id);
                }
                return Err(StoreError::Corrupt(format!(
                    "{stream} does not start with its creation"
                ))
                .into());
            }
            let organization_id = self.ids.organization(self.clock.as_ref());
            let event = Event::OrganizationCreated {
                organization_id,
                name: name.to_string(),
            };
            match self
                .append(stream.clone(), ExpectedVersion::NoStream, &[event], None)
                .await
            {
                Ok(_) => return Ok(organization_id),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Contention(stream))
    }

    /// Accounts by id; unknown ids → 400. Accounts are never changed once created, so
    /// only missing ones are waited for (an acknowledged creation not projected yet).
    async fn known_accounts(&self, ids: &[AccountId]) -> Result<Vec<AccountRow>, AppError> {
        let read_at = self.writes.projection().current();
        let mut found = self.read.accounts(ids).await?;
        if found.len() < ids.len() {
            self.writes
                .settle(ids.iter().map(|id| Key::Account(*id)))
                .await?;
            if self.writes.projection().current() > read_at {
                found = self.read.accounts(ids).await?;
            }
        }
        if found.len() < ids.len() {
            let known: Vec<AccountId> = found.iter().map(|a| a.account_id).collect();
            let unknown: Vec<String> = ids
                .iter()
                .filter(|id| !known.contains(id))
                .map(|id| id.to_string())
                .collect();
            return Err(AppError::invalid(format!(
                "unknown account ids: {}",
                ellipsize_list(&unknown)
            )));
        }
        Ok(found)
    }

    /// Checks that every account in `members` exists and may join a room of `caller`:
    /// same organization (contacts will widen this).
    async fn check_joinable(
        &self,
        caller: &AccountRow,
        members: &[(AccountId, Role)],
    ) -> Result<(), AppError> {
        let mut ids: Vec<AccountId> = members.iter().map(|(id, _)| *id).collect();
        ids.sort();
        ids.dedup();
        let accounts = self.known_accounts(&ids).await?;
        let contacts: Vec<AccountId> = if accounts
            .iter()
            .any(|a| a.organization_id != caller.organization_id)
        {
            // Contact approvals and removals acknowledged before this command count.
            self.writes
                .settle([Key::Account(caller.account_id)])
                .await?;
            self.read
                .contacts(caller.account_id)
                .await?
                .into_iter()
                .map(|c| c.account.account_id)
                .collect()
        } else {
            Vec::new()
        };
        let outsiders: Vec<String> = accounts
            .iter()
            .filter(|a| {
                a.organization_id != caller.organization_id && !contacts.contains(&a.account_id)
            })
            .map(|a| a.account_id.to_string())
            .collect();
        if !outsiders.is_empty() {
            return Err(AppError::invalid(format!(
                "accounts {} are neither in your organization nor your contacts",
                ellipsize_list(&outsiders)
            )));
        }
        Ok(())
    }

    /// Creates a group room.
    pub async fn create_room(
        &self,
        caller: &AccountRow,
        mut input: NewRoom,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<Written<RoomId>, AppError> {
        if !input.members.iter().any(|(id, _)| *id == caller.account_id) {
            input.members.push((caller.account_id, Role::Admin));
        }
        self.check_joinable(caller, &input.members).await?;
        let room_id = self.ids.room(self.clock.as_ref());
        let command = RoomCommand::Create {
            room_id,
            room_type: RoomType::Group,
            name: input.name,
            description: input.description,
            icon_preset: input.icon_preset,
            creator: caller.account_id,
            members: input.members,
        };
        let written = self
            .execute(room_id, caller.account_id, command, idempotency)
            .await?;
        let room_id = match written.value.first() {
            Some(Event::RoomCreated { room_id, .. }) => *room_id,
            _ => room_id,
        };
        Ok(Written {
            value: room_id,
            position: written.position,
        })
    }

    /// Replaces a room's member list; returns the new list.
    pub async fn set_members(
        &self,
        caller: &AccountRow,
        room: RoomId,
        members: Vec<(AccountId, Role)>,
    ) -> Result<Written<()>, AppError> {
        // Only check other accounts once the caller is known to be an admin here, so
        // a non-member learns nothing about the room.
        self.require_admin(room, caller.account_id, "only room admins can do this")
            .await?;
        self.check_joinable(caller, &members).await?;
        let written = self
            .execute(
                room,
                caller.account_id,
                RoomCommand::SetMembers { members },
                None,
            )
            .await?;
        Ok(Written {
            value: (),
            position: written.position,
        })
    }

    /// The role of `account` in `room` (None if not a member or no such room).
    async fn role_in(&self, room: RoomId, account: AccountId) -> Result<Option<Role>, AppError> {
        let entry = self.room_entry(room);
        let mut cached = entry.lock().await;
        let refreshed = self.refresh(room, &mut cached).await;
        let role = cached.state.role_of(account);
        self.forget_if_absent(room, &entry, &cached);
        refreshed?;
        Ok(role)
    }

    /// Passes if `account` is an admin of `room`; 404 for a non-member, 403 with
    /// `refusal` for another member.
    async fn require_admin(
        &self,
        room: RoomId,
        account: AccountId,
        refusal: &str,
    ) -> Result<(), AppError> {
        match self.role_in(room, account).await? {
            None => Err(DomainError::NotFound("room").into()),
            Some(Role::Admin) => Ok(()),
            Some(_) => Err(AppError::forbidden(refusal)),
        }
    }

    /// Posts a message; returns its id.
    pub async fn post_message(
        &self,
        caller: AccountId,
        room: RoomId,
        body: String,
        self_unread: bool,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<Written<MessageId>, AppError> {
        let message_id = self.ids.message(self.clock.as_ref());
        let command = RoomCommand::PostMessage {
            message_id,
            body,
            self_unread,
        };
        let written = self.execute(room, caller, command, idempotency).await?;
        let message_id = match written.value.first() {
            Some(Event::MessagePosted { message_id, .. }) => *message_id,
            _ => message_id,
        };
        Ok(Written {
            value: message_id,
            position: written.position,
        })
    }

    /// Executes any room command other than create; returns the events it caused
    /// (for a retried idempotent request: those of the first attempt).
    pub async fn execute(
        &self,
        room: RoomId,
        actor: AccountId,
        command: RoomCommand,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<Written<Vec<Event>>, AppError> {
        let entry = self.room_entry(room);
        let mut cached = entry.lock().await;
        let result = self
            .execute_locked(room, &mut cached, actor, command, idempotency)
            .await;
        self.forget_if_absent(room, &entry, &cached);
        result
    }

    /// [`CommandHandler::execute`] with the room's cache entry locked.
    async fn execute_locked(
        &self,
        room: RoomId,
        cached: &mut CachedRoom,
        actor: AccountId,
        command: RoomCommand,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<Written<Vec<Event>>, AppError> {
        let stream = streams::room(room);
        for _ in 0..MAX_ATTEMPTS {
            self.refresh(room, cached).await?;
            let events = cached
                .state
                .decide(actor, command.clone(), self.clock.now_secs())?;
            if events.is_empty() && idempotency.is_none() {
                return Ok(Written {
                    value: events,
                    position: self.log.head(),
                });
            }
            let expected = if cached.version == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exactly(cached.version)
            };
            match self
                .append(stream.clone(), expected, &events, idempotency.clone())
                .await
            {
                Ok(appended) if appended.duplicate => {
                    cached.fresh = false;
                    let events = appended
                        .events
                        .iter()
                        .map(decode)
                        .collect::<Result<Vec<_>, _>>()?;
                    return Ok(Written {
                        value: events,
                        position: appended.position,
                    });
                }
                Ok(appended) => {
                    let state = std::mem::take(&mut cached.state);
                    cached.state = events.iter().fold(state, Room::evolve);
                    cached.version = appended.stream_version;
                    return Ok(Written {
                        value: events,
                        position: appended.position,
                    });
                }
                Err(StoreError::Conflict { .. }) => {
                    cached.fresh = false;
                    continue;
                }
                Err(e) => {
                    cached.fresh = false;
                    return Err(e.into());
                }
            }
        }
        Err(AppError::Contention(stream))
    }

    fn room_entry(&self, room: RoomId) -> Arc<tokio::sync::Mutex<CachedRoom>> {
        let mut rooms = self.rooms.lock();
        if rooms.len() >= ROOM_CACHE_CAPACITY && !rooms.contains_key(&room) {
            // Evict entries nobody is using; they reload from the log when needed.
            rooms.retain(|_, entry| Arc::strong_count(entry) > 1);
        }
        rooms.entry(room).or_default().clone()
    }

    /// Drops `room`'s cache entry if the room has no stream (a command or check for a
    /// room id that does not exist, or a creation that failed) and nobody else is
    /// using the entry: only rooms that exist are cached, whatever ids callers send.
    fn forget_if_absent(
        &self,
        room: RoomId,
        entry: &Arc<tokio::sync::Mutex<CachedRoom>>,
        cached: &CachedRoom,
    ) {
        if cached.version != 0 {
            return;
        }
        let mut rooms = self.rooms.lock();
        // Two references: the map's and the caller's; more means someone waits for it.
        if rooms
            .get(&room)
            .is_some_and(|kept| Arc::ptr_eq(kept, entry) && Arc::strong_count(entry) == 2)
        {
            rooms.remove(&room);
        }
    }

    /// How many rooms the write-side cache holds (for tests and metrics).
    pub fn cached_rooms(&self) -> usize {
        self.rooms.lock().len()
    }

    /// Runs `decide` (given the state folded from `stream` by `evolve`, from
    /// `initial`, and the time) and appends what it decides with optimistic
    /// concurrency, deciding again after a conflict; returns where it was appended
    /// (the log's head if it decided nothing).
    pub(crate) async fn execute_on_stream<S>(
        &self,
        stream: &str,
        initial: impl Fn() -> S,
        evolve: impl Fn(S, &Event, u64) -> S,
        decide: impl Fn(&S, i64) -> Result<Vec<Event>, hayabusa_domain::DomainError>,
    ) -> Result<u64, AppError> {
        for _ in 0..MAX_ATTEMPTS {
            let (state, version) =
                crate::webhooks::fold_stream(self.log.as_ref(), stream, initial(), &evolve).await?;
            let events = decide(&state, self.clock.now_secs())?;
            if events.is_empty() {
                return Ok(self.log.head());
            }
            let expected = if version == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exactly(version)
            };
            match self
                .append(stream.to_owned(), expected, &events, None)
                .await
            {
                Ok(appended) => return Ok(appended.position),
                Err(StoreError::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(AppError::Contention(stream.to_owned()))
    }

    /// Every event of a (small) stream, decoded, and the stream's version.
    async fn read_whole_stream(&self, stream: &str) -> Result<(Vec<Event>, u64), AppError> {
        let mut events = Vec::new();
        let mut version = 0;
        loop {
            let page = self.log.read_stream(stream, version, 1_000).await?;
            let Some(last) = page.last() else { break };
            version = last.stream_version;
            for recorded in &page {
                events.push(decode(recorded)?);
            }
        }
        Ok((events, version))
    }

    /// Brings a cached room up to date with its stream, reading only what is new.
    async fn refresh(&self, room: RoomId, cached: &mut CachedRoom) -> Result<(), AppError> {
        if cached.fresh {
            return Ok(());
        }
        let stream = streams::room(room);
        if cached.version == 0
            && let Some((state, revision)) = self.load_snapshot(&stream).await
        {
            cached.state = state;
            cached.version = revision;
        }
        let mut replayed = 0;
        loop {
            let events = self.log.read_stream(&stream, cached.version, 1_000).await?;
            let Some(last) = events.last() else { break };
            cached.version = last.stream_version;
            replayed += events.len();
            for recorded in &events {
                let state = std::mem::take(&mut cached.state);
                cached.state = state.evolve(&decode(recorded)?);
            }
        }
        cached.fresh = true;
        metrics::counter!("hayabusa_room_events_replayed_total").increment(replayed as u64);
        if replayed >= SNAPSHOT_AFTER_EVENTS {
            self.save_snapshot(&stream, cached).await;
        }
        Ok(())
    }

    /// The room's snapshot and its revision, if one of this format is kept. A
    /// snapshot is a cache of the log: one that cannot be read is ignored (logged).
    async fn load_snapshot(&self, stream: &str) -> Option<(Room, u64)> {
        let store = self.snapshots.as_ref()?;
        let snapshot = match store.load_snapshot(stream).await {
            Ok(snapshot) => snapshot?,
            Err(error) => {
                tracing::warn!(%error, stream, "reading a room snapshot failed; replaying the stream");
                return None;
            }
        };
        if snapshot.format != room_snapshot_format() {
            return None;
        }
        match postcard::from_bytes::<Room>(&snapshot.data) {
            Ok(state) => Some((state, snapshot.revision)),
            Err(error) => {
                tracing::warn!(%error, stream, "a room snapshot does not decode; replaying the stream");
                None
            }
        }
    }

    /// Saves `cached` as the room's snapshot; a failure only costs the next cold load
    /// a longer replay (logged).
    async fn save_snapshot(&self, stream: &str, cached: &CachedRoom) {
        let Some(store) = &self.snapshots else {
            return;
        };
        let data = match postcard::to_stdvec(&cached.state) {
            Ok(data) => data,
            Err(error) => {
                tracing::warn!(%error, stream, "encoding a room snapshot failed");
                return;
            }
        };
        let snapshot = Snapshot {
            stream: stream.to_owned(),
            revision: cached.version,
            format: room_snapshot_format(),
            data,
        };
        if let Err(error) = store.save_snapshot(&snapshot).await {
            tracing::warn!(%error, stream, "saving a room snapshot failed");
        }
    }
}
