//! [`NatsEventLog`]: the event log port on one NATS JetStream stream.
//!
//! - **Layout.** One JetStream stream (default `HAYABUSA`, file storage, replicas
//!   configurable) holds every event stream on a subject of its own
//!   ([`crate::subject`]). One append is one message holding all its events
//!   ([`crate::envelope`]), so appends are atomic on every server version.
//! - **Positions and revisions** are `sequence << 16 | index` ([`crate::position`]);
//!   a stream's revision is its last event's position. They increase; they are not
//!   dense.
//! - **Optimistic concurrency** is `Nats-Expected-Last-Subject-Sequence`: the server
//!   checks the subject's last sequence, which is the stream's revision shifted.
//! - **Idempotency**: the key's SHA-256 is the message's `Nats-Msg-Id`, and the
//!   stream's duplicate window is the idempotency expiry (24 hours by default), so
//!   the server refuses a second message with the key for that long (also after a
//!   restart: it rebuilds the window from the stored messages) and answers with the
//!   first one's sequence; the adapter reads that message back, compares the key and
//!   fingerprint stored in it, and returns its events. Because newer standalone
//!   servers check expectations before duplicates, a refused keyed append first
//!   *probes* the key (a publish that can never be stored, refused by an
//!   expectation the server checks after duplicates: the last message id on a
//!   standalone server, a subject sequence on a clustered one, where the last
//!   message id is checked only by the replicas and a mismatch stops the stream)
//!   before reporting a conflict. An append without events but with a key is
//!   recorded as a small message on `{prefix}.key`.
//! - **Durability**: `append` returns after JetStream's acknowledgement, which comes
//!   after the message is written (and, with `sync_interval: always`, fsync'd; with
//!   replicas, stored by a majority). While the connection is down appends fail with
//!   [`StoreError::Unavailable`] at once; a timed-out acknowledgement is also
//!   `Unavailable`, with an unknown outcome (retry with the same idempotency key).
//! - **Head**: a cached, monotonic lower bound of the durable head, advanced by this
//!   process's acknowledgements before `append` returns and by a background task
//!   that reads the stream's last event message whenever another process announces
//!   an append (core NATS wake-up on `{prefix}.head`, without data) and at least once
//!   per poll interval.

use crate::api::{
    self, Api, EXPECTED_LAST_MSG_ID, EXPECTED_LAST_SUBJECT_SEQUENCE, MESSAGE_TOO_LARGE, MSG_ID,
    Published, STREAM_NAME_IN_USE, WRONG_LAST_MSG_ID,
};
use crate::envelope::{Body, Envelope};
use crate::position::{self, MAX_EVENTS_PER_APPEND, MAX_SEQUENCE};
use crate::server::{self, BATCHED_DIRECT_GET, Credentials, Servers};
use crate::subject;
use async_nats::connection::State;
use async_nats::{Client, ConnectOptions, Event, HeaderMap};
use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use hayabusa_store::{
    AppendRequest, Appended, EventAppender, EventReader, ExpectedVersion, IdempotencyKey, Position,
    RecordedEvent, StoreError,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The default JetStream stream name.
pub const DEFAULT_STREAM: &str = "HAYABUSA";
/// The default subject prefix.
pub const DEFAULT_SUBJECT_PREFIX: &str = "hb";
/// The default idempotency expiry: keys are kept this long (the port's default).
pub use hayabusa_store::DEFAULT_IDEMPOTENCY_EXPIRY;

/// The default number of messages per read request.
pub const DEFAULT_READ_BATCH: usize = 256;
/// The most a read request may ask for (messages).
const MAX_READ_BATCH: usize = 4096;
/// The most bytes one read request asks for (the server's own limit is 64 MiB).
const MAX_READ_BYTES: usize = 4 << 20;

/// A `Nats-Expected-Last-Msg-Id` that never matches: our message ids all start with
/// `hb1-`.
const NEVER_A_MESSAGE_ID: &str = "hayabusa-key-probe";
/// The subject sequence a clustered server's key probe expects: no subject reaches it.
const NEVER_A_SEQUENCE: &str = "9223372036854775807";

/// How the adapter uses NATS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsOptions {
    /// The JetStream stream (created if missing).
    pub stream: String,
    /// The first subject tokens of every message (`{prefix}.ev.…`, `{prefix}.key`);
    /// two logs sharing a server need different prefixes.
    pub subject_prefix: String,
    /// Replicas of a new stream: 1 for a single server, 3 in a cluster.
    pub replicas: usize,
    /// How long idempotency keys are kept (the stream's duplicate window).
    pub idempotency_expiry: Duration,
    /// How long to wait for a JetStream answer (and for the first connection).
    pub request_timeout: Duration,
    /// How often the head is read from the stream without an announcement.
    pub head_poll_interval: Duration,
    /// Messages asked for per read request (a Direct Get batch, NATS 2.11 and
    /// later); 1 reads one message per request through the stream leader, as
    /// servers before 2.11 need.
    pub read_batch: usize,
}

impl Default for NatsOptions {
    fn default() -> Self {
        NatsOptions {
            stream: DEFAULT_STREAM.to_owned(),
            subject_prefix: DEFAULT_SUBJECT_PREFIX.to_owned(),
            replicas: 1,
            idempotency_expiry: DEFAULT_IDEMPOTENCY_EXPIRY,
            request_timeout: Duration::from_secs(5),
            head_poll_interval: Duration::from_secs(1),
            read_batch: DEFAULT_READ_BATCH,
        }
    }
}

impl NatsOptions {
    fn check(&self) -> Result<(), StoreError> {
        let invalid = |detail: String| Err(StoreError::Unavailable(detail));
        if self.stream.is_empty()
            || !self
                .stream
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        {
            return invalid(format!(
                "invalid JetStream stream name {:?} (letters, digits, - and _ only)",
                self.stream
            ));
        }
        if !subject::valid_prefix(&self.subject_prefix) {
            return invalid(format!(
                "invalid subject prefix {:?} (dot-separated letters, digits, - and _)",
                self.subject_prefix
            ));
        }
        if !(1..=5).contains(&self.replicas) {
            return invalid(format!(
                "event log replicas must be 1 to 5, not {}",
                self.replicas
            ));
        }
        if self.idempotency_expiry < Duration::from_secs(1) {
            return invalid("the idempotency expiry must be at least a second".into());
        }
        if !(1..=MAX_READ_BATCH).contains(&self.read_batch) {
            return invalid(format!(
                "the read batch must be 1 to {MAX_READ_BATCH} messages, not {}",
                self.read_batch
            ));
        }
        Ok(())
    }
}

impl NatsEventLog {
    /// The JetStream object store bucket `bucket` (created with `replicas` copies if
    /// missing) as a blob store, over the same connection.
    pub async fn blob_store(
        &self,
        bucket: &str,
        replicas: usize,
    ) -> Result<crate::blobs::NatsBlobStore, StoreError> {
        crate::blobs::NatsBlobStore::open(self.inner.client.clone(), bucket, replicas).await
    }

    /// The commit feed of this log's processes, on core NATS over the same
    /// connection (subject `{prefix}.committed`).
    pub fn commit_feed(&self) -> crate::feed::NatsCommitFeed {
        crate::feed::NatsCommitFeed::new(
            self.inner.client.clone(),
            subject::commit_notices(&self.inner.prefix),
        )
    }
}

/// The event log on NATS JetStream.
pub struct NatsEventLog {
    inner: Arc<Inner>,
    follower: JoinHandle<()>,
}

impl std::fmt::Debug for NatsEventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsEventLog")
            .field("servers", &self.inner.servers)
            .field("stream", &self.inner.api.stream())
            .field("head", &*self.inner.head.borrow())
            .finish()
    }
}

struct Inner {
    client: Client,
    api: Api,
    prefix: String,
    /// The server addresses, without credentials (for messages).
    servers: String,
    head: watch::Sender<Position>,
    /// Messages per read request; 1: one `STREAM.MSG.GET` per message.
    read_batch: usize,
    /// The stream has replicas, so a Direct Get may come from one behind the leader.
    replicated: bool,
    /// The server runs JetStream clustered (it checks headers in another order; see
    /// [`Inner::probe`]).
    clustered: bool,
    /// How long an append may wait for JetStream's acknowledgement, all attempts
    /// together.
    append_timeout: Duration,
}

/// Connects to NATS (`urls`: `nats://host:port`, comma-separated; credentials in
/// them are used and never logged), checks the server (2.10.23 or later, JetStream
/// enabled), creates or checks the stream, and starts following the head. Fails with
/// [`StoreError::Unavailable`] and a message saying what is wrong.
pub async fn connect(urls: &str, options: NatsOptions) -> Result<NatsEventLog, StoreError> {
    options.check()?;
    let servers = server::parse_servers(urls)?;
    let shown = servers.display();
    let client = open_connection(&servers, &options).await?;
    let info = client.server_info();
    let clustered = info.cluster.is_some();
    let version = server::check_version(&info.version).map_err(|error| match error {
        StoreError::Unavailable(detail) => StoreError::Unavailable(format!("{shown}: {detail}")),
        other => other,
    })?;
    let no_jetstream = || {
        StoreError::Unavailable(format!(
            "NATS server {name} at {shown} (version {version}) has no JetStream: start \
             nats-server with -js, or with a `jetstream {{ store_dir: … }}` block in its \
             configuration (and `sync_interval: always`)",
            name = info.server_name
        ))
    };
    if !info.jetstream {
        return Err(no_jetstream());
    }
    let api = Api::new(
        client.clone(),
        options.stream.clone(),
        options.request_timeout,
    );
    // An account that JetStream cannot answer for yet (no meta leader) is an error
    // to wait out, not a refusal.
    let account_info = || async {
        match api.account_info().await? {
            Err(error) if is_transient(&error.to_string()) => {
                Err(StoreError::Unavailable(error.to_string()))
            }
            answer => Ok(answer),
        }
    };
    match while_recovering(account_info).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            return Err(StoreError::Unavailable(format!(
                "JetStream at {shown} refused this account: {error}"
            )));
        }
        Err(StoreError::Unavailable(detail)) if detail.contains("no responders") => {
            return Err(no_jetstream());
        }
        Err(error) => return Err(error),
    }
    let replicas = while_recovering(|| ensure_stream(&api, &options, &shown)).await?;
    // Servers before 2.11 answer a Direct Get with one message; reading through the
    // leader one message at a time is as fast there and needs no special case.
    let read_batch = if version >= BATCHED_DIRECT_GET {
        options.read_batch
    } else {
        1
    };
    let inner = Arc::new(Inner {
        client,
        api,
        prefix: options.subject_prefix.clone(),
        servers: shown.clone(),
        head: watch::channel(0).0,
        read_batch,
        replicated: replicas > 1,
        clustered,
        append_timeout: options.request_timeout,
    });
    while_recovering(|| inner.refresh_head()).await?;
    let follower = tokio::spawn(follow_head(Arc::clone(&inner), options.head_poll_interval));
    tracing::info!(
        servers = %shown,
        version = %version,
        stream = %options.stream,
        replicas,
        read_batch,
        head = *inner.head.borrow(),
        "event log on NATS JetStream"
    );
    Ok(NatsEventLog { inner, follower })
}

/// How long an append whose expectation a clustered server cannot check yet (another
/// append to the subject in flight) is asked again.
const PENDING_APPEND_WAIT: Duration = Duration::from_secs(2);

/// How long one attempt of an append waits for its acknowledgement before it is sent
/// again, where sending again is safe (see [`Inner::publish_retrying`]). An append
/// caught by the loss of the stream's leader is then taken by the new leader soon
/// after its election, rather than after the whole request timeout.
const APPEND_ATTEMPT: Duration = Duration::from_millis(1500);

/// How long `connect` waits out a JetStream cluster that is electing leaders or
/// catching a restarted server up ("JetStream system temporarily unavailable").
const RECOVERY_WAIT: Duration = Duration::from_secs(30);

/// Runs `attempt` again while JetStream answers that it is temporarily unavailable,
/// for up to [`RECOVERY_WAIT`]; any other outcome is returned at once.
async fn while_recovering<T, F, Fut>(mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let started = tokio::time::Instant::now();
    loop {
        match attempt().await {
            Err(StoreError::Unavailable(detail))
                if is_transient(&detail) && started.elapsed() < RECOVERY_WAIT =>
            {
                tracing::info!(%detail, "JetStream is recovering; trying again");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            outcome => return outcome,
        }
    }
}

/// Whether an error is JetStream recovering (no meta or stream leader yet).
fn is_transient(detail: &str) -> bool {
    detail.contains("temporarily unavailable")
        || detail.contains("10008")
        || detail.contains("timed out")
}

async fn open_connection(servers: &Servers, options: &NatsOptions) -> Result<Client, StoreError> {
    let shown = servers.display();
    let events_shown = shown.clone();
    let mut connect = ConnectOptions::new()
        .name("hayabusa-event-log")
        .connection_timeout(options.request_timeout)
        .request_timeout(Some(options.request_timeout))
        .max_reconnects(None)
        // Its own head announcements need no read of the head: it advanced already.
        .no_echo()
        .event_callback(move |event| {
            let shown = events_shown.clone();
            async move {
                match event {
                    Event::Connected => tracing::info!(servers = %shown, "NATS connected"),
                    Event::Disconnected => {
                        tracing::warn!(servers = %shown, "NATS disconnected, reconnecting")
                    }
                    other => tracing::warn!(servers = %shown, event = %other, "NATS event"),
                }
            }
        });
    match &servers.credentials {
        Some(Credentials::UserPassword(user, password)) => {
            connect = connect.user_and_password(user.clone(), password.clone());
        }
        Some(Credentials::Token(token)) => connect = connect.token(token.clone()),
        None => {}
    }
    connect
        .connect(servers.addresses.clone())
        .await
        .map_err(|error| {
            StoreError::Unavailable(format!(
                "cannot connect to NATS at {shown}: {error} (is nats-server running there?)"
            ))
        })
}

/// Creates the stream, or checks an existing one (and brings its duplicate window to
/// the idempotency expiry and turns on Direct Get, which batched reads use). Returns
/// the stream's replica count.
async fn ensure_stream(api: &Api, options: &NatsOptions, shown: &str) -> Result<u64, StoreError> {
    let subjects = vec![
        subject::all_events(&options.subject_prefix),
        subject::keys(&options.subject_prefix),
    ];
    let window = i64::try_from(options.idempotency_expiry.as_nanos()).unwrap_or(i64::MAX);
    for _ in 0..3 {
        match api.stream_config().await? {
            None => {
                let config = json!({
                    "name": options.stream,
                    "subjects": subjects,
                    "retention": "limits",
                    "storage": "file",
                    "num_replicas": options.replicas,
                    "discard": "old",
                    "max_msgs": -1,
                    "max_bytes": -1,
                    "max_age": 0,
                    "max_msgs_per_subject": -1,
                    "max_msg_size": -1,
                    "duplicate_window": window,
                    "deny_delete": true,
                    "deny_purge": true,
                    "allow_rollup_hdrs": false,
                    "allow_direct": true,
                });
                match api.put_stream(&config, false).await? {
                    Ok(()) => {
                        tracing::info!(stream = %options.stream, replicas = options.replicas, "created the JetStream stream");
                        return Ok(options.replicas as u64);
                    }
                    // Another process created it meanwhile: check it.
                    Err(error) if error.err_code == STREAM_NAME_IN_USE => continue,
                    Err(error) => {
                        return Err(StoreError::Unavailable(format!(
                            "cannot create JetStream stream {} at {shown}: {error}",
                            options.stream
                        )));
                    }
                }
            }
            Some(mut config) => {
                let has = |wanted: &String| {
                    config["subjects"]
                        .as_array()
                        .is_some_and(|list| list.iter().any(|s| s.as_str() == Some(wanted)))
                };
                if !subjects.iter().all(has) {
                    return Err(StoreError::Unavailable(format!(
                        "JetStream stream {} at {shown} exists with subjects {} instead of {}",
                        options.stream,
                        config["subjects"],
                        json!(subjects)
                    )));
                }
                if config["storage"] != json!("file") {
                    tracing::warn!(stream = %options.stream, "the event log stream is not on file storage");
                }
                let replicas = config["num_replicas"].as_u64().unwrap_or(1);
                if replicas != options.replicas as u64 {
                    tracing::warn!(
                        stream = %options.stream,
                        configured = options.replicas,
                        actual = replicas,
                        "the event log stream has another replica count; it is left as it is"
                    );
                }
                if config["duplicate_window"].as_i64() != Some(window)
                    || config["allow_direct"] != json!(true)
                {
                    config["duplicate_window"] = json!(window);
                    config["allow_direct"] = json!(true);
                    if let Err(error) = api.put_stream(&config, true).await? {
                        return Err(StoreError::Unavailable(format!(
                            "cannot set the duplicate window and direct access of JetStream \
                             stream {}: {error}",
                            options.stream
                        )));
                    }
                }
                return Ok(replicas);
            }
        }
    }
    Err(StoreError::Unavailable(format!(
        "JetStream stream {} at {shown} keeps changing while being created",
        options.stream
    )))
}

/// Reads the head from the stream whenever another process announces an append, and
/// at least every `interval`; runs until aborted.
async fn follow_head(inner: Arc<Inner>, interval: Duration) {
    let announcements = subject::head_announcements(&inner.prefix);
    let mut subscription = inner.client.subscribe(announcements).await.ok();
    let mut failing = false;
    loop {
        let woken = match subscription.as_mut() {
            Some(wakeups) => tokio::select! {
                wakeup = wakeups.next() => Some(wakeup.is_some()),
                _ = tokio::time::sleep(interval) => None,
            },
            None => {
                tokio::time::sleep(interval).await;
                None
            }
        };
        match (woken, subscription.as_mut()) {
            // The subscription ended (the client closed): poll only.
            (Some(false), _) => subscription = None,
            // Announcements that arrived meanwhile need no read of their own.
            (Some(true), Some(wakeups)) => {
                while let Some(Some(_)) = wakeups.next().now_or_never() {}
            }
            _ => {}
        }
        match inner.refresh_head().await {
            Ok(()) => {
                if failing {
                    tracing::info!(servers = %inner.servers, "event log head readable again");
                }
                failing = false;
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(servers = %inner.servers, %error, "cannot read the event log head");
                }
                failing = true;
            }
        }
    }
}

impl Drop for NatsEventLog {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

/// The current wall-clock time in Unix milliseconds (0 if the clock is before 1970).
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The `Nats-Msg-Id` of an idempotency key (hashed: fixed length, header-safe).
fn message_id(key: &str) -> String {
    format!("hb1-{}", hex::encode(Sha256::digest(key.as_bytes())))
}

/// The `Nats-Expected-Last-Subject-Sequence` for an expectation (None: no check).
fn expected_subject_sequence(expected: ExpectedVersion) -> Option<u64> {
    match expected {
        ExpectedVersion::Any => None,
        ExpectedVersion::NoStream => Some(0),
        ExpectedVersion::Exactly(revision) if position::ends_an_append(revision) => {
            Some(position::sequence_of(revision))
        }
        // The revision of an event inside an append is never a stream's revision:
        // expect a sequence no stream reaches, so that the server reports the actual one.
        ExpectedVersion::Exactly(_) => Some(i64::MAX as u64),
    }
}

/// The events of `envelope` (none for a key record), stored as message `sequence`.
fn recorded(envelope: &Envelope, sequence: u64) -> Vec<RecordedEvent> {
    let Body::Events(events) = &envelope.body else {
        return Vec::new();
    };
    let count = events.len();
    events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            let at = position::position(sequence, index, count);
            RecordedEvent {
                position: at,
                stream: envelope.stream.clone(),
                stream_version: at,
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                data: event.data.clone(),
                recorded_at_ms: envelope.recorded_at_ms,
            }
        })
        .collect()
}

impl Inner {
    /// Moves the cached head forward (never back).
    fn advance(&self, position: Position) {
        self.head.send_if_modified(|head| {
            if position > *head {
                *head = position;
                true
            } else {
                false
            }
        });
    }

    /// Reads the position of the stream's last event and advances the head to it.
    async fn refresh_head(&self) -> Result<(), StoreError> {
        let last = self.api.last_on(&subject::all_events(&self.prefix)).await?;
        if let Some(message) = last {
            self.advance(position::last_of(message.sequence));
        }
        Ok(())
    }

    /// Tells other processes that the head moved (a wake-up; best effort).
    async fn announce(&self) {
        let announcements = subject::head_announcements(&self.prefix);
        if let Err(error) = self.client.publish(announcements, Default::default()).await {
            tracing::debug!(%error, "cannot announce the event log head");
        }
    }

    fn ensure_connected(&self) -> Result<(), StoreError> {
        match self.client.connection_state() {
            State::Connected => Ok(()),
            state => Err(StoreError::Unavailable(format!(
                "not connected to NATS at {} ({state:?})",
                self.servers
            ))),
        }
    }

    /// The revision of `stream` (0: no events), read from the server.
    async fn stream_revision(&self, subject: &str) -> Result<u64, StoreError> {
        Ok(self
            .api
            .last_on(subject)
            .await?
            .map_or(0, |message| position::last_of(message.sequence)))
    }

    /// Publishes, asking again while a clustered server answers that an earlier
    /// append (to the subject, or with the message id) is still being replicated
    /// (for up to [`PENDING_APPEND_WAIT`]): that one lands in a moment, and then the
    /// answer is a real one (stored, duplicate, or a conflict with its revision).
    async fn publish_settled(
        &self,
        subject: String,
        headers: HeaderMap,
        payload: Vec<u8>,
    ) -> Result<Published, StoreError> {
        let asked = tokio::time::Instant::now();
        loop {
            let published = self
                .api
                .publish(subject.clone(), headers.clone(), payload.clone())
                .await?;
            match &published {
                Published::Refused(error)
                    if api::is_pending(error) && asked.elapsed() < PENDING_APPEND_WAIT =>
                {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                _ => return Ok(published),
            }
        }
    }

    /// [`publish_settled`](Inner::publish_settled) within [`Inner::append_timeout`]:
    /// when `retry_safe`, an attempt that gets no answer within [`APPEND_ATTEMPT`]
    /// (or fails to be sent) is sent again until the timeout. Safe means a second
    /// copy cannot be stored: the append carries a message id (JetStream drops the
    /// duplicate) or expects the subject's last sequence (the copy is refused once
    /// the first is stored). Returns the answer and whether an earlier attempt's
    /// outcome is unknown (it may be the one stored).
    async fn publish_retrying(
        &self,
        subject: &str,
        headers: &HeaderMap,
        payload: &[u8],
        retry_safe: bool,
    ) -> Result<(Published, bool), StoreError> {
        let deadline = tokio::time::Instant::now() + self.append_timeout;
        let mut uncertain = false;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let attempt = if retry_safe {
                left.min(APPEND_ATTEMPT)
            } else {
                left
            };
            let sent = tokio::time::timeout(
                attempt,
                self.publish_settled(subject.to_owned(), headers.clone(), payload.to_vec()),
            )
            .await;
            let error = match sent {
                Ok(Ok(published)) => return Ok((published, uncertain)),
                Ok(Err(error)) => error,
                Err(_) => StoreError::Unavailable(
                    "append: timed out waiting for JetStream (the outcome is unknown)".into(),
                ),
            };
            let retryable = matches!(error, StoreError::Unavailable(_));
            if !retry_safe || !retryable || tokio::time::Instant::now() >= deadline {
                return Err(error);
            }
            tracing::debug!(%error, subject, "sending an append again");
            uncertain = true;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether `key` is recorded (within the expiry): the sequence of its message.
    /// The probe is a publish that is never stored, refused by an expectation the
    /// server checks only after duplicates:
    /// - a standalone server checks `Nats-Expected-Last-Msg-Id` after duplicates (and
    ///   subject sequences before them): the probe expects a message id that never is;
    /// - a clustered server checks duplicates first, then subject sequences, at the
    ///   stream leader before proposing; `Nats-Expected-Last-Msg-Id` only when the
    ///   replicas apply the message, where a mismatch is a critical write error that
    ///   stops the stream (found by the cluster test). The probe expects a subject
    ///   sequence that never is.
    async fn probe(&self, key: &IdempotencyKey) -> Result<Option<u64>, StoreError> {
        let mut headers = HeaderMap::new();
        headers.insert(MSG_ID, message_id(&key.key).as_str());
        let refused: fn(&api::ApiError) -> bool = if self.clustered {
            headers.insert(EXPECTED_LAST_SUBJECT_SEQUENCE, NEVER_A_SEQUENCE);
            api::is_wrong_last_sequence
        } else {
            headers.insert(EXPECTED_LAST_MSG_ID, NEVER_A_MESSAGE_ID);
            |error| error.err_code == WRONG_LAST_MSG_ID
        };
        match self
            .publish_settled(subject::keys(&self.prefix), headers, Vec::new())
            .await?
        {
            Published::Duplicate(sequence) => Ok(Some(sequence)),
            Published::Refused(error) if refused(&error) => Ok(None),
            Published::Refused(error) => Err(StoreError::Unavailable(format!(
                "checking an idempotency key: {error}"
            ))),
            Published::Stored(sequence) => Err(StoreError::Corrupt(format!(
                "an idempotency key probe was stored as message {sequence}"
            ))),
        }
    }

    /// The result of the first append with `key`, stored as message `sequence`.
    async fn first_result(
        &self,
        sequence: u64,
        key: &IdempotencyKey,
    ) -> Result<Appended, StoreError> {
        let Some(message) = self.api.message(sequence).await? else {
            return Err(StoreError::Corrupt(format!(
                "idempotency key points at message {sequence}, which is gone"
            )));
        };
        let envelope = Envelope::decode(&message.data)?;
        if envelope.key != key.key || envelope.fingerprint != key.fingerprint {
            return Err(StoreError::IdempotencyKeyReused);
        }
        match &envelope.body {
            Body::Events(_) => {
                let last = position::last_of(sequence);
                Ok(Appended {
                    events: recorded(&envelope, sequence),
                    stream_version: last,
                    position: last,
                    duplicate: true,
                })
            }
            Body::KeyRecord { revision, position } => Ok(Appended {
                events: Vec::new(),
                stream_version: *revision,
                position: *position,
                duplicate: true,
            }),
        }
    }

    /// An append without events: checks the expectation, records the key if any.
    async fn append_nothing(
        &self,
        stream: String,
        expected: ExpectedVersion,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<Appended, StoreError> {
        if let Some(key) = &idempotency
            && let Some(sequence) = self.probe(key).await?
        {
            return self.first_result(sequence, key).await;
        }
        let actual = self
            .stream_revision(&subject::of_stream(&self.prefix, &stream))
            .await?;
        if !expected.admits(actual) {
            return Err(StoreError::Conflict {
                stream,
                expected: expected.to_string(),
                actual,
            });
        }
        let position = (*self.head.borrow()).max(actual);
        let nothing = Appended {
            events: Vec::new(),
            stream_version: actual,
            position,
            duplicate: false,
        };
        let Some(key) = idempotency else {
            return Ok(nothing);
        };
        let envelope = Envelope {
            stream,
            key: key.key.clone(),
            fingerprint: key.fingerprint.clone(),
            recorded_at_ms: now_ms(),
            body: Body::KeyRecord {
                revision: actual,
                position,
            },
        };
        let mut headers = HeaderMap::new();
        headers.insert(MSG_ID, message_id(&key.key).as_str());
        match self
            .publish_settled(subject::keys(&self.prefix), headers, envelope.encode()?)
            .await?
        {
            Published::Stored(_) => Ok(nothing),
            Published::Duplicate(sequence) => self.first_result(sequence, &key).await,
            Published::Refused(error) => Err(StoreError::Unavailable(format!(
                "recording an idempotency key: {error}"
            ))),
        }
    }
}

#[async_trait]
impl EventAppender for NatsEventLog {
    async fn append(&self, request: AppendRequest) -> Result<Appended, StoreError> {
        let AppendRequest {
            stream,
            expected,
            events,
            idempotency,
        } = request;
        let inner = &self.inner;
        if events.len() > MAX_EVENTS_PER_APPEND {
            return Err(StoreError::TooLarge(format!(
                "{} events in one append (at most {MAX_EVENTS_PER_APPEND})",
                events.len()
            )));
        }
        inner.ensure_connected()?;
        if events.is_empty() {
            return inner.append_nothing(stream, expected, idempotency).await;
        }
        let subject = subject::of_stream(&inner.prefix, &stream);
        let envelope = Envelope {
            stream,
            key: idempotency
                .as_ref()
                .map(|key| key.key.clone())
                .unwrap_or_default(),
            fingerprint: idempotency
                .as_ref()
                .map(|key| key.fingerprint.clone())
                .unwrap_or_default(),
            recorded_at_ms: now_ms(),
            body: Body::Events(events),
        };
        let encoded = envelope.encode()?;
        let mut headers = HeaderMap::new();
        let expected_sequence = expected_subject_sequence(expected);
        if let Some(sequence) = expected_sequence {
            headers.insert(
                EXPECTED_LAST_SUBJECT_SEQUENCE,
                sequence.to_string().as_str(),
            );
        }
        if let Some(key) = &idempotency {
            headers.insert(MSG_ID, message_id(&key.key).as_str());
        }
        let retry_safe = idempotency.is_some() || expected_sequence.is_some();
        let (published, uncertain) = inner
            .publish_retrying(&subject, &headers, &encoded, retry_safe)
            .await?;
        // An attempt whose answer was lost may be the one stored: then the append
        // right after the expected sequence on the subject is this very message.
        let published = match (published, expected_sequence) {
            (Published::Refused(error), Some(expected))
                if uncertain
                    && idempotency.is_none()
                    && api::is_wrong_last_sequence(&error)
                    && expected < MAX_SEQUENCE =>
            {
                match inner.api.next_on(&subject, expected + 1).await? {
                    Some(message) if message.data == encoded => Published::Stored(message.sequence),
                    _ => Published::Refused(error),
                }
            }
            (published, _) => published,
        };
        match published {
            Published::Stored(sequence) => {
                if sequence > MAX_SEQUENCE {
                    return Err(StoreError::Corrupt(format!(
                        "message sequence {sequence} is beyond what positions can hold"
                    )));
                }
                let recorded = recorded(&envelope, sequence);
                let last = position::last_of(sequence);
                inner.advance(last);
                inner.announce().await;
                Ok(Appended {
                    events: recorded,
                    stream_version: last,
                    position: last,
                    duplicate: false,
                })
            }
            Published::Duplicate(sequence) => match &idempotency {
                Some(key) => inner.first_result(sequence, key).await,
                None => Err(StoreError::Corrupt(format!(
                    "an append without a key was taken for a duplicate of message {sequence}"
                ))),
            },
            Published::Refused(error) if api::is_wrong_last_sequence(&error) => {
                // A retry of an append that went through is a duplicate, whatever it
                // expected: ask for the key before reporting a conflict.
                if let Some(key) = &idempotency
                    && let Some(sequence) = inner.probe(key).await?
                {
                    return inner.first_result(sequence, key).await;
                }
                let actual = match api::wrong_last_sequence(&error) {
                    Some(sequence) => position::last_of(sequence),
                    None => inner.stream_revision(&subject).await?,
                };
                Err(StoreError::Conflict {
                    stream: envelope.stream,
                    expected: expected.to_string(),
                    actual,
                })
            }
            Published::Refused(error) if error.err_code == MESSAGE_TOO_LARGE => Err(
                StoreError::TooLarge(format!("an append to {}: {error}", envelope.stream)),
            ),
            Published::Refused(error) => Err(StoreError::Unavailable(format!(
                "JetStream refused an append to {}: {error}",
                envelope.stream
            ))),
        }
    }
}

impl NatsEventLog {
    /// Reads events on `subject` (wildcards allowed) with positions above `after`,
    /// at most `limit`, checking that each message belongs to `stream` if given.
    ///
    /// Messages come in Direct Get batches (`read_batch` per request). A batch may
    /// come from a replica behind the leader; it then ends early but never skips a
    /// message, so on a replicated stream an answer that seems to reach the end is
    /// confirmed by one `STREAM.MSG.GET` through the leader — a read never misses a
    /// message that was acknowledged before it started.
    async fn read(
        &self,
        subject: &str,
        stream: Option<&str>,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let api = &self.inner.api;
        let mut out = Vec::new();
        let mut sequence = position::first_sequence_after(after).max(1);
        while out.len() < limit {
            let (mut messages, mut at_end) = if self.inner.read_batch > 1 {
                // Messages hold one event or more: ask for no more than are wanted.
                let batch = (limit - out.len()).min(self.inner.read_batch);
                let answer = api
                    .next_batch_on(subject, sequence, batch, MAX_READ_BYTES)
                    .await?;
                // The end: nothing, or nothing left after the last message (the server's
                // count of matching messages after it; a cut by `max_bytes` leaves some).
                let at_end = answer.messages.is_empty() || answer.pending == Some(0);
                (answer.messages, at_end)
            } else {
                let message = api.next_on(subject, sequence).await?;
                let at_end = message.is_none();
                (message.into_iter().collect::<Vec<_>>(), at_end)
            };
            if at_end && self.inner.replicated && self.inner.read_batch > 1 {
                let next = messages.last().map_or(sequence, |last| last.sequence + 1);
                if let Some(message) = api.next_on(subject, next).await? {
                    messages.push(message);
                    at_end = false;
                }
            }
            for message in messages {
                if out.len() >= limit {
                    break;
                }
                let envelope = Envelope::decode(&message.data)?;
                if let Some(stream) = stream
                    && envelope.stream != stream
                {
                    return Err(StoreError::Corrupt(format!(
                        "message {} on {} belongs to stream {}, not {stream}",
                        message.sequence, message.subject, envelope.stream
                    )));
                }
                if !matches!(envelope.body, Body::Events(_)) {
                    return Err(StoreError::Corrupt(format!(
                        "message {} on {} holds no events",
                        message.sequence, message.subject
                    )));
                }
                if message.sequence < sequence {
                    return Err(StoreError::Corrupt(format!(
                        "JetStream answered message {} for a read from {sequence}",
                        message.sequence
                    )));
                }
                out.extend(
                    recorded(&envelope, message.sequence)
                        .into_iter()
                        .filter(|event| event.position > after)
                        .take(limit - out.len()),
                );
                sequence = message.sequence + 1;
            }
            if at_end {
                break;
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl EventReader for NatsEventLog {
    async fn read_stream(
        &self,
        stream: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let subject = subject::of_stream(&self.inner.prefix, stream);
        self.read(&subject, Some(stream), after_version, limit)
            .await
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let subject = subject::all_events(&self.inner.prefix);
        self.read(&subject, None, after, limit).await
    }

    fn head(&self) -> Position {
        *self.inner.head.borrow()
    }

    /// The stream's last event, read through the leader (`STREAM.MSG.GET`), so it
    /// includes every append acknowledged before the call.
    async fn durable_head(&self) -> Result<Position, StoreError> {
        self.inner.ensure_connected()?;
        self.inner.refresh_head().await?;
        Ok(*self.inner.head.borrow())
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn subscribe(&self) -> watch::Receiver<Position> {
        self.inner.head.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_become_subject_sequences() {
        assert_eq!(expected_subject_sequence(ExpectedVersion::Any), None);
        assert_eq!(
            expected_subject_sequence(ExpectedVersion::NoStream),
            Some(0)
        );
        assert_eq!(
            expected_subject_sequence(ExpectedVersion::Exactly(0)),
            Some(0)
        );
        assert_eq!(
            expected_subject_sequence(ExpectedVersion::Exactly(position::last_of(9))),
            Some(9)
        );
        assert_eq!(
            expected_subject_sequence(ExpectedVersion::Exactly(position::position(9, 0, 2))),
            Some(i64::MAX as u64),
            "a revision inside an append never matches"
        );
    }

    #[test]
    fn message_ids_are_fixed_length_and_distinct() {
        let a = message_id("account-1/key with spaces\r\n");
        let b = message_id("account-2/key with spaces\r\n");
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 64);
        assert!(a.starts_with("hb1-") && !NEVER_A_MESSAGE_ID.starts_with("hb1-"));
        assert!(
            a.bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
        );
    }

    #[test]
    fn options_are_checked() {
        assert!(NatsOptions::default().check().is_ok());
        for options in [
            NatsOptions {
                stream: "A.B".into(),
                ..NatsOptions::default()
            },
            NatsOptions {
                subject_prefix: "hb.>".into(),
                ..NatsOptions::default()
            },
            NatsOptions {
                replicas: 0,
                ..NatsOptions::default()
            },
            NatsOptions {
                idempotency_expiry: Duration::ZERO,
                ..NatsOptions::default()
            },
        ] {
            assert!(options.check().is_err(), "{options:?} must be refused");
        }
    }
}
