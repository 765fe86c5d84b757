//! Webhook deliveries (ChatWork's webhooks), at least once and in order per webhook.
//!
//! A webhook follows its owner's sync op stream (`SyncService::stream`): the ops are
//! derived from the log, in log order, and hold only what the owner may see (a room's
//! ops while a member: a removed member's webhooks stop at the removal). Each webhook
//! has a worker that turns the ops of the kinds it asked for into ChatWork's request
//! bodies, sends them one at a time, retries a failed one on a schedule (exponential,
//! with jitter, honouring `Retry-After`) before going on, and saves its position
//! (`ConsumerCheckpoints`, `webhook-{id}`) after each page of ops it finished: a
//! crash resends at most one page, never skips. A receiver that answers 410 Gone
//! disables the webhook. Deliveries leave through a [`WebhookTransport`], which also
//! decides which URLs may be webhooks at all (no private addresses by default).
//!
//! Signatures: ChatWork's `X-ChatWorkWebhookSignature` (and the query parameter
//! `chatwork_webhook_signature`), base64 of HMAC-SHA256 over the raw body keyed by
//! the base64-decoded token; and the Standard Webhooks headers (`webhook-id`, the
//! same for every retry of one delivery; `webhook-timestamp`; `webhook-signature`:
//! `v1,` and base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`, same key).

use crate::commands::CommandHandler;
use crate::error::AppError;
use crate::ops::OpKind;
use crate::sync::{Revision, SyncService, parse_revision};
use crate::tokens::TokenSecret;
use async_trait::async_trait;
use base64::Engine;
use hayabusa_domain::{RoomId, WebhookEventType, WebhookSetting, WebhookSettings};
use hayabusa_store::{ConsumerCheckpoints, EventReader, OpRecord, ReadModelQueries, StoreError};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The stream of every webhook setting.
pub const WEBHOOKS_STREAM: &str = "webhooks";

/// The `User-Agent` of deliveries.
pub const USER_AGENT: &str = "ChatWork-Webhook/1.0 (compatible; Hayabusa)";

/// Ops read per page (a page is also what a crash may resend).
const PAGE: usize = 100;

/// How often an idle webhook looks for ops it was not woken for.
const IDLE_RECHECK: Duration = Duration::from_secs(30);

/// The state folded from every event of `stream` (`evolve` gets each event and its
/// position), and the stream's version.
pub async fn fold_stream<S>(
    log: &dyn EventReader,
    stream: &str,
    state: S,
    evolve: impl Fn(S, &hayabusa_domain::Event, u64) -> S,
) -> Result<(S, u64), AppError> {
    fold_stream_from(log, stream, state, 0, evolve).await
}

/// `state`, folded from `stream` up to its `version`, brought up to date with the
/// events after it; and the stream's version then.
pub async fn fold_stream_from<S>(
    log: &dyn EventReader,
    stream: &str,
    mut state: S,
    mut version: u64,
    evolve: impl Fn(S, &hayabusa_domain::Event, u64) -> S,
) -> Result<(S, u64), AppError> {
    loop {
        let page = log.read_stream(stream, version, 1_000).await?;
        let Some(last) = page.last() else { break };
        version = last.stream_version;
        for recorded in &page {
            let event = hayabusa_domain::decode_event(
                &recorded.event_type,
                recorded.schema_version,
                &recorded.data,
            )
            .map_err(|error| AppError::Store(StoreError::Corrupt(error.to_string())))?;
            state = evolve(state, &event, recorded.position);
        }
    }
    Ok((state, version))
}

/// The webhook settings (folded from their stream) and the stream's version.
pub async fn settings_of_stream(log: &dyn EventReader) -> Result<(WebhookSettings, u64), AppError> {
    fold_stream(
        log,
        WEBHOOKS_STREAM,
        WebhookSettings::default(),
        |settings, event, position| settings.evolve(event, position),
    )
    .await
}

/// What one attempt at a delivery came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver answered 2xx.
    Delivered,
    /// The receiver answered 410 Gone: the webhook is to be disabled.
    Gone,
    /// Anything else: try again later (after `retry_after` if the receiver said).
    Failed {
        /// What happened, for the log.
        reason: String,
        /// The receiver's `Retry-After`.
        retry_after: Option<Duration>,
    },
}

/// How deliveries leave the server.
#[async_trait]
pub trait WebhookTransport: Send + Sync {
    /// Whether `url` may be a webhook's (its scheme, and where its host resolves);
    /// the reason if not.
    async fn check(&self, url: &str) -> Result<(), String>;
    /// POSTs `body` with `headers` to `url`, once.
    async fn post(&self, url: &str, headers: &[(String, String)], body: &[u8]) -> Attempt;
}

/// When a failed delivery is tried again.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetrySchedule {
    /// The wait after the first failure; each next wait doubles it.
    pub first: Duration,
    /// The longest wait between two attempts.
    pub longest: Duration,
    /// After this long since the first failure, the delivery is given up and the
    /// webhook or forwarder goes on with the next one (a webhook's is counted and
    /// logged; a forwarder's goes to its dead letters).
    pub give_up_after: Duration,
}

impl Default for RetrySchedule {
    /// 1 s, 2 s, 4 s … up to an hour apart, for 24 hours.
    fn default() -> Self {
        RetrySchedule {
            first: Duration::from_secs(1),
            longest: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

impl RetrySchedule {
    /// The wait before attempt `failures + 1`, jittered by up to ±20%, at least the
    /// receiver's `retry_after`.
    pub fn wait(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        use rand::Rng;
        let doubled = self
            .first
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20))
            .min(self.longest);
        let jitter = rand::rng().random_range(0.8..1.2);
        let wait = doubled.mul_f64(jitter);
        match retry_after {
            Some(asked) => wait.max(asked.min(self.longest)),
            None => wait,
        }
    }
}

/// One delivery: the body and the headers that go with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Standard Webhooks' `webhook-id`: the same for every attempt.
    pub id: String,
    /// ChatWork's `webhook_event_type`.
    pub event_type: WebhookEventType,
    /// ChatWork's `webhook_event_time` (Unix seconds).
    pub time: i64,
    /// The raw JSON body.
    pub body: Vec<u8>,
}

/// The ChatWork body of a webhook event.
fn body(
    setting: &WebhookSetting,
    event_type: WebhookEventType,
    time: i64,
    event: Value,
) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "webhook_setting_id": setting.webhook_id.to_string(),
        "webhook_event_type": event_type.as_str(),
        "webhook_event_time": time,
        "webhook_event": event,
    }))
    .expect("JSON values serialize")
}

/// Signs `delivery` for `url` with the webhook's `token`: the URL with ChatWork's
/// signature parameter, and the headers.
pub fn signed(
    url: &str,
    token: &str,
    delivery: &Delivery,
    now: i64,
) -> (String, Vec<(String, String)>) {
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine.decode(token).unwrap_or_default();
    let sign = |message: &[u8]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
        mac.update(message);
        engine.encode(mac.finalize().into_bytes())
    };
    let chatwork = sign(&delivery.body);
    let mut standard_message = format!("{}.{now}.", delivery.id).into_bytes();
    standard_message.extend_from_slice(&delivery.body);
    let standard = sign(&standard_message);
    let separator = if url.contains('?') { '&' } else { '?' };
    let encoded: String = form_urlencoded::byte_serialize(chatwork.as_bytes()).collect();
    let url = format!("{url}{separator}chatwork_webhook_signature={encoded}");
    let headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("user-agent".to_owned(), USER_AGENT.to_owned()),
        ("x-chatworkwebhooksignature".to_owned(), chatwork),
        ("webhook-id".to_owned(), delivery.id.clone()),
        ("webhook-timestamp".to_owned(), now.to_string()),
        ("webhook-signature".to_owned(), format!("v1,{standard}")),
    ];
    (url, headers)
}

/// Messages seen at the current position (a mention's body comes from the message
/// posted in the same event).
#[derive(Default)]
struct Recent {
    position: u64,
    messages: HashMap<String, (String, i64)>,
}

fn text(payload: &Value, field: &str) -> String {
    match &payload[field] {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn number(payload: &Value, field: &str) -> i64 {
    payload[field].as_i64().unwrap_or(0)
}

/// What `op` (one of the owner's sync ops) gives `setting`: at most one delivery.
async fn delivery_of(
    read: &dyn ReadModelQueries,
    setting: &WebhookSetting,
    op: &OpRecord,
    recent: &mut Recent,
) -> Result<Option<Delivery>, AppError> {
    if recent.position != op.position {
        recent.position = op.position;
        recent.messages.clear();
    }
    let Some(kind) = OpKind::parse(&op.op_type) else {
        return Ok(None);
    };
    if setting.room_id.is_some() && op.room_id != setting.room_id {
        return Ok(None);
    }
    let payload: Value = serde_json::from_str(&op.payload).map_err(|error| {
        AppError::Store(StoreError::Corrupt(format!("an op's payload: {error}")))
    })?;
    let wants = |kind: WebhookEventType| setting.event_types.contains(&kind);
    let message_id = text(&payload, "message_id");
    let room_id = number(&payload, "room_id");
    // The message as the read models have it (for what an op does not carry).
    let stored =
        async |read: &dyn ReadModelQueries| -> Result<Option<(u64, String, i64)>, AppError> {
            let (Ok(room), Ok(message)) = (u64::try_from(room_id), message_id.parse::<u64>())
            else {
                return Ok(None);
            };
            Ok(read
                .message(RoomId(room), hayabusa_domain::MessageId(message))
                .await?
                .map(|view| {
                    (
                        view.message.account_id.0,
                        view.message.body,
                        view.message.send_time,
                    )
                }))
        };
    let (event_type, time, event) = match kind {
        OpKind::MessageCreated => {
            let (body, send_time) = (text(&payload, "body"), number(&payload, "send_time"));
            recent
                .messages
                .insert(message_id.clone(), (body.clone(), send_time));
            if !wants(WebhookEventType::MessageCreated) {
                return Ok(None);
            }
            let event = json!({
                "message_id": message_id,
                "room_id": room_id,
                "account_id": number(&payload, "account_id"),
                "body": body,
                "send_time": send_time,
                "update_time": 0,
            });
            (WebhookEventType::MessageCreated, send_time, event)
        }
        OpKind::MessageUpdated if wants(WebhookEventType::MessageUpdated) => {
            let update_time = number(&payload, "update_time");
            let (account_id, send_time) = match stored(read).await? {
                Some((account, _, send_time)) => (account, send_time),
                None => (0, 0),
            };
            let event = json!({
                "message_id": message_id,
                "room_id": room_id,
                "account_id": account_id,
                "body": text(&payload, "body"),
                "send_time": send_time,
                "update_time": update_time,
            });
            (WebhookEventType::MessageUpdated, update_time, event)
        }
        OpKind::Mention if wants(WebhookEventType::MentionToMe) => {
            let from = number(&payload, "account_id");
            if u64::try_from(from) == Ok(setting.account_id.0) {
                return Ok(None);
            }
            let (body, send_time) = match recent.messages.get(&message_id) {
                Some(seen) => seen.clone(),
                None => match stored(read).await? {
                    Some((_, body, send_time)) => (body, send_time),
                    None => (String::new(), 0),
                },
            };
            let event = json!({
                "from_account_id": from,
                "to_account_id": setting.account_id.0,
                "room_id": room_id,
                "message_id": message_id,
                "body": body,
                "send_time": send_time,
                "update_time": 0,
            });
            (WebhookEventType::MentionToMe, send_time, event)
        }
        _ => return Ok(None),
    };
    Ok(Some(Delivery {
        id: format!("{}-{}-{}", setting.webhook_id, op.position, op.index),
        event_type,
        time,
        body: body(setting, event_type, time, event),
    }))
}

/// What a webhook's worker needs.
pub struct WebhookWorkers {
    sync: Arc<SyncService>,
    read: Arc<dyn ReadModelQueries>,
    checkpoints: Arc<dyn ConsumerCheckpoints>,
    commands: Arc<CommandHandler>,
    secret: TokenSecret,
    transport: Arc<dyn WebhookTransport>,
    schedule: RetrySchedule,
}

/// How a worker ended.
enum Ended {
    Stopped,
    Disabled,
}

impl WebhookWorkers {
    /// Workers over these parts.
    pub fn new(
        sync: Arc<SyncService>,
        read: Arc<dyn ReadModelQueries>,
        checkpoints: Arc<dyn ConsumerCheckpoints>,
        commands: Arc<CommandHandler>,
        transport: Arc<dyn WebhookTransport>,
        schedule: RetrySchedule,
    ) -> Arc<Self> {
        let secret = commands.secret().clone();
        Arc::new(WebhookWorkers {
            sync,
            read,
            checkpoints,
            commands,
            secret,
            transport,
            schedule,
        })
    }

    /// Delivers `setting`'s events until `stop` says true (or it is disabled);
    /// failures of the stores are retried after a pause.
    async fn run(
        self: Arc<Self>,
        setting: WebhookSetting,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            // `deliver` watches `stop` itself, between sends and while it waits.
            let outcome = self.deliver(&setting, &mut stop).await;
            if *stop.borrow() {
                return;
            }
            match outcome {
                Ok(Ended::Stopped | Ended::Disabled) => return,
                Err(error) => {
                    tracing::warn!(%error, webhook = setting.webhook_id, "webhook deliveries paused");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn deliver(
        &self,
        setting: &WebhookSetting,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<Ended, AppError> {
        let name = format!("webhook-{}", setting.webhook_id);
        let token = self.secret.webhook_token(setting.webhook_id);
        let destination = Destination::new("webhook", setting.webhook_id.to_string(), true);
        let start = match self.checkpoints.consumer_checkpoint(&name).await? {
            Some(saved) => {
                parse_revision(&saved).unwrap_or(Revision::at(setting.created_at_position))
            }
            None => Revision::at(setting.created_at_position),
        };
        let mut ops = self.sync.stream(setting.account_id, start).await?;
        let mut recent = Recent::default();
        loop {
            let batch = ops.next_page(PAGE).await?;
            let mut done = None;
            for op in &batch.ops {
                if let Some(delivery) =
                    delivery_of(self.read.as_ref(), setting, op, &mut recent).await?
                {
                    match self
                        .send(setting, &destination, &token, &delivery, stop)
                        .await
                    {
                        Sent::Delivered | Sent::GivenUp { .. } => {}
                        Sent::Gone => {
                            self.commands
                                .disable_webhook(
                                    setting.webhook_id,
                                    "the receiver answered 410 Gone".into(),
                                )
                                .await?;
                            return Ok(Ended::Disabled);
                        }
                        Sent::Stopped => {
                            if let Some(done) = done {
                                self.save(&name, done).await?;
                            }
                            return Ok(Ended::Stopped);
                        }
                    }
                }
                done = Some(Revision {
                    position: op.position,
                    index: Some(op.index),
                });
            }
            if !batch.ops.is_empty() {
                self.save(&name, batch.revision).await?;
                continue;
            }
            destination.set_lag(None);
            // Woken as the owner's sync clients are; an idle webhook costs nothing
            // (the long safety interval only bounds the cost of a lost wake-up).
            tokio::select! {
                () = ops.woken() => {}
                () = tokio::time::sleep(IDLE_RECHECK) => {}
                _ = stop.wait_for(|stop| *stop) => return Ok(Ended::Stopped),
            }
        }
    }

    async fn save(&self, name: &str, revision: Revision) -> Result<(), AppError> {
        Ok(self
            .checkpoints
            .save_consumer_checkpoint(name, &revision.to_string())
            .await?)
    }

    /// Sends `delivery` until it is delivered, gone, given up (then it counts as
    /// sent: webhooks have no dead letters) or the worker is stopped.
    async fn send(
        &self,
        setting: &WebhookSetting,
        destination: &Destination,
        token: &str,
        delivery: &Delivery,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Sent {
        send_with_retries(
            self.transport.as_ref(),
            &self.schedule,
            destination,
            &delivery.id,
            &delivery.body,
            delivery.time.saturating_mul(1_000),
            |now| signed(&setting.url, token, delivery, now),
            stop,
        )
        .await
    }

    /// Runs a worker for every active webhook, following the settings as they
    /// change, until `shutdown` says true.
    pub async fn run_all(
        self: Arc<Self>,
        log: Arc<dyn EventReader>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut running: HashMap<
            u64,
            (
                tokio::sync::watch::Sender<bool>,
                tokio::task::JoinHandle<()>,
            ),
        > = HashMap::new();
        loop {
            match settings_of_stream(log.as_ref()).await {
                Ok((settings, _)) => {
                    let active: HashMap<u64, &WebhookSetting> = settings
                        .settings
                        .values()
                        .filter(|setting| setting.disabled.is_none())
                        .map(|setting| (setting.webhook_id, setting))
                        .collect();
                    running.retain(|id, (stop, task)| {
                        let keep = active.contains_key(id) && !task.is_finished();
                        if !keep {
                            let _ = stop.send(true);
                        }
                        keep
                    });
                    for (id, setting) in active {
                        running.entry(id).or_insert_with(|| {
                            let (stop, stopped) = tokio::sync::watch::channel(false);
                            let task =
                                tokio::spawn(Arc::clone(&self).run(setting.clone(), stopped));
                            (stop, task)
                        });
                    }
                    metrics::gauge!("hayabusa_webhooks_active").set(running.len() as f64);
                }
                Err(error) => tracing::warn!(%error, "reading the webhook settings"),
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        for (_, (stop, task)) in running {
            let _ = stop.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// The lease of the process that delivers webhooks (one at a time).
pub const WEBHOOK_LEASE: &str = "webhooks";

/// How long the webhook lease lasts without a renewal, how often it is renewed, and
/// the margin before expiry at which a holder that could not renew stops.
const LEASE_TTL: Duration = Duration::from_secs(10);
const LEASE_RENEW: Duration = Duration::from_secs(2);
const LEASE_MARGIN: Duration = Duration::from_secs(2);

impl WebhookWorkers {
    /// Runs [`WebhookWorkers::run_all`] whenever this process holds the webhook
    /// lease, so that one process of a deployment delivers, and another takes over
    /// when it dies; until `shutdown` says true.
    pub async fn run_leased(
        self: Arc<Self>,
        log: Arc<dyn EventReader>,
        leases: Arc<dyn hayabusa_store::Leases>,
        holder: String,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        run_under_lease(leases, WEBHOOK_LEASE, holder, shutdown, |stopped| {
            tokio::spawn(Arc::clone(&self).run_all(Arc::clone(&log), stopped))
        })
        .await;
    }
}

/// How sending one delivery ended.
pub(crate) enum Sent {
    Delivered,
    Gone,
    /// The retry schedule ran out.
    GivenUp {
        failures: u32,
        reason: String,
    },
    Stopped,
}

fn unix_now() -> i64 {
    use crate::clock::Clock;
    crate::clock::SystemClock.now_secs()
}

/// Where deliveries go, for [`send_with_retries`], with its metrics (registered once
/// per worker, not per delivery).
pub(crate) struct Destination {
    /// `webhook` or `forwarder`: the metrics are `hayabusa_{kind}_…`.
    kind: &'static str,
    /// The `destination` label: the webhook's or forwarder's id.
    name: String,
    /// Whether a 410 Gone ends the deliveries (otherwise it is a failure).
    gone_ends: bool,
    deliveries: metrics::Counter,
    failures: metrics::Counter,
    retries: metrics::Counter,
    given_up: metrics::Counter,
    lag: metrics::Gauge,
}

impl Destination {
    /// The destination `name` of `kind`.
    pub fn new(kind: &'static str, name: String, gone_ends: bool) -> Self {
        let counter = |what: &str| metrics::counter!(format!("hayabusa_{kind}_{what}_total"), "destination" => name.clone());
        Destination {
            deliveries: counter("deliveries"),
            failures: counter("failures"),
            retries: counter("retries"),
            given_up: counter("given_up"),
            lag: metrics::gauge!(format!("hayabusa_{kind}_lag_seconds"), "destination" => name.clone()),
            kind,
            name,
            gone_ends,
        }
    }

    /// The `destination` label.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets how old (in seconds) the oldest event this destination has not got yet
    /// is: the one being sent, made at `event_time_ms`; None when it has got all.
    pub fn set_lag(&self, event_time_ms: Option<i64>) {
        use crate::clock::Clock;
        let lag = event_time_ms.map_or(0.0, |made| {
            let now_ms = i64::try_from(crate::clock::SystemClock.now_ms()).unwrap_or(i64::MAX);
            // Milliseconds to seconds, for a gauge.
            #[allow(clippy::cast_precision_loss)]
            let seconds = (now_ms.saturating_sub(made)).max(0) as f64 / 1_000.0;
            seconds
        });
        self.lag.set(lag);
    }
}

/// Sends `body` (signed for the time of each attempt by `sign`, which gives the URL
/// and headers) until it is delivered, gone (if `destination.gone_ends`), given up
/// after the schedule, or `stop` says true; counts deliveries, failures, retries
/// and give-ups per destination (`hayabusa_{kind}_deliveries_total`, …), and sets
/// its lag from `event_time_ms`, when the event was made.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn send_with_retries(
    transport: &dyn WebhookTransport,
    schedule: &RetrySchedule,
    destination: &Destination,
    id: &str,
    body: &[u8],
    event_time_ms: i64,
    sign: impl Fn(i64) -> (String, Vec<(String, String)>),
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Sent {
    let started = tokio::time::Instant::now();
    let mut failures = 0u32;
    let kind = destination.kind;
    loop {
        destination.set_lag(Some(event_time_ms));
        let (url, headers) = sign(unix_now());
        let (reason, retry_after) = match transport.post(&url, &headers, body).await {
            Attempt::Delivered => {
                destination.deliveries.increment(1);
                return Sent::Delivered;
            }
            Attempt::Gone if destination.gone_ends => return Sent::Gone,
            Attempt::Gone => ("the receiver answered 410 Gone".to_owned(), None),
            Attempt::Failed {
                reason,
                retry_after,
            } => (reason, retry_after),
        };
        failures += 1;
        destination.failures.increment(1);
        if started.elapsed() >= schedule.give_up_after {
            destination.given_up.increment(1);
            tracing::warn!(kind, delivery = %id, %reason, failures, "delivery given up");
            return Sent::GivenUp { failures, reason };
        }
        destination.retries.increment(1);
        let wait = schedule.wait(failures, retry_after);
        tracing::debug!(kind, delivery = %id, %reason, ?wait, "delivery failed; retrying");
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|stop| *stop) => return Sent::Stopped,
        }
    }
}

/// Runs `run` (given a stop signal; it returns once told to stop) whenever this
/// process holds lease `name`, until `shutdown` says true; releases the lease on
/// the way out.
pub(crate) async fn run_under_lease(
    leases: Arc<dyn hayabusa_store::Leases>,
    name: &'static str,
    holder: String,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    run: impl Fn(tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()>,
) {
    loop {
        let fence = loop {
            match leases.acquire(name, &holder, LEASE_TTL).await {
                Ok(Some(fence)) => break fence,
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, lease = name, "acquiring a lease"),
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        };
        tracing::info!(holder, fence, lease = name, "took the lease");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let running = run(stopped);
        let lost = tokio::select! {
            _ = crate::leased::keep_lease(
                leases.as_ref(), name, &holder, fence, LEASE_TTL, LEASE_RENEW, LEASE_MARGIN,
            ) => true,
            _ = shutdown.wait_for(|stop| *stop) => false,
        };
        let _ = stop.send(true);
        let _ = running.await;
        if !lost {
            let _ = leases.release(name, &holder, fence).await;
            return;
        }
        tracing::warn!(holder, lease = name, "lost the lease; stopped here");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_chatworks_and_standard_webhooks() {
        let engine = base64::engine::general_purpose::STANDARD;
        let token = engine.encode(b"0123456789abcdef0123456789abcdef");
        let delivery = Delivery {
            id: "7-100-0".into(),
            event_type: WebhookEventType::MessageCreated,
            time: 1_700_000_000,
            body: br#"{"a":1}"#.to_vec(),
        };
        let (url, headers) = signed("https://h.example/x?y=1", &token, &delivery, 1_700_000_000);
        let header = |name: &str| headers.iter().find(|(n, _)| n == name).unwrap().1.clone();
        let mut mac = Hmac::<Sha256>::new_from_slice(b"0123456789abcdef0123456789abcdef").unwrap();
        mac.update(br#"{"a":1}"#);
        let expected = engine.encode(mac.finalize().into_bytes());
        assert_eq!(header("x-chatworkwebhooksignature"), expected);
        let encoded: String = form_urlencoded::byte_serialize(expected.as_bytes()).collect();
        assert_eq!(
            url,
            format!("https://h.example/x?y=1&chatwork_webhook_signature={encoded}")
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(b"0123456789abcdef0123456789abcdef").unwrap();
        mac.update(br#"7-100-0.1700000000.{"a":1}"#);
        assert_eq!(
            header("webhook-signature"),
            format!("v1,{}", engine.encode(mac.finalize().into_bytes()))
        );
        assert_eq!(header("webhook-id"), "7-100-0");
        assert_eq!(header("webhook-timestamp"), "1700000000");
    }

    #[test]
    fn waits_double_with_jitter_up_to_the_longest_and_honour_retry_after() {
        let schedule = RetrySchedule::default();
        for failures in 1..=4u32 {
            let wait = schedule.wait(failures, None).as_secs_f64();
            let base = f64::from(1u32 << (failures - 1));
            assert!(
                (0.8 * base..=1.2 * base).contains(&wait),
                "{failures}: {wait}"
            );
        }
        assert!(schedule.wait(40, None) <= Duration::from_secs(4320));
        assert!(schedule.wait(1, Some(Duration::from_secs(30))) >= Duration::from_secs(30));
    }
}
