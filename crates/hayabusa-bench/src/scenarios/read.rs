//! `read`: `GET /v2/rooms/{id}/messages?force=1` (the latest 100 messages, about
//! 30 KB of JSON) spread over many rooms filled beforehand, at stepped open-loop
//! rates; the figure is the highest rate whose p99 stays within the limit with no
//! errors.

use super::{Context, ladder_row, wait_projected};
use crate::load::{self, LadderOutcome, request_fn};
use crate::report::Row;
use crate::setup;
use std::sync::Arc;

/// Members per room; reads alternate between them.
const MEMBERS_PER_ROOM: usize = 2;

/// Runs the read ladder against a fresh server with seeded rooms.
pub async fn run(context: &Context, baseline: Option<&LadderOutcome>) -> anyhow::Result<Row> {
    let started = context.start_server("read").await?;
    let api = started.api.clone();
    let rooms = setup::rooms_with_fresh_members(
        &api,
        &started.admin_token,
        "read",
        context.sizes.rooms,
        MEMBERS_PER_ROOM,
    )
    .await?;
    let per_room = context.sizes.read_seed_messages;
    setup::seed_messages(&api, &rooms, per_room).await?;
    // The steady state, on every backend: the projector has caught up with the seed
    // (reads would otherwise wait for it, by the consistency contract) and each
    // member has read its room once (the page cache and the store's connections are
    // warm), so the first step does not measure the seeding's tail.
    let head = api.health().await?.log_head;
    wait_projected(&api, head, context.sizes.projection_timeout).await?;
    for room in &rooms {
        for member in &room.members {
            api.read_messages(&member.token, room.id)
                .await
                .map_err(|reason| anyhow::anyhow!("warming up room {}: {reason}", room.id))?;
        }
    }
    eprintln!(
        "  {} rooms with {per_room} messages each ready (projected, read once)",
        rooms.len()
    );
    let rooms = Arc::new(rooms);
    let request = request_fn(move |i, _intended| {
        let api = api.clone();
        let rooms = Arc::clone(&rooms);
        Box::pin(async move {
            let i = usize::try_from(i).unwrap_or(0);
            let room = &rooms[i % rooms.len()];
            let reader = &room.members[(i / rooms.len()) % room.members.len()];
            api.read_messages(&reader.token, room.id).await
        })
    });
    let cpu = started.server.cpu_probe();
    let outcome = load::climb("read", &context.ladder(), request, cpu).await;
    started.server.stop().await?;
    Ok(ladder_row(
        context,
        "read",
        format!(
            "GET /v2/rooms/{{id}}/messages?force=1 ({per_room} messages each) over {} rooms: highest rate meeting the target",
            context.sizes.rooms
        ),
        "Falcon: 1,200 reads/s (p95 63 ms, 4 read nodes)",
        &outcome,
        baseline,
    ))
}
