//! Forwarders: administrators set them up and remove them (the `forwarders` stream).

use super::{CommandHandler, MAX_ATTEMPTS};
use crate::error::AppError;
use crate::forwarders::{FORWARDERS_STREAM, forwarders_of_stream};
use hayabusa_domain::{Forwarder, ForwarderCommand, RoomId};
use hayabusa_store::{AccountRow, ExpectedVersion, StoreError};

impl CommandHandler {
    async fn execute_forwarders(
        &self,
        caller: &AccountRow,
        command: ForwarderCommand,
    ) -> Result<u64, AppError> {
        if !caller.admin {
            return Err(AppError::forbidden("only administrators manage forwarders"));
        }
        for _ in 0..MAX_ATTEMPTS {
            let (forwarders, version) = forwarders_of_stream(self.log.as_ref()).await?;
            let events =
                forwarders.decide(caller.account_id, command.clone(), self.clock.now_secs())?;
            if events.is_empty() {
                return Ok(self.log.head());
            }
            let expected = if version == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exactly(version)
            };
            match self
                .append(FORWARDERS_STREAM.to_owned(), expected, &events, None)
                .await
            {
                Ok(appended) => return Ok(appended.position),
                Err(StoreError::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(AppError::Contention(FORWARDERS_STREAM.to_owned()))
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
        if !caller.admin {
            return Err(AppError::forbidden("only administrators manage forwarders"));
        }
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
}
