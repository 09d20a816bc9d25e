//! Opening DuckDB the way micro-wh needs it, and running SQL whose errors carry that SQL.

use std::path::Path;

use anyhow::Context;
use duckdb::{Config as DuckConfig, Connection};

use crate::config::Config;
use crate::error::{Error, Result};

/// An in-memory engine (used by the lake writer and for ad hoc SQL over files).
pub fn open_in_memory(config: &Config, threads: usize) -> Result<Connection> {
    let conn = Connection::open_in_memory_with_flags(base_config(config, threads)?)
        .context("cannot start an in-memory DuckDB")?;
    Ok(conn)
}

/// The warehouse file. A new file is written in the configured storage format so that
/// older DuckDB CLIs (the PyPI `duckdb-cli`) can open it.
pub fn open_warehouse(path: &Path, config: &Config, threads: usize) -> Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let flags = || -> Result<DuckConfig> {
        let mut flags = base_config(config, threads)?;
        let version = &config.engine.storage_compatibility_version;
        if version != "latest" {
            flags = flags
                .with("storage_compatibility_version", version)
                .with_context(|| {
                    format!(
                        "storage_compatibility_version `{version}` is not accepted by this DuckDB"
                    )
                })?;
        }
        Ok(flags)
    };
    // Held by another process: waited for as the lake is (`--lock-timeout`).
    let timeout = config.lake.lock_timeout();
    let started = std::time::Instant::now();
    loop {
        match open_file(path, flags()?) {
            Err(e)
                if started.elapsed() < timeout
                    && matches!(e.downcast_ref(), Some(Error::WarehouseBusy { .. })) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// Opens a database file; another process holding it is said plainly.
fn open_file(path: &Path, flags: DuckConfig) -> Result<Connection> {
    Connection::open_with_flags(path, flags).map_err(|e| {
        if e.to_string().contains("Could not set lock on file") {
            Error::WarehouseBusy {
                path: path.to_owned(),
            }
            .into()
        } else {
            anyhow::Error::new(e).context(format!("cannot open {}", path.display()))
        }
    })
}

fn base_config(config: &Config, threads: usize) -> Result<DuckConfig> {
    let flags = DuckConfig::default()
        .threads(threads as i64)?
        .max_memory(&config.engine.memory_limit)
        .with_context(|| {
            format!(
                "engine.memory_limit `{}` is not accepted",
                config.engine.memory_limit
            )
        })?
        // Nothing may download at run time: parquet and json are compiled in.
        .enable_autoload_extension(false)?;
    Ok(flags)
}

/// Runs `run` on `sql`, logging how long it took at debug level (`-vv`, the statement's
/// first 200 characters; `-vvv`, all of it): where a refresh's time goes, statement by
/// statement.
fn timed<T>(sql: &str, run: impl FnOnce() -> T) -> T {
    let started = std::time::Instant::now();
    let out = run();
    if tracing::enabled!(tracing::Level::DEBUG) {
        let shown = match tracing::enabled!(tracing::Level::TRACE) {
            true => usize::MAX,
            false => 200,
        };
        tracing::debug!(
            "{:>8.1} ms  {}",
            started.elapsed().as_secs_f64() * 1e3,
            sql.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .take(shown)
                .collect::<String>()
        );
    }
    out
}

/// Runs one or more statements; an error carries the SQL it came from.
pub fn execute(conn: &Connection, sql: &str) -> Result<(), Error> {
    timed(sql, || conn.execute_batch(sql)).map_err(|cause| Error::Sql {
        sql: sql.to_owned(),
        cause,
    })
}

/// What each name of the open database's main schema is: `VIEW` or `BASE TABLE` (read from
/// the catalog functions: `information_schema` costs a few milliseconds a lookup).
pub fn relation_kinds(
    conn: &Connection,
) -> Result<std::collections::BTreeMap<String, String>, Error> {
    let sql = "SELECT view_name, 'VIEW' FROM duckdb_views() WHERE database_name = current_database() AND schema_name = 'main'
         UNION ALL
         SELECT table_name, 'BASE TABLE' FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main'";
    let rows = query_rows(conn, sql, [], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.into_iter().collect())
}

/// Runs a query, reading each row with `read`; logged like [`execute`], and an error carries
/// the SQL.
pub fn query_rows<T>(
    conn: &Connection,
    sql: &str,
    params: impl duckdb::Params,
    read: impl FnMut(&duckdb::Row<'_>) -> duckdb::Result<T>,
) -> Result<Vec<T>, Error> {
    timed(sql, || -> duckdb::Result<Vec<T>> {
        let mut stmt = conn.prepare(sql)?;
        let rows = stmt.query_map(params, read)?;
        rows.collect()
    })
    .map_err(|cause| Error::Sql {
        sql: sql.to_owned(),
        cause,
    })
}

/// Prepares a statement; an error carries the SQL.
pub fn prepare<'c>(conn: &'c Connection, sql: &str) -> Result<duckdb::Statement<'c>, Error> {
    conn.prepare(sql).map_err(|cause| Error::Sql {
        sql: sql.to_owned(),
        cause,
    })
}

/// Opens an existing database file without taking the write lock (for `status`).
pub fn open_read_only(path: &Path) -> Result<Connection> {
    let flags = DuckConfig::default()
        .access_mode(duckdb::AccessMode::ReadOnly)?
        .enable_autoload_extension(false)?;
    open_file(path, flags)
}

/// Runs a query returning one value.
pub fn query_one<T: duckdb::types::FromSql>(conn: &Connection, sql: &str) -> Result<T, Error> {
    query_row(conn, sql, |row| row.get(0))
}

/// Runs a query returning one row, read by `read`.
pub fn query_row<T>(
    conn: &Connection,
    sql: &str,
    read: impl FnOnce(&duckdb::Row<'_>) -> duckdb::Result<T>,
) -> Result<T, Error> {
    timed(sql, || conn.query_row(sql, [], read)).map_err(|cause| Error::Sql {
        sql: sql.to_owned(),
        cause,
    })
}

/// The current UTC time as an SQL TIMESTAMP literal. (DuckDB's own clock functions
/// return TIMESTAMPTZ, whose conversion needs the ICU extension, which is not built in.)
pub fn utc_now() -> String {
    format!(
        "TIMESTAMP '{}'",
        chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.6f")
    )
}

/// `'text'` as an SQL string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `"name"` as an SQL identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A path as an SQL string literal, with forward slashes so the SQL reads the same everywhere.
pub fn path_literal(path: &Path) -> String {
    literal(&path.to_string_lossy().replace('\\', "/"))
}

/// The (name, type) of each column `select` returns, in order, without running it.
pub fn describe(conn: &Connection, select: &str) -> Result<Vec<(String, String)>> {
    let describe = format!("DESCRIBE {select}");
    timed(&describe, || -> Result<Vec<(String, String)>> {
        let mut stmt = prepare(conn, &describe)?;
        let columns = stmt
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(|cause| Error::Sql {
                sql: describe.clone(),
                cause,
            })?
            .collect::<Result<_, _>>()?;
        Ok(columns)
    })
}

/// The Spark SQL-readable type for a DuckDB column type, when the type has to change:
/// Spark has no 128-bit or unsigned integers, refuses nanosecond timestamps, and reads the
/// Parquet JSON annotation only in some versions. Values are kept exactly (DuckDB itself
/// would write HUGEINT as a lossy DOUBLE).
fn portable_type(duckdb_type: &str) -> Option<&'static str> {
    Some(match duckdb_type {
        // Spelled as DESCRIBE spells them, like the others: `portable_columns` returns them.
        "HUGEINT" | "UHUGEINT" => "DECIMAL(38,0)",
        "UBIGINT" => "DECIMAL(20,0)",
        "UINTEGER" => "BIGINT",
        "USMALLINT" => "INTEGER",
        "UTINYINT" => "SMALLINT",
        "TIMESTAMP_NS" => "TIMESTAMP",
        "JSON" => "VARCHAR",
        _ => return None,
    })
}

/// Whether a column of this DuckDB type is written as it is by [`portable_select`].
pub fn is_portable(duckdb_type: &str) -> bool {
    portable_type(&duckdb_type.trim().to_ascii_uppercase()).is_none()
}

/// `select` wrapped so the Parquet written from it reads in Spark and other engines with the
/// same values: top-level columns of a type Spark lacks are cast (see `portable_type`; a
/// HUGEINT beyond 38 digits fails the write rather than lose digits);
/// nested types are written as they are. Unchanged when no column needs a cast.
pub fn portable_select(conn: &Connection, select: &str) -> Result<String> {
    Ok(portable_over(select, &describe(conn, select)?))
}

/// [`portable_select`] of a `select` whose columns (name, type) are known.
pub fn portable_over(select: &str, columns: &[(String, String)]) -> String {
    let select = select.trim_end().trim_end_matches(';');
    if columns.iter().all(|(_, ty)| portable_type(ty).is_none()) {
        return select.to_owned();
    }
    let list: Vec<String> = columns
        .iter()
        .map(|(name, ty)| match portable_type(ty) {
            Some(to) => format!("CAST({col} AS {to}) AS {col}", col = ident(name)),
            None => ident(name),
        })
        .collect();
    // The line break ends a trailing `--` comment of `select`.
    format!("SELECT {} FROM ({select}\n)", list.join(", "))
}

/// The columns [`portable_over`] returns from a select of these columns.
pub fn portable_columns(columns: Vec<(String, String)>) -> Vec<(String, String)> {
    columns
        .into_iter()
        .map(|(name, ty)| {
            let ty = portable_type(&ty).map_or(ty, str::to_owned);
            (name, ty)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_select_casts_what_spark_cannot_read_and_keeps_values() {
        let conn = Connection::open_in_memory().unwrap();
        let select = "SELECT sum(x) AS s, CAST(7 AS UINTEGER) AS u, \
                      CAST('2024-01-02 03:04:05.123456' AS TIMESTAMP_NS) AS t, \
                      CAST('{\"a\": 1}' AS JSON) AS j, 'x' AS v \
                      FROM (VALUES (123456789012345678901234567890::HUGEINT)) t(x)";
        let portable = portable_select(&conn, select).unwrap();
        let types: Vec<String> = conn
            .prepare(&format!("SELECT column_type FROM (DESCRIBE {portable})"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            types,
            ["DECIMAL(38,0)", "BIGINT", "TIMESTAMP", "VARCHAR", "VARCHAR"]
        );
        let told: Vec<String> = portable_columns(describe(&conn, select).unwrap())
            .into_iter()
            .map(|(_, ty)| ty)
            .collect();
        assert_eq!(
            told, types,
            "the columns portable_columns tells are those written"
        );
        let s: String = query_one(
            &conn,
            &format!("SELECT CAST(s AS VARCHAR) || ' ' || CAST(t AS VARCHAR) || ' ' || j FROM ({portable})"),
        )
        .unwrap();
        assert_eq!(
            s,
            "123456789012345678901234567890 2024-01-02 03:04:05.123456 {\"a\": 1}"
        );
        let plain = "SELECT 1 AS a";
        assert_eq!(portable_select(&conn, plain).unwrap(), plain);
    }
}
