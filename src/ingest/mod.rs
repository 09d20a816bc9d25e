//! Ingest: the files of declared sources into the lake, each bad row quarantined with its
//! file, line and reason, each file accounted for in a manifest.
//!
//! A file goes through three steps. Its format module reads it and writes the rows that keep
//! the source's contract into a private `incoming` folder, the others into a scratch
//! quarantine table. The lake writer then replaces whatever this file loaded before and merges
//! keyed rows, publishing the dataset folder atomically. Last, one warehouse transaction
//! records the manifest row and the quarantine. A run killed between publish and commit
//! leaves no manifest row, so the next run ingests the file again; since every lake write
//! first drops the rows this file loaded before, that repeat is harmless.
//!
//! A format is one module implementing [`Format`] plus one entry in [`FORMATS`].

pub mod chunks;
pub mod csv;
pub mod json;
pub mod log;
pub mod manifest;
pub mod parquet;
pub mod sqlite;
pub mod validate;
pub mod writer;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use duckdb::Connection;
use indicatif::ProgressBar;

use crate::config::{Config, SourceConfig};
use crate::db::{self, ident};
use crate::error::Result;
use crate::lake::LakeLock;
use crate::progress::Progress;
use validate::Column;

/// How one input format becomes rows.
pub trait Format: Sync {
    /// The value of `format:` in `warehouse.yaml`.
    fn name(&self) -> &'static str;
    /// Refuses settings this format cannot honour; messages start with the key.
    fn check_config(&self, _source: &SourceConfig) -> Result<()> {
        Ok(())
    }
    /// Tables a file holds, each landing in its own lake folder; one unnamed table by default.
    fn tables(&self, _file: &Path, _source: &SourceConfig) -> Result<Vec<String>> {
        Ok(vec![String::new()])
    }
    /// Reads one table of a file: valid rows into `job.incoming` as Parquet (declared columns
    /// plus `_line`), rejected rows into the scratch quarantine table.
    fn load(&self, job: &LoadJob<'_>) -> Result<Loaded>;
}

/// Every input format.
pub const FORMATS: &[&dyn Format] = &[
    &csv::Csv,
    &json::Json::ARRAY,
    &json::Json::LINES,
    &log::Log,
    &sqlite::Sqlite,
    &parquet::Parquet,
];

pub fn format(name: &str) -> Option<&'static dyn Format> {
    FORMATS.iter().copied().find(|f| f.name() == name)
}

/// The scratch database (in memory, beside the warehouse) and its quarantine table.
pub const SCRATCH: &str = "micro_wh_scratch";
pub const QUARANTINE: &str = "micro_wh_scratch.quarantine";

/// One table of one file to load.
pub struct LoadJob<'a> {
    pub conn: &'a Connection,
    pub source: &'a SourceConfig,
    pub file: &'a Path,
    /// The file as messages name it (relative to the project).
    pub rel: &'a str,
    /// Empty unless the format holds several tables.
    pub table: &'a str,
    pub columns: Option<&'a [Column]>,
    /// Folder for the valid rows' Parquet files.
    pub incoming: &'a Path,
    /// `_line` must follow the file (needed to pick the later of two rows with one key).
    pub ordered: bool,
    /// Rows buffered before a Parquet file is written.
    pub max_rows_per_write: u64,
    pub bar: &'a ProgressBar,
    /// When rows are appended as files of their own under declared columns, the load writes
    /// them straight into the lake layout (one pass over the rows instead of two).
    pub laid_out: Option<LaidOut<'a>>,
}

/// The lake layout an appending load writes its incoming rows in.
pub struct LaidOut<'a> {
    pub layout: &'a crate::lake::Layout,
    pub columns: &'a [Column],
    /// Lake file names of this source file start with it.
    pub prefix: String,
    pub options: crate::lake::CopyOptions,
}

impl LoadJob<'_> {
    /// Writes a query's valid rows into the incoming folder as one more Parquet file.
    pub fn write_incoming(&self, select: &str, part: usize) -> Result<u64> {
        if let Some(l) = &self.laid_out {
            let select = format!(
                "SELECT {} FROM ({select})",
                writer::select_list(l.columns, &l.layout.partitions, false)
            );
            let prefix = format!("{}_{part:05}", l.prefix);
            // The declared types are the written ones (partition columns go into folder
            // names): when they are all portable, nothing needs a look at the select.
            if l.columns.iter().all(|c| db::is_portable(&c.ty)) {
                return l
                    .layout
                    .copy_as_is(self.conn, &select, self.incoming, &prefix, &l.options);
            }
            return l
                .layout
                .copy(self.conn, &select, self.incoming, &prefix, &l.options);
        }
        let path = self.incoming.join(format!("part_{part:05}.parquet"));
        let n: i64 = db::query_one(
            self.conn,
            &format!(
                "COPY ({select}) TO {} (FORMAT parquet, COMPRESSION zstd)",
                db::path_literal(&path)
            ),
        )?;
        Ok(n as u64)
    }

    /// Puts the failing rows of a checked query into the quarantine.
    pub fn quarantine_failures(&self, checked: &str) -> Result<()> {
        db::execute(
            self.conn,
            &format!(
                "INSERT INTO {QUARANTINE} SELECT _line, _raw, _reason FROM ({checked}) WHERE _reason IS NOT NULL"
            ),
        )?;
        Ok(())
    }
}

/// What loading a table produced.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub rows_in: u64,
    pub rows_loaded: u64,
    /// The schema the rows were held to (declared, or inferred and recorded in the manifest).
    pub columns: Vec<Column>,
}

/// Where and how an ingest runs; paths absolute.
pub struct Env<'a> {
    pub conn: &'a Connection,
    pub config: &'a Config,
    pub root: &'a Path,
    /// Held for the whole run: no other writer publishes between reading the lake (the rows
    /// a key replaces) and publishing, and a busy lake stops the run before any file is read.
    pub lake: &'a LakeLock,
    pub progress: Progress,
}

impl Env<'_> {
    fn lake_dir(&self) -> &Path {
        self.lake.lake_dir()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileStatus {
    Loaded,
    /// Loaded, with some rows quarantined.
    Quarantined,
    /// Unchanged since it was loaded (same SHA-256).
    Skipped,
    /// Nothing of the file was committed.
    Failed(String),
}

impl FileStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            FileStatus::Loaded => "loaded",
            FileStatus::Quarantined => "quarantined",
            FileStatus::Skipped => "skipped",
            FileStatus::Failed(_) => "failed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct FileReport {
    /// The source as the manifest names it (`<source>.<table>` for tables of a file).
    pub source: String,
    pub file: String,
    pub rows_in: u64,
    pub rows_loaded: u64,
    pub rows_quarantined: u64,
    /// Lake rows this file's rows replaced or lost to, by key.
    pub rows_replaced: u64,
    pub status: FileStatus,
}

/// Ingests the named sources (all when `names` is empty). `path` overrides the configured path
/// of the one source named. A file that fails is reported and the others still load.
pub fn ingest(env: &Env<'_>, names: &[String], path: Option<&Path>) -> Result<Vec<FileReport>> {
    let sources = select_sources(env.config, names)?;
    if path.is_some() && sources.len() != 1 {
        bail!("--path overrides the path of one source: name exactly one");
    }
    let mut plans = Vec::new();
    for (name, source) in &sources {
        let format = format(&source.format).ok_or_else(|| unknown_format(name, &source.format))?;
        format
            .check_config(source)
            .with_context(|| format!("sources.{name}"))?;
        let columns = match &source.columns {
            Some(pairs) => Some(validate::parse_columns(pairs, name)?),
            None => None,
        };
        if let Some(columns) = &columns {
            validate::check_types(env.conn, name, columns)?;
        }
        let configured = env.root.join(&source.path);
        let files =
            discover(path.unwrap_or(&configured)).with_context(|| format!("source `{name}`"))?;
        plans.push((name.as_str(), *source, format, columns, files));
    }

    manifest::ensure_tables(env.conn)?;
    db::execute(
        env.conn,
        &format!("ATTACH IF NOT EXISTS ':memory:' AS {SCRATCH}"),
    )?;
    let ingest_id = manifest::next_ingest_id(env.conn)?;
    let incoming_root = env.lake_dir().join(".incoming");
    // The warehouse file is open read-write, which DuckDB grants one process at a time,
    // so anything here is left over from a killed run.
    if incoming_root.exists() {
        std::fs::remove_dir_all(&incoming_root)
            .with_context(|| format!("cannot clean {}", incoming_root.display()))?;
    }

    let total_bytes = plans
        .iter()
        .flat_map(|p| &p.4)
        .map(|f| f.metadata().map_or(0, |m| m.len()))
        .sum();
    let bar = env.progress.bytes_bar(total_bytes, "ingest");
    if !bar.is_hidden() {
        // DuckDB's own estimate of a long read shows in the bar's message.
        env.conn.set_query_progress_tracking(true)?;
    }
    let mut reports = Vec::new();
    for (name, source, format, columns, files) in plans {
        let mut datasets = Vec::new();
        for file in &files {
            let rel = display_path(file, env.root);
            bar.set_message(rel.clone());
            let size = file.metadata().map_or(0, |m| m.len());
            let tables = match format.tables(file, source) {
                Ok(t) => t,
                Err(e) => {
                    let error = format!("{e:#}");
                    manifest::record_failure(env.conn, ingest_id, name, &rel, size, &error)?;
                    reports.push(failed(name, &rel, error));
                    bar.inc(size);
                    continue;
                }
            };
            let mut hash = manifest::Hash::start(file);
            for table in tables {
                let (dataset, manifest_source) = if table.is_empty() {
                    (name.to_owned(), name.to_owned())
                } else {
                    (format!("{name}/{table}"), format!("{name}.{table}"))
                };
                let file_ref = FileRef {
                    path: file,
                    rel: &rel,
                    size,
                };
                let job = TableJob {
                    env,
                    ingest_id,
                    source,
                    format,
                    columns: columns.as_deref(),
                    file: file_ref,
                    table: &table,
                    dataset: &dataset,
                    manifest_source: &manifest_source,
                    incoming: incoming_root.join(dataset.replace('/', "+")),
                    bar: &bar,
                };
                let report = job.run(&mut hash)?;
                if !matches!(report.status, FileStatus::Failed(_)) && !datasets.contains(&dataset) {
                    datasets.push(dataset.clone());
                }
                reports.push(report);
            }
            bar.inc(size);
        }
        for dataset in datasets {
            create_bronze_view(env, source, &dataset, columns.as_deref())?;
        }
    }
    bar.finish_and_clear();
    let _ = std::fs::remove_dir_all(&incoming_root);
    Ok(reports)
}

fn select_sources<'c>(
    config: &'c Config,
    names: &[String],
) -> Result<Vec<(&'c String, &'c SourceConfig)>> {
    if config.sources.is_empty() {
        bail!("no sources are declared: add a `sources:` map to the configuration (see README: Ingest)");
    }
    if names.is_empty() {
        return Ok(config.sources.iter().collect());
    }
    names
        .iter()
        .map(|n| {
            config.sources.get_key_value(n).ok_or_else(|| {
                anyhow::anyhow!(
                    "source `{n}` is not declared (declared: {})",
                    config
                        .sources
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        })
        .collect()
}

fn unknown_format(name: &str, format: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "sources.{name}.format: unknown format `{format}` (known: {})",
        FORMATS
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The files a source path means: a file, every file of a folder (sorted, hidden ones
/// skipped), or the files a glob matches (sorted).
pub fn discover(path: &Path) -> Result<Vec<PathBuf>> {
    let text = path.to_string_lossy();
    let mut files = Vec::new();
    if text.contains(['*', '?', '[']) {
        for entry in glob::glob(&text).with_context(|| format!("bad glob {text}"))? {
            let p = entry.with_context(|| format!("cannot read a match of {text}"))?;
            if p.is_file() {
                files.push(p);
            }
        }
        if files.is_empty() {
            bail!("{text} matches no file");
        }
    } else if path.is_dir() {
        for entry in
            std::fs::read_dir(path).with_context(|| format!("cannot read {}", path.display()))?
        {
            let entry = entry.with_context(|| format!("cannot read {}", path.display()))?;
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if !hidden && entry.file_type()?.is_file() {
                files.push(entry.path());
            }
        }
        if files.is_empty() {
            bail!("{} holds no file", path.display());
        }
    } else if path.is_file() {
        files.push(path.to_owned());
    } else {
        bail!("{} does not exist", path.display());
    }
    files.sort();
    Ok(files)
}

/// A path as the manifest records it: relative to the project root when inside it.
fn display_path(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

fn failed(source: &str, file: &str, error: String) -> FileReport {
    FileReport {
        source: source.to_owned(),
        file: file.to_owned(),
        rows_in: 0,
        rows_loaded: 0,
        rows_quarantined: 0,
        rows_replaced: 0,
        status: FileStatus::Failed(error),
    }
}

#[derive(Clone, Copy)]
struct FileRef<'a> {
    path: &'a Path,
    rel: &'a str,
    size: u64,
}

/// One table of one file, through load, lake write and commit.
struct TableJob<'a> {
    env: &'a Env<'a>,
    ingest_id: i64,
    source: &'a SourceConfig,
    format: &'a dyn Format,
    columns: Option<&'a [Column]>,
    file: FileRef<'a>,
    table: &'a str,
    dataset: &'a str,
    manifest_source: &'a str,
    incoming: PathBuf,
    bar: &'a ProgressBar,
}

impl TableJob<'_> {
    fn run(&self, hash: &mut manifest::Hash) -> Result<FileReport> {
        let conn = self.env.conn;
        if let Some((size, sha)) = manifest::current(conn, self.manifest_source, self.file.rel)? {
            if size == self.file.size && sha == hash.get()? {
                return Ok(FileReport {
                    status: FileStatus::Skipped,
                    ..failed(self.manifest_source, self.file.rel, String::new())
                });
            }
        }
        let started = db::utc_now();
        let clock = Instant::now();
        match self.load_and_write() {
            Ok((loaded, replaced)) => {
                let sha256 = hash.get()?.to_owned();
                let quarantined: i64 =
                    db::query_one(conn, &format!("SELECT count(*) FROM {QUARANTINE}"))?;
                let entry = manifest::Entry {
                    ingest_id: self.ingest_id,
                    source: self.manifest_source,
                    file: self.file.rel,
                    size_bytes: self.file.size,
                    sha256: &sha256,
                    rows_in: loaded.rows_in,
                    rows_loaded: loaded.rows_loaded,
                    rows_quarantined: quarantined as u64,
                    rows_replaced: replaced,
                    schema: serde_json::to_string(&loaded.columns)?,
                    started_at: &started,
                };
                anyhow::ensure!(
                    entry.rows_in == entry.rows_loaded + entry.rows_quarantined,
                    "{}: internal accounting error: {} rows in, {} loaded, {} quarantined",
                    self.file.rel,
                    entry.rows_in,
                    entry.rows_loaded,
                    entry.rows_quarantined
                );
                crate::fault::point("ingest-after-publish");
                manifest::commit(conn, &entry)?;
                if self.source.key.is_empty() && entry.rows_loaded > 0 {
                    let other =
                        manifest::same_content(conn, self.manifest_source, self.file.rel, &sha256)?;
                    if let Some(other) = other {
                        tracing::warn!(
                            "{}: the same content as {other}, loaded before: the lake now holds \
                             its rows twice (a source with `key:` keeps one row per key)",
                            self.file.rel
                        );
                    }
                }
                tracing::info!(
                    "{} {}: {} rows in {:.2} s",
                    self.manifest_source,
                    self.file.rel,
                    entry.rows_in,
                    clock.elapsed().as_secs_f64()
                );
                Ok(FileReport {
                    source: self.manifest_source.to_owned(),
                    file: self.file.rel.to_owned(),
                    rows_in: entry.rows_in,
                    rows_loaded: entry.rows_loaded,
                    rows_quarantined: entry.rows_quarantined,
                    rows_replaced: replaced,
                    status: if entry.rows_quarantined > 0 {
                        FileStatus::Quarantined
                    } else {
                        FileStatus::Loaded
                    },
                })
            }
            Err(e) => {
                tracing::info!("{}: {e:#}", self.file.rel);
                // The manifest and the summary say why; the generated SQL (kilobytes, the
                // same for every file of the source) is logged with -v.
                let error = crate::error::without_sql(&e);
                manifest::record_failure(
                    conn,
                    self.ingest_id,
                    self.manifest_source,
                    self.file.rel,
                    self.file.size,
                    &error,
                )?;
                Ok(failed(self.manifest_source, self.file.rel, error))
            }
        }
    }

    fn load_and_write(&self) -> Result<(Loaded, u64)> {
        let conn = self.env.conn;
        let _ = std::fs::remove_dir_all(&self.incoming);
        std::fs::create_dir_all(&self.incoming)
            .with_context(|| format!("cannot create {}", self.incoming.display()))?;
        db::execute(
            conn,
            &format!(
                "CREATE OR REPLACE TABLE {QUARANTINE} (line BIGINT, raw VARCHAR, reason VARCHAR)"
            ),
        )?;
        let layout = writer::layout(self.source);
        let laid_out = (!layout.merges() && !layout.lake.partitions.is_empty())
            .then_some(self.columns)
            .flatten()
            .map(|columns| LaidOut {
                layout: &layout.lake,
                columns,
                prefix: writer::file_prefix(self.file.rel),
                options: crate::lake::CopyOptions::of(&self.env.config.lake),
            });
        let job = LoadJob {
            conn,
            source: self.source,
            file: self.file.path,
            rel: self.file.rel,
            table: self.table,
            columns: self.columns,
            incoming: &self.incoming,
            ordered: layout.merges(),
            max_rows_per_write: self.env.config.lake.max_rows_per_write,
            bar: self.bar,
            laid_out,
        };
        let loaded = self
            .format
            .load(&job)
            .with_context(|| format!("{} ({})", self.file.rel, self.format.name()))?;
        for part in self.source.partition_by.0.iter().map(|p| &p.0) {
            let is_column = loaded.columns.iter().any(|c| &c.name == part);
            let is_expression = self
                .source
                .partition_by
                .0
                .iter()
                .any(|(n, e)| n == part && *e != ident(n));
            anyhow::ensure!(
                is_column || is_expression,
                "partition_by: `{part}` is not a column of {}",
                self.file.rel
            );
        }
        for key in &self.source.key {
            anyhow::ensure!(
                loaded.columns.iter().any(|c| &c.name == key),
                "key: `{key}` is not a column of {}",
                self.file.rel
            );
        }
        let target = writer::Target {
            conn,
            config: self.env.config,
            lake: self.env.lake,
            dataset: self.dataset,
            layout: &layout,
            columns: &loaded.columns,
            source_file: self.file.rel,
        };
        crate::fault::point("ingest-before-publish");
        let replaced = target.write(&self.incoming, loaded.rows_loaded)?;
        let _ = std::fs::remove_dir_all(&self.incoming);
        Ok((loaded, replaced))
    }
}

/// Name of the view over a dataset's lake folder.
pub fn bronze_view_name(dataset: &str) -> String {
    format!("bronze_{}", dataset.replace('/', "_"))
}

/// A source's lake folder as its bronze view reads it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BronzeView {
    pub view: String,
    /// Folder under the lake (`<source>` or `<source>/<table>`).
    pub dataset: String,
    /// Hive partition columns with the DuckDB type the view gives them: the declared type of
    /// a column partitioned as it is, VARCHAR for a derived value (so `month=01` stays '01').
    pub partitions: Vec<(String, String)>,
}

impl BronzeView {
    fn of(source: &SourceConfig, dataset: &str, declared: Option<&[Column]>) -> BronzeView {
        let partitions = writer::layout(source)
            .lake
            .partitions
            .iter()
            .map(|(p, expr)| {
                let ty = declared
                    .and_then(|cols| cols.iter().find(|c| &c.name == p))
                    .filter(|_| *expr == ident(p))
                    .map_or("VARCHAR".to_owned(), |c| c.ty.clone());
                (p.clone(), ty)
            })
            .collect();
        BronzeView {
            view: bronze_view_name(dataset),
            dataset: dataset.to_owned(),
            partitions,
        }
    }
}

impl BronzeView {
    /// The view's columns with no rows, as its files would give them: the declared columns
    /// not written as folders, `_source_file` where the source keeps it, each typed as the
    /// lake's files give it back (HUGEINT as DECIMAL(38,0), JSON as VARCHAR: a file of no
    /// rows is written as the lake's writer writes and read to know), then the partition
    /// columns, which DuckDB's reader appends in name order.
    fn empty_select(
        &self,
        conn: &Connection,
        source: &SourceConfig,
        declared: &[Column],
    ) -> Result<String> {
        let nulls = |columns: &mut dyn Iterator<Item = (&str, &str)>| -> String {
            columns
                .map(|(name, ty)| format!("CAST(NULL AS {ty}) AS {}", ident(name)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let stored: Vec<(&str, &str)> = declared
            .iter()
            .filter(|c| !self.partitions.iter().any(|(p, _)| p == &c.name))
            .map(|c| (c.name.as_str(), c.ty.as_str()))
            .chain(
                writer::layout(source)
                    .merges()
                    .then_some((writer::SOURCE_FILE_COLUMN, "VARCHAR")),
            )
            .collect();
        let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
        let file = dir.path().join("empty.parquet");
        // Written as the lake's writer writes: with the types other engines read.
        let select = db::portable_select(
            conn,
            &format!("SELECT {} WHERE false", nulls(&mut stored.iter().copied())),
        )?;
        db::execute(
            conn,
            &format!(
                "COPY ({select}) TO {} (FORMAT parquet)",
                db::path_literal(&file)
            ),
        )?;
        let read = db::describe(
            conn,
            &format!("SELECT * FROM read_parquet({})", db::path_literal(&file)),
        )?;
        let mut partitions: Vec<(&str, &str)> = self
            .partitions
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        partitions.sort_unstable();
        Ok(format!(
            "SELECT {} WHERE false",
            nulls(
                &mut read
                    .iter()
                    .map(|(n, t)| (n.as_str(), t.as_str()))
                    .chain(partitions)
            )
        ))
    }
}

/// The bronze views of every declared source whose lake folder holds files, as ingest
/// creates them (for engines other than DuckDB reading the same lake).
pub fn bronze_views(config: &Config, lake_dir: &Path) -> Result<Vec<BronzeView>> {
    let mut views = Vec::new();
    for (name, source) in &config.sources {
        let declared = match &source.columns {
            Some(pairs) => Some(validate::parse_columns(pairs, name)?),
            None => None,
        };
        let mut datasets = vec![name.clone()];
        if source.format == "sqlite" {
            // One folder per table, as the ingest of each table names it.
            let dir = crate::lake::dataset_dir(lake_dir, name);
            datasets = std::fs::read_dir(&dir)
                .map(|entries| {
                    entries
                        .filter_map(|e| e.ok())
                        .filter(|e| e.path().is_dir())
                        .map(|e| format!("{name}/{}", e.file_name().to_string_lossy()))
                        .collect()
                })
                .unwrap_or_default();
            datasets.sort();
        }
        for dataset in datasets {
            if crate::lake::has_files(lake_dir, &dataset)? {
                views.push(BronzeView::of(source, &dataset, declared.as_deref()));
            }
        }
    }
    Ok(views)
}

/// `bronze_<dataset>` over the lake folder, by a path relative to the project root so the
/// DuckDB CLI resolves it from there as micro-wh does.
fn create_bronze_view(
    env: &Env<'_>,
    source: &SourceConfig,
    dataset: &str,
    declared: Option<&[Column]>,
) -> Result<()> {
    let bronze = BronzeView::of(source, dataset, declared);
    if !crate::lake::has_files(env.lake_dir(), dataset)? {
        // A view over no file fails when read ("No files found"), far from its cause. Declared
        // columns give the view its columns without a file: it reads as no rows.
        if let Some(declared) = declared {
            db::execute(
                env.conn,
                &format!(
                    "CREATE OR REPLACE VIEW {} AS {}",
                    ident(&bronze.view),
                    bronze.empty_select(env.conn, source, declared)?
                ),
            )?;
            tracing::warn!(
                "the lake holds no rows of {dataset} (its files loaded none): view {} reads no rows \
                 until rows arrive",
                bronze.view
            );
            return Ok(());
        }
        let existing: i64 = db::query_one(
            env.conn,
            &format!(
                "SELECT count(*) FROM duckdb_views() WHERE database_name = current_database() AND schema_name = 'main' AND view_name = {}",
                db::literal(&bronze.view)
            ),
        )?;
        if existing > 0 {
            db::execute(env.conn, &format!("DROP VIEW {}", ident(&bronze.view)))?;
        }
        tracing::warn!(
            "the lake holds no rows of {dataset} (its files loaded none), so there is no view {}: \
             models reading it fail until rows arrive (declare the source's `columns:` to have \
             an empty view instead)",
            bronze.view
        );
        return Ok(());
    }
    let lake_rel = env
        .lake_dir()
        .strip_prefix(env.root)
        .unwrap_or(env.lake_dir());
    let glob = crate::lake::dataset_glob(lake_rel, dataset, bronze.partitions.len());
    let hive_types: Vec<String> = bronze
        .partitions
        .iter()
        .map(|(p, ty)| format!("{}: '{}'", db::literal(p), ty))
        .collect();
    let hive = if hive_types.is_empty() {
        String::new()
    } else {
        format!(
            ", hive_partitioning = true, hive_types = {{{}}}",
            hive_types.join(", ")
        )
    };
    // Files of inferred schemas may differ, so the view unions them by name; that reads every
    // file's footer whenever the view is bound, which grows with the lake. Declared columns
    // give every file the same schema: the first file's is every file's.
    let union = declared.is_none();
    db::execute(
        env.conn,
        &format!(
            "CREATE OR REPLACE VIEW {} AS SELECT * FROM read_parquet({}, union_by_name = {union}{hive})",
            ident(&bronze.view),
            db::literal(&glob)
        ),
    )?;
    Ok(())
}
