//! A fresh PostgreSQL database per test, made and dropped through an administrator
//! connection (`HAYABUSA_TEST_POSTGRES`, by default the local server's `postgres`
//! database as user `postgres`). No server is a test failure that says so, never a
//! skipped test. Only with the `testkit` feature.

use crate::{DatabaseUrl, PgOptions, PgReadStore};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio_postgres::NoTls;

/// The administrator connection when `HAYABUSA_TEST_POSTGRES` is not set.
const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Databases made by this process so far (their names must differ).
static MADE: AtomicUsize = AtomicUsize::new(0);

/// A database of its own for one test.
pub struct TestDatabase {
    admin: String,
    name: String,
    url: DatabaseUrl,
}

/// An administrator connection, or a panic that says how to provide one.
async fn admin_client(admin: &str) -> tokio_postgres::Client {
    let shown: DatabaseUrl = admin
        .parse()
        .unwrap_or_else(|error| panic!("HAYABUSA_TEST_POSTGRES is not usable: {error}"));
    let connected = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_postgres::connect(admin, NoTls),
    )
    .await
    .unwrap_or_else(|_| panic!("no PostgreSQL server answered at {shown} within 10 s"))
    .unwrap_or_else(|error| {
        panic!(
            "no PostgreSQL server at {shown}: {error}. The PostgreSQL tests need one: \
                 start it, or set HAYABUSA_TEST_POSTGRES to an administrator connection"
        )
    });
    let (client, connection) = connected;
    tokio::spawn(async move {
        // Ends when the client is dropped.
        let _ = connection.await;
    });
    client
}

impl TestDatabase {
    /// Makes an empty database named `hb_test_<pid>_<n>`, after dropping those left
    /// by test processes that are gone.
    pub async fn create() -> TestDatabase {
        let admin = std::env::var("HAYABUSA_TEST_POSTGRES")
            .unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
        let client = admin_client(&admin).await;
        drop_leftovers(&client).await;
        let name = format!(
            "hb_test_{}_{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::Relaxed)
        );
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|error| panic!("CREATE DATABASE {name}: {error}"));
        let url = admin
            .parse::<DatabaseUrl>()
            .expect("checked above")
            .with_database(&name);
        TestDatabase { admin, name, url }
    }

    /// The database's connection string.
    pub fn url(&self) -> DatabaseUrl {
        self.url.clone()
    }

    /// The database's connection string as text, password included (for a server
    /// under test that takes it on its command line or in its configuration).
    pub fn connection_string(&self) -> String {
        if self.admin.contains("://") {
            let separator = if self.admin.contains('?') { '&' } else { '?' };
            format!("{}{separator}dbname={}", self.admin, self.name)
        } else {
            format!("{} dbname={}", self.admin, self.name)
        }
    }

    /// A store in `schema` of the database (made if missing).
    pub async fn store(&self, schema: &str) -> PgReadStore {
        let options = PgOptions {
            max_connections: 4,
            schema: Some(schema.to_owned()),
            ..PgOptions::default()
        };
        PgReadStore::connect_to(&self.url, options)
            .await
            .unwrap_or_else(|error| panic!("connect to {}: {error}", self.url))
    }

    /// A plain connection to the database, to look at or tamper with it.
    pub async fn client(&self) -> tokio_postgres::Client {
        let mut config: tokio_postgres::Config = self.admin.parse().expect("checked on create");
        config.dbname(&self.name);
        let (client, connection) = config
            .connect(NoTls)
            .await
            .unwrap_or_else(|error| panic!("connect to {}: {error}", self.url));
        tokio::spawn(async move {
            // Ends when the client is dropped.
            let _ = connection.await;
        });
        client
    }

    /// Drops the database (connections still open to it are closed).
    pub async fn drop(self) {
        let client = admin_client(&self.admin).await;
        client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .unwrap_or_else(|error| panic!("DROP DATABASE {}: {error}", self.name));
    }
}

/// Drops the test databases of processes that no longer run (a test that panicked
/// leaves its database behind).
async fn drop_leftovers(client: &tokio_postgres::Client) {
    // Whether a process runs is read from /proc.
    if !cfg!(target_os = "linux") {
        return;
    }
    let Ok(rows) = client
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'hb\\_test\\_%'",
            &[],
        )
        .await
    else {
        return;
    };
    for row in rows {
        let Ok(name) = row.try_get::<_, String>(0) else {
            continue;
        };
        let pid = name
            .strip_prefix("hb_test_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        let gone = pid.is_some_and(|pid| {
            pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        });
        if gone {
            let _ = client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}
