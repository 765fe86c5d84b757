//! The query side: authentication and the reads the API serves, with every room
//! read checked against the caller's membership.
//!
//! Every read first waits until the writes acknowledged before it that it could show
//! are projected ([`AckTracker`]): a room-scoped read waits for its room, an
//! account-wide one for the account and its rooms. With nothing in flight for them,
//! reads do not wait at all.

use crate::auth_cache::{self, AuthCache};
use crate::consistency::{AckTracker, Key};
use crate::error::AppError;
use crate::page_cache::PageCache;
use crate::tokens::hash_token;
use bytes::Bytes;
use hayabusa_domain::{AccountId, DomainError, FileId, MessageId, Role, RoomId, Sessions, TaskId};
use hayabusa_store::{
    AccountRow, ContactRequestView, ContactView, EventReader, FileView, JoinRequestView, LinkRow,
    MemberView, MessageView, ReadModelQueries, RoomView, StatusCounts, TaskFilter, TaskView,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Most items a list returns (ChatWork's limit).
pub const LIST_LIMIT: usize = 100;

/// Serves reads.
pub struct Queries {
    read: Arc<dyn ReadModelQueries>,
    log: Arc<dyn EventReader>,
    writes: Arc<AckTracker>,
    auth_cache: Arc<AuthCache>,
    pages: Arc<PageCache>,
    /// Accounts' sessions as last read from the log, with their stream's version:
    /// each session check reads only what was appended since.
    sessions: parking_lot::Mutex<HashMap<AccountId, (Sessions, u64)>>,
}

/// Most accounts whose sessions are kept in memory (beyond, they are read again).
const SESSION_CACHE_ACCOUNTS: usize = 10_000;

impl Queries {
    /// Queries over a read store.
    pub fn new(
        read: Arc<dyn ReadModelQueries>,
        log: Arc<dyn EventReader>,
        writes: Arc<AckTracker>,
        pages: Arc<PageCache>,
    ) -> Self {
        let auth_cache = Arc::new(AuthCache::new(
            auth_cache::DEFAULT_CAPACITY,
            writes.projection().clone(),
        ));
        Queries {
            read,
            log,
            writes,
            auth_cache,
            pages,
            sessions: parking_lot::Mutex::default(),
        }
    }

    /// Uses `cache` (shared with the projector and the command handler, which
    /// invalidate it) as the authentication cache.
    pub fn with_auth_cache(mut self, cache: Arc<AuthCache>) -> Self {
        self.auth_cache = cache;
        self
    }

    /// Follows the accounts whose token is rotated or revoked from now on: a
    /// connection that stays open after authenticating once checks its token again
    /// when its account shows up here.
    pub fn token_changes(&self) -> tokio::sync::broadcast::Receiver<AccountId> {
        self.auth_cache.token_changes()
    }

    /// The account a session cookie signs in, and the session's hash. The session
    /// is checked against the log (what was appended to the account's sessions since
    /// the last check is read), so a sign-out acknowledged anywhere holds here.
    pub async fn authenticate_session(
        &self,
        cookie: &str,
    ) -> Result<(Arc<AccountRow>, String), AppError> {
        use crate::commands::signin::{parse_session_cookie, session_is_live};
        let (account, hash) = parse_session_cookie(cookie).ok_or(AppError::Unauthenticated)?;
        let (known, version) = self.sessions.lock().remove(&account).unwrap_or_default();
        let (sessions, version) = crate::webhooks::fold_stream_from(
            self.log.as_ref(),
            &hayabusa_domain::sessions_stream(account),
            known,
            version,
            |sessions, event, _| sessions.evolve(event),
        )
        .await?;
        let live = session_is_live(&sessions, &hash);
        {
            let mut cache = self.sessions.lock();
            if cache.len() >= SESSION_CACHE_ACCOUNTS {
                cache.clear();
            }
            cache.insert(account, (sessions, version));
        }
        if !live {
            return Err(AppError::Unauthenticated);
        }
        let mut rows = self.read.accounts(&[account]).await?;
        if rows.is_empty() {
            // A session is started only for an account acknowledged before it.
            self.writes.learn_log_head().await?;
            self.writes
                .projection()
                .wait_for(
                    self.log.head().max(self.writes.max_acked()),
                    Duration::from_secs(2),
                )
                .await;
            rows = self.read.accounts(&[account]).await?;
        }
        let row = rows.pop().ok_or(AppError::Unauthenticated)?;
        Ok((Arc::new(row), hash))
    }

    /// The account a token belongs to. A token created a moment ago may not be
    /// projected yet: on a miss, wait for the projector to reach the log's head once.
    /// A rotated or revoked token is refused from the moment its rotation was
    /// acknowledged (see [`AuthCache`]).
    pub async fn authenticate(&self, token: &str) -> Result<Arc<AccountRow>, AppError> {
        if token.is_empty() || token.len() > 256 {
            return Err(AppError::Unauthenticated);
        }
        let hash = hash_token(token);
        if let Some(account) = self.auth_cache.get(&hash) {
            return Ok(account);
        }
        // A lookup that raced a token rotation (rare) is repeated: the store has the
        // rotation by the time the cache hears of it.
        for _ in 0..3 {
            let epoch = self.auth_cache.fill_epoch();
            let projection = self.writes.projection();
            let projected_before = projection.current();
            let mut found = self.read.account_by_token_hash(&hash).await?;
            if found.is_none() {
                // The projector may have been behind when we looked (or still be); on
                // a shared log the token may come from another node's write.
                self.writes.learn_log_head().await?;
                projection
                    .wait_for(
                        self.log.head().max(self.writes.max_acked()),
                        Duration::from_secs(2),
                    )
                    .await;
                if projection.current() > projected_before {
                    found = self.read.account_by_token_hash(&hash).await?;
                }
            }
            let account = Arc::new(
                found
                    .filter(|account| self.auth_cache.accepts(account))
                    .ok_or(AppError::Unauthenticated)?,
            );
            if self.auth_cache.fill(epoch, account.clone()) {
                return Ok(account);
            }
        }
        Err(AppError::Contention("authentication".into()))
    }

    /// Waits for the writes an account-wide read of `caller` shows.
    async fn settle_account(&self, caller: AccountId) -> Result<(), AppError> {
        self.writes.settle_account(self.read.as_ref(), caller).await
    }

    /// Totals for `/my/status`.
    pub async fn status(&self, caller: AccountId) -> Result<StatusCounts, AppError> {
        self.settle_account(caller).await?;
        Ok(self.read.status(caller).await?)
    }

    /// The caller's rooms.
    pub async fn rooms(&self, caller: AccountId) -> Result<Vec<RoomView>, AppError> {
        self.settle_account(caller).await?;
        Ok(self.read.rooms_of(caller).await?)
    }

    /// One room, if the caller is a member (404 otherwise).
    pub async fn room(&self, caller: AccountId, room: RoomId) -> Result<RoomView, AppError> {
        self.writes.settle_room(room).await?;
        self.read
            .room_of(caller, room)
            .await?
            .ok_or(AppError::Domain(DomainError::NotFound("room")))
    }

    /// A room's members.
    pub async fn members(
        &self,
        caller: AccountId,
        room: RoomId,
    ) -> Result<Vec<MemberView>, AppError> {
        self.room(caller, room).await?;
        Ok(self.read.members(room).await?)
    }

    /// At most 100 messages new since the caller's last fetch (`force=0`), moving the
    /// caller's fetch cursor past them.
    pub async fn new_messages(
        &self,
        caller: AccountId,
        room: RoomId,
    ) -> Result<Vec<MessageView>, AppError> {
        self.room(caller, room).await?;
        Ok(self
            .read
            .take_new_messages(caller, room, LIST_LIMIT)
            .await?)
    }

    /// The latest 100 messages of a room the caller is a member of (`force=1`), as
    /// rendered by `render` (`None`: the room has no messages), and the caller's fetch
    /// cursor moved to the latest message. Served from the [`PageCache`] while the
    /// room is unchanged: a repeated read costs no query and no rendering.
    pub async fn latest_page(
        &self,
        caller: AccountId,
        room: RoomId,
        render: impl FnOnce(&[MessageView]) -> Bytes,
    ) -> Result<Option<Bytes>, AppError> {
        // The projector invalidates a room's page before announcing a position, so
        // once the room's acknowledged writes are projected a cached page has them.
        self.writes.settle_room(room).await?;
        let entry = match self.pages.get(room) {
            Some(entry) => entry,
            None => {
                let as_of = self.pages.fill_position();
                let roles: HashMap<_, _> = self
                    .read
                    .members(room)
                    .await?
                    .into_iter()
                    .map(|member| (member.account.account_id, member.role))
                    .collect();
                let page = if roles.is_empty() {
                    None // no such room (or a deleted one): nothing to read
                } else {
                    let messages = self.read.latest_messages(room, LIST_LIMIT).await?;
                    (!messages.is_empty()).then(|| render(&messages))
                };
                self.pages.fill(room, as_of, roles, page)
            }
        };
        if entry.role_of(caller).is_none() {
            return Err(AppError::Domain(DomainError::NotFound("room")));
        }
        if !entry.fetched_by(caller) {
            self.read.set_fetch_cursor_to_latest(caller, room).await?;
            entry.mark_fetched(caller);
        }
        Ok(entry.page())
    }

    /// One message.
    pub async fn message(
        &self,
        caller: AccountId,
        room: RoomId,
        message: MessageId,
    ) -> Result<MessageView, AppError> {
        self.room(caller, room).await?;
        self.read
            .message(room, message)
            .await?
            .ok_or(AppError::Domain(DomainError::NotFound("message")))
    }

    /// Tasks of a room the caller is a member of.
    pub async fn tasks(
        &self,
        caller: AccountId,
        room: RoomId,
        filter: &TaskFilter,
    ) -> Result<Vec<TaskView>, AppError> {
        self.room(caller, room).await?;
        Ok(self.read.tasks_of_room(room, filter, LIST_LIMIT).await?)
    }

    /// One task.
    pub async fn task(
        &self,
        caller: AccountId,
        room: RoomId,
        task: TaskId,
    ) -> Result<TaskView, AppError> {
        self.room(caller, room).await?;
        self.read
            .task(room, task)
            .await?
            .ok_or(AppError::Domain(DomainError::NotFound("task")))
    }

    /// Tasks assigned to the caller.
    pub async fn my_tasks(
        &self,
        caller: AccountId,
        filter: &TaskFilter,
    ) -> Result<Vec<TaskView>, AppError> {
        self.settle_account(caller).await?;
        Ok(self
            .read
            .tasks_of_account(caller, filter, LIST_LIMIT)
            .await?)
    }

    /// Files of a room.
    pub async fn files(
        &self,
        caller: AccountId,
        room: RoomId,
        uploader: Option<AccountId>,
    ) -> Result<Vec<FileView>, AppError> {
        self.room(caller, room).await?;
        Ok(self.read.files_of_room(room, uploader, LIST_LIMIT).await?)
    }

    /// One file.
    pub async fn file(
        &self,
        caller: AccountId,
        room: RoomId,
        file: FileId,
    ) -> Result<FileView, AppError> {
        self.room(caller, room).await?;
        self.file_unchecked(room, file).await
    }

    /// One file, without a membership check (for signed downloads).
    pub async fn file_unchecked(&self, room: RoomId, file: FileId) -> Result<FileView, AppError> {
        self.writes.settle_room(room).await?;
        self.read
            .file(room, file)
            .await?
            .ok_or(AppError::Domain(DomainError::NotFound("file")))
    }

    /// The caller's contacts.
    pub async fn contacts(&self, caller: AccountId) -> Result<Vec<ContactView>, AppError> {
        self.writes.settle([Key::Account(caller)]).await?;
        Ok(self.read.contacts(caller).await?)
    }

    /// Contact requests waiting for the caller.
    pub async fn incoming_requests(
        &self,
        caller: AccountId,
    ) -> Result<Vec<ContactRequestView>, AppError> {
        self.writes.settle([Key::Account(caller)]).await?;
        Ok(self.read.incoming_requests(caller).await?)
    }

    /// A room's invitation link (None if it has none).
    pub async fn link(&self, caller: AccountId, room: RoomId) -> Result<Option<LinkRow>, AppError> {
        self.room(caller, room).await?;
        Ok(self.read.link_of_room(room).await?)
    }

    /// Pending join requests of a room: for its admins only (other members 403,
    /// non-members 404).
    pub async fn join_requests(
        &self,
        caller: AccountId,
        room: RoomId,
    ) -> Result<Vec<JoinRequestView>, AppError> {
        let view = self.room(caller, room).await?;
        if view.role != Role::Admin {
            return Err(AppError::forbidden(
                "only the room's admins can see its join requests",
            ));
        }
        Ok(self.read.join_requests(room).await?)
    }

    /// Accounts by id.
    pub async fn accounts(&self, ids: &[AccountId]) -> Result<Vec<AccountRow>, AppError> {
        self.writes
            .settle(ids.iter().map(|id| Key::Account(*id)))
            .await?;
        Ok(self.read.accounts(ids).await?)
    }
}
