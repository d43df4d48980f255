//! The suite on a fresh PostgreSQL database per test.

suite!(crate::helpers::Backend::Postgres);
