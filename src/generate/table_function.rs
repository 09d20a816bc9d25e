//! The `micro_wh_generate()` table function: DuckDB's worker threads each claim the next
//! work unit, build its Arrow batch in Rust and hand it over as one data chunk.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use duckdb::core::{DataChunkHandle, LogicalTypeHandle};
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
    dataset: Arc<dyn Dataset>,
    units: Vec<Unit>,
    threads: usize,
    progress: ProgressBar,
}

pub struct GeneratorVTab;

pub struct BindData {
    job: Arc<Job>,
}

pub struct InitData {
    next_unit: AtomicUsize,
}

impl VTab for GeneratorVTab {
    type InitData = InitData;
    type BindData = BindData;

    fn bind(bind: &BindInfo) -> Result<BindData, Box<dyn std::error::Error>> {
        // SAFETY: registered below with extra info of exactly this type; DuckDB keeps it
        // alive as long as the function is in the catalog.
        let job = unsafe { (*bind.get_extra_info::<Arc<Job>>()).clone() };
        for field in job.dataset.schema().fields() {
            bind.add_result_column(field.name(), to_duckdb_logical_type(field.data_type())?);
        }
        bind.set_cardinality(job.dataset.total_rows(), true);
        Ok(BindData { job })
    }

    fn init(init: &InitInfo) -> Result<InitData, Box<dyn std::error::Error>> {
        // SAFETY: as in bind.
        let job = unsafe { &*init.get_extra_info::<Arc<Job>>() };
        init.set_max_threads(job.threads as u64);
        Ok(InitData {
            next_unit: AtomicUsize::new(0),
        })
    }

    fn func(
        info: &TableFunctionInfo<Self>,
        output: &mut DataChunkHandle,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let job = &info.get_bind_data().job;
        let index = info
            .get_init_data()
            .next_unit
            .fetch_add(1, Ordering::Relaxed);
        let Some(unit) = job.units.get(index) else {
            output.set_len(0);
            return Ok(());
        };
        let batch = job.dataset.build(unit)?;
        record_batch_to_duckdb_data_chunk(&batch, output)?;
        job.progress.inc(batch.num_rows() as u64);
        Ok(())
    }

    fn parameters() -> Option<Vec<LogicalTypeHandle>> {
        None
    }
}

/// Registers the generator for `dataset` on `conn` as `micro_wh_generate()`.
pub fn register(
    conn: &Connection,
    dataset: Arc<dyn Dataset>,
    threads: usize,
    progress: ProgressBar,
) -> Result<()> {
    // One unit fills at most one DuckDB vector, the most a table function may emit per call.
    // SAFETY: a plain getter of a compile-time constant.
    let vector_size = unsafe { duckdb::ffi::duckdb_vector_size() } as usize;
    let units = dataset.plan(vector_size);
    let job = Arc::new(Job {
        dataset,
        units,
        threads: threads.max(1),
        progress,
    });
    conn.register_table_function_with_extra_info::<GeneratorVTab, Arc<Job>>(NAME, &job)?;
    Ok(())
}
