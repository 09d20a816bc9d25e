//! `micro-wh refresh`: bootstrap what is missing, then build, test and export the warehouse.

use super::{ingest as ingest_command, Outcome, Project};
use crate::cli::RefreshArgs;
use crate::error::Result;
use crate::generate::{self, GenerateOptions, Generator};
use crate::warehouse::refresh::{self, RefreshInputs};
use crate::warehouse::seal;
use crate::{db, ingest, lake};

pub fn run(project: &Project, args: &RefreshArgs) -> Result<Outcome> {
    let mut inputs = inputs(project)?;
    inputs.allow_missing = args.allow_missing;
    inputs.full = args.full || args.revalidate;
    inputs.revalidate = args.revalidate;
    inputs.lake_dir = project.lake_dir();
    let exports_dir =
        (!args.no_export && project.config.refresh.export).then(|| project.exports_dir());
    let formats = &project.config.refresh.export_formats;
    if args.print_sql {
        print!(
            "{}",
            inputs.plain_sql(exports_dir.as_deref(), &project.config, formats)
        );
        return Ok(Outcome::Success);
    }

    bootstrap_default_dataset(project)?;
    let mut outcome = Outcome::Success;
    let empty_sources = sources_without_data(project)?;
    if args.ingest {
        outcome = ingest_command::outcome(&ingest_command::ingest_sources(project, &[], None)?)?;
    } else if !empty_sources.is_empty() {
        for name in &empty_sources {
            generate_source_files(project, name)?;
        }
        eprintln!(
            "Ingesting sources with an empty lake first: {}",
            empty_sources.join(", ")
        );
        outcome = ingest_command::outcome(&ingest_command::ingest_sources(
            project,
            &empty_sources,
            None,
        )?)?;
    }

    // No generate or ingest publishes mid-refresh; and the refresh writes lake models.
    let lake = lake::LakeLock::acquire(&project.lake_dir(), project.config.lake.lock_timeout())?;
    let conn = db::open_warehouse(
        &project.warehouse(),
        &project.config,
        project.config.threads(),
    )?;
    // Checked once open: while this process holds the file no other one writes it.
    inputs.untouched = seal::untouched(&project.warehouse());
    let result = refresh::refresh(
        &conn,
        &inputs,
        &project.config,
        exports_dir.as_deref().map(|d| (d, formats.as_slice())),
        project.progress(),
        &lake,
    );
    // The report is drawn after a failed refresh too: its failing tests are what to look at.
    if project.config.refresh.report {
        if let Err(e) = super::report::write(project, &conn, None) {
            match &result {
                Ok(_) => return Err(e.context("the refresh succeeded, but its report failed")),
                Err(_) => tracing::warn!("the report could not be written: {e:#}"),
            }
        }
    }
    drop(conn);
    if result.as_ref().is_ok_and(|r| r.committed) {
        // The next refresh trusts its records of the tables only if the file is still this.
        if let Err(e) = seal::seal(&project.warehouse()) {
            tracing::warn!("{e:#}; the next refresh compares gold history and unique tests whole");
        }
    }
    let report = result?;
    for m in &report.migrations {
        println!("applied {} ({} ms)", m.file, m.duration_ms);
    }
    for m in &report.models {
        println!(
            "{:<28} {:<27} {:>12} rows  built in {:>5.2} s, tested in {:>5.2} s",
            m.name,
            m.mode,
            m.rows.map_or("(view)".to_owned(), |n| n.to_string()),
            m.build.as_secs_f64(),
            m.tests.as_secs_f64()
        );
    }
    let exported = match &exports_dir {
        Some(_) => format!(
            "{} files exported to {}",
            report.exported.len(),
            project.config.paths.exports_dir.display()
        ),
        None => "exports skipped".to_owned(),
    };
    println!(
        "refresh #{} succeeded in {:.1} s: {} models, {} data tests passed, {exported}",
        report.id,
        report.elapsed.as_secs_f64(),
        report.models.len(),
        report.checks.len(),
    );
    Ok(outcome)
}

/// The SQL files with placeholders filled from the configuration.
pub fn inputs(project: &Project) -> Result<RefreshInputs> {
    let vars = crate::warehouse::template::Vars::new(
        &project.config,
        generate::template_vars(&project.config)?,
    );
    RefreshInputs::load(&vars, &project.sql_dir())
}

/// A fresh clone has no lake: generate the default dataset so the first refresh has data.
fn bootstrap_default_dataset(project: &Project) -> Result<()> {
    let name = &project.config.refresh.default_dataset;
    if lake::has_files(&project.lake_dir(), name)? {
        return Ok(());
    }
    let kind = generate::kind(name).map_err(|e| {
        e.context(format!(
            "refresh.default_dataset `{name}` is not a dataset micro-wh can generate"
        ))
    })?;
    let options = GenerateOptions::default();
    if let Generator::Lake(dataset) =
        (kind.build)(project.config.generate.get(kind.name), &options)?
    {
        eprintln!(
            "The lake at {} is empty: generating the default dataset first (micro-wh generate {name}).",
            lake::dataset_dir(&project.config.paths.lake_dir, name).display()
        );
        super::generate::into_lake(project, dataset, &options)?;
    }
    Ok(())
}

/// Declared sources whose lake folder holds no file yet (their bronze views do not exist).
fn sources_without_data(project: &Project) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for name in project.config.sources.keys() {
        if !lake::has_files(&project.lake_dir(), name)? {
            names.push(name.clone());
        }
    }
    Ok(names)
}

/// When a source's path holds no file and a generator has the source's name (the shipped
/// `business_events` demo), generate its files so the first refresh has input.
fn generate_source_files(project: &Project, name: &str) -> Result<()> {
    let source = &project.config.sources[name];
    let path = project.path(&source.path);
    if ingest::discover(&path).is_ok() {
        return Ok(());
    }
    let Ok(kind) = generate::kind(name) else {
        return Ok(());
    };
    if let Generator::Files(files) = (kind.build)(
        project.config.generate.get(kind.name),
        &GenerateOptions::default(),
    )? {
        eprintln!(
            "{} holds no file: generating them first (micro-wh generate {}).",
            source.path.display(),
            kind.name.replace('_', "-")
        );
        files.write(&project.root, &path, &project.config, &project.progress())?;
    }
    Ok(())
}
