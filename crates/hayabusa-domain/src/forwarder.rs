//! Forwarders: administrators subscribe a destination to every domain event (or to
//! some event types, or some rooms' events) — Falcon's "forward everything to the
//! other system". All forwarders live in one stream (`forwarders`).

use crate::error::DomainError;
use crate::event::Event;
use crate::ids::{AccountId, RoomId};
use std::collections::BTreeMap;

/// One forwarder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forwarder {
    /// Its id.
    pub forwarder_id: u64,
    /// Where events go: an `https://` (or allowed `http://`) URL.
    pub url: String,
    /// Only these stored event types (empty: every type).
    pub event_types: Vec<String>,
    /// Only these rooms' events (empty: every event, rooms or not).
    pub room_ids: Vec<RoomId>,
    /// Who set it up.
    pub created_by: AccountId,
    /// Position in the log where it was created: forwarding starts after it.
    pub created_at_position: u64,
}

/// Every forwarder (the `forwarders` stream).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forwarders {
    /// By id.
    pub forwarders: BTreeMap<u64, Forwarder>,
}

/// A command on the forwarders (by an administrator; the caller checks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForwarderCommand {
    /// Set one up.
    Create {
        /// A fresh id.
        forwarder_id: u64,
        /// Where to send (checked by the caller).
        url: String,
        /// Only these event types.
        event_types: Vec<String>,
        /// Only these rooms.
        room_ids: Vec<RoomId>,
    },
    /// Remove one.
    Delete {
        /// Which.
        forwarder_id: u64,
    },
}

impl Forwarders {
    /// Decides `actor`'s command at time `at`.
    pub fn decide(
        &self,
        actor: AccountId,
        command: ForwarderCommand,
        at: i64,
    ) -> Result<Vec<Event>, DomainError> {
        match command {
            ForwarderCommand::Create {
                forwarder_id,
                url,
                event_types,
                room_ids,
            } => {
                if self.forwarders.contains_key(&forwarder_id) {
                    return Ok(Vec::new());
                }
                Ok(vec![Event::ForwarderCreated {
                    forwarder_id,
                    url,
                    event_types,
                    room_ids,
                    by: actor,
                    at,
                }])
            }
            ForwarderCommand::Delete { forwarder_id } => {
                if !self.forwarders.contains_key(&forwarder_id) {
                    return Err(DomainError::NotFound("forwarder"));
                }
                Ok(vec![Event::ForwarderDeleted {
                    forwarder_id,
                    by: actor,
                    at,
                }])
            }
        }
    }

    /// Applies a stored event at `position` (others are ignored).
    pub fn evolve(mut self, event: &Event, position: u64) -> Self {
        match event {
            Event::ForwarderCreated {
                forwarder_id,
                url,
                event_types,
                room_ids,
                by,
                ..
            } => {
                self.forwarders.insert(
                    *forwarder_id,
                    Forwarder {
                        forwarder_id: *forwarder_id,
                        url: url.clone(),
                        event_types: event_types.clone(),
                        room_ids: room_ids.clone(),
                        created_by: *by,
                        created_at_position: position,
                    },
                );
            }
            Event::ForwarderDeleted { forwarder_id, .. } => {
                self.forwarders.remove(forwarder_id);
            }
            _ => {}
        }
        self
    }
}

/// An event a forwarder gave up on, waiting for an administrator's replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// The event's position in the log.
    pub position: u64,
    /// Its stored type.
    pub event_type: String,
    /// Its stream.
    pub stream: String,
    /// Attempts that failed (over every schedule it went through).
    pub failures: u32,
    /// The last failure.
    pub reason: String,
    /// When it was (last) given up, Unix seconds.
    pub at: i64,
    /// An administrator asked for it to be sent again, and it has not been yet.
    pub replay_requested: bool,
}

/// One forwarder's dead letters (its stream `forwarder-{id}`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeadLetters {
    /// By position in the log.
    pub letters: BTreeMap<u64, DeadLetter>,
}

/// The stream of forwarder `forwarder_id`'s dead letters.
pub fn dead_letters_stream(forwarder_id: u64) -> String {
    format!("forwarder-{forwarder_id}")
}

/// A command on a forwarder's dead letters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeadLetterCommand {
    /// The forwarder gave an event up.
    Record {
        /// The event's position.
        position: u64,
        /// Its stored type.
        event_type: String,
        /// Its stream.
        stream: String,
        /// Attempts that failed.
        failures: u32,
        /// The last failure.
        reason: String,
    },
    /// Send these dead letters again (None: every one).
    Replay {
        /// Which.
        positions: Option<Vec<u64>>,
    },
    /// A replayed dead letter was delivered.
    Delivered {
        /// Which.
        position: u64,
    },
}

impl DeadLetters {
    /// Decides `actor`'s `command` on forwarder `forwarder_id`'s dead letters at
    /// time `at`. Replaying a position that is not a dead letter is refused.
    pub fn decide(
        &self,
        forwarder_id: u64,
        actor: AccountId,
        command: DeadLetterCommand,
        at: i64,
    ) -> Result<Vec<Event>, DomainError> {
        match command {
            DeadLetterCommand::Record {
                position,
                event_type,
                stream,
                failures,
                reason,
            } => Ok(vec![Event::ForwarderDeadLettered {
                forwarder_id,
                position,
                event_type,
                stream,
                failures,
                reason,
                at,
            }]),
            DeadLetterCommand::Replay { positions } => {
                let positions: Vec<u64> = match positions {
                    None => self.letters.keys().copied().collect(),
                    Some(mut positions) => {
                        positions.sort_unstable();
                        positions.dedup();
                        if positions.iter().any(|p| !self.letters.contains_key(p)) {
                            return Err(DomainError::NotFound("dead letter"));
                        }
                        positions
                    }
                };
                let positions: Vec<u64> = positions
                    .into_iter()
                    .filter(|position| !self.letters[position].replay_requested)
                    .collect();
                if positions.is_empty() {
                    return Ok(Vec::new());
                }
                Ok(vec![Event::ForwarderReplayRequested {
                    forwarder_id,
                    positions,
                    by: actor,
                    at,
                }])
            }
            DeadLetterCommand::Delivered { position } => {
                if !self.letters.contains_key(&position) {
                    return Ok(Vec::new());
                }
                Ok(vec![Event::ForwarderDeadLetterDelivered {
                    forwarder_id,
                    position,
                    at,
                }])
            }
        }
    }

    /// Applies a stored event (others are ignored).
    pub fn evolve(mut self, event: &Event) -> Self {
        match event {
            Event::ForwarderDeadLettered {
                position,
                event_type,
                stream,
                failures,
                reason,
                at,
                ..
            } => {
                let earlier = self
                    .letters
                    .get(position)
                    .map_or(0, |letter| letter.failures);
                self.letters.insert(
                    *position,
                    DeadLetter {
                        position: *position,
                        event_type: event_type.clone(),
                        stream: stream.clone(),
                        failures: earlier.saturating_add(*failures),
                        reason: reason.clone(),
                        at: *at,
                        replay_requested: false,
                    },
                );
            }
            Event::ForwarderReplayRequested { positions, .. } => {
                for position in positions {
                    if let Some(letter) = self.letters.get_mut(position) {
                        letter.replay_requested = true;
                    }
                }
            }
            Event::ForwarderDeadLetterDelivered { position, .. } => {
                self.letters.remove(position);
            }
            _ => {}
        }
        self
    }

    /// The dead letters waiting to be replayed, oldest first.
    pub fn to_replay(&self) -> impl Iterator<Item = &DeadLetter> {
        self.letters
            .values()
            .filter(|letter| letter.replay_requested)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_forwarders_are_kept_until_deleted() {
        let create = ForwarderCommand::Create {
            forwarder_id: 7,
            url: "https://sink.example".into(),
            event_types: vec!["message_posted".into()],
            room_ids: vec![],
        };
        let events = Forwarders::default()
            .decide(AccountId(1), create.clone(), 5)
            .unwrap();
        let forwarders = Forwarders::default().evolve(&events[0], 42);
        assert_eq!(forwarders.forwarders[&7].created_at_position, 42);
        assert_eq!(forwarders.decide(AccountId(1), create, 6).unwrap(), vec![]);
        let deleted = forwarders
            .decide(
                AccountId(1),
                ForwarderCommand::Delete { forwarder_id: 7 },
                7,
            )
            .unwrap();
        let forwarders = forwarders.evolve(&deleted[0], 43);
        assert!(forwarders.forwarders.is_empty());
        assert_eq!(
            forwarders.decide(
                AccountId(1),
                ForwarderCommand::Delete { forwarder_id: 7 },
                8
            ),
            Err(DomainError::NotFound("forwarder"))
        );
    }

    #[test]
    fn dead_letters_are_replayed_on_request_and_leave_when_delivered() {
        let admin = AccountId(1);
        let record = |position: u64| DeadLetterCommand::Record {
            position,
            event_type: "message_posted".into(),
            stream: "room-5".into(),
            failures: 3,
            reason: "500".into(),
        };
        let apply = |letters: DeadLetters, command: DeadLetterCommand| {
            let events = letters.decide(7, admin, command, 100).unwrap();
            events.iter().fold(letters, DeadLetters::evolve)
        };
        let letters = apply(DeadLetters::default(), record(10));
        let letters = apply(letters, record(12));
        assert_eq!(letters.letters.len(), 2);
        assert_eq!(letters.to_replay().count(), 0);
        assert_eq!(
            letters.decide(
                7,
                admin,
                DeadLetterCommand::Replay {
                    positions: Some(vec![11])
                },
                100
            ),
            Err(DomainError::NotFound("dead letter"))
        );
        let letters = apply(
            letters,
            DeadLetterCommand::Replay {
                positions: Some(vec![12]),
            },
        );
        let replay: Vec<u64> = letters.to_replay().map(|l| l.position).collect();
        assert_eq!(replay, vec![12]);
        // Asked again: nothing new to record.
        assert_eq!(
            letters
                .decide(
                    7,
                    admin,
                    DeadLetterCommand::Replay {
                        positions: Some(vec![12])
                    },
                    100
                )
                .unwrap(),
            vec![]
        );
        // Everything: only 10 is new.
        let letters = apply(letters, DeadLetterCommand::Replay { positions: None });
        assert_eq!(letters.to_replay().count(), 2);
        // A replay that fails again goes back to the list, its failures added up.
        let letters = apply(letters, record(10));
        assert_eq!(letters.letters[&10].failures, 6);
        assert!(!letters.letters[&10].replay_requested);
        let letters = apply(letters, DeadLetterCommand::Delivered { position: 12 });
        assert_eq!(
            letters.letters.keys().copied().collect::<Vec<_>>(),
            vec![10]
        );
        assert_eq!(
            letters
                .decide(7, admin, DeadLetterCommand::Delivered { position: 12 }, 100)
                .unwrap(),
            vec![]
        );
    }
}
