//! The `micro_wh_generate(first, end)` table function: DuckDB's worker threads each claim
//! the next work unit of `first..end`, build its Arrow batch in Rust and hand it over as
//! one data chunk. A unit may build more than one chunk's rows (see [`Dataset::build_chunks`]):
//! the chunks after the first wait in a shared queue for the next call of any thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow::record_batch::RecordBatch;

use duckdb::core::{DataChunkHandle, LogicalTypeHandle, LogicalTypeId};
use duckdb::vtab::{
    record_batch_to_duckdb_data_chunk, to_duckdb_logical_type, BindInfo, InitInfo,
    TableFunctionInfo, VTab,
};
use duckdb::Connection;
use indicatif::ProgressBar;

use super::plan::Unit;
use super::Dataset;
use crate::error::Result;

pub const NAME: &str = "micro_wh_generate";

/// Everything a scan needs; shared by DuckDB's threads.
pub struct Job {
    pub dataset: Arc<dyn Dataset>,
    pub units: Vec<Unit>,
    pub threads: usize,
    pub progress: ProgressBar,
}

pub struct GeneratorVTab;

pub struct BindData {
    job: Arc<Job>,
    first: usize,
    end: usize,
}

pub struct InitData {
    next_unit: AtomicUsize,
    end: usize,
    /// Chunks built but not yet handed to DuckDB.
    ready: Mutex<Vec<RecordBatch>>,
}

impl VTab for GeneratorVTab {
    type InitData = InitData;
    type BindData = BindData;

    fn bind(bind: &BindInfo) -> Result<BindData, Box<dyn std::error::Error>> {
        // SAFETY: registered below with extra info of exactly this type; DuckDB keeps it
        // alive as long as the function is in the catalog.
        let job = unsafe { (*bind.get_extra_info::<Arc<Job>>()).clone() };
        let (first, end) = (
            bind.get_parameter(0).to_int64(),
            bind.get_parameter(1).to_int64(),
        );
        let units = job.units.len() as i64;
        if !(0 <= first && first <= end && end <= units) {
            return Err(
                format!("{NAME}({first}, {end}): the range must lie within 0..={units}").into(),
            );
        }
        let (first, end) = (first as usize, end as usize);
        let rows: u64 = job.units[first..end].iter().map(|u| u.rows as u64).sum();
        for field in job.dataset.schema().fields() {
            bind.add_result_column(field.name(), to_duckdb_logical_type(field.data_type())?);
        }
        bind.set_cardinality(rows, true);
        Ok(BindData { job, first, end })
    }

    fn init(init: &InitInfo) -> Result<InitData, Box<dyn std::error::Error>> {
        // SAFETY: DuckDB passes the bind data our bind returned, which outlives the scan.
        let bind = unsafe { &*init.get_bind_data::<BindData>() };
        init.set_max_threads(bind.job.threads as u64);
        Ok(InitData {
            next_unit: AtomicUsize::new(bind.first),
            end: bind.end,
            ready: Mutex::new(Vec::new()),
        })
    }

    fn func(
        info: &TableFunctionInfo<Self>,
        output: &mut DataChunkHandle,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let job = &info.get_bind_data().job;
        let state = info.get_init_data();
        let queued = state
            .ready
            .lock()
            .map_err(|_| "a generator thread panicked")?
            .pop();
        let batch = match queued {
            Some(batch) => batch,
            None => {
                let index = state.next_unit.fetch_add(1, Ordering::Relaxed);
                if index >= state.end {
                    output.set_len(0);
                    return Ok(());
                }
                let mut chunks = job.dataset.build_chunks(&job.units[index])?;
                let Some(first) = chunks.pop() else {
                    // An empty unit: DuckDB reads a zero-row chunk as the end, so go on.
                    return Self::func(info, output);
                };
                state
                    .ready
                    .lock()
                    .map_err(|_| "a generator thread panicked")?
                    .extend(chunks);
                first
            }
        };
        record_batch_to_duckdb_data_chunk(&batch, output)?;
        job.progress.inc(batch.num_rows() as u64);
        Ok(())
    }

    fn parameters() -> Option<Vec<LogicalTypeHandle>> {
        Some(vec![
            LogicalTypeHandle::from(LogicalTypeId::Bigint),
            LogicalTypeHandle::from(LogicalTypeId::Bigint),
        ])
    }
}

/// One DuckDB vector: the most rows a table function may emit per call, so the largest unit.
pub fn max_unit_rows() -> usize {
    // SAFETY: a plain getter of a compile-time constant.
    unsafe { duckdb::ffi::duckdb_vector_size() as usize }
}

/// Registers `job` on `conn` as `micro_wh_generate(first, end)`.
pub fn register(conn: &Connection, job: Arc<Job>) -> Result<()> {
    conn.register_table_function_with_extra_info::<GeneratorVTab, Arc<Job>>(NAME, &job)?;
    Ok(())
}
