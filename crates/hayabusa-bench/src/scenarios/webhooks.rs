//! `webhooks`: post → webhook delivery, and the catch-up after a receiver outage.
//!
//! Ten accounts, each with one webhook (`message_created`) pointing at a receiver in
//! this process; rooms with all ten as members; posts open-loop at the deliver rate
//! (default 1,000/s, so 10,000 deliveries/s) for the deliver duration, each body
//! carrying its intended send time. Latency is receipt − intended send time, over
//! every delivery; every post must reach all ten webhooks. Then the receiver answers
//! 503 for a while as posts go on at a quarter of the rate (the workers back off),
//! and the catch-up rate is the deliveries per second from its reopening until
//! everything is in. A forwarder of every `message_posted` to the same receiver
//! (another path) is timed and counted on its own, through both phases.

use super::Context;
use crate::load::{self, OpenLoop, quantile_ms, request_fn};
use crate::report::{Row, thousands};
use crate::server::ServerProcess;
use crate::setup;
use anyhow::Context as _;
use axum::body::Bytes;
use axum::http::StatusCode;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Webhooks (each its own account).
const WEBHOOKS: usize = 10;

/// Marks the benchmark's posts; followed by `{phase} {sequence} {intended µs since base}`.
const BODY_PREFIX: &str = "bench-hook ";

/// Where the forwarder delivers (the webhooks: anywhere else).
const FORWARDER_PATH: &str = "/forward";

/// How long the receiver refuses in the catch-up phase.
const OUTAGE: Duration = Duration::from_secs(5);

/// What one kind of destination (the webhooks, the forwarder) got.
struct Sink {
    latency: Mutex<Histogram<u64>>,
    /// Deliveries per phase (0: the measured step, 1: catch-up).
    count: [AtomicU64; 2],
    /// When the first and the last delivery of the catch-up phase arrived.
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
}

impl Sink {
    fn new() -> Sink {
        Sink {
            latency: Mutex::new(load::histogram()),
            count: [AtomicU64::new(0), AtomicU64::new(0)],
            first: Mutex::new(None),
            last: Mutex::new(None),
        }
    }

    /// The catch-up: deliveries, the time from `reopened` to the last one, and the
    /// rate from the first to the last.
    fn catch_up(&self, reopened: Instant) -> (u64, Duration, f64) {
        let caught_up = self.count[1].load(Ordering::Relaxed);
        let (first, last) = (*self.first.lock(), *self.last.lock());
        let took = last.map_or(Duration::ZERO, |last| {
            last.saturating_duration_since(reopened)
        });
        // The rate once deliveries resumed (the first retries wait out their backoff).
        let draining = match (first, last) {
            (Some(first), Some(last)) => last.saturating_duration_since(first),
            _ => Duration::ZERO,
        };
        (
            caught_up,
            took,
            caught_up as f64 / draining.as_secs_f64().max(0.001),
        )
    }
}

/// What the receiver saw.
struct Seen {
    base: Instant,
    refusing: AtomicBool,
    webhooks: Sink,
    forwarder: Sink,
}

fn due_of(body: &[u8]) -> Option<(usize, Duration)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let text = value["webhook_event"]["body"]
        .as_str()
        .or_else(|| value["payload"]["body"].as_str())?;
    let mut fields = text.strip_prefix(BODY_PREFIX)?.split_whitespace();
    let phase = fields.next()?.parse().ok()?;
    let micros: u64 = fields.nth(1)?.parse().ok()?;
    Some((phase, Duration::from_micros(micros)))
}

async fn receive(seen: Arc<Seen>, uri: axum::http::Uri, body: Bytes) -> StatusCode {
    if seen.refusing.load(Ordering::Relaxed) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let sink = if uri.path() == FORWARDER_PATH {
        &seen.forwarder
    } else {
        &seen.webhooks
    };
    if let Some((phase, due)) = due_of(&body)
        && let Some(count) = sink.count.get(phase)
    {
        if phase == 0 {
            let late = seen.base.elapsed().saturating_sub(due);
            load::record(&mut sink.latency.lock(), late);
        } else {
            let now = Instant::now();
            sink.first.lock().get_or_insert(now);
            *sink.last.lock() = Some(now);
        }
        count.fetch_add(1, Ordering::Relaxed);
    }
    StatusCode::OK
}

/// Waits until `count` reaches `expected` (at most `limit`).
async fn wait_for(count: &AtomicU64, expected: u64, limit: Duration) {
    let started = Instant::now();
    while count.load(Ordering::Relaxed) < expected && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the scenario against a fresh server.
pub async fn run(context: &Context) -> anyhow::Result<Row> {
    let sizes = &context.sizes;
    let seen = Arc::new(Seen {
        base: Instant::now(),
        refusing: AtomicBool::new(false),
        webhooks: Sink::new(),
        forwarder: Sink::new(),
    });
    let receiver = {
        let seen = seen.clone();
        axum::Router::new()
            .fallback(move |uri: axum::http::Uri, body: Bytes| receive(seen.clone(), uri, body))
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver_url = format!("http://{}/hook", listener.local_addr()?);
    let forwarder_url = format!("http://{}{FORWARDER_PATH}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let data_dir = context.fresh_dir("webhooks")?;
    let engines = context.engines().await;
    let binary = context.server_on(&engines);
    let server = ServerProcess::spawn_hayabusa_with(
        &binary,
        &data_dir,
        &context.log_path("webhooks"),
        &[
            "--webhook-allow-private-networks".into(),
            "--webhook-allow-http".into(),
        ],
    )?;
    server.wait_up(Duration::from_secs(120)).await?;
    let admin = crate::server::admin_token(&data_dir).await?;
    let api = server.api()?;
    let accounts = setup::accounts(&api, &admin, "hook", WEBHOOKS).await?;
    let rooms = setup::rooms(&api, "hook", vec![accounts.clone(); sizes.deliver_rooms]).await?;
    for account in &accounts {
        api.create_webhook(&account.token, &receiver_url, "message_created")
            .await
            .context("creating the benchmark's webhooks")?;
    }
    api.create_forwarder(&admin, &forwarder_url, "message_posted")
        .await
        .context("creating the benchmark's forwarder")?;
    eprintln!(
        "  {WEBHOOKS} webhooks, {} rooms with all their accounts",
        rooms.len()
    );
    // The server picks new webhooks up within half a second: let it.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let rooms = Arc::new(rooms);
    let cpu = server.cpu_probe();
    let post_at = |phase: usize, rate: f64, duration: Duration| {
        let (api, rooms, base) = (api.clone(), Arc::clone(&rooms), seen.base);
        load::run_measured(
            OpenLoop::new(rate, duration),
            request_fn(move |i, intended| {
                let (api, rooms) = (api.clone(), Arc::clone(&rooms));
                Box::pin(async move {
                    let index = usize::try_from(i).unwrap_or(0);
                    let room = &rooms[index % rooms.len()];
                    let author = &room.members[(index / rooms.len()) % room.members.len()];
                    let due = intended.saturating_duration_since(base).as_micros();
                    let body = format!("{BODY_PREFIX}{phase} {i} {due}");
                    api.post_message(&author.token, room.id, &body).await
                })
            }),
            &cpu,
        )
    };

    // 1. Delivery latency at the target rate.
    let posts = post_at(0, sizes.deliver_rate, sizes.deliver_duration).await;
    let expected = posts.ok * WEBHOOKS as u64;
    wait_for(&seen.webhooks.count[0], expected, Duration::from_secs(60)).await;
    wait_for(&seen.forwarder.count[0], posts.ok, Duration::from_secs(60)).await;
    let delivered = seen.webhooks.count[0].load(Ordering::Relaxed);
    let forwarded = seen.forwarder.count[0].load(Ordering::Relaxed);
    let latency = seen.webhooks.latency.lock().clone();
    let forwarder_latency = seen.forwarder.latency.lock().clone();
    // The forwarder's deliveries count too (one per post).
    let cpu_per_delivery = posts
        .server_cpu
        .map(|cpu| cpu.as_secs_f64() * 1e6 / (expected + forwarded).max(1) as f64);
    eprintln!(
        "  {} posts/s → {delivered} of {expected} deliveries: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        thousands(posts.rate),
        quantile_ms(&latency, 0.5),
        quantile_ms(&latency, 0.99),
        latency.max() as f64 / 1000.0
    );
    eprintln!(
        "  forwarder: {forwarded} of {} events: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        posts.ok,
        quantile_ms(&forwarder_latency, 0.5),
        quantile_ms(&forwarder_latency, 0.99),
        forwarder_latency.max() as f64 / 1000.0
    );

    // 2. Catch-up after an outage of the receiver.
    seen.refusing.store(true, Ordering::Relaxed);
    let outage_posts = post_at(1, (sizes.deliver_rate / 4.0).max(1.0), OUTAGE).await;
    seen.refusing.store(false, Ordering::Relaxed);
    let reopened = Instant::now();
    let backlog = outage_posts.ok * WEBHOOKS as u64;
    wait_for(&seen.webhooks.count[1], backlog, Duration::from_secs(120)).await;
    wait_for(
        &seen.forwarder.count[1],
        outage_posts.ok,
        Duration::from_secs(120),
    )
    .await;
    let (caught_up, took, catch_up_rate) = seen.webhooks.catch_up(reopened);
    let (forwarder_caught_up, forwarder_took, forwarder_rate) = seen.forwarder.catch_up(reopened);
    eprintln!(
        "  catch-up: {caught_up} of {backlog} deliveries, the last {:.1} s after the receiver reopened; {}/s once they resumed",
        took.as_secs_f64(),
        thousands(catch_up_rate)
    );
    eprintln!(
        "  forwarder catch-up: {forwarder_caught_up} of {} events, the last {:.1} s after the receiver reopened; {}/s once they resumed",
        outage_posts.ok,
        forwarder_took.as_secs_f64(),
        thousands(forwarder_rate)
    );
    server.stop().await?;

    let mut problems = Vec::new();
    if posts.errors > 0 || outage_posts.errors > 0 {
        problems.push(format!(
            "{} posts failed ({})",
            posts.errors + outage_posts.errors,
            posts
                .first_error
                .clone()
                .or(outage_posts.first_error.clone())
                .unwrap_or_default()
        ));
    }
    if delivered < expected {
        problems.push(format!("{} deliveries missing", expected - delivered));
    }
    if forwarded < posts.ok {
        problems.push(format!("{} events not forwarded", posts.ok - forwarded));
    }
    if forwarder_caught_up < outage_posts.ok {
        problems.push(format!(
            "{} events not forwarded after the outage",
            outage_posts.ok - forwarder_caught_up
        ));
    }
    if caught_up < backlog {
        problems.push(format!(
            "{} deliveries missing after the outage",
            backlog - caught_up
        ));
    }
    let works = posts.ok > 0 && problems.is_empty();
    let mut result = format!(
        "p50 {:.2} ms, p99 {:.2} ms at {}/s × {WEBHOOKS} webhooks ({} deliveries{}); \
         catch-up after a {} s outage: {} deliveries, all in {:.1} s after it \
         (retries back off), {}/s once resumed; forwarder (one, every post): p99 {:.2} ms, \
         catch-up {}/s",
        quantile_ms(&latency, 0.5),
        quantile_ms(&latency, 0.99),
        thousands(posts.rate),
        thousands(delivered as f64),
        cpu_per_delivery.map_or_else(String::new, |us| format!(
            ", server CPU {us:.0} µs per delivery incl. the post"
        )),
        OUTAGE.as_secs(),
        thousands(caught_up as f64),
        took.as_secs_f64(),
        thousands(catch_up_rate),
        quantile_ms(&forwarder_latency, 0.99),
        thousands(forwarder_rate)
    );
    if !problems.is_empty() {
        result.push_str(&format!("; **{}**", problems.join("; ")));
    }
    Ok(Row::new(
        "webhooks",
        format!(
            "post → webhook delivery ({WEBHOOKS} webhooks, message_created, {} rooms), from intended send time; catch-up after the receiver's outage",
            sizes.deliver_rooms
        ),
        "p99 ≤ 50 ms at 1,000 posts/s × 10 webhooks",
        result,
        "–",
        works,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_benchmark_bodies_carry_a_due_time() {
        let body = br#"{"webhook_event":{"body":"bench-hook 1 7 1500"}}"#;
        assert_eq!(due_of(body), Some((1, Duration::from_micros(1500))));
        assert_eq!(due_of(br#"{"webhook_event":{"body":"hello"}}"#), None);
        assert_eq!(due_of(b"not json"), None);
    }
}
