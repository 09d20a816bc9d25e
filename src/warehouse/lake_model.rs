//! Lake models (`materialized: lake`): a model's rows as Hive-partitioned Parquet under
//! `<lake>/<model>/`, one `data.parquet` per partition, written when the source partitions
//! they come from arrive or change, and read through a view of the same name.
//!
//! A refresh writes the changed partitions into a staging folder and, for as long as it runs,
//! shadows the model's view with a temporary one of the same name over the lake's untouched
//! partitions plus the staged ones, so the models after it and the data tests read the new
//! rows. It publishes only once every test passed, just before the warehouse commits: each
//! changed partition's folder takes its place in one rename, and the warehouse's view, whose
//! glob finds them by itself, is made again only when its SQL changes. A failed refresh
//! leaves the lake model as it was. A crash during the publication or before the commit
//! leaves partitions the warehouse has not recorded, which the next refresh sees as changed
//! and writes again (the same rows): a refresh costs the changed partitions, not the lake.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::bail;
use duckdb::Connection;

use super::incremental::{self, Mode};
use super::models::Model;
use crate::db::{self, ident, literal};
use crate::error::Result;
use crate::lake::{self, CopyOptions, LakeLock, Layout, StagedWrite};

/// Source bytes (compressed Parquet) written per `COPY`: what a model holds at once (a
/// deduplicating window sorts a batch's rows) stays bounded however large the lake is,
/// while a batch still keeps every thread busy.
const BATCH_BYTES: i64 = 96 << 20;
/// Partitions per `COPY`, within the open-file limit the refresh sets for partitioned writes
/// (`partitioned_write_max_open_files`), past which DuckDB splits a partition into several
/// files that must then be merged. Small partitions (a few rows a day) cost a file each
/// whatever the batch, so batches of many spare only the per-statement work.
const BATCH_PARTITIONS: usize = 1000;
/// The one file of each partition.
const FILE_NAME: &str = "data.parquet";

/// Where and how lake models are written.
pub struct LakeTarget<'a> {
    /// Held alone by the refresh: the staged writes need it.
    pub lock: &'a LakeLock,
    /// The lake as the views name it (relative to the project, like the bronze views, so
    /// the warehouse opens from the project directory in any DuckDB).
    pub sql_dir: &'a Path,
    pub options: CopyOptions,
    pub run_id: &'a str,
}

/// A lake model whose new partitions wait for the refresh's tests before publication.
pub struct Pending {
    write: StagedWrite,
    /// Folders of the model's lake to remove: partitions no longer in the source.
    gone: Vec<PathBuf>,
    model: Model,
    columns: Vec<(String, String)>,
    /// Its rows of the partitions rewritten are also in the temporary table
    /// [`incremental::copy_name`].
    copied: bool,
    /// The warehouse's view of the model stays when the view made now would be the same.
    view_kept: bool,
}

/// Where a lake model's staged rows are read from.
pub enum StagedRows {
    /// The temporary table [`incremental::copy_name`], which they were written from.
    Copied,
    /// The staged files, as SQL.
    Files(String),
}

/// Brings `model` to `mode`: writes the partitions to rebuild into a staged tree and shows
/// them through a temporary view of the model's name (which shadows the warehouse's view
/// until the refresh ends), to publish once the refresh's tests passed; nothing when nothing
/// changed. `lake` holds the files of the dataset the model follows and of its own folder;
/// `view_kept` says the warehouse's view of it may stay as it is when its SQL would not change.
pub fn build(
    conn: &Connection,
    model: &Model,
    mode: &Mode,
    lake: &mut incremental::LakeState,
    target: &LakeTarget<'_>,
    copies: &incremental::Copies,
    view_kept: bool,
) -> Result<Option<Pending>> {
    let spec = model
        .incremental
        .as_ref()
        .expect("a lake model follows a lake");
    let rewrite: BTreeSet<Vec<String>> = match mode {
        // The view made when its partitions were published reads them as they are.
        Mode::Unchanged => return Ok(None),
        Mode::Full => lake
            .files(conn, &spec.lake)?
            .iter()
            .filter_map(|f| incremental::partition_of(&f.path, &spec.partition))
            .collect(),
        Mode::Incremental(partitions) => partitions.iter().cloned().collect(),
    };
    let published_files = lake.files(conn, &model.name)?.to_vec();
    let sources = lake.files(conn, &spec.lake)?;
    // Made portable once: every batch writes the same select, with its source narrowed (to
    // copied rows, when it has them: binding it whole would list the lake).
    let rewritten: Vec<Vec<String>> = rewrite.iter().cloned().collect();
    let scope = incremental::SourceScope::of(conn, spec, &rewritten, sources, copies)?;
    let columns = db::describe(conn, &scope.wrap(&model.select))?;
    let select = db::portable_over(&model.select, &columns);
    let columns = db::portable_columns(columns);
    for partition in &spec.partition {
        if !columns.iter().any(|(name, _)| name == partition) {
            bail!(
                "lake model {} must return its partition column `{partition}`",
                model.name
            );
        }
    }
    // The partitions to write are those still in the source; the others are gone.
    let mut bytes: BTreeMap<Vec<String>, i64> = BTreeMap::new();
    for f in sources {
        if let Some(p) = incremental::partition_of(&f.path, &spec.partition) {
            if rewrite.contains(&p) {
                *bytes.entry(p).or_default() += f.size;
            }
        }
    }
    let write = StagedWrite::begin_locked(target.lock, &model.name, target.run_id)?;
    let layout = Layout {
        partitions: spec
            .partition
            .iter()
            .map(|p| (p.clone(), ident(p)))
            .collect(),
        file_name: Some(FILE_NAME.to_owned()),
    };
    // A source read from its copied rows (a day or an hour) gives rows that are copied out
    // too, then written: the models and tests after this one read the copy, not the files.
    let copied = matches!(mode, Mode::Incremental(_)) && scope.is_copied();
    if copied {
        let temp = ident(&incremental::copy_name(&model.name));
        db::execute(
            conn,
            &format!(
                "CREATE OR REPLACE TEMP TABLE {temp} AS {}",
                scope.wrap(&select)
            ),
        )?;
        layout.copy_as_is(
            conn,
            &format!("SELECT * FROM temp.main.{temp}"),
            &write.dir,
            "part",
            &target.options,
        )?;
    } else {
        for batch in batches(&bytes) {
            let scope = incremental::SourceScope::of(conn, spec, &batch, sources, copies)?;
            layout.copy_as_is(
                conn,
                &scope.wrap(&select),
                &write.dir,
                "part",
                &target.options,
            )?;
        }
    }
    // Each row must land in the partition it was read from, or the partitions this model
    // keeps would no longer match the source's and a later change would miss rows.
    for file in lake::list_files(&write.dir, "")? {
        let path = file.to_string_lossy().replace('\\', "/");
        match incremental::partition_of(&path, &spec.partition) {
            Some(p) if bytes.contains_key(&p) => {}
            _ => bail!(
                "lake model {} ({}) wrote rows into {path}, a partition none of its source rows \
                 came from: its partition columns ({}) must pass through from {}",
                model.name,
                model.path.display(),
                spec.partition.join(", "),
                spec.source.as_deref().unwrap_or("its source")
            ),
        }
    }
    // Until it is published, the view reads the lake's untouched partitions and the staged
    // ones; the lake's folders of rewritten partitions that were not written again are gone.
    let full = *mode == Mode::Full;
    let published = lake::dataset_dir(target.lock.lake_dir(), &model.name);
    let mut files = Vec::new();
    let mut gone = Vec::new();
    for stamp in &published_files {
        let file = Path::new(&stamp.path);
        let partition = incremental::partition_of(&stamp.path, &spec.partition);
        if !full && partition.as_ref().is_some_and(|p| !rewrite.contains(p)) {
            files.push(published.join(file));
        } else if let Some(folder) = file.parent() {
            if partition.is_none_or(|p| !bytes.contains_key(&p))
                && !gone.contains(&folder.to_path_buf())
            {
                gone.push(folder.to_path_buf());
            }
        }
    }
    files.extend(
        lake::list_files(&write.dir, "")?
            .iter()
            .map(|f| write.dir.join(f)),
    );
    let list: Vec<String> = files.iter().map(|f| db::path_literal(f)).collect();
    let select = select_over(
        model,
        &columns,
        (!list.is_empty()).then(|| format!("[{}]", list.join(", "))),
    );
    db::execute(
        conn,
        &format!(
            "CREATE OR REPLACE TEMP VIEW {} AS {select}",
            ident(&model.name)
        ),
    )?;
    Ok(Some(Pending {
        write,
        gone,
        model: model.clone(),
        columns,
        copied,
        view_kept: view_kept && !full,
    }))
}

impl Pending {
    /// The staged rows (those of the partitions rewritten): in the model's copy when it was
    /// built there, else read from the staged files (the model's view would bind every file
    /// of the lake model).
    pub fn staged_rows(&self) -> Result<StagedRows> {
        if self.copied {
            return Ok(StagedRows::Copied);
        }
        let files: Vec<String> = lake::list_files(&self.write.dir, "")?
            .iter()
            .map(|f| db::path_literal(&self.write.dir.join(f)))
            .collect();
        Ok(StagedRows::Files(format!(
            "({})",
            select_over(
                &self.model,
                &self.columns,
                (!files.is_empty()).then(|| format!("[{}]", files.join(", ")))
            )
        )))
    }
}

/// Publishes a staged lake model, records the files it now holds (listed again into `lake`),
/// drops its temporary view and makes the warehouse's view read the lake again, all in the
/// refresh's transaction. A view whose SQL would not change is kept: its glob finds the
/// published folders by itself, and making it again would list them all.
pub fn publish(
    conn: &Connection,
    pending: Pending,
    target: &LakeTarget<'_>,
    lake: &mut incremental::LakeState,
) -> Result<()> {
    let Pending {
        write,
        gone,
        model,
        columns,
        copied: _,
        view_kept,
    } = pending;
    let changed = write.publish_by_folder(&gone)?;
    crate::fault::fail("lake-model-published")?;
    lake.relist(conn, &model.name, &changed)?;
    incremental::record_outputs(conn, &model, lake)?;
    let spec = model
        .incremental
        .as_ref()
        .expect("a lake model follows a lake");
    let glob = lake::files_glob(&target.sql_dir.join(&model.name), spec.partition.len());
    let files = (!lake.files(conn, &model.name)?.is_empty()).then(|| literal(&glob));
    let sql = format!(
        "CREATE OR REPLACE VIEW {} AS {}",
        ident(&model.name),
        select_over(&model, &columns, files)
    );
    db::execute(
        conn,
        &format!("DROP VIEW IF EXISTS temp.main.{}", ident(&model.name)),
    )?;
    if !view_kept || incremental::lake_view(conn, &model.name)?.as_deref() != Some(sql.as_str()) {
        db::execute(conn, &sql)?;
        incremental::record_lake_view(conn, &model.name, &sql)?;
    }
    Ok(())
}

/// Groups partitions, in order, into batches of at most `BATCH_BYTES` source bytes and
/// `BATCH_PARTITIONS` partitions (a larger partition goes alone).
fn batches(bytes: &BTreeMap<Vec<String>, i64>) -> Vec<Vec<Vec<String>>> {
    let mut out: Vec<Vec<Vec<String>>> = Vec::new();
    let mut size = 0;
    for (partition, &b) in bytes {
        match out.last_mut() {
            Some(batch) if size + b <= BATCH_BYTES && batch.len() < BATCH_PARTITIONS => {
                batch.push(partition.clone());
                size += b;
            }
            _ => {
                out.push(vec![partition.clone()]);
                size = b;
            }
        }
    }
    out
}

/// The model's rows in `files`, columns in the model's order and partition columns typed as
/// the model types them; a typed empty select when there are no files (read_parquet refuses
/// a glob that matches nothing).
fn select_over(model: &Model, columns: &[(String, String)], files: Option<String>) -> String {
    let spec = model
        .incremental
        .as_ref()
        .expect("a lake model follows a lake");
    let list = |f: &dyn Fn(&str, &str) -> String| {
        columns
            .iter()
            .map(|(n, t)| f(n, t))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match files {
        None => format!(
            "SELECT {} WHERE false",
            list(&|n, t| format!("CAST(NULL AS {t}) AS {}", ident(n)))
        ),
        Some(files) => {
            let hive_types: Vec<String> = columns
                .iter()
                .filter(|(n, _)| spec.partition.contains(n))
                .map(|(n, t)| format!("{}: {t}", literal(n)))
                .collect();
            format!(
                "SELECT {} FROM read_parquet({files}, hive_partitioning = true, hive_types = {{{}}})",
                list(&|n, _| ident(n)),
                hive_types.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_bound_bytes_and_partitions_and_keep_order() {
        let p = |i: usize| vec![format!("{i:04}")];
        let bytes: BTreeMap<Vec<String>, i64> = (0..200).map(|i| (p(i), 1 << 20)).collect();
        let b = batches(&bytes);
        assert!(b.iter().all(|b| b.len() <= BATCH_PARTITIONS));
        assert_eq!(b.concat(), (0..200).map(p).collect::<Vec<_>>());

        let big: BTreeMap<Vec<String>, i64> = [
            (p(0), BATCH_BYTES),
            (p(1), 1),
            (p(2), BATCH_BYTES - 1),
            (p(3), 2),
        ]
        .into();
        assert_eq!(
            batches(&big),
            vec![vec![p(0)], vec![p(1), p(2)], vec![p(3)]]
        );
    }
}
