//! The few JetStream API calls the event log makes, as plain request/reply JSON.
//!
//! The adapter talks to the JetStream API directly (`$JS.API.…` subjects and
//! publish acknowledgements) rather than through the client library's typed
//! JetStream layer, so that it sees the server's exact answers — the sequence a
//! duplicate points at, the subject's last sequence in a "wrong last sequence"
//! refusal — and keeps working across client library versions.

use async_nats::{Client, HeaderMap, RequestErrorKind};
use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use hayabusa_store::StoreError;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// `Nats-Msg-Id`: deduplication within the stream's duplicate window.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// `Nats-Expected-Last-Subject-Sequence`: optimistic concurrency per subject.
pub const EXPECTED_LAST_SUBJECT_SEQUENCE: &str = "Nats-Expected-Last-Subject-Sequence";
/// `Nats-Expected-Last-Msg-Id`: checked after deduplication by every server version.
pub const EXPECTED_LAST_MSG_ID: &str = "Nats-Expected-Last-Msg-Id";

/// "wrong last sequence: N".
pub const WRONG_LAST_SEQUENCE: u32 = 10071;
/// "wrong last sequence" without the actual one: a clustered server's answer while
/// other appends to the subject are still being replicated.
pub const WRONG_LAST_SEQUENCE_CONSTANT: u32 = 10164;

/// "duplicate message id is in process": a clustered server's answer while the first
/// append with the message id is still being replicated.
pub const DUPLICATE_IN_PROCESS: u32 = 10158;

/// Whether a clustered server refused only because an earlier append (to the
/// subject, or with the message id) is still being replicated: asking again in a
/// moment gets the real answer.
pub fn is_pending(error: &ApiError) -> bool {
    error.err_code == WRONG_LAST_SEQUENCE_CONSTANT || error.err_code == DUPLICATE_IN_PROCESS
}

/// Whether `error` refuses an append for its expected sequence.
pub fn is_wrong_last_sequence(error: &ApiError) -> bool {
    error.err_code == WRONG_LAST_SEQUENCE || error.err_code == WRONG_LAST_SEQUENCE_CONSTANT
}
/// "wrong last msg ID: …".
pub const WRONG_LAST_MSG_ID: u32 = 10070;
/// "message size exceeds maximum allowed".
pub const MESSAGE_TOO_LARGE: u32 = 10054;
/// "no message found".
const NO_MESSAGE_FOUND: u32 = 10037;
/// "stream not found".
const STREAM_NOT_FOUND: u32 = 10059;
/// "stream name already in use with a different configuration".
pub const STREAM_NAME_IN_USE: u32 = 10058;

/// An error answer of the JetStream API.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP-like status.
    #[serde(default)]
    pub code: u32,
    /// JetStream's own error code.
    #[serde(default)]
    pub err_code: u32,
    /// Human-readable text.
    #[serde(default)]
    pub description: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (error {})", self.description, self.err_code)
    }
}

/// What a publish to the stream came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Published {
    /// Stored as this sequence.
    Stored(u64),
    /// A message with the same `Nats-Msg-Id` is stored as this sequence; nothing new.
    Duplicate(u64),
    /// Refused by the stream (a failed expectation, too large, …).
    Refused(ApiError),
}

/// Headers of a Direct Get answer (ADR-31 of the NATS architecture documents).
const NATS_SEQUENCE: &str = "Nats-Sequence";
const NATS_SUBJECT: &str = "Nats-Subject";
const NATS_NUM_PENDING: &str = "Nats-Num-Pending";
/// The status of the message that ends a batch ("204 EOB").
const END_OF_BATCH: u16 = 204;

/// What one batched Direct Get returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirectBatch {
    /// The messages, in sequence order.
    pub messages: Vec<StoredMessage>,
    /// How many matching messages the answering server holds after the last one
    /// (`Nats-Num-Pending`); None when the server does not batch (before 2.11 it
    /// answers one message, without this header) or found nothing.
    pub pending: Option<u64>,
}

/// A stored message as `STREAM.MSG.GET` returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its subject.
    pub subject: String,
    /// Its stream sequence.
    pub sequence: u64,
    /// Its body.
    pub data: Vec<u8>,
}

#[derive(Deserialize)]
struct PubAck {
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    duplicate: bool,
    error: Option<ApiError>,
}

#[derive(Deserialize)]
struct MsgGetResponse {
    message: Option<RawMessage>,
    error: Option<ApiError>,
}

#[derive(Deserialize)]
struct RawMessage {
    subject: String,
    seq: u64,
    #[serde(default)]
    data: Option<String>,
}

#[derive(Deserialize)]
struct GenericResponse {
    error: Option<ApiError>,
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

/// Maps a request failure to a store error. `what` says what was asked.
pub fn request_failed(what: &str, error: &async_nats::RequestError) -> StoreError {
    match error.kind() {
        RequestErrorKind::TimedOut => StoreError::Unavailable(format!(
            "{what}: timed out waiting for JetStream (the outcome is unknown)"
        )),
        RequestErrorKind::NoResponders => StoreError::Unavailable(format!(
            "{what}: JetStream did not answer (no responders): is JetStream enabled and \
             the stream there?"
        )),
        RequestErrorKind::MaxPayloadExceeded => {
            StoreError::TooLarge(format!("{what}: larger than the server's max_payload"))
        }
        _ => StoreError::Unavailable(format!("{what}: {error}")),
    }
}

fn undecodable(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{what}: unreadable answer from JetStream: {error}"))
}

/// How long one attempt of a read through the leader waits before it is asked again.
const READ_ATTEMPT: Duration = Duration::from_secs(1);

/// The pause before a read is asked again.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// The JetStream API of one stream.
#[derive(Clone, Debug)]
pub struct Api {
    client: Client,
    stream: String,
    /// How long to wait for each message of a Direct Get batch.
    timeout: Duration,
}

impl Api {
    /// The API of `stream`, over `client`; `timeout` bounds each wait for an answer.
    pub fn new(client: Client, stream: String, timeout: Duration) -> Self {
        Api {
            client,
            stream,
            timeout,
        }
    }

    /// The stream's name.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Publishes to the stream and waits for its acknowledgement.
    pub async fn publish(
        &self,
        subject: String,
        headers: HeaderMap,
        payload: Vec<u8>,
    ) -> Result<Published, StoreError> {
        let what = "append";
        let answer = self
            .client
            .request_with_headers(subject, headers, Bytes::from(payload))
            .await
            .map_err(|error| request_failed(what, &error))?;
        let ack: PubAck =
            serde_json::from_slice(&answer.payload).map_err(|error| undecodable(what, error))?;
        Ok(match ack.error {
            Some(error) => Published::Refused(error),
            None if ack.seq == 0 => {
                return Err(undecodable(what, "an acknowledgement without a sequence"));
            }
            None if ack.duplicate => Published::Duplicate(ack.seq),
            None => Published::Stored(ack.seq),
        })
    }

    /// A JSON API request; the answer's `error` becomes `Err(Ok(error))`.
    async fn request(
        &self,
        what: &str,
        subject: String,
        body: &Value,
    ) -> Result<Result<serde_json::Map<String, Value>, ApiError>, StoreError> {
        let payload = serde_json::to_vec(body).map_err(|error| undecodable(what, error))?;
        let answer = self
            .client
            .request(subject, Bytes::from(payload))
            .await
            .map_err(|error| request_failed(what, &error))?;
        let response: GenericResponse =
            serde_json::from_slice(&answer.payload).map_err(|error| undecodable(what, error))?;
        Ok(match response.error {
            Some(error) => Err(error),
            None => Ok(response.rest),
        })
    }

    /// A `STREAM.MSG.GET` through the stream's leader. An attempt that gets no
    /// answer within [`READ_ATTEMPT`], or fails (no responders, JetStream
    /// temporarily unavailable), is asked again until the request timeout: while a
    /// new leader is elected nobody answers, and the first attempt after the election
    /// should not wait for the whole timeout.
    async fn get(&self, what: &str, request: Value) -> Result<Option<StoredMessage>, StoreError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let error =
                match tokio::time::timeout(left.min(READ_ATTEMPT), self.get_once(what, &request))
                    .await
                {
                    Ok(Ok(message)) => return Ok(message),
                    Ok(Err(error)) => error,
                    Err(_) => {
                        StoreError::Unavailable(format!("{what}: timed out waiting for JetStream"))
                    }
                };
            if !matches!(error, StoreError::Unavailable(_))
                || tokio::time::Instant::now() + RETRY_PAUSE >= deadline
            {
                return Err(error);
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    async fn get_once(
        &self,
        what: &str,
        request: &Value,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let payload = serde_json::to_vec(request).map_err(|error| undecodable(what, error))?;
        let answer = self
            .client
            .request(
                format!("$JS.API.STREAM.MSG.GET.{}", self.stream),
                Bytes::from(payload),
            )
            .await
            .map_err(|error| request_failed(what, &error))?;
        let response: MsgGetResponse =
            serde_json::from_slice(&answer.payload).map_err(|error| undecodable(what, error))?;
        match (response.message, response.error) {
            (_, Some(error)) if error.err_code == NO_MESSAGE_FOUND => Ok(None),
            (_, Some(error)) => Err(StoreError::Unavailable(format!("{what}: {error}"))),
            (Some(message), None) => {
                let data = match message.data {
                    Some(data) => base64::engine::general_purpose::STANDARD
                        .decode(data)
                        .map_err(|error| undecodable(what, error))?,
                    None => Vec::new(),
                };
                Ok(Some(StoredMessage {
                    subject: message.subject,
                    sequence: message.seq,
                    data,
                }))
            }
            (None, None) => Err(undecodable(what, "neither message nor error")),
        }
    }

    /// The message stored as `sequence`.
    pub async fn message(&self, sequence: u64) -> Result<Option<StoredMessage>, StoreError> {
        self.get("read a message", json!({ "seq": sequence })).await
    }

    /// The first message at or after `sequence` on `subject` (wildcards allowed).
    pub async fn next_on(
        &self,
        subject: &str,
        sequence: u64,
    ) -> Result<Option<StoredMessage>, StoreError> {
        self.get(
            "read the log",
            json!({ "seq": sequence, "next_by_subj": subject }),
        )
        .await
    }

    /// Up to `batch` messages at or after `sequence` on `subject` (wildcards allowed)
    /// and at most about `max_bytes`, in one Direct Get request (the stream must
    /// allow direct access). The server streams the messages to an inbox of this
    /// request and ends with a "204 EOB" status message; a server before 2.11 answers
    /// the first message only, which is all this returns then. Direct Get may be
    /// answered by any replica, so on a replicated stream the answer can end before
    /// the leader's last message (never with a gap: a replica holds a prefix).
    pub async fn next_batch_on(
        &self,
        subject: &str,
        sequence: u64,
        batch: usize,
        max_bytes: usize,
    ) -> Result<DirectBatch, StoreError> {
        let what = "read the log";
        let request = json!({
            "seq": sequence,
            "next_by_subj": subject,
            "batch": batch,
            "max_bytes": max_bytes,
        });
        let payload = serde_json::to_vec(&request).map_err(|error| undecodable(what, error))?;
        let inbox = self.client.new_inbox();
        let mut answers = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|error| StoreError::Unavailable(format!("{what}: {error}")))?;
        self.client
            .publish_with_reply(
                format!("$JS.API.DIRECT.GET.{}", self.stream),
                inbox,
                Bytes::from(payload),
            )
            .await
            .map_err(|error| StoreError::Unavailable(format!("{what}: {error}")))?;
        let mut out = DirectBatch::default();
        loop {
            let answer = match tokio::time::timeout(self.timeout, answers.next()).await {
                Ok(Some(answer)) => answer,
                Ok(None) => {
                    return Err(StoreError::Unavailable(format!(
                        "{what}: the connection closed during a batch"
                    )));
                }
                Err(_) => {
                    return Err(StoreError::Unavailable(format!(
                        "{what}: timed out waiting for JetStream"
                    )));
                }
            };
            match answer.status.map(|status| status.as_u16()) {
                None | Some(200) => {}
                Some(END_OF_BATCH) => break,
                Some(404) => break,
                Some(503) => {
                    return Err(StoreError::Unavailable(format!(
                        "{what}: no Direct Get responder for stream {} (no responders)",
                        self.stream
                    )));
                }
                Some(status) => {
                    return Err(StoreError::Unavailable(format!(
                        "{what}: JetStream answered {status} {}",
                        answer.description.as_deref().unwrap_or("")
                    )));
                }
            }
            let (message, pending) = direct_message(answer).map_err(|e| undecodable(what, e))?;
            let batched = pending.is_some();
            out.pending = pending;
            out.messages.push(message);
            if !batched {
                // A server that does not batch sends this one message and no end.
                break;
            }
        }
        Ok(out)
    }

    /// The last message on `subject` (wildcards allowed).
    pub async fn last_on(&self, subject: &str) -> Result<Option<StoredMessage>, StoreError> {
        self.get(
            "read a stream's last message",
            json!({ "last_by_subj": subject }),
        )
        .await
    }

    /// Checks that JetStream is enabled for this connection's account.
    pub async fn account_info(&self) -> Result<Result<(), ApiError>, StoreError> {
        Ok(self
            .request("JetStream account info", "$JS.API.INFO".into(), &json!({}))
            .await?
            .map(|_| ()))
    }

    /// The stream's configuration, or None if there is no such stream.
    pub async fn stream_config(&self) -> Result<Option<Value>, StoreError> {
        let what = "stream info";
        match self
            .request(
                what,
                format!("$JS.API.STREAM.INFO.{}", self.stream),
                &json!({}),
            )
            .await?
        {
            Ok(mut info) => {
                Ok(Some(info.remove("config").ok_or_else(|| {
                    undecodable(what, "stream info without a configuration")
                })?))
            }
            Err(error) if error.err_code == STREAM_NOT_FOUND => Ok(None),
            Err(error) => Err(StoreError::Unavailable(format!("{what}: {error}"))),
        }
    }

    /// Creates the stream (`update: false`) or changes its configuration.
    pub async fn put_stream(
        &self,
        config: &Value,
        update: bool,
    ) -> Result<Result<(), ApiError>, StoreError> {
        let verb = if update { "UPDATE" } else { "CREATE" };
        Ok(self
            .request(
                "create or update the stream",
                format!("$JS.API.STREAM.{verb}.{}", self.stream),
                config,
            )
            .await?
            .map(|_| ()))
    }
}

/// A message of a Direct Get answer and its `Nats-Num-Pending`, from its headers.
fn direct_message(answer: async_nats::Message) -> Result<(StoredMessage, Option<u64>), String> {
    let headers = answer
        .headers
        .ok_or_else(|| "a Direct Get answer without headers".to_owned())?;
    let header = |name: &str| headers.get(name).map(|value| value.as_str().to_owned());
    let sequence = header(NATS_SEQUENCE)
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| "a Direct Get answer without a sequence".to_owned())?;
    let subject =
        header(NATS_SUBJECT).ok_or_else(|| "a Direct Get answer without a subject".to_owned())?;
    let pending = header(NATS_NUM_PENDING).and_then(|value| value.parse().ok());
    Ok((
        StoredMessage {
            subject,
            sequence,
            data: answer.payload.to_vec(),
        },
        pending,
    ))
}

/// The sequence in "wrong last sequence: N".
pub fn wrong_last_sequence(error: &ApiError) -> Option<u64> {
    error
        .description
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|digits| digits.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_actual_sequence_is_read_from_the_refusal() {
        let error = |description: &str| ApiError {
            code: 400,
            err_code: WRONG_LAST_SEQUENCE,
            description: description.into(),
        };
        assert_eq!(
            wrong_last_sequence(&error("wrong last sequence: 42")),
            Some(42)
        );
        assert_eq!(
            wrong_last_sequence(&error("wrong last sequence: 0")),
            Some(0)
        );
        assert_eq!(wrong_last_sequence(&error("wrong last sequence")), None);
    }

    #[test]
    fn acknowledgements_parse() {
        let ack: PubAck =
            serde_json::from_str(r#"{"stream":"S","seq":7,"duplicate":true}"#).expect("ack");
        assert_eq!((ack.seq, ack.duplicate, ack.error), (7, true, None));
        let refused: PubAck = serde_json::from_str(
            r#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 3"}}"#,
        )
        .expect("refusal");
        assert_eq!(
            refused.error.map(|error| error.err_code),
            Some(WRONG_LAST_SEQUENCE)
        );
    }
}
