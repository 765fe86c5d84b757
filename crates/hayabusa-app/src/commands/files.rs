//! Files: the content goes to the blob store under a generated key, then the upload
//! is recorded (and announced by a message) in the room.

use super::{CommandHandler, Written};
use crate::error::AppError;
use hayabusa_domain::{AccountId, DomainError, Event, FileId, Role, RoomCommand, RoomId};
use hayabusa_store::IdempotencyKey;

/// Longest file name kept, in characters.
pub const MAX_FILENAME_CHARS: usize = hayabusa_domain::text::MAX_FILE_NAME_CHARS;

/// The file name as stored (the domain's [`hayabusa_domain::text::file_name`]).
pub fn sanitize_filename(raw: &str) -> String {
    hayabusa_domain::text::file_name(raw)
}

/// An upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewFile {
    /// The client's file name.
    pub filename: String,
    /// The content.
    pub content: Vec<u8>,
    /// Text posted with it.
    pub message: String,
}

impl CommandHandler {
    /// Stores a file and records it in the room; returns its id.
    pub async fn upload_file(
        &self,
        caller: AccountId,
        room: RoomId,
        input: NewFile,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<Written<FileId>, AppError> {
        // Check before storing anything, so outsiders cannot fill the blob store.
        match self.role_in(room, caller).await? {
            None => return Err(DomainError::NotFound("room").into()),
            Some(Role::Readonly) => {
                return Err(AppError::forbidden("readonly members cannot upload files"));
            }
            Some(_) => {}
        }
        let clock = self.clock.as_ref();
        let file_id = self.ids.file(clock);
        let filename = sanitize_filename(&input.filename);
        // Every rule about the input is checked before the content is stored.
        hayabusa_domain::room::attachment_body(file_id, &filename, &input.message)?;
        let blob_key = format!("file-{file_id}");
        let filesize = input.content.len() as u64;
        self.blobs.put(&blob_key, input.content).await?;
        let command = RoomCommand::AttachFile {
            file_id,
            message_id: self.ids.message(clock),
            filename,
            filesize,
            blob_key: blob_key.clone(),
            message: input.message,
        };
        let written = match self.execute(room, caller, command, idempotency).await {
            Ok(written) => written,
            Err(error) => {
                // Nothing refers to the content: remove it (the start-up sweep
                // removes it if this fails too).
                self.discard_blob(&blob_key).await;
                return Err(error);
            }
        };
        let recorded = written.value.iter().find_map(|event| match event {
            Event::FileUploaded { file_id, .. } => Some(*file_id),
            _ => None,
        });
        // A repeated Idempotency-Key answers with the first upload's file: this
        // request's copy of the content is not referenced.
        if recorded != Some(file_id) {
            self.discard_blob(&blob_key).await;
        }
        let file_id = recorded.unwrap_or(file_id);
        Ok(Written {
            value: file_id,
            position: written.position,
        })
    }
}

impl CommandHandler {
    /// Removes a blob nothing refers to, logging (not failing) when it cannot.
    async fn discard_blob(&self, blob_key: &str) {
        if let Err(error) = self.blobs.delete(blob_key).await {
            tracing::warn!(%blob_key, %error, "could not remove an unreferenced blob");
        }
    }
}
