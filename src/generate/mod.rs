//! Synthetic datasets: Rust builds Arrow batches in parallel, DuckDB pulls them through a
//! table function straight into a partitioned Parquet `COPY`, so no dataset is ever held whole.
//!
//! A dataset is a module implementing [`Dataset`]: its schema, its partition columns, its
//! plan of independent work units, and a batch builder. Everything else is shared.

pub mod business_events;
pub mod events;
pub mod plan;
mod table_function;
pub mod telemetry;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::config::{Compression, Config};
use crate::db;
use crate::error::Result;
use crate::lake::{StagedWrite, WriteMode};
use crate::progress::Progress;
use plan::Unit;

/// A synthetic dataset that can be generated in independent, deterministic units.
pub trait Dataset: Send + Sync + 'static {
    /// Directory name in the lake and name used on the command line.
    fn name(&self) -> &'static str;
    /// Columns, partition columns included.
    fn schema(&self) -> SchemaRef;
    /// Hive partition columns (they become directories, not file columns); none for rows
    /// written to one file.
    fn partition_by(&self) -> &'static [&'static str] {
        &[]
    }
    fn total_rows(&self) -> u64;
    /// Work units in the order the lake should receive them; each at most `max_unit_rows`.
    fn plan(&self, max_unit_rows: usize) -> Vec<Unit>;
    /// The rows of one unit; a pure function of the unit and the dataset's seed.
    fn build(&self, unit: &Unit) -> Result<RecordBatch>;
    /// The rows of a unit larger than one DuckDB vector, as batches of at most one vector.
    fn build_chunks(&self, unit: &Unit) -> Result<Vec<RecordBatch>> {
        Ok(vec![self.build(unit)?])
    }
}

/// A generator `micro-wh generate <name>` knows. Adding a dataset is one module that
/// exports such a `KIND` plus one line in [`KINDS`]; its settings live in `generate.<name>`.
pub struct Kind {
    pub name: &'static str,
    pub about: &'static str,
    /// Builds the generator from its config section (None: all defaults) and the run's options.
    pub build: fn(Option<&serde_yaml::Value>, &GenerateOptions) -> Result<Generator>,
    /// The resolved settings (defaults filled, validated) as a YAML map; its scalars become
    /// `{{ <name>.<key> }}` placeholders in SQL.
    pub settings: fn(Option<&serde_yaml::Value>) -> Result<serde_yaml::Value>,
}

/// Every generator, in the order `--help` lists them.
pub const KINDS: &[Kind] = &[events::KIND, business_events::KIND, telemetry::KIND];

/// What a generator produces: lake partitions, or raw files an upstream system would deliver.
pub enum Generator {
    Lake(Arc<dyn Dataset>),
    Files(Box<dyn FileGenerator>),
}

/// A generator of raw input files (for `ingest`), not of lake partitions.
pub trait FileGenerator {
    /// Folder written when `--out` is not given, relative to the project root.
    fn default_out(&self) -> PathBuf;
    /// Writes the files into `out_dir`; `root` is the project root (for state files).
    fn write(
        &self,
        root: &Path,
        out_dir: &Path,
        config: &Config,
        progress: &Progress,
    ) -> Result<FilesReport>;
}

#[derive(Debug)]
pub struct FilesReport {
    pub files: Vec<PathBuf>,
    pub rows: u64,
}

pub fn kind(name: &str) -> Result<&'static Kind> {
    let normalized = name.replace('-', "_");
    KINDS.iter().find(|k| k.name == normalized).ok_or_else(|| {
        anyhow::anyhow!(
            "`{name}` is not a dataset micro-wh can generate (known: {})",
            names().join(", ")
        )
    })
}

pub fn names() -> Vec<String> {
    KINDS.iter().map(|k| k.name.replace('_', "-")).collect()
}

/// Reads a generator's settings from its section; unknown keys and bad values name
/// `generate.<name>.<key>`.
pub fn section<T: serde::de::DeserializeOwned + Default>(
    name: &str,
    value: Option<&serde_yaml::Value>,
) -> Result<T> {
    match value {
        None | Some(serde_yaml::Value::Null) => Ok(T::default()),
        Some(v) => {
            serde_yaml::from_value(v.clone()).map_err(|e| anyhow::anyhow!("generate.{name}: {e}"))
        }
    }
}

/// Checks every `generate.<name>` section of the configuration.
pub fn validate_config(config: &Config) -> Result<()> {
    for (name, value) in &config.generate {
        let kind = KINDS.iter().find(|k| k.name == name).ok_or_else(|| {
            anyhow::anyhow!(
                "generate.{name}: unknown dataset (known: {})",
                KINDS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
            )
        })?;
        (kind.settings)(Some(value))?;
    }
    Ok(())
}

/// `{{ <dataset>.<key> }}` placeholder values: every generator's resolved scalar settings.
pub fn template_vars(config: &Config) -> Result<BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    for kind in KINDS {
        let settings = (kind.settings)(config.generate.get(kind.name))?;
        if let serde_yaml::Value::Mapping(map) = settings {
            for (key, value) in map {
                let (serde_yaml::Value::String(key), Some(text)) = (key, scalar_text(&value))
                else {
                    continue;
                };
                vars.insert(format!("{}.{key}", kind.name), text);
            }
        }
    }
    Ok(vars)
}

fn scalar_text(value: &serde_yaml::Value) -> Option<String> {
    match value {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Options of one generation run; `None` means "as configured".
#[derive(Debug, Clone, Default)]
pub struct GenerateOptions {
    pub rows: Option<u64>,
    pub seed: Option<u64>,
    pub mode: WriteMode,
    pub compression: Option<Compression>,
}

#[derive(Debug)]
pub struct GenerateReport {
    pub dataset: &'static str,
    pub rows: u64,
    pub elapsed: Duration,
}

/// Generates `dataset` into the lake under `lake_dir`, atomically replacing or extending it.
pub fn generate(
    dataset: Arc<dyn Dataset>,
    config: &Config,
    lake_dir: &Path,
    options: &GenerateOptions,
    progress: &Progress,
) -> Result<GenerateReport> {
    let started = Instant::now();
    let threads = config.threads();
    let run_id = crate::lake::run_id();
    let staged = StagedWrite::begin(
        lake_dir,
        dataset.name(),
        &run_id,
        config.lake.lock_timeout(),
    )?;

    let bar = progress.rows_bar(
        dataset.total_rows(),
        &format!("generate {}", dataset.name()),
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
        let select = db::portable_select(
            &conn,
            &format!(
                "SELECT * FROM {}({}, {})",
                table_function::NAME,
                slice.start,
                slice.end
            ),
        )?;
        let sql = format!(
            "COPY ({select}) TO {dir} (FORMAT parquet, PARTITION_BY ({partition_by}), \
             COMPRESSION {comp}, ROW_GROUP_SIZE {rg}, FILENAME_PATTERN {pattern}, OVERWRITE_OR_IGNORE true)",
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

    crate::fault::point("generate-before-publish");
    staged.publish(options.mode.keep_existing())?;
    Ok(GenerateReport {
        dataset: dataset.name(),
        rows,
        elapsed: started.elapsed(),
    })
}
