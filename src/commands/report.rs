//! `micro-wh report`: the HTML report of the warehouse, written to a file.

use std::path::PathBuf;

use duckdb::Connection;

use super::{Outcome, Project};
use crate::cli::ReportArgs;
use crate::db;
use crate::error::Result;

pub fn run(project: &Project, args: &ReportArgs) -> Result<Outcome> {
    let warehouse = project.warehouse();
    if !warehouse.exists() {
        anyhow::bail!(
            "{} does not exist yet: run `micro-wh refresh` first",
            project.config.paths.warehouse.display()
        );
    }
    // Read-only: a report may be drawn while nothing else writes, without taking the lock.
    let conn = db::open_read_only(&warehouse)?;
    let out = args.out.as_ref().map(|o| project.cwd.join(o));
    write(project, &conn, out)?;
    Ok(Outcome::Success)
}

/// Writes the report of the warehouse open on `conn` to `out` (default
/// `<exports_dir>/report.html`) and says where.
pub fn write(project: &Project, conn: &Connection, out: Option<PathBuf>) -> Result<()> {
    let out = out.unwrap_or_else(|| project.exports_dir().join("report.html"));
    let written = crate::report::write(
        conn,
        Some(&project.lake_dir()),
        &project.config.paths.warehouse.to_string_lossy(),
        &out,
    )?;
    println!(
        "report written to {} ({}): {}",
        out.strip_prefix(&project.root).unwrap_or(&out).display(),
        crate::human::bytes(written.bytes),
        written.sections.join(", ")
    );
    Ok(())
}
