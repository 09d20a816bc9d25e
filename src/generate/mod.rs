//! Synthetic datasets: Rust builds Arrow batches in parallel, DuckDB pulls them through a
//! table function straight into a partitioned Parquet `COPY`, so no dataset is ever held whole.
//!
//! A dataset is a module implementing [`Dataset`]: its schema, its partition columns, its
//! plan of independent work units, and a batch builder. Everything else is shared.

pub mod events;
pub mod plan;
mod table_function;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::config::{Compression, Config};
use crate::db;
use crate::error::Result;
use crate::lake::{StagedWrite, WriteMode};
use crate::progress;
use plan::Unit;

/// A synthetic dataset that can be generated in independent, deterministic units.
pub trait Dataset: Send + Sync + 'static {
    /// Directory name in the lake and name used on the command line.
    fn name(&self) -> &'static str;
    /// Columns, partition columns included.
    fn schema(&self) -> SchemaRef;
    /// Hive partition columns (they become directories, not file columns).
    fn partition_by(&self) -> &'static [&'static str];
    fn total_rows(&self) -> u64;
    /// Work units in the order the lake should receive them; each at most `max_unit_rows`.
    fn plan(&self, max_unit_rows: usize) -> Vec<Unit>;
    /// The rows of one unit; a pure function of the unit and the dataset's seed.
    fn build(&self, unit: &Unit) -> Result<RecordBatch>;
}

/// Datasets the `generate` command knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DatasetName {
    /// Product events: event_time, user_id, team_id, event_name, JSON properties; partitioned by date.
    Events,
}

impl DatasetName {
    pub fn parse(name: &str) -> Option<DatasetName> {
        <DatasetName as clap::ValueEnum>::from_str(name, true).ok()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::Events => "events",
        }
    }
}

/// Options of one generation run; `None` means "as configured".
#[derive(Debug, Clone, Default)]
pub struct GenerateOptions {
    pub rows: Option<u64>,
    pub seed: Option<u64>,
    pub mode: WriteMode,
    pub compression: Option<Compression>,
    pub quiet: bool,
}

#[derive(Debug)]
pub struct GenerateReport {
    pub dataset: &'static str,
    pub rows: u64,
    pub elapsed: Duration,
}

pub fn build_dataset(
    name: DatasetName,
    config: &Config,
    options: &GenerateOptions,
) -> Result<Arc<dyn Dataset>> {
    Ok(match name {
        DatasetName::Events => Arc::new(events::Events::new(
            &config.generate.events,
            options.rows,
            options.seed,
        )?),
    })
}

/// Generates `dataset` into the lake under `lake_dir`, atomically replacing or extending it.
pub fn generate(
    dataset: Arc<dyn Dataset>,
    config: &Config,
    lake_dir: &Path,
    options: &GenerateOptions,
) -> Result<GenerateReport> {
    let started = Instant::now();
    let threads = config.threads();
    let run_id = run_id();
    let staged = StagedWrite::begin(lake_dir, dataset.name(), &run_id)?;

    let bar = progress::rows_bar(
        dataset.total_rows(),
        &format!("generate {}", dataset.name()),
        options.quiet,
    );
    let conn = db::open_in_memory(config, threads)?;
    // Row order inside a partition means nothing here, so DuckDB's threads need not
    // coordinate to keep it.
    db::execute(&conn, "SET preserve_insertion_order = false")?;
    let units = dataset.plan(table_function::max_unit_rows());
    let slices = plan::write_slices(&units, config.lake.max_rows_per_write);
    let job = table_function::Job {
        dataset: dataset.clone(),
        units,
        threads,
        progress: bar.clone(),
    };
    table_function::register(&conn, Arc::new(job))?;

    let compression = options.compression.unwrap_or(config.lake.compression);
    let partition_by = dataset.partition_by().join(", ");
    let mut rows = 0u64;
    // DuckDB holds a partition's rows until the write ends (our partitions are far below
    // its flush threshold), so one COPY per slice keeps memory flat as the dataset grows.
    for (i, slice) in slices.iter().enumerate() {
        let sql = format!(
            "COPY (SELECT * FROM {fun}({first}, {end})) TO {dir} (FORMAT parquet, PARTITION_BY ({partition_by}), \
             COMPRESSION {comp}, ROW_GROUP_SIZE {rg}, FILENAME_PATTERN {pattern}, OVERWRITE_OR_IGNORE true)",
            fun = table_function::NAME,
            first = slice.start,
            end = slice.end,
            dir = db::path_literal(&staged.dir),
            comp = compression.as_sql(),
            rg = config.lake.row_group_size,
            // Unique per run and slice, so no write ever replaces another's file.
            pattern = db::literal(&format!("{}_{run_id}_{i:05}_{{i}}", dataset.name())),
        );
        tracing::debug!(%sql, "writing lake slice");
        rows += db::query_one::<i64>(&conn, &sql)? as u64;
    }
    drop(conn);
    bar.finish_and_clear();

    staged.publish(options.mode)?;
    Ok(GenerateReport {
        dataset: dataset.name(),
        rows,
        elapsed: started.elapsed(),
    })
}

/// A run id that sorts by time and differs between concurrent processes.
fn run_id() -> String {
    format!(
        "{}_{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%3f"),
        std::process::id()
    )
}
