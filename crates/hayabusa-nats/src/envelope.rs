//! The body of a JetStream message: one append.
//!
//! A message holds everything needed to answer reads and idempotent retries without
//! its headers: the stream name (subjects are escaped, see [`crate::subject`]), the
//! idempotency key and fingerprint if any, the time of the append, and either the
//! events or — for an append without events that carried a key — what the append
//! reported. The format is binary and versioned (the first byte), little-endian,
//! with length-prefixed strings, so payloads that are not UTF-8 survive.
//!
//! ```text
//! u8 format (1) | u8 kind (1 events, 2 key record)
//! str stream | str key | str fingerprint | i64 recorded_at_ms
//! kind 1: u32 count, count × (str event_type, u32 schema_version, bytes data)
//! kind 2: u64 stream revision, u64 position
//! str = bytes = u32 length + bytes
//! ```

use hayabusa_store::{NewEvent, StoreError};

const FORMAT: u8 = 1;
const KIND_EVENTS: u8 = 1;
const KIND_KEY_RECORD: u8 = 2;

/// What a message records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// The events of an append, in order.
    Events(Vec<NewEvent>),
    /// An append without events that carried an idempotency key: what it reported.
    KeyRecord {
        /// The stream's revision at the time.
        revision: u64,
        /// The position it reported.
        position: u64,
    },
}

/// One append as stored in a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The event stream (the port's name).
    pub stream: String,
    /// The idempotency key, empty if none.
    pub key: String,
    /// The request's fingerprint, empty if no key.
    pub fingerprint: String,
    /// When the append was made (the appending process's clock), Unix milliseconds.
    pub recorded_at_ms: i64,
    /// Events or key record.
    pub body: Body,
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), StoreError> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| StoreError::TooLarge(format!("a field of {} bytes", bytes.len())))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

impl Envelope {
    /// The message body.
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::with_capacity(64);
        out.push(FORMAT);
        out.push(match self.body {
            Body::Events(_) => KIND_EVENTS,
            Body::KeyRecord { .. } => KIND_KEY_RECORD,
        });
        put_bytes(&mut out, self.stream.as_bytes())?;
        put_bytes(&mut out, self.key.as_bytes())?;
        put_bytes(&mut out, self.fingerprint.as_bytes())?;
        out.extend_from_slice(&self.recorded_at_ms.to_le_bytes());
        match &self.body {
            Body::Events(events) => {
                let count = u32::try_from(events.len())
                    .map_err(|_| StoreError::TooLarge(format!("{} events", events.len())))?;
                out.extend_from_slice(&count.to_le_bytes());
                for event in events {
                    put_bytes(&mut out, event.event_type.as_bytes())?;
                    out.extend_from_slice(&event.schema_version.to_le_bytes());
                    put_bytes(&mut out, &event.data)?;
                }
            }
            Body::KeyRecord { revision, position } => {
                out.extend_from_slice(&revision.to_le_bytes());
                out.extend_from_slice(&position.to_le_bytes());
            }
        }
        Ok(out)
    }

    /// Reads a message body; anything malformed is [`StoreError::Corrupt`].
    pub fn decode(bytes: &[u8]) -> Result<Envelope, StoreError> {
        let mut reader = Reader { bytes, at: 0 };
        let format = reader.u8()?;
        if format != FORMAT {
            return Err(corrupt(format!("unknown message format {format}")));
        }
        let kind = reader.u8()?;
        let stream = reader.string()?;
        let key = reader.string()?;
        let fingerprint = reader.string()?;
        let recorded_at_ms = i64::from_le_bytes(reader.array()?);
        let body = match kind {
            KIND_EVENTS => {
                let count = u32::from_le_bytes(reader.array()?) as usize;
                // Each event takes at least 12 bytes: do not trust a huge count.
                let mut events = Vec::with_capacity(count.min(reader.remaining() / 12));
                for _ in 0..count {
                    let event_type = reader.string()?;
                    let schema_version = u32::from_le_bytes(reader.array()?);
                    let data = reader.bytes()?.to_vec();
                    events.push(NewEvent {
                        event_type,
                        schema_version,
                        data,
                    });
                }
                Body::Events(events)
            }
            KIND_KEY_RECORD => Body::KeyRecord {
                revision: u64::from_le_bytes(reader.array()?),
                position: u64::from_le_bytes(reader.array()?),
            },
            other => return Err(corrupt(format!("unknown message kind {other}"))),
        };
        if reader.remaining() != 0 {
            return Err(corrupt(format!(
                "{} bytes after the end of the message",
                reader.remaining()
            )));
        }
        Ok(Envelope {
            stream,
            key,
            fingerprint,
            recorded_at_ms,
            body,
        })
    }
}

fn corrupt(detail: String) -> StoreError {
    StoreError::Corrupt(format!("event log message: {detail}"))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], StoreError> {
        if self.remaining() < len {
            return Err(corrupt(format!(
                "truncated: {len} bytes wanted at offset {}, {} left",
                self.at,
                self.remaining()
            )));
        }
        let taken = &self.bytes[self.at..self.at + len];
        self.at += len;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.array::<1>()?[0])
    }

    fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        self.take(len)
    }

    fn string(&mut self) -> Result<String, StoreError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| corrupt("a name is not UTF-8".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events_envelope() -> Envelope {
        Envelope {
            stream: "room-1".into(),
            key: "account-1/key".into(),
            fingerprint: "fp".into(),
            recorded_at_ms: 1_700_000_000_123,
            body: Body::Events(vec![
                NewEvent {
                    event_type: "message_posted".into(),
                    schema_version: 2,
                    data: b"{\"a\":1}".to_vec(),
                },
                NewEvent {
                    event_type: "tasks_added".into(),
                    schema_version: 1,
                    data: vec![0, 255, 10, 13],
                },
            ]),
        }
    }

    #[test]
    fn events_round_trip() {
        let envelope = events_envelope();
        let bytes = envelope.encode().expect("encode");
        assert_eq!(Envelope::decode(&bytes), Ok(envelope));
    }

    #[test]
    fn key_records_round_trip() {
        let envelope = Envelope {
            stream: "s".into(),
            key: "k".into(),
            fingerprint: "f".into(),
            recorded_at_ms: -1,
            body: Body::KeyRecord {
                revision: 5 << 16 | 0xFFFF,
                position: 9 << 16 | 0xFFFF,
            },
        };
        let bytes = envelope.encode().expect("encode");
        assert_eq!(Envelope::decode(&bytes), Ok(envelope));
    }

    #[test]
    fn every_truncation_is_refused_as_corrupt() {
        let bytes = events_envelope().encode().expect("encode");
        for len in 0..bytes.len() {
            assert!(
                matches!(Envelope::decode(&bytes[..len]), Err(StoreError::Corrupt(_))),
                "a message cut at {len} bytes must be refused"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            Envelope::decode(&longer),
            Err(StoreError::Corrupt(_))
        ));
        let mut other_format = bytes;
        other_format[0] = 9;
        assert!(matches!(
            Envelope::decode(&other_format),
            Err(StoreError::Corrupt(_))
        ));
    }
}
