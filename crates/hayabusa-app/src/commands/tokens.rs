//! API token rotation and revocation: a new token generation recorded in the
//! account's stream (`account_token_rotated`), after which the old token is refused.

use super::{CommandHandler, MAX_ATTEMPTS, Written};
use crate::error::AppError;
use crate::projector::decode;
use crate::streams;
use crate::tokens::hash_token;
use hayabusa_domain::{AccountId, DomainError, Event};
use hayabusa_store::{AccountRow, ExpectedVersion, IdempotencyKey, StoreError};

impl CommandHandler {
    /// Replaces the caller's API token with a new one and returns it; the old one is
    /// refused from the moment this returns. A request retried with the same
    /// `Idempotency-Key` gets the same new token again (it is derived, not stored).
    pub async fn rotate_token(
        &self,
        caller: &AccountRow,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<Written<String>, AppError> {
        let written = self
            .new_token_generation(caller.account_id, caller.account_id, idempotency)
            .await?;
        Ok(Written {
            value: self.secret.token_at(caller.account_id, written.value),
            position: written.position,
        })
    }

    /// An administrator issues `account` a new API token (to hand over, e.g. after a
    /// revocation or a lost rotation answer) and gets it; the old one is refused from
    /// the moment this returns. 403 for a non-administrator, 404 for an unknown account.
    pub async fn issue_token(
        &self,
        admin: &AccountRow,
        account: AccountId,
    ) -> Result<Written<String>, AppError> {
        let written = self
            .new_generation_by_admin(admin, account, "issue")
            .await?;
        Ok(Written {
            value: self.secret.token_at(account, written.value),
            position: written.position,
        })
    }

    /// An administrator revokes `account`'s API token: it moves to a new generation
    /// whose token is handed to nobody. 403 for a non-administrator, 404 for an
    /// unknown account.
    pub async fn revoke_token(
        &self,
        admin: &AccountRow,
        account: AccountId,
    ) -> Result<Written<()>, AppError> {
        let written = self
            .new_generation_by_admin(admin, account, "revoke")
            .await?;
        Ok(Written {
            value: (),
            position: written.position,
        })
    }

    /// Moves `account` to a new token generation on an administrator's behalf (`what`
    /// they do with it: "issue" or "revoke"), and logs it.
    async fn new_generation_by_admin(
        &self,
        admin: &AccountRow,
        account: AccountId,
        what: &str,
    ) -> Result<Written<u64>, AppError> {
        if !admin.admin {
            return Err(AppError::forbidden(format!(
                "only administrators can {what} tokens"
            )));
        }
        let written = self
            .new_token_generation(account, admin.account_id, None)
            .await?;
        tracing::info!(
            %account,
            by = %admin.account_id,
            generation = written.value,
            action = what,
            "API token generation changed by an administrator"
        );
        Ok(written)
    }

    /// Appends the next token generation of `account`; returns the generation.
    async fn new_token_generation(
        &self,
        account: AccountId,
        by: AccountId,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<Written<u64>, AppError> {
        let stream = streams::account(account);
        for _ in 0..MAX_ATTEMPTS {
            let (events, version) = self.read_whole_stream(&stream).await?;
            if version == 0 {
                return Err(DomainError::NotFound("account").into());
            }
            let current = events
                .iter()
                .filter_map(|event| match event {
                    Event::AccountTokenRotated { generation, .. } => Some(*generation),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            let generation = current + 1;
            let event = Event::AccountTokenRotated {
                account_id: account,
                generation,
                token_hash: hash_token(&self.secret.token_at(account, generation)),
                by,
                at: self.clock.now_secs(),
            };
            match self
                .append(
                    stream.clone(),
                    ExpectedVersion::Exactly(version),
                    &[event],
                    idempotency.clone(),
                )
                .await
            {
                Ok(appended) => {
                    // On a retried request these are the first attempt's values.
                    let Some(Event::AccountTokenRotated {
                        generation,
                        token_hash,
                        ..
                    }) = appended.events.first().map(decode).transpose()?
                    else {
                        return Err(StoreError::Corrupt(format!(
                            "{stream}: a token rotation was recorded as another event"
                        ))
                        .into());
                    };
                    if !appended.duplicate {
                        // Before the acknowledgement: the old token is refused from now on.
                        self.auth.rotated(account, appended.position, token_hash);
                    }
                    return Ok(Written {
                        value: generation,
                        position: appended.position,
                    });
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Contention(stream))
    }
}
