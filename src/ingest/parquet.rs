//! Parquet inputs, read by DuckDB and rewritten into the lake with the source's layout;
//! declared columns are cast and checked like any other format (row numbers are 1-based).

use super::validate::{checked_select, describe, has_constraints};
use super::{Format, LoadJob, Loaded};
use crate::db::{self, ident, path_literal};
use crate::error::Result;

pub struct Parquet;

impl Format for Parquet {
    fn name(&self) -> &'static str {
        "parquet"
    }

    fn load(&self, job: &LoadJob<'_>) -> Result<Loaded> {
        let file = path_literal(job.file);
        let scan =
            format!("read_parquet({file}, file_row_number = true, hive_partitioning = false)");
        let columns = match job.columns {
            Some(c) => c.to_vec(),
            None => describe(
                job.conn,
                &format!("read_parquet({file}, hive_partitioning = false)"),
                job.file,
            )?,
        };
        let cast = job.columns.is_some();
        let rows_in: i64 = db::query_one(
            job.conn,
            &format!("SELECT count(*) FROM read_parquet({file}, hive_partitioning = false)"),
        )?;
        let relation = |raw: &str| {
            format!("(SELECT file_row_number + 1 AS _line, {raw} AS _raw, * FROM {scan} t)")
        };
        let checked = checked_select(
            job.conn,
            &relation("CAST(NULL AS VARCHAR)"),
            &columns,
            &job.source.checks,
            cast,
            None,
        );
        let mut list: Vec<String> = columns.iter().map(|c| ident(&c.name)).collect();
        if job.ordered {
            list.push("_line".into());
        }
        let loaded = job.write_incoming(
            &format!(
                "SELECT {} FROM ({checked}) WHERE _reason IS NULL",
                list.join(", ")
            ),
            0,
        )?;
        if cast || has_constraints(&columns, &job.source.checks) {
            let with_raw = checked_select(
                job.conn,
                &relation("CAST(to_json(t) AS VARCHAR)"),
                &columns,
                &job.source.checks,
                cast,
                None,
            );
            job.quarantine_failures(&with_raw)?;
        }
        Ok(Loaded {
            rows_in: rows_in as u64,
            rows_loaded: loaded,
            columns,
        })
    }
}
