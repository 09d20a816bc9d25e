//! Gold tables to `exports/<table>.parquet` for BI tools, replaced together once all are written.

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

/// Exports written to hidden temporary files in the exports directory; `publish` renames
/// them all into place only once every one was written, so a BI tool never reads a
/// half-written file nor a mix of this refresh's exports and the previous one's.
pub struct StagedExports {
    dir: PathBuf,
    compression: Compression,
    /// (temporary file, final file) of each table written so far.
    written: Vec<(PathBuf, PathBuf)>,
}

impl StagedExports {
    pub fn new(dir: &Path, compression: Compression) -> Result<StagedExports> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create exports directory {}", dir.display()))?;
        Ok(StagedExports {
            dir: dir.to_owned(),
            compression,
            written: Vec::new(),
        })
    }

    pub fn write(&mut self, conn: &Connection, table: &str) -> Result<()> {
        let target = self.dir.join(format!("{table}.parquet"));
        let temp = self.dir.join(format!(".{table}.parquet.tmp"));
        db::execute(conn, &copy_sql(table, &temp, self.compression))?;
        self.written.push((temp, target));
        Ok(())
    }

    pub fn publish(mut self) -> Result<Vec<PathBuf>> {
        let mut published = Vec::new();
        for (temp, target) in std::mem::take(&mut self.written) {
            std::fs::rename(&temp, &target).with_context(|| {
                format!("cannot move {} to {}", temp.display(), target.display())
            })?;
            published.push(target);
        }
        Ok(published)
    }
}

impl Drop for StagedExports {
    fn drop(&mut self) {
        for (temp, _) in &self.written {
            let _ = std::fs::remove_file(temp);
        }
    }
}
