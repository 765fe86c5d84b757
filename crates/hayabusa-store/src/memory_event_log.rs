//! An in-memory event log: the reference implementation of the event log port.
//!
//! [`MemoryEventLog`] keeps every event in a `Vec` behind one mutex. It is what unit
//! tests of the application layer use, and it defines the expected behaviour that
//! the conformance suite in [`crate::conformance::event_log`] checks every other
//! adapter against. Nothing is persisted: "durable" here means "appended under the
//! lock", which is as durable as a process-local log can be.

use crate::error::StoreError;
use crate::event_log::{
    AppendRequest, Appended, EventAppender, EventReader, Position, RecordedEvent,
};
use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// An event log held in memory, safe to share between tasks.
#[derive(Debug)]
pub struct MemoryEventLog {
    state: Mutex<State>,
    head: watch::Sender<Position>,
    /// How long idempotency keys count.
    idempotency_expiry: Duration,
}

/// How long idempotency keys are kept by default (the port's default).
pub use crate::event_log::DEFAULT_IDEMPOTENCY_EXPIRY;

/// Everything behind the lock.
#[derive(Debug, Default)]
struct State {
    /// All events; the event at position `p` is at index `p - 1`.
    events: Vec<RecordedEvent>,
    /// Positions of each stream's events, in stream-version order.
    streams: HashMap<String, Vec<Position>>,
    /// Idempotency keys seen so far.
    idempotency: HashMap<String, IdempotencyRecord>,
}

/// What an idempotency key maps to: enough to rebuild the first append's result.
#[derive(Debug)]
struct IdempotencyRecord {
    fingerprint: String,
    /// Position of the first event of the append (meaningless when `count` is 0).
    first_position: Position,
    /// Number of events the append recorded.
    count: usize,
    /// The stream's version after the append.
    stream_version: u64,
    /// The log position after the append.
    position: Position,
    /// When it was recorded.
    at: Instant,
}

impl MemoryEventLog {
    /// Creates an empty log.
    pub fn new() -> Self {
        Self::with_idempotency_expiry(DEFAULT_IDEMPOTENCY_EXPIRY)
    }

    /// Creates an empty log whose idempotency keys count for `expiry` only.
    pub fn with_idempotency_expiry(expiry: Duration) -> Self {
        let (head, _) = watch::channel(0);
        MemoryEventLog {
            state: Mutex::new(State::default()),
            head,
            idempotency_expiry: expiry,
        }
    }
}

impl Default for MemoryEventLog {
    fn default() -> Self {
        Self::new()
    }
}

/// The current wall-clock time in Unix milliseconds (0 if the clock is before 1970).
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl State {
    fn head(&self) -> Position {
        self.events.len() as Position
    }

    fn stream_version(&self, stream: &str) -> u64 {
        self.streams
            .get(stream)
            .map_or(0, |positions| positions.len() as u64)
    }

    /// The events at positions `first ..= first + count - 1`.
    fn events_from(&self, first: Position, count: usize) -> Vec<RecordedEvent> {
        if count == 0 {
            return Vec::new();
        }
        let start = (first - 1) as usize;
        self.events[start..start + count].to_vec()
    }
}

#[async_trait]
impl EventAppender for MemoryEventLog {
    async fn append(&self, request: AppendRequest) -> Result<Appended, StoreError> {
        let AppendRequest {
            stream,
            expected,
            events,
            idempotency,
        } = request;
        let mut state = self.state.lock();

        // The idempotency key is checked first: a retry must succeed even if the
        // stream has moved on since the first attempt.
        if let Some(key) = &idempotency
            && let Some(record) = state.idempotency.get(&key.key)
            && record.at.elapsed() < self.idempotency_expiry
        {
            if record.fingerprint != key.fingerprint {
                return Err(StoreError::IdempotencyKeyReused);
            }
            return Ok(Appended {
                events: state.events_from(record.first_position, record.count),
                stream_version: record.stream_version,
                position: record.position,
                duplicate: true,
            });
        }

        let actual = state.stream_version(&stream);
        if !expected.admits(actual) {
            return Err(StoreError::Conflict {
                stream,
                expected: expected.to_string(),
                actual,
            });
        }

        let recorded_at_ms = now_ms();
        let first_position = state.head() + 1;
        let count = events.len();
        let recorded: Vec<RecordedEvent> = events
            .into_iter()
            .enumerate()
            .map(|(offset, event)| RecordedEvent {
                position: first_position + offset as Position,
                stream: stream.clone(),
                stream_version: actual + 1 + offset as u64,
                event_type: event.event_type,
                schema_version: event.schema_version,
                data: event.data,
                recorded_at_ms,
            })
            .collect();
        state.events.extend(recorded.iter().cloned());
        if count > 0 {
            state
                .streams
                .entry(stream)
                .or_default()
                .extend(recorded.iter().map(|event| event.position));
        }
        let stream_version = actual + count as u64;
        let position = state.head();
        if let Some(key) = idempotency {
            state.idempotency.insert(
                key.key,
                IdempotencyRecord {
                    fingerprint: key.fingerprint,
                    first_position,
                    count,
                    stream_version,
                    position,
                    at: Instant::now(),
                },
            );
        }
        // Published under the lock so that the head never goes backwards.
        if count > 0 {
            self.head.send_replace(position);
        }
        Ok(Appended {
            events: recorded,
            stream_version,
            position,
            duplicate: false,
        })
    }
}

#[async_trait]
impl EventReader for MemoryEventLog {
    async fn read_stream(
        &self,
        stream: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let state = self.state.lock();
        let Some(positions) = state.streams.get(stream) else {
            return Ok(Vec::new());
        };
        let skip = usize::try_from(after_version).unwrap_or(usize::MAX);
        Ok(positions
            .iter()
            .skip(skip)
            .take(limit)
            .map(|&position| state.events[(position - 1) as usize].clone())
            .collect())
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let state = self.state.lock();
        let skip = usize::try_from(after).unwrap_or(usize::MAX);
        Ok(state
            .events
            .iter()
            .skip(skip)
            .take(limit)
            .cloned()
            .collect())
    }

    fn head(&self) -> Position {
        *self.head.borrow()
    }

    fn subscribe(&self) -> watch::Receiver<Position> {
        self.head.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryEventLog;
    use crate::conformance::event_log;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_the_event_log_conformance_suite() {
        event_log::run_all(|| async { MemoryEventLog::new() }).await;
    }

    #[tokio::test]
    async fn idempotency_keys_expire() {
        let expiry = std::time::Duration::from_millis(300);
        event_log::idempotency_keys_expire(
            std::sync::Arc::new(MemoryEventLog::with_idempotency_expiry(expiry)),
            expiry,
        )
        .await;
    }
}
