//! SQLite databases, read with the bundled SQLite (DuckDB cannot load its sqlite extension
//! here): each table lands in `<lake>/<source>/<table>/`. SQLite lets any value sit in any
//! column, so values travel as text and DuckDB casts them to the declared type; a value that
//! does not fit is quarantined, never mis-typed.

use std::path::Path;

use anyhow::{bail, Context};
use rusqlite::types::ValueRef;
use rusqlite::{Connection as Sqlite3, OpenFlags};

use super::chunks::{self, Shape};
use super::validate::Column;
use super::{Format, LoadJob, Loaded};
use crate::config::SourceConfig;
use crate::error::Result;

pub struct Sqlite;

fn open(file: &Path) -> Result<Sqlite3> {
    let db = Sqlite3::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {} as a SQLite database", file.display()))?;
    // A file that is not a database only fails on the first read.
    db.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .with_context(|| format!("{} is not a SQLite database", file.display()))?;
    Ok(db)
}

/// The DuckDB type for a SQLite declared type, by SQLite's own affinity rules, keeping the
/// precision of DECIMAL/NUMERIC(p, s) and the meaning of DATE/TIMESTAMP/BOOLEAN names.
pub fn duckdb_type(declared: &str) -> String {
    let upper = declared.trim().to_ascii_uppercase();
    if upper.contains("INT") {
        "BIGINT".into()
    } else if upper.contains("CHAR") || upper.contains("CLOB") || upper.contains("TEXT") {
        "VARCHAR".into()
    } else if upper.contains("BLOB") {
        "BLOB".into()
    } else if upper.contains("REAL") || upper.contains("FLOA") || upper.contains("DOUB") {
        "DOUBLE".into()
    } else if upper.starts_with("DECIMAL") || upper.starts_with("NUMERIC") {
        match upper.find('(') {
            Some(open) => format!("DECIMAL{}", &upper[open..]),
            None => "DOUBLE".into(),
        }
    } else if upper.starts_with("BOOL") {
        "BOOLEAN".into()
    } else if upper == "DATE" {
        "DATE".into()
    } else if upper.starts_with("DATETIME") || upper.starts_with("TIMESTAMP") {
        "TIMESTAMP".into()
    } else {
        // No declared type (or NUMERIC affinity without precision): keep the text.
        "VARCHAR".into()
    }
}

impl Format for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn check_config(&self, source: &SourceConfig) -> Result<()> {
        for (key, set) in [
            ("columns", source.columns.is_some()),
            ("checks", !source.checks.is_empty()),
            ("key", !source.key.is_empty()),
            ("partition_by", !source.partition_by.0.is_empty()),
            ("file_name", source.file_name.is_some()),
        ] {
            if set {
                bail!("{key}: not supported for sqlite sources (each table keeps its declared schema); select and shape the tables in silver SQL");
            }
        }
        Ok(())
    }

    fn tables(&self, file: &Path, source: &SourceConfig) -> Result<Vec<String>> {
        let db = open(file)?;
        let mut stmt = db.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )?;
        let all: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        let Some(wanted) = &source.tables else {
            return Ok(all);
        };
        for t in wanted {
            if !all.contains(t) {
                bail!(
                    "tables: `{t}` is not a table of {} (tables: {})",
                    file.display(),
                    all.join(", ")
                );
            }
        }
        Ok(wanted.clone())
    }

    fn load(&self, job: &LoadJob<'_>) -> Result<Loaded> {
        let db = open(job.file)?;
        let quoted = format!("\"{}\"", job.table.replace('"', "\"\""));
        let columns: Vec<Column> = {
            let mut info = db.prepare(&format!("PRAGMA table_info({quoted})"))?;
            let columns = info
                .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?
                .map(|r| r.map(|(name, ty)| Column::new(&name, &duckdb_type(&ty))))
                .collect::<std::result::Result<_, _>>()?;
            columns
        };
        drop(db);
        let file = job.file.to_owned();
        let types: Vec<(String, String)> = columns
            .iter()
            .map(|c| (c.name.clone(), c.ty.clone()))
            .collect();
        chunks::load(job, columns, Shape::Columns, move |rows| {
            // Opened on the reader's thread: a SQLite connection stays on one thread.
            let db = open(&file)?;
            let mut stmt = db.prepare(&format!("SELECT * FROM {quoted}"))?;
            let mut cursor = stmt.query([])?;
            let mut line = 0u64;
            let mut fields: Vec<Option<String>> = vec![None; types.len()];
            while let Some(row) = cursor.next()? {
                line += 1;
                let mut misfit = None;
                for (i, (name, ty)) in types.iter().enumerate() {
                    let slot = &mut fields[i];
                    match row.get_ref(i)? {
                        ValueRef::Null => *slot = None,
                        ValueRef::Integer(n) => set(slot, format_args!("{n}")),
                        ValueRef::Real(f) => {
                            // DuckDB would round 1.5 into a BIGINT; SQLite kept a fraction there.
                            if ty == "BIGINT" && f.fract() != 0.0 {
                                misfit.get_or_insert_with(|| {
                                    format!("column {name}: {f} is not a valid BIGINT")
                                });
                            }
                            set(slot, format_args!("{f}"));
                        }
                        ValueRef::Text(t) => {
                            set(slot, format_args!("{}", String::from_utf8_lossy(t)))
                        }
                        ValueRef::Blob(b) => {
                            if ty != "BLOB" {
                                misfit.get_or_insert_with(|| {
                                    format!(
                                        "column {name}: a {}-byte BLOB is not a valid {ty}",
                                        b.len()
                                    )
                                });
                            }
                            let hex: String = b.iter().map(|x| format!("\\x{x:02X}")).collect();
                            *slot = Some(hex);
                        }
                    }
                }
                match misfit {
                    Some(reason) => {
                        let raw: serde_json::Map<String, serde_json::Value> = types
                            .iter()
                            .zip(&fields)
                            .map(|((n, _), v)| {
                                (
                                    n.clone(),
                                    v.clone().map_or(serde_json::Value::Null, Into::into),
                                )
                            })
                            .collect();
                        rows.reject(line, &serde_json::Value::Object(raw).to_string(), &reason)?;
                    }
                    None => rows.push(line, None, &fields)?,
                }
            }
            Ok(())
        })
    }
}

/// Writes `value` into the slot's string, reusing its allocation.
fn set(slot: &mut Option<String>, value: std::fmt::Arguments<'_>) {
    use std::fmt::Write;
    let s = slot.get_or_insert_with(String::new);
    s.clear();
    let _ = s.write_fmt(value);
}

#[cfg(test)]
mod tests {
    use super::duckdb_type;

    #[test]
    fn affinity_rules() {
        for (declared, expected) in [
            ("INTEGER", "BIGINT"),
            ("NVARCHAR(40)", "VARCHAR"),
            ("NUMERIC(10,2)", "DECIMAL(10,2)"),
            ("REAL", "DOUBLE"),
            ("DATETIME", "TIMESTAMP"),
            ("", "VARCHAR"),
            ("BLOB", "BLOB"),
        ] {
            assert_eq!(duckdb_type(declared), expected, "{declared}");
        }
    }
}
