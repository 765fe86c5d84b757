//! What a NATS server must offer, and how its addresses are given.
//!
//! Hayabusa needs NATS 2.10.23 or later (earlier 2.10 releases could lose a stream's
//! data on a crash) with JetStream enabled. Server addresses come as one string,
//! `nats://h1:4222,nats://h2:4222`; credentials in them (`nats://user:password@h1`)
//! are taken out before anything else sees the addresses, so that no log line —
//! ours or the client library's — ever holds a password.

use hayabusa_store::StoreError;
use percent_encoding::percent_decode_str;
use std::fmt;

/// The oldest NATS server accepted.
pub const MINIMUM_VERSION: Version = Version(2, 10, 23);
/// The first version whose Direct Get answers a batch of messages.
pub const BATCHED_DIRECT_GET: Version = Version(2, 11, 0);

/// A server version `major.minor.patch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u64, pub u64, pub u64);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl Version {
    /// Parses `2.10.23`, also with a leading `v` and a suffix (`2.11.0-RC.1`, which
    /// counts as 2.11.0). None if it is not a version.
    pub fn parse(raw: &str) -> Option<Version> {
        let raw = raw.trim();
        let raw = raw.strip_prefix('v').unwrap_or(raw);
        let core = raw.split(['-', '+', ' ']).next()?;
        let mut parts = core.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next().map_or(Some(0), |patch| patch.parse().ok())?;
        if parts.next().is_some() {
            return None;
        }
        Some(Version(major, minor, patch))
    }
}

/// Checks a server's reported version against [`MINIMUM_VERSION`].
pub fn check_version(reported: &str) -> Result<Version, StoreError> {
    match Version::parse(reported) {
        Some(version) if version >= MINIMUM_VERSION => Ok(version),
        Some(version) => Err(StoreError::Unavailable(format!(
            "NATS server {version} is too old: Hayabusa needs {MINIMUM_VERSION} or later \
             (earlier 2.10 releases could lose a stream on a crash); upgrade nats-server"
        ))),
        None => Err(StoreError::Unavailable(format!(
            "NATS server reports an unreadable version {reported:?}; Hayabusa needs \
             {MINIMUM_VERSION} or later"
        ))),
    }
}

/// Credentials found in server URLs.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `user:password@`.
    UserPassword(String, String),
    /// `token@` (a user without a password is a token, as in NATS URLs).
    Token(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::UserPassword(user, _) => write!(f, "UserPassword({user:?}, ***)"),
            Credentials::Token(_) => f.write_str("Token(***)"),
        }
    }
}

/// Server addresses without credentials, and the credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Servers {
    /// `scheme://host:port` (or `host:port`), for the client library and for logs.
    pub addresses: Vec<String>,
    /// The credentials all addresses carried (they must agree), if any.
    pub credentials: Option<Credentials>,
}

impl Servers {
    /// The addresses for logs and messages (they hold no credentials).
    pub fn display(&self) -> String {
        self.addresses.join(",")
    }
}

/// Splits `urls` (comma-separated) into addresses and credentials. Errors never
/// repeat a credential.
pub fn parse_servers(urls: &str) -> Result<Servers, StoreError> {
    let mut addresses = Vec::new();
    let mut credentials: Option<Credentials> = None;
    for url in urls.split(',').map(str::trim).filter(|url| !url.is_empty()) {
        let (scheme, rest) = match url.split_once("://") {
            Some((scheme, rest)) => (Some(scheme), rest),
            None => (None, url),
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((userinfo, host)) => (Some(userinfo), host),
            None => (None, authority),
        };
        let shown = match scheme {
            Some(scheme) => format!("{scheme}://{host}"),
            None => host.to_owned(),
        };
        if host.is_empty() || !path.trim_matches('/').is_empty() {
            return Err(StoreError::Unavailable(format!(
                "invalid NATS server address {shown:?} (expected nats://host:port)"
            )));
        }
        if let Some(userinfo) = userinfo {
            let decode = |raw: &str| percent_decode_str(raw).decode_utf8_lossy().into_owned();
            let found = match userinfo.split_once(':') {
                Some((user, password)) => Credentials::UserPassword(decode(user), decode(password)),
                None => Credentials::Token(decode(userinfo)),
            };
            match &credentials {
                Some(known) if *known != found => {
                    return Err(StoreError::Unavailable(format!(
                        "the NATS server addresses carry different credentials ({shown}); \
                         give the same to every address"
                    )));
                }
                _ => credentials = Some(found),
            }
        }
        addresses.push(shown);
    }
    if addresses.is_empty() {
        return Err(StoreError::Unavailable(
            "no NATS server address given (expected nats://host:port)".into(),
        ));
    }
    Ok(Servers {
        addresses,
        credentials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_before_2_10_23_are_refused() {
        assert!(check_version("2.10.22").is_err());
        assert!(check_version("2.9.25").is_err());
        assert!(check_version("1.99.99").is_err());
        assert!(check_version("2.10.23").is_ok());
        assert!(check_version("2.10.24").is_ok());
        assert!(check_version("2.11.0").is_ok());
        assert!(check_version("2.15.1").is_ok());
        assert!(check_version("v2.15.1").is_ok());
        assert!(check_version("3.0.0").is_ok());
        assert!(check_version("nonsense").is_err());
        assert!(check_version("").is_err());
        let Err(StoreError::Unavailable(message)) = check_version("2.10.22") else {
            panic!("2.10.22 must be refused as unavailable");
        };
        assert!(
            message.contains("2.10.22") && message.contains("2.10.23"),
            "the refusal names both versions: {message}"
        );
    }

    #[test]
    fn versions_parse_with_suffixes() {
        assert_eq!(Version::parse("2.11.0-RC.1"), Some(Version(2, 11, 0)));
        assert_eq!(Version::parse("2.10"), Some(Version(2, 10, 0)));
        assert_eq!(Version::parse("2.10.23.1"), None);
        assert!(Version(2, 10, 23) < Version(2, 11, 0));
        assert!(Version(2, 9, 99) < Version(2, 10, 0));
    }

    #[test]
    fn credentials_are_taken_out_of_the_addresses() {
        let servers = parse_servers("nats://alice:s3cr%40t@h1:4222, nats://alice:s3cr%40t@h2:4223")
            .expect("parse");
        assert_eq!(servers.addresses, vec!["nats://h1:4222", "nats://h2:4223"]);
        assert_eq!(
            servers.credentials,
            Some(Credentials::UserPassword("alice".into(), "s3cr@t".into()))
        );
        assert!(!servers.display().contains("s3cr"));
        assert!(
            !format!("{servers:?}").contains("s3cr"),
            "Debug hides the password"
        );

        let token = parse_servers("tls://tok3n@h1:4222").expect("parse");
        assert_eq!(token.credentials, Some(Credentials::Token("tok3n".into())));
        assert!(!format!("{token:?}").contains("tok3n"));

        let plain = parse_servers("nats://127.0.0.1:4222,localhost:4223").expect("parse");
        assert_eq!(
            plain.addresses,
            vec!["nats://127.0.0.1:4222", "localhost:4223"]
        );
        assert_eq!(plain.credentials, None);
    }

    #[test]
    fn bad_addresses_are_refused_without_repeating_secrets() {
        for urls in [
            "",
            " , ",
            "nats://alice:hunter2@",
            "nats://alice:hunter2@h1:4222/path",
            "nats://alice:hunter2@h1:4222,nats://bob:other@h2:4222",
        ] {
            match parse_servers(urls) {
                Err(StoreError::Unavailable(message)) => {
                    assert!(!message.contains("hunter2"), "{message}");
                    assert!(!message.contains("other"), "{message}");
                }
                other => panic!("{urls:?} must be refused, got {other:?}"),
            }
        }
    }
}
