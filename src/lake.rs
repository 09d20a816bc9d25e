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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WriteMode {
    /// Replace the dataset's files with the new ones.
    #[default]
    Overwrite,
    /// Add new files beside the existing ones (which are never rewritten).
    Append,
}

impl WriteMode {
    /// Which existing files a publish in this mode keeps.
    pub fn keep_existing(self) -> Keep<'static> {
        fn none(_: &Path) -> bool {
            false
        }
        fn all(_: &Path) -> bool {
            true
        }
        match self {
            WriteMode::Overwrite => &none,
            WriteMode::Append => &all,
        }
    }
}

impl std::str::FromStr for WriteMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "overwrite" => Ok(WriteMode::Overwrite),
            "append" => Ok(WriteMode::Append),
            _ => Err(format!("`{s}` is not a write mode (overwrite, append)")),
        }
    }
}

/// Decides, for each existing file (path relative to the dataset directory), whether a
/// publish keeps it beside the staged files.
pub type Keep<'a> = &'a dyn Fn(&Path) -> bool;

/// Directory of one dataset inside the lake (`name` may hold `/`, e.g. `shop/Invoice`).
pub fn dataset_dir(lake_dir: &Path, dataset: &str) -> PathBuf {
    lake_dir.join(dataset)
}

/// The datasets in the lake: its folders, sorted (none when the lake does not exist yet).
pub fn datasets(lake_dir: &Path) -> Result<Vec<String>> {
    let mut datasets: Vec<String> = match fs::read_dir(lake_dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        // An unreadable lake is not an empty one.
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot read {}", lake_dir.display())))
        }
    };
    datasets.sort();
    Ok(datasets)
}

/// Partition keys that say when rows happened, in the order they nest.
const TIME_KEYS: [&str; 5] = ["year", "month", "date", "day", "hour"];

/// The newest partition of a dataset by its time keys (`date=…`, `year=…/month=…/day=…`,
/// `hour=…`; other keys left out), from the folder names alone; None when no partition
/// has a time key.
pub fn newest_partition(lake_dir: &Path, dataset: &str) -> Result<Option<String>> {
    let files = list_files(lake_dir, dataset)?;
    Ok(files
        .iter()
        .filter_map(|file| {
            let mut keys: Vec<(usize, String)> = file
                .parent()?
                .components()
                .filter_map(|c| {
                    let part = c.as_os_str().to_str()?;
                    let (key, _) = part.split_once('=')?;
                    let rank = TIME_KEYS.iter().position(|t| *t == key)?;
                    Some((rank, part.to_owned()))
                })
                .collect();
            keys.sort();
            (!keys.is_empty()).then(|| {
                keys.into_iter()
                    .map(|(_, part)| part)
                    .collect::<Vec<_>>()
                    .join("/")
            })
        })
        // Every partition of a dataset has the same keys, so the text sorts by the values.
        .max())
}

/// Glob matching every Parquet file of a dataset whose files sit `depth` folders down.
pub fn dataset_glob(lake_dir: &Path, dataset: &str, depth: usize) -> String {
    files_glob(&dataset_dir(lake_dir, dataset), depth)
}

/// Glob matching every Parquet file `depth` folders below `dir`.
pub fn files_glob(dir: &Path, depth: usize) -> String {
    let mut glob = dir.to_string_lossy().replace('\\', "/");
    for _ in 0..depth {
        glob.push_str("/*");
    }
    glob.push_str("/*.parquet");
    glob
}

/// A run id that sorts by time and differs between concurrent processes.
pub fn run_id() -> String {
    format!(
        "{}_{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%3f"),
        std::process::id()
    )
}

/// The lake held by one process at a time (`<lake>/.lock`, flock): every command that
/// writes it (generate, ingest, compact) and the refresh, which reads it and writes its lake
/// models; released when dropped. The holder leaves its pid and command line in the file,
/// so a busy lake can say who holds it.
pub struct LakeLock {
    file: File,
    lake_dir: PathBuf,
}

impl LakeLock {
    /// Takes the lock, waiting up to `timeout` for another holder to let go.
    pub fn acquire(lake_dir: &Path, timeout: std::time::Duration) -> Result<LakeLock> {
        fs::create_dir_all(lake_dir)
            .with_context(|| format!("cannot create lake directory {}", lake_dir.display()))?;
        let path = lake_dir.join(".lock");
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let started = std::time::Instant::now();
        loop {
            match try_lock(&file) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if started.elapsed() >= timeout {
                        let holder = fs::read_to_string(&path).unwrap_or_default();
                        let holder = match holder.trim() {
                            "" => "another process".to_owned(),
                            holder => holder.to_owned(),
                        };
                        return Err(crate::error::Error::LakeBusy {
                            lake: lake_dir.to_owned(),
                            holder,
                            waited: timeout.as_secs(),
                        }
                        .into());
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => {
                    return Err(
                        anyhow::Error::new(e).context(format!("cannot lock {}", path.display()))
                    )
                }
            }
        }
        {
            use std::io::{Seek, Write};
            let args: Vec<String> = std::env::args().collect();
            file.set_len(0)?;
            file.seek(std::io::SeekFrom::Start(0))?;
            writeln!(file, "pid {}: {}", std::process::id(), args.join(" "))?;
        }
        // Only the holder stages: whatever staging holds now was left by a killed run.
        // Cleaned once per hold, so that several staged writes of one holder (a refresh
        // writing its lake models) keep each other's files.
        let staging_root = lake_dir.join(STAGING_DIR);
        if staging_root.exists() {
            let leftovers = fs::read_dir(&staging_root)
                .with_context(|| format!("cannot read {}", staging_root.display()))?
                .next()
                .is_some();
            if leftovers {
                tracing::info!(
                    "removing leftovers of an interrupted run in {}",
                    staging_root.display()
                );
            }
            fs::remove_dir_all(&staging_root).with_context(|| {
                format!("cannot clean staging directory {}", staging_root.display())
            })?;
        }
        Ok(LakeLock {
            file,
            lake_dir: lake_dir.to_owned(),
        })
    }

    /// The lake this lock holds.
    pub fn lake_dir(&self) -> &Path {
        &self.lake_dir
    }
}

impl Drop for LakeLock {
    fn drop(&mut self) {
        // A waiting process finds an empty file when nobody holds the lake.
        let _ = self.file.set_len(0);
    }
}

#[cfg(unix)]
fn try_lock(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; the lock is released when the file is closed.
    match unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(not(unix))]
fn try_lock(_file: &File) -> std::io::Result<()> {
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
    /// Held by the write itself, unless the caller holds the lake (`begin_locked`).
    _lock: Option<LakeLock>,
}

impl StagedWrite {
    /// Takes the lake lock (waiting up to `lock_timeout`), which removes what earlier killed
    /// runs left in staging, and creates an empty staging directory for this run.
    pub fn begin(
        lake_dir: &Path,
        dataset: &str,
        run_id: &str,
        lock_timeout: std::time::Duration,
    ) -> Result<StagedWrite> {
        let lock = LakeLock::acquire(lake_dir, lock_timeout)?;
        StagedWrite::start(lake_dir, dataset, run_id, Some(lock))
    }

    /// A staged write under a lock the caller already holds (a refresh writing several lake
    /// models in one hold).
    pub fn begin_locked(lock: &LakeLock, dataset: &str, run_id: &str) -> Result<StagedWrite> {
        StagedWrite::start(&lock.lake_dir, dataset, run_id, None)
    }

    fn start(
        lake_dir: &Path,
        dataset: &str,
        run_id: &str,
        lock: Option<LakeLock>,
    ) -> Result<StagedWrite> {
        let target = dataset_dir(lake_dir, dataset);
        let flat = dataset.replace(['/', '\\'], "+");
        let aside = lake_dir.join(format!(".previous-{flat}"));
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
        let dir = lake_dir.join(STAGING_DIR).join(format!("{flat}-{run_id}"));
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(StagedWrite {
            dir,
            target,
            aside,
            published: false,
            _lock: lock,
        })
    }

    /// Makes the staged tree, plus the existing files `keep` accepts (hard-linked, never
    /// rewritten), the dataset's lake in one atomic step.
    pub fn publish(mut self, keep: Keep<'_>) -> Result<()> {
        if self.target.exists() {
            // An hourly append adds one new folder and drops nothing: one rename into the
            // lake is as atomic as a swap and costs nothing per file already there.
            if let Some(root) = self.single_new_root()? {
                if keeps_everything(&self.target, Path::new(""), keep)? {
                    let (from, to) = (self.dir.join(&root), self.target.join(&root));
                    if let Some(parent) = to.parent() {
                        fs::create_dir_all(parent)
                            .with_context(|| format!("cannot create {}", parent.display()))?;
                    }
                    fs::rename(&from, &to).with_context(|| {
                        format!("cannot move {} to {}", from.display(), to.display())
                    })?;
                    self.published = true;
                    let _ = fs::remove_dir_all(&self.dir);
                    return Ok(());
                }
            }
            self.link_kept(keep)?;
        }
        self.swap()
    }

    /// Publishes the staged tree folder by folder: each staged leaf folder takes the place of
    /// the dataset's folder of the same path in one rename (an exchange when it exists), and
    /// each folder of `gone` is removed. Every folder changes at once, the dataset as a whole
    /// does not: a crash midway leaves some folders new and the others old. For derived data
    /// whose writer records the files it published and writes again whatever differs (lake
    /// models), where it costs one rename per changed folder instead of a link per file.
    /// Returns the folders it changed (relative to the dataset's folder): those published,
    /// then those of `gone`.
    pub fn publish_by_folder(mut self, gone: &[PathBuf]) -> Result<Vec<PathBuf>> {
        let mut folders = Vec::new();
        for file in list_files(&self.dir, "")? {
            if let Some(folder) = file.parent() {
                if folders.last() != Some(&folder.to_path_buf()) {
                    folders.push(folder.to_path_buf());
                }
            }
        }
        for (i, folder) in folders.iter().enumerate() {
            if i == 1 {
                crate::fault::point("publish-between-folders");
            }
            let (staged, target) = (self.dir.join(folder), self.target.join(folder));
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            if target.exists() {
                replace_dir(&staged, &target, &self.aside)?;
            } else {
                fs::rename(&staged, &target).with_context(|| {
                    format!("cannot move {} to {}", staged.display(), target.display())
                })?;
            }
        }
        for folder in gone {
            let target = self.target.join(folder);
            if target.exists() {
                fs::remove_dir_all(&target)
                    .with_context(|| format!("cannot remove {}", target.display()))?;
            }
        }
        self.published = true;
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            tracing::warn!(
                "the write is published, but {} could not be removed ({e}); the next run removes it",
                self.dir.display()
            );
        }
        folders.extend(gone.iter().cloned());
        Ok(folders)
    }

    /// Hard-links the existing files `keep` accepts into the staged tree, which then holds
    /// the whole dataset as it will be (readable before it is published).
    fn link_kept(&mut self, keep: Keep<'_>) -> Result<()> {
        if self.target.exists() {
            link_tree(&self.target, &self.dir, Path::new(""), keep)?;
        }
        Ok(())
    }

    /// Makes the staged tree, as it is, the dataset's lake in one atomic step.
    fn swap(mut self) -> Result<()> {
        if let Some(parent) = self.target.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
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

impl StagedWrite {
    /// The one folder of the staged tree that the lake lacks and that holds every staged
    /// file, if there is such a folder (relative to the dataset).
    fn single_new_root(&self) -> Result<Option<PathBuf>> {
        let mut rel = PathBuf::new();
        loop {
            let entries: Vec<fs::DirEntry> = fs::read_dir(self.dir.join(&rel))
                .with_context(|| format!("cannot read {}", self.dir.join(&rel).display()))?
                .collect::<std::io::Result<_>>()?;
            let [only] = entries.as_slice() else {
                return Ok(None);
            };
            if !only.file_type()?.is_dir() {
                return Ok(None);
            }
            rel.push(only.file_name());
            if !self.target.join(&rel).exists() {
                return Ok(Some(rel));
            }
        }
    }
}

/// Whether `keep` accepts every file under `dir` (names only: nothing is opened).
fn keeps_everything(dir: &Path, rel: &Path, keep: Keep<'_>) -> Result<bool> {
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let rel = rel.join(entry.file_name());
        let kept = if entry.file_type()?.is_dir() {
            keeps_everything(&entry.path(), &rel, keep)?
        } else {
            keep(&rel)
        };
        if !kept {
            return Ok(false);
        }
    }
    Ok(true)
}

impl Drop for StagedWrite {
    fn drop(&mut self) {
        if !self.published {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Hard-links every file under `from` that `keep` accepts into the same relative place
/// under `to`; `rel` is `from` relative to the dataset directory.
fn link_tree(from: &Path, to: &Path, rel: &Path, keep: Keep<'_>) -> Result<()> {
    for entry in fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let rel = rel.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            link_tree(&src, &dst, &rel, keep)?;
        } else if !keep(&rel) {
            continue;
        } else if dst.exists() {
            bail!(
                "{} exists in both the lake and the new files; refusing to overwrite it",
                dst.display()
            );
        } else {
            if let Some(parent) = dst.parent() {
                fs::create_dir_all(parent)?;
            }
            // A copy would double the disk used and is not what the user asked for: a lake
            // that cannot hard-link (another filesystem) is an error to fix, not to hide.
            fs::hard_link(&src, &dst).with_context(|| {
                format!(
                    "cannot hard-link {} into {} (is the staging directory on the lake's filesystem?)",
                    src.display(),
                    dst.display()
                )
            })?;
        }
    }
    Ok(())
}

/// Puts the folder `staged` in place of `target` (created when absent) in one step; the
/// previous contents are removed. Used for folders other than datasets (the exports).
pub fn swap_in(staged: &Path, target: &Path) -> Result<()> {
    if target.exists() {
        let name = target
            .file_name()
            .map_or_else(Default::default, |n| n.to_string_lossy().into_owned());
        let aside = target.with_file_name(format!(".{name}.previous"));
        replace_dir(staged, target, &aside)
    } else {
        fs::rename(staged, target)
            .with_context(|| format!("cannot move {} to {}", staged.display(), target.display()))
    }
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
            crate::fault::point("publish-after-swap");
            // The swap is the write: once it happened, a failed cleanup must not report the
            // write as failed (a retried append would double the data). The next run's
            // `begin` removes the leftovers with the staging directory.
            if let Err(e) = fs::remove_dir_all(new) {
                tracing::warn!(
                    "the write is published, but the previous files in {} could not be removed ({e}); the next run removes them",
                    new.display()
                );
            }
            return Ok(());
        }
        tracing::warn!(
            "renameat2(RENAME_EXCHANGE) failed ({}); publishing with two renames, which a crash in between can interrupt (the next run restores the previous lake)",
            std::io::Error::last_os_error()
        );
    }
    fs::rename(target, aside).with_context(|| format!("cannot move {} aside", target.display()))?;
    fs::rename(new, target)
        .with_context(|| format!("cannot move {} to {}", new.display(), target.display()))?;
    if let Err(e) = fs::remove_dir_all(aside) {
        tracing::warn!(
            "the write is published, but {} could not be removed ({e}); the next run removes it",
            aside.display()
        );
    }
    Ok(())
}

/// What `status` reports about one dataset's files.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LakeFiles {
    pub partitions: u64,
    pub files: u64,
    pub bytes: u64,
}

/// Counts the leaf partitions, Parquet files and bytes of a dataset at any depth (zero when
/// it does not exist).
pub fn scan_files(lake_dir: &Path, dataset: &str) -> Result<LakeFiles> {
    let mut stats = LakeFiles::default();
    let dir = dataset_dir(lake_dir, dataset);
    if !dir.exists() {
        return Ok(stats);
    }
    scan_dir(&dir, &mut stats)?;
    Ok(stats)
}

fn scan_dir(dir: &Path, stats: &mut LakeFiles) -> Result<()> {
    let mut has_files = false;
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            scan_dir(&path, stats)?;
        } else if path.extension().is_some_and(|e| e == "parquet") {
            has_files = true;
            stats.files += 1;
            stats.bytes += entry.metadata()?.len();
        }
    }
    stats.partitions += u64::from(has_files);
    Ok(())
}

/// Whether a dataset holds a Parquet file at any depth; stops at the first one, where
/// [`scan_files`] lists the whole dataset.
pub fn has_files(lake_dir: &Path, dataset: &str) -> Result<bool> {
    fn any(dir: &Path) -> Result<bool> {
        for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
            let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                if any(&path)? {
                    return Ok(true);
                }
            } else if path.extension().is_some_and(|e| e == "parquet") {
                return Ok(true);
            }
        }
        Ok(false)
    }
    let dir = dataset_dir(lake_dir, dataset);
    Ok(dir.exists() && any(&dir)?)
}

/// Every Parquet file of a dataset, relative to its directory, sorted.
pub fn list_files(lake_dir: &Path, dataset: &str) -> Result<Vec<PathBuf>> {
    let dir = dataset_dir(lake_dir, dataset);
    let mut files = Vec::new();
    if dir.exists() {
        walk_parquet(&dir, Path::new(""), &mut |_, rel| {
            files.push(rel);
            Ok(())
        })?;
    }
    files.sort();
    Ok(files)
}

/// Calls `visit` with each Parquet file under `dir`, and its path relative to the dataset
/// (`rel` being `dir`'s).
fn walk_parquet(
    dir: &Path,
    rel: &Path,
    visit: &mut dyn FnMut(&fs::DirEntry, PathBuf) -> Result<()>,
) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let rel = rel.join(entry.file_name());
        if is_dir(&entry)? {
            walk_parquet(&entry.path(), &rel, visit)?;
        } else if rel.extension().is_some_and(|e| e == "parquet") {
            visit(&entry, rel)?;
        }
    }
    Ok(())
}

/// A lake file as readers see it: a change of size or modification time is a change of data.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileStamp {
    /// Relative to the dataset's folder, with forward slashes.
    pub path: String,
    pub size: i64,
    pub mtime_ns: i64,
}

/// The stamps of a dataset's files now, sorted by path. The top-level folders (days, hours)
/// are walked on every core: a lake of thousands of folders costs a system call or three
/// per folder and file, and a refresh lists it each time.
pub fn stamps(lake_dir: &Path, dataset: &str) -> Result<Vec<FileStamp>> {
    let root = dataset_dir(lake_dir, dataset);
    if !root.exists() {
        return Ok(Vec::new());
    }
    let mut top = Vec::new();
    let mut stamps = Vec::new();
    for entry in fs::read_dir(&root).with_context(|| format!("cannot read {}", root.display()))? {
        let entry = entry?;
        let rel = PathBuf::from(entry.file_name());
        if is_dir(&entry)? {
            top.push(rel);
        } else if rel.extension().is_some_and(|e| e == "parquet") {
            stamps.push(stamp_of(&entry.path(), &rel, metadata(&entry))?);
        }
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = top.len().div_ceil(threads).max(1);
    let walked: Vec<Result<Vec<FileStamp>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = top
            .chunks(chunk)
            .map(|folders| {
                let root = &root;
                scope.spawn(move || {
                    let mut out = Vec::new();
                    for rel in folders {
                        walk_parquet(&root.join(rel), rel, &mut |entry, rel| {
                            out.push(stamp_of(&entry.path(), &rel, metadata(entry))?);
                            Ok(())
                        })?;
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a lake listing thread panicked"))
            .collect()
    });
    for part in walked {
        stamps.extend(part?);
    }
    stamps.sort();
    Ok(stamps)
}

/// The stamps of a dataset's files in `folders` (relative to its folder; one that does not
/// exist has none), sorted by path: a few folders known to have changed, read again.
pub fn stamps_under(lake_dir: &Path, dataset: &str, folders: &[PathBuf]) -> Result<Vec<FileStamp>> {
    let root = dataset_dir(lake_dir, dataset);
    let mut stamps = Vec::new();
    for rel in folders {
        let dir = root.join(rel);
        if dir.is_dir() {
            walk_parquet(&dir, rel, &mut |entry, rel| {
                stamps.push(stamp_of(&entry.path(), &rel, metadata(entry))?);
                Ok(())
            })?;
        }
    }
    stamps.sort();
    Ok(stamps)
}

/// Whether `entry` is a folder, a symbolic link to one included: DuckDB's globs follow links.
fn is_dir(entry: &fs::DirEntry) -> Result<bool> {
    let kind = entry.file_type()?;
    Ok(match kind.is_symlink() {
        true => fs::metadata(entry.path())
            .with_context(|| format!("cannot follow the link {}", entry.path().display()))?
            .is_dir(),
        false => kind.is_dir(),
    })
}

/// The metadata of `entry`, of the file a symbolic link points to (what readers read: a
/// changed target is changed data) rather than of the link.
fn metadata(entry: &fs::DirEntry) -> std::io::Result<fs::Metadata> {
    match entry.file_type()?.is_symlink() {
        true => fs::metadata(entry.path()),
        false => entry.metadata(),
    }
}

/// The stamp of `rel`, a file under `root`.
fn stamp(root: &Path, rel: &Path) -> Result<FileStamp> {
    let path = root.join(rel);
    stamp_of(&path, rel, fs::metadata(&path))
}

/// The stamp of the file at `path` (`rel` within its dataset), from its metadata.
fn stamp_of(path: &Path, rel: &Path, meta: std::io::Result<fs::Metadata>) -> Result<FileStamp> {
    let meta = meta.with_context(|| format!("cannot read {}", path.display()))?;
    let mtime = meta
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    Ok(FileStamp {
        path: rel.to_string_lossy().replace('\\', "/"),
        size: meta.len() as i64,
        mtime_ns: mtime,
    })
}

/// A partition folder's value (`San%20Jose` in `city=San%20Jose`) as DuckDB reads it: its
/// writer escapes spaces, `/`, `=`, `:`, non-ASCII letters and more as `%XX`, and its reader
/// decodes every valid `%XX` and keeps the rest as written.
pub fn folder_value(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// A folder path of `<column>=<value>` parts (`city=San%20Jose/day=1`) with each value as
/// DuckDB reads it (`city=San Jose/day=1`), as [`Layout::partition_path_sql`] gives it.
pub fn read_folder(path: &str) -> String {
    path.split('/')
        .map(|part| match part.split_once('=') {
            Some((column, value)) => format!("{column}={}", folder_value(value)),
            None => part.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// How a dataset's rows are laid out in folders: Hive partition levels, each a name and an
/// SQL expression over the rows, and optionally one file of a fixed name per leaf folder.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub partitions: Vec<(String, String)>,
    pub file_name: Option<String>,
}

impl Layout {
    /// The partition values as DuckDB reads them from folder names (its writer escapes some
    /// characters in them: compare with [`read_folder`]), for a relation that holds the
    /// partition columns as text.
    pub fn partition_path_sql(&self) -> String {
        if self.partitions.is_empty() {
            return "''".to_owned();
        }
        let parts: Vec<String> = self
            .partitions
            .iter()
            .map(|(name, _)| {
                format!(
                    "{} || coalesce(CAST({} AS VARCHAR), '__HIVE_DEFAULT_PARTITION__')",
                    crate::db::literal(&format!("{name}=")),
                    crate::db::ident(name)
                )
            })
            .collect();
        format!("concat_ws('/', {})", parts.join(", "))
    }

    /// `COPY (select) TO dir` with this layout's partitioning; `select` must provide the
    /// partition columns by name. With a fixed file name, each leaf folder's files are then
    /// settled into exactly that one file.
    pub fn copy(
        &self,
        conn: &duckdb::Connection,
        select: &str,
        dir: &Path,
        file_prefix: &str,
        options: &CopyOptions,
    ) -> Result<u64> {
        let select = crate::db::portable_select(conn, select)?;
        self.copy_as_is(conn, &select, dir, file_prefix, options)
    }

    /// [`Layout::copy`] of a select the caller knows to return only types every reader takes
    /// (declared columns, say): finding out costs a bind of the select, which for a large CSV
    /// means sniffing it once more.
    pub fn copy_as_is(
        &self,
        conn: &duckdb::Connection,
        select: &str,
        dir: &Path,
        file_prefix: &str,
        options: &CopyOptions,
    ) -> Result<u64> {
        let partition = if self.partitions.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = self
                .partitions
                .iter()
                .map(|(n, _)| crate::db::ident(n))
                .collect();
            format!(", PARTITION_BY ({})", names.join(", "))
        };
        let target = if self.partitions.is_empty() {
            dir.join(format!("{file_prefix}_0.parquet"))
        } else {
            dir.to_owned()
        };
        let sql = format!(
            "COPY ({select}) TO {} (FORMAT parquet, COMPRESSION {}, ROW_GROUP_SIZE {}{partition}{}, OVERWRITE_OR_IGNORE true)",
            crate::db::path_literal(&target),
            options.compression.as_sql(),
            options.row_group_size,
            if self.partitions.is_empty() {
                String::new()
            } else {
                format!(", FILENAME_PATTERN {}", crate::db::literal(&format!("{file_prefix}_{{i}}")))
            },
        );
        let rows: i64 = crate::db::query_one(conn, &sql)?;
        if let Some(name) = &self.file_name {
            settle_file_names(conn, dir, name)?;
        }
        Ok(rows as u64)
    }
}

/// Parquet settings of lake writes.
#[derive(Debug, Clone, Copy)]
pub struct CopyOptions {
    pub compression: crate::config::Compression,
    pub row_group_size: u64,
}

impl CopyOptions {
    /// The settings of the configuration's `lake:` section.
    pub fn of(lake: &crate::config::Lake) -> CopyOptions {
        CopyOptions {
            compression: lake.compression,
            row_group_size: lake.row_group_size,
        }
    }
}

/// Leaves exactly one file named `name` in every folder under `dir` that holds Parquet
/// files: a lone file is renamed, several (DuckDB splits a partition when it closes files
/// early) are rewritten into one.
fn settle_file_names(conn: &duckdb::Connection, dir: &Path, name: &str) -> Result<()> {
    let mut by_folder: std::collections::BTreeMap<PathBuf, Vec<PathBuf>> = Default::default();
    fn walk(dir: &Path, out: &mut std::collections::BTreeMap<PathBuf, Vec<PathBuf>>) -> Result<()> {
        for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                walk(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "parquet") {
                out.entry(dir.to_owned()).or_default().push(path);
            }
        }
        Ok(())
    }
    walk(dir, &mut by_folder)?;
    for (folder, files) in by_folder {
        let target = folder.join(name);
        if let [only] = files.as_slice() {
            if *only != target {
                fs::rename(only, &target)
                    .with_context(|| format!("cannot rename {} to {name}", only.display()))?;
            }
            continue;
        }
        let list: Vec<String> = files.iter().map(|f| crate::db::path_literal(f)).collect();
        let temp = folder.join(format!(".{name}.tmp"));
        crate::db::execute(
            conn,
            &format!(
                "COPY (SELECT * FROM read_parquet([{}], hive_partitioning = false)) TO {} (FORMAT parquet, COMPRESSION zstd)",
                list.join(", "),
                crate::db::path_literal(&temp)
            ),
        )?;
        for f in &files {
            fs::remove_file(f).with_context(|| format!("cannot remove {}", f.display()))?;
        }
        fs::rename(&temp, &target)
            .with_context(|| format!("cannot rename {} to {name}", temp.display()))?;
    }
    Ok(())
}

/// What `compact` did to one dataset.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactReport {
    pub partitions: u64,
    pub files_before: u64,
    pub files_after: u64,
    /// Per rewritten folder, the files it held and the one that now holds the same rows, so
    /// readers that remember files can see that nothing changed.
    pub replaced: Vec<(Vec<FileStamp>, FileStamp)>,
}

/// Rewrites every leaf folder of a dataset that holds several Parquet files into one file,
/// atomically (a staged write, published in one rename); single-file folders are untouched.
pub fn compact(
    conn: &duckdb::Connection,
    lake_dir: &Path,
    dataset: &str,
    options: &CopyOptions,
    lock_timeout: std::time::Duration,
) -> Result<CompactReport> {
    let staged = StagedWrite::begin(lake_dir, dataset, &run_id(), lock_timeout)?;
    let mut by_folder: std::collections::BTreeMap<PathBuf, Vec<PathBuf>> = Default::default();
    for file in list_files(lake_dir, dataset)? {
        let folder = file.parent().map(Path::to_path_buf).unwrap_or_default();
        by_folder.entry(folder).or_default().push(file);
    }
    let root = dataset_dir(lake_dir, dataset);
    let mut report = CompactReport::default();
    let mut rewritten = std::collections::BTreeSet::new();
    for (folder, files) in &by_folder {
        report.files_before += files.len() as u64;
        if files.len() < 2 {
            report.files_after += files.len() as u64;
            continue;
        }
        let list: Vec<String> = files
            .iter()
            .map(|f| crate::db::path_literal(&root.join(f)))
            .collect();
        let out_dir = staged.dir.join(folder);
        fs::create_dir_all(&out_dir)
            .with_context(|| format!("cannot create {}", out_dir.display()))?;
        let out = folder.join(format!("compact_{}.parquet", run_id()));
        crate::db::execute(
            conn,
            &format!(
                "COPY (SELECT * FROM read_parquet([{}], hive_partitioning = false)) TO {} \
                 (FORMAT parquet, COMPRESSION {}, ROW_GROUP_SIZE {})",
                list.join(", "),
                crate::db::path_literal(&staged.dir.join(&out)),
                options.compression.as_sql(),
                options.row_group_size
            ),
        )?;
        // Stamped under the lock: publishing renames the folder, which keeps size and time.
        let old = files
            .iter()
            .map(|f| stamp(&root, f))
            .collect::<Result<Vec<_>>>()?;
        report.replaced.push((old, stamp(&staged.dir, &out)?));
        report.partitions += 1;
        report.files_after += 1;
        rewritten.insert(folder.clone());
    }
    if rewritten.is_empty() {
        return Ok(report);
    }
    crate::fault::point("compact-before-publish");
    staged.publish(&|rel: &Path| !rel.parent().is_some_and(|p| rewritten.contains(p)))?;
    Ok(report)
}
