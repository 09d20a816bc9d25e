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

/// What a refresh does to one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Full,
    /// The partition values whose rows are rebuilt.
    Incremental(Vec<String>),
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
             CREATE TABLE IF NOT EXISTS {TESTS} (model VARCHAR PRIMARY KEY, checksum VARCHAR NOT NULL);"
        ),
    )?;
    Ok(())
}

/// The partition value of a file, from its `<partition>=<value>` folder.
fn partition_of(path: &str, partition: &str) -> Option<String> {
    let prefix = format!("{partition}=");
    path.split('/')
        .find_map(|part| part.strip_prefix(&prefix).map(str::to_owned))
}

/// Decides how to refresh `model`; `force` is a full rebuild asked for (or needed upstream).
pub fn plan(conn: &Connection, model: &Model, now: &[FileStamp], force: bool) -> Result<Mode> {
    let spec = model.incremental.as_ref().expect("an incremental model");
    let kind = match model.materialized {
        Materialized::View => "VIEW",
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
    let before = recorded(conn, model)?;
    let now: BTreeSet<FileStamp> = now.iter().cloned().collect();
    let mut changed = BTreeSet::new();
    for stamp in before.symmetric_difference(&now) {
        match partition_of(&stamp.path, &spec.partition) {
            Some(value) => {
                changed.insert(value);
            }
            // A file outside the partition folders: its rows cannot be placed, rebuild all.
            None => return Ok(Mode::Full),
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
    partitions: &[String],
    lake: &[FileStamp],
) -> Result<()> {
    let spec = model.incremental.as_ref().expect("an incremental model");
    let keys = keys_sql(conn, model, spec, partitions)?;
    let key = ident(spec.key());
    let table = ident(&model.name);
    // A temporary view of the same name shadows the source for this statement only; it
    // reads the real one by its full name (a bare `main.` would mean the temp schema).
    let shadow = match &spec.source {
        Some(source) => {
            let db: String = db::query_one(conn, "SELECT current_database()")?;
            // The source rows that feed the rebuilt keys: those of the changed partitions, or,
            // when partitions map to wider keys (weeks), of every partition in those keys.
            // Named as constants, so the filter reaches the source's scan.
            let feeding = match &spec.key_of_partition {
                Some(expr) => {
                    let all: BTreeSet<String> = lake
                        .iter()
                        .filter_map(|f| partition_of(&f.path, &spec.partition))
                        .collect();
                    let all: Vec<String> =
                        all.iter().map(|p| format!("({})", literal(p))).collect();
                    let mut stmt = conn.prepare(&format!(
                        "SELECT {part} FROM (SELECT CAST(v AS VARCHAR) AS {part} FROM (VALUES {}) t(v)) \
                         WHERE CAST({expr} AS {ty}) IN ({keys})",
                        all.join(", "),
                        part = ident(&spec.partition),
                        ty = key_type(conn, model, spec)?,
                    ))?;
                    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
                    rows.collect::<std::result::Result<Vec<_>, _>>()?
                }
                None => partitions.to_vec(),
            };
            let values: Vec<String> = feeding.iter().map(|p| literal(p)).collect();
            let filter = if values.is_empty() {
                "false".to_owned()
            } else {
                format!("{} IN ({})", ident(&spec.partition), values.join(", "))
            };
            db::execute(
                conn,
                &format!(
                    "CREATE OR REPLACE TEMP VIEW {src} AS SELECT * FROM {db}.main.{src} WHERE {filter}",
                    src = ident(source),
                    db = ident(&db),
                ),
            )?;
            Some(source)
        }
        None => None,
    };
    let result = db::execute(
        conn,
        &format!(
            "DELETE FROM {table} WHERE {key} IN ({keys});
             INSERT INTO {table} SELECT * FROM ({}) WHERE {key} IN ({keys});",
            model.select.trim_end().trim_end_matches(';')
        ),
    );
    if let Some(source) = shadow {
        db::execute(
            conn,
            &format!("DROP VIEW IF EXISTS temp.main.{}", ident(source)),
        )?;
    }
    result?;
    Ok(())
}

/// The SQL type of the model's key column.
fn key_type(conn: &Connection, model: &Model, spec: &IncrementalSpec) -> Result<String> {
    conn.query_row(
        "SELECT data_type FROM information_schema.columns WHERE table_schema = 'main' AND table_name = ? AND column_name = ?",
        params![model.name, spec.key()],
        |r| r.get(0),
    )
    .with_context(|| format!("model {}: no column `{}` (incremental.key)", model.name, spec.key()))
}

/// `SELECT <key value> FROM (VALUES …)` over the changed partition values, typed like the
/// model's key column.
pub fn keys_sql(
    conn: &Connection,
    model: &Model,
    spec: &IncrementalSpec,
    partitions: &[String],
) -> Result<String> {
    let key_type = key_type(conn, model, spec)?;
    let values: Vec<String> = partitions
        .iter()
        .map(|p| format!("({})", literal(p)))
        .collect();
    let partition = ident(&spec.partition);
    // The partition value is text from a folder name; typed like the key unless an
    // expression says how a partition maps to keys.
    let expr = match &spec.key_of_partition {
        Some(e) => e.clone(),
        None => format!("CAST({partition} AS {key_type})"),
    };
    // With an expression, the partition is the folder's text and the expression casts it.
    let source_type = if spec.key_of_partition.is_some() {
        "VARCHAR"
    } else {
        key_type.as_str()
    };
    Ok(format!(
        "SELECT DISTINCT CAST({expr} AS {key_type}) FROM (SELECT CAST(v AS {source_type}) AS {partition} FROM (VALUES {}) t(v))",
        values.join(", "),
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

fn append_files<'s>(
    conn: &Connection,
    model: &Model,
    stamps: impl Iterator<Item = &'s FileStamp>,
) -> Result<()> {
    let mut appender = conn.appender(FILES)?;
    for s in stamps {
        appender.append_row(params![model.name, s.path, s.size, s.mtime_ns])?;
    }
    appender.flush()?;
    Ok(())
}

/// The files `model` was last built from.
fn recorded(conn: &Connection, model: &Model) -> Result<BTreeSet<FileStamp>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT path, size, mtime_ns FROM {FILES} WHERE model = ?"
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
            let mut stamps: BTreeSet<FileStamp> = recorded(conn, model)?;
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
