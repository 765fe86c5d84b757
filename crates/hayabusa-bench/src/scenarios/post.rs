//! `post`: `POST /v2/rooms/{id}/messages` (form `body=…`) spread over many rooms, at
//! stepped open-loop rates; the figure is the highest rate whose p99 stays within the
//! limit with no errors. Every post is a command: authorise, decide, append, and
//! answer only after the group commit's fsync.

use super::{Context, ladder_row};
use crate::load::{self, LadderOutcome, request_fn};
use crate::report::Row;
use crate::setup;
use std::sync::Arc;

/// Members per room; posts alternate between them.
const MEMBERS_PER_ROOM: usize = 2;

/// Runs the post ladder against a fresh server.
pub async fn run(context: &Context, baseline: Option<&LadderOutcome>) -> anyhow::Result<Row> {
    let started = context.start_server("post").await?;
    let api = started.api.clone();
    let rooms = setup::rooms_with_fresh_members(
        &api,
        &started.admin_token,
        "post",
        context.sizes.rooms,
        MEMBERS_PER_ROOM,
    )
    .await?;
    eprintln!(
        "  {} rooms of {MEMBERS_PER_ROOM} members ready",
        rooms.len()
    );
    let rooms = Arc::new(rooms);
    let request = request_fn(move |i, _intended| {
        let api = api.clone();
        let rooms = Arc::clone(&rooms);
        Box::pin(async move {
            let i = usize::try_from(i).unwrap_or(0);
            let room = &rooms[i % rooms.len()];
            let author = &room.members[(i / rooms.len()) % room.members.len()];
            let body = format!("load message {i}: the quick brown fox jumps over the lazy dog");
            api.post_message(&author.token, room.id, &body).await
        })
    });
    let cpu = started.server.cpu_probe();
    let outcome = load::climb("post", &context.ladder(), request, cpu).await;
    started.server.stop().await?;
    Ok(ladder_row(
        context,
        "post",
        format!(
            "POST /v2/rooms/{{id}}/messages over {} rooms: highest rate meeting the target",
            context.sizes.rooms
        ),
        "Falcon PoC: 2,000 posts/s (p90 ≤ 30 ms, 3 nodes)",
        &outcome,
        baseline,
    ))
}
