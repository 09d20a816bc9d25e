//! `micro-wh refresh`: migrations, then every model rebuilt and tested in one transaction,
//! then gold history and exports, all recorded in `refresh_log`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use duckdb::{params, Connection};
use indicatif::ProgressBar;

use super::data_tests::{self, CheckOutcome, DataTest};
use super::incremental::{self, Kept, Mode};
use super::lake_model::{self, LakeTarget};
use super::migrations::{self, AppliedMigration, Migration};
use super::models::{self, Layer, Materialized, Model};
use super::template::Vars;
use super::{ensure_bookkeeping, export, history, REFRESH_LOG, TEST_RESULTS};
use crate::config::{Config, ExportFormat};
use crate::db::{self, ident};
use crate::error::{Error, Result};
use crate::lake::{self, CopyOptions, LakeLock};
use crate::progress::{self, Progress};

/// Session settings of a refresh. Row order only matters where a model says ORDER BY, which
/// DuckDB keeps regardless; elsewhere not keeping it lets large tables be written in parallel.
/// The lake holds still under the refresh's lock, so each Parquet footer is read once, not once
/// per model and test that reads the lake. Lake models write up to `BATCH_PARTITIONS`
/// partitions at once, each into one file.
const SESSION_SETTINGS: &str = "SET preserve_insertion_order = false;
SET parquet_metadata_cache = true;
SET partitioned_write_max_open_files = 1024;
";

pub struct RefreshInputs {
    pub migrations: Vec<Migration>,
    pub models: Vec<Model>,
    /// Go on when an applied versioned file is gone from the SQL directory.
    pub allow_missing: bool,
    /// Rebuild tables and incremental tables whole.
    pub full: bool,
    /// Also rewrite lake models whole and run the row tests of views over every row.
    pub revalidate: bool,
    /// The lake, whose files incremental models follow.
    pub lake_dir: PathBuf,
    /// Nothing wrote the warehouse since the last committed refresh ([`super::seal`]): its
    /// tables are as that refresh left them.
    pub untouched: bool,
}

impl RefreshInputs {
    /// Reads and validates every SQL file before the warehouse is touched.
    pub fn load(vars: &Vars, sql_dir: &Path) -> Result<RefreshInputs> {
        Ok(RefreshInputs {
            migrations: migrations::discover(sql_dir, vars)?,
            models: models::discover(sql_dir, vars)?,
            allow_missing: false,
            full: false,
            revalidate: false,
            lake_dir: PathBuf::new(),
            untouched: false,
        })
    }

    /// The plain SQL a refresh runs for the models and exports, without bookkeeping or tests.
    pub fn plain_sql(
        &self,
        exports_dir: Option<&Path>,
        config: &Config,
        formats: &[ExportFormat],
    ) -> String {
        let mut sql = SESSION_SETTINGS.to_owned();
        for m in &self.models {
            sql.push_str(&m.create_sql());
            sql.push_str(";\n");
        }
        if let Some(dir) = exports_dir {
            for m in self.models.iter().filter(|m| m.is_gold()) {
                for format in formats {
                    let path = dir.join(format!("{}.{}", m.name, format.extension()));
                    sql.push_str(&export::copy_sql(
                        &ident(&m.name),
                        &path,
                        *format,
                        config.lake.compression,
                    ));
                    sql.push_str(";\n");
                }
            }
        }
        sql
    }
}

/// One model's part of a refresh.
#[derive(Debug, Clone)]
pub struct ModelRun {
    pub name: String,
    /// full, incremental (N partitions), unchanged; views and tables are always `full`.
    pub mode: String,
    /// Rows of tables and bronze views (other views are not counted).
    pub rows: Option<u64>,
    pub build: Duration,
    pub tests: Duration,
}

#[derive(Debug, Default)]
pub struct RefreshReport {
    pub id: i64,
    pub migrations: Vec<AppliedMigration>,
    pub models: Vec<ModelRun>,
    pub checks: Vec<CheckOutcome>,
    pub exported: Vec<PathBuf>,
    pub elapsed: Duration,
    /// The models, history and test results are committed (exports may still have failed).
    pub committed: bool,
}

impl RefreshReport {
    pub fn tests_failed(&self) -> usize {
        self.checks.iter().filter(|c| !c.passed).count()
    }
}

/// Runs a refresh against an open warehouse and records it, whatever its outcome. `lake` is
/// the lake held alone for the refresh: lake models write into it.
pub fn refresh(
    conn: &Connection,
    inputs: &RefreshInputs,
    config: &Config,
    exports: Option<(&Path, &[ExportFormat])>,
    progress: Progress,
    lake: &LakeLock,
) -> Result<RefreshReport> {
    let started = Instant::now();
    db::execute(conn, SESSION_SETTINGS)?;
    ensure_bookkeeping(conn)?;
    // The warehouse file is open read-write by one process at a time, so a refresh still
    // `running` (nothing committed) or `committed` (exports not written) was killed: say so
    // rather than leave it so forever.
    db::execute(
        conn,
        &format!(
            "UPDATE {REFRESH_LOG} SET status = 'interrupted', finished_at = {now}, error = 'the process ended before the refresh finished; nothing was committed' WHERE status = 'running';
             UPDATE {REFRESH_LOG} SET status = 'exports_failed', finished_at = {now}, error = 'the process ended after the commit, before the exports were written' WHERE status = 'committed';",
            now = db::utc_now()
        ),
    )?;
    let id: i64 = db::query_one(
        conn,
        &format!("SELECT coalesce(max(id), 0) + 1 FROM {REFRESH_LOG}"),
    )?;
    conn.execute(
        &format!(
            "INSERT INTO {REFRESH_LOG} (id, started_at, status) VALUES (?, {}, 'running')",
            db::utc_now()
        ),
        params![id],
    )?;

    let steps = 1
        + inputs.models.len()
        + 1
        + exports.map_or(0, |_| inputs.models.iter().filter(|m| m.is_gold()).count());
    let bar = progress.steps_bar(steps as u64, "refresh");
    if !bar.is_hidden() {
        conn.set_query_progress_tracking(true)?;
    }
    let mut report = RefreshReport {
        id,
        ..RefreshReport::default()
    };
    let run_id = lake::run_id();
    let target = LakeTarget {
        lock: lake,
        sql_dir: &config.paths.lake_dir,
        options: CopyOptions::of(&config.lake),
        run_id: &run_id,
    };
    let outcome = run_steps(conn, inputs, config, exports, &target, &bar, &mut report);
    bar.finish_and_clear();
    report.elapsed = started.elapsed();
    if let Err(log_error) = record(conn, &report, outcome.as_ref().err()) {
        // The refresh's own error matters more than a failure to log it.
        match &outcome {
            Ok(()) => return Err(log_error),
            Err(_) => tracing::error!("could not record the failed refresh: {log_error:#}"),
        }
    }
    outcome.map(|()| report)
}

fn run_steps(
    conn: &Connection,
    inputs: &RefreshInputs,
    config: &Config,
    exports: Option<(&Path, &[ExportFormat])>,
    target: &LakeTarget<'_>,
    bar: &ProgressBar,
    report: &mut RefreshReport,
) -> Result<()> {
    bar.set_message("migrations");
    report.migrations = migrations::apply(conn, &inputs.migrations, inputs.allow_missing)?;
    bar.inc(1);

    db::execute(conn, "BEGIN TRANSACTION")?;
    incremental::ensure_tables(conn)?;
    let mut lake_state = incremental::LakeState::new(&inputs.lake_dir);
    warn_of_kept_rows(conn, inputs, &report.migrations, &mut lake_state)?;
    // A migration may have written any table: the refresh trusts none of its records of them.
    let untouched = inputs.untouched && report.migrations.is_empty();
    let built = build_and_test(
        conn,
        inputs,
        untouched,
        target,
        &mut lake_state,
        bar,
        report,
    );
    match built {
        Ok(staged) if report.tests_failed() == 0 => {
            bar.set_message("publish lake models");
            if let Err(e) = publish_and_commit(conn, staged, target, &mut lake_state, report.id) {
                // Nothing of the refresh stays, and its failure goes into the log outside it.
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
            report.committed = true;
            crate::fault::point("refresh-after-commit");
        }
        built => {
            // Keep the previous models, history and exports exactly as they were.
            let _ = conn.execute_batch("ROLLBACK");
            built?;
            let failures = report
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| format!("  {}: {} failed ({})", c.model, c.name, c.detail))
                .collect();
            return Err(Error::DataTestsFailed(failures).into());
        }
    }

    if let Some((dir, formats)) = exports {
        let written = (|| -> Result<Vec<PathBuf>> {
            let mut exports = export::StagedExports::new(dir, config.lake.compression, formats)?
                .in_configured_formats();
            for model in inputs.models.iter().filter(|m| m.is_gold()) {
                progress::with_query_progress(
                    conn,
                    bar,
                    &format!("export {}", model.name),
                    || exports.write(conn, &model.name),
                )?;
                bar.inc(1);
            }
            exports.publish()
        })();
        report.exported = written.map_err(|e| {
            e.context(format!(
                "refresh #{} is committed (models, tests, history), but its exports failed; \
                 `micro-wh export` or the next refresh writes them",
                report.id
            ))
        })?;
    }
    Ok(())
}

/// Says that the rows models keep from earlier refreshes were not made again after the
/// migrations just applied: a migration may change a table those models read (a dimension the
/// validation looks names up in), which only a rebuild brings into their rows.
fn warn_of_kept_rows(
    conn: &Connection,
    inputs: &RefreshInputs,
    applied: &[AppliedMigration],
    lake_state: &mut incremental::LakeState,
) -> Result<()> {
    if applied.is_empty() {
        return Ok(());
    }
    let mut kept = Vec::new();
    for model in &inputs.models {
        let rebuilt = match model.materialized {
            Materialized::Incremental => inputs.full,
            Materialized::Lake => inputs.revalidate,
            Materialized::View | Materialized::Table => true,
        };
        // A model built before from the same SQL keeps its rows of unchanged partitions.
        if !rebuilt && !incremental::sql_changed(conn, model, lake_state)? {
            kept.push(model.name.as_str());
        }
    }
    if !kept.is_empty() {
        let files: Vec<&str> = applied.iter().map(|m| m.file.as_str()).collect();
        tracing::warn!(
            "applied {}: {} keep the rows built before, except in the lake partitions that \
             changed; if it changed what they read, `refresh --full` rebuilds the tables and \
             `refresh --revalidate` the lake models too",
            files.join(", "),
            kept.join(", ")
        );
    }
    Ok(())
}

/// Publishes the lake models built (`staged`) once everything passed, and commits the
/// refresh's transaction. A crash from the publication to the COMMIT leaves published
/// partitions the warehouse has not recorded: the next refresh sees them as changed and
/// writes them again.
fn publish_and_commit(
    conn: &Connection,
    staged: Vec<lake_model::Pending>,
    target: &LakeTarget<'_>,
    lake_state: &mut incremental::LakeState,
    id: i64,
) -> Result<()> {
    for pending in staged {
        lake_model::publish(conn, pending, target, lake_state)?;
    }
    lake_state.write_records(conn)?;
    crate::fault::point("refresh-after-lake-publish");
    // `committed` goes in with the models, so the log never disagrees with the tables,
    // whatever happens after the COMMIT.
    db::execute(
        conn,
        &format!("UPDATE {REFRESH_LOG} SET status = 'committed' WHERE id = {id}"),
    )?;
    crate::fault::point("refresh-before-commit");
    db::execute(conn, "COMMIT")?;
    Ok(())
}

/// Builds every model and runs its tests inside the caller's transaction; returns the lake
/// models written, to publish once everything passed. The checks go into `report` even when
/// some fail, so the caller can list them.
fn build_and_test(
    conn: &Connection,
    inputs: &RefreshInputs,
    untouched: bool,
    target: &LakeTarget<'_>,
    lake_state: &mut incremental::LakeState,
    bar: &ProgressBar,
    report: &mut RefreshReport,
) -> Result<Vec<lake_model::Pending>> {
    let mut staged = Vec::new();
    crate::fault::point("refresh-building");
    let models = &inputs.models;
    // A model rebuilt whole (new SQL, first build, --full) rebuilds the incremental models
    // after it in its folder too: they may read it.
    let mut forced_groups = std::collections::BTreeSet::new();
    // The models whose row counts this refresh keeps per partition (and has brought up to date).
    let mut kept = std::collections::BTreeSet::new();
    // What changed of the models not rebuilt whole, for their history to compare just that.
    let mut history_rows = std::collections::BTreeMap::new();
    let mut copies = incremental::Copies::default();
    // Each model changes only its own name's kind, after it was looked up here.
    let kinds = db::relation_kinds(conn)?;
    for (i, model) in models.iter().enumerate() {
        let started = Instant::now();
        let kind = kinds.get(&model.name).map(String::as_str);
        let mode = match &model.incremental {
            Some(_) => {
                // Views and lake models keep no rows in the warehouse that `--full` would
                // redo: they follow the partitions that changed (the rest were validated and
                // tested when they arrived) unless `--revalidate` asks for every row again.
                let asked = match model.materialized {
                    Materialized::Table | Materialized::Incremental => inputs.full,
                    Materialized::View | Materialized::Lake => inputs.revalidate,
                };
                let force = asked || forced_groups.contains(&model.group);
                incremental::plan(conn, model, kind, lake_state, force)?
            }
            None => Mode::Full,
        };
        // A model not following the lake is built whole every time, but the incremental
        // models after it may read it: when its SQL changed, their rows of the partitions
        // that did not change were made from its old SQL.
        let new_sql =
            model.incremental.is_none() && incremental::sql_changed(conn, model, lake_state)?;
        if (mode == Mode::Full && model.incremental.is_some()) || new_sql {
            forced_groups.insert(model.group.clone());
        }
        let label = format!("build {} ({mode})", model.name);
        // The condition of the rows an incremental table had replaced (the rest are as they were).
        let mut replaced = None;
        let pending = progress::with_query_progress(conn, bar, &label, || -> Result<_> {
            match (&mode, model.materialized) {
                (_, Materialized::Lake) => {
                    drop_if_other_kind(conn, model, kind)?;
                    let view_kept = kind == Some("VIEW");
                    return lake_model::build(
                        conn, model, &mode, lake_state, target, &copies, view_kept,
                    );
                }
                (Mode::Incremental(partitions), Materialized::Incremental) => {
                    let spec = model.incremental.as_ref().expect("an incremental model");
                    let files = lake_state.files(conn, &spec.lake)?;
                    replaced = Some(incremental::apply_partitions(
                        conn, model, partitions, files, &copies,
                    )?);
                }
                (Mode::Unchanged, Materialized::Incremental) => {}
                // A view following the lake's partitions reads new files by itself; binding
                // it again would list and open the lake for nothing.
                (Mode::Unchanged | Mode::Incremental(_), Materialized::View) => {}
                _ => {
                    drop_if_other_kind(conn, model, kind)?;
                    db::execute(conn, &model.create_sql())?;
                }
            }
            Ok(None)
        })
        .map_err(|e| {
            e.context(format!(
                "model {} ({}) failed",
                model.name,
                model.path.display()
            ))
        })?;
        let staged_rows = pending.as_ref().map(|p| p.staged_rows()).transpose()?;
        staged.extend(pending);
        // An unchanged model was built from exactly the files recorded.
        match &model.incremental {
            Some(_) if mode != Mode::Unchanged => incremental::record(conn, model, lake_state)?,
            Some(_) => {}
            None if new_sql => incremental::record_checksum(conn, model, lake_state)?,
            None => {}
        }
        // Counting a view over the lake reads every file's footer: a cost that grows with
        // the lake on every refresh, for a figure nobody asked of a silver or gold view.
        // Models following the lake's partitions keep their counts per partition instead.
        let counted = model.materialized != Materialized::View || model.layer == Layer::Bronze;
        let scope = match (&mode, &model.incremental, &replaced) {
            (_, _, Some(condition)) => Some(format!(
                "(SELECT * FROM {} WHERE {condition})",
                ident(&model.name)
            )),
            (Mode::Incremental(partitions), Some(spec), None) => {
                let files = lake_state.files(conn, &spec.lake)?;
                let changed = Changed {
                    partitions,
                    files,
                    staged: staged_rows.as_ref(),
                };
                changed_scope(conn, model, changed, &mut copies)?
            }
            _ => changed_rows(conn, model, &mode)?,
        };
        match (&mode, &replaced) {
            // A table is built again whatever its mode; the others were left as they were.
            (Mode::Unchanged, _) if model.materialized != Materialized::Table => {
                history_rows.insert(model.name.clone(), history::Changed::Nothing);
            }
            (_, Some(condition)) => {
                history_rows.insert(
                    model.name.clone(),
                    history::Changed::Within(condition.clone()),
                );
            }
            _ => {}
        }
        let rows = if incremental::keeps_counts(model) {
            update_kept(conn, model, &mode, scope.as_deref())?;
            kept.insert(model.name.clone());
            Some(db::query_one::<i64>(
                conn,
                &format!("SELECT {}", incremental::kept_count(&model.name)),
            )? as u64)
        } else if counted {
            Some(db::query_one::<i64>(
                conn,
                &format!("SELECT count(*) FROM {}", ident(&model.name)),
            )? as u64)
        } else {
            None
        };
        let build = started.elapsed();
        let tests_changed = model.incremental.is_some() && lake_state.tests_changed(conn, model)?;
        // A table's rows may have been written outside a refresh since the last one (by hand,
        // by a migration): then its tests read it whole, unchanged or not.
        let stored = matches!(
            model.materialized,
            Materialized::Table | Materialized::Incremental
        );
        let changed = match tests_changed || (stored && !untouched) {
            true => None,
            false => scope,
        };
        // This model's count was just taken.
        let count = |m: &str| match (m == model.name, rows, kept.contains(m)) {
            (true, Some(rows), _) => rows.to_string(),
            (_, _, true) => incremental::kept_count(m),
            _ => data_tests::read_count(m),
        };
        let unique = |columns: &[String]| {
            if kept.contains(&model.name) {
                return Some(incremental::kept_duplicates(
                    &model.name,
                    columns,
                    changed.as_deref(),
                ));
            }
            // An incremental table's rows outside the keys it replaced passed the test before
            // and are as they were; with those keys among the columns, two rows alike are both
            // replaced rows. So the replaced rows alone are compared, at any size of the table.
            // (Only when nothing but refreshes wrote the table since the last one.)
            let keys = model.incremental.as_ref().map(|spec| spec.keys());
            match (&replaced, changed.as_deref(), keys) {
                (Some(_), Some(rows), Some(keys))
                    if untouched && keys.iter().all(|k| columns.contains(k)) =>
                {
                    Some(data_tests::duplicates_among(
                        &format!("{rows} AS {}", ident(&model.name)),
                        columns,
                    ))
                }
                _ => None,
            }
        };
        // `changed` is set when the tests are those that passed last time.
        let unchanged = mode == Mode::Unchanged && changed.is_some();
        let held = |check: &data_tests::Check| unchanged && check.holds_when_unchanged();
        let checks: Vec<data_tests::Check> = model
            .tests
            .iter()
            .flat_map(|test| test.checks(&model.name, changed.as_deref(), &count, &unique))
            .collect();
        let to_run: Vec<data_tests::Check> = checks.iter().filter(|c| !held(c)).cloned().collect();
        let mut ran = data_tests::run_all(conn, &to_run)
            .with_context(|| format!("cannot run the data tests of model {}", model.name))?
            .into_iter();
        for check in &checks {
            report.checks.push(match held(check) {
                true => check.nothing_changed(),
                false => ran.next().expect("an outcome for each check run"),
            });
        }
        if tests_changed {
            lake_state.record_tests(conn, model)?;
        }
        // A copy is kept while a model after this one reads it as its source.
        let sources: std::collections::BTreeSet<&str> = models[i + 1..]
            .iter()
            .filter_map(|m| m.incremental.as_ref()?.source.as_deref())
            .collect();
        copies.release(conn, |m| sources.contains(m))?;
        report.models.push(ModelRun {
            name: model.name.clone(),
            mode: mode.to_string(),
            rows,
            build,
            tests: started.elapsed() - build,
        });
        bar.inc(1);
    }
    if report.tests_failed() > 0 {
        return Ok(staged);
    }
    bar.set_message("gold history");
    let history = history::Recorder::new(conn, report.id, &kinds, untouched)?;
    for model in models.iter().filter(|m| m.is_gold()) {
        let changed = history_rows
            .remove(&model.name)
            .unwrap_or(history::Changed::Anything);
        history.record(&model.name, changed)?;
    }
    bar.inc(1);
    Ok(staged)
}

/// What changed in a model refreshed incrementally.
struct Changed<'a> {
    partitions: &'a [Vec<String>],
    /// The files of the lake it follows, now.
    files: &'a [incremental::FileStamp],
    /// A lake model's staged rows (those of the changed partitions).
    staged: Option<&'a lake_model::StagedRows>,
}

/// The rows of the changed partitions of a model refreshed incrementally, read by its counts
/// and row-level tests. A model over the lake has them copied out once, as each read would
/// bind it again, and the models after it that read it as their source are shown the copy
/// (`copies`); the copy is read from a lake model's staged files, from a view's own select
/// over its source's changed rows, or from the changed partitions' files alone.
fn changed_scope(
    conn: &Connection,
    model: &Model,
    changed: Changed<'_>,
    copies: &mut incremental::Copies,
) -> Result<Option<String>> {
    let spec = model.incremental.as_ref().expect("an incremental model");
    let Changed {
        partitions,
        files,
        staged,
    } = changed;
    let mode = Mode::Incremental(partitions.to_vec());
    if !matches!(model.materialized, Materialized::View | Materialized::Lake) {
        return changed_rows(conn, model, &mode);
    }
    let copied = match (staged, &spec.source) {
        (Some(lake_model::StagedRows::Copied), _) => Some(incremental::copy_name(&model.name)),
        (Some(lake_model::StagedRows::Files(rows)), _) => copy_out(conn, model, rows)?,
        // A view over its source's partitions: its own select over the source's changed rows
        // gives its changed rows.
        (None, Some(_)) => {
            let scope = incremental::SourceScope::of(conn, spec, partitions, files, copies)?;
            copy_out(conn, model, &format!("({}\n)", scope.wrap(&model.select)))?
        }
        (None, None) => {
            let rows = incremental::partition_rows(conn, &model.name, spec, partitions, files)?;
            copy_out(conn, model, &format!("({rows})"))?
        }
    };
    match copied {
        Some(table) => {
            copies.insert(&model.name, partitions, table.clone());
            Ok(Some(format!("temp.main.{}", ident(&table))))
        }
        None => changed_rows(conn, model, &mode),
    }
}

/// Brings the row counts and `unique` key hashes the refresh keeps of a model over the lake
/// up to date; `changed` holds its rows of the changed partitions.
fn update_kept(conn: &Connection, model: &Model, mode: &Mode, changed: Option<&str>) -> Result<()> {
    incremental::update_kept(conn, model, Kept::Rows, mode, changed)?;
    let unique: Vec<&[String]> = model
        .tests
        .iter()
        .filter_map(|t| match t {
            DataTest::Unique(columns) => Some(columns.as_slice()),
            _ => None,
        })
        .collect();
    incremental::drop_other_hashes(conn, model, &unique)?;
    for columns in unique {
        incremental::update_kept(conn, model, Kept::Hashes(columns), mode, changed)?;
    }
    Ok(())
}

/// The rows of the changed partitions of a model refreshed incrementally (none when it is
/// unchanged): the rest were tested when they were built and have not changed since.
fn changed_rows(conn: &Connection, model: &Model, mode: &Mode) -> Result<Option<String>> {
    let Some(spec) = &model.incremental else {
        return Ok(None);
    };
    let filter = match mode {
        Mode::Full => return Ok(None),
        Mode::Unchanged => "false".to_owned(),
        Mode::Incremental(partitions) => {
            // Over the lake, the filter that lets DuckDB skip the other partitions' folders.
            if matches!(model.materialized, Materialized::View | Materialized::Lake) {
                if let Some(rows) = incremental::rows_in_partitions(conn, model, partitions)? {
                    return Ok(Some(rows));
                }
            }
            format!(
                "{} IN ({})",
                incremental::key_columns(spec),
                incremental::keys_sql(conn, model, spec, partitions)?
            )
        }
    };
    Ok(Some(format!(
        "(SELECT * FROM {} WHERE {filter})",
        ident(&model.name)
    )))
}

/// Rows of changed partitions up to which a model over the lake has them copied into a
/// temporary table: a day or an hour of rows, not a rebuilt lake.
const COPIED_OUT_ROWS: i64 = 1_000_000;

/// `rows` (the model's rows of the changed partitions) copied into a temporary table, whose
/// name it returns; none when there are more than `COPIED_OUT_ROWS`.
fn copy_out(conn: &Connection, model: &Model, rows: &str) -> Result<Option<String>> {
    let temp = ident(&incremental::copy_name(&model.name));
    // Returns the rows it copied.
    let copied: i64 = db::query_one(
        conn,
        &format!(
            "CREATE OR REPLACE TEMP TABLE {temp} AS SELECT * FROM {rows} LIMIT {}",
            COPIED_OUT_ROWS + 1
        ),
    )?;
    if copied > COPIED_OUT_ROWS {
        db::execute(conn, &format!("DROP TABLE temp.main.{temp}"))?;
        return Ok(None);
    }
    Ok(Some(incremental::copy_name(&model.name)))
}

/// A model that changes between view and table must first lose its old kind:
/// `CREATE OR REPLACE TABLE` does not replace a view, nor the other way round.
fn drop_if_other_kind(conn: &Connection, model: &Model, existing: Option<&str>) -> Result<()> {
    let drop = match (existing, model.materialized) {
        (Some("VIEW"), Materialized::Table | Materialized::Incremental) => "VIEW",
        (Some("BASE TABLE"), Materialized::View | Materialized::Lake) => "TABLE",
        _ => return Ok(()),
    };
    db::execute(conn, &format!("DROP {drop} {}", ident(&model.name)))?;
    Ok(())
}

/// Writes the outcome into `refresh_log` and the test results into `refresh_test_results`,
/// in one transaction: one write to disk, not one per test.
fn record(conn: &Connection, report: &RefreshReport, error: Option<&anyhow::Error>) -> Result<()> {
    db::execute(conn, "BEGIN TRANSACTION")?;
    let written = write_record(conn, report, error);
    match written {
        Ok(()) => Ok(db::execute(conn, "COMMIT")?),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn write_record(
    conn: &Connection,
    report: &RefreshReport,
    error: Option<&anyhow::Error>,
) -> Result<()> {
    let rows_json = serde_json::to_string(
        &report
            .models
            .iter()
            .filter_map(|m| Some((m.name.as_str(), m.rows?)))
            .collect::<std::collections::BTreeMap<_, _>>(),
    )?;
    let modes = serde_json::to_string(
        &report
            .models
            .iter()
            .map(|m| (m.name.as_str(), m.mode.as_str()))
            .collect::<std::collections::BTreeMap<_, _>>(),
    )?;
    let exported = report
        .exported
        .iter()
        .map(|p| db::literal(&p.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(", ");
    let passed = report.checks.iter().filter(|c| c.passed).count() as i64;
    conn.execute(
        &format!(
            "UPDATE {REFRESH_LOG} SET finished_at = {now}, status = ?, rows_per_model = ?, modes = ?,
             tests_passed = ?, tests_failed = ?, exported_files = [{exported}]::VARCHAR[], error = ? WHERE id = ?",
            now = db::utc_now()
        ),
        params![
            match (error.is_some(), report.committed) {
                (false, _) => "succeeded",
                (true, true) => "exports_failed",
                (true, false) => "failed",
            },
            rows_json,
            modes,
            passed,
            report.tests_failed() as i64,
            error.map(|e| format!("{e:#}")),
            report.id
        ],
    )?;
    // Appended: an INSERT statement per test cost half a millisecond each.
    let mut results = conn.appender(TEST_RESULTS)?;
    for c in &report.checks {
        results.append_row(params![
            report.id,
            c.model,
            c.name,
            c.passed,
            c.failing_rows as i64,
            c.detail
        ])?;
    }
    results.flush()?;
    Ok(())
}
