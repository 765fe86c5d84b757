//! Hayabusa's application layer: command handling, the projector, queries and
//! read-after-acknowledged-write. It talks to storage through the ports of `hayabusa-store` only
//! and knows nothing of HTTP or SQL.

pub mod auth_cache;
pub mod blob_sweep;
pub mod clock;
pub mod commands;
pub mod consistency;
pub mod error;
pub mod follower;
pub mod forwarders;
pub mod hub;
pub mod idempotency;
pub mod leased;
pub mod ops;
pub mod page_cache;
pub mod projection_watch;
pub mod projector;
pub mod queries;
pub mod streams;
pub mod sync;
pub mod tokens;
pub mod webhooks;

#[cfg(test)]
pub(crate) mod test_support;

pub use auth_cache::AuthCache;
pub use blob_sweep::{ORPHAN_BLOB_GRACE, SweepReport, sweep_orphan_blobs};
pub use clock::{Clock, IdGenerator, SystemClock};
pub use commands::{
    CommandHandler, CreatedAccount, Joined, LinkSettings, NewAccount, NewFile, NewRoom, NewTasks,
    Written,
};
pub use consistency::AckTracker;
pub use error::AppError;
pub use follower::Follower;
pub use hub::{InProcessHub, WakeupHub};
pub use leased::{LeaseSettings, run_leased_projector};
pub use page_cache::PageCache;
pub use projection_watch::ProjectionWatch;
pub use projector::{Projector, ProjectorDelay, Stopped, rebuild};
pub use queries::{LIST_LIMIT, Queries};
pub use sync::SyncService;
pub use tokens::{TokenSecret, hash_token};

use hayabusa_store::{BlobStore, CommitFeed, EventLog, ReadStore};
use std::sync::Arc;

/// Everything the API needs, built from the ports.
pub struct App {
    /// The write side.
    pub commands: Arc<CommandHandler>,
    /// The read side.
    pub queries: Queries,
    /// Acknowledged writes, and the waits that make every reader see them.
    pub writes: Arc<AckTracker>,
    /// The sync gateway.
    pub sync: Arc<SyncService>,
    /// File contents (downloads read them directly).
    pub blobs: Arc<dyn BlobStore>,
    /// The event log (for health and head position).
    pub log: Arc<dyn EventLog>,
    /// The read store (for readiness checks).
    pub read: Arc<dyn ReadStore>,
    /// The rendered latest-messages pages (the queries fill it, the projector
    /// invalidates it); here for tests and metrics.
    pub pages: Arc<PageCache>,
}

/// The ports and sources an [`App`] is built from.
pub struct AppParts {
    /// The event log.
    pub log: Arc<dyn EventLog>,
    /// The read store.
    pub read: Arc<dyn ReadStore>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Id generator.
    pub ids: Arc<IdGenerator>,
    /// Token secret.
    pub secret: TokenSecret,
    /// Wake-up hub between the projector and the sync gateway.
    pub hub: Arc<dyn WakeupHub>,
    /// File contents.
    pub blobs: Arc<dyn BlobStore>,
    /// Rooms whose latest-messages page is kept rendered in memory (0: none).
    pub page_cache_rooms: usize,
    /// How long a read waits for the projector to reach the writes acknowledged
    /// before it, before answering 503 ([`consistency::DEFAULT_MAX_READ_WAIT`]).
    pub max_read_wait: std::time::Duration,
    /// A pause before each live projection batch (tests only; zero by default).
    #[doc(hidden)]
    pub projector_delay: ProjectorDelay,
}

impl App {
    /// The workers that deliver this deployment's webhooks through `transport`
    /// (run them with [`webhooks::WebhookWorkers::run_all`] in one process at a time).
    pub fn webhook_workers(
        &self,
        transport: Arc<dyn webhooks::WebhookTransport>,
        schedule: webhooks::RetrySchedule,
    ) -> Arc<webhooks::WebhookWorkers> {
        webhooks::WebhookWorkers::new(
            self.sync.clone(),
            self.read.clone(),
            self.read.clone(),
            self.commands.clone(),
            transport,
            schedule,
        )
    }

    /// The workers that forward the domain events to this deployment's forwarders
    /// through `transport` (run them with
    /// [`forwarders::ForwarderWorkers::run_leased`]).
    pub fn forwarder_workers(
        &self,
        transport: Arc<dyn webhooks::WebhookTransport>,
        schedule: webhooks::RetrySchedule,
    ) -> Arc<forwarders::ForwarderWorkers> {
        forwarders::ForwarderWorkers::new(
            self.log.clone(),
            self.read.clone(),
            self.commands.clone(),
            transport,
            schedule,
        )
    }

    /// Builds the app and its projector (a process projecting into a read store of
    /// its own); the caller runs [`Projector::run`].
    pub async fn build(parts: AppParts) -> Result<(App, Projector), AppError> {
        let projector = Projector::new(parts.log.clone(), parts.read.clone())
            .await?
            .with_hub(parts.hub.clone())
            .with_delay(parts.projector_delay.clone());
        let pages = Arc::new(PageCache::new(parts.page_cache_rooms, projector.watch()));
        let auth_cache = Arc::new(AuthCache::new(
            auth_cache::DEFAULT_CAPACITY,
            projector.watch(),
        ));
        let watch = projector.watch();
        let projector = projector
            .with_page_cache(pages.clone())
            .with_auth_cache(auth_cache.clone());
        let app = Self::assemble(parts, pages, auth_cache, watch);
        Ok((app, projector))
    }

    /// Builds the app of a cluster node, whose read models some process holding the
    /// projector lease projects ([`run_leased_projector`]), and the follower of that
    /// projector's commit `feed` that keeps the app's caches and position true; the
    /// caller runs [`Follower::run`].
    pub async fn build_following(
        parts: AppParts,
        feed: Arc<dyn CommitFeed>,
    ) -> Result<(App, Follower), AppError> {
        let follower = Follower::new(parts.read.clone(), feed, parts.hub.clone()).await?;
        let pages = Arc::new(PageCache::new(parts.page_cache_rooms, follower.watch()));
        let auth_cache = Arc::new(AuthCache::new(
            auth_cache::DEFAULT_CAPACITY,
            follower.watch(),
        ));
        let watch = follower.watch();
        let follower = follower
            .with_page_cache(pages.clone())
            .with_auth_cache(auth_cache.clone());
        let app = Self::assemble(parts, pages, auth_cache, watch);
        Ok((app, follower))
    }

    fn assemble(
        parts: AppParts,
        pages: Arc<PageCache>,
        auth_cache: Arc<AuthCache>,
        watch: ProjectionWatch,
    ) -> App {
        let mut writes = AckTracker::new(watch, parts.max_read_wait);
        if parts.log.is_shared() {
            writes = writes.with_shared_log(parts.log.clone());
        }
        let writes = Arc::new(writes);
        // What the log holds now was acknowledged by an earlier process (or another
        // node): reads wait for the projector to reach it too.
        writes.acknowledge_all_up_to(parts.log.head());
        let commands = CommandHandler::new(
            parts.log.clone(),
            parts.read.clone(),
            writes.clone(),
            parts.clock,
            parts.ids,
            parts.secret,
            parts.blobs.clone(),
        )
        .with_auth_cache(auth_cache.clone())
        .with_snapshots(parts.read.clone());
        let sync = SyncService::new(
            parts.read.clone(),
            parts.log.clone(),
            writes.clone(),
            parts.hub,
        );
        let queries = Queries::new(
            parts.read.clone(),
            parts.log.clone(),
            writes.clone(),
            pages.clone(),
        )
        .with_auth_cache(auth_cache);
        App {
            commands: Arc::new(commands),
            queries,
            writes,
            sync: Arc::new(sync),
            blobs: parts.blobs,
            log: parts.log,
            read: parts.read,
            pages,
        }
    }
}
