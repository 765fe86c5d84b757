//! Webhook settings: create, list and delete an account's webhooks (the `webhooks`
//! stream), and disable one whose receiver answered 410 Gone.

use super::CommandHandler;
use crate::error::AppError;
use crate::webhooks::{WEBHOOKS_STREAM, settings_of_stream};
use hayabusa_domain::{
    AccountId, DomainError, RoomId, WebhookCommand, WebhookEventType, WebhookSetting,
    WebhookSettings,
};
use hayabusa_store::AccountRow;

/// A new webhook: its setting and its token (the HMAC key of its signatures).
#[derive(Clone, Debug)]
pub struct CreatedWebhook {
    /// The setting.
    pub setting_id: u64,
    /// Base64 of the signing key.
    pub token: String,
    /// Where the creation was appended.
    pub position: u64,
}

impl CommandHandler {
    /// Runs a command on the settings with optimistic concurrency; returns where it
    /// was appended (the log's head if it changed nothing).
    async fn execute_webhooks(
        &self,
        actor: AccountId,
        command: WebhookCommand,
    ) -> Result<u64, AppError> {
        self.execute_on_stream(
            WEBHOOKS_STREAM,
            WebhookSettings::default,
            |settings, event, position| settings.evolve(event, position),
            |settings, now| settings.decide(actor, command.clone(), now),
        )
        .await
    }

    /// `caller` sets up a webhook to `url` (already checked by the transport) for
    /// `event_types`, in `room_id` only if given (the caller must be a member).
    pub async fn create_webhook(
        &self,
        caller: &AccountRow,
        url: String,
        event_types: Vec<WebhookEventType>,
        room_id: Option<RoomId>,
    ) -> Result<CreatedWebhook, AppError> {
        if let Some(room) = room_id {
            let members = self.read.members(room).await?;
            if !members
                .iter()
                .any(|member| member.account.account_id == caller.account_id)
            {
                return Err(DomainError::NotFound("room").into());
            }
        }
        let setting_id = self.ids.request(self.clock.as_ref()).0;
        let command = WebhookCommand::Create {
            webhook_id: setting_id,
            url,
            event_types,
            room_id,
        };
        let position = self.execute_webhooks(caller.account_id, command).await?;
        Ok(CreatedWebhook {
            setting_id,
            token: self.secret.webhook_token(setting_id),
            position,
        })
    }

    /// `caller`'s webhooks, oldest first (read from the log: every one acknowledged
    /// before this call is there).
    pub async fn webhooks_of(&self, caller: &AccountRow) -> Result<Vec<WebhookSetting>, AppError> {
        let (settings, _) = settings_of_stream(self.log.as_ref()).await?;
        Ok(settings.of(caller.account_id).cloned().collect())
    }

    /// `caller` deletes its webhook `setting_id` (404 if it is not the caller's).
    pub async fn delete_webhook(
        &self,
        caller: &AccountRow,
        setting_id: u64,
    ) -> Result<u64, AppError> {
        self.execute_webhooks(
            caller.account_id,
            WebhookCommand::Delete {
                webhook_id: setting_id,
            },
        )
        .await
    }

    /// The server stops webhook `setting_id`'s deliveries, saying why.
    pub async fn disable_webhook(&self, setting_id: u64, reason: String) -> Result<u64, AppError> {
        self.execute_webhooks(
            AccountId(0),
            WebhookCommand::Disable {
                webhook_id: setting_id,
                reason,
            },
        )
        .await
    }
}
