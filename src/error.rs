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

    #[error(
        "{file} (version {version}) was applied to this warehouse but is no longer in the SQL directory; \
         restore it, or run `micro-wh refresh --allow-missing` to go on without it"
    )]
    MissingMigration { file: String, version: u32 },

    #[error("data tests failed:\n{}", .0.join("\n"))]
    DataTestsFailed(Vec<String>),

    #[error(
        "the lake {lake} is in use by {holder}; waited {waited} s: try again when it ends, or \
         pass --lock-timeout SECONDS to wait longer"
    )]
    LakeBusy {
        lake: PathBuf,
        holder: String,
        waited: u64,
    },

    #[error("{path} is open in another process (a running micro-wh, or a DuckDB CLI session holding it): close it and try again, or pass --lock-timeout SECONDS to wait for it")]
    WarehouseBusy { path: PathBuf },

    /// DuckDB's message is shown once: it is not also a `source` in the error chain.
    #[error("SQL failed: {cause}\n--- SQL ---\n{sql}")]
    Sql { sql: String, cause: duckdb::Error },
}

pub type Result<T, E = anyhow::Error> = std::result::Result<T, E>;

/// Process exit codes, documented in `--help` and the README.
pub mod exit {
    pub const SUCCESS: u8 = 0;
    /// Any other error; the message names the file, key, line or SQL at fault.
    pub const ERROR: u8 = 1;
    /// Bad command-line usage (clap's own code).
    pub const USAGE: u8 = 2;
    /// Ingest: everything loaded except rows now in `ingest_quarantine`.
    pub const ROWS_QUARANTINED: u8 = 3;
    /// Refresh: data tests failed; the previous tables and exports are kept.
    pub const DATA_TESTS_FAILED: u8 = 4;
    /// An applied migration was edited or removed, or a SQL file is misnamed or duplicated.
    pub const MIGRATION_DRIFT: u8 = 5;
    /// The lake or the warehouse file is in use by another process.
    pub const BUSY: u8 = 6;
}

/// The exit code for an error: the first typed error in its chain decides.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<Error>() {
            return match e {
                Error::DataTestsFailed(_) => exit::DATA_TESTS_FAILED,
                Error::MigrationDrift { .. }
                | Error::BadMigrationName { .. }
                | Error::DuplicateMigrationVersion { .. }
                | Error::MissingMigration { .. } => exit::MIGRATION_DRIFT,
                Error::LakeBusy { .. } | Error::WarehouseBusy { .. } => exit::BUSY,
                Error::Config { .. } | Error::Sql { .. } => exit::ERROR,
            };
        }
    }
    exit::ERROR
}

/// The error's chain as `{:#}` shows it, with each failed statement's DuckDB message but not
/// the statement: for a record that repeats per file (the same generated SQL each time).
pub fn without_sql(err: &anyhow::Error) -> String {
    err.chain()
        .map(|layer| match layer.downcast_ref::<Error>() {
            Some(Error::Sql { cause, .. }) => format!("SQL failed: {cause}"),
            _ => layer.to_string(),
        })
        .collect::<Vec<_>>()
        .join(": ")
}
