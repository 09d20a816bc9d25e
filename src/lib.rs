//! micro-wh: an embedded analytics warehouse on DuckDB.
//!
//! Synthetic datasets ([`generate`]) and ingested files ([`ingest`]) land in a Hive-partitioned
//! Parquet [`lake`]; versioned SQL turns the lake into bronze/silver/gold models in the
//! [`warehouse`] file, tested on every refresh and exported for BI tools.

pub mod cli;
pub mod commands;
pub mod config;
pub mod db;
pub mod error;
pub mod fault;
pub mod generate;
pub mod human;
pub mod ingest;
pub mod lake;
pub mod progress;
pub mod report;
pub mod warehouse;

pub use cli::Cli;
pub use commands::run;
