//! Batches of random changes must give the in-memory reference's read models,
//! whatever path a store's writer takes (bulk inserts, row-by-row replacement,
//! gathered cursors and ops interleaved with everything else). Every persistent read
//! store runs [`random_batches_match_the_in_memory_store`].

use crate::error::StoreError;
use crate::event_log::Position;
use crate::memory_read_store::MemoryReadStore;
use crate::read_model::{Change, MessageRow, OpRecord, ReadModelWriter, ReadStore, RoomRow};
use hayabusa_domain::{AccountId, MessageId, Role, RoomId, RoomType};
use std::future::Future;

/// A tiny deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random change among few rooms, accounts, seqs and message ids, so that inserts
/// conflict, cursors move for members that come and go, and messages, rooms and
/// members change between the inserts and cursor moves of one batch.
///
/// With `posting` > 0, all but one change in `posting` are inserts, read cursors or
/// ops: long runs of the changes the writer gathers into one statement per kind.
fn random_change(rng: &mut Rng, position: Position, posting: u64) -> Change {
    let room_id = RoomId(1 + rng.below(3));
    let account_id = AccountId(1 + rng.below(4));
    let at = i64::try_from(rng.below(1_000)).expect("small");
    // Few seqs and ids make inserts conflict; with 100, seqs always grow (as when
    // posting) and only ids repeat; with 500 ids hardly ever repeat.
    let (seqs, ids) = match posting {
        0 => (10, 12),
        10 => (398, 400),
        100 => (0, 600),
        _ => (398, 1 << 40),
    };
    let kind = if posting > 0 && rng.below(posting) != 0 {
        8 + rng.below(12)
    } else {
        rng.below(20)
    };
    match kind {
        0 => Change::PutRoom(RoomRow {
            room_id,
            room_type: RoomType::Group,
            name: format!("room {position}"),
            description: String::new(),
            icon_preset: "group".to_owned(),
            last_seq: rng.below(4),
            message_num: rng.below(3),
            last_update_time: at,
        }),
        1 => Change::DeleteRoom { room_id },
        2 | 3 => Change::PutMember {
            room_id,
            account_id,
            role: Role::Member,
        },
        4 => Change::RemoveMember {
            room_id,
            account_id,
        },
        5 => Change::DeleteMessage {
            room_id,
            message_id: MessageId(1 + rng.below(12)),
            at,
        },
        6 => Change::EditMessage {
            room_id,
            message_id: MessageId(1 + rng.below(12)),
            body: format!("edited at {position}"),
            mentions: vec![account_id, account_id],
            to_all: rng.below(2) == 0,
            at,
        },
        7 => Change::UpdateRoom {
            room_id,
            name: None,
            description: Some(format!("at {position}")),
            icon_preset: None,
            at,
        },
        8 => Change::RecordOps(vec![OpRecord {
            // Now and then an op at a taken position, which replaces that op.
            position: if rng.below(4) == 0 {
                position / 2
            } else {
                position
            },
            index: 0,
            room_id: Some(room_id),
            target: None,
            op_type: "message_created".to_owned(),
            payload: format!("{{\"at\":{position}}}"),
        }]),
        9..=13 => Change::SetReadCursor {
            account_id,
            room_id,
            read_seq: rng.below(12),
        },
        _ => Change::InsertMessage(MessageRow {
            room_id,
            message_id: MessageId(1 + rng.below(ids)),
            seq: if seqs == 0 {
                position
            } else {
                1 + rng.below(seqs)
            },
            account_id,
            body: format!("message at {position}"),
            send_time: at,
            update_time: 0,
            mentions: if rng.below(3) == 0 {
                vec![account_id, AccountId(1), account_id]
            } else {
                Vec::new()
            },
            to_all: rng.below(4) == 0,
        }),
    }
}

/// For each seed in `0..seeds`, a fresh store from `make(seed)` and a
/// [`MemoryReadStore`] take the same `batches` batches of random changes (1 to 1,200
/// each); after every batch their canonical dumps must be equal. A quarter of the
/// seeds change anything, the others mostly post (runs of tens to hundreds of
/// inserts, cursors and ops between other changes).
pub async fn random_batches_match_the_in_memory_store<S, F, Fut>(
    make: F,
    seeds: u64,
    batches: usize,
) -> Result<(), StoreError>
where
    S: ReadStore,
    F: Fn(u64) -> Fut,
    Fut: Future<Output = S>,
{
    for seed in 0..seeds {
        let store = make(seed).await;
        let memory = MemoryReadStore::new();
        let mut rng = Rng(seed);
        let posting = [0, 10, 100, 500][usize::try_from(seed % 4).expect("small")];
        let mut position = 0;
        for _ in 0..batches {
            let size = 1 + rng.below(match posting {
                0 => 60,
                10 => 400,
                _ => 1_200,
            });
            let changes: Vec<Change> = (0..size)
                .map(|_| {
                    position += 1;
                    random_change(&mut rng, position, posting)
                })
                .collect();
            memory.apply(changes.clone(), position).await?;
            store.apply(changes, position).await?;
            assert_eq!(
                store.dump().await?,
                memory.dump().await?,
                "seed {seed}, position {position}"
            );
        }
    }
    Ok(())
}
