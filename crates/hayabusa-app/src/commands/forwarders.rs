//! Forwarders: administrators set them up and remove them (the `forwarders` stream),
//! see their dead letters and have them sent again (a stream per forwarder,
//! `forwarder-{id}`); the forwarder's workers record what they gave up and what a
//! replay delivered.

use super::CommandHandler;
use crate::error::AppError;
use crate::forwarders::{FORWARDERS_STREAM, dead_letters_of_stream, forwarders_of_stream};
use hayabusa_domain::{
    AccountId, DeadLetterCommand, DeadLetters, DomainError, Forwarder, ForwarderCommand,
    Forwarders, RoomId, dead_letters_stream,
};
use hayabusa_store::AccountRow;

fn require_admin(caller: &AccountRow) -> Result<(), AppError> {
    if caller.admin {
        Ok(())
    } else {
        Err(AppError::forbidden("only administrators manage forwarders"))
    }
}

impl CommandHandler {
    async fn execute_forwarders(
        &self,
        caller: &AccountRow,
        command: ForwarderCommand,
    ) -> Result<u64, AppError> {
        require_admin(caller)?;
        self.execute_on_stream(
            FORWARDERS_STREAM,
            Forwarders::default,
            |forwarders, event, position| forwarders.evolve(event, position),
            |forwarders, now| forwarders.decide(caller.account_id, command.clone(), now),
        )
        .await
    }

    async fn execute_dead_letters(
        &self,
        actor: AccountId,
        forwarder_id: u64,
        command: DeadLetterCommand,
    ) -> Result<u64, AppError> {
        self.execute_on_stream(
            &dead_letters_stream(forwarder_id),
            DeadLetters::default,
            |letters, event, _| letters.evolve(event),
            |letters, now| letters.decide(forwarder_id, actor, command.clone(), now),
        )
        .await
    }

    /// An administrator subscribes `url` (checked by the caller) to the domain
    /// events (of `event_types` and `room_ids` only, if given); returns its id and
    /// signing secret.
    pub async fn create_forwarder(
        &self,
        caller: &AccountRow,
        url: String,
        event_types: Vec<String>,
        room_ids: Vec<RoomId>,
    ) -> Result<(u64, String), AppError> {
        let forwarder_id = self.ids.request(self.clock.as_ref()).0;
        self.execute_forwarders(
            caller,
            ForwarderCommand::Create {
                forwarder_id,
                url,
                event_types,
                room_ids,
            },
        )
        .await?;
        Ok((forwarder_id, self.secret.forwarder_secret(forwarder_id)))
    }

    /// Every forwarder (administrators only).
    pub async fn forwarders(&self, caller: &AccountRow) -> Result<Vec<Forwarder>, AppError> {
        require_admin(caller)?;
        let (forwarders, _) = forwarders_of_stream(self.log.as_ref()).await?;
        Ok(forwarders.forwarders.into_values().collect())
    }

    /// An administrator removes forwarder `forwarder_id`.
    pub async fn delete_forwarder(
        &self,
        caller: &AccountRow,
        forwarder_id: u64,
    ) -> Result<u64, AppError> {
        self.execute_forwarders(caller, ForwarderCommand::Delete { forwarder_id })
            .await
    }

    /// 404 unless forwarder `forwarder_id` exists.
    async fn existing_forwarder(&self, forwarder_id: u64) -> Result<(), AppError> {
        let (forwarders, _) = forwarders_of_stream(self.log.as_ref()).await?;
        if forwarders.forwarders.contains_key(&forwarder_id) {
            Ok(())
        } else {
            Err(DomainError::NotFound("forwarder").into())
        }
    }

    /// Forwarder `forwarder_id`'s dead letters (administrators only).
    pub async fn dead_letters(
        &self,
        caller: &AccountRow,
        forwarder_id: u64,
    ) -> Result<DeadLetters, AppError> {
        require_admin(caller)?;
        self.existing_forwarder(forwarder_id).await?;
        Ok(dead_letters_of_stream(self.log.as_ref(), forwarder_id)
            .await?
            .0)
    }

    /// An administrator asks for forwarder `forwarder_id`'s dead letters at
    /// `positions` (every one if None) to be sent again; returns the dead letters
    /// as they are then.
    pub async fn replay_dead_letters(
        &self,
        caller: &AccountRow,
        forwarder_id: u64,
        positions: Option<Vec<u64>>,
    ) -> Result<DeadLetters, AppError> {
        require_admin(caller)?;
        self.existing_forwarder(forwarder_id).await?;
        self.execute_dead_letters(
            caller.account_id,
            forwarder_id,
            DeadLetterCommand::Replay { positions },
        )
        .await?;
        Ok(dead_letters_of_stream(self.log.as_ref(), forwarder_id)
            .await?
            .0)
    }

    /// The forwarder's worker gave up the event at `position` (of `event_type`, in
    /// `stream`) after `failures` failed attempts, the last for `reason`.
    pub async fn record_dead_letter(
        &self,
        forwarder_id: u64,
        position: u64,
        event_type: String,
        stream: String,
        failures: u32,
        reason: String,
    ) -> Result<u64, AppError> {
        self.execute_dead_letters(
            AccountId(0),
            forwarder_id,
            DeadLetterCommand::Record {
                position,
                event_type,
                stream,
                failures,
                reason,
            },
        )
        .await
    }

    /// A replayed dead letter was delivered.
    pub async fn dead_letter_delivered(
        &self,
        forwarder_id: u64,
        position: u64,
    ) -> Result<u64, AppError> {
        self.execute_dead_letters(
            AccountId(0),
            forwarder_id,
            DeadLetterCommand::Delivered { position },
        )
        .await
    }
}
