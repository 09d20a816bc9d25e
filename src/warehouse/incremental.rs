//! Incremental models: each remembers the lake files (path, size, modification time) it was
//! built from; a refresh rebuilds only the rows of the partitions whose files are new,
//! changed or gone, by delete + insert inside the refresh's transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use anyhow::Context;
use duckdb::{params, Connection};
use regex::Regex;

use super::models::{IncrementalSpec, Materialized, Model};
use crate::db::{self, ident, literal};
use crate::error::Result;
use crate::lake;

const STATE: &str = "micro_wh_model_state";
const FILES: &str = "micro_wh_model_files";
const TESTS: &str = "micro_wh_model_tests";
/// The files a lake model wrote, as recorded when they were published.
const OUTPUTS: &str = "micro_wh_model_outputs";
/// A digest of each model's recorded files (`FILES`, `OUTPUTS`): equal to the digest of the
/// folder's files now, nothing changed there, and no stamp is compared.
const PRINTS: &str = "micro_wh_model_fingerprints";
/// Row counts per key of the models whose rows live in the lake (views, lake models).
const COUNTS: &str = "micro_wh_partition_rows";
/// The hash of each row's `unique` columns per key, for the same models: their `unique`
/// tests compare hashes kept in the warehouse instead of reading the lake.
const KEYS: &str = "micro_wh_partition_keys";
/// The SQL of the view each lake model was last given: made again only when it differs.
const LAKE_VIEWS: &str = "micro_wh_lake_views";
/// Every partition of a lake, for a moment inside a refresh (dropped before it commits).
const PARTITIONS: &str = "micro_wh_lake_partitions";
/// [`PARTITIONS`] as SQL names it: a temporary table (nothing of it goes to the warehouse file).
const PARTITIONS_SQL: &str = "temp.main.micro_wh_lake_partitions";

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
             CREATE TABLE IF NOT EXISTS {COUNTS} (model VARCHAR NOT NULL, key VARCHAR, rows BIGINT NOT NULL);
             CREATE TABLE IF NOT EXISTS {KEYS} (model VARCHAR NOT NULL, columns VARCHAR NOT NULL, key VARCHAR, h UBIGINT);
             CREATE TABLE IF NOT EXISTS {PRINTS} (model VARCHAR NOT NULL, files VARCHAR NOT NULL, fingerprint VARCHAR NOT NULL, PRIMARY KEY (model, files));
             CREATE TABLE IF NOT EXISTS {LAKE_VIEWS} (model VARCHAR PRIMARY KEY, view_sql VARCHAR NOT NULL);"
        ),
    )?;
    Ok(())
}

/// The partition values of a file, from its `<partition>=<value>` folders, as DuckDB reads
/// them (`San Jose` from `city=San%20Jose`): they are compared with the rows' values.
pub fn partition_of(path: &str, partitions: &[String]) -> Option<Vec<String>> {
    partitions
        .iter()
        .map(|partition| {
            let prefix = format!("{partition}=");
            path.split('/')
                .find_map(|part| part.strip_prefix(&prefix).map(lake::folder_value))
        })
        .collect()
}

/// The folder value DuckDB writes (and reads back as NULL) for a NULL partition value.
const NULL_FOLDER: &str = "__HIVE_DEFAULT_PARTITION__";

/// Whether a partition's folders hold rows with a NULL partition value.
fn has_null_folder(partition: &[String]) -> bool {
    partition.iter().any(|v| v == NULL_FOLDER)
}

/// Decides how to refresh `model`; `force` is a full rebuild asked for (or needed upstream),
/// `kind` what the model's name is in the warehouse now (`VIEW`, `BASE TABLE`). `lake` holds
/// the files of the dataset it follows; for a lake model, also its own files: a partition
/// whose files differ from those it recorded (a crash between their publication and the
/// commit, a hand edit) is rebuilt too.
pub fn plan(
    conn: &Connection,
    model: &Model,
    kind: Option<&str>,
    lake: &mut LakeState,
    force: bool,
) -> Result<Mode> {
    let spec = model.incremental.as_ref().expect("an incremental model");
    let expected = match model.materialized {
        Materialized::View | Materialized::Lake => "VIEW",
        Materialized::Table | Materialized::Incremental => "BASE TABLE",
    };
    if force
        || kind != Some(expected)
        || lake.checksum(conn, &model.name)?.as_deref() != Some(model.checksum.as_str())
    {
        return Ok(Mode::Full);
    }
    let mut folders = vec![(FILES, spec.lake.as_str())];
    if model.materialized == Materialized::Lake {
        folders.push((OUTPUTS, model.name.as_str()));
    }
    let mut changed = BTreeSet::new();
    for (table, folder) in folders {
        for path in lake.differences(conn, table, &model.name, folder)? {
            match partition_of(&path, &spec.partition) {
                // The folder of rows whose partition value is NULL: partitions are selected
                // by their values, which never equal NULL, so its rows would be missed.
                Some(value) if has_null_folder(&value) => {
                    tracing::warn!(
                        "{}/{path} changed, a file of the rows whose {} is NULL: {} is rebuilt whole",
                        spec.lake,
                        spec.partition.join(" or "),
                        model.name
                    );
                    return Ok(Mode::Full);
                }
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
/// model's rows for those keys. `lake` is the dataset's files now. Returns the condition
/// (SQL over the model's columns) the replaced rows meet: no other row changed.
pub fn apply_partitions(
    conn: &Connection,
    model: &Model,
    partitions: &[Vec<String>],
    lake: &[FileStamp],
    copies: &Copies,
) -> Result<String> {
    let spec = model.incremental.as_ref().expect("an incremental model");
    let keys = keys_sql(conn, model, spec, partitions)?;
    let key = key_columns(spec);
    let table = ident(&model.name);
    let feeding = match &spec.key_of_partition {
        // Partitions map to wider keys (weeks): the source rows that feed the rebuilt keys
        // are those of every partition in those keys.
        Some(_) if spec.source.is_some() => {
            // A NULL folder feeds no key here: its changes rebuild the model whole (`plan`).
            let all: BTreeSet<Vec<String>> = lake
                .iter()
                .filter_map(|f| partition_of(&f.path, &spec.partition))
                .filter(|p| !has_null_folder(p))
                .collect();
            // Appended, not written as a VALUES list: DuckDB takes about 0.1 ms to parse
            // and bind each row of one (0.9 s at 8,000 folders).
            let columns: Vec<String> = spec
                .partition
                .iter()
                .map(|p| format!("{} VARCHAR", ident(p)))
                .collect();
            db::execute(
                conn,
                &format!(
                    "CREATE OR REPLACE TEMP TABLE {PARTITIONS} ({})",
                    columns.join(", ")
                ),
            )?;
            let mut appender = conn.appender_to_catalog_and_db(PARTITIONS, "temp", "main")?;
            for partition in &all {
                appender.append_row(duckdb::appender_params_from_iter(partition))?;
            }
            appender.flush()?;
            drop(appender);
            let feeding = {
                let mut stmt = conn.prepare(&format!(
                    "SELECT * FROM {PARTITIONS_SQL} WHERE ({}) IN ({keys})",
                    key_expressions(conn, model, spec)?.join(", "),
                ))?;
                let width = spec.partition.len();
                let rows = stmt.query_map([], |r| {
                    (0..width)
                        .map(|i| r.get::<_, String>(i))
                        .collect::<std::result::Result<Vec<_>, _>>()
                })?;
                rows.collect::<std::result::Result<Vec<_>, _>>()?
            };
            db::execute(conn, &format!("DROP TABLE {PARTITIONS_SQL}"))?;
            feeding
        }
        _ => partitions.to_vec(),
    };
    let scope = SourceScope::of(conn, spec, &feeding, lake, copies)?;
    let replaced = format!("{key} IN ({keys})");
    db::execute(
        conn,
        &format!(
            "DELETE FROM {table} WHERE {replaced};
             INSERT INTO {table} SELECT * FROM ({}\n) WHERE {replaced};",
            scope.wrap(&model.select)
        ),
    )?;
    Ok(replaced)
}

/// The rows of the changed partitions of models refreshed so far, copied into temporary
/// tables: a later model reading one of them as its `source` is shown the copy, where reading
/// the model again would bind it over the whole lake (list every folder, open a footer),
/// a cost that grows with the lake on every refresh.
#[derive(Default)]
pub struct Copies(BTreeMap<String, (BTreeSet<Vec<String>>, String)>);

/// The temporary table holding `model`'s changed rows.
pub fn copy_name(model: &str) -> String {
    format!("micro_wh_changed_{model}")
}

impl Copies {
    /// Remembers that the temporary table `table` holds every row of `model` in `partitions`.
    pub fn insert(&mut self, model: &str, partitions: &[Vec<String>], table: String) {
        self.0.insert(
            model.to_owned(),
            (partitions.iter().cloned().collect(), table),
        );
    }

    /// Drops the copies of the models `needed` no longer names.
    pub fn release(&mut self, conn: &Connection, needed: impl Fn(&str) -> bool) -> Result<()> {
        let done: Vec<String> = self.0.keys().filter(|m| !needed(m)).cloned().collect();
        for model in done {
            let (_, table) = self.0.remove(&model).expect("a listed copy");
            db::execute(
                conn,
                &format!("DROP TABLE IF EXISTS temp.main.{}", ident(&table)),
            )?;
        }
        Ok(())
    }

    /// The copy of `model` holding all of `partitions`, and whether it holds only them.
    fn covering(&self, model: &str, partitions: &[Vec<String>]) -> Option<(&str, bool)> {
        let (held, table) = self.0.get(model)?;
        partitions
            .iter()
            .all(|p| held.contains(p))
            .then_some((table.as_str(), held.len() == partitions.len()))
    }
}

/// How a model rebuilt for some partitions sees its `source`: only the rows of those
/// partitions, from the source's copied rows when they hold them, else from the source itself
/// by its full name, filtered by the partitions named as constants, so the filter reaches
/// the source's scan and DuckDB reads only their folders.
pub struct SourceScope(Option<(String, String)>, bool);

impl SourceScope {
    /// The spec's source limited to `partitions` (no limit when it names no source); `lake`
    /// is the spec's dataset's files now.
    pub fn of(
        conn: &Connection,
        spec: &IncrementalSpec,
        partitions: &[Vec<String>],
        lake: &[FileStamp],
        copies: &Copies,
    ) -> Result<SourceScope> {
        let Some(source) = &spec.source else {
            return Ok(SourceScope(None, false));
        };
        let copied = copies.covering(source, partitions).is_some();
        let rows = match copies.covering(source, partitions) {
            Some((copy, true)) => format!("SELECT * FROM temp.main.{}", ident(copy)),
            Some((copy, false)) => {
                let (_, types) = catalog_types(conn, copy)?;
                let relation = format!("temp.main.{}", ident(copy));
                let filter = partition_filter(&types, &relation, &spec.partition, partitions)?;
                format!("SELECT * FROM {relation} WHERE {filter}")
            }
            None => partition_rows(conn, source, spec, partitions, lake)?,
        };
        Ok(SourceScope(Some((source.clone(), rows)), copied))
    }

    /// Whether the source's rows come from a copy of its changed rows (a day or an hour of
    /// rows, not the lake).
    pub fn is_copied(&self) -> bool {
        self.1
    }

    /// `select` reading the limited source under its own name: a common table expression
    /// of that name shadows it within the statement. (A temporary view would do the same,
    /// but creating it binds the source once more, and over the lake a bind lists every
    /// folder.)
    pub fn wrap(&self, select: &str) -> String {
        let select = select.trim_end().trim_end_matches(';');
        match &self.0 {
            None => select.to_owned(),
            // The line break ends a trailing `--` comment of the model's SQL.
            Some((source, rows)) => {
                format!(
                    "WITH {} AS ({rows}) SELECT * FROM ({select}\n)",
                    ident(source)
                )
            }
        }
    }
}

/// The rows of `partitions` of the warehouse's table or view `name`, which follows the
/// partitions of `spec`'s lake dataset (whose files now are `lake`). A view reading that
/// dataset straight through its glob is read from those partitions' files alone (see
/// [`narrowed_view`]); anything else is filtered by the partitions named as constants, which
/// DuckDB prunes folders by, though only after listing them all.
pub fn partition_rows(
    conn: &Connection,
    name: &str,
    spec: &IncrementalSpec,
    partitions: &[Vec<String>],
    lake: &[FileStamp],
) -> Result<String> {
    let (database, types) = catalog_types(conn, name)?;
    let relation = match narrowed_view(conn, &database, name, &types, spec, partitions, lake)? {
        Some(select) => format!("({select}\n)"),
        None => format!("{}.main.{}", ident(&database), ident(name)),
    };
    let filter = partition_filter(&types, &relation, &spec.partition, partitions)?;
    Ok(format!("SELECT * FROM {relation} WHERE {filter}"))
}

/// Words of SQL that relate a row to other rows (or read other relations): a view with none of
/// them, over one glob, gives each file's rows from that file alone.
const ACROSS_ROWS: &str = r"(?i)\b(over|join|group|having|qualify|limit|offset|distinct|union|except|intersect|sample|using|pivot|unpivot|order)\b";

/// The SQL of `view` (whose column `types` these are) reading only the files of `partitions`,
/// when the view reads `spec`'s lake dataset straight through micro-wh's glob
/// (`'<dir>/<dataset>/*/…/*.parquet'`) and relates no row to another: a SELECT over that one
/// read with nothing across rows ([`ACROSS_ROWS`]). Binding the view lists every folder of
/// the dataset, a cost that grows with each day or hour kept; this lists none. None when the
/// view is not of that form, no file is left in the partitions, or the narrowed SQL does not
/// bind to the view's columns (a failed bind leaves the transaction usable).
fn narrowed_view(
    conn: &Connection,
    database: &str,
    view: &str,
    types: &BTreeMap<String, String>,
    spec: &IncrementalSpec,
    partitions: &[Vec<String>],
    lake: &[FileStamp],
) -> Result<Option<String>> {
    let sql: Option<String> = db::query_rows(
        conn,
        "SELECT sql FROM duckdb_views() WHERE database_name = ? AND schema_name = 'main' AND view_name = ?",
        params![database, view],
        |r| r.get(0),
    )?
    .pop();
    let Some(sql) = sql else { return Ok(None) };
    static HEAD: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(?is)^\s*CREATE\s+VIEW\s+("(?:[^"]|"")*"|[^\s(]+)\s+AS\s+(.*?)\s*;?\s*$"#)
            .expect("a valid pattern")
    });
    static SELECTS: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?i)\bselect\b").expect("a valid pattern"));
    static ACROSS: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(ACROSS_ROWS).expect("a valid pattern"));
    let Some(select) = HEAD.captures(&sql).map(|c| c[2].to_owned()) else {
        return Ok(None);
    };
    if SELECTS.find_iter(&select).count() != 1 || ACROSS.is_match(&select) {
        return Ok(None);
    }
    let glob = Regex::new(&format!(
        r"'((?:[^']*/)?){}/(?:\*/)*\*\.parquet'",
        regex::escape(&spec.lake)
    ))
    .expect("a valid pattern");
    let mut found = glob.captures_iter(&select);
    let (Some(found), None) = (found.next(), found.next()) else {
        return Ok(None);
    };
    // The glob reads files exactly this many folders down; the listing has every file.
    let depth = found[0].matches("*/").count();
    let read: Vec<&FileStamp> = lake
        .iter()
        .filter(|f| f.path.matches('/').count() == depth)
        .collect();
    let dir = format!("{}{}", &found[1], spec.lake);
    refuse_twin_folders(&read, types, spec, &dir, view)?;
    let wanted: BTreeSet<&Vec<String>> = partitions.iter().collect();
    let files: Vec<String> = read
        .iter()
        .filter(|f| partition_of(&f.path, &spec.partition).is_some_and(|p| wanted.contains(&p)))
        .map(|f| literal(&format!("{}{}/{}", &found[1], spec.lake, f.path)))
        .collect();
    if files.is_empty() {
        return Ok(None);
    }
    let whole = found.get(0).expect("the match").range();
    let narrowed = format!(
        "{}[{}]{}",
        &select[..whole.start],
        files.join(", "),
        &select[whole.end..]
    );
    match db::describe(conn, &narrowed) {
        Ok(columns)
            if columns.len() == types.len()
                && columns.iter().all(|(n, t)| types.get(n) == Some(t)) =>
        {
            Ok(Some(narrowed))
        }
        other => {
            tracing::debug!("{view} is read whole, its narrowed SQL binds as {other:?}");
            Ok(None)
        }
    }
}

/// Refuses a folder of `files` whose partition value is not written as DuckDB writes that
/// value of its column's type in `types` (`date=2024-1-5` for the DATE 2024-01-05): the
/// view's glob reads it as that value, so a partition would have two folders, and reading
/// just the changed folders would miss the other's rows. Dates and integers are checked;
/// text is its own value.
fn refuse_twin_folders(
    files: &[&FileStamp],
    types: &BTreeMap<String, String>,
    spec: &IncrementalSpec,
    dir: &str,
    view: &str,
) -> Result<()> {
    let mut seen = BTreeSet::new();
    for file in files {
        let folder = file.path.rsplit_once('/').map_or("", |(folder, _)| folder);
        if !seen.insert(folder) {
            continue;
        }
        for part in folder.split('/') {
            let Some((column, value)) = part.split_once('=') else {
                continue;
            };
            let value = &lake::folder_value(value);
            if !spec.partition.iter().any(|p| p == column) {
                continue;
            }
            let Some(ty) = types.get(column) else {
                continue;
            };
            if let Some(written) = canonical_value(value, ty).filter(|w| w != value) {
                anyhow::bail!(
                    "lake folder {dir}/{folder}: DuckDB reads its {column} as {written}, whose \
                     folder is {column}={written}; {view} would take both folders as one \
                     partition, and a refresh of one folder would miss the other's rows. Move \
                     its files into {column}={written} (or rename it so)"
                );
            }
        }
    }
    Ok(())
}

/// How DuckDB writes a partition folder's `value` of type `ty`, for the types checked here
/// (dates and integers), when `value` reads as one.
fn canonical_value(value: &str, ty: &str) -> Option<String> {
    match ty {
        "DATE" => chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .ok()
            .map(|d| d.format("%Y-%m-%d").to_string()),
        "TINYINT" | "SMALLINT" | "INTEGER" | "BIGINT" | "HUGEINT" | "UTINYINT" | "USMALLINT"
        | "UINTEGER" | "UBIGINT" => value.trim().parse::<i128>().ok().map(|v| v.to_string()),
        _ => None,
    }
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
    types: &BTreeMap<String, String>,
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
            let values: BTreeSet<&str> = partitions.iter().map(|p| p[i].as_str()).collect();
            // The NULL folder's rows have NULL there, which no IN list admits.
            let mut terms = Vec::new();
            let listed: Vec<String> = values
                .iter()
                .filter(|v| **v != NULL_FOLDER)
                .map(|v| literal(v))
                .collect();
            if !listed.is_empty() {
                terms.push(format!("{} IN ({})", ident(column), listed.join(", ")));
            }
            if values.contains(NULL_FOLDER) {
                terms.push(format!("{} IS NULL", ident(column)));
            }
            format!("({})", terms.join(" OR "))
        })
        .collect();
    if columns.len() == 1 {
        return Ok(lists.join(""));
    }
    Ok(format!(
        "{} AND {} IN ({})",
        lists.join(" AND "),
        row_text(columns),
        folder_texts(types, relation, columns, partitions)?.join(", ")
    ))
}

/// A row's values of `columns` as one text, to compare with [`folder_texts`] (a NULL as the
/// folder DuckDB writes it in).
fn row_text(columns: &[String]) -> String {
    let terms: Vec<String> = columns
        .iter()
        .map(|c| {
            format!(
                "coalesce(CAST({} AS VARCHAR), {})",
                ident(c),
                literal(NULL_FOLDER)
            )
        })
        .collect();
    format!("concat_ws('/', {})", terms.join(", "))
}

/// The database `name` is read from (`temp` when a temporary relation of that name shadows
/// the warehouse's, as a lake model's view does during a refresh) and its column types as the
/// catalog keeps them: a DESCRIBE would bind a view over the lake again (list every folder of
/// the lake), a cost that grows with it.
fn catalog_types(conn: &Connection, name: &str) -> Result<(String, BTreeMap<String, String>)> {
    let rows: Vec<(String, String, String)> = db::query_rows(
        conn,
        "SELECT database_name, column_name, data_type FROM duckdb_columns() \
         WHERE database_name IN ('temp', current_database()) AND schema_name = 'main' AND table_name = ? \
         ORDER BY database_name = 'temp' DESC, column_index",
        params![name],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let database = rows
        .first()
        .map_or_else(|| "temp".to_owned(), |r| r.0.clone());
    let types = rows
        .into_iter()
        .filter(|r| r.0 == database)
        .map(|(_, column, ty)| (column, ty))
        .collect();
    Ok((database, types))
}

/// The column types of the model `name`, as the refresh reads it.
fn model_types(conn: &Connection, name: &str) -> Result<BTreeMap<String, String>> {
    Ok(catalog_types(conn, name)?.1)
}

/// Each partition's folder values as the text [`row_text`] gives the rows of `relation`
/// (whose column `types` these are): each value cast to its column's type there and back,
/// which is the text of the same value.
fn folder_texts(
    types: &BTreeMap<String, String>,
    relation: &str,
    columns: &[String],
    partitions: &[Vec<String>],
) -> Result<Vec<String>> {
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
                .map(|(v, ty)| match v.as_str() {
                    NULL_FOLDER => literal(NULL_FOLDER),
                    v => format!("CAST(CAST({} AS {ty}) AS VARCHAR)", literal(v)),
                })
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
    let filter = partition_filter(
        &model_types(conn, &model.name)?,
        &table,
        &spec.partition,
        partitions,
    )?;
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

/// Remembers the SQL and the files a model was built from (those of its dataset in `lake`),
/// in the caller's transaction.
pub fn record(conn: &Connection, model: &Model, lake: &mut LakeState) -> Result<()> {
    let spec = model.incremental.as_ref().expect("an incremental model");
    record_checksum(conn, model, lake)?;
    lake.record(conn, FILES, &model.name, &spec.lake)
}

/// Whether `model`'s SQL (rendered, with its materialization) differs from the SQL it was
/// last built from, or it was never built.
pub fn sql_changed(conn: &Connection, model: &Model, lake: &mut LakeState) -> Result<bool> {
    Ok(lake.checksum(conn, &model.name)?.as_deref() != Some(model.checksum.as_str()))
}

/// Remembers the SQL `model` was built from, in the caller's transaction.
pub fn record_checksum(conn: &Connection, model: &Model, lake: &mut LakeState) -> Result<()> {
    if sql_changed(conn, model, lake)? {
        db::execute(
            conn,
            &format!(
                "INSERT OR REPLACE INTO {STATE} VALUES ({}, {})",
                literal(&model.name),
                literal(&model.checksum)
            ),
        )?;
        if let Some(checksums) = lake.checksums.as_mut() {
            checksums.insert(model.name.clone(), model.checksum.clone());
        }
    }
    Ok(())
}

/// Remembers the files a lake model's partitions now are, once they are published and
/// listed again into `lake` ([`LakeState::relist`]).
pub fn record_outputs(conn: &Connection, model: &Model, lake: &mut LakeState) -> Result<()> {
    lake.record(conn, OUTPUTS, &model.name, &model.name)
}

/// The SQL of the view a refresh last made of lake model `model`, when one did.
pub fn lake_view(conn: &Connection, model: &str) -> Result<Option<String>> {
    let sql = format!("SELECT view_sql FROM {LAKE_VIEWS} WHERE model = ?");
    Ok(db::query_rows(conn, &sql, params![model], |r| r.get(0))?.pop())
}

/// Remembers `sql` as the view just made of lake model `model`, in the refresh's transaction.
pub fn record_lake_view(conn: &Connection, model: &str, sql: &str) -> Result<()> {
    conn.execute(
        &format!("INSERT OR REPLACE INTO {LAKE_VIEWS} VALUES (?, ?)"),
        params![model, sql],
    )?;
    Ok(())
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

/// What a refresh knows of the lake's folders it follows (datasets, lake models) and of the
/// files each model recorded of them. Each folder is listed once, digested, and held in a
/// temporary table. A model whose recorded digest is the folder's has nothing changed there;
/// otherwise its recorded files are compared with those inside DuckDB, once for all the
/// models that recorded the same files, and only the differences come back.
pub struct LakeState {
    lake_dir: PathBuf,
    folders: BTreeMap<String, Folder>,
    /// (model, `FILES` or `OUTPUTS`) → digest of the files recorded there; read on first use.
    prints: Option<BTreeMap<(String, String), String>>,
    /// model → checksum of the SQL it was last built from; read on first use.
    checksums: Option<BTreeMap<String, String>>,
    /// model → checksum of the tests that last passed on it; read on first use.
    tests: Option<BTreeMap<String, String>>,
    /// (folder, recorded digest) → the paths that differ.
    differences: BTreeMap<(String, String), Vec<String>>,
    /// Records of files to write before the refresh commits.
    records: Vec<Record>,
}

struct Folder {
    stamps: Vec<FileStamp>,
    digest: String,
}

/// Changed sub-folders up to which a folder is listed again by those alone.
const RELISTED_FOLDERS: usize = 64;

/// Changed files up to which a model's recorded files are replaced by name.
const NAMED_PATHS: usize = 200;

/// The temporary table of [`LakeState`]: `folder` is the dataset's (or lake model's) name.
const NOW: &str = "temp.main.micro_wh_lake_files";

impl LakeState {
    pub fn new(lake_dir: &Path) -> LakeState {
        LakeState {
            lake_dir: lake_dir.to_owned(),
            folders: BTreeMap::new(),
            prints: None,
            checksums: None,
            tests: None,
            differences: BTreeMap::new(),
            records: Vec::new(),
        }
    }

    /// The files of the lake's folder `folder` (a dataset or a lake model), listed on first use.
    pub fn files(&mut self, conn: &Connection, folder: &str) -> Result<&[FileStamp]> {
        Ok(&self.folder(conn, folder)?.stamps)
    }

    fn folder(&mut self, conn: &Connection, folder: &str) -> Result<&Folder> {
        if !self.folders.contains_key(folder) {
            self.list(conn, folder)?;
        }
        Ok(&self.folders[folder])
    }

    /// Lists `folder`.
    fn list(&mut self, conn: &Connection, folder: &str) -> Result<()> {
        let stamps = lake::stamps(&self.lake_dir, folder)?;
        db::execute(
            conn,
            &format!(
                "CREATE TEMP TABLE IF NOT EXISTS micro_wh_lake_files (folder VARCHAR NOT NULL, path VARCHAR NOT NULL, size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL);
                 DELETE FROM {NOW} WHERE folder = {}",
                literal(folder)
            ),
        )?;
        append_now(conn, folder, &stamps)?;
        self.hold(folder, stamps)
    }

    /// Lists again the sub-folders `changed` of `folder` (a lake model's partitions just
    /// published or removed), the rest of it being as it was listed: a refresh that rewrote a
    /// day of a lake model does not list its thousand other days twice. The file records
    /// waiting to be written are written first ([`LakeState::write_records`]): they are of
    /// the listing as it was, which this replaces, so a caller need not order the two.
    pub fn relist(&mut self, conn: &Connection, folder: &str, changed: &[PathBuf]) -> Result<()> {
        self.write_records(conn)?;
        if changed.len() > RELISTED_FOLDERS || !self.folders.contains_key(folder) {
            return self.list(conn, folder);
        }
        let known = &self.folders[folder];
        let prefixes: Vec<String> = changed
            .iter()
            .map(|f| format!("{}/", f.to_string_lossy().replace('\\', "/")))
            .collect();
        let under = |path: &str| prefixes.iter().any(|p| path.starts_with(p.as_str()));
        let listed = known.digest.clone();
        let (before, kept): (Vec<FileStamp>, Vec<FileStamp>) =
            known.stamps.iter().cloned().partition(|s| under(&s.path));
        let fresh = lake::stamps_under(&self.lake_dir, folder, changed)?;
        // What differs from the earlier listing is known: the files in those folders, before
        // and now. A model that had recorded that listing needs no comparison.
        let mut differ: Vec<String> = before
            .iter()
            .chain(&fresh)
            .map(|s| s.path.clone())
            .collect();
        differ.sort();
        differ.dedup();
        if !before.is_empty() {
            let paths: Vec<String> = before.iter().map(|s| literal(&s.path)).collect();
            db::execute(
                conn,
                &format!(
                    "DELETE FROM {NOW} WHERE folder = {} AND path IN ({})",
                    literal(folder),
                    paths.join(", ")
                ),
            )?;
        }
        append_now(conn, folder, &fresh)?;
        let mut stamps = kept;
        stamps.extend(fresh);
        stamps.sort();
        self.hold(folder, stamps)?;
        self.differences.insert((folder.to_owned(), listed), differ);
        Ok(())
    }

    /// Holds `stamps` as `folder`'s files now, with their digest.
    fn hold(&mut self, folder: &str, stamps: Vec<FileStamp>) -> Result<()> {
        let digest = digest(&stamps);
        // Differences found against the folder's earlier listing no longer hold.
        self.differences.retain(|(f, _), _| f != folder);
        self.folders
            .insert(folder.to_owned(), Folder { stamps, digest });
        Ok(())
    }

    fn checksum(&mut self, conn: &Connection, model: &str) -> Result<Option<String>> {
        let checksums = load(&mut self.checksums, || checksums(conn, STATE))?;
        Ok(checksums.get(model).cloned())
    }

    fn print(&mut self, conn: &Connection, model: &str, table: &str) -> Result<Option<String>> {
        let prints = load(&mut self.prints, || {
            let rows: Vec<[String; 3]> = rows_of(
                conn,
                &format!("SELECT model, files, fingerprint FROM {PRINTS}"),
            )?;
            Ok(rows.into_iter().map(|[m, t, p]| ((m, t), p)).collect())
        })?;
        Ok(prints.get(&(model.to_owned(), table.to_owned())).cloned())
    }

    /// Whether `model`'s declared tests differ from those that last passed on it: then they
    /// run over the whole model, since the rows outside the changed partitions never met them.
    pub fn tests_changed(&mut self, conn: &Connection, model: &Model) -> Result<bool> {
        let tests = load(&mut self.tests, || checksums(conn, TESTS))?;
        Ok(tests.get(&model.name) != Some(&model.tests_checksum))
    }

    /// Remembers the tests that ran on `model`, in the refresh's transaction (rolled back
    /// with it when a test fails).
    pub fn record_tests(&mut self, conn: &Connection, model: &Model) -> Result<()> {
        conn.execute(
            &format!("INSERT OR REPLACE INTO {TESTS} VALUES (?, ?)"),
            params![model.name, model.tests_checksum],
        )?;
        if let Some(tests) = self.tests.as_mut() {
            tests.insert(model.name.clone(), model.tests_checksum.clone());
        }
        Ok(())
    }

    /// Paths that differ (added, gone, or of another size or time) between the files `model`
    /// recorded in `table` and `folder`'s files now.
    fn differences(
        &mut self,
        conn: &Connection,
        table: &str,
        model: &str,
        folder: &str,
    ) -> Result<Vec<String>> {
        let recorded = self.print(conn, model, table)?;
        if recorded.as_deref() == Some(self.folder(conn, folder)?.digest.as_str()) {
            return Ok(Vec::new());
        }
        let known = recorded.clone().map(|r| (folder.to_owned(), r));
        if let Some(paths) = known.as_ref().and_then(|k| self.differences.get(k)) {
            return Ok(paths.clone());
        }
        let (m, f) = (literal(model), literal(folder));
        let sql = format!(
            "SELECT DISTINCT path FROM (
                 (SELECT path, size, mtime_ns FROM {table} WHERE model = {m}
                  EXCEPT SELECT path, size, mtime_ns FROM {NOW} WHERE folder = {f})
                 UNION ALL
                 (SELECT path, size, mtime_ns FROM {NOW} WHERE folder = {f}
                  EXCEPT SELECT path, size, mtime_ns FROM {table} WHERE model = {m}))"
        );
        let paths: Vec<String> = db::query_rows(conn, &sql, [], |r| r.get(0))?;
        if let Some(k) = known {
            self.differences.insert(k, paths.clone());
        }
        Ok(paths)
    }

    /// Makes the files `model` recorded in `table` those of `folder` now, writing only the
    /// difference (a refresh changes a few files of a lake of thousands), when the refresh
    /// writes its records ([`LakeState::write_records`]).
    fn record(&mut self, conn: &Connection, table: &str, model: &str, folder: &str) -> Result<()> {
        let digest = self.folder(conn, folder)?.digest.clone();
        let recorded = self.print(conn, model, table)?;
        if recorded.as_deref() == Some(digest.as_str()) {
            return Ok(());
        }
        let paths = self.differences(conn, table, model, folder)?;
        let key = (
            table.to_owned(),
            folder.to_owned(),
            recorded,
            digest.clone(),
        );
        match self.records.iter_mut().find(|r| r.key == key) {
            Some(same) => same.models.push(model.to_owned()),
            None => self.records.push(Record {
                key,
                models: vec![model.to_owned()],
                paths,
            }),
        }
        if let Some(prints) = self.prints.as_mut() {
            prints.insert((model.to_owned(), table.to_owned()), digest);
        }
        Ok(())
    }

    /// Writes the records of the models' files made since the last call, one statement for
    /// all the models that had recorded the same files (the models of a dataset, in an
    /// incremental refresh, each take the same new files). In the refresh's transaction,
    /// before its commit.
    pub fn write_records(&mut self, conn: &Connection) -> Result<()> {
        for Record {
            key: (table, folder, _, digest),
            models,
            paths,
        } in std::mem::take(&mut self.records)
        {
            let f = literal(&folder);
            let now = format!("SELECT path, size, mtime_ns FROM {NOW} WHERE folder = {f}");
            let names: Vec<String> = models.iter().map(|m| literal(m)).collect();
            let prints: Vec<String> = names
                .iter()
                .map(|m| format!("({m}, {}, {})", literal(&table), literal(&digest)))
                .collect();
            let prints = format!(
                "INSERT OR REPLACE INTO {PRINTS} VALUES {};",
                prints.join(", ")
            );
            let replace = match paths.len() {
                0 => String::new(),
                // A few paths that differ name the rows to replace.
                1..=NAMED_PATHS => {
                    let paths: Vec<String> = paths.iter().map(|p| literal(p)).collect();
                    let (paths, models) = (paths.join(", "), names.join(", "));
                    format!(
                        "DELETE FROM {table} WHERE model IN ({models}) AND path IN ({paths});
                         INSERT INTO {table} SELECT m.model, n.* FROM (VALUES ({})) m(model)
                             CROSS JOIN ({now}) n WHERE n.path IN ({paths});",
                        names.join("), (")
                    )
                }
                // Many (a first build) are compared in DuckDB instead of spelled out, as
                // DuckDB parses a long list slowly.
                _ => names
                    .iter()
                    .map(|m| {
                        format!(
                            "DELETE FROM {table} WHERE model = {m} AND (path, size, mtime_ns) NOT IN ({now});
                             INSERT INTO {table} SELECT {m}, * FROM ({now}
                                 EXCEPT SELECT path, size, mtime_ns FROM {table} WHERE model = {m});"
                        )
                    })
                    .collect(),
            };
            db::execute(conn, &format!("{replace}\n{prints}"))?;
        }
        Ok(())
    }
}

/// Models whose recorded files (`table`, of `folder`) become those of `folder` now.
struct Record {
    /// (table, folder, the digest they had recorded, the folder's digest now): models alike
    /// differ by the same paths.
    key: (String, String, Option<String>, String),
    models: Vec<String>,
    paths: Vec<String>,
}

/// The digest of a list of files (sorted), as recorded in `PRINTS`.
fn digest<'s>(stamps: impl IntoIterator<Item = &'s FileStamp>) -> String {
    let mut text = String::new();
    for s in stamps {
        text.push_str(&format!("{}\0{}\0{}\n", s.path, s.size, s.mtime_ns));
    }
    super::migrations::sha256_hex(text.as_bytes())
}

/// Adds `stamps`, the files of `folder`, to the refresh's listing of the lake in DuckDB.
fn append_now(conn: &Connection, folder: &str, stamps: &[FileStamp]) -> Result<()> {
    let mut appender = conn.appender_to_catalog_and_db("micro_wh_lake_files", "temp", "main")?;
    for s in stamps {
        appender.append_row(params![folder, s.path, s.size, s.mtime_ns])?;
    }
    appender.flush()?;
    Ok(())
}

/// The value in `slot`, read by `read` on first use.
fn load<T>(slot: &mut Option<T>, read: impl FnOnce() -> Result<T>) -> Result<&mut T> {
    if slot.is_none() {
        *slot = Some(read()?);
    }
    Ok(slot.as_mut().expect("just filled"))
}

/// model → checksum, of a table of those two columns (`STATE`, `TESTS`).
fn checksums(conn: &Connection, table: &str) -> Result<BTreeMap<String, String>> {
    let rows: Vec<[String; 2]> = rows_of(conn, &format!("SELECT model, checksum FROM {table}"))?;
    Ok(rows.into_iter().map(|[m, c]| (m, c)).collect())
}

/// The rows of a query of `N` text columns.
fn rows_of<const N: usize>(conn: &Connection, sql: &str) -> Result<Vec<[String; N]>> {
    Ok(db::query_rows(conn, sql, [], |r| {
        let row: Vec<String> = (0..N).map(|i| r.get(i)).collect::<duckdb::Result<_>>()?;
        Ok(row.try_into().expect("N columns read"))
    })?)
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
                // The digest of the files recorded now: equal to the folder's when the model
                // had consumed all of it, so the next refresh compares no stamp.
                conn.execute(
                    &format!("INSERT OR REPLACE INTO {PRINTS} VALUES (?, '{FILES}', ?)"),
                    params![model.name, digest(&stamps)],
                )?;
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

/// Whether the refresh keeps `model`'s row count per key: a model over the lake (a view or a
/// lake model following its partitions) would otherwise be read whole for its row count and
/// its whole-model tests on every refresh, a cost that grows with the lake.
pub fn keeps_counts(model: &Model) -> bool {
    model.incremental.is_some()
        && matches!(model.materialized, Materialized::View | Materialized::Lake)
}

/// What the refresh keeps per partition key of a model over the lake (see [`keeps_counts`]).
pub enum Kept<'a> {
    /// Its row count.
    Rows,
    /// The hash of each row's values of these columns, for its `unique` test on them.
    Hashes(&'a [String]),
}

/// Brings what the refresh keeps of `model` up to date with `mode`: the keys of the changed
/// partitions counted (hashed) again, from `changed`, their rows, when the caller has them
/// at hand, or every key when the model was rebuilt (or never counted).
pub fn update_kept(
    conn: &Connection,
    model: &Model,
    kept: Kept<'_>,
    mode: &Mode,
    changed: Option<&str>,
) -> Result<()> {
    let spec = model.incremental.as_ref().expect("an incremental model");
    let keys = spec.keys();
    let model_keys = row_text(keys);
    let name = literal(&model.name);
    let table = ident(&model.name);
    // (the table, its rows of this model, the marker row, what rows of the model add, how
    // they are grouped)
    let (store, whose, marker, select, group) = match kept {
        Kept::Rows => (
            COUNTS,
            format!("model = {name}"),
            format!("{name}, NULL, 0"),
            format!("{name}, {model_keys}, count(*)"),
            " GROUP BY ALL",
        ),
        Kept::Hashes(columns) => {
            let tag = hashes_tag(columns);
            let values: Vec<String> = columns.iter().map(|c| ident(c)).collect();
            (
                KEYS,
                format!("model = {name} AND columns = {tag}"),
                format!("{name}, {tag}, NULL, NULL"),
                format!("{name}, {tag}, {model_keys}, hash({})", values.join(", ")),
                "",
            )
        }
    };
    let counted: i64 = db::query_one(conn, &format!("SELECT count(*) FROM {store} WHERE {whose}"))?;
    let sql = match mode {
        Mode::Unchanged if counted > 0 => return Ok(()),
        Mode::Incremental(partitions) if counted > 0 => {
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
                folder_texts(&model_types(conn, &model.name)?, &rows, keys, partitions)?.join(", ")
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
                "DELETE FROM {store} WHERE {whose} AND key IN ({gone});
                 INSERT INTO {store} SELECT {select} FROM {rows} AS {table}{group};"
            )
        }
        // The NULL-key row marks the model as counted, however few rows it has.
        _ => format!(
            "DELETE FROM {store} WHERE {whose};
             INSERT INTO {store} SELECT {marker};
             INSERT INTO {store} SELECT {select} FROM {table}{group};"
        ),
    };
    db::execute(conn, &sql)?;
    Ok(())
}

/// Names the hashes of `columns`, as SQL, with the version of the DuckDB whose `hash` made
/// them (the refresh's own): another version may hash the same values differently, so its
/// binary rebuilds them.
fn hashes_tag(columns: &[String]) -> String {
    format!(
        "({} || (SELECT library_version FROM pragma_version()))",
        literal(&format!("{} @ DuckDB ", columns.join(", ")))
    )
}

/// Drops the kept hashes of `model` but those of `unique` (the columns of its `unique` tests
/// now, from this DuckDB): a test removed, or hashes of another version.
pub fn drop_other_hashes(conn: &Connection, model: &Model, unique: &[&[String]]) -> Result<()> {
    let tags: Vec<String> = unique.iter().map(|c| hashes_tag(c)).collect();
    let keep = match tags.is_empty() {
        true => String::new(),
        false => format!(" AND columns NOT IN ({})", tags.join(", ")),
    };
    db::execute(
        conn,
        &format!(
            "DELETE FROM {KEYS} WHERE model = {}{keep}",
            literal(&model.name)
        ),
    )?;
    Ok(())
}

/// Rows sharing the kept hash of their `columns` with another row of `model`, as SQL: zero
/// when the `unique` test on them holds (equal values hash alike); otherwise the test's own
/// query, over the model, says which are true duplicates and which hash collisions. With
/// `changed` (the rows of the changed partitions, the rest having passed the same test
/// before) only the hashes of those rows are looked up.
pub fn kept_duplicates(model: &str, columns: &[String], changed: Option<&str>) -> String {
    let values: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    let among = match changed {
        Some(rows) => format!(
            " AND h IN (SELECT hash({}) FROM {rows} AS {})",
            values.join(", "),
            ident(model)
        ),
        None => String::new(),
    };
    format!(
        "SELECT coalesce(sum(n), 0)::BIGINT FROM (SELECT count(*) AS n FROM {KEYS} \
         WHERE model = {} AND columns = {} AND key IS NOT NULL{among} GROUP BY h HAVING count(*) > 1)",
        literal(model),
        hashes_tag(columns)
    )
}

/// The kept row count of `model`, as SQL.
pub fn kept_count(model: &str) -> String {
    format!(
        "(SELECT coalesce(sum(rows), 0)::BIGINT FROM {COUNTS} WHERE model = {})",
        literal(model)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_values_are_compared_as_duckdb_writes_them() {
        assert_eq!(
            canonical_value("2024-1-5", "DATE").as_deref(),
            Some("2024-01-05")
        );
        assert_eq!(
            canonical_value("2024-01-05", "DATE").as_deref(),
            Some("2024-01-05")
        );
        assert_eq!(canonical_value("007", "BIGINT").as_deref(), Some("7"));
        assert_eq!(canonical_value("+7", "INTEGER").as_deref(), Some("7"));
        assert_eq!(canonical_value("-3", "INTEGER").as_deref(), Some("-3"));
        assert_eq!(
            canonical_value("2024-1-5", "VARCHAR"),
            None,
            "text is its own value"
        );
        assert_eq!(
            canonical_value("soon", "DATE"),
            None,
            "left to DuckDB's own error"
        );
    }
}
