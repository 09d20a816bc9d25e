//! Gold tables to `exports/<table>.parquet` (or `.csv`) for BI tools, replaced together once
//! all are written.

use std::path::{Path, PathBuf};

use anyhow::Context;
use duckdb::Connection;

use crate::config::{Compression, ExportFormat};
use crate::db::{self, ident, path_literal};
use crate::error::Result;

/// The `COPY` writing `table` to `path`.
pub fn copy_sql(table: &str, path: &Path, format: ExportFormat, compression: Compression) -> String {
    let options = match format {
        ExportFormat::Parquet => format!("FORMAT parquet, COMPRESSION {}", compression.as_sql()),
        ExportFormat::Csv => "FORMAT csv, HEADER true".to_owned(),
    };
    format!("COPY {} TO {} ({options})", ident(table), path_literal(path))
}

/// Exports written to hidden temporary files in the exports directory; `publish` renames
/// them all into place only once every one was written, so a BI tool never reads a
/// half-written file nor a mix of this refresh's exports and the previous one's.
pub struct StagedExports {
    dir: PathBuf,
    compression: Compression,
    formats: Vec<ExportFormat>,
    /// (temporary file, final file) of each table written so far.
    written: Vec<(PathBuf, PathBuf)>,
}

impl StagedExports {
    pub fn new(dir: &Path, compression: Compression, formats: &[ExportFormat]) -> Result<StagedExports> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create exports directory {}", dir.display()))?;
        Ok(StagedExports {
            dir: dir.to_owned(),
            compression,
            formats: formats.to_vec(),
            written: Vec::new(),
        })
    }

    /// Writes `table` in every format; the error names the table.
    pub fn write(&mut self, conn: &Connection, table: &str) -> Result<()> {
        for &format in &self.formats {
            let ext = format.extension();
            let target = self.dir.join(format!("{table}.{ext}"));
            let temp = self.dir.join(format!(".{table}.{ext}.tmp"));
            db::execute(conn, &copy_sql(table, &temp, format, self.compression))
                .with_context(|| format!("cannot export {table}"))?;
            self.written.push((temp, target));
        }
        Ok(())
    }

    pub fn publish(mut self) -> Result<Vec<PathBuf>> {
        let mut published = Vec::new();
        for (temp, target) in std::mem::take(&mut self.written) {
            if !published.is_empty() {
                crate::fault::point("export-between-renames");
            }
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
