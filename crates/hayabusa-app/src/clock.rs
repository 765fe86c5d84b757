//! Time and id sources, injected so tests can control them.

use hayabusa_domain::ids::{Snowflake, SnowflakeError, SnowflakeLayout};
use hayabusa_domain::{AccountId, FileId, MessageId, OrganizationId, RequestId, RoomId, TaskId};
use parking_lot::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// Unix milliseconds.
    fn now_ms(&self) -> u64;
    /// Unix seconds.
    fn now_secs(&self) -> i64 {
        (self.now_ms() / 1000) as i64
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// Snowflake ids for one worker: JavaScript-safe ones for everything the API shows
/// as a number, wide ones for messages.
#[derive(Debug)]
pub struct IdGenerator {
    safe: Mutex<Snowflake>,
    wide: Mutex<Snowflake>,
}

impl IdGenerator {
    /// A generator for `worker` (0–31, the JavaScript-safe layout's limit).
    pub fn new(worker: u64) -> Result<Self, SnowflakeError> {
        Ok(IdGenerator {
            safe: Mutex::new(Snowflake::new(SnowflakeLayout::JS_SAFE, worker)?),
            wide: Mutex::new(Snowflake::new(SnowflakeLayout::WIDE, worker)?),
        })
    }

    fn safe(&self, clock: &dyn Clock) -> u64 {
        self.safe.lock().next_id(clock.now_ms())
    }

    /// A new account id.
    pub fn account(&self, clock: &dyn Clock) -> AccountId {
        AccountId(self.safe(clock))
    }

    /// A new room id.
    pub fn room(&self, clock: &dyn Clock) -> RoomId {
        RoomId(self.safe(clock))
    }

    /// A new organization id.
    pub fn organization(&self, clock: &dyn Clock) -> OrganizationId {
        OrganizationId(self.safe(clock))
    }

    /// A new task id.
    pub fn task(&self, clock: &dyn Clock) -> TaskId {
        TaskId(self.safe(clock))
    }

    /// A new file id.
    pub fn file(&self, clock: &dyn Clock) -> FileId {
        FileId(self.safe(clock))
    }

    /// A new contact request id.
    pub fn request(&self, clock: &dyn Clock) -> RequestId {
        RequestId(self.safe(clock))
    }

    /// A new message id.
    pub fn message(&self, clock: &dyn Clock) -> MessageId {
        MessageId(self.wide.lock().next_id(clock.now_ms()))
    }
}
