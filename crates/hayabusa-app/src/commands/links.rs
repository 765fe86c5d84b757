//! Invitation links: a code is claimed server-wide (stream `link-{code}`) before the
//! room uses it and released when the room stops using it; joining by link adds the
//! account, or files a join request that an admin resolves.

use super::{CommandHandler, MAX_ATTEMPTS, Written};
use crate::consistency::Key;
use crate::error::AppError;
use crate::streams;
use hayabusa_domain::room::validate_link_code;
use hayabusa_domain::{AccountId, DomainError, Event, LinkCode, RoomCommand, RoomId};
use hayabusa_store::{ExpectedVersion, StoreError};

/// Why a member who is not an admin cannot touch the link.
const LINK_ADMINS_ONLY: &str = "only room admins can change the invitation link";

/// The settings of a link to create or change; `None` keeps (or defaults) a value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkSettings {
    /// Code; a random one when creating without.
    pub code: Option<String>,
    /// Whether joining needs an admin's approval (default: yes).
    pub need_acceptance: Option<bool>,
    /// Description.
    pub description: Option<String>,
}

/// What joining by link did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Joined {
    /// The account is a member now.
    Member(RoomId),
    /// The account waits for an admin.
    Pending(RoomId),
}

fn random_code() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..16)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

impl CommandHandler {
    /// Claims `code` for `room` (no-op if the room holds it).
    async fn claim_code(&self, code: &str, room: RoomId) -> Result<(), AppError> {
        self.change_code(code, |state| state.claim(code, room))
            .await
    }

    /// Releases `code` if `room` holds it.
    async fn release_code(&self, code: &str, room: RoomId) -> Result<(), AppError> {
        self.change_code(code, |state| Ok(state.release(code, room)))
            .await
    }

    async fn change_code(
        &self,
        code: &str,
        decide: impl Fn(&LinkCode) -> Result<Vec<Event>, DomainError>,
    ) -> Result<(), AppError> {
        let stream = streams::link_code(code);
        for _ in 0..MAX_ATTEMPTS {
            let (events, version) = self.read_whole_stream(&stream).await?;
            let state = events.iter().fold(LinkCode::default(), LinkCode::evolve);
            let events = decide(&state)?;
            if events.is_empty() {
                return Ok(());
            }
            let expected = if version == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exactly(version)
            };
            match self.append(stream.clone(), expected, &events, None).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Contention(stream))
    }

    /// Creates the room's invitation link.
    pub async fn create_link(
        &self,
        caller: AccountId,
        room: RoomId,
        settings: LinkSettings,
    ) -> Result<Written<()>, AppError> {
        let code = settings.code.unwrap_or_else(random_code);
        validate_link_code(&code)?;
        self.require_admin(room, caller, LINK_ADMINS_ONLY).await?;
        self.claim_code(&code, room).await?;
        let command = RoomCommand::SetLink {
            code: code.clone(),
            need_acceptance: settings.need_acceptance.unwrap_or(true),
            description: settings.description.unwrap_or_default(),
            create: true,
        };
        match self.execute(room, caller, command, None).await {
            Ok(written) => Ok(Written {
                value: (),
                position: written.position,
            }),
            Err(error) => {
                // Give the code back unless the room already uses it.
                self.writes.settle_room(room).await?;
                if self
                    .read
                    .link_of_room(room)
                    .await?
                    .is_none_or(|link| link.code != code)
                {
                    self.release_code(&code, room).await?;
                }
                Err(error)
            }
        }
    }

    /// Changes the room's invitation link.
    pub async fn update_link(
        &self,
        caller: AccountId,
        room: RoomId,
        settings: LinkSettings,
    ) -> Result<Written<()>, AppError> {
        self.require_admin(room, caller, LINK_ADMINS_ONLY).await?;
        self.writes.settle_room(room).await?;
        let current = self
            .read
            .link_of_room(room)
            .await?
            .ok_or(AppError::Domain(DomainError::NotFound("link")))?;
        let code = settings.code.unwrap_or_else(|| current.code.clone());
        validate_link_code(&code)?;
        if code != current.code {
            self.claim_code(&code, room).await?;
        }
        let command = RoomCommand::SetLink {
            code: code.clone(),
            need_acceptance: settings.need_acceptance.unwrap_or(current.need_acceptance),
            description: settings.description.unwrap_or(current.description.clone()),
            create: false,
        };
        let written = match self.execute(room, caller, command, None).await {
            Ok(written) => written,
            Err(error) => {
                if code != current.code {
                    self.release_code(&code, room).await?;
                }
                return Err(error);
            }
        };
        if code != current.code {
            self.release_code(&current.code, room).await?;
        }
        Ok(Written {
            value: (),
            position: written.position,
        })
    }

    /// Removes the room's invitation link.
    pub async fn delete_link(
        &self,
        caller: AccountId,
        room: RoomId,
    ) -> Result<Written<()>, AppError> {
        self.require_admin(room, caller, LINK_ADMINS_ONLY).await?;
        let written = self
            .execute(room, caller, RoomCommand::RemoveLink, None)
            .await?;
        for event in &written.value {
            if let Event::LinkRemoved { code, .. } = event {
                self.release_code(code, room).await?;
            }
        }
        Ok(Written {
            value: (),
            position: written.position,
        })
    }

    /// Joins the room whose link has `code`.
    pub async fn join_by_link(
        &self,
        caller: AccountId,
        code: &str,
    ) -> Result<Written<Joined>, AppError> {
        validate_link_code(code).map_err(|_| AppError::Domain(DomainError::NotFound("link")))?;
        // Links set, changed or removed before this command count.
        self.writes.settle([Key::link_code(code)]).await?;
        let room = self
            .read
            .link_by_code(code)
            .await?
            .ok_or(AppError::Domain(DomainError::NotFound("link")))?
            .room_id;
        let command = RoomCommand::JoinByLink {
            code: code.to_string(),
        };
        let written = self.execute(room, caller, command, None).await?;
        let member = written
            .value
            .iter()
            .any(|e| matches!(e, Event::MembersChanged { .. }));
        Ok(Written {
            value: if member {
                Joined::Member(room)
            } else {
                Joined::Pending(room)
            },
            position: written.position,
        })
    }

    /// An admin approves or rejects a pending join request.
    pub async fn resolve_join(
        &self,
        caller: AccountId,
        room: RoomId,
        account: AccountId,
        approve: bool,
    ) -> Result<Written<()>, AppError> {
        let command = RoomCommand::ResolveJoin { account, approve };
        let written = self.execute(room, caller, command, None).await?;
        Ok(Written {
            value: (),
            position: written.position,
        })
    }
}
