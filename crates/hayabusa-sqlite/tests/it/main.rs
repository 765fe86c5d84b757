//! Integration tests of the SQLite adapters, in one test binary.

mod blobs;
mod event_log;
mod read_store;
mod snapshot;
