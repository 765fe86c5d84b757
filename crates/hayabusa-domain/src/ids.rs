//! Identifiers and the snowflake generator that makes them.
//!
//! Two layouts share one generator design (timestamp, worker id, sequence):
//! - [`SnowflakeLayout::JS_SAFE`] keeps every id at or below 2^53 − 1, so JavaScript
//!   clients read room, account and other numeric ids exactly;
//! - [`SnowflakeLayout::WIDE`] uses all 63 bits for `message_id`, which the API shows
//!   as a string.
//!
//! The generator is pure: the caller passes the current time in milliseconds. When the
//! clock goes backwards or a millisecond's sequence is exhausted, the generator borrows
//! from the next millisecond instead of blocking or repeating an id.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, max = $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The largest id of this kind the server ever makes.
            pub const MAX: u64 = $max;

            /// The id, if `value` is one the server could have made (1 to [`Self::MAX`]).
            pub fn new(value: u64) -> Option<Self> {
                (1..=Self::MAX).contains(&value).then_some($name(value))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            /// Parses client input: see [`parse_id`].
            fn from_str(raw: &str) -> Result<Self, IdError> {
                parse_id(raw, Self::MAX).map($name)
            }
        }
    };
}

id_type!(
    /// An account (a user). JavaScript-safe.
    AccountId,
    max = MAX_SAFE_INTEGER
);
id_type!(
    /// A room (chat). JavaScript-safe.
    RoomId,
    max = MAX_SAFE_INTEGER
);
id_type!(
    /// A message. Uses the wide layout; shown as a string by the API.
    MessageId,
    max = MAX_WIDE_ID
);
id_type!(
    /// An organization that accounts belong to. JavaScript-safe.
    OrganizationId,
    max = MAX_SAFE_INTEGER
);
id_type!(
    /// A task. JavaScript-safe.
    TaskId,
    max = MAX_SAFE_INTEGER
);
id_type!(
    /// An uploaded file. JavaScript-safe.
    FileId,
    max = MAX_SAFE_INTEGER
);
id_type!(
    /// A contact request. JavaScript-safe.
    RequestId,
    max = MAX_SAFE_INTEGER
);

/// The largest integer a JavaScript number holds exactly.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// The largest id of the wide (63-bit) layout: `i64::MAX`, so every id fits a signed
/// 64-bit column.
pub const MAX_WIDE_ID: u64 = (1 << 63) - 1;

/// Why client input is not an id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not a positive decimal integer (empty, a sign, other characters, or zero).
    #[error("not a positive decimal integer")]
    Malformed,
    /// A positive decimal integer above the largest id of its kind: no such thing
    /// can exist.
    #[error("out of range (ids are 1 to {max})")]
    OutOfRange {
        /// The largest id of the kind asked for.
        max: u64,
    },
}

/// Parses an id from client input: ASCII digits only (leading zeros allowed), not
/// zero, at most `max`. Pure and total: any string gives an answer in time linear in
/// its length, never a panic.
pub fn parse_id(raw: &str, max: u64) -> Result<u64, IdError> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IdError::Malformed);
    }
    let significant = raw.trim_start_matches('0');
    if significant.is_empty() {
        return Err(IdError::Malformed);
    }
    // More than 20 digits overflow u64 whatever they are.
    let value = (significant.len() <= 20)
        .then(|| significant.parse::<u64>().ok())
        .flatten()
        .ok_or(IdError::OutOfRange { max })?;
    if value > max {
        return Err(IdError::OutOfRange { max });
    }
    Ok(value)
}

/// Bit layout of a snowflake id: `timestamp | worker | sequence`, most significant first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnowflakeLayout {
    /// Bits for milliseconds since [`EPOCH_MS`].
    pub timestamp_bits: u32,
    /// Bits for the worker id (one per process in a cluster).
    pub worker_bits: u32,
    /// Bits for the per-millisecond sequence.
    pub sequence_bits: u32,
}

/// 2024-01-01T00:00:00Z in Unix milliseconds: ids count time from here.
pub const EPOCH_MS: u64 = 1_704_067_200_000;

impl SnowflakeLayout {
    /// 41 + 5 + 7 = 53 bits: ~69 years, 32 workers, 128 ids per millisecond per worker.
    pub const JS_SAFE: SnowflakeLayout = SnowflakeLayout {
        timestamp_bits: 41,
        worker_bits: 5,
        sequence_bits: 7,
    };
    /// 41 + 10 + 12 = 63 bits: the classic layout, 1024 workers, 4096 ids/ms/worker.
    pub const WIDE: SnowflakeLayout = SnowflakeLayout {
        timestamp_bits: 41,
        worker_bits: 10,
        sequence_bits: 12,
    };

    /// The largest worker id this layout can hold.
    pub fn max_worker(&self) -> u64 {
        (1 << self.worker_bits) - 1
    }

    fn max_sequence(&self) -> u64 {
        (1 << self.sequence_bits) - 1
    }

    /// Splits an id back into (milliseconds since epoch, worker, sequence).
    pub fn decompose(&self, id: u64) -> (u64, u64, u64) {
        let sequence = id & self.max_sequence();
        let worker = (id >> self.sequence_bits) & self.max_worker();
        let timestamp = id >> (self.sequence_bits + self.worker_bits);
        (timestamp, worker, sequence)
    }
}

/// Errors building a generator.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnowflakeError {
    /// The worker id does not fit the layout.
    #[error("worker id {worker} does not fit the layout (max {max})")]
    WorkerOutOfRange {
        /// The worker id asked for.
        worker: u64,
        /// The largest worker id the layout holds.
        max: u64,
    },
}

/// A snowflake generator for one worker. Not thread-safe by itself: wrap it in a mutex.
#[derive(Debug, Clone)]
pub struct Snowflake {
    layout: SnowflakeLayout,
    worker: u64,
    last_timestamp: u64,
    sequence: u64,
}

impl Snowflake {
    /// A generator for `worker` with `layout`.
    pub fn new(layout: SnowflakeLayout, worker: u64) -> Result<Self, SnowflakeError> {
        if worker > layout.max_worker() {
            return Err(SnowflakeError::WorkerOutOfRange {
                worker,
                max: layout.max_worker(),
            });
        }
        Ok(Snowflake {
            layout,
            worker,
            last_timestamp: 0,
            sequence: 0,
        })
    }

    /// The next id, given the current Unix time in milliseconds. Strictly increasing for
    /// this generator whatever the clock does.
    pub fn next_id(&mut self, now_unix_ms: u64) -> u64 {
        let now = now_unix_ms.saturating_sub(EPOCH_MS);
        if now > self.last_timestamp {
            self.last_timestamp = now;
            self.sequence = 0;
        } else if self.sequence < self.layout.max_sequence() {
            self.sequence += 1;
        } else {
            // Sequence exhausted (or clock went back): borrow the next millisecond.
            self.last_timestamp += 1;
            self.sequence = 0;
        }
        let timestamp = self.last_timestamp & ((1 << self.layout.timestamp_bits) - 1);
        (timestamp << (self.layout.worker_bits + self.layout.sequence_bits))
            | (self.worker << self.layout.sequence_bits)
            | self.sequence
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_763_900_000_000;

    #[test]
    fn js_safe_ids_stay_below_two_to_the_53_for_the_whole_timestamp_range() {
        let mut generator = Snowflake::new(SnowflakeLayout::JS_SAFE, 31).unwrap();
        let far_future = EPOCH_MS + (1u64 << 41) - 2;
        let id = generator.next_id(far_future);
        assert!(id <= MAX_SAFE_INTEGER, "{id} > 2^53-1");
        for _ in 0..1000 {
            assert!(generator.next_id(far_future) <= MAX_SAFE_INTEGER);
        }
    }

    #[test]
    fn ids_increase_strictly_even_when_the_clock_goes_back_or_a_millisecond_overflows() {
        let mut generator = Snowflake::new(SnowflakeLayout::JS_SAFE, 3).unwrap();
        let mut last = 0;
        for i in 0..10_000u64 {
            // The clock stalls, then jumps back by a second halfway through.
            let now = if i < 5_000 { NOW } else { NOW - 1_000 };
            let id = generator.next_id(now);
            assert!(id > last, "id {id} not above {last} at step {i}");
            last = id;
        }
    }

    #[test]
    fn an_id_decomposes_into_its_worker_and_sequence() {
        let mut generator = Snowflake::new(SnowflakeLayout::WIDE, 1000).unwrap();
        let first = generator.next_id(NOW);
        let second = generator.next_id(NOW);
        let (ts, worker, seq) = SnowflakeLayout::WIDE.decompose(second);
        assert_eq!(ts, NOW - EPOCH_MS);
        assert_eq!(worker, 1000);
        assert_eq!(seq, 1);
        assert!(second > first);
        assert!(second < (1 << 63));
    }

    #[test]
    fn client_ids_parse_only_within_their_kind_s_range() {
        assert_eq!("42".parse::<RoomId>(), Ok(RoomId(42)));
        assert_eq!("007".parse::<RoomId>(), Ok(RoomId(7)));
        assert_eq!(
            "9007199254740991".parse::<AccountId>(),
            Ok(AccountId(MAX_SAFE_INTEGER))
        );
        let js_out = IdError::OutOfRange {
            max: MAX_SAFE_INTEGER,
        };
        for raw in [
            "9007199254740992",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "100000000000000000000000000000",
        ] {
            assert_eq!(raw.parse::<AccountId>(), Err(js_out), "{raw}");
        }
        assert_eq!(
            "9223372036854775807".parse::<MessageId>(),
            Ok(MessageId(MAX_WIDE_ID))
        );
        assert_eq!(
            "9223372036854775808".parse::<MessageId>(),
            Err(IdError::OutOfRange { max: MAX_WIDE_ID })
        );
        for raw in ["", "0", "000", "-1", "+1", " 1", "1 ", "1e3", "0x10", "１"] {
            assert_eq!(raw.parse::<TaskId>(), Err(IdError::Malformed), "{raw:?}");
        }
        assert_eq!(FileId::new(0), None);
        assert_eq!(FileId::new(MAX_SAFE_INTEGER + 1), None);
        assert_eq!(FileId::new(5), Some(FileId(5)));
    }

    #[test]
    fn the_generators_never_make_an_id_their_kind_refuses() {
        let mut js = Snowflake::new(SnowflakeLayout::JS_SAFE, 31).unwrap();
        let mut wide = Snowflake::new(SnowflakeLayout::WIDE, 1023).unwrap();
        let far_future = EPOCH_MS + (1u64 << 41) - 1;
        assert!(RoomId::new(js.next_id(far_future)).is_some());
        assert!(MessageId::new(wide.next_id(far_future)).is_some());
    }

    #[test]
    fn workers_beyond_the_layout_are_refused() {
        assert_eq!(
            Snowflake::new(SnowflakeLayout::JS_SAFE, 32).unwrap_err(),
            SnowflakeError::WorkerOutOfRange {
                worker: 32,
                max: 31
            }
        );
    }
}
