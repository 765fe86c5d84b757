//! [`HttpTransport`]: how webhook deliveries leave the server
//! ([`hayabusa_app::webhooks::WebhookTransport`]).
//!
//! - `https` URLs (and `http` only when allowed), no user name or password in them.
//! - **No private destinations** unless allowed (`--webhook-allow-private-networks`):
//!   loopback, private (RFC 1918), shared (100.64/10), link-local (the cloud metadata
//!   address 169.254.169.254 among them), unique-local IPv6, unspecified, multicast
//!   and broadcast addresses are refused. The check runs at the setting's creation
//!   and again in the client's own resolver at every connection, so a name that
//!   resolves elsewhere later (DNS rebinding) is caught where it matters.
//! - No redirects are followed; each attempt has 10 s; at most 64 KiB of a
//!   response's body is read.

use async_trait::async_trait;
use hayabusa_app::webhooks::{Attempt, WebhookTransport};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Most bytes of a response body read (the rest is dropped with the connection).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// How long resolving a new webhook's host may take (the request that creates it
/// waits for it).
const CHECK_RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where deliveries may go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Private, loopback and link-local addresses too (for tests and closed
    /// networks).
    pub allow_private_networks: bool,
    /// Plain `http://` URLs too.
    pub allow_http: bool,
}

/// Whether `ip` is a public address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// A resolver that keeps only the addresses the policy allows.
#[derive(Debug)]
struct GuardedResolver {
    policy: Policy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|address| policy.allow_private_networks || is_public(address.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(format!("{host} resolves to no address a webhook may reach").into());
            }
            let addresses: Addrs = Box::new(allowed.into_iter());
            Ok(addresses)
        })
    }
}

/// Webhook deliveries over HTTP(S).
#[derive(Clone, Debug)]
pub struct HttpTransport {
    client: reqwest::Client,
    policy: Policy,
}

impl HttpTransport {
    /// A transport under `policy`.
    pub fn new(policy: Policy) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver { policy }))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(ATTEMPT_TIMEOUT)
            .connect_timeout(ATTEMPT_TIMEOUT)
            .no_proxy()
            .build()
            .map_err(|error| format!("the webhook HTTP client: {error}"))?;
        Ok(HttpTransport { client, policy })
    }
}

#[async_trait]
impl WebhookTransport for HttpTransport {
    async fn check(&self, url: &str) -> Result<(), String> {
        let parsed =
            reqwest::Url::parse(url).map_err(|_| "url must be an absolute URL".to_owned())?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.policy.allow_http => {}
            "http" => return Err("url must be https".into()),
            _ => return Err("url must be an https URL".into()),
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("url must not hold a user name or password".into());
        }
        let Some(host) = parsed.host_str() else {
            return Err("url must name a host".into());
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = parsed.port_or_known_default().unwrap_or(443);
        let found: Vec<SocketAddr> = tokio::time::timeout(
            CHECK_RESOLVE_TIMEOUT,
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        .map_err(|_| format!("{host} did not resolve in time"))?
        .map_err(|_| format!("{host} does not resolve"))?
        .collect();
        if found.is_empty() {
            return Err(format!("{host} does not resolve"));
        }
        if !self.policy.allow_private_networks
            && let Some(private) = found.iter().find(|address| !is_public(address.ip()))
        {
            return Err(format!(
                "url's host {host} resolves to {}, a private, loopback or link-local address",
                private.ip()
            ));
        }
        Ok(())
    }

    async fn post(&self, url: &str, headers: &[(String, String)], body: &[u8]) -> Attempt {
        // An address in the URL itself skips the resolver: check it here.
        if !self.policy.allow_private_networks
            && let Ok(parsed) = reqwest::Url::parse(url)
            && let Some(host) = parsed.host_str()
            && let Ok(ip) = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
            && !is_public(ip)
        {
            return Attempt::Failed {
                reason: format!("{ip} is a private, loopback or link-local address"),
                retry_after: None,
            };
        }
        let mut request = self.client.post(url).body(body.to_vec());
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                return Attempt::Failed {
                    reason: error.to_string(),
                    retry_after: None,
                };
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut read = 0;
        while read < MAX_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
        if status.is_success() {
            Attempt::Delivered
        } else if status == reqwest::StatusCode::GONE {
            Attempt::Gone
        } else {
            Attempt::Failed {
                reason: format!("the receiver answered {status}"),
                retry_after,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_link_local_addresses_are_not_public() {
        for private in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "224.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn urls_to_private_places_are_refused_without_the_flag() {
        let strict = HttpTransport::new(Policy::default()).unwrap();
        for url in [
            "https://127.0.0.1/hook",
            "https://10.0.0.1/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://localhost/hook",
            "https://[::1]/hook",
        ] {
            let refused = strict.check(url).await.unwrap_err();
            assert!(refused.contains("private"), "{url}: {refused}");
        }
        assert!(strict.check("http://127.0.0.1/hook").await.is_err());
        assert!(strict.check("ftp://example.com/x").await.is_err());
        assert!(strict.check("https://user:pw@127.0.0.1/x").await.is_err());
        let open = HttpTransport::new(Policy {
            allow_private_networks: true,
            allow_http: true,
        })
        .unwrap();
        assert!(open.check("http://127.0.0.1:9/hook").await.is_ok());
        assert!(open.check("https://localhost/hook").await.is_ok());
    }

    #[tokio::test]
    async fn deliveries_to_private_addresses_fail_at_connection_without_the_flag() {
        // A receiver on loopback: refused by the resolver, whatever the check said.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let strict = HttpTransport::new(Policy {
            allow_private_networks: false,
            allow_http: true,
        })
        .unwrap();
        for url in [
            format!("http://localhost:{port}/hook"),
            format!("http://127.0.0.1:{port}/hook"),
        ] {
            let attempt = strict.post(&url, &[], b"{}").await;
            assert!(
                matches!(&attempt, Attempt::Failed { reason, .. } if !reason.is_empty()),
                "{url}: {attempt:?}"
            );
        }
    }
}
