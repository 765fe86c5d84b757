//! `recover`: time from `kill -9` to ready with a large log.
//!
//! Runs the real binary on the bulk data directory until it has projected the whole
//! log, then posts into the big rooms at a steady rate and kills the server with
//! SIGKILL in the middle of that load, so that the WALs are not checkpointed and
//! requests are in flight. It starts the server again and measures, from the kill:
//! `/healthz` answering, the first successful write (to a small room, polled every few
//! milliseconds), and the projector having caught up with the log. Every post that
//! was acknowledged before the kill must still be in the log afterwards. The first
//! write to a room holding part of the bulk history (its write-side state is rebuilt
//! from its stream on first use) is timed separately.

use super::{Context, wait_projected};
use crate::bulk_log::BulkLog;
use crate::load::{self, OpenLoop, request_fn};
use crate::report::{Row, thousands};
use crate::server::ServerProcess;
use anyhow::bail;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the restarted server may take to accept a write.
const READY_LIMIT: Duration = Duration::from_secs(300);

/// How long the load runs before the kill.
const LOAD_BEFORE_KILL: Duration = Duration::from_millis(1500);

/// Kills and restarts the server on the bulk log.
pub async fn run(context: &Context, bulk: &BulkLog) -> anyhow::Result<Row> {
    // On PostgreSQL, the first start projects the bulk log into a fresh database.
    let engines = context.engines_sharing_log(&bulk.engines).await;
    let binary = context.server_on(&engines);
    let first_start = Instant::now();
    let server = ServerProcess::spawn_hayabusa(&binary, &bulk.dir, &context.log_path("recover-1"))?;
    server.wait_up(Duration::from_secs(120)).await?;
    let api = server.api()?;
    wait_projected(&api, bulk.head, context.sizes.projection_timeout).await?;
    let projected_in = first_start.elapsed();
    for i in 0..10 {
        api.post_message(
            &bulk.admin_token,
            bulk.probe_room,
            &format!("before the crash {i}"),
        )
        .await
        .map_err(|reason| anyhow::anyhow!("writing before the crash: {reason}"))?;
    }
    eprintln!(
        "  first start: up and projected in {:.1} s",
        projected_in.as_secs_f64()
    );

    // Posts into the big rooms, still going when the server is killed.
    let rate = if context.args.quick { 50.0 } else { 1000.0 };
    let load_api = api.clone();
    let token = Arc::new(bulk.admin_token.clone());
    let rooms = Arc::new(bulk.bulk_rooms.clone());
    let load = tokio::spawn(load::run(
        OpenLoop {
            timeout: Duration::from_secs(2),
            ..OpenLoop::new(rate, LOAD_BEFORE_KILL + Duration::from_millis(100))
        },
        request_fn(move |i, _| {
            let api = load_api.clone();
            let token = Arc::clone(&token);
            let rooms = Arc::clone(&rooms);
            Box::pin(async move {
                let room = rooms[usize::try_from(i).unwrap_or(0) % rooms.len()];
                api.post_message(&token, room, &format!("during the crash {i}"))
                    .await
            })
        }),
    ));
    tokio::time::sleep(LOAD_BEFORE_KILL).await;

    let killed = Instant::now();
    server.kill9().await?;
    let server = ServerProcess::spawn_hayabusa(&binary, &bulk.dir, &context.log_path("recover-2"))?;
    server.wait_up(READY_LIMIT).await?;
    let healthy = killed.elapsed();
    let api = server.api()?;
    let head_after_restart = api.health().await?.log_head;
    let ready = loop {
        let attempt = api
            .post_message(&bulk.admin_token, bulk.probe_room, "after the crash")
            .await;
        match attempt {
            Ok(()) => break killed.elapsed(),
            Err(reason) if killed.elapsed() > READY_LIMIT => {
                bail!("no write succeeded within {READY_LIMIT:?} of the restart: {reason}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    };
    let head = api.health().await?.log_head;
    wait_projected(&api, head, READY_LIMIT).await?;
    let caught_up = killed.elapsed();
    let crash_load = load.await?;
    let acknowledged = crash_load.ok;
    let cold = Instant::now();
    api.post_message(
        &bulk.admin_token,
        bulk.bulk_rooms[0],
        "after the crash, big room",
    )
    .await
    .map_err(|reason| anyhow::anyhow!("writing to a big room after the crash: {reason}"))?;
    let cold = cold.elapsed();
    server.stop().await?;

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "  {acknowledged} posts acknowledged before the kill; kill -9 → healthz {:.0} ms, → first write {:.0} ms, → projector caught up {:.0} ms; first write to a {}-message room {:.0} ms",
        ms(healthy),
        ms(ready),
        ms(caught_up),
        bulk.messages_per_room,
        ms(cold)
    );
    // The log must hold everything acknowledged: the bulk, the 10 probes, the load's
    // acks (one event each, and one append each).
    let appends = |head: u64| appends_up_to(&engines, head);
    let must_hold = appends(bulk.head) + 10 + acknowledged;
    let durable = appends(head_after_restart) >= must_hold;
    let works = durable && acknowledged > 0;
    let mut result = format!(
        "{:.0} ms (/healthz at {:.0} ms; projector caught up at {:.0} ms); first write to a {}-message room: {:.0} ms",
        ms(ready),
        ms(healthy),
        ms(caught_up),
        thousands(bulk.messages_per_room as f64),
        ms(cold)
    );
    if durable {
        result.push_str(&format!(
            "; all {acknowledged} posts acknowledged before the kill survived"
        ));
    } else {
        result.push_str(&format!(
            "; **log head {head_after_restart} after the restart, but {must_hold} appends were acknowledged**"
        ));
    }
    if acknowledged == 0 {
        result.push_str(&format!(
            "; **no post was acknowledged during the load before the kill ({})**",
            crash_load.first_error.unwrap_or_default()
        ));
    }
    Ok(Row::new(
        "recover",
        format!(
            "kill -9 under {}/s posts → ready (/healthz answers and a write succeeds), {} events in the log",
            thousands(rate),
            thousands(bulk.events as f64)
        ),
        "1M+ events in the log; ready in seconds; nothing acknowledged lost",
        result,
        format!(
            "first start on the same log: up and projected in {:.1} s",
            projected_in.as_secs_f64()
        ),
        works,
    ))
}

/// How many one-event appends a log with this head holds, as far as the head tells:
/// SQLite positions count events (dense); JetStream positions carry the stream
/// sequence, which counts appends.
fn appends_up_to(engines: &super::Engines, head: u64) -> u64 {
    if engines.nats.is_some() {
        hayabusa_nats::position::sequence_of(head)
    } else {
        head
    }
}
