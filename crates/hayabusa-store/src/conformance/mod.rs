//! Conformance suites: one set of behavioural tests that every adapter of a port runs
//! (in-memory, SQLite, PostgreSQL, NATS). An adapter's test calls e.g.
//! `event_log::run_all(|| async { MyLog::open(...) }).await`.

pub mod event_log;
pub mod persistent;
pub mod random_batches;
pub mod rate_windows;
pub mod read_store;
