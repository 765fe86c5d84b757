//! The event log port on NATS JetStream, for running Hayabusa on several processes.
//!
//! [`connect`] opens a [`NatsEventLog`]: one JetStream stream, one subject per event
//! stream, one message per append. How positions, stream revisions and idempotency
//! keys map onto JetStream is explained in [`event_log`] and in ADR 0008
//! (`docs/adr/0008-event-log-on-nats-jetstream.md`).
//!
//! **Operating it.** Run nats-server 2.10.23 or later with JetStream and
//! `sync_interval: always` in its `jetstream` block: JetStream acknowledges a message
//! once it is written, and by default fsyncs only every two minutes, so a power loss
//! could drop acknowledged appends. With three replicas (`--event-log-replicas 3`) an
//! acknowledged append is on a majority of servers, which survives the loss of one
//! machine without `sync_interval: always`, but not a power loss of the whole
//! cluster; `always` costs an fsync per append batch on every replica.
//!
//! [`testkit`] starts real nats-server processes for tests (single node; kill -9 and
//! restart).

pub mod api;
pub mod blobs;
pub mod envelope;
pub mod event_log;
pub mod feed;
pub mod position;
pub mod server;
pub mod subject;
pub mod testkit;

pub use event_log::{
    DEFAULT_IDEMPOTENCY_EXPIRY, DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX, NatsEventLog, NatsOptions,
    connect,
};
