//! Integration tests of the NATS JetStream event log against real nats-server
//! processes (see `hayabusa_nats::testkit`), in one test binary.

mod blobs;
mod event_log;
mod refusals;
