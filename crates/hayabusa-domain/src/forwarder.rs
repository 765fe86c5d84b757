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
}
