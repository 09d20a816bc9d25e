//! The Hive-partitioned Parquet lake: staged writes, atomic publication, and statistics.
//!
//! A write goes into `<lake>/.staging/<dataset>-<run>/`; only when it is complete does the
//! staged tree replace `<lake>/<dataset>/` in one rename, so a query that lists the lake (or a
//! run killed at any moment) sees either the old lake or the new one, never a partial file.
//! (A query still reading the old files when they are removed fails and can be rerun.) Append mode
//! hard-links the existing files into the staged tree first, so existing files are never
//! rewritten and the append is still all-or-nothing.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::error::Result;

pub const STAGING_DIR: &str = ".staging";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum WriteMode {
    /// Replace the dataset's files with the new ones.
    #[default]
    Overwrite,
    /// Add new files beside the existing ones (which are never rewritten).
    Append,
}

/// Directory of one dataset inside the lake.
pub fn dataset_dir(lake_dir: &Path, dataset: &str) -> PathBuf {
    lake_dir.join(dataset)
}

/// Glob matching every Parquet file of a dataset partitioned by one key.
pub fn dataset_glob(lake_dir: &Path, dataset: &str) -> String {
    format!(
        "{}/*/*.parquet",
        dataset_dir(lake_dir, dataset)
            .to_string_lossy()
            .replace('\\', "/")
    )
}

/// An exclusive hold on the lake for one writer; dropped when the write ends.
pub struct LakeLock {
    _file: File,
}

impl LakeLock {
    pub fn acquire(lake_dir: &Path) -> Result<LakeLock> {
        fs::create_dir_all(lake_dir)
            .with_context(|| format!("cannot create lake directory {}", lake_dir.display()))?;
        let path = lake_dir.join(".lock");
        let file =
            File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        lock_exclusive(&file).with_context(|| {
            format!(
                "another micro-wh process is writing the lake {} (lock {})",
                lake_dir.display(),
                path.display()
            )
        })?;
        Ok(LakeLock { _file: file })
    }
}

#[cfg(unix)]
fn lock_exclusive(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; the lock is released when the file is closed.
    match unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(not(unix))]
fn lock_exclusive(_file: &File) -> std::io::Result<()> {
    Ok(())
}

/// A dataset write in progress. Dropping it without `publish` removes the staged files.
pub struct StagedWrite {
    pub dir: PathBuf,
    target: PathBuf,
    /// Where the fallback (non-atomic) swap parks the previous lake; outside staging so a
    /// crash mid-swap can be undone by the next run rather than cleaned away.
    aside: PathBuf,
    published: bool,
    _lock: LakeLock,
}

impl StagedWrite {
    /// Takes the lake lock, removes what earlier killed runs left in staging, and
    /// creates an empty staging directory for this run.
    pub fn begin(lake_dir: &Path, dataset: &str, run_id: &str) -> Result<StagedWrite> {
        let lock = LakeLock::acquire(lake_dir)?;
        let target = dataset_dir(lake_dir, dataset);
        let aside = lake_dir.join(format!(".previous-{dataset}"));
        if aside.exists() {
            if target.exists() {
                fs::remove_dir_all(&aside)
                    .with_context(|| format!("cannot remove {}", aside.display()))?;
            } else {
                tracing::warn!("restoring {} from an interrupted swap", target.display());
                fs::rename(&aside, &target)
                    .with_context(|| format!("cannot restore {}", target.display()))?;
            }
        }
        let staging_root = lake_dir.join(STAGING_DIR);
        if staging_root.exists() {
            tracing::info!(
                "removing leftovers of an interrupted run in {}",
                staging_root.display()
            );
            fs::remove_dir_all(&staging_root).with_context(|| {
                format!("cannot clean staging directory {}", staging_root.display())
            })?;
        }
        let dir = staging_root.join(format!("{dataset}-{run_id}"));
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(StagedWrite {
            dir,
            target,
            aside,
            published: false,
            _lock: lock,
        })
    }

    /// Makes the staged tree the dataset's lake in one atomic step.
    pub fn publish(mut self, mode: WriteMode) -> Result<()> {
        if mode == WriteMode::Append && self.target.exists() {
            link_tree(&self.target, &self.dir)?;
        }
        if self.target.exists() {
            replace_dir(&self.dir, &self.target, &self.aside)?;
        } else {
            fs::rename(&self.dir, &self.target).with_context(|| {
                format!(
                    "cannot move {} to {}",
                    self.dir.display(),
                    self.target.display()
                )
            })?;
        }
        self.published = true;
        Ok(())
    }
}

impl Drop for StagedWrite {
    fn drop(&mut self) {
        if !self.published {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Hard-links every file under `from` into the same relative place under `to`.
fn link_tree(from: &Path, to: &Path) -> Result<()> {
    for entry in fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            fs::create_dir_all(&dst)?;
            link_tree(&src, &dst)?;
        } else if dst.exists() {
            bail!(
                "{} exists in both the lake and the new files; refusing to overwrite it",
                dst.display()
            );
        } else {
            fs::hard_link(&src, &dst)
                .or_else(|_| fs::copy(&src, &dst).map(|_| ()))
                .with_context(|| format!("cannot link {} into {}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}

/// Puts `new` in place of `target`. On Linux one `renameat2(RENAME_EXCHANGE)` swaps them, so
/// `target` always holds a whole lake; `new` then holds the previous one, which is removed
/// (or, after a crash, cleaned with the staging directory). Elsewhere `target` is first moved
/// to `aside`, which `StagedWrite::begin` puts back if a crash left no `target`.
fn replace_dir(new: &Path, target: &Path, aside: &Path) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let c_new = CString::new(new.as_os_str().as_bytes())?;
        let c_target = CString::new(target.as_os_str().as_bytes())?;
        // SAFETY: both are valid NUL-terminated paths; AT_FDCWD resolves them from the cwd.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                c_new.as_ptr(),
                libc::AT_FDCWD,
                c_target.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if rc == 0 {
            return fs::remove_dir_all(new).with_context(|| {
                format!("cannot remove previous lake files in {}", new.display())
            });
        }
        tracing::debug!(
            "renameat2 failed ({}), using two renames",
            std::io::Error::last_os_error()
        );
    }
    fs::rename(target, aside).with_context(|| format!("cannot move {} aside", target.display()))?;
    fs::rename(new, target)
        .with_context(|| format!("cannot move {} to {}", new.display(), target.display()))?;
    fs::remove_dir_all(aside).with_context(|| format!("cannot remove {}", aside.display()))
}

/// What `status` reports about one dataset's files.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LakeFiles {
    pub partitions: u64,
    pub files: u64,
    pub bytes: u64,
}

/// Counts the partitions, Parquet files and bytes of a dataset (zero when it does not exist).
pub fn scan_files(lake_dir: &Path, dataset: &str) -> Result<LakeFiles> {
    let mut stats = LakeFiles::default();
    let dir = dataset_dir(lake_dir, dataset);
    let partitions = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(stats),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot read {}", dir.display())))
        }
    };
    for partition in partitions {
        let partition = partition?;
        if !partition.file_type()?.is_dir() {
            continue;
        }
        let mut has_files = false;
        for file in fs::read_dir(partition.path())? {
            let file = file?;
            if file.path().extension().is_some_and(|e| e == "parquet") {
                has_files = true;
                stats.files += 1;
                stats.bytes += file.metadata()?.len();
            }
        }
        stats.partitions += u64::from(has_files);
    }
    Ok(stats)
}
