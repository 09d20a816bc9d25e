//! One hour of the feed: every device of the registry with its measurements, written by
//! DuckDB as one CSV file, and the clock moved on with it.
//!
//! The file and the clock move together: the CSV is written under a hidden `.partial` name;
//! the state file then records the new clock and the pending rename in one atomic replace
//! (the commit); the rename follows. A tick killed before the commit leaves the clock and
//! the visible files as they were; one killed after it is finished by the next tick.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use arrow::array::{ArrayRef, Float64Array, Int64Array, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDateTime;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};

use super::metrics;
use super::registry::{sync_dir, write_state, Pending, Registry, HOUR_FORMAT};
use crate::config::Config;
use crate::db;
use crate::error::Result;
use crate::generate::plan::Unit;
use crate::generate::{table_function, Dataset};
use crate::progress::Progress;

/// One hour written.
#[derive(Debug)]
pub struct Tick {
    pub hour: NaiveDateTime,
    pub file: PathBuf,
    pub rows: u64,
}

/// The CSV file name of an hour.
pub fn file_name(hour: NaiveDateTime) -> String {
    format!("telemetry_{}.csv", hour.format(HOUR_FORMAT))
}

/// Writes the next `hours` hours into `out_dir`, each committed on its own.
pub fn tick(
    registry: &Registry,
    out_dir: &Path,
    hours: u32,
    config: &Config,
    progress: &Progress,
) -> Result<Vec<Tick>> {
    // Ticks write the clock: one at a time.
    let _lock = crate::lake::LakeLock::acquire(&registry.dir, config.lake.lock_timeout())?;
    let mut registry = Registry::open(&registry.dir)?.context("the registry disappeared")?;
    finish_pending(&mut registry)?;
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let out_dir = out_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", out_dir.display()))?;
    let source = Arc::new(HourSource::open(&registry)?);
    let mut done = Vec::new();
    for _ in 0..hours {
        let hour = registry.state.next_hour()?;
        let target = out_dir.join(file_name(hour));
        let partial = out_dir.join(format!(".{}.partial", file_name(hour)));
        let rows = write_hour(&source, hour, &partial, config, progress)?;
        crate::fault::point("telemetry-tick-before-commit");
        registry.state.advance()?;
        registry.state.pending = Some(Pending {
            partial: partial.clone(),
            target: target.clone(),
        });
        registry.save()?;
        crate::fault::point("telemetry-tick-after-commit");
        finish_pending(&mut registry)?;
        done.push(Tick {
            hour,
            file: target,
            rows,
        });
    }
    Ok(done)
}

/// Completes a committed hour whose file was not yet renamed into place.
fn finish_pending(registry: &mut Registry) -> Result<()> {
    let Some(p) = registry.state.pending.take() else {
        return Ok(());
    };
    if p.partial.exists() {
        std::fs::rename(&p.partial, &p.target).with_context(|| {
            format!(
                "cannot move {} to {}",
                p.partial.display(),
                p.target.display()
            )
        })?;
        if let Some(dir) = p.target.parent() {
            sync_dir(dir)?;
        }
    } else if !p.target.exists() {
        tracing::warn!(
            "{} was committed by an earlier tick but is missing (moved away?); the clock stays past it",
            p.target.display()
        );
    }
    write_state(&registry.dir, &registry.state)
}

fn write_hour(
    source: &Arc<HourSource>,
    hour: NaiveDateTime,
    partial: &Path,
    config: &Config,
    progress: &Progress,
) -> Result<u64> {
    let threads = config.threads();
    let dataset = Arc::new(HourSource::at(source, hour));
    let units = dataset.plan(0);
    let count = units.len();
    let bar = progress.rows_bar(
        dataset.total_rows(),
        &format!("telemetry {}", hour.format(HOUR_FORMAT)),
    );
    let conn = db::open_in_memory(config, threads)?;
    db::execute(&conn, "SET preserve_insertion_order = false")?;
    table_function::register(
        &conn,
        Arc::new(table_function::Job {
            dataset,
            units,
            threads,
            progress: bar.clone(),
        }),
    )?;
    let rows: i64 = db::query_one(
        &conn,
        &format!(
            "COPY (SELECT * FROM {}(0, {count})) TO {} (FORMAT csv, HEADER true, TIMESTAMPFORMAT '%Y-%m-%d %H:%M:%S')",
            table_function::NAME,
            db::path_literal(partial)
        ),
    )?;
    drop(conn);
    bar.finish_and_clear();
    std::fs::File::open(partial)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", partial.display()))?;
    Ok(rows as u64)
}

/// The registry as Parquet row groups, read by any thread; with an hour, a dataset whose
/// units are the row groups and whose rows are the devices with that hour's measurements.
struct HourSource {
    file: PathBuf,
    metadata: ArrowReaderMetadata,
    seed: u64,
    schema: SchemaRef,
    hour: Option<NaiveDateTime>,
}

impl HourSource {
    fn open(registry: &Registry) -> Result<HourSource> {
        let file = registry.devices_file();
        let handle = std::fs::File::open(&file)
            .with_context(|| format!("cannot open {}", file.display()))?;
        let metadata = ArrowReaderMetadata::load(&handle, Default::default())
            .with_context(|| format!("{} is not a Parquet file", file.display()))?;
        let mut fields: Vec<Field> = super::registry::schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(
            "datetime",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ));
        for i in 1..=metrics::COUNT {
            fields.push(Field::new(format!("metric_{i}"), DataType::Float64, false));
        }
        Ok(HourSource {
            file,
            metadata,
            seed: registry.state.seed,
            schema: Arc::new(Schema::new(fields)),
            hour: None,
        })
    }

    fn at(source: &HourSource, hour: NaiveDateTime) -> HourSource {
        HourSource {
            file: source.file.clone(),
            metadata: source.metadata.clone(),
            seed: source.seed,
            schema: source.schema.clone(),
            hour: Some(hour),
        }
    }

    /// One batch of devices (registry columns) with the hour's columns added.
    fn measure(&self, devices: RecordBatch, hour: NaiveDateTime) -> Result<RecordBatch> {
        let n = devices.num_rows();
        let registry = super::registry::schema();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for field in registry.fields() {
            let column = devices.column_by_name(field.name()).with_context(|| {
                format!("{}: no column `{}`", self.file.display(), field.name())
            })?;
            columns.push(arrow::compute::cast(column, field.data_type())?);
        }
        let site = columns[4]
            .as_any()
            .downcast_ref::<Int64Array>()
            .context("site is not BIGINT")?
            .clone();
        let longitude = columns[3]
            .as_any()
            .downcast_ref::<Float64Array>()
            .context("longitude is not DOUBLE")?
            .clone();
        let micros = hour.and_utc().timestamp_micros();
        columns.push(Arc::new(TimestampMicrosecondArray::from(vec![micros; n])));
        let hour_index = hour.and_utc().timestamp() / 3600;
        let mut values: Vec<Vec<f64>> =
            (0..metrics::COUNT).map(|_| Vec::with_capacity(n)).collect();
        for (s, lon) in site.values().iter().zip(longitude.values().iter()) {
            for (column, v) in values
                .iter_mut()
                .zip(metrics::device(self.seed, hour_index, *s, *lon))
            {
                column.push(v);
            }
        }
        columns.extend(
            values
                .into_iter()
                .map(|v| Arc::new(Float64Array::from(v)) as ArrayRef),
        );
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

impl Dataset for HourSource {
    fn name(&self) -> &'static str {
        "telemetry"
    }
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn total_rows(&self) -> u64 {
        self.metadata.metadata().file_metadata().num_rows() as u64
    }
    /// One unit per row group of the registry.
    fn plan(&self, _max_unit_rows: usize) -> Vec<Unit> {
        self.metadata
            .metadata()
            .row_groups()
            .iter()
            .enumerate()
            .map(|(i, rg)| Unit {
                id: i as u64,
                start: 0,
                end: 0,
                rows: rg.num_rows() as usize,
            })
            .collect()
    }
    fn build(&self, unit: &Unit) -> Result<RecordBatch> {
        let mut chunks = self.build_chunks(unit)?;
        anyhow::ensure!(
            chunks.len() == 1,
            "row group {} spans several chunks",
            unit.id
        );
        Ok(chunks.remove(0))
    }
    fn build_chunks(&self, unit: &Unit) -> Result<Vec<RecordBatch>> {
        let hour = self.hour.context("no hour chosen")?;
        let file = std::fs::File::open(&self.file)
            .with_context(|| format!("cannot open {}", self.file.display()))?;
        let reader =
            ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.metadata.clone())
                .with_row_groups(vec![unit.id as usize])
                .with_batch_size(table_function::max_unit_rows())
                .build()?;
        reader
            .map(|batch| {
                self.measure(
                    batch.with_context(|| format!("cannot read {}", self.file.display()))?,
                    hour,
                )
            })
            .collect()
    }
}
