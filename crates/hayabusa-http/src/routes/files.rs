//! `/v2/rooms/{room_id}/files…` and the signed download `/v2/files/download/…`.
//!
//! Contents live in the blob store under generated keys; the client's file name is
//! metadata. Downloads need no token: the URL carries an HMAC signature over room,
//! file and expiry (valid 30 s), and are served as attachments that browsers must
//! not sniff.

use crate::auth::Caller;
use crate::dto;
use crate::error::{ApiError, ApiResult};
use crate::params::{Params, path_id, room_id};
use crate::public_url::BaseUrl;
use crate::routes::idempotency;
use crate::state::AppState;
use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hayabusa_app::NewFile;
use hayabusa_domain::{AccountId, FileId, RoomId};
use std::sync::Arc;

/// How long a download URL stays valid.
pub const DOWNLOAD_URL_TTL_SECS: i64 = 30;

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn file_id(raw: &str) -> ApiResult<FileId> {
    path_id(raw, "file_id", "file")
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the file is larger than the limit of {max} bytes"),
    )
}

/// What the upload route makes of a multipart part, from its `name` and `filename`
/// (as `Content-Disposition` gives them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UploadPart {
    /// The `file` part, with the client's file name (`file` if it gave none).
    File(String),
    /// The `message` part; some clients send it with a file name: it is still text.
    Message,
    /// Any other part: read past and ignored.
    Ignored,
}

/// Classifies a multipart part of an upload (pure, so that it can be fuzzed).
pub fn upload_part(name: Option<&str>, file_name: Option<&str>) -> UploadPart {
    match name {
        Some("file") => UploadPart::File(file_name.unwrap_or("file").to_string()),
        Some("message") => UploadPart::Message,
        _ => UploadPart::Ignored,
    }
}

/// Uploads a file (multipart: `file`, optional `message`).
pub async fn upload(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(room): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Json<dto::FileId>> {
    let room = room_id(&room)?;
    let max = state.uploads.max_bytes;
    let mut multipart = Multipart::from_request(request, &state)
        .await
        .map_err(|_| {
            ApiError::bad_request("the upload must be multipart/form-data with a file part")
        })?;
    let mut file: Option<(String, Vec<u8>)> = None;
    let mut message = String::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large(max)),
            Err(e) => {
                return Err(ApiError::bad_request(format!(
                    "the multipart body could not be read: {}",
                    e.body_text()
                )));
            }
        };
        match upload_part(field.name(), field.file_name()) {
            UploadPart::File(filename) => {
                let content = field.bytes().await.map_err(|e| {
                    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        too_large(max)
                    } else {
                        crate::error::body_error(&e)
                    }
                })?;
                if content.len() > max {
                    return Err(too_large(max));
                }
                file = Some((filename, content.to_vec()));
            }
            UploadPart::Message => {
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|_| ApiError::bad_request("the message part could not be read"))?;
                message = String::from_utf8(bytes.to_vec())
                    .map_err(|_| ApiError::bad_request("message must be UTF-8 text"))?;
            }
            UploadPart::Ignored => {}
        }
    }
    let (filename, content) = file.ok_or_else(|| ApiError::bad_request("file is required"))?;
    let mut fingerprint = Params::default();
    fingerprint.0.insert("filename".into(), filename.clone());
    fingerprint.0.insert("message".into(), message.clone());
    fingerprint
        .0
        .insert("filesize".into(), content.len().to_string());
    let key = idempotency(&headers, caller.account_id, &method, &uri, &fingerprint)?;
    let input = NewFile {
        filename,
        content,
        message,
    };
    let written = state
        .app
        .commands
        .upload_file(caller.account_id, room, input, key)
        .await?;
    Ok(Json(dto::FileId {
        file_id: written.value.0,
    }))
}

/// Files of a room.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path(room): Path<String>,
    params: Params,
) -> ApiResult<Json<Vec<dto::File>>> {
    let room = room_id(&room)?;
    let uploader = params.optional_id::<AccountId>("account_id")?;
    let files = state
        .app
        .queries
        .files(caller.account_id, room, uploader)
        .await?;
    Ok(Json(
        files
            .iter()
            .map(|f| dto::File::new(f, None, &state.public.base_url))
            .collect(),
    ))
}

/// One file, with a signed download URL on `create_download_url=1`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Caller(caller): Caller,
    Path((room, file)): Path<(String, String)>,
    BaseUrl(base): BaseUrl,
    params: Params,
) -> ApiResult<Json<dto::File>> {
    let room = room_id(&room)?;
    let file = file_id(&file)?;
    let with_url = params.flag("create_download_url", false)?;
    let view = state
        .app
        .queries
        .file(caller.account_id, room, file)
        .await?;
    let url = with_url.then(|| {
        let expires = now_secs() + DOWNLOAD_URL_TTL_SECS;
        let signature = state
            .app
            .commands
            .secret()
            .download_signature(room.0, file.0, expires);
        format!(
            "{base}/v2/files/download/{}/{}?expires={expires}&signature={signature}",
            room.0, file.0
        )
    });
    Ok(Json(dto::File::new(&view, url, &state.public.base_url)))
}

/// RFC 6266/5987 `Content-Disposition` that no file name can break out of.
pub fn content_disposition(filename: &str) -> String {
    let fallback: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '/' | ';' | '%') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for byte in filename.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// The download behind a signed URL.
pub async fn download(
    State(state): State<Arc<AppState>>,
    Path((room, file)): Path<(String, String)>,
    params: Params,
) -> ApiResult<Response> {
    let forbidden = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "the download URL is invalid or has expired",
        )
    };
    let room: RoomId = room_id(&room).map_err(|_| forbidden())?;
    let file = file_id(&file).map_err(|_| forbidden())?;
    let expires: i64 = params
        .get("expires")
        .and_then(|e| e.parse().ok())
        .ok_or_else(forbidden)?;
    let signature = params.get("signature").ok_or_else(forbidden)?;
    if !state
        .app
        .commands
        .secret()
        .verify_download(room.0, file.0, expires, signature)
        || expires < now_secs()
    {
        return Err(forbidden());
    }
    let view = state.app.queries.file_unchecked(room, file).await?;
    let content = state
        .app
        .blobs
        .get(&view.file.blob_key)
        .await
        .map_err(hayabusa_app::AppError::from)?
        .ok_or_else(|| ApiError::not_found("file"))?;
    let disposition = HeaderValue::from_str(&content_disposition(&view.file.filename))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            ),
        ],
        content,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_disposition_quotes_nothing_a_client_controls() {
        let value = content_disposition("a\"b;c\\d/e%f.txt");
        assert_eq!(
            value,
            "attachment; filename=\"a_b_c_d_e_f.txt\"; filename*=UTF-8''a%22b%3Bc%5Cd%2Fe%25f.txt"
        );
        let value = content_disposition("報告.pdf");
        assert!(value.starts_with("attachment; filename=\"__.pdf\"; filename*=UTF-8''%E5%A0%B1"));
        assert!(HeaderValue::from_str(&content_disposition("x\u{7f}y")).is_ok());
    }
}
