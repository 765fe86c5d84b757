//! The schema and its versioned migrations.
//!
//! Each migration is numbered and applied once, in order, in a transaction of its own
//! that also records its number in `schema_migrations`: a database is either before
//! or after a migration, never in between. [`migrate`] runs at start; a database that
//! records a migration this code does not know (a newer version wrote it) is refused.
//! Two processes starting at once may both try a migration: one commits, the other's
//! transaction fails (on the version's primary key or the tables it creates), and it
//! reads the versions again and finds the work done.
//!
//! Portability rules (the schema must also run on PostgreSQL-compatible distributed
//! engines such as CockroachDB or YugabyteDB): standard types only (`BIGINT`, `TEXT`,
//! `BOOLEAN`, `BIGINT[]`), no extensions, no sequences or serial ids, no triggers or
//! stored procedures, no advisory locks, no `UNLOGGED` tables. Ids are `BIGINT`
//! because every id the domain makes is below 2^63.

use crate::values::{is_retryable, store_error};
use deadpool_postgres::Client;
use hayabusa_store::StoreError;

/// One step of the schema.
pub(crate) struct Migration {
    /// Its number: migrations run in this order, each once.
    pub(crate) version: i64,
    /// What it does, for the `schema_migrations` table.
    pub(crate) description: &'static str,
    /// The statements.
    pub(crate) sql: &'static str,
}

/// Every migration, oldest first. Never edit one that has shipped: add another.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "read models, sync ops, membership intervals, fetch cursors, checkpoint",
        sql: V1_READ_MODELS,
    },
    Migration {
        version: 2,
        description: "aggregate snapshots",
        sql: V2_SNAPSHOTS,
    },
    Migration {
        version: 3,
        description: "leases (the active projector, snowflake worker ids)",
        sql: V3_LEASES,
    },
    Migration {
        version: 4,
        description: "rate windows (the API's rate limits across a cluster)",
        sql: V4_RATE_WINDOWS,
    },
    Migration {
        version: 5,
        description: "consumer checkpoints (webhook deliveries, forwarders)",
        sql: V5_CONSUMER_CHECKPOINTS,
    },
];

/// What each consumer of the log besides the projector has finished (see
/// `hayabusa_store::consumer`); a reset keeps them.
const V5_CONSUMER_CHECKPOINTS: &str = "
CREATE TABLE consumer_checkpoints (
    consumer TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

/// The API's fixed-window rate counters (see `hayabusa_store::rate`), shared by every
/// API node: by scope and 128-bit key (two halves), the window's end in microseconds
/// since the epoch (by the database's clock) and the requests counted in it.
/// Unlogged: counters are not worth a WAL write and an fsync per request; a crash
/// of the database only reopens the windows.
const V4_RATE_WINDOWS: &str = "
CREATE UNLOGGED TABLE rate_windows (
    scope SMALLINT NOT NULL,
    key_high BIGINT NOT NULL,
    key_low BIGINT NOT NULL,
    ends_us BIGINT NOT NULL,
    used BIGINT NOT NULL,
    PRIMARY KEY (scope, key_high, key_low)
);
CREATE INDEX rate_windows_by_end ON rate_windows (ends_us);
";

/// Leases by name, with their fences (see `hayabusa_store::lease`); expiry is judged
/// by the database's clock. A reset keeps them.
const V3_LEASES: &str = "
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    fence BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
";

/// Snapshots of the write side's aggregates, by stream (caches of the log: a reset
/// drops them with the read models).
const V2_SNAPSHOTS: &str = "
CREATE TABLE snapshots (
    stream TEXT PRIMARY KEY,
    revision BIGINT NOT NULL,
    format BIGINT NOT NULL,
    data BYTEA NOT NULL
);
";

/// The first schema.
///
/// - `checkpoint` has one row: the log position the read models reflect, written in
///   the same transaction as the models.
/// - A message's mentions are a sorted `BIGINT[]` on the message row (the in-memory
///   reference treats them as a set), so posting writes one row and unread mentions
///   are counted from the rows the unread count reads anyway.
/// - `messages` is keyed by `(room_id, seq)`, the order every message query reads
///   in; `messages_by_id` makes `(room_id, message_id)` unique too.
/// - `fetch_cursors.seq` is NULL for a cursor row created only to lock the pair
///   while a first fetch decides where the cursor goes.
/// - `sync_ops.idx` is `BIGINT` because the index is a `u32`.
const V1_READ_MODELS: &str = "
CREATE TABLE checkpoint (
    id SMALLINT PRIMARY KEY CHECK (id = 0),
    position BIGINT NOT NULL
);
INSERT INTO checkpoint (id, position) VALUES (0, 0);

CREATE TABLE accounts (
    account_id BIGINT PRIMARY KEY,
    my_room_id BIGINT NOT NULL,
    organization_id BIGINT NOT NULL,
    organization_name TEXT NOT NULL,
    name TEXT NOT NULL,
    mail TEXT NOT NULL,
    department TEXT NOT NULL,
    title TEXT NOT NULL,
    admin BOOLEAN NOT NULL,
    token_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX accounts_by_token_hash ON accounts (token_hash);

CREATE TABLE rooms (
    room_id BIGINT PRIMARY KEY,
    room_type TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    icon_preset TEXT NOT NULL,
    last_seq BIGINT NOT NULL,
    message_num BIGINT NOT NULL,
    last_update_time BIGINT NOT NULL
);

CREATE TABLE members (
    room_id BIGINT NOT NULL,
    account_id BIGINT NOT NULL,
    role TEXT NOT NULL,
    read_seq BIGINT NOT NULL,
    PRIMARY KEY (room_id, account_id)
);
CREATE INDEX members_by_account ON members (account_id, room_id);

CREATE TABLE messages (
    room_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    message_id BIGINT NOT NULL,
    account_id BIGINT NOT NULL,
    to_all BOOLEAN NOT NULL,
    mentions BIGINT[] NOT NULL,
    send_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (room_id, seq)
);
CREATE UNIQUE INDEX messages_by_id ON messages (room_id, message_id);

CREATE TABLE fetch_cursors (
    room_id BIGINT NOT NULL,
    account_id BIGINT NOT NULL,
    seq BIGINT,
    PRIMARY KEY (room_id, account_id)
);

CREATE TABLE sync_ops (
    position BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    room_id BIGINT,
    target BIGINT,
    op_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (position, idx)
);
CREATE INDEX sync_ops_by_room ON sync_ops (room_id, position, target);
CREATE INDEX sync_ops_by_target ON sync_ops (target, position) WHERE room_id IS NULL;

CREATE TABLE membership_intervals (
    account_id BIGINT NOT NULL,
    room_id BIGINT NOT NULL,
    from_position BIGINT NOT NULL,
    to_position BIGINT,
    PRIMARY KEY (account_id, room_id, from_position)
);

CREATE TABLE tasks (
    task_id BIGINT PRIMARY KEY,
    room_id BIGINT NOT NULL,
    account_id BIGINT NOT NULL,
    assigned_by BIGINT NOT NULL,
    message_id BIGINT NOT NULL,
    body TEXT NOT NULL,
    limit_time BIGINT NOT NULL,
    limit_type TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX tasks_by_room ON tasks (room_id, account_id, status);

CREATE TABLE files (
    file_id BIGINT PRIMARY KEY,
    room_id BIGINT NOT NULL,
    account_id BIGINT NOT NULL,
    message_id BIGINT NOT NULL,
    filename TEXT NOT NULL,
    filesize BIGINT NOT NULL,
    upload_time BIGINT NOT NULL,
    blob_key TEXT NOT NULL
);
CREATE INDEX files_by_room ON files (room_id, file_id);

CREATE TABLE contacts (
    account_id BIGINT NOT NULL,
    contact_id BIGINT NOT NULL,
    room_id BIGINT NOT NULL,
    PRIMARY KEY (account_id, contact_id)
);

CREATE TABLE contact_requests (
    request_id BIGINT PRIMARY KEY,
    from_account_id BIGINT NOT NULL,
    to_account_id BIGINT NOT NULL,
    message TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX contact_requests_by_recipient ON contact_requests (to_account_id, request_id);

CREATE TABLE links (
    room_id BIGINT PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    need_acceptance BOOLEAN NOT NULL,
    description TEXT NOT NULL
);

CREATE TABLE join_requests (
    room_id BIGINT NOT NULL,
    account_id BIGINT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (room_id, account_id)
);
";

/// The table that records which migrations ran.
const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL
)";

/// The newest schema version this code knows.
pub(crate) fn current_version() -> i64 {
    MIGRATIONS.last().map_or(0, |migration| migration.version)
}

/// How often [`migrate`] starts over after losing a race with another process.
const ATTEMPTS: usize = 3;

/// Brings the schema up to [`current_version`]; refuses a database whose schema is
/// newer. Returns the version it found.
pub(crate) async fn migrate(client: &mut Client) -> Result<i64, StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match migrate_once(client).await {
            Ok(found) => return Ok(found),
            // Another process migrated at the same time: look again.
            Err(MigrateError::Sql(error))
                if attempt < ATTEMPTS && (is_retryable(&error) || is_race(&error)) =>
            {
                tracing::debug!(%error, "read store migration raced another process, retrying");
            }
            Err(MigrateError::Sql(error)) => return Err(store_error(error)),
            Err(MigrateError::Store(error)) => return Err(error),
        }
    }
}

/// Whether a migration failed because another process made the same objects first.
fn is_race(error: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    error.code().is_some_and(|code| {
        *code == SqlState::UNIQUE_VIOLATION
            || *code == SqlState::DUPLICATE_TABLE
            || *code == SqlState::DUPLICATE_OBJECT
    })
}

enum MigrateError {
    Sql(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for MigrateError {
    fn from(error: tokio_postgres::Error) -> Self {
        MigrateError::Sql(error)
    }
}

async fn migrate_once(client: &mut Client) -> Result<i64, MigrateError> {
    client.batch_execute(MIGRATIONS_TABLE).await?;
    let found: i64 = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
            &[],
        )
        .await?
        .try_get(0)?;
    let current = current_version();
    if found > current {
        return Err(MigrateError::Store(StoreError::Corrupt(format!(
            "read store schema version {found} is newer than the supported {current}"
        ))));
    }
    for migration in MIGRATIONS
        .iter()
        .filter(|migration| migration.version > found)
    {
        let transaction = client.transaction().await?;
        transaction.batch_execute(migration.sql).await?;
        transaction
            .execute(
                "INSERT INTO schema_migrations (version, description) VALUES ($1, $2)",
                &[&migration.version, &migration.description],
            )
            .await?;
        transaction.commit().await?;
        tracing::info!(
            version = migration.version,
            description = migration.description,
            "read store schema migrated"
        );
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, i64::try_from(index).expect("few") + 1);
        }
    }

    #[test]
    fn the_schema_uses_no_engine_specific_features() {
        let schema = MIGRATIONS
            .iter()
            .map(|migration| migration.sql.to_ascii_uppercase())
            .collect::<String>();
        // One exception, ADR 0012: the rate-limit counters are unlogged (engines that
        // only parse UNLOGGED, as CockroachDB does, keep the table logged: correct,
        // slower).
        let schema = schema.replacen(
            "CREATE UNLOGGED TABLE RATE_WINDOWS",
            "CREATE TABLE RATE_WINDOWS",
            1,
        );
        for banned in [
            "EXTENSION",
            "SERIAL",
            "SEQUENCE",
            "TRIGGER",
            "FUNCTION",
            "PG_ADVISORY",
            "UNLOGGED",
            "JSONB",
            "INTEGER ",
        ] {
            assert!(!schema.contains(banned), "the schema uses {banned}");
        }
    }
}
