//! A throwaway micro-wh project in a temp dir, and helpers to drive the real binary on it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use duckdb::Connection;
use tempfile::TempDir;

pub struct Project {
    pub dir: TempDir,
}

impl Project {
    /// A project with the repository's SQL for the events dataset and a small events dataset.
    pub fn new(rows: u64) -> Project {
        isolate_cwd();
        let dir = tempfile::tempdir().unwrap();
        let sql = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
        copy_dir(&sql, &dir.path().join("sql"));
        // The business_events and telemetry models need their sources declared; tests that
        // want them ask.
        for dataset in ["business_events", "telemetry"] {
            std::fs::remove_dir_all(dir.path().join("sql/models").join(dataset)).unwrap();
        }
        let project = Project { dir };
        project.write(
            "warehouse.yaml",
            &format!("generate:\n  events:\n    rows: {rows}\n    seed: 7\nengine:\n  memory_limit: 1GB\n"),
        );
        project
    }

    /// An empty project (no SQL, no config) for ingest tests.
    pub fn empty() -> Project {
        isolate_cwd();
        Project {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Copies `tests/fixtures/<name>` into the project root.
    pub fn fixture(&self, name: &str) {
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(name),
            self.dir.path(),
        );
    }

    /// Copies a file or folder of the repository into the project at the same place.
    pub fn copy_from_repo(&self, rel: &str) {
        let from = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
        if from.is_dir() {
            copy_dir(&from, &self.path(rel));
        } else {
            std::fs::create_dir_all(self.path(rel).parent().unwrap()).unwrap();
            std::fs::copy(from, self.path(rel)).unwrap();
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    /// `micro-wh <args>` run from the project root, quiet.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("micro-wh").unwrap();
        cmd.current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .env_remove("MICRO_WH_CONFIG")
            .args(args);
        cmd
    }

    /// Runs micro-wh and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        assert!(
            out.status.success(),
            "micro-wh {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Appends events generated with the config file `config` (a day, say) and `seed`.
    pub fn append_events(&self, config: &str, seed: &str) -> String {
        self.ok(&[
            "--config", config, "generate", "events", "--mode", "append", "--seed", seed,
        ])
    }

    /// Runs micro-wh, asserts failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        assert!(
            !out.status.success(),
            "micro-wh {args:?} should have failed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// One value from the warehouse file (opened and closed again, so the binary can use it),
    /// resolving the views' lake paths from the project root as a user's CLI session would.
    pub fn warehouse_value<T: duckdb::types::FromSql>(&self, sql: &str) -> T {
        let conn = Connection::open(self.path("warehouse.duckdb")).unwrap();
        self.search_from_root(&conn);
        conn.query_row(sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// One value from an in-memory engine over the project's files: `'data/…'`, `'raw/…'` and
    /// `'exports/…'` literals in `sql` are made absolute paths into this project.
    pub fn file_value<T: duckdb::types::FromSql>(&self, sql: &str) -> T {
        let conn = Connection::open_in_memory().unwrap();
        let sql = self.absolute(sql);
        conn.query_row(&sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// `sql` with `'data/…'`, `'raw/…'` and `'exports/…'` literals made absolute.
    pub fn absolute(&self, sql: &str) -> String {
        let root = self.dir.path().to_string_lossy().replace('\'', "''");
        let mut sql = sql.to_owned();
        for dir in ["data/", "raw/", "exports/"] {
            sql = sql.replace(&format!("'{dir}"), &format!("'{root}/{dir}"));
        }
        sql
    }

    fn search_from_root(&self, conn: &Connection) {
        let root = self.dir.path().to_string_lossy().replace('\'', "''");
        conn.execute_batch(&format!("SET file_search_path = '{root}'"))
            .unwrap();
    }

    /// Rows in one of the Parquet file and the warehouse table but not in the other.
    pub fn rows_differing(&self, parquet: &str, table: &str) -> i64 {
        let conn = Connection::open_in_memory().unwrap();
        let (file, db) = (self.path(parquet), self.path("warehouse.duckdb"));
        conn.execute_batch(&format!("ATTACH '{}' AS wh (READ_ONLY)", db.display()))
            .unwrap();
        let sql = format!(
            "SELECT (SELECT count(*) FROM (FROM '{f}' EXCEPT ALL FROM wh.{table})) \
                  + (SELECT count(*) FROM (FROM wh.{table} EXCEPT ALL FROM '{f}'))",
            f = file.display()
        );
        conn.query_row(&sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Every Parquet file of the events lake, relative to the project root, sorted.
    pub fn lake_files(&self) -> Vec<String> {
        let mut files = Vec::new();
        walk(&self.path("data/events"), &mut |p| {
            if p.extension().is_some_and(|e| e == "parquet") {
                files.push(
                    p.strip_prefix(self.dir.path())
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        });
        files.sort();
        files
    }
}

/// The first of `names` found on PATH. CI installs every tool the tests need, so there a
/// missing one fails the test; elsewhere the test is skipped, loudly.
pub fn tool(names: &[&str], install: &str) -> Option<PathBuf> {
    let found = names
        .iter()
        .flat_map(|name| {
            std::env::var_os("PATH")
                .into_iter()
                .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
                .map(move |dir| dir.join(name))
        })
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install {} ({install})",
            names[0]
        );
        eprintln!("\n*** SKIPPED: no {} on PATH ({install}) ***\n", names[0]);
    }
    found
}

pub const EVENTS: &str = "read_parquet('data/events/*/*.parquet', hive_partitioning = true)";

/// Moves the test process into an empty folder once: DuckDB resolves a relative path against
/// the working directory before `file_search_path`, so a view's `data/…` must never find the
/// repository's own lake (left by `cargo run -- refresh`) instead of the test project's.
fn isolate_cwd() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        std::env::set_current_dir(dir).unwrap();
    });
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

pub fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, f);
        } else {
            f(&path);
        }
    }
}

/// Every file under `root`, as paths relative to it with `/` separators.
pub fn relative_files(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    walk(root, &mut |f| {
        files.push(
            f.strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/"),
        );
    });
    files.sort();
    files
}
