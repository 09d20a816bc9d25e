//! SQLite databases, read with the bundled SQLite (DuckDB cannot load its sqlite extension
//! here): each table lands in `<lake>/<source>/<table>/`. SQLite lets any value sit in any
//! column, so values travel as text and DuckDB casts them to the declared type; a value that
//! does not fit is quarantined, never mis-typed.

use std::path::Path;

use anyhow::{bail, Context};
use rusqlite::types::ValueRef;
use rusqlite::{Connection as Sqlite3, OpenFlags};

use super::chunks::ChunkLoader;
use super::validate::Column;
use super::{Format, LoadJob, Loaded};
use crate::config::SourceConfig;
use crate::error::Result;

pub struct Sqlite;

fn open(file: &Path) -> Result<Sqlite3> {
    let db = Sqlite3::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_context(|| format!("cannot open {} as a SQLite database", file.display()))?;
    // A file that is not a database only fails on the first read.
    db.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))
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
                bail!("tables: `{t}` is not a table of {} (tables: {})", file.display(), all.join(", "));
            }
        }
        Ok(wanted.clone())
    }

    fn load(&self, job: &LoadJob<'_>) -> Result<Loaded> {
        let db = open(job.file)?;
        let quoted = format!("\"{}\"", job.table.replace('"', "\"\""));
        let mut info = db.prepare(&format!("PRAGMA table_info({quoted})"))?;
        let columns: Vec<Column> = info
            .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?
            .map(|r| r.map(|(name, ty)| Column::new(&name, &duckdb_type(&ty))))
            .collect::<std::result::Result<_, _>>()?;
        let mut loader = ChunkLoader::new(job, columns.clone())?;
        let mut stmt = db.prepare(&format!("SELECT * FROM {quoted}"))?;
        let mut rows = stmt.query([])?;
        let mut line = 0u64;
        let mut fields: Vec<Option<String>> = Vec::with_capacity(columns.len());
        let mut raw = serde_json::Map::new();
        while let Some(row) = rows.next()? {
            line += 1;
            fields.clear();
            raw.clear();
            let mut misfit = None;
            for (i, col) in columns.iter().enumerate() {
                let value = row.get_ref(i)?;
                let (text, json) = match value {
                    ValueRef::Null => (None, serde_json::Value::Null),
                    ValueRef::Integer(n) => (Some(n.to_string()), n.into()),
                    ValueRef::Real(f) => {
                        // DuckDB would round 1.5 into a BIGINT; SQLite kept a fraction there.
                        if col.ty == "BIGINT" && f.fract() != 0.0 {
                            misfit.get_or_insert(format!("column {}: {f} is not a valid BIGINT", col.name));
                        }
                        (Some(f.to_string()), serde_json::json!(f))
                    }
                    ValueRef::Text(t) => {
                        let s = String::from_utf8_lossy(t).into_owned();
                        (Some(s.clone()), s.into())
                    }
                    ValueRef::Blob(b) => {
                        let hex: String = b.iter().map(|x| format!("\\x{x:02X}")).collect();
                        if col.ty != "BLOB" {
                            misfit.get_or_insert(format!("column {}: a {}-byte BLOB is not a valid {}", col.name, b.len(), col.ty));
                        }
                        (Some(hex.clone()), hex.into())
                    }
                };
                fields.push(text);
                raw.insert(col.name.clone(), json);
            }
            let raw_text = serde_json::Value::Object(raw.clone()).to_string();
            match misfit {
                Some(reason) => loader.reject(line, &raw_text, &reason)?,
                None => loader.push(line, &raw_text, &fields)?,
            }
        }
        loader.finish()
    }
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
