//! The contact aggregate: one per pair of accounts (stream `contact-{low}-{high}`).
//! A request goes from one to the other; the other approves (they become contacts and
//! get a direct room) or rejects; either may remove the contact later.

use crate::error::DomainError;
use crate::event::Event;
use crate::ids::{AccountId, RequestId, RoomId};

/// Longest message with a contact request, in characters.
pub const MAX_REQUEST_MESSAGE_CHARS: usize = 1_000;

/// The state of one pair.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContactPair {
    /// A pending request: (id, from, to).
    pub pending: Option<(RequestId, AccountId, AccountId)>,
    /// Whether the two are contacts now.
    pub contacts: bool,
    /// The last approved request, for idempotent re-approval.
    pub approved: Option<RequestId>,
    /// Their direct room, once they first became contacts (kept across removals).
    pub direct_room: Option<RoomId>,
}

/// A command on a pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContactCommand {
    /// `actor` asks `to`.
    Request {
        /// New request id.
        request_id: RequestId,
        /// Who is asked.
        to: AccountId,
        /// Message.
        message: String,
    },
    /// `actor` approves request `request_id`; `new_room` is used if the pair has no
    /// direct room yet.
    Approve {
        /// The request.
        request_id: RequestId,
        /// A fresh room id.
        new_room: RoomId,
    },
    /// `actor` rejects request `request_id`.
    Reject {
        /// The request.
        request_id: RequestId,
    },
    /// `actor` removes `other` from its contacts (and vice versa).
    Remove {
        /// The other account.
        other: AccountId,
    },
}

impl ContactPair {
    /// Decides `actor`'s command at time `at`.
    pub fn decide(
        &self,
        actor: AccountId,
        command: ContactCommand,
        at: i64,
    ) -> Result<Vec<Event>, DomainError> {
        match command {
            ContactCommand::Request {
                request_id,
                to,
                message,
            } => {
                if to == actor {
                    return Err(DomainError::Invalid(
                        "you cannot send a contact request to yourself".into(),
                    ));
                }
                if message.chars().count() > MAX_REQUEST_MESSAGE_CHARS {
                    return Err(DomainError::Invalid(format!(
                        "message is longer than {MAX_REQUEST_MESSAGE_CHARS} characters"
                    )));
                }
                if self.contacts {
                    return Err(DomainError::Conflict("you are contacts already".into()));
                }
                match self.pending {
                    Some((_, from, _)) if from == actor => Err(DomainError::Conflict(
                        "your request is pending already".into(),
                    )),
                    Some(_) => Err(DomainError::Conflict(
                        "that account has sent you a request already: approve it instead".into(),
                    )),
                    None => Ok(vec![Event::ContactRequested {
                        request_id,
                        from: actor,
                        to,
                        message,
                        at,
                    }]),
                }
            }
            ContactCommand::Approve {
                request_id,
                new_room,
            } => {
                if self.approved == Some(request_id) && self.contacts {
                    return Ok(vec![]);
                }
                let (id, from, to) = self.pending.ok_or(DomainError::NotFound("request"))?;
                if id != request_id || to != actor {
                    return Err(DomainError::NotFound("request"));
                }
                Ok(vec![Event::ContactApproved {
                    request_id,
                    from,
                    to,
                    direct_room_id: self.direct_room.unwrap_or(new_room),
                    at,
                }])
            }
            ContactCommand::Reject { request_id } => {
                let (id, from, to) = self.pending.ok_or(DomainError::NotFound("request"))?;
                if id != request_id || to != actor {
                    return Err(DomainError::NotFound("request"));
                }
                Ok(vec![Event::ContactRejected {
                    request_id,
                    from,
                    to,
                    at,
                }])
            }
            ContactCommand::Remove { other } => {
                if !self.contacts {
                    return Err(DomainError::NotFound("contact"));
                }
                Ok(vec![Event::ContactRemoved {
                    by: actor,
                    other,
                    at,
                }])
            }
        }
    }

    /// Folds one event in.
    pub fn evolve(mut self, event: &Event) -> ContactPair {
        match event {
            Event::ContactRequested {
                request_id,
                from,
                to,
                ..
            } => self.pending = Some((*request_id, *from, *to)),
            Event::ContactApproved {
                request_id,
                direct_room_id,
                ..
            } => {
                self.pending = None;
                self.contacts = true;
                self.approved = Some(*request_id);
                self.direct_room = Some(*direct_room_id);
            }
            Event::ContactRejected { .. } => self.pending = None,
            Event::ContactRemoved { .. } => self.contacts = false,
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: AccountId = AccountId(1);
    const B: AccountId = AccountId(2);

    fn given(events: &[Event]) -> ContactPair {
        events
            .iter()
            .fold(ContactPair::default(), ContactPair::evolve)
    }

    fn requested() -> Event {
        Event::ContactRequested {
            request_id: RequestId(7),
            from: A,
            to: B,
            message: "hi".into(),
            at: 1,
        }
    }

    #[test]
    fn a_request_is_approved_by_its_addressee_only_and_creates_a_direct_room() {
        let pair = given(&[requested()]);
        let approve = ContactCommand::Approve {
            request_id: RequestId(7),
            new_room: RoomId(50),
        };
        assert_eq!(
            pair.decide(A, approve.clone(), 2),
            Err(DomainError::NotFound("request"))
        );
        let events = pair.decide(B, approve.clone(), 2).unwrap();
        assert_eq!(
            events,
            vec![Event::ContactApproved {
                request_id: RequestId(7),
                from: A,
                to: B,
                direct_room_id: RoomId(50),
                at: 2
            }]
        );
        // Approving again is a no-op (a retried request).
        let approved = given(&[requested(), events[0].clone()]);
        assert_eq!(approved.decide(B, approve, 3), Ok(vec![]));
    }

    #[test]
    fn duplicate_and_self_requests_are_refused() {
        let request = |to| ContactCommand::Request {
            request_id: RequestId(8),
            to,
            message: String::new(),
        };
        assert!(matches!(
            given(&[]).decide(A, request(A), 1),
            Err(DomainError::Invalid(_))
        ));
        assert!(matches!(
            given(&[requested()]).decide(A, request(B), 1),
            Err(DomainError::Conflict(_))
        ));
        assert!(matches!(
            given(&[requested()]).decide(B, request(A), 1),
            Err(DomainError::Conflict(_))
        ));
    }

    #[test]
    fn rejected_requests_can_be_sent_again_and_removed_contacts_keep_their_room() {
        let rejected = Event::ContactRejected {
            request_id: RequestId(7),
            from: A,
            to: B,
            at: 2,
        };
        let pair = given(&[requested(), rejected]);
        assert!(pair.pending.is_none());
        let approved = Event::ContactApproved {
            request_id: RequestId(7),
            from: A,
            to: B,
            direct_room_id: RoomId(50),
            at: 2,
        };
        let removed = Event::ContactRemoved {
            by: B,
            other: A,
            at: 3,
        };
        let pair = given(&[requested(), approved, removed]);
        assert!(!pair.contacts);
        assert_eq!(pair.direct_room, Some(RoomId(50)));
        assert_eq!(
            pair.decide(A, ContactCommand::Remove { other: B }, 4),
            Err(DomainError::NotFound("contact"))
        );
    }
}
