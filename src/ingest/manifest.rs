//! `ingest_manifest` and `ingest_quarantine` in the warehouse file: what each ingest did with
//! each file, and every row it refused, committed together per file.

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use duckdb::{params, Connection};
use sha2::{Digest, Sha256};

use super::QUARANTINE;
use crate::db;
use crate::error::Result;

pub const MANIFEST_TABLE: &str = "ingest_manifest";
pub const QUARANTINE_TABLE: &str = "ingest_quarantine";

pub fn ensure_tables(conn: &Connection) -> Result<()> {
    db::execute(
        conn,
        &format!(
            "CREATE TABLE IF NOT EXISTS {MANIFEST_TABLE} (
                ingest_id BIGINT NOT NULL,
                source VARCHAR NOT NULL,         -- <source>, or <source>.<table> for tables of a file
                file VARCHAR NOT NULL,           -- relative to the project root when inside it
                size_bytes BIGINT NOT NULL,
                sha256 VARCHAR,
                rows_in BIGINT NOT NULL,         -- = rows_loaded + rows_quarantined
                rows_loaded BIGINT NOT NULL,
                rows_quarantined BIGINT NOT NULL,
                rows_replaced BIGINT NOT NULL,   -- lake rows that lost to another row with the same key
                status VARCHAR NOT NULL,         -- loaded | quarantined | failed | replaced (a later version of the file was loaded)
                schema VARCHAR,                  -- JSON: the columns the rows were held to
                error VARCHAR,
                started_at TIMESTAMP NOT NULL,   -- UTC
                finished_at TIMESTAMP NOT NULL
            );
            CREATE TABLE IF NOT EXISTS {QUARANTINE_TABLE} (
                ingest_id BIGINT NOT NULL,
                source VARCHAR NOT NULL,
                file VARCHAR NOT NULL,
                line BIGINT,                     -- line (csv, ndjson, log), element (json), row (sqlite, parquet), 1-based
                raw VARCHAR,
                reason VARCHAR NOT NULL
            );"
        ),
    )?;
    Ok(())
}

pub fn next_ingest_id(conn: &Connection) -> Result<i64> {
    Ok(db::query_one(
        conn,
        &format!("SELECT coalesce(max(ingest_id), 0) + 1 FROM {MANIFEST_TABLE}"),
    )?)
}

/// Size and SHA-256 of the version of a file the lake holds now, if any.
pub fn current(conn: &Connection, source: &str, file: &str) -> Result<Option<(u64, String)>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT size_bytes, sha256 FROM {MANIFEST_TABLE}
         WHERE source = ? AND file = ? AND status IN ('loaded', 'quarantined')
         ORDER BY ingest_id DESC LIMIT 1"
    ))?;
    let mut rows = stmt
        .query_map(params![source, file], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
        })
        .context("cannot read the ingest manifest")?;
    Ok(rows.next().transpose()?)
}

/// Another file of `source` whose version in the lake has the content `sha256`, if any: the
/// same delivery under another name (renamed, or copied), whose rows a source without a key
/// holds twice.
pub fn same_content(
    conn: &Connection,
    source: &str,
    file: &str,
    sha256: &str,
) -> Result<Option<String>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT file FROM {MANIFEST_TABLE}
         WHERE source = ? AND file <> ? AND sha256 = ? AND status IN ('loaded', 'quarantined')
         ORDER BY file LIMIT 1"
    ))?;
    let mut rows = stmt
        .query_map(params![source, file, sha256], |r| r.get(0))
        .context("cannot read the ingest manifest")?;
    Ok(rows.next().transpose()?)
}

/// A file's SHA-256, computed on another thread while the file loads: it is only waited for
/// first when a same-size earlier version could make the load a skip.
pub struct Hash {
    pending: Option<std::thread::JoinHandle<Result<String>>>,
    value: Option<String>,
}

impl Hash {
    pub fn start(path: &Path) -> Hash {
        let path = path.to_owned();
        Hash {
            pending: Some(std::thread::spawn(move || sha256_file(&path))),
            value: None,
        }
    }

    pub fn get(&mut self) -> Result<&str> {
        if let Some(handle) = self.pending.take() {
            let value = handle
                .join()
                .map_err(|_| anyhow::anyhow!("the SHA-256 thread panicked"))??;
            self.value = Some(value);
        }
        Ok(self.value.as_deref().unwrap_or_default())
    }
}

pub struct Entry<'a> {
    pub ingest_id: i64,
    pub source: &'a str,
    pub file: &'a str,
    pub size_bytes: u64,
    pub sha256: &'a str,
    pub rows_in: u64,
    pub rows_loaded: u64,
    pub rows_quarantined: u64,
    pub rows_replaced: u64,
    pub schema: String,
    pub started_at: &'a str,
}

/// Records a loaded file and its quarantine in one transaction; the file's earlier loads
/// become `replaced` and their quarantined rows give way to this load's.
pub fn commit(conn: &Connection, e: &Entry<'_>) -> Result<()> {
    db::execute(conn, "BEGIN TRANSACTION")?;
    let result = (|| -> Result<()> {
        conn.execute(
            &format!(
                "UPDATE {MANIFEST_TABLE} SET status = 'replaced'
                 WHERE source = ? AND file = ? AND status IN ('loaded', 'quarantined')"
            ),
            params![e.source, e.file],
        )?;
        conn.execute(
            &format!("DELETE FROM {QUARANTINE_TABLE} WHERE source = ? AND file = ?"),
            params![e.source, e.file],
        )?;
        conn.execute(
            &format!(
                "INSERT INTO {QUARANTINE_TABLE} SELECT ?, ?, ?, line, raw, reason FROM {QUARANTINE} ORDER BY line"
            ),
            params![e.ingest_id, e.source, e.file],
        )?;
        conn.execute(
            &format!(
                "INSERT INTO {MANIFEST_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, {}, {})",
                e.started_at,
                db::utc_now()
            ),
            params![
                e.ingest_id,
                e.source,
                e.file,
                e.size_bytes as i64,
                e.sha256,
                e.rows_in as i64,
                e.rows_loaded as i64,
                e.rows_quarantined as i64,
                e.rows_replaced as i64,
                if e.rows_quarantined > 0 { "quarantined" } else { "loaded" },
                e.schema,
            ],
        )?;
        Ok(())
    })();
    match result {
        Ok(()) => Ok(db::execute(conn, "COMMIT")?),
        Err(err) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(err.context(format!("cannot record the ingest of {}", e.file)))
        }
    }
}

/// Records a file of which nothing was committed.
pub fn record_failure(
    conn: &Connection,
    ingest_id: i64,
    source: &str,
    file: &str,
    size: u64,
    error: &str,
) -> Result<()> {
    let now = db::utc_now();
    conn.execute(
        &format!(
            "INSERT INTO {MANIFEST_TABLE} VALUES (?, ?, ?, ?, NULL, 0, 0, 0, 0, 'failed', NULL, ?, {now}, {now})"
        ),
        params![ingest_id, source, file, size as i64, error],
    )
    .with_context(|| format!("cannot record the failure of {file}"))?;
    Ok(())
}

/// SHA-256 of a file's bytes, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}
