//! `micro-wh generate <dataset>`.

use std::sync::Arc;

use super::{Outcome, Project};
use crate::cli::GenerateArgs;
use crate::error::Result;
use crate::generate::{self, Dataset, GenerateOptions, Generator};
use crate::lake::{self, WriteMode};

pub fn run(project: &Project, args: &GenerateArgs) -> Result<Outcome> {
    let mut options = GenerateOptions {
        rows: args.rows,
        seed: args.seed,
        mode: args.mode(),
        compression: args.compression(),
    };
    if options.mode == WriteMode::Append && options.seed.is_none() {
        // The configured seed would append a second copy of the rows already there.
        let seed = fresh_seed();
        eprintln!("appending with a fresh seed {seed} (pass --seed to choose one)");
        options.seed = Some(seed);
    }
    let kind = generate::kind(&args.dataset)?;
    match (kind.build)(project.config.generate.get(kind.name), &options)? {
        Generator::Lake(dataset) => into_lake(project, dataset, &options)?,
        Generator::Files(files) => {
            let out = match &args.out {
                Some(dir) => project.cwd.join(dir),
                None => project.path(&files.default_out()),
            };
            let report = files.write(&project.root, &out, &project.config, &project.progress())?;
            println!(
                "generated {} {} rows in {} files into {}",
                report.rows,
                kind.name.replace('_', "-"),
                report.files.len(),
                out.strip_prefix(&project.root).unwrap_or(&out).display()
            );
        }
    }
    Ok(Outcome::Success)
}

/// Generates a lake dataset and prints what the lake now holds.
pub fn into_lake(
    project: &Project,
    dataset: Arc<dyn Dataset>,
    options: &GenerateOptions,
) -> Result<()> {
    let lake_dir = project.lake_dir();
    let report = generate::generate(
        dataset,
        &project.config,
        &lake_dir,
        options,
        &project.progress(),
    )?;
    let files = lake::scan_files(&lake_dir, report.dataset)?;
    let secs = report.elapsed.as_secs_f64();
    println!(
        "generated {} {} rows into {} in {:.1} s ({:.0} rows/s); lake now {} partitions, {} files, {}",
        report.rows,
        report.dataset,
        lake::dataset_dir(&project.config.paths.lake_dir, report.dataset).display(),
        secs,
        report.rows as f64 / secs.max(1e-9),
        files.partitions,
        files.files,
        super::status::human_bytes(files.bytes),
    );
    Ok(())
}

/// A seed no earlier run is likely to have used: the clock in nanoseconds and the process id.
fn fresh_seed() -> u64 {
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
    nanos ^ (u64::from(std::process::id()) << 32)
}
