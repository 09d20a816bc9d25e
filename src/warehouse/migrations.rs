//! Versioned SQL files (`V001__name.sql`, applied once, in order) and repeatable ones
//! (`R__name.sql`, re-applied when they change), recorded with SHA-256 checksums.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use duckdb::{params, Connection};
use sha2::{Digest, Sha256};

use super::template::Vars;
use crate::db;
use crate::error::{Error, Result};

pub const HISTORY_TABLE: &str = "micro_wh_schema_history";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Versioned(u32),
    Repeatable,
}

#[derive(Debug, Clone)]
pub struct Migration {
    pub kind: Kind,
    pub name: String,
    pub path: PathBuf,
    /// The SQL to run, placeholders filled.
    pub sql: String,
    /// SHA-256 of the file for versioned files; of the rendered SQL for repeatable ones,
    /// so that a view is re-created when a setting it embeds (the lake path) changes.
    pub checksum: String,
}

impl Migration {
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Parses `V<digits>__<name>.sql` or `R__<name>.sql`.
pub fn parse_file_name(file_name: &str) -> Option<(Kind, String)> {
    let stem = file_name.strip_suffix(".sql")?;
    let (prefix, name) = stem.split_once("__")?;
    let valid_name =
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return None;
    }
    let kind = match prefix {
        "R" => Kind::Repeatable,
        _ => {
            let digits = prefix.strip_prefix('V')?;
            if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            Kind::Versioned(digits.parse().ok()?)
        }
    };
    Some((kind, name.to_owned()))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads the migrations in `sql_dir` (top level only; sub-directories hold models).
/// A file whose name does not fit the pattern is an error, not silently skipped.
pub fn discover(sql_dir: &Path, vars: &Vars) -> Result<Vec<Migration>> {
    let entries = std::fs::read_dir(sql_dir)
        .with_context(|| format!("cannot read SQL directory {}", sql_dir.display()))?;
    let mut migrations = Vec::new();
    let mut versions: BTreeMap<u32, PathBuf> = BTreeMap::new();
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_dir() || file_name.starts_with('.') {
            continue;
        }
        let (kind, name) = parse_file_name(&file_name)
            .ok_or_else(|| Error::BadMigrationName { file: path.clone() })?;
        if let Kind::Versioned(v) = kind {
            if let Some(other) = versions.insert(v, path.clone()) {
                return Err(Error::DuplicateMigrationVersion {
                    file: path,
                    version: v,
                    other,
                }
                .into());
            }
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let sql = vars.render(&text, &path)?;
        let checksum = match kind {
            Kind::Versioned(_) => sha256_hex(text.as_bytes()),
            Kind::Repeatable => sha256_hex(sql.as_bytes()),
        };
        migrations.push(Migration {
            kind,
            name,
            path,
            sql,
            checksum,
        });
    }
    migrations.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    Ok(migrations)
}

#[derive(Debug, Clone)]
pub struct AppliedMigration {
    pub file: String,
    pub duration_ms: i64,
}

pub fn ensure_history_table(conn: &Connection) -> Result<()> {
    db::execute(
        conn,
        &format!(
            "CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (
                installed_rank INTEGER NOT NULL,
                version INTEGER,
                kind VARCHAR NOT NULL,
                name VARCHAR NOT NULL,
                file VARCHAR NOT NULL,
                checksum VARCHAR NOT NULL,
                applied_at TIMESTAMP NOT NULL,
                duration_ms BIGINT NOT NULL
            )"
        ),
    )?;
    Ok(())
}

/// Applies what is pending: checks every applied versioned file for drift first (so a
/// drifted file stops the run before anything changes), then new versioned files in
/// version order, then repeatable files whose checksum changed.
/// An applied versioned file that is gone from the SQL directory is an error (the warehouse
/// no longer matches the files that describe it) unless `allow_missing`, as in refinery.
pub fn apply(
    conn: &Connection,
    migrations: &[Migration],
    allow_missing: bool,
) -> Result<Vec<AppliedMigration>> {
    ensure_history_table(conn)?;
    let mut applied_versions: BTreeMap<u32, (String, String)> = BTreeMap::new();
    let mut repeatable_checksums: BTreeMap<String, String> = BTreeMap::new();
    {
        let mut stmt = conn.prepare(&format!(
            "SELECT version, kind, name, file, checksum FROM {HISTORY_TABLE} ORDER BY installed_rank"
        ))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let (version, kind, name, file, checksum): (
                Option<i64>,
                String,
                String,
                String,
                String,
            ) = row.try_into()?;
            match (kind.as_str(), version) {
                ("versioned", Some(v)) => {
                    applied_versions.insert(v as u32, (file, checksum));
                }
                _ => {
                    repeatable_checksums.insert(name, checksum);
                }
            }
        }
    }

    for m in migrations {
        if let Kind::Versioned(v) = m.kind {
            if let Some((_, applied)) = applied_versions.get(&v) {
                if *applied != m.checksum {
                    return Err(Error::MigrationDrift {
                        file: m.path.clone(),
                        applied: applied.clone(),
                        current: m.checksum.clone(),
                    }
                    .into());
                }
            }
        }
    }
    let present: Vec<u32> = migrations
        .iter()
        .filter_map(|m| match m.kind {
            Kind::Versioned(v) => Some(v),
            Kind::Repeatable => None,
        })
        .collect();
    for (v, (file, _)) in &applied_versions {
        if !present.contains(v) {
            if !allow_missing {
                return Err(Error::MissingMigration {
                    file: file.clone(),
                    version: *v,
                }
                .into());
            }
            tracing::warn!(
                "applied migration {file} (version {v}) is no longer in the SQL directory (--allow-missing)"
            );
        }
    }
    let newest_applied = applied_versions.keys().next_back().copied();

    let mut done = Vec::new();
    for m in migrations {
        let pending = match m.kind {
            Kind::Versioned(v) if applied_versions.contains_key(&v) => false,
            Kind::Versioned(v) => {
                if let Some(newest) = newest_applied.filter(|&n| v < n) {
                    bail!(
                        "{}: version {v} is older than the newest applied version {newest}; give it a higher version",
                        m.path.display()
                    );
                }
                true
            }
            Kind::Repeatable => repeatable_checksums.get(&m.name) != Some(&m.checksum),
        };
        if pending {
            done.push(apply_one(conn, m)?);
        }
    }
    Ok(done)
}

fn apply_one(conn: &Connection, m: &Migration) -> Result<AppliedMigration> {
    tracing::info!("applying {}", m.file_name());
    let started = Instant::now();
    let run = || -> Result<i64> {
        db::execute(conn, "BEGIN TRANSACTION")?;
        db::execute(conn, &m.sql)?;
        let duration_ms = started.elapsed().as_millis() as i64;
        let (version, kind) = match m.kind {
            Kind::Versioned(v) => (Some(v), "versioned"),
            Kind::Repeatable => (None, "repeatable"),
        };
        conn.execute(
            &format!(
                "INSERT INTO {HISTORY_TABLE} SELECT coalesce(max(installed_rank), 0) + 1, ?, ?, ?, ?, ?, \
                 {now}, ? FROM {HISTORY_TABLE}",
                now = db::utc_now()
            ),
            params![version, kind, m.name, m.file_name(), m.checksum, duration_ms],
        )?;
        db::execute(conn, "COMMIT")?;
        Ok(duration_ms)
    };
    match run() {
        Ok(duration_ms) => Ok(AppliedMigration {
            file: m.file_name(),
            duration_ms,
        }),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e.context(format!("migration {} failed", m.path.display())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(
            parse_file_name("V001__init.sql"),
            Some((Kind::Versioned(1), "init".into()))
        );
        assert_eq!(
            parse_file_name("V12__add_x.sql"),
            Some((Kind::Versioned(12), "add_x".into()))
        );
        assert_eq!(
            parse_file_name("R__views.sql"),
            Some((Kind::Repeatable, "views".into()))
        );
        for bad in [
            "V1_init.sql",
            "init.sql",
            "V__x.sql",
            "Vx__y.sql",
            "V1__.sql",
            "V1__a-b.sql",
            "R__v.txt",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn sha256_is_stable() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
