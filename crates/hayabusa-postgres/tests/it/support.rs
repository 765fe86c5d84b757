//! The per-test database comes from the crate's testkit.

use hayabusa_postgres::PgOptions;
pub use hayabusa_postgres::testkit::TestDatabase;

/// Options for a store of the tests in `schema`.
pub fn options(schema: &str) -> PgOptions {
    PgOptions {
        max_connections: 4,
        schema: Some(schema.to_owned()),
        ..PgOptions::default()
    }
}
