//! Files: the content goes to the blob store under a generated key, then the upload
//! is recorded (and announced by a message) in the room.

use super::{CommandHandler, Written};
use crate::error::AppError;
use hayabusa_domain::{AccountId, DomainError, Event, FileId, Role, RoomCommand, RoomId};
use hayabusa_store::IdempotencyKey;

/// Longest file name kept, in characters.
pub const MAX_FILENAME_CHARS: usize = 255;

/// The file name as stored: the last path component only, without control characters,
/// at most [`MAX_FILENAME_CHARS`] characters, never empty. It is metadata: no path is
/// ever built from it.
pub fn sanitize_filename(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_FILENAME_CHARS)
        .collect();
    let trimmed = cleaned.trim();
    if trimmed.is_empty() || trimmed == "." || trimmed == ".." {
        "file".to_string()
    } else {
        trimmed.to_string()
    }
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
        let blob_key = format!("file-{file_id}");
        let filesize = input.content.len() as u64;
        self.blobs.put(&blob_key, input.content).await?;
        let command = RoomCommand::AttachFile {
            file_id,
            message_id: self.ids.message(clock),
            filename: sanitize_filename(&input.filename),
            filesize,
            blob_key,
            message: input.message,
        };
        let written = self.execute(room, caller, command, idempotency).await?;
        let file_id = written
            .value
            .iter()
            .find_map(|event| match event {
                Event::FileUploaded { file_id, .. } => Some(*file_id),
                _ => None,
            })
            .unwrap_or(file_id);
        Ok(Written {
            value: file_id,
            position: written.position,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_file_names_become_harmless_metadata() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(sanitize_filename("a\0b\r\nc.txt"), "abc.txt");
        assert_eq!(sanitize_filename(".."), "file");
        assert_eq!(sanitize_filename(""), "file");
        assert_eq!(
            sanitize_filename(&"x".repeat(1000)).chars().count(),
            MAX_FILENAME_CHARS
        );
        assert_eq!(sanitize_filename("報告書.pdf"), "報告書.pdf");
    }
}
