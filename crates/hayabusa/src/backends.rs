//! Which engines hold the event log and the read models: the embedded SQLite files
//! (the default), NATS JetStream for the log and PostgreSQL for the read models.
//!
//! Connection strings may carry passwords. They are kept in [`ServiceUrl`], whose
//! `Display` and `Debug` show them with the password replaced, so that neither logs
//! nor error messages ever print a secret; only the adapters see the real string.

use anyhow::bail;

/// A connection string that never prints its password.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceUrl(String);

impl ServiceUrl {
    /// Wraps a connection string.
    pub fn new(raw: impl Into<String>) -> Self {
        ServiceUrl(raw.into())
    }

    /// The string with its secrets, for the adapter that connects.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The string with every password replaced by `***`: in URLs
    /// (`scheme://user:secret@host`, each of a comma-separated list) and in libpq's
    /// key-value form (`password=secret`).
    pub fn redacted(&self) -> String {
        if !self.0.contains("://") {
            return self
                .0
                .split(' ')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=***")
                    }
                    _ => pair.to_string(),
                })
                .collect::<Vec<_>>()
                .join(" ");
        }
        self.0
            .split(',')
            .map(redact_one)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `scheme://user:secret@rest` → `scheme://user:***@rest`; for NATS, whose
/// `nats://token@host` is a token, a lone credential is hidden as well (for
/// PostgreSQL it is the user name).
fn redact_one(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None if scheme.is_some_and(|scheme| scheme.starts_with("postgres")) => {
                format!("{credentials}@{host}")
            }
            None => format!("***@{host}"),
        },
        None => authority.to_string(),
    };
    // A query string may carry a password too (`?password=…`).
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=***")
                    }
                    _ => pair.to_string(),
                })
                .collect::<Vec<_>>()
                .join("&");
            format!("{path}?{query}")
        }
        None => tail.to_string(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{authority}{tail}"),
        None => format!("{authority}{tail}"),
    }
}

impl std::fmt::Display for ServiceUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl std::fmt::Debug for ServiceUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServiceUrl({:?})", self.redacted())
    }
}

/// Where the event log lives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum EventLogBackend {
    /// `events.sqlite` in the data directory.
    #[default]
    Embedded,
    /// A JetStream stream.
    Nats {
        /// `nats://HOST:PORT[,HOST:PORT…]`.
        servers: ServiceUrl,
        /// The stream's name.
        stream: String,
        /// How many servers keep each message (1, or 3 in a cluster).
        replicas: usize,
    },
}

/// Where the read models live.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ReadStoreBackend {
    /// `read.sqlite` in the data directory.
    #[default]
    Embedded,
    /// A PostgreSQL database (any libpq-style connection string).
    Postgres(ServiceUrl),
}

/// Where uploaded files live.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum BlobStoreBackend {
    /// `files/` in the data directory (one node).
    #[default]
    Local,
    /// A JetStream object store bucket on the event log's NATS servers, with the
    /// event log's replicas (every node of a cluster reads every file).
    Nats {
        /// The bucket's name.
        bucket: String,
    },
    /// A bucket (and prefix) of Amazon S3 or an S3-compatible service, with the
    /// service's settings from the `AWS_*` environment variables (every node of a
    /// cluster reads every file).
    S3(hayabusa_s3::S3Location),
}

impl BlobStoreBackend {
    /// From `--blob-store`: `local` (the default), `nats` (needs
    /// `--event-log nats://…`) or `s3://bucket[/prefix]`.
    pub fn parse(raw: Option<&str>) -> anyhow::Result<Self> {
        match raw.map(str::trim).filter(|raw| !raw.is_empty()) {
            None => Ok(BlobStoreBackend::Local),
            Some(raw) if raw.eq_ignore_ascii_case("local") => Ok(BlobStoreBackend::Local),
            Some(raw) if raw.eq_ignore_ascii_case("nats") => Ok(BlobStoreBackend::Nats {
                bucket: hayabusa_nats::blobs::DEFAULT_BUCKET.to_owned(),
            }),
            Some(raw) if raw.starts_with("s3://") => {
                if raw.contains('@') {
                    bail!(
                        "--blob-store {}: credentials do not go in the URL; set \
                         AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                        ServiceUrl::new(raw)
                    );
                }
                hayabusa_s3::S3Location::parse(raw)
                    .map(BlobStoreBackend::S3)
                    .map_err(|error| anyhow::anyhow!("--blob-store: {error}"))
            }
            Some(raw) => bail!(
                "--blob-store {}: expected local (the data directory), nats (a JetStream \
                 object store on the event log's servers) or s3://bucket[/prefix]",
                ServiceUrl::new(raw)
            ),
        }
    }
}

/// The default JetStream stream name.
pub const DEFAULT_STREAM: &str = "HAYABUSA";

impl EventLogBackend {
    /// From `--event-log` (absent, `sqlite` or `embedded`: the data directory's file).
    pub fn parse(url: Option<&str>, stream: &str, replicas: usize) -> anyhow::Result<Self> {
        let Some(url) = url.map(str::trim).filter(|url| !url.is_empty()) else {
            return Ok(EventLogBackend::Embedded);
        };
        if url.eq_ignore_ascii_case("sqlite") || url.eq_ignore_ascii_case("embedded") {
            return Ok(EventLogBackend::Embedded);
        }
        let servers = ServiceUrl::new(url);
        if !url.starts_with("nats://") && !url.starts_with("tls://") {
            bail!("--event-log {servers}: expected nats://HOST:PORT[,HOST:PORT…] or sqlite");
        }
        if !(1..=5).contains(&replicas) {
            bail!("--event-log-replicas {replicas}: JetStream keeps 1 to 5 replicas");
        }
        let valid_stream = !stream.is_empty()
            && stream
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid_stream {
            bail!("--event-log-stream {stream:?}: letters, digits, '_' and '-' only");
        }
        Ok(EventLogBackend::Nats {
            servers,
            stream: stream.to_string(),
            replicas,
        })
    }
}

impl ReadStoreBackend {
    /// From `--read-store` (absent, `sqlite` or `embedded`: the data directory's file).
    pub fn parse(url: Option<&str>) -> anyhow::Result<Self> {
        let Some(url) = url.map(str::trim).filter(|url| !url.is_empty()) else {
            return Ok(ReadStoreBackend::Embedded);
        };
        if url.eq_ignore_ascii_case("sqlite") || url.eq_ignore_ascii_case("embedded") {
            return Ok(ReadStoreBackend::Embedded);
        }
        let parsed = ServiceUrl::new(url);
        let libpq_pairs = !url.contains("://") && url.contains('=');
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://") || libpq_pairs) {
            bail!("--read-store {parsed}: expected postgres://USER@HOST:PORT/DB or sqlite");
        }
        Ok(ReadStoreBackend::Postgres(parsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_print() {
        for (raw, shown) in [
            (
                "postgres://hb:s3cret@db:5432/chat",
                "postgres://hb:***@db:5432/chat",
            ),
            (
                "postgres://hb@db/chat?sslmode=require&password=s3cret",
                "postgres://hb@db/chat?sslmode=require&password=***",
            ),
            (
                "host=db user=hb password=s3cret dbname=chat",
                "host=db user=hb password=*** dbname=chat",
            ),
            (
                "nats://u:s3cret@a:4222,nats://u:s3cret@b:4222",
                "nats://u:***@a:4222,nats://u:***@b:4222",
            ),
            ("nats://s3cret@a:4222", "nats://***@a:4222"),
            ("nats://a:4222,b:4222", "nats://a:4222,b:4222"),
        ] {
            let url = ServiceUrl::new(raw);
            assert_eq!(url.to_string(), shown);
            assert!(!format!("{url:?}").contains("s3cret"));
            assert_eq!(url.expose(), raw);
        }
    }

    #[test]
    fn flags_choose_the_engines() {
        assert_eq!(
            EventLogBackend::parse(None, DEFAULT_STREAM, 1).unwrap(),
            EventLogBackend::Embedded
        );
        assert!(matches!(
            EventLogBackend::parse(Some("nats://127.0.0.1:4222"), "HB", 3).unwrap(),
            EventLogBackend::Nats { replicas: 3, .. }
        ));
        let refused = EventLogBackend::parse(Some("kafka://u:s3cret@x"), "HB", 1).unwrap_err();
        assert!(!refused.to_string().contains("s3cret"), "{refused}");
        assert!(EventLogBackend::parse(Some("nats://a:1"), "no.dots", 1).is_err());
        assert!(EventLogBackend::parse(Some("nats://a:1"), "HB", 0).is_err());
        assert_eq!(
            ReadStoreBackend::parse(Some("sqlite")).unwrap(),
            ReadStoreBackend::Embedded
        );
        assert!(matches!(
            ReadStoreBackend::parse(Some("postgres://postgres@127.0.0.1/test")).unwrap(),
            ReadStoreBackend::Postgres(_)
        ));
        assert!(ReadStoreBackend::parse(Some("mysql://x")).is_err());
        assert_eq!(
            BlobStoreBackend::parse(None).unwrap(),
            BlobStoreBackend::Local
        );
        assert!(matches!(
            BlobStoreBackend::parse(Some("nats")).unwrap(),
            BlobStoreBackend::Nats { .. }
        ));
        assert_eq!(
            BlobStoreBackend::parse(Some("s3://chat-files/prod")).unwrap(),
            BlobStoreBackend::S3(hayabusa_s3::S3Location {
                bucket: "chat-files".into(),
                prefix: "prod".into()
            })
        );
        let refused = BlobStoreBackend::parse(Some("s3://key:s3cret@bucket")).unwrap_err();
        assert!(
            refused.to_string().contains("AWS_ACCESS_KEY_ID")
                && !refused.to_string().contains("s3cret"),
            "{refused}"
        );
        assert!(BlobStoreBackend::parse(Some("s3://Bad_Bucket")).is_err());
        let refused = BlobStoreBackend::parse(Some("ftp://u:s3cret@x")).unwrap_err();
        assert!(!refused.to_string().contains("s3cret"), "{refused}");
    }
}
