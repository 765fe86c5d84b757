//! Positions and stream revisions on JetStream.
//!
//! One append is one JetStream message, so an event is named by the message's stream
//! sequence and its index inside the message:
//!
//! ```text
//! position = sequence << 16 | index        (index = 0xFFFF for the append's last event)
//! ```
//!
//! The last event of every append gets the index `0xFFFF` rather than `count - 1`.
//! That makes the position of an append's last event a function of the sequence alone,
//! so the log's head and a stream's revision follow from a sequence number (the
//! subject's last sequence, the stream's last sequence) without reading the message,
//! and a revision that names an event inside an append (not its last) is recognised as
//! such: it can never be a stream's current revision.
//!
//! A stream revision is the position of the stream's last event, so revisions increase
//! within a stream, and `ExpectedVersion::Exactly(r)` becomes
//! `Nats-Expected-Last-Subject-Sequence: r >> 16` when `r` ends an append.

use hayabusa_store::Position;

/// Bits of a position that hold the index inside its message.
pub const INDEX_BITS: u32 = 16;
/// The index of an append's last event.
const LAST_INDEX: u64 = (1 << INDEX_BITS) - 1;
/// The most events one append (one message) may hold: all but the last take indexes
/// 0, 1, …, which must stay below [`LAST_INDEX`].
pub const MAX_EVENTS_PER_APPEND: usize = LAST_INDEX as usize;
/// The highest message sequence whose positions fit in 64 bits.
pub const MAX_SEQUENCE: u64 = u64::MAX >> INDEX_BITS;

/// The position of event `index` (0-based) of an append of `count` events stored as
/// message `sequence`.
pub fn position(sequence: u64, index: usize, count: usize) -> Position {
    let index = if index + 1 >= count {
        LAST_INDEX
    } else {
        index as u64
    };
    sequence << INDEX_BITS | index
}

/// The position of the last event of the append stored as message `sequence`
/// (0 for sequence 0: "nothing").
pub fn last_of(sequence: u64) -> Position {
    if sequence == 0 {
        0
    } else {
        sequence << INDEX_BITS | LAST_INDEX
    }
}

/// The message sequence a position belongs to.
pub fn sequence_of(position: Position) -> u64 {
    position >> INDEX_BITS
}

/// Whether `position` is the last event of its append (or 0).
pub fn ends_an_append(position: Position) -> bool {
    position == 0 || position & LAST_INDEX == LAST_INDEX
}

/// The first message sequence that can hold events after `position`.
pub fn first_sequence_after(position: Position) -> u64 {
    if position != 0 && ends_an_append(position) {
        sequence_of(position) + 1
    } else {
        sequence_of(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_increase_within_and_across_messages() {
        let mut all = Vec::new();
        for sequence in 1..4 {
            for index in 0..3 {
                all.push(position(sequence, index, 3));
            }
        }
        assert!(all.windows(2).all(|pair| pair[0] < pair[1]), "{all:?}");
        assert_eq!(position(2, 2, 3), last_of(2));
        assert_eq!(position(2, 0, 1), last_of(2), "a single event is the last");
        assert_eq!(position(2, 0, 2), 2 << 16, "the first of two has index 0");
    }

    #[test]
    fn the_last_event_of_an_append_is_recognised() {
        assert!(ends_an_append(0));
        assert!(ends_an_append(last_of(7)));
        assert!(!ends_an_append(position(7, 0, 3)));
        assert!(!ends_an_append(position(7, 1, 3)));
        assert!(ends_an_append(position(7, 2, 3)));
        assert_eq!(sequence_of(position(7, 1, 3)), 7);
    }

    #[test]
    fn reading_after_a_position_starts_at_the_right_message() {
        assert_eq!(first_sequence_after(0), 0);
        assert_eq!(first_sequence_after(last_of(5)), 6);
        assert_eq!(first_sequence_after(position(5, 0, 2)), 5);
        // A number inside a gap (never a position) starts at its message too.
        assert_eq!(first_sequence_after((5 << 16) + 7), 5);
    }

    #[test]
    fn the_largest_sequence_still_fits() {
        assert_eq!(last_of(MAX_SEQUENCE), u64::MAX);
        assert_eq!(sequence_of(last_of(MAX_SEQUENCE)), MAX_SEQUENCE);
    }
}
