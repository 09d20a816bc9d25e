//! Incremental models: each remembers the lake files (path, size, modification time) it was
//! built from; a refresh rebuilds only the rows of the partitions whose files are new,
//! changed or gone, by delete + insert inside the refresh's transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context;
use duckdb::{params, Connection};

use super::models::{IncrementalSpec, Model};
use crate::db::{self, ident, literal};
use crate::error::Result;
use crate::lake;

const STATE: &str = "micro_wh_model_state";
const FILES: &str = "micro_wh_model_files";

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

/// A lake file as an incremental model consumed it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileStamp {
    pub path: String,
    pub size: i64,
    pub mtime_ns: i64,
}

pub fn ensure_tables(conn: &Connection) -> Result<()> {
    db::execute(
        conn,
        &format!(
            "CREATE TABLE IF NOT EXISTS {STATE} (model VARCHAR PRIMARY KEY, checksum VARCHAR NOT NULL);
             CREATE TABLE IF NOT EXISTS {FILES} (model VARCHAR NOT NULL, path VARCHAR NOT NULL, size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL);"
        ),
    )?;
    Ok(())
}

/// The dataset's files now, relative to its folder.
pub fn stamps(lake_dir: &Path, dataset: &str) -> Result<Vec<FileStamp>> {
    let root = lake::dataset_dir(lake_dir, dataset);
    lake::list_files(lake_dir, dataset)?
        .into_iter()
        .map(|rel| {
            let meta = std::fs::metadata(root.join(&rel))
                .with_context(|| format!("cannot read {}", root.join(&rel).display()))?;
            let mtime = meta
                .modified()?
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i64);
            Ok(FileStamp {
                path: rel.to_string_lossy().replace('\\', "/"),
                size: meta.len() as i64,
                mtime_ns: mtime,
            })
        })
        .collect()
}

/// The partition values of a file, from its `<partition>=<value>` folders.
fn partition_of(path: &str, partitions: &[String]) -> Option<Vec<String>> {
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
pub fn plan(conn: &Connection, model: &Model, now: &[FileStamp], force: bool) -> Result<Mode> {
    let spec = model.incremental.as_ref().expect("an incremental model");
    let exists: i64 = conn.query_row(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = ? AND table_type = 'BASE TABLE'",
        params![model.name],
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
    let before: BTreeSet<FileStamp> = {
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
        rows.collect::<std::result::Result<_, _>>()?
    };
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
/// model's rows for those keys.
pub fn apply_partitions(
    conn: &Connection,
    model: &Model,
    partitions: &[Vec<String>],
) -> Result<()> {
    let spec = model.incremental.as_ref().expect("an incremental model");
    let keys = keys_sql(conn, model, spec, partitions)?;
    let key = match spec.keys() {
        [one] => ident(one),
        many => format!(
            "({})",
            many.iter().map(|k| ident(k)).collect::<Vec<_>>().join(", ")
        ),
    };
    let table = ident(&model.name);
    // A temporary view of the same name shadows the source for this statement only; it
    // reads the real one by its full name (a bare `main.` would mean the temp schema).
    let shadow = match &spec.source {
        Some(source) => {
            let db: String = db::query_one(conn, "SELECT current_database()")?;
            db::execute(
                conn,
                &format!(
                    "CREATE OR REPLACE TEMP VIEW {src} AS SELECT * FROM {db}.main.{src} WHERE {filter}",
                    src = ident(source),
                    db = ident(&db),
                    filter = partition_filter(&spec.partition, partitions),
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

/// A filter on the partition columns keeping just `partitions`: the form DuckDB prunes
/// Hive folders with (literals compared to the columns, so they take the columns' types).
fn partition_filter(columns: &[String], partitions: &[Vec<String>]) -> String {
    if let [column] = columns {
        let values: Vec<String> = partitions.iter().map(|p| literal(&p[0])).collect();
        return format!("{} IN ({})", ident(column), values.join(", "));
    }
    partitions
        .iter()
        .map(|values| {
            let terms: Vec<String> = columns
                .iter()
                .zip(values)
                .map(|(c, v)| format!("{} = {}", ident(c), literal(v)))
                .collect();
            format!("({})", terms.join(" AND "))
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// `SELECT DISTINCT <key values> FROM (VALUES …)` over the changed partitions, typed like
/// the model's key columns.
fn keys_sql(
    conn: &Connection,
    model: &Model,
    spec: &IncrementalSpec,
    partitions: &[Vec<String>],
) -> Result<String> {
    let mut keys = Vec::new();
    for key in spec.keys() {
        let key_type: String = conn
            .query_row(
                "SELECT data_type FROM information_schema.columns WHERE table_schema = 'main' AND table_name = ? AND column_name = ?",
                params![model.name, key],
                |r| r.get(0),
            )
            .with_context(|| format!("model {}: no column `{key}` (incremental.key)", model.name))?;
        // The partition values are folder text: an expression says how they map to the
        // key, else a key named like a partition column is that value cast to its type.
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
    Ok(format!(
        "SELECT DISTINCT {} FROM (VALUES {}) t({})",
        keys.join(", "),
        rows.join(", "),
        columns.join(", ")
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
    let mut appender = conn.appender(FILES)?;
    for s in stamps {
        appender.append_row(params![model.name, s.path, s.size, s.mtime_ns])?;
    }
    appender.flush()?;
    Ok(())
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
        state.insert(dataset.to_owned(), stamps(lake_dir, dataset)?);
    }
    Ok(&state[dataset])
}
