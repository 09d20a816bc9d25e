//! Typed errors for the failures a user must be able to act on.
//!
//! Everything else travels as `anyhow::Error` with context; these variants exist
//! because their message must name the file, key, or SQL at fault.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },

    #[error("{file}: file name does not match V<version>__<name>.sql or R__<name>.sql")]
    BadMigrationName { file: PathBuf },

    #[error("{file}: version {version} is used twice (also by {other})")]
    DuplicateMigrationVersion {
        file: PathBuf,
        version: u32,
        other: PathBuf,
    },

    #[error(
        "{file}: already applied with checksum {applied}, but the file now has checksum {current}; \
         applied migrations must not be edited (add a new V file instead)"
    )]
    MigrationDrift {
        file: PathBuf,
        applied: String,
        current: String,
    },

    #[error("data tests failed:\n{}", .0.join("\n"))]
    DataTestsFailed(Vec<String>),

    #[error("SQL failed: {source}\n--- SQL ---\n{sql}")]
    Sql {
        sql: String,
        #[source]
        source: duckdb::Error,
    },
}

pub type Result<T, E = anyhow::Error> = std::result::Result<T, E>;
