//! Command-line arguments: what each command accepts and how `--help` explains it. The
//! commands themselves live in [`crate::commands`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Compression, ExportFormat, DEFAULT_CONFIG_FILE};
use crate::lake::WriteMode;

/// micro-wh: synthetic or real data -> partitioned Parquet lake -> tested bronze/silver/gold
/// warehouse on DuckDB, on one machine.
///
/// Typical use, from the project root:
///
///   micro-wh refresh                 # generate the lake if empty, build and test, export gold
///   micro-wh generate events --rows 10000000 --seed 7
///   micro-wh ingest --all            # declared sources (warehouse.yaml `sources:`) into the lake
///   micro-wh status                  # lake, applied SQL, last refreshes
///   micro-wh report                  # exports/report.html: charts of gold tables and health
///   micro-wh sql "SELECT * FROM gold_daily_active_users ORDER BY date DESC LIMIT 7"
///
/// Settings come from warehouse.yaml (every key has a default); flags override it.
///
/// Exit codes:
///   0  success
///   1  error (the message names the file, key, line or SQL at fault)
///   2  bad command-line usage
///   3  ingest (or refresh --ingest): loaded, but some rows were quarantined (ingest_quarantine)
///   4  refresh: data tests failed; the previous tables, history and exports are kept
///   5  an applied migration was edited or removed, or a SQL file is misnamed or duplicated
///   6  the lake or the warehouse file is in use by another process
#[derive(Debug, Parser)]
#[command(name = "micro-wh", version, about, long_about, verbatim_doc_comment)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file; paths in it are relative to its directory (the project root).
    #[arg(long, short = 'c', global = true, env = "MICRO_WH_CONFIG", default_value = DEFAULT_CONFIG_FILE)]
    pub config: PathBuf,
    /// Lake directory (overrides paths.lake_dir).
    #[arg(long, global = true)]
    pub lake_dir: Option<PathBuf>,
    /// Warehouse file (overrides paths.warehouse).
    #[arg(long, global = true)]
    pub warehouse: Option<PathBuf>,
    /// Exports directory (overrides paths.exports_dir).
    #[arg(long, global = true)]
    pub exports_dir: Option<PathBuf>,
    /// SQL directory (overrides paths.sql_dir).
    #[arg(long, global = true)]
    pub sql_dir: Option<PathBuf>,
    /// Worker threads for DuckDB and generators; 0 = all cores (overrides engine.threads).
    #[arg(long, short = 't', global = true)]
    pub threads: Option<usize>,
    /// DuckDB memory limit such as 2GB (overrides engine.memory_limit).
    #[arg(long, global = true)]
    pub memory_limit: Option<String>,
    /// Seconds to wait for the lake, or the warehouse file, when another process holds it (overrides lake.lock_timeout_seconds).
    #[arg(long, global = true, value_name = "SECONDS")]
    pub lock_timeout: Option<u64>,
    /// More log output (-v info, -vv debug: each SQL statement and its time, -vvv trace: the
    /// statements whole); RUST_LOG overrides.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log only errors and draw no progress bars (results still print to stdout).
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a synthetic dataset: `events` into the lake, `business-events` as NDJSON files.
    ///
    /// events: rows are built in parallel in Rust and streamed into DuckDB's partitioned
    /// Parquet writer (<lake_dir>/events/date=YYYY-MM-DD/*.parquet); the same seed gives the
    /// same rows whatever the thread count. The write is staged and published atomically.
    ///
    /// business-events: NDJSON files as an upstream system delivers them (with duplicate ids
    /// and late updates), into --out (default raw/business_events), for `micro-wh ingest`.
    Generate(GenerateArgs),
    /// Load the declared sources' files into the lake, quarantining every bad row.
    ///
    /// Sources are declared under `sources:` in warehouse.yaml (format csv, json, ndjson, log,
    /// sqlite or parquet; path; optional columns, checks, key, partition_by, file_name).
    /// Each file's rows, its quarantine (ingest_quarantine) and its manifest row
    /// (ingest_manifest: rows_in = rows_loaded + rows_quarantined) are committed together.
    /// An unchanged file (same SHA-256) is skipped; a changed one replaces its earlier rows.
    /// Afterwards each source is queryable as the view bronze_<source>.
    ///
    /// Exit codes: 0 all loaded, 3 loaded with some rows quarantined, 1 a file or source
    /// failed (nothing of a failing file is committed; the other files still load).
    Ingest(IngestArgs),
    /// Write tables of the warehouse to the exports directory as Parquet or CSV.
    Export(ExportArgs),
    /// Rewrite each lake partition that holds several small files into one file, atomically.
    ///
    /// Appends leave many small files (1M events over 3 years is ~900 rows a file); queries
    /// read fewer, larger files after this. The rows do not change. Ingested sources without
    /// `key`/`file_name` are refused: their file names record which input each row came from.
    Compact(CompactArgs),
    /// Apply SQL migrations, build and test every model, record the refresh, export gold.
    ///
    /// Incremental models rebuild only the rows of lake partitions whose files changed since
    /// the last refresh (--full rebuilds them whole); each model's mode is printed and logged.
    /// If the default dataset's lake is empty (a fresh clone), it is generated first, and
    /// declared sources with an empty lake are ingested. A failing data test fails the
    /// refresh (exit 4) and leaves the previous tables and exports as they were; the exports
    /// replace the previous ones all at once.
    Refresh(RefreshArgs),
    /// Show the lake (partitions, files, rows, bytes), applied SQL files and recent refreshes.
    Status,
    /// Write one self-contained HTML page of charts and tables: warehouse health and gold tables.
    ///
    /// Sections appear when their tables exist: warehouse health (refreshes, data tests,
    /// ingested sources and quarantine, lake size, freshness), events, telemetry, business
    /// events, and every gold table's columns and first rows. It reads the warehouse's gold
    /// and bookkeeping tables (and the lake's folder listing), never the lake's rows. The page
    /// opens offline in any browser: no script, font or request to anywhere. `refresh` also
    /// writes it when warehouse.yaml sets `refresh.report: true`.
    Report(ReportArgs),
    /// Run SQL with micro-wh's DuckDB engine on the warehouse file (or in memory).
    ///
    /// An inline query prints its result as a table; --file runs a script of statements.
    Sql(SqlArgs),
    /// Wifi-device telemetry: a kept device registry and an hourly CSV feed for `ingest`.
    ///
    ///   micro-wh telemetry init --devices 20000000 --seed 7   # once: devices.parquet + clock
    ///   micro-wh telemetry tick --hours 24                    # one CSV file per hour
    ///   micro-wh ingest telemetry                             # into data/telemetry/date=…/hour=…/
    ///   micro-wh telemetry status
    #[command(verbatim_doc_comment)]
    Telemetry(TelemetryArgs),
    /// Run the same models on Apache Spark over the same lake (PySpark, sqlglot).
    ///
    /// Each model's SQL is transpiled from DuckDB's dialect to Spark SQL with sqlglot,
    /// placeholders filled as refresh fills them; models are built in order (every one in
    /// full), the data tests run as Spark queries, and when they pass, each gold model is
    /// written as Parquet to <TARGET>/<model>/. Runs spark/micro_wh_spark.py (built into the
    /// binary) with python3; needs `pip install pyspark sqlglot` and Java.
    ///
    /// On a cluster: `micro-wh spark --plan > plan.json`, then
    /// `spark-submit spark/micro_wh_spark.py --plan plan.json --lake s3://… --target s3://…`.
    ///
    /// Exit codes: 0 built and written, 4 data tests failed (nothing written), 1 error (a model
    /// using a DuckDB function Spark lacks is named with the function and the line).
    Spark(SparkArgs),
}

#[derive(Debug, Args)]
pub struct TelemetryArgs {
    #[command(subcommand)]
    pub command: TelemetryCommand,
}

#[derive(Debug, Subcommand)]
pub enum TelemetryCommand {
    /// Create the device registry (generate.telemetry.registry): every device inside a real US
    /// state border, with its state, Census region, site, cell, sector and band.
    ///
    /// Devices are spread uniformly over the land area (after one device per state, so every
    /// state reports). Refused when a registry exists, unless --force, which replaces it and
    /// restarts the clock at generate.telemetry.start.
    Init {
        /// Devices (default generate.telemetry.devices).
        #[arg(long)]
        devices: Option<u64>,
        /// Seed (default generate.telemetry.seed); the same seed gives the same registry.
        #[arg(long)]
        seed: Option<u64>,
        /// Replace an existing registry.
        #[arg(long)]
        force: bool,
    },
    /// Write the next hour(s) of measurements as CSV files, one per hour, and move the clock.
    ///
    /// Each file (telemetry_YYYY-MM-DDTHH.csv) holds every device's registry columns, the
    /// hour as `datetime` and metric_1 … metric_20. A tick killed at any moment leaves no
    /// half file under its final name and never skips or repeats an hour.
    Tick {
        /// Hours to write.
        #[arg(long, default_value_t = 1)]
        hours: u32,
        /// Folder for the files (default generate.telemetry.out, the telemetry source's path).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Show the registry's size and seed, the clock and the hours produced.
    Status,
}

#[derive(Debug, Args)]
pub struct SparkArgs {
    /// Where gold Parquet goes: a folder, or an s3://… or hdfs://… URI Spark can write.
    #[arg(long, required_unless_present = "plan")]
    pub target: Option<String>,
    /// Only the models of this dataset (folder under sql/models); repeatable; default all.
    #[arg(long = "dataset")]
    pub datasets: Vec<String>,
    /// Print the run plan (models with their SQL and tests, source views, reference tables)
    /// as JSON for spark-submit, and run nothing.
    #[arg(long, conflicts_with = "target")]
    pub plan: bool,
    /// Spark master URL.
    #[arg(long, default_value = "local[*]")]
    pub master: String,
    /// Where Spark reads the lake (default: the project's lake folder).
    #[arg(long)]
    pub lake: Option<String>,
    /// Also write what Spark's plain `spark.read.parquet` finds in each lake dataset folder
    /// (rows, column types, partition values) and each exported Parquet file (rows, column
    /// types) as JSON to this file, to compare with DuckDB.
    #[arg(long)]
    pub lake_report: Option<PathBuf>,
    /// Python interpreter with pyspark and sqlglot installed.
    #[arg(long, env = "MICRO_WH_PYTHON", default_value = "python3")]
    pub python: String,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Dataset to generate: events or business-events.
    pub dataset: String,
    /// Number of rows (default: generate.<dataset>.rows).
    #[arg(long, short = 'n', value_parser = clap::value_parser!(u64).range(1..))]
    pub rows: Option<u64>,
    /// Random seed (default: generate.<dataset>.seed).
    #[arg(long, short = 's')]
    pub seed: Option<u64>,
    /// overwrite replaces the dataset's files; append adds new files beside them.
    #[arg(long, default_value = "overwrite", value_parser = ["overwrite", "append"])]
    pub mode: String,
    /// Parquet compression (default: lake.compression).
    #[arg(long, value_parser = ["zstd", "snappy"])]
    pub compression: Option<String>,
    /// Folder for generators that write files (default: the generator's own, e.g. raw/business_events).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl GenerateArgs {
    pub fn mode(&self) -> WriteMode {
        self.mode.parse().expect("clap checked the value")
    }
    pub fn compression(&self) -> Option<Compression> {
        self.compression
            .as_deref()
            .map(|c| c.parse().expect("clap checked the value"))
    }
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Sources to ingest, as named under `sources:`.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub sources: Vec<String>,
    /// Ingest every declared source.
    #[arg(long)]
    pub all: bool,
    /// Read this file, folder or glob instead of the source's configured path (one source only).
    #[arg(long)]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Datasets (lake folders) to compact (default: every one that can be).
    pub datasets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Tables or views to export (default: every gold model).
    pub tables: Vec<String>,
    /// File format; written as <exports_dir>/<table>.<format>.
    #[arg(long, default_value = "parquet", value_parser = ["parquet", "csv"])]
    pub format: String,
}

impl ExportArgs {
    pub fn format(&self) -> ExportFormat {
        self.format.parse().expect("clap checked the value")
    }
}

#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// Do not write exports/<gold table>.parquet.
    #[arg(long)]
    pub no_export: bool,
    /// Print the plain SQL of the models and exports and exit, touching nothing.
    #[arg(long)]
    pub print_sql: bool,
    /// Ingest every declared source first (one command for a cron job).
    #[arg(long)]
    pub ingest: bool,
    /// Go on when a versioned SQL file that was applied is gone from the SQL directory.
    #[arg(long)]
    pub allow_missing: bool,
    /// Rebuild every table whole instead of only the lake partitions that changed. Lake
    /// models (validated silver Parquet) and views keep following the changed partitions.
    #[arg(long)]
    pub full: bool,
    /// --full, and also rewrite every partition of the lake models and run every row test
    /// over all rows again (after a fix to validation SQL that kept its checksum, or to
    /// re-check the lake).
    #[arg(long)]
    pub revalidate: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The HTML file to write (default: <exports_dir>/report.html); replaced at once.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// A query whose result is printed.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub query: Option<String>,
    /// Run the statements in this file instead.
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    /// Run against a fresh in-memory database instead of the warehouse.
    #[arg(long)]
    pub in_memory: bool,
    /// Run against this database file instead of the configured warehouse.
    #[arg(long, conflicts_with = "in_memory")]
    pub db: Option<PathBuf>,
    /// Write the query's result to this file instead of printing it: .csv, .parquet or .json.
    #[arg(long, short = 'o', conflicts_with = "file")]
    pub output: Option<PathBuf>,
}
