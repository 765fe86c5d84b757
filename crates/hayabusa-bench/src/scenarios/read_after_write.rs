//! `read-after-write`: what reading what others just wrote costs. Rooms of two members
//! (a writer and a reader) filled beforehand; the reader reads its room's latest
//! messages (`GET /v2/rooms/{id}/messages?force=1`) and the room's latest acknowledged
//! message by id (`GET /v2/rooms/{id}/messages/{message_id}`) at fixed open-loop
//! rates, first with no writes (quiet), then while the writers post at a fixed rate
//! (5,000/s by default). The figures are the read percentiles of both phases.
//!
//! Each read also checks the contract "a read that starts after a write's answer
//! sees it": the message acknowledged last before the read was sent must be in the
//! page, and found by id. A read that misses it is counted as a miss (the server
//! broke the contract), not as an error, so that a server without the contract can
//! still be measured for comparison.

use super::Context;
use crate::client::Api;
use crate::load::{self, OpenLoop, StepOutcome, request_fn};
use crate::report::{Row, thousands};
use crate::setup::{self, Room};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Members per room: `members[0]` writes, `members[1]` reads.
const MEMBERS_PER_ROOM: usize = 2;

/// One room under test and the last message id acknowledged to its writer.
struct Target {
    room: Room,
    latest: AtomicU64,
}

/// Reads whose answer missed a message acknowledged before they were sent.
#[derive(Default)]
struct Misses {
    list: AtomicU64,
    by_id: AtomicU64,
    first: parking_lot::Mutex<Option<String>>,
}

impl Misses {
    fn add(&self, counter: &AtomicU64, what: impl FnOnce() -> String) {
        if counter.fetch_add(1, Ordering::Relaxed) == 0 {
            let mut first = self.first.lock();
            if first.is_none() {
                *first = Some(what());
            }
        }
    }
}

/// The outcome of one phase: both read loops and the post loop (if any).
struct Phase {
    list: StepOutcome,
    by_id: StepOutcome,
    posts: Option<StepOutcome>,
}

/// Whether a latest-messages page shows the message `acknowledged`: it holds it, or
/// it is a full page of newer messages only (under overload more than a page of
/// messages can be posted between the acknowledgement and the read; ids grow with
/// time on one server).
fn shows(body: &[u8], acknowledged: u64) -> bool {
    let Ok(page) = serde_json::from_slice::<Vec<serde_json::Value>>(body) else {
        return false;
    };
    let ids: Vec<u64> = page
        .iter()
        .filter_map(|message| message["message_id"].as_str()?.parse().ok())
        .collect();
    ids.contains(&acknowledged) || (ids.len() == PAGE && ids.iter().all(|id| *id > acknowledged))
}

/// The size of a full `force=1` page.
const PAGE: usize = 100;

/// Runs the read loops (and the post loop at `post_rate`, if any) concurrently.
async fn phase(
    api: &Api,
    targets: &Arc<Vec<Target>>,
    misses: &Arc<Misses>,
    read_rate: f64,
    post_rate: Option<f64>,
    duration: std::time::Duration,
) -> Phase {
    let list = {
        let (api, targets, misses) = (api.clone(), Arc::clone(targets), Arc::clone(misses));
        request_fn(move |i, _intended| {
            let (api, targets, misses) = (api.clone(), Arc::clone(&targets), Arc::clone(&misses));
            Box::pin(async move {
                let target = &targets[usize::try_from(i).unwrap_or(0) % targets.len()];
                let acknowledged = target.latest.load(Ordering::SeqCst);
                let path = format!("/v2/rooms/{}/messages?force=1", target.room.id);
                let (status, body) = api.get_answer(&path, &target.room.members[1].token).await?;
                let seen = status.is_success() && (acknowledged == 0 || shows(&body, acknowledged));
                if !seen {
                    misses.add(&misses.list, || {
                        format!(
                            "list of room {}: {status}, {acknowledged} absent",
                            target.room.id
                        )
                    });
                }
                Ok(())
            })
        })
    };
    let by_id = {
        let (api, targets, misses) = (api.clone(), Arc::clone(targets), Arc::clone(misses));
        request_fn(move |i, _intended| {
            let (api, targets, misses) = (api.clone(), Arc::clone(&targets), Arc::clone(&misses));
            Box::pin(async move {
                let target = &targets[usize::try_from(i).unwrap_or(0) % targets.len()];
                let acknowledged = target.latest.load(Ordering::SeqCst);
                let path = format!("/v2/rooms/{}/messages/{acknowledged}", target.room.id);
                let (status, _) = api.get_answer(&path, &target.room.members[1].token).await?;
                if !status.is_success() {
                    misses.add(&misses.by_id, || {
                        format!(
                            "message {acknowledged} of room {}: {status}",
                            target.room.id
                        )
                    });
                }
                Ok(())
            })
        })
    };
    let posts = post_rate.map(|rate| {
        let (api, targets) = (api.clone(), Arc::clone(targets));
        let request = request_fn(move |i, _intended| {
            let (api, targets) = (api.clone(), Arc::clone(&targets));
            Box::pin(async move {
                let target = &targets[usize::try_from(i).unwrap_or(0) % targets.len()];
                let id = api
                    .post_message_id(&target.room.members[0].token, target.room.id, "news")
                    .await?;
                target.latest.fetch_max(id, Ordering::SeqCst);
                Ok(())
            })
        });
        load::run(OpenLoop::new(rate, duration), request)
    });
    let reads = futures::future::join(
        load::run(OpenLoop::new(read_rate, duration), list),
        load::run(OpenLoop::new(read_rate, duration), by_id),
    );
    let ((list, by_id), posts) = match posts {
        Some(posts) => {
            let (reads, posts) = futures::future::join(reads, posts).await;
            (reads, Some(posts))
        }
        None => (reads.await, None),
    };
    Phase { list, by_id, posts }
}

fn percentiles(step: &StepOutcome) -> String {
    format!("p50 {:.2} / p99 {:.2} ms", step.p50_ms(), step.p99_ms())
}

fn errors(step: &StepOutcome) -> String {
    match (&step.first_error, step.errors) {
        (_, 0) => String::new(),
        (Some(first), n) => format!(
            " ({n} errors: {})",
            first.chars().take(80).collect::<String>()
        ),
        (None, n) => format!(" ({n} errors)"),
    }
}

/// Runs both phases against a fresh server with seeded rooms.
pub async fn run(context: &Context) -> anyhow::Result<Row> {
    let sizes = &context.sizes;
    let started = context.start_server("read-after-write").await?;
    let api = started.api.clone();
    let rooms = setup::rooms_with_fresh_members(
        &api,
        &started.admin_token,
        "raw",
        sizes.rooms,
        MEMBERS_PER_ROOM,
    )
    .await?;
    let mut targets = Vec::with_capacity(rooms.len());
    for room in rooms {
        // Seed messages, and one whose id the readers look up from the start.
        setup::seed_messages(&api, std::slice::from_ref(&room), sizes.read_seed_messages).await?;
        let latest = api
            .post_message_id(&room.members[0].token, room.id, "latest")
            .await
            .map_err(|reason| anyhow::anyhow!("seeding room {}: {reason}", room.id))?;
        targets.push(Target {
            room,
            latest: AtomicU64::new(latest),
        });
    }
    let targets = Arc::new(targets);
    let misses = Arc::new(Misses::default());
    eprintln!(
        "  {} rooms ready; reads {}/s per kind, posts {}/s, {:?} per phase",
        targets.len(),
        sizes.raw_read_rate,
        sizes.raw_post_rate,
        sizes.raw_duration
    );
    let quiet = phase(
        &api,
        &targets,
        &misses,
        sizes.raw_read_rate,
        None,
        sizes.raw_duration,
    )
    .await;
    eprintln!("  quiet: list {}", quiet.list.summary());
    eprintln!("  quiet: by id {}", quiet.by_id.summary());
    let cpu = started.server.cpu_probe();
    let cpu_before = cpu();
    let busy = phase(
        &api,
        &targets,
        &misses,
        sizes.raw_read_rate,
        Some(sizes.raw_post_rate),
        sizes.raw_duration,
    )
    .await;
    let server_cpu = match (cpu_before, cpu()) {
        (Some(before), Some(after)) => after.checked_sub(before),
        _ => None,
    };
    eprintln!("  posting: list {}", busy.list.summary());
    eprintln!("  posting: by id {}", busy.by_id.summary());
    let posts = busy.posts.as_ref().expect("the busy phase posts");
    eprintln!("  posting: posts {}", posts.summary());
    // Where the waits come from: the server's own summaries of read waits and of the
    // projector's batch commits (quantiles over the whole run).
    if let Ok(text) = api.metrics_text().await {
        for line in text.lines().filter(|line| {
            (line.starts_with("hayabusa_read_wait_seconds")
                || line.starts_with("hayabusa_projector_apply_seconds"))
                && !line.contains("_sum")
        }) {
            eprintln!("  server: {line}");
        }
    }
    started.server.stop().await?;

    let list_misses = misses.list.load(Ordering::Relaxed);
    let by_id_misses = misses.by_id.load(Ordering::Relaxed);
    let mut result = format!(
        "quiet: list {}, by id {}; posting {}/s (achieved {}/s, p99 {:.2} ms{}): list {}{}, by id {}{}; misses: list {list_misses}, by id {by_id_misses}",
        percentiles(&quiet.list),
        percentiles(&quiet.by_id),
        thousands(sizes.raw_post_rate),
        thousands(posts.achieved),
        posts.p99_ms(),
        errors(posts),
        percentiles(&busy.list),
        errors(&busy.list),
        percentiles(&busy.by_id),
        errors(&busy.by_id),
    );
    if let Some(first) = misses.first.lock().as_deref() {
        result.push_str(&format!(" (first: {first})"));
    }
    if let Some(cpu) = server_cpu {
        let requests = busy.list.ok + busy.by_id.ok + posts.ok;
        if requests > 0 {
            result.push_str(&format!(
                "; server CPU {:.0} µs/request while posting",
                cpu.as_secs_f64() * 1e6 / requests as f64
            ));
        }
    }
    let reads_work = [&quiet.list, &quiet.by_id, &busy.list, &busy.by_id]
        .iter()
        .all(|step| step.ok > 0 && step.errors == 0);
    Ok(Row::new(
        "read-after-write",
        format!(
            "read p50/p99 of GET messages?force=1 and GET messages/{{id}} (the last acknowledged) by the other member, {}/s each over {} rooms, quiet and while posting {}/s",
            thousands(sizes.raw_read_rate),
            targets.len(),
            thousands(sizes.raw_post_rate)
        ),
        "issue 10: read p99 grows by at most 2 ms with the consistency contract; 0 misses",
        result,
        "–",
        reads_work && posts.ok > 0,
    ))
}
