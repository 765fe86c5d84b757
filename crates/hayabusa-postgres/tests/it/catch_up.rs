//! How fast the projector catches up into PostgreSQL: a log of posts (made with the
//! real command handler) is rebuilt into a fresh database and timed. Ignored by
//! default, since its figure means something only in a release build on a quiet
//! machine:
//!
//! ```text
//! cargo test --release -p hayabusa-postgres --test it catch_up -- --ignored --nocapture
//! ```
//!
//! `HAYABUSA_CATCH_UP_POSTS` sets the number of posts (default 100,000).

use crate::support::TestDatabase;
use hayabusa_app::{
    App, AppParts, IdGenerator, InProcessHub, NewAccount, NewRoom, SystemClock, TokenSecret,
};
use hayabusa_domain::Role;
use hayabusa_store::{
    EventReader, MemoryBlobStore, MemoryEventLog, MemoryReadStore, ReadModelQueries,
    ReadModelWriter,
};
use std::sync::Arc;
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run it in release on a quiet machine"]
async fn catch_up_rate_into_postgres() {
    let posts: usize = std::env::var("HAYABUSA_CATCH_UP_POSTS")
        .ok()
        .and_then(|posts| posts.parse().ok())
        .unwrap_or(100_000);
    let log = Arc::new(MemoryEventLog::new());
    let memory = Arc::new(MemoryReadStore::new());
    let (app, projector) = App::build(AppParts {
        log: log.clone(),
        read: memory.clone(),
        clock: Arc::new(SystemClock),
        ids: Arc::new(IdGenerator::new(0).expect("worker 0")),
        secret: TokenSecret::new(vec![7; 32]),
        hub: Arc::new(InProcessHub::new()),
        blobs: Arc::new(MemoryBlobStore::default()),
        page_cache_rooms: 0,
        max_read_wait: hayabusa_app::consistency::DEFAULT_MAX_READ_WAIT,
        projector_delay: Default::default(),
    })
    .await
    .expect("build the app");
    let admin = app
        .commands
        .create_account(
            None,
            NewAccount {
                name: "Admin".into(),
                admin: true,
                ..NewAccount::default()
            },
            None,
        )
        .await
        .expect("admin")
        .value
        .account
        .account_id;
    projector.catch_up().await.expect("project");
    let admin = memory.accounts(&[admin]).await.expect("accounts").remove(0);
    let mut members = vec![admin.account_id];
    for index in 0..9 {
        let created = app
            .commands
            .create_account(
                Some(&admin),
                NewAccount {
                    name: format!("Member {index}"),
                    ..NewAccount::default()
                },
                None,
            )
            .await
            .expect("member");
        members.push(created.value.account.account_id);
    }
    projector.catch_up().await.expect("project");
    let mut rooms = Vec::new();
    for index in 0..50 {
        let room = app
            .commands
            .create_room(
                &admin,
                NewRoom {
                    name: format!("Room {index}"),
                    icon_preset: "group".into(),
                    members: members[1..]
                        .iter()
                        .map(|&member| (member, Role::Member))
                        .collect(),
                    ..NewRoom::default()
                },
                None,
            )
            .await
            .expect("room")
            .value;
        rooms.push(room);
    }
    for index in 0..posts {
        let author = members[index % members.len()];
        let room = rooms[index % rooms.len()];
        let body = if index % 10 == 0 {
            format!("[To:{}] post {index}", members[(index + 1) % members.len()])
        } else {
            format!("post {index} with a body of a few words, as chat messages are")
        };
        app.commands
            .post_message(author, room, body, false, None)
            .await
            .expect("post");
    }
    let head = log.head();

    let database = TestDatabase::create().await;
    let postgres = Arc::new(database.store("reads").await);
    let reader: Arc<dyn EventReader> = log.clone();
    let started = Instant::now();
    let reached = hayabusa_app::rebuild(reader.clone(), postgres.clone())
        .await
        .expect("rebuild into PostgreSQL");
    let elapsed = started.elapsed();
    assert_eq!(reached, head);
    println!(
        "catch-up into PostgreSQL: {head} events in {:.2} s = {:.0} events/s",
        elapsed.as_secs_f64(),
        head as f64 / elapsed.as_secs_f64()
    );
    hayabusa_app::rebuild(reader, memory.clone())
        .await
        .expect("rebuild in memory");
    assert_eq!(
        postgres.dump().await.expect("dump"),
        memory.dump().await.expect("dump"),
        "the caught-up store holds the reference's read models"
    );
    drop((app, projector, postgres));
    database.drop().await;
}
