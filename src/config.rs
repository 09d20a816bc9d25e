//! `warehouse.yaml`: every path and setting, with defaults, strict parsing and validation.

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const DEFAULT_CONFIG_FILE: &str = "warehouse.yaml";

/// The whole configuration. Paths are relative to the project root, which is the
/// directory holding the config file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub paths: Paths,
    pub engine: Engine,
    pub lake: Lake,
    pub generate: Generate,
    pub refresh: Refresh,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Paths {
    /// Root of the Hive-partitioned Parquet lake; each dataset lives in `<lake_dir>/<dataset>/`.
    pub lake_dir: PathBuf,
    pub warehouse: PathBuf,
    pub exports_dir: PathBuf,
    pub sql_dir: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            lake_dir: "data".into(),
            warehouse: "warehouse.duckdb".into(),
            exports_dir: "exports".into(),
            sql_dir: "sql".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Engine {
    /// Worker threads for DuckDB and the generators; 0 means all cores.
    pub threads: usize,
    /// DuckDB `memory_limit`, e.g. "2GB" or "512MB".
    pub memory_limit: String,
    /// Storage format written into a new warehouse file, so older DuckDB CLIs can open it.
    pub storage_compatibility_version: String,
}

impl Default for Engine {
    fn default() -> Self {
        Engine {
            threads: 0,
            memory_limit: "2GB".into(),
            storage_compatibility_version: "v1.5.0".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Zstd,
    Snappy,
}

impl Compression {
    pub fn as_sql(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Snappy => "snappy",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Lake {
    pub compression: Compression,
    /// Rows per Parquet row group.
    pub row_group_size: u64,
    /// Rows per partitioned write: DuckDB buffers up to this many rows, so it bounds memory.
    pub max_rows_per_write: u64,
}

impl Default for Lake {
    fn default() -> Self {
        Lake {
            compression: Compression::Zstd,
            row_group_size: 122_880,
            max_rows_per_write: 1_000_000,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Generate {
    pub events: EventsConfig,
}

/// Settings of the product-events generator.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    pub rows: u64,
    pub seed: u64,
    /// First possible `event_time`, "YYYY-MM-DD HH:MM:SS".
    pub start: String,
    /// Last possible `event_time` (inclusive).
    pub end: String,
    pub max_user_id: i64,
    pub max_team_id: i64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            rows: 1_000_000,
            seed: 42,
            start: "2023-01-01 00:00:00".into(),
            end: "2025-12-31 23:59:59".into(),
            max_user_id: 100_000,
            max_team_id: 1_000,
        }
    }
}

impl EventsConfig {
    pub fn start_time(&self) -> Result<NaiveDateTime> {
        parse_time(&self.start)
    }

    pub fn end_time(&self) -> Result<NaiveDateTime> {
        parse_time(&self.end)
    }
}

fn parse_time(text: &str) -> Result<NaiveDateTime> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .with_context(|| format!("`{text}` is not a time of the form YYYY-MM-DD HH:MM:SS"))
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Refresh {
    /// Dataset generated first when `refresh` finds its lake empty.
    pub default_dataset: String,
    /// Models whose layer is gold are written to `<exports_dir>/<model>.parquet`.
    pub export: bool,
}

impl Default for Refresh {
    fn default() -> Self {
        Refresh {
            default_dataset: "events".into(),
            export: true,
        }
    }
}

impl Config {
    /// Reads `path`; a missing file at the default location means "all defaults".
    pub fn load(path: &Path, must_exist: bool) -> Result<Config> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
                return Ok(Config::default());
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display())))
            }
        };
        Config::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let config_error = |message: String| Error::Config {
            path: path.to_owned(),
            message,
        };
        // An empty file deserializes to unit, not to a map; treat it as all defaults.
        let config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| config_error(e.to_string()))?
        };
        config.validate().map_err(|message| config_error(message))?;
        Ok(config)
    }

    /// Checks values serde cannot; the message starts with the offending key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let ev = &self.generate.events;
        if ev.rows == 0 {
            return Err("generate.events.rows: must be at least 1".into());
        }
        let start = ev
            .start_time()
            .map_err(|e| format!("generate.events.start: {e:#}"))?;
        let end = ev
            .end_time()
            .map_err(|e| format!("generate.events.end: {e:#}"))?;
        if end < start {
            return Err(format!(
                "generate.events.end: {end} is before start {start}"
            ));
        }
        if ev.max_user_id < 1 {
            return Err("generate.events.max_user_id: must be at least 1".into());
        }
        if ev.max_team_id < 1 {
            return Err("generate.events.max_team_id: must be at least 1".into());
        }
        if self.lake.row_group_size == 0 {
            return Err("lake.row_group_size: must be at least 1".into());
        }
        if self.lake.max_rows_per_write == 0 {
            return Err("lake.max_rows_per_write: must be at least 1".into());
        }
        if !is_memory_size(&self.engine.memory_limit) {
            return Err(format!(
                "engine.memory_limit: `{}` is not a size such as 512MB or 2GB",
                self.engine.memory_limit
            ));
        }
        let v = &self.engine.storage_compatibility_version;
        if !(v == "latest"
            || v.starts_with('v') && v[1..].split('.').all(|p| p.parse::<u32>().is_ok()))
        {
            return Err(format!(
                "engine.storage_compatibility_version: `{v}` is not a version such as v1.5.0 or `latest`"
            ));
        }
        for (key, p) in [
            ("paths.lake_dir", &self.paths.lake_dir),
            ("paths.warehouse", &self.paths.warehouse),
            ("paths.exports_dir", &self.paths.exports_dir),
            ("paths.sql_dir", &self.paths.sql_dir),
        ] {
            if p.as_os_str().is_empty() {
                return Err(format!("{key}: must not be empty"));
            }
        }
        Ok(())
    }

    /// Number of worker threads to use, resolving 0 to the number of cores.
    pub fn threads(&self) -> usize {
        match self.engine.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

fn is_memory_size(text: &str) -> bool {
    let t = text.trim();
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    number.parse::<f64>().is_ok_and(|n| n > 0.0)
        && ["b", "kb", "mb", "gb", "tb", "kib", "mib", "gib", "tib"]
            .contains(&unit.trim().to_ascii_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse("paths:\n  lake_dirr: x\n", Path::new("w.yaml")).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("w.yaml") && msg.contains("lake_dirr"), "{msg}");
    }

    #[test]
    fn bad_values_are_refused() {
        for (yaml, key) in [
            ("lake:\n  compression: gzip\n", "gzip"),
            ("engine:\n  memory_limit: lots\n", "engine.memory_limit"),
            (
                "generate:\n  events:\n    rows: 0\n",
                "generate.events.rows",
            ),
            (
                "generate:\n  events:\n    start: yesterday\n",
                "generate.events.start",
            ),
        ] {
            let msg = format!(
                "{:#}",
                Config::parse(yaml, Path::new("w.yaml")).unwrap_err()
            );
            assert!(msg.contains(key), "{yaml} -> {msg}");
        }
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let c = Config::parse("", Path::new("w.yaml")).unwrap();
        assert_eq!(c.generate.events.rows, 1_000_000);
        assert_eq!(c.engine.storage_compatibility_version, "v1.5.0");
    }

    #[test]
    fn memory_sizes() {
        assert!(is_memory_size("2GB") && is_memory_size("512 MiB") && is_memory_size("1.5gb"));
        assert!(!is_memory_size("GB") && !is_memory_size("2 parsecs") && !is_memory_size(""));
    }
}
