//! [`PgReadStore`]: the connection pool, the schema check at start, and the fence
//! that keeps a stale writer out.

use crate::config::{DatabaseUrl, PgOptions, checked_schema};
use crate::schema;
use crate::values::store_error;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use hayabusa_store::{Position, StoreError};
use parking_lot::Mutex;
use std::fmt;
use std::sync::Arc;
use tokio_postgres::NoTls;

/// A read store in a PostgreSQL database. Cheap to clone; clones share the pool and
/// the fence.
///
/// Its `Debug` shows the server without the password.
#[derive(Clone)]
pub struct PgReadStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pool: Pool,
    url: DatabaseUrl,
    schema: Option<String>,
    /// The checkpoint this store last read (before it wrote) or committed: the
    /// position its writer's batches start from. A batch is refused if the stored
    /// checkpoint is somewhere else, since another writer moved it meanwhile.
    /// None until the store has read or written one.
    pub(crate) fence: Mutex<Option<Position>>,
    /// When (Unix seconds) this store last deleted ended rate windows.
    pub(crate) last_rate_sweep: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for PgReadStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgReadStore")
            .field("url", &self.inner.url)
            .field("schema", &self.inner.schema)
            .finish_non_exhaustive()
    }
}

impl PgReadStore {
    /// Connects to the database `url` names (a libpq URL or key-value string),
    /// creating or migrating the schema, and returns the store.
    ///
    /// Fails with [`StoreError::Unavailable`] if the string is malformed or no server
    /// answers within `options.connect_timeout`, and with [`StoreError::Corrupt`] if
    /// the database's schema is newer than this code. Neither message contains the
    /// password.
    pub async fn connect(url: &str, options: PgOptions) -> Result<PgReadStore, StoreError> {
        let url: DatabaseUrl = url.parse()?;
        PgReadStore::connect_to(&url, options).await
    }

    /// [`PgReadStore::connect`] with a parsed connection string.
    pub async fn connect_to(
        url: &DatabaseUrl,
        options: PgOptions,
    ) -> Result<PgReadStore, StoreError> {
        let mut config = url.config().clone();
        if config.get_application_name().is_none() {
            config.application_name("hayabusa");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        let schema = match &options.schema {
            Some(schema) => {
                let schema = checked_schema(schema)?;
                let search_path = format!("-c search_path={schema}");
                let server_options = match config.get_options() {
                    Some(given) => format!("{given} {search_path}"),
                    None => search_path,
                };
                config.options(&server_options);
                Some(schema.to_owned())
            }
            None => None,
        };
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|error| {
                StoreError::Unavailable(format!("read store pool for {url}: {error}"))
            })?;
        let store = PgReadStore {
            inner: Arc::new(Inner {
                pool,
                url: url.clone(),
                schema: schema.clone(),
                fence: Mutex::new(None),
                last_rate_sweep: std::sync::atomic::AtomicU64::new(0),
            }),
        };
        let mut client = store.client().await?;
        if let Some(schema) = &schema {
            // The name was checked to be a plain identifier.
            client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .await
                .map_err(store_error)?;
        }
        let found = schema::migrate(&mut client).await?;
        tracing::info!(
            url = %url,
            schema = schema.as_deref().unwrap_or("(search path)"),
            found_version = found,
            version = schema::current_version(),
            "read store connected"
        );
        Ok(store)
    }

    /// A pooled connection.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|error| pool_error(&self.inner.url, error))
    }

    /// Remembers `checkpoint` as where this store's next batch starts, unless it
    /// already knows one (see [`Inner::fence`]).
    pub(crate) fn note_read_checkpoint(&self, checkpoint: Position) {
        let mut fence = self.inner.fence.lock();
        if fence.is_none() {
            *fence = Some(checkpoint);
        }
    }

    /// Remembers `checkpoint` as where this store's next batch starts.
    pub(crate) fn note_written_checkpoint(&self, checkpoint: Position) {
        *self.inner.fence.lock() = Some(checkpoint);
    }

    /// Where this store's next batch starts, if it knows.
    pub(crate) fn fence(&self) -> Option<Position> {
        *self.inner.fence.lock()
    }
}

/// Maps a pool error; the message names the server without its password.
fn pool_error(url: &DatabaseUrl, error: PoolError) -> StoreError {
    let reason = match error {
        PoolError::Backend(error) => store_error(error).to_string(),
        other => other.to_string(),
    };
    StoreError::Unavailable(format!(
        "no connection to the read store at {url}: {reason}"
    ))
}
