//! A data directory with a large event log, for the catch-up and recover scenarios.
//!
//! Accounts and rooms are made through the API of a real server (so the log starts
//! with genuine `account_created`, `room_created`, … events and a valid secret and
//! admin token); the server is stopped; then millions of real `message_posted` domain
//! events (gapless `seq` per room, unique snowflake `message_id`s from a worker id the
//! server does not use) are appended straight to the log — `events.sqlite` through
//! `SqliteEventLog`, or the run's JetStream stream through `NatsEventLog` — in big
//! batches from many rooms at once. The read models then lag the log by all those
//! messages, as after a restore from a log backup.

use crate::report::thousands;
use crate::scenarios::{Context, Engines, events_file};
use crate::server::{ServerProcess, admin_token};
use crate::setup;
use anyhow::Context as _;
use hayabusa_domain::ids::{Snowflake, SnowflakeLayout};
use hayabusa_domain::{AccountId, Event, MessageId, RoomId};
use hayabusa_sqlite::SqliteEventLog;
use hayabusa_store::{AppendRequest, EventLog, ExpectedVersion, NewEvent};
use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Members of each bulk room besides the administrator.
const MEMBERS_PER_ROOM: usize = 4;

/// The generated data directory.
pub struct BulkLog {
    /// The data directory (server stopped).
    pub dir: PathBuf,
    /// The engines holding the log (its nats-server) and the setup's read models.
    pub engines: Engines,
    /// The log's head position.
    pub head: u64,
    /// The events in the log (positions are not dense on every backend).
    pub events: u64,
    /// Messages appended per second while generating (big batches).
    pub append_rate: f64,
    /// The administrator's token.
    pub admin_token: String,
    /// A room with no bulk messages, for probing writes.
    pub probe_room: u64,
    /// The rooms holding the bulk messages (the administrator is in each).
    pub bulk_rooms: Vec<u64>,
    /// Messages per bulk room (about).
    pub messages_per_room: u64,
}

/// Generates the bulk log in a fresh data directory.
pub async fn generate(context: &Context) -> anyhow::Result<BulkLog> {
    let sizes = &context.sizes;
    let dir = context.fresh_dir("bulk")?;
    let engines = context.engines().await;
    let server = ServerProcess::start_hayabusa(
        &context.server_on(&engines),
        &dir,
        &context.log_path("bulk-setup"),
    )
    .await?;
    let api = server.api()?;
    let admin_token = admin_token(&dir).await?;
    let admin = crate::client::Account {
        id: api.my_id(&admin_token).await?,
        token: admin_token.clone(),
    };
    let members = setup::accounts(&api, &admin_token, "bulk", MEMBERS_PER_ROOM).await?;
    let mut lists = vec![vec![admin.clone()]];
    for _ in 0..sizes.bulk_rooms.max(1) {
        let mut list = vec![admin.clone()];
        list.extend(members.iter().cloned());
        lists.push(list);
    }
    let rooms = setup::rooms(&api, "bulk", lists).await?;
    server.stop().await?;
    let probe_room = rooms[0].id;
    let bulk_rooms: Vec<(RoomId, Vec<AccountId>)> = rooms[1..]
        .iter()
        .map(|room| {
            (
                RoomId(room.id),
                room.members.iter().map(|a| AccountId(a.id)).collect(),
            )
        })
        .collect();

    let log: Arc<dyn EventLog> = match &engines.nats {
        Some(nats) => Arc::new(
            hayabusa_nats::connect(&nats.url(), hayabusa_nats::NatsOptions::default()).await?,
        ),
        None => {
            let path = events_file(&dir);
            Arc::new(tokio::task::spawn_blocking(move || SqliteEventLog::open(&path)).await??)
        }
    };
    let setup_events = count_events(&*log).await?;
    let layout = SnowflakeLayout::WIDE;
    let ids = Arc::new(Mutex::new(
        Snowflake::new(layout, layout.max_worker()).context("message id generator")?,
    ));
    let at = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())?;
    let total = sizes.bulk_events;
    let room_count = bulk_rooms.len() as u64;
    let batch = sizes.bulk_batch.max(1) as u64;
    let started = Instant::now();
    let tasks: Vec<_> = bulk_rooms
        .iter()
        .enumerate()
        .map(|(index, (room, members))| {
            let share = total / room_count + u64::from((index as u64) < total % room_count);
            let log = Arc::clone(&log);
            let ids = Arc::clone(&ids);
            let room = *room;
            let members = members.clone();
            tokio::spawn(async move {
                let mut seq = 0u64;
                while seq < share {
                    let count = batch.min(share - seq);
                    let events = (0..count)
                        .map(|_| {
                            seq += 1;
                            let message_id = MessageId(ids.lock().next_id(now_ms()));
                            let author = members[usize::try_from(seq).unwrap_or(0) % members.len()];
                            let event = Event::MessagePosted {
                                room_id: room,
                                message_id,
                                seq,
                                account_id: author,
                                body: format!(
                                    "bulk message {seq}: the quick brown fox jumps over the lazy dog"
                                ),
                                mentions: Vec::new(),
                                to_all: false,
                                self_unread: false,
                                at,
                            };
                            NewEvent {
                                event_type: event.event_type().to_string(),
                                schema_version: hayabusa_domain::EVENT_SCHEMA_VERSION,
                                data: event.encode(),
                            }
                        })
                        .collect();
                    log.append(AppendRequest {
                        stream: format!("room-{room}"),
                        expected: ExpectedVersion::Any,
                        events,
                        idempotency: None,
                    })
                    .await?;
                }
                anyhow::Ok(seq)
            })
        })
        .collect();
    let mut messages = 0;
    for task in tasks {
        messages += task.await??;
    }
    let elapsed = started.elapsed();
    let head = log.head();
    tokio::task::spawn_blocking(move || drop(log)).await?;
    let append_rate = messages as f64 / elapsed.as_secs_f64();
    eprintln!(
        "  appended {} message events over {} rooms in {:.1} s ({}/s); log head {}",
        thousands(messages as f64),
        room_count,
        elapsed.as_secs_f64(),
        thousands(append_rate),
        thousands(head as f64)
    );
    Ok(BulkLog {
        dir,
        engines,
        head,
        events: setup_events + messages,
        append_rate,
        admin_token,
        probe_room,
        bulk_rooms: bulk_rooms.iter().map(|(room, _)| room.0).collect(),
        messages_per_room: total / room_count,
    })
}

/// Counts the events in `log` by reading it through.
async fn count_events(log: &dyn EventLog) -> anyhow::Result<u64> {
    let mut after = 0;
    let mut count = 0;
    loop {
        let page = log.read_all(after, 10_000).await?;
        let Some(last) = page.last() else {
            return Ok(count);
        };
        after = last.position;
        count += page.len() as u64;
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
