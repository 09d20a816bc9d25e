//! Incremental models: each remembers the lake files (path, size, modification time) it was
//! built from; a refresh rebuilds only the rows of the partitions whose files are new,
//! changed or gone, by delete + insert inside the refresh's transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context;
use duckdb::{params, Connection};

use super::models::{IncrementalSpec, Materialized, Model};
use crate::db::{self, ident, literal};
use crate::error::Result;
use crate::lake;

const STATE: &str = "micro_wh_model_state";
const FILES: &str = "micro_wh_model_files";
const TESTS: &str = "micro_wh_model_tests";
/// The files a lake model wrote, as recorded when they were published.
const OUTPUTS: &str = "micro_wh_model_outputs";
/// Row counts per key of the models whose rows live in the lake (views, lake models).
const COUNTS: &str = "micro_wh_partition_rows";

/// What a refresh does to one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Full,
    /// The partitions whose rows are rebuilt: each the values of the partition columns.
    Incremental(Vec<Vec<String>>),
    Unchanged,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mode::Full => write!(f, "full"),
            Mode::Incremental(p) => write!(f, "incremental ({} partitions)", p.len()),
            Mode::Unchanged => write!(f, "unchanged"),
        }
    }
}

pub use crate::lake::FileStamp;

pub fn ensure_tables(conn: &Connection) -> Result<()> {
    db::execute(
        conn,
        &format!(
            "CREATE TABLE IF NOT EXISTS {STATE} (model VARCHAR PRIMARY KEY, checksum VARCHAR NOT NULL);
             CREATE TABLE IF NOT EXISTS {FILES} (model VARCHAR NOT NULL, path VARCHAR NOT NULL, size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL);
             CREATE TABLE IF NOT EXISTS {TESTS} (model VARCHAR PRIMARY KEY, checksum VARCHAR NOT NULL);
             CREATE TABLE IF NOT EXISTS {OUTPUTS} (model VARCHAR NOT NULL, path VARCHAR NOT NULL, size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL);
             CREATE TABLE IF NOT EXISTS {COUNTS} (model VARCHAR NOT NULL, key VARCHAR, rows BIGINT NOT NULL);"
        ),
    )?;
    Ok(())
}

/// The partition values of a file, from its `<partition>=<value>` folders.
pub fn partition_of(path: &str, partitions: &[String]) -> Option<Vec<String>> {
    partitions
        .iter()
        .map(|partition| {
            let prefix = format!("{partition}=");
            path.split('/')
                .find_map(|part| part.strip_prefix(&prefix).map(str::to_owned))
        })
        .collect()
}

/// Decides how to refresh `model`; `force` is a full rebuild asked for (or needed upstream).
/// `outputs` are a lake model's own files now: a partition whose files differ from those it
/// recorded (a crash between their publication and the commit, a hand edit) is rebuilt too.
pub fn plan(
    conn: &Connection,
    model: &Model,
    now: &[FileStamp],
    outputs: Option<&[FileStamp]>,
    force: bool,
) -> Result<Mode> {
    let spec = model.incremental.as_ref().expect("an incremental model");
    let kind = match model.materialized {
        Materialized::View | Materialized::Lake => "VIEW",
        Materialized::Table | Materialized::Incremental => "BASE TABLE",
    };
    let exists: i64 = conn.query_row(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = ? AND table_type = ?",
        params![model.name, kind],
        |r| r.get(0),
    )?;
    let checksum: Option<String> = {
        let mut stmt = conn.prepare(&format!("SELECT checksum FROM {STATE} WHERE model = ?"))?;
        let mut rows = stmt.query_map(params![model.name], |r| r.get(0))?;
        rows.next().transpose()?
    };
    if force || exists == 0 || checksum.as_deref() != Some(model.checksum.as_str()) {
        return Ok(Mode::Full);
    }
    let mut changes = vec![(recorded(conn, model, FILES)?, now)];
    if let Some(outputs) = outputs {
        changes.push((recorded(conn, model, OUTPUTS)?, outputs));
    }
    let mut changed = BTreeSet::new();
    for (before, now) in changes {
        let now: BTreeSet<FileStamp> = now.iter().cloned().collect();
        for stamp in before.symmetric_difference(&now) {
            match partition_of(&stamp.path, &spec.partition) {
                Some(value) => {
                    changed.insert(value);
                }
                // A file outside the partition folders: its rows cannot be placed, rebuild all.
                None => return Ok(Mode::Full),
            }
        }
    }
    Ok(if changed.is_empty() {
        Mode::Unchanged
    } else {
        Mode::Incremental(changed.into_iter().collect())
    })
}

/// Replaces the rows of the changed partitions: delete the keys they feed, insert the
/// model's rows for those keys. `lake` is the dataset's files now.
pub fn apply_partitions(
    conn: &Connection,
    model: &Model,
    partitions: &[Vec<String>],
    lake: &[FileStamp],
) -> Result<()> {
    let spec = model.incremental.as_ref().expect("an incremental model");
    let keys = keys_sql(conn, model, spec, partitions)?;
    let key = key_columns(spec);
    let table = ident(&model.name);
    let feeding = match &spec.key_of_partition {
        // Partitions map to wider keys (weeks): the source rows that feed the rebuilt keys
        // are those of every partition in those keys.
        Some(_) if spec.source.is_some() => {
            let all: BTreeSet<Vec<String>> = lake
                .iter()
                .filter_map(|f| partition_of(&f.path, &spec.partition))
                .collect();
            let all: Vec<Vec<String>> = all.into_iter().collect();
            let mut stmt = conn.prepare(&format!(
                "SELECT * FROM ({}) WHERE ({}) IN ({keys})",
                partitions_relation(spec, &all),
                key_expressions(conn, model, spec)?.join(", "),
            ))?;
            let width = spec.partition.len();
            let rows = stmt.query_map([], |r| {
                (0..width)
                    .map(|i| r.get::<_, String>(i))
                    .collect::<std::result::Result<Vec<_>, _>>()
            })?;
            rows.collect::<std::result::Result<Vec<_>, _>>()?
        }
        _ => partitions.to_vec(),
    };
    with_source_limited(conn, spec, &feeding, || {
        db::execute(
            conn,
            &format!(
                "DELETE FROM {table} WHERE {key} IN ({keys});
                 INSERT INTO {table} SELECT * FROM ({}) WHERE {key} IN ({keys});",
                model.select.trim_end().trim_end_matches(';')
            ),
        )?;
        Ok(())
    })
}

/// Runs `f` while the spec's source (if it names one) shows only the rows of `partitions`:
/// a temporary view of the same name shadows it, and reads the real one by its full name (a
/// bare `main.` would mean the temp schema). The partitions are named as constants, so the
/// filter reaches the source's scan and DuckDB reads only their folders.
pub fn with_source_limited<T>(
    conn: &Connection,
    spec: &IncrementalSpec,
    partitions: &[Vec<String>],
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let Some(source) = &spec.source else {
        return f();
    };
    let db: String = db::query_one(conn, "SELECT current_database()")?;
    let real = format!("{}.main.{}", ident(&db), ident(source));
    let filter = partition_filter(conn, &real, &spec.partition, partitions)?;
    db::execute(
        conn,
        &format!(
            "CREATE OR REPLACE TEMP VIEW {} AS SELECT * FROM {real} WHERE {filter}",
            ident(source),
        ),
    )?;
    let result = f();
    db::execute(
        conn,
        &format!("DROP VIEW IF EXISTS temp.main.{}", ident(source)),
    )?;
    result
}

/// The model's key column(s) as SQL: `k` or `(k1, k2)`, to compare with [`keys_sql`].
pub fn key_columns(spec: &IncrementalSpec) -> String {
    match spec.keys() {
        [one] => ident(one),
        many => format!(
            "({})",
            many.iter().map(|k| ident(k)).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// A filter keeping just `partitions` of `relation` (which has the partition columns), in the
/// form DuckDB prunes Hive folders with: an IN list of literals per partition column (the
/// literals take the columns' types). With several columns, those lists also admit their
/// cross combinations, so an exact match follows: the columns' text against each folder's
/// values cast to the column's type and back, which is the text of the same value. (An OR of
/// one conjunction per folder says the same, but DuckDB weighs it against every file of the
/// lake: seconds at a few thousand folders.)
fn partition_filter(
    conn: &Connection,
    relation: &str,
    columns: &[String],
    partitions: &[Vec<String>],
) -> Result<String> {
    if partitions.is_empty() {
        return Ok("false".to_owned());
    }
    let lists: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let values: BTreeSet<String> = partitions.iter().map(|p| literal(&p[i])).collect();
            format!(
                "{} IN ({})",
                ident(column),
                values.into_iter().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    if columns.len() == 1 {
        return Ok(lists.join(""));
    }
    Ok(format!(
        "{} AND {} IN ({})",
        lists.join(" AND "),
        row_text(columns),
        folder_texts(conn, relation, columns, partitions)?.join(", ")
    ))
}

/// A row's values of `columns` as one text, to compare with [`folder_texts`].
fn row_text(columns: &[String]) -> String {
    let terms: Vec<String> = columns
        .iter()
        .map(|c| format!("CAST({} AS VARCHAR)", ident(c)))
        .collect();
    format!("concat_ws('/', {})", terms.join(", "))
}

/// Each partition's folder values as the text [`row_text`] gives its rows in `relation`: each
/// value cast to its column's type there and back, which is the text of the same value.
fn folder_texts(
    conn: &Connection,
    relation: &str,
    columns: &[String],
    partitions: &[Vec<String>],
) -> Result<Vec<String>> {
    let types: BTreeMap<String, String> = db::describe(conn, &format!("SELECT * FROM {relation}"))?
        .into_iter()
        .collect();
    let mut typed = Vec::new();
    for column in columns {
        let ty = types.get(column).with_context(|| {
            format!("{relation} has no partition column `{column}` to select partitions by")
        })?;
        typed.push(ty.as_str());
    }
    Ok(partitions
        .iter()
        .map(|p| {
            let terms: Vec<String> = p
                .iter()
                .zip(&typed)
                .map(|(v, ty)| format!("CAST(CAST({} AS {ty}) AS VARCHAR)", literal(v)))
                .collect();
            format!("concat_ws('/', {})", terms.join(", "))
        })
        .collect())
}

/// The rows of `model` (which has its partition columns) in `partitions`, when its keys are
/// the partition columns themselves; None when keys are derived (key_of_partition).
pub fn rows_in_partitions(
    conn: &Connection,
    model: &Model,
    partitions: &[Vec<String>],
) -> Result<Option<String>> {
    let spec = model.incremental.as_ref().expect("an incremental model");
    if spec.key_of_partition.is_some() || spec.keys() != spec.partition.as_slice() {
        return Ok(None);
    }
    let table = ident(&model.name);
    let filter = partition_filter(conn, &table, &spec.partition, partitions)?;
    Ok(Some(format!("(SELECT * FROM {table} WHERE {filter})")))
}

/// `(VALUES …) t(<partition columns>)`: partitions as folder text.
fn partitions_relation(spec: &IncrementalSpec, partitions: &[Vec<String>]) -> String {
    let rows: Vec<String> = partitions
        .iter()
        .map(|p| {
            format!(
                "({})",
                p.iter().map(|v| literal(v)).collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    let columns: Vec<String> = spec.partition.iter().map(|p| ident(p)).collect();
    format!(
        "SELECT * FROM (VALUES {}) t({})",
        rows.join(", "),
        columns.join(", ")
    )
}

/// Each key as SQL over the partition columns (folder text), typed like the model's column:
/// an expression says how a partition maps to the key, else a key named like a partition
/// column is that value cast to the key's type.
fn key_expressions(
    conn: &Connection,
    model: &Model,
    spec: &IncrementalSpec,
) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    for key in spec.keys() {
        let key_type: String = conn
            .query_row(
                "SELECT data_type FROM information_schema.columns WHERE table_schema = 'main' AND table_name = ? AND column_name = ?",
                params![model.name, key],
                |r| r.get(0),
            )
            .with_context(|| format!("model {}: no column `{key}` (incremental.key)", model.name))?;
        let expr = match spec.key_expression(key) {
            Some(e) => e.to_owned(),
            None if spec.partition.contains(key) => ident(key),
            None => anyhow::bail!(
                "model {}: key `{key}` is not a partition column; say how a partition gives it with key_of_partition",
                model.name
            ),
        };
        keys.push(format!("CAST({expr} AS {key_type})"));
    }
    Ok(keys)
}

/// `SELECT DISTINCT <key values> FROM (VALUES …)` over the changed partitions, typed like
/// the model's key columns.
pub fn keys_sql(
    conn: &Connection,
    model: &Model,
    spec: &IncrementalSpec,
    partitions: &[Vec<String>],
) -> Result<String> {
    Ok(format!(
        "SELECT DISTINCT {} FROM ({})",
        key_expressions(conn, model, spec)?.join(", "),
        partitions_relation(spec, partitions)
    ))
}

/// Remembers the files a model was built from, in the caller's transaction.
pub fn record(conn: &Connection, model: &Model, stamps: &[FileStamp]) -> Result<()> {
    conn.execute(
        &format!("DELETE FROM {STATE} WHERE model = ?"),
        params![model.name],
    )?;
    conn.execute(
        &format!("INSERT INTO {STATE} VALUES (?, ?)"),
        params![model.name, model.checksum],
    )?;
    conn.execute(
        &format!("DELETE FROM {FILES} WHERE model = ?"),
        params![model.name],
    )?;
    append_files(conn, model, stamps.iter())
}

/// Remembers the files a lake model's partitions now are, once they are published.
pub fn record_outputs(conn: &Connection, model: &Model, stamps: &[FileStamp]) -> Result<()> {
    conn.execute(
        &format!("DELETE FROM {OUTPUTS} WHERE model = ?"),
        params![model.name],
    )?;
    append_to(conn, OUTPUTS, model, stamps.iter())
}

fn append_files<'s>(
    conn: &Connection,
    model: &Model,
    stamps: impl Iterator<Item = &'s FileStamp>,
) -> Result<()> {
    append_to(conn, FILES, model, stamps)
}

fn append_to<'s>(
    conn: &Connection,
    table: &str,
    model: &Model,
    stamps: impl Iterator<Item = &'s FileStamp>,
) -> Result<()> {
    let mut appender = conn.appender(table)?;
    for s in stamps {
        appender.append_row(params![model.name, s.path, s.size, s.mtime_ns])?;
    }
    appender.flush()?;
    Ok(())
}

/// The files `model` was last built from (`FILES`), or those it wrote (`OUTPUTS`).
fn recorded(conn: &Connection, model: &Model, table: &str) -> Result<BTreeSet<FileStamp>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT path, size, mtime_ns FROM {table} WHERE model = ?"
    ))?;
    let rows = stmt.query_map(params![model.name], |r| {
        Ok(FileStamp {
            path: r.get(0)?,
            size: r.get(1)?,
            mtime_ns: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// Files per incremental dataset, read once per refresh.
pub type LakeState = BTreeMap<String, Vec<FileStamp>>;

/// The files of `dataset`, listed on first use.
pub fn files_of<'s>(
    state: &'s mut LakeState,
    lake_dir: &Path,
    dataset: &str,
) -> Result<&'s [FileStamp]> {
    if !state.contains_key(dataset) {
        state.insert(dataset.to_owned(), lake::stamps(lake_dir, dataset)?);
    }
    Ok(&state[dataset])
}

/// After `micro-wh compact` rewrote folders of `dataset` into one file each (same rows), the
/// incremental models that had consumed exactly the old files take the new one in their place,
/// so the next refresh sees those partitions as unchanged. A model that had not yet consumed
/// a folder's old files keeps its stamps and rebuilds that partition as before.
pub fn follow_compaction(
    conn: &Connection,
    models: &[Model],
    dataset: &str,
    replaced: &[(Vec<FileStamp>, FileStamp)],
) -> Result<()> {
    ensure_tables(conn)?;
    db::execute(conn, "BEGIN TRANSACTION")?;
    let result = (|| -> Result<()> {
        for model in models
            .iter()
            .filter(|m| m.incremental.as_ref().is_some_and(|s| s.lake == dataset))
        {
            let mut stamps: BTreeSet<FileStamp> = recorded(conn, model, FILES)?;
            let mut changed = false;
            for (old, new) in replaced {
                if old.iter().all(|s| stamps.contains(s))
                    && stamps
                        .iter()
                        .filter(|s| same_folder(&s.path, &new.path))
                        .count()
                        == old.len()
                {
                    for s in old {
                        stamps.remove(s);
                    }
                    stamps.insert(new.clone());
                    changed = true;
                }
            }
            if changed {
                conn.execute(
                    &format!("DELETE FROM {FILES} WHERE model = ?"),
                    params![model.name],
                )?;
                append_files(conn, model, stamps.iter())?;
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => db::execute(conn, "COMMIT")?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    Ok(())
}

fn same_folder(a: &str, b: &str) -> bool {
    a.rsplit_once('/').map(|(d, _)| d) == b.rsplit_once('/').map(|(d, _)| d)
}

/// Whether `model`'s declared tests differ from those that last passed on it: then they run
/// over the whole model, since the rows outside the changed partitions never met them.
pub fn tests_changed(conn: &Connection, model: &Model) -> Result<bool> {
    let same: i64 = conn.query_row(
        &format!("SELECT count(*) FROM {TESTS} WHERE model = ? AND checksum = ?"),
        params![model.name, model.tests_checksum],
        |r| r.get(0),
    )?;
    Ok(same == 0)
}

/// Remembers the tests that ran on `model`, in the refresh's transaction (rolled back with it
/// when a test fails).
pub fn record_tests(conn: &Connection, model: &Model) -> Result<()> {
    conn.execute(
        &format!("INSERT OR REPLACE INTO {TESTS} VALUES (?, ?)"),
        params![model.name, model.tests_checksum],
    )?;
    Ok(())
}

/// Whether the refresh keeps `model`'s row count per key: a model over the lake (a view or a
/// lake model following its partitions) would otherwise be read whole for its row count and
/// its whole-model tests on every refresh, a cost that grows with the lake.
pub fn keeps_counts(model: &Model) -> bool {
    model.incremental.is_some()
        && matches!(model.materialized, Materialized::View | Materialized::Lake)
}

/// Brings the kept row counts of `model` up to date with `mode`: the keys of the changed
/// partitions counted again (from `changed`, their rows, when the caller has them at hand),
/// or every key when it was rebuilt (or never counted).
pub fn update_counts(
    conn: &Connection,
    model: &Model,
    mode: &Mode,
    changed: Option<&str>,
) -> Result<()> {
    let spec = model.incremental.as_ref().expect("an incremental model");
    let keys = spec.keys();
    let model_keys = row_text(keys);
    let name = literal(&model.name);
    let table = ident(&model.name);
    let counted: i64 = db::query_one(
        conn,
        &format!("SELECT count(*) FROM {COUNTS} WHERE model = {name}"),
    )?;
    let sql = match mode {
        Mode::Unchanged if counted > 0 => return Ok(()),
        Mode::Incremental(partitions) => {
            let rows = match changed {
                Some(rows) => rows.to_owned(),
                None => match rows_in_partitions(conn, model, partitions)? {
                    Some(rows) => rows,
                    None => format!(
                        "(SELECT * FROM {table} WHERE {} IN ({}))",
                        key_columns(spec),
                        keys_sql(conn, model, spec, partitions)?
                    ),
                },
            };
            // The keys of the changed partitions as the counts hold them.
            let gone = if spec.key_of_partition.is_none() && keys == spec.partition.as_slice() {
                folder_texts(conn, &rows, keys, partitions)?.join(", ")
            } else {
                let aliases: Vec<String> = (0..keys.len()).map(|i| format!("k{i}")).collect();
                format!(
                    "SELECT {} FROM ({}) c({})",
                    row_text(&aliases),
                    keys_sql(conn, model, spec, partitions)?,
                    aliases.join(", ")
                )
            };
            format!(
                "DELETE FROM {COUNTS} WHERE model = {name} AND key IN ({gone});
                 INSERT INTO {COUNTS} SELECT {name}, {model_keys}, count(*) FROM {rows} AS {table}
                    GROUP BY ALL;"
            )
        }
        // The NULL-key row marks the model as counted, however few rows it has.
        Mode::Full | Mode::Unchanged => format!(
            "DELETE FROM {COUNTS} WHERE model = {name};
             INSERT INTO {COUNTS} VALUES ({name}, NULL, 0);
             INSERT INTO {COUNTS} SELECT {name}, {model_keys}, count(*) FROM {table} GROUP BY ALL;"
        ),
    };
    db::execute(conn, &sql)?;
    Ok(())
}

/// The kept row count of `model`, as SQL.
pub fn kept_count(model: &str) -> String {
    format!(
        "(SELECT coalesce(sum(rows), 0)::BIGINT FROM {COUNTS} WHERE model = {})",
        literal(model)
    )
}
