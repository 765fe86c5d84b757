//! `deliver`: post → receipt on every member's sync WebSocket.
//!
//! Rooms of ten members each; every member holds `GET /v2/sync/ws?since=REV` open
//! (REV from `GET /v2/sync`). Posts go out open-loop at a fixed rate, each body
//! carrying its step and its *intended* send time, so a receipt's latency is measured
//! from when the post was due, not from when it was sent. Every post must reach all
//! members: a missing receipt or a socket the server closed is an error. The headline
//! is p50/p99 of post → receipt at the target rate; in a full run the same sockets
//! first take a quarter and a half of that rate, to show the latency before the
//! server is loaded.
//!
//! The sockets and the steps ([`Delivery`]) are shared with `cluster`, which posts
//! through one API node and holds the sockets on another.

use super::Context;
use crate::client::{Api, Socket};
use crate::load::{self, CpuProbe, Errors, OpenLoop, StepOutcome, quantile_ms, request_fn};
use crate::report::{Row, thousands};
use crate::setup::{self, Room};
use anyhow::Context as _;
use futures::{StreamExt, TryStreamExt, stream};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Deserialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

/// Marks the benchmark's posts; followed by `{step} {sequence} {intended µs since base}`.
const BODY_PREFIX: &str = "bench-deliver ";

/// How long receipts may trail the last post of a step.
const RECEIPT_GRACE: Duration = Duration::from_secs(15);

/// Receipts of one rate step, across all sockets.
struct StepReceipts {
    latency: Mutex<Histogram<u64>>,
    count: AtomicU64,
}

/// Receipts counted across all sockets.
struct Receipts {
    steps: Vec<StepReceipts>,
    errors: Errors,
}

/// The fields of an op the benchmark looks at.
#[derive(Deserialize)]
struct Op {
    #[serde(rename = "type")]
    op_type: String,
    #[serde(default)]
    body: Option<String>,
}

/// What one rate step measured.
pub struct Delivered {
    /// The posts of the step.
    pub posts: StepOutcome,
    /// Receipts due: every acknowledged post times its room's members.
    pub expected: u64,
    /// Receipts counted by the end of the step's wait.
    pub received: u64,
    /// Post → receipt latency from the post's intended send time, µs.
    pub latency: Histogram<u64>,
}

impl Delivered {
    fn summary(&self) -> String {
        format!(
            "{}/s: p50 {:.2} ms, p99 {:.2} ms",
            thousands(self.posts.rate),
            quantile_ms(&self.latency, 0.5),
            quantile_ms(&self.latency, 0.99)
        )
    }

    /// p99 of post → receipt, ms.
    pub fn p99_ms(&self) -> f64 {
        quantile_ms(&self.latency, 0.99)
    }
}

/// The rates of a run: the target rate; in a full run a quarter and a half of it first.
pub fn rates(context: &Context) -> Vec<f64> {
    let rate = context.sizes.deliver_rate;
    if context.args.quick {
        vec![rate]
    } else {
        vec![(rate / 4.0).round(), (rate / 2.0).round(), rate]
    }
}

/// Runs the scenario against a fresh server.
pub async fn run(context: &Context) -> anyhow::Result<Row> {
    let sizes = &context.sizes;
    let rates = rates(context);
    let started = context.start_server("deliver").await?;
    let api = started.api.clone();
    let rooms = setup::rooms_with_fresh_members(
        &api,
        &started.admin_token,
        "deliver",
        sizes.deliver_rooms,
        sizes.deliver_members,
    )
    .await?;
    let delivery = Delivery::open(&api, &api, rooms, rates.len(), sizes.deliver_duration).await?;
    let cpu = started.server.cpu_probe();
    let mut steps = Vec::new();
    for (step, &rate) in rates.iter().enumerate() {
        steps.push(delivery.step(step, rate, &cpu).await);
    }
    let problems = delivery.finish(&steps).await;
    started.server.stop().await?;

    let (result, works) = outcome(&steps, &problems, "post incl. fan-out")?;
    Ok(Row::new(
        "deliver",
        format!(
            "post → message_created on every member's sync WebSocket ({} rooms × {} members), from intended send time",
            sizes.deliver_rooms, sizes.deliver_members
        ),
        format!(
            "≥ {} posts/s, every receipt; p50/p99 reported",
            thousands(1000.0)
        ),
        result,
        "–",
        works,
    ))
}

/// The result text of a run's steps (the last is the headline) and whether it worked:
/// some posts acknowledged and no problem. `cpu_per` names what the server's CPU
/// time, if measured, is divided by.
pub fn outcome(
    steps: &[Delivered],
    problems: &[String],
    cpu_per: &str,
) -> anyhow::Result<(String, bool)> {
    let headline = steps.last().context("no deliver step ran")?;
    let works = headline.posts.ok > 0 && problems.is_empty();
    let mut result = format!(
        "p50 {:.2} ms, p99 {:.2} ms at {}/s ({} receipts; post p50 {:.2} ms, p99 {:.2} ms{})",
        quantile_ms(&headline.latency, 0.5),
        quantile_ms(&headline.latency, 0.99),
        thousands(headline.posts.rate),
        thousands(headline.received as f64),
        headline.posts.p50_ms(),
        headline.posts.p99_ms(),
        super::cpu_note(&headline.posts).replace("request", cpu_per)
    );
    let lower: Vec<String> = steps[..steps.len() - 1]
        .iter()
        .map(Delivered::summary)
        .collect();
    if !lower.is_empty() {
        result.push_str(&format!("; lower rates: {}", lower.join(", ")));
    }
    if !problems.is_empty() {
        result.push_str(&format!("; **{}**", problems.join("; ")));
    }
    Ok((result, works))
}

/// Rooms whose members each hold a sync WebSocket, read for the benchmark's
/// messages, and the posts sent to those rooms, step by step. The sockets may be on
/// another node than the one taking the posts.
pub struct Delivery {
    post_api: Api,
    rooms: Arc<Vec<Room>>,
    members: u64,
    duration: Duration,
    base: Instant,
    receipts: Arc<Receipts>,
    stop: watch::Sender<bool>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Delivery {
    /// Opens a sync socket through `socket_api` for every member of `rooms` (all of
    /// one size) and starts reading them, for `steps` rate steps of `duration` each
    /// whose posts go through `post_api`.
    pub async fn open(
        post_api: &Api,
        socket_api: &Api,
        rooms: Vec<Room>,
        steps: usize,
        duration: Duration,
    ) -> anyhow::Result<Self> {
        let members = rooms.first().context("no rooms")?.members.len();
        anyhow::ensure!(
            rooms.iter().all(|room| room.members.len() == members),
            "the rooms differ in size"
        );
        let accounts: Vec<_> = rooms.iter().flat_map(|room| room.members.clone()).collect();
        let sockets: Vec<Socket> = stream::iter(accounts.iter())
            .map(|account| {
                let api = socket_api.clone();
                async move {
                    let since = api.sync_revision(&account.token).await?;
                    api.open_sync_socket(&account.token, &since).await
                }
            })
            .buffered(32)
            .try_collect()
            .await
            .context("opening the members' sync sockets")?;
        eprintln!(
            "  {} rooms, {} members with a sync socket each",
            rooms.len(),
            sockets.len()
        );

        let base = Instant::now();
        let receipts = Arc::new(Receipts {
            steps: (0..steps)
                .map(|_| StepReceipts {
                    latency: Mutex::new(load::histogram()),
                    count: AtomicU64::new(0),
                })
                .collect(),
            errors: Errors::default(),
        });
        let (stop, stopped) = watch::channel(false);
        let readers = sockets
            .into_iter()
            .map(|socket| {
                tokio::spawn(read_receipts(
                    socket,
                    base,
                    Arc::clone(&receipts),
                    stopped.clone(),
                ))
            })
            .collect();
        Ok(Delivery {
            post_api: post_api.clone(),
            rooms: Arc::new(rooms),
            members: members as u64,
            duration,
            base,
            receipts,
            stop,
            readers,
        })
    }

    /// Posts open-loop at `rate` as step `step` (below the `steps` given to
    /// [`Delivery::open`]), then waits for its receipts; `cpu` reads the server's CPU
    /// time around the posts.
    pub async fn step(&self, step: usize, rate: f64, cpu: &CpuProbe) -> Delivered {
        let base = self.base;
        let post_api = self.post_api.clone();
        let post_rooms = Arc::clone(&self.rooms);
        let posts = load::run_measured(
            OpenLoop::new(rate, self.duration),
            request_fn(move |i, intended| {
                let api = post_api.clone();
                let rooms = Arc::clone(&post_rooms);
                Box::pin(async move {
                    let index = usize::try_from(i).unwrap_or(0);
                    let room = &rooms[index % rooms.len()];
                    let author = &room.members[(index / rooms.len()) % room.members.len()];
                    let due = intended.saturating_duration_since(base).as_micros();
                    let body = format!("{BODY_PREFIX}{step} {i} {due}");
                    api.post_message(&author.token, room.id, &body).await
                })
            }),
            cpu,
        )
        .await;
        let expected = posts.ok * self.members;
        let counted = &self.receipts.steps[step];
        let waiting = Instant::now();
        while counted.count.load(Ordering::Relaxed) < expected && waiting.elapsed() < RECEIPT_GRACE
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Late duplicates, if any, would still be counted until the end.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let delivered = Delivered {
            expected,
            received: counted.count.load(Ordering::Relaxed),
            latency: counted.latency.lock().clone(),
            posts,
        };
        eprintln!(
            "  posts: {}; receipts: {} of {}, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            delivered.posts.summary(),
            delivered.received,
            delivered.expected,
            quantile_ms(&delivered.latency, 0.5),
            quantile_ms(&delivered.latency, 0.99),
            delivered.latency.max() as f64 / 1000.0
        );
        delivered
    }

    /// Closes the sockets and lists what went wrong in `steps` (as returned by
    /// [`Delivery::step`], in step order): failed posts, missing or extra receipts
    /// (counted again, with those that came after a step's wait), socket errors.
    pub async fn finish(self, steps: &[Delivered]) -> Vec<String> {
        let _ = self.stop.send(true);
        for reader in self.readers {
            let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        }
        let mut problems = Vec::new();
        for (step, delivered) in steps.iter().enumerate() {
            let rate = thousands(delivered.posts.rate);
            if delivered.posts.errors > 0 {
                problems.push(format!(
                    "at {rate}/s {} posts failed ({})",
                    delivered.posts.errors,
                    delivered.posts.first_error.clone().unwrap_or_default()
                ));
            }
            let received = self.receipts.steps[step].count.load(Ordering::Relaxed);
            if received < delivered.expected {
                problems.push(format!(
                    "at {rate}/s {} receipts missing",
                    delivered.expected - received
                ));
            }
            if received > delivered.expected {
                problems.push(format!(
                    "at {rate}/s {} receipts more than expected",
                    received - delivered.expected
                ));
            }
        }
        let errors = &self.receipts.errors;
        if errors.count() > 0 {
            problems.push(format!(
                "{} socket errors ({})",
                errors.count(),
                errors.first().unwrap_or_default()
            ));
        }
        problems
    }
}

/// Reads one member's socket until told to stop, timing the benchmark's messages.
/// Reading also answers the server's pings (tungstenite queues the pong).
async fn read_receipts(
    mut socket: Socket,
    base: Instant,
    receipts: Arc<Receipts>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            frame = socket.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let received = base.elapsed();
                    if let Some((step, due)) = due_of(&text)
                        && let Some(counted) = receipts.steps.get(step)
                    {
                        load::record(&mut counted.latency.lock(), received.saturating_sub(due));
                        counted.count.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    receipts.errors.add(format!("the server closed a socket: {frame:?}"));
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    receipts.errors.add(format!("socket error: {error}"));
                    return;
                }
                None => {
                    receipts.errors.add("a socket ended");
                    return;
                }
            }
        }
    }
    let _ = socket.close(None).await;
}

/// The step and intended send time in a benchmark `message_created` op, if it is one.
fn due_of(text: &str) -> Option<(usize, Duration)> {
    let op: Op = serde_json::from_str(text).ok()?;
    if op.op_type != "message_created" {
        return None;
    }
    let body = op.body?;
    let mut fields = body.strip_prefix(BODY_PREFIX)?.split_whitespace();
    let step = fields.next()?.parse().ok()?;
    let micros: u64 = fields.nth(1)?.parse().ok()?;
    Some((step, Duration::from_micros(micros)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_benchmark_message_ops_carry_a_due_time() {
        let op = r#"{"type":"message_created","room_id":1,"body":"bench-deliver 2 7 1500","revision":"9"}"#;
        assert_eq!(due_of(op), Some((2, Duration::from_micros(1500))));
        assert_eq!(
            due_of(r#"{"type":"mention","room_id":1,"revision":"9"}"#),
            None
        );
        assert_eq!(
            due_of(r#"{"type":"message_created","body":"hello","revision":"9"}"#),
            None
        );
    }
}
