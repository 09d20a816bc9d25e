//! micro-wh: an embedded analytics warehouse on DuckDB.
//!
//! Synthetic datasets ([`generate`]) and, later, ingested files land in a Hive-partitioned
//! Parquet [`lake`]; versioned SQL turns the lake into bronze/silver/gold models in the
//! [`warehouse`] file, tested on every refresh and exported for BI tools.

pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod generate;
pub mod lake;
pub mod progress;
pub mod status;
pub mod warehouse;

pub use cli::{run, Cli};
