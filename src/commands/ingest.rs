//! `micro-wh ingest`: declared sources into the lake, with a summary table per file.

use super::{Outcome, Project};
use crate::cli::IngestArgs;
use crate::error::Result;
use crate::ingest::{self, FileReport, FileStatus};
use crate::lake::LakeLock;

pub fn run(project: &Project, args: &IngestArgs) -> Result<Outcome> {
    let names = if args.all {
        Vec::new()
    } else {
        args.sources.clone()
    };
    let path = args.path.as_ref().map(|p| project.cwd.join(p));
    let reports = ingest_sources(project, &names, path.as_deref())?;
    outcome(&reports)
}

/// Runs an ingest and prints its summary; shared with `refresh --ingest`.
pub fn ingest_sources(
    project: &Project,
    names: &[String],
    path: Option<&std::path::Path>,
) -> Result<Vec<FileReport>> {
    // Taken before any file is read: a busy lake is said once, not as each file failing.
    let lake = LakeLock::acquire(&project.lake_dir(), project.config.lake.lock_timeout())?;
    let conn = project.open_bookkeeping()?;
    let env = ingest::Env {
        conn: &conn,
        config: &project.config,
        root: &project.root,
        lake: &lake,
        progress: project.progress(),
    };
    let reports = ingest::ingest(&env, names, path)?;
    print_summary(&reports);
    Ok(reports)
}

/// Exit status of an ingest: an error when a file failed, 3 when rows were quarantined.
pub fn outcome(reports: &[FileReport]) -> Result<Outcome> {
    let failed: Vec<String> = reports
        .iter()
        .filter_map(|r| match &r.status {
            FileStatus::Failed(e) => Some(format!("  {} ({}): {e}", r.file, r.source)),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        anyhow::bail!(
            "{} file(s) failed and were not loaded:\n{}",
            failed.len(),
            failed.join("\n")
        );
    }
    if reports.iter().any(|r| r.rows_quarantined > 0) {
        eprintln!("some rows were quarantined: SELECT * FROM ingest_quarantine WHERE ingest_id = (SELECT max(ingest_id) FROM ingest_manifest)");
        return Ok(Outcome::RowsQuarantined);
    }
    Ok(Outcome::Success)
}

fn print_summary(reports: &[FileReport]) {
    let width = reports
        .iter()
        .map(|r| r.file.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<width$}  {:<20} {:>12} {:>12} {:>12} {:>9}  status",
        "file", "source", "rows in", "loaded", "quarantined", "replaced"
    );
    for r in reports {
        println!(
            "{:<width$}  {:<20} {:>12} {:>12} {:>12} {:>9}  {}",
            r.file,
            r.source,
            r.rows_in,
            r.rows_loaded,
            r.rows_quarantined,
            r.rows_replaced,
            r.status.as_str()
        );
    }
    let sum = |f: fn(&FileReport) -> u64| reports.iter().map(f).sum::<u64>();
    let skipped = reports
        .iter()
        .filter(|r| r.status == FileStatus::Skipped)
        .count();
    println!(
        "{} files: {} rows in, {} loaded, {} quarantined, {} skipped (unchanged)",
        reports.len(),
        sum(|r| r.rows_in),
        sum(|r| r.rows_loaded),
        sum(|r| r.rows_quarantined),
        skipped
    );
}
