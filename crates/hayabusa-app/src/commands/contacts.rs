//! Contacts: a request from one account to another, approved (they become contacts
//! with a direct room) or rejected; either side may remove the contact.

use super::{CommandHandler, MAX_ATTEMPTS, Written};
use crate::consistency::Key;
use crate::error::AppError;
use crate::streams;
use hayabusa_domain::{
    AccountId, ContactCommand, ContactPair, DomainError, Event, RequestId, Role, RoomId, RoomType,
};
use hayabusa_store::{AccountRow, ContactRequestRow, ExpectedVersion, StoreError};

impl CommandHandler {
    /// Runs a command on the pair (`actor`, `other`) with optimistic concurrency. An
    /// approval creates the direct room before it is recorded.
    async fn execute_pair(
        &self,
        actor: AccountId,
        other: AccountId,
        command: ContactCommand,
    ) -> Result<Written<Vec<Event>>, AppError> {
        let stream = streams::contact_pair(actor, other);
        for _ in 0..MAX_ATTEMPTS {
            let (events, version) = self.read_whole_stream(&stream).await?;
            let pair = events
                .iter()
                .fold(ContactPair::default(), ContactPair::evolve);
            let events = pair.decide(actor, command.clone(), self.clock.now_secs())?;
            if events.is_empty() {
                return Ok(Written {
                    value: events,
                    position: self.log.head(),
                });
            }
            for event in &events {
                if let Event::ContactApproved {
                    from,
                    to,
                    direct_room_id,
                    ..
                } = event
                {
                    self.ensure_direct_room(*from, *to, *direct_room_id).await?;
                }
            }
            let expected = if version == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exactly(version)
            };
            match self.append(stream.clone(), expected, &events, None).await {
                Ok(appended) => {
                    return Ok(Written {
                        value: events,
                        position: appended.position,
                    });
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Contention(stream))
    }

    /// Creates the pair's direct room unless it exists. Done before the approval is
    /// recorded, so an approved contact always has its room.
    async fn ensure_direct_room(
        &self,
        a: AccountId,
        b: AccountId,
        room: RoomId,
    ) -> Result<(), AppError> {
        let accounts = self.known_accounts(&[a.min(b), a.max(b)]).await?;
        let name = accounts
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let event = Event::RoomCreated {
            room_id: room,
            room_type: RoomType::Direct,
            name,
            description: String::new(),
            icon_preset: "group".into(),
            created_by: b,
            members: vec![(a.min(b), Role::Admin), (a.max(b), Role::Admin)],
            at: self.clock.now_secs(),
        };
        match self
            .append(
                streams::room(room),
                ExpectedVersion::NoStream,
                &[event],
                None,
            )
            .await
        {
            Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// `caller` asks `to` to become a contact; returns the request id.
    pub async fn request_contact(
        &self,
        caller: &AccountRow,
        to: AccountId,
        message: String,
    ) -> Result<Written<RequestId>, AppError> {
        self.known_accounts(&[to]).await?;
        let request_id = self.ids.request(self.clock.as_ref());
        let command = ContactCommand::Request {
            request_id,
            to,
            message,
        };
        let written = self.execute_pair(caller.account_id, to, command).await?;
        Ok(Written {
            value: request_id,
            position: written.position,
        })
    }

    /// A pending request addressed to `caller` (404 otherwise, also for others'
    /// requests).
    async fn incoming(
        &self,
        caller: AccountId,
        request: RequestId,
    ) -> Result<ContactRequestRow, AppError> {
        // Requests to the caller, and their resolutions, acknowledged before this.
        self.writes.settle([Key::Account(caller)]).await?;
        self.read
            .contact_request(request)
            .await?
            .filter(|r| r.to == caller)
            .ok_or(AppError::Domain(DomainError::NotFound("request")))
    }

    /// Approves a request: returns the new contact's direct room.
    pub async fn approve_contact(
        &self,
        caller: AccountId,
        request: RequestId,
    ) -> Result<Written<(AccountId, RoomId)>, AppError> {
        let pending = self.incoming(caller, request).await?;
        let command = ContactCommand::Approve {
            request_id: request,
            new_room: self.ids.room(self.clock.as_ref()),
        };
        let written = self.execute_pair(caller, pending.from, command).await?;
        let room = written.value.iter().find_map(|e| match e {
            Event::ContactApproved { direct_room_id, .. } => Some(*direct_room_id),
            _ => None,
        });
        let room = room.ok_or(AppError::Domain(DomainError::NotFound("request")))?;
        Ok(Written {
            value: (pending.from, room),
            position: written.position,
        })
    }

    /// Rejects a request.
    pub async fn reject_contact(
        &self,
        caller: AccountId,
        request: RequestId,
    ) -> Result<Written<()>, AppError> {
        let pending = self.incoming(caller, request).await?;
        let command = ContactCommand::Reject {
            request_id: request,
        };
        let written = self.execute_pair(caller, pending.from, command).await?;
        Ok(Written {
            value: (),
            position: written.position,
        })
    }

    /// Removes a contact (both ways).
    pub async fn remove_contact(
        &self,
        caller: AccountId,
        other: AccountId,
    ) -> Result<Written<()>, AppError> {
        let written = self
            .execute_pair(caller, other, ContactCommand::Remove { other })
            .await?;
        Ok(Written {
            value: (),
            position: written.position,
        })
    }
}
