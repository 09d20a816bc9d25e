//! `micro-wh compact`: many small files per partition (appends, hourly ingests) become one.

use anyhow::bail;

use super::{Outcome, Project};
use crate::cli::CompactArgs;
use crate::error::Result;
use crate::lake::{self, CopyOptions};
use crate::warehouse::incremental;
use crate::{db, ingest};

pub fn run(project: &Project, args: &CompactArgs) -> Result<Outcome> {
    let lake_dir = project.lake_dir();
    let datasets = if args.datasets.is_empty() {
        let mut all: Vec<String> = Vec::new();
        if lake_dir.is_dir() {
            for entry in std::fs::read_dir(&lake_dir)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if entry.file_type()?.is_dir()
                    && !name.starts_with('.')
                    && compactable(project, &name).is_ok()
                {
                    all.push(name);
                }
            }
        }
        all.sort();
        all
    } else {
        for name in &args.datasets {
            compactable(project, name)?;
        }
        args.datasets.clone()
    };
    let conn = db::open_in_memory(&project.config, project.config.threads())?;
    let options = CopyOptions::of(&project.config.lake);
    for name in &datasets {
        let report = lake::compact(
            &conn,
            &lake_dir,
            name,
            &options,
            project.config.lake.lock_timeout(),
        )?;
        println!(
            "{name}: {} partitions rewritten; {} files -> {}",
            report.partitions, report.files_before, report.files_after
        );
        if !report.replaced.is_empty() {
            if let Err(e) = follow_in_warehouse(project, name, &report.replaced) {
                // The lake is compacted either way; the models just rebuild those partitions.
                eprintln!(
                    "warning: the next refresh rebuilds the compacted partitions of {name}: {e:#}"
                );
            }
        }
    }
    Ok(Outcome::Success)
}

/// Tells the warehouse's incremental models that the compacted files hold the rows they had
/// already consumed, so the next refresh leaves them unchanged.
fn follow_in_warehouse(
    project: &Project,
    dataset: &str,
    replaced: &[(Vec<lake::FileStamp>, lake::FileStamp)],
) -> Result<()> {
    let path = project.warehouse();
    if !path.exists() {
        return Ok(());
    }
    let models = super::refresh::inputs(project)?.models;
    let conn = project.open_bookkeeping()?;
    incremental::follow_compaction(&conn, &models, dataset, replaced)
}

/// Ingested sources without `key`/`file_name` record each row's source file in the lake file's
/// name (so a changed file can replace its rows): merging those files would lose that.
fn compactable(project: &Project, name: &str) -> Result<()> {
    if !lake::dataset_dir(&project.lake_dir(), name).is_dir() {
        bail!(
            "{name} is not a dataset of the lake {}",
            project.lake_dir().display()
        );
    }
    if let Some(source) = project.config.sources.get(name) {
        if !ingest::writer::layout(source).merges() {
            bail!(
                "{name} is an ingested source whose lake files record the file they came from; \
                 compacting them would lose that (declare `key` or `file_name` to get one file per partition)"
            );
        }
    }
    Ok(())
}
