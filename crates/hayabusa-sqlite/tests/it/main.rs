//! Integration tests of the SQLite adapters, in one test binary.

mod read_store;
