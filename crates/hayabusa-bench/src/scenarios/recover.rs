//! `recover`: time from `kill -9` to ready with a large log.
//!
//! Runs the real binary on the bulk data directory until it has projected the whole
//! log, makes a few writes, kills it with SIGKILL, starts it again and measures the
//! time from the kill until `/healthz` answers and a write succeeds (polled every few
//! milliseconds). The write goes to a small room; the first write to a room holding
//! part of the bulk history (its write-side state is rebuilt from its stream on first
//! use) is timed separately.

use super::{Context, wait_projected};
use crate::bulk_log::BulkLog;
use crate::report::{Row, thousands};
use crate::server::ServerProcess;
use anyhow::bail;
use std::time::{Duration, Instant};

/// How long the restarted server may take to accept a write.
const READY_LIMIT: Duration = Duration::from_secs(300);

/// Kills and restarts the server on the bulk log.
pub async fn run(context: &Context, bulk: &BulkLog) -> anyhow::Result<Row> {
    let first_start = Instant::now();
    let server =
        ServerProcess::spawn_hayabusa(&context.server, &bulk.dir, &context.log_path("recover-1"))?;
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

    let killed = Instant::now();
    server.kill9().await?;
    let server =
        ServerProcess::spawn_hayabusa(&context.server, &bulk.dir, &context.log_path("recover-2"))?;
    server.wait_up(READY_LIMIT).await?;
    let healthy = killed.elapsed();
    let api = server.api()?;
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
    let cold = Instant::now();
    api.post_message(
        &bulk.admin_token,
        bulk.bulk_room,
        "after the crash, big room",
    )
    .await
    .map_err(|reason| anyhow::anyhow!("writing to a big room after the crash: {reason}"))?;
    let cold = cold.elapsed();
    let health = api.health().await?;
    server.stop().await?;
    eprintln!(
        "  kill -9 → healthz {:.0} ms, → first write {:.0} ms; first write to a {}-message room {:.0} ms",
        healthy.as_secs_f64() * 1000.0,
        ready.as_secs_f64() * 1000.0,
        bulk.messages_per_room,
        cold.as_secs_f64() * 1000.0
    );
    let works = health.log_head >= bulk.head + 12;
    let mut result = format!(
        "{:.0} ms (/healthz at {:.0} ms); first write to a {}-message room: {:.0} ms",
        ready.as_secs_f64() * 1000.0,
        healthy.as_secs_f64() * 1000.0,
        thousands(bulk.messages_per_room as f64),
        cold.as_secs_f64() * 1000.0
    );
    if !works {
        result.push_str(&format!(
            "; **log head {} after the restart, expected ≥ {}**",
            health.log_head,
            bulk.head + 12
        ));
    }
    Ok(Row::new(
        "recover",
        format!(
            "kill -9 → ready (/healthz answers and a write succeeds), {} events in the log",
            thousands(bulk.head as f64)
        ),
        "1M+ events in the log; ready in seconds",
        result,
        format!(
            "first start on the same log: up and projected in {:.1} s",
            projected_in.as_secs_f64()
        ),
        works,
    ))
}
