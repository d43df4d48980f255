//! The suite on a temporary SQLite file.

suite!(crate::helpers::Backend::Sqlite);
