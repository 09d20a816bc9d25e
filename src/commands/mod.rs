//! The commands: each file turns one command's arguments into calls on the library and
//! prints what happened. Nothing below this layer prints or knows the terminal.

pub mod compact;
pub mod export;
pub mod generate;
pub mod ingest;
pub mod refresh;
pub mod report;
pub mod spark;
pub mod sql;
pub mod status;
pub mod telemetry;

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::{Cli, Command, GlobalArgs};
use crate::config::{Config, DEFAULT_CONFIG_FILE};
use crate::db;
use crate::error::Result;
use crate::progress::Progress;
use crate::warehouse::seal;

/// How a command that did its work ended; errors are the third outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Everything was loaded except rows now in `ingest_quarantine`.
    RowsQuarantined,
}

impl Outcome {
    /// The documented process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Success => crate::error::exit::SUCCESS,
            Outcome::RowsQuarantined => crate::error::exit::ROWS_QUARANTINED,
        }
    }
}

pub fn run(cli: Cli) -> Result<Outcome> {
    let project = Project::load(&cli.global)?;
    // Views over the lake use paths relative to the project root, as the DuckDB CLI will.
    std::env::set_current_dir(&project.root)
        .with_context(|| format!("cannot enter project root {}", project.root.display()))?;
    match cli.command {
        Command::Generate(args) => generate::run(&project, &args),
        Command::Ingest(args) => ingest::run(&project, &args),
        Command::Refresh(args) => refresh::run(&project, &args),
        Command::Export(args) => export::run(&project, &args),
        Command::Compact(args) => compact::run(&project, &args),
        Command::Report(args) => report::run(&project, &args),
        Command::Status => status::run(&project),
        Command::Sql(args) => sql::run(&project, &args),
        Command::Spark(args) => spark::run(&project, &args),
        Command::Telemetry(args) => telemetry::run(&project, &args),
    }
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
        let must_exist = args.config.as_os_str() != DEFAULT_CONFIG_FILE;
        // Like cargo and git: from a subdirectory, the project is the nearest folder above
        // that holds warehouse.yaml, not a new empty lake beside the user.
        let config_path = if must_exist {
            cwd.join(&args.config)
        } else {
            cwd.ancestors()
                .map(|dir| dir.join(DEFAULT_CONFIG_FILE))
                .find(|candidate| candidate.is_file())
                .unwrap_or_else(|| cwd.join(DEFAULT_CONFIG_FILE))
        };
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
        if let Some(seconds) = args.lock_timeout {
            config.lake.lock_timeout_seconds = seconds;
        }
        config.validate().map_err(|message| {
            anyhow::anyhow!(
                "{message} (from a command-line flag or {})",
                config_path.display()
            )
        })?;
        crate::generate::validate_config(&config)
            .with_context(|| config_path.display().to_string())?;
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
    pub fn progress(&self) -> Progress {
        Progress::new(self.quiet)
    }

    /// Opens the warehouse for a command that writes only micro-wh's own records (manifests,
    /// file records, the refresh log), never a model's table: a file the last refresh left
    /// as it was ([`seal`]) is noted so again when the handle closes, so that the next refresh
    /// still compares only what it changes.
    pub fn open_bookkeeping(&self) -> Result<Bookkeeping> {
        let path = self.warehouse();
        let conn = db::open_warehouse(&path, &self.config, self.config.threads())?;
        // Checked once open: while this process holds the file no other one writes it.
        let untouched = seal::untouched(&path);
        Ok(Bookkeeping {
            conn: Some(conn),
            path,
            untouched,
        })
    }
}

/// The warehouse opened by [`Project::open_bookkeeping`].
pub struct Bookkeeping {
    conn: Option<duckdb::Connection>,
    path: PathBuf,
    untouched: bool,
}

impl std::ops::Deref for Bookkeeping {
    type Target = duckdb::Connection;
    fn deref(&self) -> &duckdb::Connection {
        self.conn.as_ref().expect("open until dropped")
    }
}

impl Drop for Bookkeeping {
    fn drop(&mut self) {
        // Closed first: the note is of the file as the connection leaves it.
        drop(self.conn.take());
        if self.untouched {
            if let Err(e) = seal::seal(&self.path) {
                tracing::warn!(
                    "{e:#}; the next refresh compares gold history and unique tests whole"
                );
            }
        }
    }
}

/// `path` relative to `root` when it lies inside it, so views in the warehouse keep
/// working from the project root on another machine.
fn relative_to(path: &Path, root: &Path) -> PathBuf {
    path.strip_prefix(root)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}
