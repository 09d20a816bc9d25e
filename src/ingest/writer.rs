//! Puts one file's valid rows into its source's lake folder, replacing what that file loaded
//! before, in one atomic publish.
//!
//! Without `key` or `file_name`, a file's rows are files of their own, named after the source
//! file, so replacing them never touches other files. With either, each leaf partition is one
//! file: the partitions the new rows fall into, plus those holding rows with the same keys or
//! rows this file loaded before, are rewritten whole, and `_source_file` records each row's file.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use duckdb::Connection;
use sha2::{Digest, Sha256};

use super::validate::Column;
use super::SCRATCH;
use crate::config::{Config, SourceConfig};
use crate::db::{self, ident, literal, path_literal};
use crate::error::Result;
use crate::lake::{self, CopyOptions, LakeLock, Layout, StagedWrite};

/// Column naming the source file of each row in keyed or fixed-file layouts.
pub const SOURCE_FILE_COLUMN: &str = "_source_file";
const DEFAULT_FILE_NAME: &str = "data.parquet";

/// The lake layout of a source plus its key.
pub struct IngestLayout {
    pub lake: Layout,
    pub key: Vec<String>,
    pub order_by: Option<String>,
}

impl IngestLayout {
    /// Whether partitions are rewritten (merged) rather than files added.
    pub fn merges(&self) -> bool {
        !self.key.is_empty() || self.lake.file_name.is_some()
    }
}

pub fn layout(source: &SourceConfig) -> IngestLayout {
    let mut lake = Layout {
        partitions: source.partition_by.0.clone(),
        file_name: source.file_name.clone(),
    };
    if !source.key.is_empty() && lake.file_name.is_none() {
        lake.file_name = Some(DEFAULT_FILE_NAME.to_owned());
    }
    IngestLayout {
        lake,
        key: source.key.clone(),
        order_by: source.order_by.clone(),
    }
}

pub struct Target<'a> {
    pub conn: &'a Connection,
    pub config: &'a Config,
    pub lake: &'a LakeLock,
    pub dataset: &'a str,
    pub layout: &'a IngestLayout,
    pub columns: &'a [Column],
    /// The source file as the manifest names it.
    pub source_file: &'a str,
}

impl Target<'_> {
    /// Publishes the incoming rows; returns how many lake rows lost to a row with the same key.
    pub fn write(&self, incoming: &Path, rows: u64) -> Result<u64> {
        let staged = StagedWrite::begin_locked(self.lake, self.dataset, &lake::run_id())?;
        let options = CopyOptions::of(&self.config.lake);
        if self.layout.merges() {
            let (replaced, affected) = self.merge(incoming, rows, &staged.dir, &options)?;
            staged.publish(&|rel: &Path| {
                let folder = rel
                    .parent()
                    .map_or(String::new(), |p| p.to_string_lossy().replace('\\', "/"));
                // Affected folders are named with their values as read (`city=San Jose`),
                // the lake's as DuckDB wrote them (`city=San%20Jose`).
                !affected.contains(&lake::read_folder(&folder))
            })?;
            Ok(replaced)
        } else {
            let prefix = file_prefix(self.source_file);
            if rows > 0 {
                self.append(incoming, &prefix, &staged.dir, &options)?;
            }
            let mine = format!("{prefix}_");
            staged.publish(&|rel: &Path| {
                !rel.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&mine))
            })?;
            Ok(0)
        }
    }

    /// The new rows as files of their own; unpartitioned files, and files the load already
    /// laid out in partition folders, are moved, not rewritten.
    fn append(
        &self,
        incoming: &Path,
        prefix: &str,
        dir: &Path,
        options: &CopyOptions,
    ) -> Result<()> {
        let laid_out = std::fs::read_dir(incoming)
            .with_context(|| format!("cannot read {}", incoming.display()))?
            .any(|e| e.is_ok_and(|e| e.path().is_dir()));
        if laid_out {
            std::fs::remove_dir(dir)
                .with_context(|| format!("cannot replace {}", dir.display()))?;
            return std::fs::rename(incoming, dir).with_context(|| {
                format!("cannot move {} to {}", incoming.display(), dir.display())
            });
        }
        if self.layout.lake.partitions.is_empty() {
            let mut files: Vec<_> = std::fs::read_dir(incoming)?
                .map(|e| e.map(|e| e.path()))
                .collect::<std::io::Result<_>>()
                .with_context(|| format!("cannot read {}", incoming.display()))?;
            files.sort();
            for (i, file) in files.iter().enumerate() {
                let target = dir.join(format!("{prefix}_{i}.parquet"));
                std::fs::rename(file, &target).with_context(|| {
                    format!("cannot move {} to {}", file.display(), target.display())
                })?;
            }
            return Ok(());
        }
        let select = format!(
            "SELECT {} FROM read_parquet({})",
            self.select_list(false),
            incoming_glob(incoming)
        );
        self.layout
            .lake
            .copy(self.conn, &select, dir, prefix, options)?;
        Ok(())
    }

    fn select_list(&self, partitions_as_text: bool) -> String {
        select_list(
            self.columns,
            &self.layout.lake.partitions,
            partitions_as_text,
        )
    }

    /// Rewrites the affected partitions; returns (rows replaced by key, affected folders).
    fn merge(
        &self,
        incoming: &Path,
        rows: u64,
        dir: &Path,
        options: &CopyOptions,
    ) -> Result<(u64, BTreeSet<String>)> {
        let conn = self.conn;
        let lake = &self.layout.lake;
        let new = format!("{SCRATCH}.new_rows");
        let file = literal(self.source_file);
        let part_path = lake.partition_path_sql();
        let mut defs: Vec<String> = self
            .columns
            .iter()
            .filter(|c| !lake.partitions.iter().any(|(n, _)| *n == c.name))
            .map(|c| format!("{} {}", ident(&c.name), c.ty))
            .collect();
        defs.extend(
            lake.partitions
                .iter()
                .map(|(n, _)| format!("{} VARCHAR", ident(n))),
        );
        defs.push(format!("{SOURCE_FILE_COLUMN} VARCHAR"));
        defs.push("_line BIGINT".to_owned());
        db::execute(
            conn,
            &format!("CREATE OR REPLACE TABLE {new} ({})", defs.join(", ")),
        )?;
        if rows > 0 {
            db::execute(
                conn,
                &format!(
                    "INSERT INTO {new} SELECT {}, {file}, _line FROM read_parquet({})",
                    self.select_list(true),
                    incoming_glob(incoming)
                ),
            )?;
        }
        let key = &self.layout.key;
        let order = match &self.layout.order_by {
            Some(col) => format!("{} DESC NULLS LAST, ", ident(col)),
            None => String::new(),
        };
        let keys = key.iter().map(|k| ident(k)).collect::<Vec<_>>().join(", ");

        let existing = lake::list_files(self.lake.lake_dir(), self.dataset)?;
        let old = (!existing.is_empty()).then(|| {
            format!(
                "read_parquet({}, hive_partitioning = true, hive_types_autocast = false, union_by_name = true)",
                literal(&lake::dataset_glob(
                    self.lake.lake_dir(),
                    self.dataset,
                    lake.partitions.len()
                ))
            )
        });
        let affected_table = format!("{SCRATCH}.affected");
        let mut sources = vec![format!("SELECT {part_path} AS _part FROM {new}")];
        if let Some(old) = &old {
            sources.push(format!(
                "SELECT {part_path} FROM {old} WHERE {SOURCE_FILE_COLUMN} = {file}"
            ));
            if !key.is_empty() {
                let on: Vec<String> = key
                    .iter()
                    .map(|k| format!("n.{0} = o.{0}", ident(k)))
                    .collect();
                sources.push(format!(
                    "SELECT {part_path} FROM {old} o WHERE EXISTS (SELECT 1 FROM {new} n WHERE {})",
                    on.join(" AND ")
                ));
            }
        }
        db::execute(
            conn,
            &format!(
                "CREATE OR REPLACE TABLE {affected_table} AS SELECT DISTINCT _part FROM ({})",
                sources.join(" UNION ALL ")
            ),
        )?;
        let mut stmt = db::prepare(conn, &format!("SELECT _part FROM {affected_table}"))?;
        let affected: BTreeSet<String> = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<std::result::Result<_, _>>()?;

        let mut union = Vec::new();
        let mut old_rows = 0i64;
        if let Some(old) = &old {
            let old_kept = format!(
                "SELECT *, 0 AS _prio, CAST(0 AS BIGINT) AS _line FROM {old}
                 WHERE {part_path} IN (SELECT _part FROM {affected_table})
                   AND {SOURCE_FILE_COLUMN} IS DISTINCT FROM {file}"
            );
            old_rows = db::query_one(conn, &format!("SELECT count(*) FROM ({old_kept})"))?;
            union.push(old_kept);
        }
        union.push(format!("SELECT *, 1 AS _prio FROM {new}"));
        let dedup = if key.is_empty() {
            String::new()
        } else {
            format!(
                " QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {order}_prio DESC, _line DESC) = 1"
            )
        };
        let merged = format!(
            "SELECT * EXCLUDE (_prio, _line) FROM ({}){dedup}",
            union.join(" UNION ALL BY NAME ")
        );
        let written = lake.copy(conn, &merged, dir, "part", options)?;
        let replaced = (old_rows as u64 + rows).saturating_sub(written);
        Ok((replaced, affected))
    }
}

/// Data columns, then each partition column computed from its expression.
pub fn select_list(
    columns: &[Column],
    partitions: &[(String, String)],
    partitions_as_text: bool,
) -> String {
    let mut list: Vec<String> = columns
        .iter()
        .filter(|c| !partitions.iter().any(|(n, _)| *n == c.name))
        .map(|c| ident(&c.name))
        .collect();
    for (name, expr) in partitions {
        if partitions_as_text {
            list.push(format!("CAST({expr} AS VARCHAR) AS {}", ident(name)));
        } else {
            list.push(format!("{expr} AS {}", ident(name)));
        }
    }
    list.join(", ")
}

fn incoming_glob(incoming: &Path) -> String {
    path_literal(&incoming.join("*.parquet"))
}

/// Lake file names of one source file's rows start with this, so a changed file's earlier
/// rows can be found and replaced without reading them.
pub fn file_prefix(source_file: &str) -> String {
    let digest = Sha256::digest(source_file.as_bytes());
    format!("f{:x}", digest)[..17].to_owned()
}
