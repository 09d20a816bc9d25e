//! Gold tables to `exports/<table>.parquet` for BI tools, each replaced atomically.

use std::path::{Path, PathBuf};

use anyhow::Context;
use duckdb::Connection;

use crate::config::Compression;
use crate::db::{self, ident, path_literal};
use crate::error::Result;

/// The `COPY` writing `table` to `path`.
pub fn copy_sql(table: &str, path: &Path, compression: Compression) -> String {
    format!(
        "COPY {} TO {} (FORMAT parquet, COMPRESSION {})",
        ident(table),
        path_literal(path),
        compression.as_sql()
    )
}

/// Writes `table` to a hidden temporary file in `dir`, then renames it into place, so a
/// BI tool never reads a half-written export.
pub fn export_table(
    conn: &Connection,
    table: &str,
    dir: &Path,
    compression: Compression,
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create exports directory {}", dir.display()))?;
    let target = dir.join(format!("{table}.parquet"));
    let temp = dir.join(format!(".{table}.parquet.tmp"));
    db::execute(conn, &copy_sql(table, &temp, compression))?;
    std::fs::rename(&temp, &target)
        .with_context(|| format!("cannot move {} to {}", temp.display(), target.display()))?;
    Ok(target)
}
