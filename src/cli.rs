//! Command-line interface: argument definitions and what each command does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::{Compression, Config, DEFAULT_CONFIG_FILE};
use crate::error::Result;
use crate::generate::{self, DatasetName, GenerateOptions};
use crate::lake::{self, WriteMode};
use crate::warehouse::refresh::{self, RefreshInputs};
use crate::{db, status};

/// micro-wh: synthetic or real data -> partitioned Parquet lake -> tested bronze/silver/gold
/// warehouse on DuckDB, on one machine.
///
/// Typical use, from the project root:
///
///   micro-wh refresh                 # generate the lake if empty, build and test, export gold
///   micro-wh generate events --rows 10000000 --seed 7
///   micro-wh status                  # lake, applied SQL, last refreshes
///   micro-wh sql "SELECT * FROM gold_daily_active_users ORDER BY date DESC LIMIT 7"
///
/// Settings come from warehouse.yaml (every key has a default); flags override it.
#[derive(Debug, Parser)]
#[command(name = "micro-wh", version, about, long_about, verbatim_doc_comment)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file; paths in it are relative to its directory (the project root).
    #[arg(long, short = 'c', global = true, env = "MICRO_WH_CONFIG", default_value = DEFAULT_CONFIG_FILE)]
    pub config: PathBuf,
    /// Lake directory (overrides paths.lake_dir).
    #[arg(long, global = true)]
    pub lake_dir: Option<PathBuf>,
    /// Warehouse file (overrides paths.warehouse).
    #[arg(long, global = true)]
    pub warehouse: Option<PathBuf>,
    /// Exports directory (overrides paths.exports_dir).
    #[arg(long, global = true)]
    pub exports_dir: Option<PathBuf>,
    /// SQL directory (overrides paths.sql_dir).
    #[arg(long, global = true)]
    pub sql_dir: Option<PathBuf>,
    /// Worker threads for DuckDB and generators; 0 = all cores (overrides engine.threads).
    #[arg(long, short = 't', global = true)]
    pub threads: Option<usize>,
    /// DuckDB memory limit such as 2GB (overrides engine.memory_limit).
    #[arg(long, global = true)]
    pub memory_limit: Option<String>,
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors; no progress bars.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a synthetic dataset into the lake (<lake_dir>/<dataset>/<key>=<value>/*.parquet).
    ///
    /// Rows are built in parallel in Rust and streamed into DuckDB's partitioned Parquet
    /// writer; the same seed gives the same rows whatever the thread count. The write is
    /// staged and published atomically: readers never see a partial lake.
    Generate(GenerateArgs),
    /// Apply SQL migrations, rebuild and test every model, record the refresh, export gold.
    ///
    /// If the default dataset's lake is empty (a fresh clone), it is generated first.
    /// A failing data test fails the refresh and leaves the previous tables and exports as
    /// they were.
    Refresh(RefreshArgs),
    /// Show the lake (partitions, files, rows, bytes), applied SQL files and recent refreshes.
    Status,
    /// Run SQL with micro-wh's DuckDB engine on the warehouse file (or in memory).
    ///
    /// An inline query prints its result as a table; --file runs a script of statements.
    Sql(SqlArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Dataset to generate.
    #[arg(value_enum)]
    pub dataset: DatasetName,
    /// Number of rows (default: generate.<dataset>.rows).
    #[arg(long, short = 'n', value_parser = clap::value_parser!(u64).range(1..))]
    pub rows: Option<u64>,
    /// Random seed (default: generate.<dataset>.seed).
    #[arg(long, short = 's')]
    pub seed: Option<u64>,
    /// overwrite replaces the dataset's files; append adds new files beside them.
    #[arg(long, value_enum, default_value = "overwrite")]
    pub mode: WriteMode,
    /// Parquet compression (default: lake.compression).
    #[arg(long, value_enum)]
    pub compression: Option<Compression>,
}

#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// Do not write exports/<gold table>.parquet.
    #[arg(long)]
    pub no_export: bool,
    /// Print the plain SQL of the models and exports and exit, touching nothing.
    #[arg(long)]
    pub print_sql: bool,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// A query whose result is printed.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub query: Option<String>,
    /// Run the statements in this file instead.
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    /// Run against a fresh in-memory database instead of the warehouse.
    #[arg(long)]
    pub in_memory: bool,
    /// Run against this database file instead of the configured warehouse.
    #[arg(long, conflicts_with = "in_memory")]
    pub db: Option<PathBuf>,
}

/// Resolved settings: the configuration with CLI overrides applied and every path absolute.
pub struct Project {
    pub root: PathBuf,
    /// Where the user ran micro-wh; paths given on the command line are relative to it.
    pub cwd: PathBuf,
    pub config: Config,
    pub quiet: bool,
}

impl Project {
    pub fn load(args: &GlobalArgs) -> Result<Project> {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let config_path = cwd.join(&args.config);
        let must_exist = args.config.as_os_str() != DEFAULT_CONFIG_FILE;
        let mut config = Config::load(&config_path, must_exist)?;
        let root = config_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| cwd.clone());
        // Flags are relative to where the user is; the file's paths to the project root.
        let overrides = [
            (&args.lake_dir, &mut config.paths.lake_dir),
            (&args.warehouse, &mut config.paths.warehouse),
            (&args.exports_dir, &mut config.paths.exports_dir),
            (&args.sql_dir, &mut config.paths.sql_dir),
        ];
        for (flag, setting) in overrides {
            if let Some(path) = flag {
                *setting = relative_to(&cwd.join(path), &root);
            }
        }
        if let Some(threads) = args.threads {
            config.engine.threads = threads;
        }
        if let Some(limit) = &args.memory_limit {
            config.engine.memory_limit = limit.clone();
        }
        config.validate().map_err(|message| {
            anyhow::anyhow!(
                "{message} (from a command-line flag or {})",
                config_path.display()
            )
        })?;
        Ok(Project {
            root,
            cwd,
            config,
            quiet: args.quiet,
        })
    }

    pub fn path(&self, relative: &Path) -> PathBuf {
        self.root.join(relative)
    }
    pub fn lake_dir(&self) -> PathBuf {
        self.path(&self.config.paths.lake_dir)
    }
    pub fn warehouse(&self) -> PathBuf {
        self.path(&self.config.paths.warehouse)
    }
    pub fn exports_dir(&self) -> PathBuf {
        self.path(&self.config.paths.exports_dir)
    }
    pub fn sql_dir(&self) -> PathBuf {
        self.path(&self.config.paths.sql_dir)
    }
}

/// `path` relative to `root` when it lies inside it, so views in the warehouse keep
/// working from the project root on another machine.
fn relative_to(path: &Path, root: &Path) -> PathBuf {
    path.strip_prefix(root)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}

pub fn run(cli: Cli) -> Result<()> {
    let project = Project::load(&cli.global)?;
    // Views over the lake use paths relative to the project root, as the DuckDB CLI will.
    std::env::set_current_dir(&project.root)
        .with_context(|| format!("cannot enter project root {}", project.root.display()))?;
    match cli.command {
        Command::Generate(args) => generate_command(&project, &args),
        Command::Refresh(args) => refresh_command(&project, &args),
        Command::Status => status::print(&project),
        Command::Sql(args) => sql_command(&project, &args),
    }
}

fn generate_command(project: &Project, args: &GenerateArgs) -> Result<()> {
    let options = GenerateOptions {
        rows: args.rows,
        seed: args.seed,
        mode: args.mode,
        compression: args.compression,
        quiet: project.quiet,
    };
    run_generate(project, args.dataset, &options)
}

fn run_generate(project: &Project, name: DatasetName, options: &GenerateOptions) -> Result<()> {
    let dataset = generate::build_dataset(name, &project.config, options)?;
    let lake_dir = project.lake_dir();
    let report = generate::generate(Arc::clone(&dataset), &project.config, &lake_dir, options)?;
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
        status::human_bytes(files.bytes),
    );
    Ok(())
}

fn refresh_command(project: &Project, args: &RefreshArgs) -> Result<()> {
    let inputs = RefreshInputs::load(&project.config, &project.sql_dir())?;
    let exports_dir =
        (!args.no_export && project.config.refresh.export).then(|| project.exports_dir());
    if args.print_sql {
        print!(
            "{}",
            inputs.plain_sql(exports_dir.as_deref(), &project.config)
        );
        return Ok(());
    }

    let default_dataset = &project.config.refresh.default_dataset;
    let lake_dir = project.lake_dir();
    if lake::scan_files(&lake_dir, default_dataset)?.files == 0 {
        let name = DatasetName::parse(default_dataset)
            .with_context(|| format!("refresh.default_dataset `{default_dataset}` is not a dataset micro-wh can generate"))?;
        eprintln!(
            "The lake at {} is empty: generating the default dataset first (micro-wh generate {default_dataset}).",
            lake::dataset_dir(&project.config.paths.lake_dir, default_dataset).display()
        );
        run_generate(
            project,
            name,
            &GenerateOptions {
                quiet: project.quiet,
                ..Default::default()
            },
        )?;
    }

    let conn = db::open_warehouse(
        &project.warehouse(),
        &project.config,
        project.config.threads(),
    )?;
    let report = refresh::refresh(
        &conn,
        &inputs,
        &project.config,
        exports_dir.as_deref(),
        project.quiet,
    )?;
    for m in &report.migrations {
        println!("applied {} ({} ms)", m.file, m.duration_ms);
    }
    for m in &report.models {
        println!(
            "{:<28} {:>12} rows  built in {:>5.2} s, tested in {:>5.2} s",
            m.name,
            m.rows,
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
    Ok(())
}

fn sql_command(project: &Project, args: &SqlArgs) -> Result<()> {
    let threads = project.config.threads();
    let conn = if args.in_memory {
        db::open_in_memory(&project.config, threads)?
    } else {
        let path = args
            .db
            .as_ref()
            .map_or_else(|| project.warehouse(), |db| project.cwd.join(db));
        db::open_warehouse(&path, &project.config, threads)?
    };
    if let Some(file) = &args.file {
        let file = project.cwd.join(file);
        let script = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        // The error names the file; repeating a whole script after it would bury the message.
        conn.execute_batch(&script)
            .with_context(|| format!("script {} failed", file.display()))?;
        return Ok(());
    }
    let query = args.query.as_deref().unwrap_or_default();
    let mut stmt = db::prepare(&conn, query)?;
    let batches: Vec<_> = stmt.query_arrow([])?.collect();
    println!("{}", arrow::util::pretty::pretty_format_batches(&batches)?);
    Ok(())
}
