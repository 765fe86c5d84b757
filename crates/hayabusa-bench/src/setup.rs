//! Fixtures made through the API: accounts (with the administrator's token), group
//! rooms, seed messages. Calls run concurrently but bounded, and each one is checked.

use crate::client::{Account, Api};
use anyhow::Context;
use futures::{StreamExt, TryStreamExt, stream};

/// Concurrent set-up requests.
const SETUP_CONCURRENCY: usize = 32;

/// A room and its members; `members[0]` created it and is its admin.
#[derive(Clone, Debug)]
pub struct Room {
    /// Room id.
    pub id: u64,
    /// Members, the creator first.
    pub members: Vec<Account>,
}

/// Creates `count` accounts named `{prefix}-{i}`.
pub async fn accounts(
    api: &Api,
    admin_token: &str,
    prefix: &str,
    count: usize,
) -> anyhow::Result<Vec<Account>> {
    stream::iter(0..count)
        .map(|i| async move {
            api.create_account(admin_token, &format!("{prefix}-{i}"))
                .await
        })
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await
}

/// Creates one group room per member list; each list's first account creates it as
/// admin, the others are members.
pub async fn rooms(
    api: &Api,
    prefix: &str,
    member_lists: Vec<Vec<Account>>,
) -> anyhow::Result<Vec<Room>> {
    stream::iter(member_lists.into_iter().enumerate())
        .map(|(i, members)| async move {
            let creator = members.first().context("a room needs a member")?;
            let others: Vec<u64> = members[1..].iter().map(|a| a.id).collect();
            let id = api
                .create_room(
                    &creator.token,
                    &format!("{prefix} {i}"),
                    &[creator.id],
                    &others,
                )
                .await?;
            Ok(Room { id, members })
        })
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await
}

/// Creates `rooms` rooms of `members` fresh accounts each (no account shared).
pub async fn rooms_with_fresh_members(
    api: &Api,
    admin_token: &str,
    prefix: &str,
    rooms: usize,
    members: usize,
) -> anyhow::Result<Vec<Room>> {
    let accounts = accounts(api, admin_token, prefix, rooms * members).await?;
    let lists = accounts.chunks(members).map(<[Account]>::to_vec).collect();
    self::rooms(api, prefix, lists).await
}

/// Posts `per_room` messages into every room, each by one of its members.
pub async fn seed_messages(api: &Api, rooms: &[Room], per_room: usize) -> anyhow::Result<()> {
    let posts = rooms
        .iter()
        .flat_map(|room| (0..per_room).map(move |i| (room, i)));
    stream::iter(posts)
        .map(|(room, i)| async move {
            let author = &room.members[i % room.members.len()];
            let body = format!(
                "seed message {i}: the quick brown fox jumps over the lazy dog [To:{}]",
                room.members[0].id
            );
            api.post_message(&author.token, room.id, &body)
                .await
                .map_err(|reason| anyhow::anyhow!("seeding room {}: {reason}", room.id))
        })
        .buffer_unordered(SETUP_CONCURRENCY * 2)
        .try_collect::<()>()
        .await
}
