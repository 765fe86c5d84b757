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
//! - `nats://host:port[,host:port…]/SUBJECT` destinations (forwarders only: a
//!   webhook's URL is checked to be http(s) by its route) publish to a JetStream
//!   stream that captures SUBJECT, with `Nats-Msg-Id` set to the delivery's
//!   `webhook-id` (so JetStream drops a redelivery within its duplicate window), and
//!   count as delivered once JetStream acknowledges. Their hosts follow the same
//!   address policy.
//! - `kafka://host:port[,host:port…]/TOPIC` destinations (forwarders only) produce to
//!   the topic (which must exist), keyed by the envelope's `stream` (a room's events
//!   share a partition, so per-room order holds), with the delivery's headers as
//!   record headers; delivered once the broker acknowledges the produce.

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

/// Deliveries over HTTP(S), and to NATS JetStream subjects.
#[derive(Clone, Debug)]
pub struct HttpTransport {
    client: reqwest::Client,
    policy: Policy,
    /// NATS connections by server list.
    nats: Arc<tokio::sync::Mutex<std::collections::HashMap<String, async_nats::Client>>>,
    /// Kafka clients by broker list.
    kafka: Arc<tokio::sync::Mutex<std::collections::HashMap<String, Arc<rskafka::client::Client>>>>,
}

/// A `kafka://brokers/TOPIC` destination: (brokers as `host:port`, topic).
fn kafka_destination(url: &str) -> Option<(Vec<String>, String)> {
    let rest = url.strip_prefix("kafka://")?;
    let (brokers, topic) = rest.split_once('/')?;
    let valid_topic = !topic.is_empty()
        && topic.len() <= 249
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    let brokers: Vec<String> = brokers
        .split(',')
        .filter(|broker| !broker.is_empty())
        .map(str::to_owned)
        .collect();
    (valid_topic && !brokers.is_empty()).then(|| (brokers, topic.to_owned()))
}

/// FNV-1a: a stable hash of a record key (the partition of a stream's events).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A `nats://servers/SUBJECT` destination: (`nats://` server list, subject).
fn nats_destination(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("nats://")?;
    let (servers, subject) = rest.split_once('/')?;
    let valid_subject = !subject.is_empty()
        && subject.len() <= 255
        && subject.split('.').all(|token| {
            !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'*' && b != b'>')
        });
    if servers.is_empty() || !valid_subject {
        return None;
    }
    let servers = servers
        .split(',')
        .map(|server| format!("nats://{server}"))
        .collect::<Vec<_>>()
        .join(",");
    Some((servers, subject.to_owned()))
}

/// The (host, port) pairs of a `nats://` server list.
fn nats_hosts(servers: &str) -> Vec<(String, u16)> {
    servers
        .split(',')
        .filter_map(|server| {
            let url = reqwest::Url::parse(server).ok()?;
            let host = url
                .host_str()?
                .trim_start_matches('[')
                .trim_end_matches(']');
            Some((host.to_owned(), url.port().unwrap_or(4222)))
        })
        .collect()
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
        Ok(HttpTransport {
            client,
            policy,
            nats: Arc::default(),
            kafka: Arc::default(),
        })
    }
}

impl HttpTransport {
    /// Whether `host` resolves, to addresses the policy allows.
    async fn check_host(&self, host: &str, port: u16) -> Result<(), String> {
        let found: Vec<SocketAddr> =
            tokio::time::timeout(CHECK_RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
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
                "the host {host} resolves to {}, a private, loopback or link-local address",
                private.ip()
            ));
        }
        Ok(())
    }

    /// Produces to a Kafka topic, keyed by the envelope's stream, and waits for the
    /// broker's acknowledgement.
    async fn produce(&self, url: &str, headers: &[(String, String)], body: &[u8]) -> Attempt {
        use rskafka::client::partition::{Compression, UnknownTopicHandling};
        let failed = |reason: String| Attempt::Failed {
            reason,
            retry_after: None,
        };
        let Some((brokers, topic)) = kafka_destination(url) else {
            return failed(format!("{url} is not a Kafka destination"));
        };
        if let Err(reason) = self.check(url).await {
            return failed(reason);
        }
        let key = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|envelope| envelope["stream"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let attempt = async {
            let client = {
                let mut clients = self.kafka.lock().await;
                let name = brokers.join(",");
                match clients.get(&name) {
                    Some(client) => Arc::clone(client),
                    None => {
                        let client = Arc::new(
                            rskafka::client::ClientBuilder::new(brokers.clone())
                                .build()
                                .await
                                .map_err(|error| format!("connecting to {name}: {error}"))?,
                        );
                        clients.insert(name, Arc::clone(&client));
                        client
                    }
                }
            };
            let topics = client
                .list_topics()
                .await
                .map_err(|error| format!("listing topics: {error}"))?;
            let partitions = topics
                .iter()
                .find(|found| found.name == topic)
                .map(|found| found.partitions.len())
                .filter(|count| *count > 0)
                .ok_or_else(|| format!("no topic {topic}"))?;
            let partition = i32::try_from(fnv1a(key.as_bytes()) % partitions as u64).unwrap_or(0);
            let partition_client = client
                .partition_client(topic.as_str(), partition, UnknownTopicHandling::Error)
                .await
                .map_err(|error| format!("partition {partition} of {topic}: {error}"))?;
            let record = rskafka::record::Record {
                key: Some(key.clone().into_bytes()),
                value: Some(body.to_vec()),
                headers: headers
                    .iter()
                    .map(|(name, value)| (name.clone(), value.clone().into_bytes()))
                    .collect(),
                timestamp: rskafka::chrono::DateTime::from_timestamp_millis(
                    i64::try_from(
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap_or_default()
                            .as_millis(),
                    )
                    .unwrap_or(0),
                )
                .unwrap_or_default(),
            };
            partition_client
                .produce(vec![record], Compression::NoCompression)
                .await
                .map_err(|error| format!("producing to {topic}: {error}"))
        };
        match tokio::time::timeout(ATTEMPT_TIMEOUT, attempt).await {
            Ok(Ok(_)) => Attempt::Delivered,
            Ok(Err(reason)) => failed(reason),
            Err(_) => failed(format!("producing to {topic}: no acknowledgement in time")),
        }
    }

    /// Publishes to a JetStream subject and waits for the acknowledgement.
    async fn publish(&self, url: &str, headers: &[(String, String)], body: &[u8]) -> Attempt {
        let failed = |reason: String| Attempt::Failed {
            reason,
            retry_after: None,
        };
        let Some((servers, subject)) = nats_destination(url) else {
            return failed(format!("{url} is not a NATS destination"));
        };
        if let Err(reason) = self.check(url).await {
            return failed(reason);
        }
        let client = {
            let mut clients = self.nats.lock().await;
            match clients.get(&servers) {
                Some(client) => client.clone(),
                None => {
                    let connected = async_nats::ConnectOptions::new()
                        .connection_timeout(ATTEMPT_TIMEOUT)
                        .connect(servers.as_str())
                        .await;
                    match connected {
                        Ok(client) => {
                            clients.insert(servers.clone(), client.clone());
                            client
                        }
                        Err(error) => return failed(format!("connecting to {servers}: {error}")),
                    }
                }
            }
        };
        let mut nats_headers = async_nats::HeaderMap::new();
        for (name, value) in headers {
            if name == "webhook-id" {
                nats_headers.insert("Nats-Msg-Id", value.as_str());
            }
            nats_headers.insert(name.as_str(), value.as_str());
        }
        let jetstream = async_nats::jetstream::new(client);
        let payload = bytes::Bytes::copy_from_slice(body);
        let published = tokio::time::timeout(ATTEMPT_TIMEOUT, async {
            jetstream
                .publish_with_headers(subject.clone(), nats_headers, payload)
                .await
                .map_err(|error| error.to_string())?
                .await
                .map_err(|error| error.to_string())
        })
        .await;
        match published {
            Ok(Ok(_)) => Attempt::Delivered,
            Ok(Err(reason)) => failed(format!("publishing to {subject}: {reason}")),
            Err(_) => failed(format!(
                "publishing to {subject}: no acknowledgement in time"
            )),
        }
    }
}

#[async_trait]
impl WebhookTransport for HttpTransport {
    async fn check(&self, url: &str) -> Result<(), String> {
        if url.starts_with("kafka://") {
            let (brokers, _) = kafka_destination(url).ok_or_else(|| {
                "a Kafka destination is kafka://host:port[,host:port]/TOPIC".to_owned()
            })?;
            for broker in brokers {
                let (host, port) = broker
                    .rsplit_once(':')
                    .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
                    .ok_or_else(|| format!("{broker} is not host:port"))?;
                self.check_host(host.trim_start_matches('[').trim_end_matches(']'), port)
                    .await?;
            }
            return Ok(());
        }
        if url.starts_with("nats://") {
            let (servers, _) = nats_destination(url).ok_or_else(|| {
                "a NATS destination is nats://host:port[,host:port]/SUBJECT (no wildcards)"
                    .to_owned()
            })?;
            for (host, port) in nats_hosts(&servers) {
                self.check_host(&host, port).await?;
            }
            return Ok(());
        }
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
        self.check_host(&host, port).await
    }

    async fn post(&self, url: &str, headers: &[(String, String)], body: &[u8]) -> Attempt {
        if url.starts_with("nats://") {
            return self.publish(url, headers, body).await;
        }
        if url.starts_with("kafka://") {
            return self.produce(url, headers, body).await;
        }
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
        let refused = strict
            .check("nats://127.0.0.1:4222/events")
            .await
            .unwrap_err();
        assert!(refused.contains("private"), "{refused}");
        assert!(
            strict
                .check("kafka://127.0.0.1:9092/events")
                .await
                .unwrap_err()
                .contains("private")
        );
        assert_eq!(
            kafka_destination("kafka://a:1,b:2/hayabusa.events"),
            Some((vec!["a:1".into(), "b:2".into()], "hayabusa.events".into()))
        );
        assert_eq!(fnv1a(b"room-1"), fnv1a(b"room-1"));
        for bad in [
            "kafka://127.0.0.1:9092/",
            "kafka://127.0.0.1:9092/a b",
            "kafka:///events",
            "nats://127.0.0.1:4222/",
            "nats://127.0.0.1:4222/a.*",
            "nats:///x",
        ] {
            assert!(strict.check(bad).await.is_err(), "{bad}");
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
