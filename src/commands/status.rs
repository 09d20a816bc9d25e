//! `micro-wh status`: what is in the lake and the warehouse right now.

use super::{Outcome, Project};
use crate::db;
use crate::error::Result;
use crate::lake;
use crate::warehouse::{migrations::HISTORY_TABLE, REFRESH_LOG};

pub fn run(project: &Project) -> Result<Outcome> {
    let lake_dir = project.lake_dir();
    println!("lake: {}", project.config.paths.lake_dir.display());
    let datasets = lake::datasets(&lake_dir)?;
    if datasets.is_empty() {
        println!("  (empty: run `micro-wh refresh`, `micro-wh generate events` or `micro-wh ingest --all`)");
    }
    let engine = db::open_in_memory(&project.config, project.config.threads())?;
    for dataset in &datasets {
        let files = lake::scan_files(&lake_dir, dataset)?;
        let rows: i64 = if files.files == 0 {
            0
        } else {
            let glob = db::literal(&format!(
                "{}/**/*.parquet",
                lake::dataset_dir(&lake_dir, dataset).to_string_lossy()
            ));
            db::query_one(
                &engine,
                &format!("SELECT count(*) FROM read_parquet({glob}, union_by_name = true)"),
            )?
        };
        println!(
            "  {dataset:<12} {:>6} partitions {:>7} files {:>12} rows {:>10}",
            files.partitions,
            files.files,
            rows,
            crate::human::bytes(files.bytes)
        );
    }

    let warehouse = project.warehouse();
    println!("warehouse: {}", project.config.paths.warehouse.display());
    if !warehouse.exists() {
        println!("  (not created yet: run `micro-wh refresh`)");
        return Ok(Outcome::Success);
    }
    let conn = db::open_read_only(&warehouse)?;
    let has = |table: &str| -> Result<bool> {
        Ok(db::query_one::<i64>(
            &conn,
            &format!(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = {}",
                db::literal(table)
            ),
        )? > 0)
    };
    println!("applied SQL files:");
    if has(HISTORY_TABLE)? {
        let mut stmt = conn.prepare(&format!(
            "SELECT file, checksum, strftime(applied_at, '%Y-%m-%d %H:%M:%S'), duration_ms FROM {HISTORY_TABLE} ORDER BY installed_rank"
        ))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let (file, checksum, at, ms): (String, String, String, i64) = row.try_into()?;
            println!(
                "  {file:<40} sha256 {}…  {at}  {ms} ms",
                checksum.get(..12).unwrap_or(&checksum)
            );
        }
    }
    println!("last refreshes:");
    if has(REFRESH_LOG)? {
        let mut stmt = conn.prepare(&format!(
            "SELECT id, strftime(started_at, '%Y-%m-%d %H:%M:%S'), status,
                    coalesce(round(epoch(finished_at - started_at), 1)::VARCHAR, '-'),
                    coalesce(tests_passed, 0), coalesce(tests_failed, 0), coalesce(error, '')
             FROM {REFRESH_LOG} ORDER BY id DESC LIMIT 5"
        ))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let (id, at, status, secs, passed, failed, error): (
                i64,
                String,
                String,
                String,
                i32,
                i32,
                String,
            ) = row.try_into()?;
            let error = error.lines().next().unwrap_or_default();
            println!("  #{id:<4} {at}  {status:<9} {secs:>6} s  tests {passed} passed, {failed} failed  {error}");
        }
    }
    Ok(Outcome::Success)
}
