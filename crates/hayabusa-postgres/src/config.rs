//! Where the read store lives and how to reach it: the connection string, shown only
//! without its password, and the pool's settings.
//!
//! A connection string is libpq's: a URL (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`
//! with optional `?key=value` parameters) or `key=value` pairs. It is parsed once into
//! a [`DatabaseUrl`], whose `Display` and `Debug` never contain the password, so that
//! it can be logged and put into error messages freely.

use hayabusa_store::StoreError;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::config::Host;

/// A parsed PostgreSQL connection string. Shows as
/// `postgres://USER:***@HOST:PORT/DB` (`***` only if it has a password): the password
/// never appears in its `Display` or `Debug`.
#[derive(Clone)]
pub struct DatabaseUrl {
    config: tokio_postgres::Config,
}

impl DatabaseUrl {
    /// The driver's configuration (whose own `Debug` leaves the password out too).
    pub(crate) fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The database name, if the string names one.
    pub fn database(&self) -> Option<&str> {
        self.config.get_dbname()
    }

    /// The same server and credentials with another database.
    pub fn with_database(&self, database: &str) -> DatabaseUrl {
        let mut config = self.config.clone();
        config.dbname(database);
        DatabaseUrl { config }
    }
}

impl FromStr for DatabaseUrl {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<Self, StoreError> {
        let config = tokio_postgres::Config::from_str(text).map_err(|error| {
            // The cause says what is wrong, but the key-value parser quotes the
            // character it stumbled on, which may be part of a password: name the
            // problem without it then.
            let reason = match std::error::Error::source(&error) {
                Some(cause) if cause.to_string().contains("unexpected character") => {
                    "malformed key=value pair".to_owned()
                }
                Some(cause) => cause.to_string(),
                None => error.to_string(),
            };
            StoreError::Unavailable(format!("invalid PostgreSQL connection string: {reason}"))
        })?;
        if config.get_hosts().is_empty() {
            return Err(StoreError::Unavailable(
                "invalid PostgreSQL connection string: it names no host".to_owned(),
            ));
        }
        Ok(DatabaseUrl { config })
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = &self.config;
        f.write_str("postgres://")?;
        if let Some(user) = config.get_user() {
            f.write_str(user)?;
            if config.get_password().is_some() {
                f.write_str(":***")?;
            }
            f.write_str("@")?;
        }
        let ports = config.get_ports();
        for (index, host) in config.get_hosts().iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            match host {
                Host::Tcp(name) => f.write_str(name)?,
                #[cfg(unix)]
                Host::Unix(path) => write!(f, "{}", path.display())?,
            }
            // One port for every host, or one per host.
            let port = ports
                .get(index)
                .or_else(|| ports.first().filter(|_| ports.len() == 1));
            if let Some(port) = port {
                write!(f, ":{port}")?;
            }
        }
        if let Some(database) = config.get_dbname() {
            write!(f, "/{database}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// How the read store uses its server.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Connections kept open at most; queries, fetch cursors and the projector share
    /// them.
    pub max_connections: usize,
    /// The schema holding the tables (created if missing); None uses the connection's
    /// own search path (normally `public`). Lower-case letters, digits and `_` only.
    pub schema: Option<String>,
    /// How long getting a connection may take (from the pool, or a new one from the
    /// server) before the operation fails as unavailable.
    pub connect_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 8,
            schema: None,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Checks that `schema` is a plain lower-case identifier, so that it can be written
/// into SQL without quoting rules (and means the same unquoted everywhere).
pub(crate) fn checked_schema(schema: &str) -> Result<&str, StoreError> {
    let mut characters = schema.chars();
    let plain = characters
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first == '_')
        && characters.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && schema.len() <= 63;
    if plain {
        Ok(schema)
    } else {
        Err(StoreError::Unavailable(format!(
            "invalid schema name {schema:?}: use lower-case letters, digits and _ (at most 63)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_shows_without_its_password() {
        let url: DatabaseUrl = "postgres://hayabusa:s3cr%40t@db.example:6543/reads"
            .parse()
            .expect("a valid URL");
        assert_eq!(
            url.to_string(),
            "postgres://hayabusa:***@db.example:6543/reads"
        );
        let debug = format!("{url:?}");
        assert!(!debug.contains("s3cr"), "{debug}");
        assert!(!format!("{:?}", url.config()).contains("s3cr"));
        assert_eq!(url.database(), Some("reads"));
    }

    #[test]
    fn key_value_strings_and_urls_without_a_password_are_accepted() {
        let url: DatabaseUrl =
            "host=127.0.0.1 port=5432 user=postgres password=hunter2 dbname=test"
                .parse()
                .expect("key-value pairs");
        assert_eq!(
            url.to_string(),
            "postgres://postgres:***@127.0.0.1:5432/test"
        );
        let url: DatabaseUrl = "postgres://postgres@127.0.0.1:5432/test"
            .parse()
            .expect("a URL without a password");
        assert_eq!(url.to_string(), "postgres://postgres@127.0.0.1:5432/test");
        assert_eq!(
            url.with_database("other").to_string(),
            "postgres://postgres@127.0.0.1:5432/other"
        );
    }

    #[test]
    fn a_malformed_string_is_refused_without_quoting_it() {
        // The parser stumbles on the password's first character and would quote it.
        let refused = "host=localhost password hunter2"
            .parse::<DatabaseUrl>()
            .expect_err("malformed")
            .to_string();
        assert!(refused.contains("malformed key=value pair"), "{refused}");
        assert!(!refused.contains("`h`"), "{refused}");
        assert!(
            "postgres:///reads".parse::<DatabaseUrl>().is_err(),
            "a string without a host is refused"
        );
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(checked_schema("hayabusa_reads_2").is_ok());
        for refused in ["", "Reads", "2nd", "a-b", "a;drop", "x\"y", &"a".repeat(64)] {
            assert!(checked_schema(refused).is_err(), "{refused:?}");
        }
    }
}
