//! Integration tests of the PostgreSQL read store, in one test binary, against a real
//! server: `HAYABUSA_TEST_POSTGRES` names an administrator connection (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), each test makes a fresh database
//! through it and drops it at the end. Without a server the tests fail: they never
//! skip.

mod catch_up;
mod plans;
mod random;
mod read_store;
mod rebuild;
mod support;
