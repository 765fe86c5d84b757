//! `idle`: server memory per idle, authenticated sync WebSocket.
//!
//! Reads the server's `VmRSS` once its accounts exist, opens N
//! `GET /v2/sync/ws?since=REV&token=TOKEN` connections (spread over many accounts, as
//! many devices would be), lets it settle, checks that every connection is still open,
//! reads `VmRSS` again and divides the growth by N. Each client socket keeps reading
//! so that the server's pings are answered and nothing is closed as dead.

use super::{Context, open_files_limit};
use crate::client::Socket;
use crate::report::{Row, thousands};
use crate::setup;
use anyhow::{Context as _, bail};
use futures::{StreamExt, TryStreamExt, stream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Concurrent WebSocket handshakes while opening.
const OPEN_CONCURRENCY: usize = 64;

/// Time for the server to settle before each memory reading.
const SETTLE: Duration = Duration::from_secs(2);

/// File descriptors kept free for everything else this process does.
const SPARE_FILES: u64 = 500;

/// Runs the scenario against a fresh server.
pub async fn run(context: &Context) -> anyhow::Result<Row> {
    let connections = context.sizes.idle_connections;
    if let Some(limit) = open_files_limit()
        && (connections as u64) + SPARE_FILES > limit
    {
        bail!(
            "{connections} connections need more than the open-files limit of {limit} (ulimit -n)"
        );
    }
    let started = context.start_server("idle").await?;
    let api = started.api.clone();
    let accounts = setup::accounts(
        &api,
        &started.admin_token,
        "idle",
        context.sizes.idle_accounts.min(connections).max(1),
    )
    .await?;
    let revisions: Vec<String> = stream::iter(accounts.iter())
        .map(|account| api.sync_revision(&account.token))
        .buffered(32)
        .try_collect()
        .await?;
    tokio::time::sleep(SETTLE).await;
    let before = started.server.rss_kib()?;

    let open = Arc::new(AtomicUsize::new(0));
    let closed_early = Arc::new(AtomicUsize::new(0));
    let (stop, stopped) = watch::channel(false);
    let opening = Instant::now();
    let holders: Vec<_> = stream::iter(0..connections)
        .map(|i| {
            let account = &accounts[i % accounts.len()];
            let since = &revisions[i % accounts.len()];
            let api = api.clone();
            async move { api.open_sync_socket(&account.token, since).await }
        })
        .buffer_unordered(OPEN_CONCURRENCY)
        .map_ok(|socket| {
            tokio::spawn(hold(
                socket,
                Arc::clone(&open),
                Arc::clone(&closed_early),
                stopped.clone(),
            ))
        })
        .try_collect()
        .await
        .context("opening the idle sockets")?;
    let opened_in = opening.elapsed();
    tokio::time::sleep(SETTLE).await;
    let after = started.server.rss_kib()?;
    let still_open = open.load(Ordering::Relaxed);
    let _ = stop.send(true);
    for holder in holders {
        let _ = tokio::time::timeout(Duration::from_secs(5), holder).await;
    }
    started.server.stop().await?;

    let per_connection = after.saturating_sub(before) as f64 / connections as f64;
    eprintln!(
        "  {connections} sockets over {} accounts opened in {:.1} s; RSS {before} KiB → {after} KiB; {still_open} open at the reading",
        accounts.len(),
        opened_in.as_secs_f64()
    );
    let works = still_open == connections && closed_early.load(Ordering::Relaxed) == 0;
    let mut result = format!(
        "{per_connection:.1} KiB per connection (RSS {:.1} → {:.1} MiB)",
        before as f64 / 1024.0,
        after as f64 / 1024.0
    );
    if !works {
        result.push_str(&format!(
            "; **only {still_open} of {connections} still open**"
        ));
    }
    Ok(Row::new(
        "idle",
        format!(
            "server RSS growth per idle authenticated sync WebSocket ({} sockets, {} accounts)",
            thousands(connections as f64),
            thousands(accounts.len() as f64)
        ),
        "10,000 connections held open",
        result,
        "–",
        works,
    ))
}

/// Holds one socket open, reading (and so answering pings) until told to stop.
async fn hold(
    mut socket: Socket,
    open: Arc<AtomicUsize>,
    closed_early: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) {
    open.fetch_add(1, Ordering::Relaxed);
    let stopped = loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break true,
            frame = socket.next() => match frame {
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break false,
            }
        }
    };
    open.fetch_sub(1, Ordering::Relaxed);
    if stopped {
        let _ = socket.close(None).await;
    } else {
        closed_early.fetch_add(1, Ordering::Relaxed);
    }
}
