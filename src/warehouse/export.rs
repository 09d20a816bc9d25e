//! Gold tables to `exports/<table>.parquet` (or `.csv`) for BI tools, replaced together once
//! all are written.

use std::path::{Path, PathBuf};

use anyhow::Context;
use duckdb::Connection;

use crate::config::{Compression, ExportFormat};
use crate::db::{self, ident, path_literal};
use crate::error::Result;

/// The `COPY` writing `source` (a quoted table name or a parenthesized query) to `path`.
pub fn copy_sql(
    source: &str,
    path: &Path,
    format: ExportFormat,
    compression: Compression,
) -> String {
    let options = match format {
        ExportFormat::Parquet => format!("FORMAT parquet, COMPRESSION {}", compression.as_sql()),
        ExportFormat::Csv => "FORMAT csv, HEADER true".to_owned(),
    };
    format!("COPY {source} TO {} ({options})", path_literal(path))
}

/// Exports written into a hidden staging folder beside the exports directory; `publish`
/// links the directory's other files in and swaps the folders in one rename, so a BI tool sees
/// all of the previous exports or all of the new ones, never a mix, whenever the process dies.
pub struct StagedExports {
    dir: PathBuf,
    staging: PathBuf,
    compression: Compression,
    formats: Vec<ExportFormat>,
    /// Final paths of the files written so far.
    written: Vec<PathBuf>,
    /// The formats are the configured ones: a written table's file in another is stale.
    configured: bool,
    published: bool,
}

impl StagedExports {
    pub fn new(
        dir: &Path,
        compression: Compression,
        formats: &[ExportFormat],
    ) -> Result<StagedExports> {
        if dir.exists() && !dir.is_dir() {
            anyhow::bail!("the exports directory {} is not a directory", dir.display());
        }
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = dir.file_name().map_or_else(
            || "exports".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        // The warehouse file is held by one process at a time, so older staging folders
        // are leftovers of killed runs.
        let prefix = format!(".{name}.staging-");
        for entry in std::fs::read_dir(parent)
            .with_context(|| format!("cannot read {}", parent.display()))?
        {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                std::fs::remove_dir_all(entry.path())
                    .with_context(|| format!("cannot remove {}", entry.path().display()))?;
            }
        }
        let staging = parent.join(format!("{prefix}{}", std::process::id()));
        std::fs::create_dir_all(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        Ok(StagedExports {
            dir: dir.to_owned(),
            staging,
            compression,
            formats: formats.to_vec(),
            written: Vec::new(),
            configured: false,
            published: false,
        })
    }

    /// Says the formats are all those configured (a refresh's exports, not `micro-wh export
    /// --format`): a written table's export in any other format is removed on publication.
    pub fn in_configured_formats(mut self) -> StagedExports {
        self.configured = true;
        self
    }

    /// Writes `table` in every format, with the column types Spark reads (see
    /// `db::portable_select`); the error names the table.
    pub fn write(&mut self, conn: &Connection, table: &str) -> Result<()> {
        let select = db::portable_select(conn, &format!("SELECT * FROM {}", ident(table)))
            .with_context(|| format!("cannot export {table}"))?;
        for &format in &self.formats {
            let file = format!("{table}.{}", format.extension());
            db::execute(
                conn,
                &copy_sql(
                    &format!("({select})"),
                    &self.staging.join(&file),
                    format,
                    self.compression,
                ),
            )
            .with_context(|| format!("cannot export {table}"))?;
            self.written.push(self.dir.join(file));
        }
        Ok(())
    }

    /// Puts every written file in place at once; the directory's other files stay, except
    /// (with [`Self::in_configured_formats`]) a table's exports in a format no longer configured (`gold_x.csv` beside the new
    /// `gold_x.parquet`), which would otherwise keep the old rows for a BI tool to read.
    pub fn publish(mut self) -> Result<Vec<PathBuf>> {
        if self.dir.is_dir() {
            for entry in std::fs::read_dir(&self.dir)
                .with_context(|| format!("cannot read {}", self.dir.display()))?
            {
                let entry = entry?;
                let kept = self.staging.join(entry.file_name());
                if self.is_stale(&entry.path()) {
                    tracing::warn!(
                        "removed {}: {} is exported only as {} now",
                        entry.path().display(),
                        entry
                            .path()
                            .file_stem()
                            .unwrap_or_default()
                            .to_string_lossy(),
                        self.formats
                            .iter()
                            .map(|f| f.extension())
                            .collect::<Vec<_>>()
                            .join(" and ")
                    );
                    continue;
                }
                if entry.file_type()?.is_file() && !kept.exists() {
                    std::fs::hard_link(entry.path(), &kept).with_context(|| {
                        format!("cannot keep {} in the new exports", entry.path().display())
                    })?;
                }
            }
        }
        crate::fault::point("export-before-swap");
        crate::lake::swap_in(&self.staging, &self.dir)?;
        self.published = true;
        Ok(std::mem::take(&mut self.written))
    }
}

impl StagedExports {
    /// Whether `path` is an export, in a format not written now, of a table written now.
    fn is_stale(&self, path: &Path) -> bool {
        let (Some(stem), Some(ext)) = (path.file_stem(), path.extension()) else {
            return false;
        };
        if !self.configured {
            return false;
        }
        let other_format = ExportFormat::ALL
            .iter()
            .any(|f| ext == f.extension() && !self.formats.contains(f));
        other_format && self.written.iter().any(|w| w.file_stem() == Some(stem))
    }
}

impl Drop for StagedExports {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}
