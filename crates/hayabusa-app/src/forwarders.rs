//! The forwarder: every domain event (or a filtered set) to other systems, in log
//! order, at least once — Falcon's forwarder to the legacy system.
//!
//! Administrators set forwarders up (the `forwarders` stream). Each forwarder has a
//! worker that reads the event log itself (not the read models) from its checkpoint
//! (`ConsumerCheckpoints`, `forwarder-{id}`), wraps each event it wants in the
//! versioned envelope ([`envelope`]) and POSTs it, one at a time, signed with the
//! Standard Webhooks headers (`webhook-id` = `{forwarder}-{position}`, the same for
//! every retry), retrying as webhooks do ([`crate::webhooks::RetrySchedule`]). It
//! saves its position after each page of events: a crash resends at most one page.
//! The workers run under the `forwarders` lease: one process of a deployment
//! forwards.
//!
//! An event still failing at the end of the retry schedule goes to the forwarder's
//! dead letters (its stream `forwarder-{id}`) and the forwarder goes on with the
//! next. An administrator sees them and asks for a replay; before each page of new
//! events the worker sends the dead letters asked for (with their first
//! `webhook-id`), out of log order by nature, and takes each one off the list once
//! delivered (or puts it back, if it fails through a whole schedule again).

use crate::commands::CommandHandler;
use crate::error::AppError;
use crate::tokens::TokenSecret;
use crate::webhooks::{
    Destination, RetrySchedule, Sent, WebhookTransport, fold_stream, fold_stream_from,
    run_under_lease, send_with_retries,
};
use base64::Engine;
use hayabusa_domain::{DeadLetters, Forwarder, Forwarders, dead_letters_stream};
use hayabusa_store::{ConsumerCheckpoints, EventReader, RecordedEvent};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The stream of every forwarder.
pub const FORWARDERS_STREAM: &str = "forwarders";

/// The lease of the process that forwards.
pub const FORWARDER_LEASE: &str = "forwarders";

/// The envelope's version.
pub const ENVELOPE_VERSION: u32 = 1;

/// Events read per page (a page is also what a crash may resend).
const PAGE: usize = 100;

/// The forwarders (folded from their stream) and the stream's version.
pub async fn forwarders_of_stream(log: &dyn EventReader) -> Result<(Forwarders, u64), AppError> {
    fold_stream(
        log,
        FORWARDERS_STREAM,
        Forwarders::default(),
        |forwarders, event, position| forwarders.evolve(event, position),
    )
    .await
}

/// Forwarder `forwarder_id`'s dead letters (folded from their stream) and the
/// stream's version.
pub async fn dead_letters_of_stream(
    log: &dyn EventReader,
    forwarder_id: u64,
) -> Result<(DeadLetters, u64), AppError> {
    fold_stream(
        log,
        &dead_letters_stream(forwarder_id),
        DeadLetters::default(),
        |letters, event, _| letters.evolve(event),
    )
    .await
}

/// Whether `stream` is never forwarded: the forwarders' own bookkeeping, and
/// credentials (password hashes, sessions).
fn is_never_forwarded(stream: &str) -> bool {
    stream == FORWARDERS_STREAM
        || stream
            .strip_prefix("forwarder-")
            .is_some_and(|id| id.parse::<u64>().is_ok())
        || hayabusa_domain::login::CREDENTIAL_STREAM_PREFIXES
            .iter()
            .any(|prefix| stream.starts_with(prefix))
}

/// The room an event belongs to, if any (from its stored JSON).
fn room_of(payload: &Value) -> Option<u64> {
    payload["room_id"].as_u64()
}

/// Whether `forwarder` wants `event`.
pub fn wanted(forwarder: &Forwarder, event: &RecordedEvent, payload: &Value) -> bool {
    if is_never_forwarded(&event.stream) {
        return false;
    }
    let type_ok =
        forwarder.event_types.is_empty() || forwarder.event_types.contains(&event.event_type);
    let room_ok = forwarder.room_ids.is_empty()
        || room_of(payload).is_some_and(|room| forwarder.room_ids.iter().any(|r| r.0 == room));
    type_ok && room_ok
}

/// The forwarded form of `event` (version 1): `{"version", "id", "type", "position",
/// "stream", "time_ms", "payload"}`; `payload` is the stored event (its `type` tag
/// included), `id` is stable across redeliveries.
pub fn envelope(event: &RecordedEvent, payload: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "version": ENVELOPE_VERSION,
        "id": event.position.to_string(),
        "type": event.event_type,
        "position": event.position,
        "stream": event.stream,
        "time_ms": event.recorded_at_ms,
        "payload": payload,
    }))
    .expect("JSON values serialize")
}

/// The Standard Webhooks headers of a forwarded body.
pub fn signed_headers(secret: &str, id: &str, body: &[u8], now: i64) -> Vec<(String, String)> {
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine.decode(secret).unwrap_or_default();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{now}.").as_bytes());
    mac.update(body);
    vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("user-agent".to_owned(), "Hayabusa-Forwarder/1".to_owned()),
        ("webhook-id".to_owned(), id.to_owned()),
        ("webhook-timestamp".to_owned(), now.to_string()),
        (
            "webhook-signature".to_owned(),
            format!("v1,{}", engine.encode(mac.finalize().into_bytes())),
        ),
    ]
}

/// What the forwarders' workers need.
pub struct ForwarderWorkers {
    log: Arc<dyn EventReader>,
    checkpoints: Arc<dyn ConsumerCheckpoints>,
    commands: Arc<CommandHandler>,
    secret: TokenSecret,
    transport: Arc<dyn WebhookTransport>,
    schedule: RetrySchedule,
}

/// How sending one event ended.
#[derive(PartialEq, Eq)]
enum Forwarded {
    Delivered,
    DeadLettered,
    Stopped,
}

/// One forwarder's worker at work.
struct Worker<'a> {
    workers: &'a ForwarderWorkers,
    forwarder: &'a Forwarder,
    secret: String,
    destination: Destination,
    /// The dead letters as last read, and their stream's version then.
    letters: (DeadLetters, u64),
}

impl Worker<'_> {
    /// Sends `event` (wanted by the forwarder) with retries; the dead letters get it
    /// if the schedule runs out.
    async fn send(
        &mut self,
        event: &RecordedEvent,
        payload: Value,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<Forwarded, AppError> {
        let id = format!("{}-{}", self.forwarder.forwarder_id, event.position);
        let body = envelope(event, payload);
        let sent = send_with_retries(
            self.workers.transport.as_ref(),
            &self.workers.schedule,
            &self.destination,
            &id,
            &body,
            event.recorded_at_ms,
            |now| {
                (
                    self.forwarder.url.clone(),
                    signed_headers(&self.secret, &id, &body, now),
                )
            },
            stop,
        )
        .await;
        match sent {
            // A forwarder's receiver answering 410 is a failure (not `gone_ends`).
            Sent::Delivered | Sent::Gone => Ok(Forwarded::Delivered),
            Sent::Stopped => Ok(Forwarded::Stopped),
            Sent::GivenUp { failures, reason } => {
                self.workers
                    .commands
                    .record_dead_letter(
                        self.forwarder.forwarder_id,
                        event.position,
                        event.event_type.clone(),
                        event.stream.clone(),
                        failures,
                        reason,
                    )
                    .await?;
                Ok(Forwarded::DeadLettered)
            }
        }
    }

    /// Sends the dead letters an administrator asked to replay. False if the worker
    /// was stopped.
    async fn replay(
        &mut self,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<bool, AppError> {
        let forwarder_id = self.forwarder.forwarder_id;
        let (letters, version) = std::mem::take(&mut self.letters);
        self.letters = fold_stream_from(
            self.workers.log.as_ref(),
            &dead_letters_stream(forwarder_id),
            letters,
            version,
            |letters, event, _| letters.evolve(event),
        )
        .await?;
        metrics::gauge!("hayabusa_forwarder_dead_letters", "destination" => self.destination.name().to_owned())
            .set(self.letters.0.letters.len() as f64);
        let to_replay: Vec<u64> = self.letters.0.to_replay().map(|l| l.position).collect();
        for position in to_replay {
            let found = self
                .workers
                .log
                .read_all(position.saturating_sub(1), 1)
                .await?
                .into_iter()
                .find(|event| event.position == position);
            let Some(event) = found else {
                // Not in the log any more: it stays a dead letter, saying so.
                self.workers
                    .commands
                    .record_dead_letter(
                        forwarder_id,
                        position,
                        String::new(),
                        String::new(),
                        0,
                        "the event is no longer in the log".into(),
                    )
                    .await?;
                continue;
            };
            let payload: Value = serde_json::from_slice(&event.data).unwrap_or(Value::Null);
            match self.send(&event, payload, stop).await? {
                Forwarded::Stopped => return Ok(false),
                Forwarded::DeadLettered => {}
                Forwarded::Delivered => {
                    self.workers
                        .commands
                        .dead_letter_delivered(forwarder_id, position)
                        .await?;
                }
            }
        }
        Ok(true)
    }
}

impl ForwarderWorkers {
    /// Workers over these parts.
    pub fn new(
        log: Arc<dyn EventReader>,
        checkpoints: Arc<dyn ConsumerCheckpoints>,
        commands: Arc<CommandHandler>,
        transport: Arc<dyn WebhookTransport>,
        schedule: RetrySchedule,
    ) -> Arc<Self> {
        let secret = commands.secret().clone();
        Arc::new(ForwarderWorkers {
            log,
            checkpoints,
            commands,
            secret,
            transport,
            schedule,
        })
    }

    /// Forwards `forwarder`'s events until `stop` says true; store failures are
    /// retried after a pause.
    async fn run(
        self: Arc<Self>,
        forwarder: Forwarder,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let outcome = self.forward(&forwarder, &mut stop).await;
            if *stop.borrow() {
                return;
            }
            if let Err(error) = outcome {
                tracing::warn!(%error, forwarder = forwarder.forwarder_id, "forwarding paused");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    async fn forward(
        &self,
        forwarder: &Forwarder,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), AppError> {
        let name = format!("forwarder-{}", forwarder.forwarder_id);
        let label = forwarder.forwarder_id.to_string();
        let mut worker = Worker {
            workers: self,
            forwarder,
            secret: self.secret.forwarder_secret(forwarder.forwarder_id),
            destination: Destination::new("forwarder", label.clone(), false),
            letters: (DeadLetters::default(), 0),
        };
        let mut after = match self.checkpoints.consumer_checkpoint(&name).await? {
            Some(saved) => saved.parse().unwrap_or(forwarder.created_at_position),
            None => forwarder.created_at_position,
        };
        let mut head = self.log.subscribe();
        loop {
            if !worker.replay(stop).await? {
                return Ok(());
            }
            let page = self.log.read_all(after, PAGE).await?;
            for event in &page {
                let payload: Value = serde_json::from_slice(&event.data).unwrap_or(Value::Null);
                if wanted(forwarder, event, &payload)
                    && worker.send(event, payload, stop).await? == Forwarded::Stopped
                {
                    return Ok(());
                }
                after = event.position;
            }
            #[allow(clippy::cast_precision_loss)]
            let behind = self.log.head().saturating_sub(after) as f64;
            metrics::gauge!("hayabusa_forwarder_lag_events", "destination" => label.clone())
                .set(behind);
            if let Some(last) = page.last() {
                self.checkpoints
                    .save_consumer_checkpoint(&name, &last.position.to_string())
                    .await?;
                continue;
            }
            worker.destination.set_lag(None);
            tokio::select! {
                _ = head.changed() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.wait_for(|stop| *stop) => return Ok(()),
            }
        }
    }

    /// Runs a worker for every forwarder, following them as they change, until
    /// `shutdown` says true.
    pub async fn run_all(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut running: HashMap<
            u64,
            (
                tokio::sync::watch::Sender<bool>,
                tokio::task::JoinHandle<()>,
            ),
        > = HashMap::new();
        loop {
            match forwarders_of_stream(self.log.as_ref()).await {
                Ok((forwarders, _)) => {
                    running.retain(|id, (stop, task)| {
                        let keep = forwarders.forwarders.contains_key(id) && !task.is_finished();
                        if !keep {
                            let _ = stop.send(true);
                        }
                        keep
                    });
                    for (id, forwarder) in &forwarders.forwarders {
                        running.entry(*id).or_insert_with(|| {
                            let (stop, stopped) = tokio::sync::watch::channel(false);
                            let task =
                                tokio::spawn(Arc::clone(&self).run(forwarder.clone(), stopped));
                            (stop, task)
                        });
                    }
                    metrics::gauge!("hayabusa_forwarders_active").set(running.len() as f64);
                }
                Err(error) => tracing::warn!(%error, "reading the forwarders"),
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

    /// Runs [`ForwarderWorkers::run_all`] whenever this process holds the
    /// forwarder lease, until `shutdown` says true.
    pub async fn run_leased(
        self: Arc<Self>,
        leases: Arc<dyn hayabusa_store::Leases>,
        holder: String,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        run_under_lease(leases, FORWARDER_LEASE, holder, shutdown, |stopped| {
            tokio::spawn(Arc::clone(&self).run_all(stopped))
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hayabusa_domain::{AccountId, RoomId};

    fn recorded(event_type: &str, stream: &str, data: &str) -> RecordedEvent {
        RecordedEvent {
            position: 9,
            stream: stream.into(),
            stream_version: 1,
            event_type: event_type.into(),
            schema_version: 1,
            data: data.as_bytes().to_vec(),
            recorded_at_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn filters_by_type_and_room_and_never_forward_their_own_stream() {
        let mut forwarder = Forwarder {
            forwarder_id: 1,
            url: "https://x.example".into(),
            event_types: vec![],
            room_ids: vec![],
            created_by: AccountId(1),
            created_at_position: 0,
        };
        let posted = recorded("message_posted", "room-5", r#"{"room_id":5}"#);
        let account = recorded("account_created", "account-2", r#"{"account_id":2}"#);
        let own = recorded("forwarder_created", FORWARDERS_STREAM, "{}");
        let session = recorded("session_started", "sessions-2", r#"{"account_id":2}"#);
        let login = recorded("login_claimed", "login-ab12", r#"{"account_id":2}"#);
        let payload = |e: &RecordedEvent| serde_json::from_slice::<Value>(&e.data).unwrap();
        assert!(!wanted(&forwarder, &session, &payload(&session)));
        assert!(!wanted(&forwarder, &login, &payload(&login)));
        assert!(wanted(&forwarder, &posted, &payload(&posted)));
        assert!(wanted(&forwarder, &account, &payload(&account)));
        assert!(!wanted(&forwarder, &own, &Value::Null));
        forwarder.room_ids = vec![RoomId(5)];
        assert!(wanted(&forwarder, &posted, &payload(&posted)));
        assert!(!wanted(&forwarder, &account, &payload(&account)));
        forwarder.room_ids = vec![];
        forwarder.event_types = vec!["account_created".into()];
        assert!(!wanted(&forwarder, &posted, &payload(&posted)));
        assert!(wanted(&forwarder, &account, &payload(&account)));
        let body: Value = serde_json::from_slice(&envelope(&posted, payload(&posted))).unwrap();
        assert_eq!(body["version"], 1);
        assert_eq!(body["id"], "9");
        assert_eq!(body["type"], "message_posted");
        assert_eq!(body["stream"], "room-5");
        assert_eq!(body["payload"]["room_id"], 5);
    }
}
