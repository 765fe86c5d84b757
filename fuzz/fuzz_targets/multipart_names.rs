//! Multipart part names and file names as the upload route reads them: axum's
//! `Multipart` parses the body, `upload_part` classifies each part, the app's
//! `sanitize_filename` makes the stored name, and the download's
//! `Content-Disposition` is built from it. Checks: no panic; the stored name is
//! never empty, `.` or `..`, has no path separator or control character and at most
//! 255 characters, and sanitizing twice changes nothing; the header is always a
//! valid header value whose `filename*` decodes back to the stored name.

#![no_main]

use arbitrary::Arbitrary;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::HeaderValue;
use hayabusa_app::commands::{MAX_FILENAME_CHARS, sanitize_filename};
use hayabusa_http::routes::files::{UploadPart, content_disposition, upload_part};
use libfuzzer_sys::fuzz_target;

const BOUNDARY: &str = "hayabusa-fuzz-boundary";

#[derive(Arbitrary, Debug)]
enum Input {
    /// A whole body after a fixed boundary header.
    Raw(Vec<u8>),
    /// Well-formed parts with fuzzed `name`/`filename` parameters.
    Parts(Vec<(String, Option<String>)>),
    /// A file name alone, straight to the pure functions.
    Name(String),
}

fn check_name(raw: &str) {
    let stored = sanitize_filename(raw);
    assert!(!stored.is_empty() && stored != "." && stored != "..");
    assert!(!stored.contains(['/', '\\']), "{stored:?}");
    assert!(!stored.chars().any(char::is_control), "{stored:?}");
    assert!(stored.chars().count() <= MAX_FILENAME_CHARS);
    assert_eq!(
        sanitize_filename(&stored),
        stored,
        "sanitizing is idempotent"
    );
    let header = content_disposition(&stored);
    assert!(HeaderValue::from_str(&header).is_ok(), "{header:?}");
    // The last one: the quoted fallback may contain the same text, the encoded value
    // cannot (`*`, `=` and `'` are percent-encoded).
    let encoded = header
        .rsplit_once("filename*=UTF-8''")
        .map(|(_, encoded)| encoded)
        .expect("filename* parameter");
    assert_eq!(
        percent_decode(encoded),
        stored.as_bytes(),
        "filename* of {stored:?}"
    );
}

/// RFC 5987 value decoding: `%XX` is a byte, anything else stands for itself.
fn percent_decode(encoded: &str) -> Vec<u8> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

fn body_of(parts: &[(String, Option<String>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{name}\"");
        if let Some(filename) = filename {
            disposition.push_str(&format!("; filename=\"{filename}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n\r\ncontent\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn read_parts(body: Vec<u8>) {
    let Ok(request) = Request::builder()
        .method("POST")
        .uri("/v2/rooms/1/files")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from(body))
    else {
        return;
    };
    futures::executor::block_on(async {
        let Ok(mut multipart) = Multipart::from_request(request, &()).await else {
            return;
        };
        while let Ok(Some(field)) = multipart.next_field().await {
            match upload_part(field.name(), field.file_name()) {
                UploadPart::File(filename) => check_name(&filename),
                UploadPart::Message => assert_eq!(field.name(), Some("message")),
                UploadPart::Ignored => {}
            }
            let _ = field.bytes().await;
        }
    });
}

fuzz_target!(|input: Input| {
    match input {
        Input::Raw(body) => read_parts(body),
        Input::Parts(parts) => read_parts(body_of(&parts)),
        Input::Name(name) => check_name(&name),
    }
});
