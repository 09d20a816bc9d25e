//! `warehouse.yaml`: every path and setting, with defaults, strict parsing and validation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    /// Settings of each generator, keyed by dataset name; each generator reads its own section.
    pub generate: BTreeMap<String, serde_yaml::Value>,
    /// Files to ingest, keyed by source name (the lake folder and `bronze_<name>` view).
    pub sources: BTreeMap<String, SourceConfig>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Zstd,
    Snappy,
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "zstd" => Ok(Compression::Zstd),
            "snappy" => Ok(Compression::Snappy),
            _ => Err(format!("`{s}` is not a compression (zstd, snappy)")),
        }
    }
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
    /// Seconds to wait for the lake lock when another process holds it (0: fail at once).
    pub lock_timeout_seconds: u64,
}

impl Lake {
    pub fn lock_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.lock_timeout_seconds)
    }
}

impl Default for Lake {
    fn default() -> Self {
        Lake {
            compression: Compression::Zstd,
            row_group_size: 122_880,
            max_rows_per_write: 1_000_000,
            lock_timeout_seconds: 0,
        }
    }
}

/// One declared input of `micro-wh ingest`: where its files are and what a valid row is.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// csv | json | ndjson | log | sqlite | parquet (checked against the ingest formats).
    pub format: String,
    /// A file, a folder (every file in it, sorted) or a glob, relative to the project root.
    pub path: PathBuf,
    /// Declared schema in file order: name -> DuckDB type, optionally followed by NOT NULL.
    #[serde(default, with = "ordered_map")]
    pub columns: Option<Vec<(String, String)>>,
    /// CSV tokens read as NULL (default: the empty field).
    #[serde(default)]
    pub null_values: Option<Vec<String>>,
    /// CSV field separator, one character (default: DuckDB's sniffer's, else the header
    /// line's among `,` tab `;` `|`).
    #[serde(default)]
    pub delimiter: Option<String>,
    /// CSV quote character, `""` for none (default: DuckDB's sniffer's when it finds one,
    /// else `"`).
    #[serde(default)]
    pub quote: Option<String>,
    /// CSV character before a quote inside a quoted field, `\\` for `\"` (default: DuckDB's
    /// sniffer's, else the quote, doubled as RFC 4180 has it).
    #[serde(default)]
    pub escape: Option<String>,
    /// SQL predicates every row must satisfy.
    #[serde(default)]
    pub checks: Vec<String>,
    /// At most one row per key in the lake.
    #[serde(default)]
    pub key: Vec<String>,
    /// Among rows with one key, the greatest `order_by` wins (ties: the later file/line).
    #[serde(default)]
    pub order_by: Option<String>,
    /// Hive partition levels: a list of columns or a map name -> SQL expression.
    #[serde(default)]
    pub partition_by: PartitionBy,
    /// One file of exactly this name per leaf partition folder.
    #[serde(default)]
    pub file_name: Option<String>,
    /// log: a regex whose named groups become columns.
    #[serde(default)]
    pub pattern: Option<String>,
    /// sqlite: which tables (default: all).
    #[serde(default)]
    pub tables: Option<Vec<String>>,
    /// Rows per batch read into the engine.
    #[serde(default = "default_chunk_rows")]
    pub chunk_rows: usize,
}

fn default_chunk_rows() -> usize {
    100_000
}

/// `partition_by` as written: `[a, b]` or `{name: expression}`; both become ordered
/// (name, SQL expression) pairs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PartitionBy(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for PartitionBy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::Null => Ok(PartitionBy::default()),
            serde_yaml::Value::Sequence(items) => items
                .into_iter()
                .map(|v| match v {
                    // A plain column is the expression `"column"` (quoted as db::ident does;
                    // config stays below db).
                    serde_yaml::Value::String(c) => {
                        let quoted = format!("\"{}\"", c.replace('"', "\"\""));
                        Ok((c, quoted))
                    }
                    other => Err(D::Error::custom(format!(
                        "partition_by: expected a column name, found {other:?}"
                    ))),
                })
                .collect::<std::result::Result<_, _>>()
                .map(PartitionBy),
            serde_yaml::Value::Mapping(map) => ordered_pairs(map)
                .map(PartitionBy)
                .map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "partition_by: expected a list of columns or a map name -> expression, found {other:?}"
            ))),
        }
    }
}

fn ordered_pairs(map: serde_yaml::Mapping) -> std::result::Result<Vec<(String, String)>, String> {
    map.into_iter()
        .map(|(k, v)| match (k, v) {
            (serde_yaml::Value::String(k), serde_yaml::Value::String(v)) => Ok((k, v)),
            (k, v) => Err(format!("expected `name: text`, found {k:?}: {v:?}")),
        })
        .collect()
}

/// A YAML map whose order matters (CSV columns are in file order).
mod ordered_map {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<(String, String)>>, D::Error> {
        use serde::de::Error as _;
        match Option::<serde_yaml::Mapping>::deserialize(d)? {
            None => Ok(None),
            Some(map) => super::ordered_pairs(map)
                .map(Some)
                .map_err(D::Error::custom),
        }
    }

    pub fn serialize<S: Serializer>(
        value: &Option<Vec<(String, String)>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        for (k, v) in value.iter().flatten() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Refresh {
    /// Dataset generated first when `refresh` finds its lake empty.
    pub default_dataset: String,
    /// Models whose layer is gold are written to `<exports_dir>/<model>.<format>`.
    pub export: bool,
    /// Formats of the gold exports.
    pub export_formats: Vec<ExportFormat>,
    /// Also write the HTML report (`micro-wh report`) to `<exports_dir>/report.html`.
    pub report: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Parquet,
    Csv,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 2] = [ExportFormat::Parquet, ExportFormat::Csv];

    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Parquet => "parquet",
            ExportFormat::Csv => "csv",
        }
    }
}

impl std::str::FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "parquet" => Ok(ExportFormat::Parquet),
            "csv" => Ok(ExportFormat::Csv),
            _ => Err(format!("`{s}` is not an export format (parquet, csv)")),
        }
    }
}

impl Default for Refresh {
    fn default() -> Self {
        Refresh {
            default_dataset: "events".into(),
            export: true,
            export_formats: vec![ExportFormat::Parquet],
            report: false,
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
        config.validate().map_err(config_error)?;
        Ok(config)
    }

    /// Checks values serde cannot; the message starts with the offending key.
    pub fn validate(&self) -> std::result::Result<(), String> {
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
        for (name, source) in &self.sources {
            source
                .validate()
                .map_err(|message| format!("sources.{name}.{message}"))?;
            if !valid_name(name) {
                return Err(format!(
                    "sources.{name}: a source name must be letters, digits and underscores"
                ));
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

/// Names that become directories, view names and file names.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl SourceConfig {
    /// Checks what serde cannot; the message starts with the key at fault.
    fn validate(&self) -> std::result::Result<(), String> {
        if self.path.as_os_str().is_empty() {
            return Err("path: must not be empty".into());
        }
        if self.chunk_rows == 0 {
            return Err("chunk_rows: must be at least 1".into());
        }
        if self.order_by.is_some() && self.key.is_empty() {
            return Err("order_by: only meaningful with `key`".into());
        }
        if let Some(name) = &self.file_name {
            if name.is_empty() || name.contains(['/', '\\']) || !name.ends_with(".parquet") {
                return Err(format!(
                    "file_name: `{name}` must be a plain file name ending in .parquet"
                ));
            }
        }
        if self.pattern.is_some() != (self.format == "log") {
            return Err("pattern: required for format log, and only for it".into());
        }
        if self.tables.is_some() && self.format != "sqlite" {
            return Err("tables: only for format sqlite".into());
        }
        for (key, value) in [
            ("null_values", self.null_values.as_ref().map(|_| "")),
            ("delimiter", self.delimiter.as_deref()),
            ("quote", self.quote.as_deref()),
            ("escape", self.escape.as_deref()),
        ] {
            if value.is_some() && self.format != "csv" {
                return Err(format!("{key}: only for format csv"));
            }
        }
        let one_char = |v: &str, empty: bool| {
            (v.len() == 1 && !matches!(v.as_bytes()[0], b'\n' | b'\r')) || (empty && v.is_empty())
        };
        if let Some(d) = &self.delimiter {
            if !one_char(d, false) {
                return Err(format!(
                    "delimiter: one ASCII character other than a line break, found {d:?}"
                ));
            }
        }
        for (key, value) in [("quote", &self.quote), ("escape", &self.escape)] {
            let Some(v) = value else { continue };
            if !one_char(v, true) {
                return Err(format!(
                    "{key}: one ASCII character other than a line break, or \"\" for none, found {v:?}"
                ));
            }
            match &self.delimiter {
                Some(d) if d == v => {
                    return Err(format!("{key}: must differ from the delimiter {d:?}"));
                }
                None if v.len() == 1 && ",\t;|".contains(v.as_str()) => {
                    return Err(format!(
                        "{key}: {v:?} could be the separator found in a file's header line; \
                         declare `delimiter:` too"
                    ));
                }
                _ => {}
            }
        }
        for (name, _) in &self.partition_by.0 {
            if !valid_name(name) {
                return Err(format!(
                    "partition_by: `{name}` must be letters, digits and underscores"
                ));
            }
        }
        Ok(())
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
                "sources:\n  w:\n    format: csv\n    path: x\n    colums: {}\n",
                "colums",
            ),
            (
                "sources:\n  w:\n    format: csv\n    path: x\n    order_by: t\n",
                "sources.w.order_by",
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
        assert!(c.sources.is_empty());
        assert_eq!(c.engine.storage_compatibility_version, "v1.5.0");
    }

    #[test]
    fn source_columns_and_partitions_keep_their_order() {
        let c = Config::parse(
            "sources:\n  w:\n    format: csv\n    path: raw\n    columns:\n      z: INT\n      a: VARCHAR NOT NULL\n    partition_by:\n      year: strftime(t, '%Y')\n      b: x\n",
            Path::new("w.yaml"),
        )
        .unwrap();
        let w = &c.sources["w"];
        let cols: Vec<&str> = w
            .columns
            .iter()
            .flatten()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(cols, ["z", "a"]);
        let parts: Vec<&str> = w.partition_by.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(parts, ["year", "b"]);
    }

    /// YAML made of the config's own keys (and a few wrong ones) with values of any type.
    fn yaml_value() -> impl proptest::strategy::Strategy<Value = serde_yaml::Value> {
        use proptest::prelude::*;
        let key = prop::sample::select(vec![
            "paths",
            "engine",
            "lake",
            "generate",
            "sources",
            "refresh",
            "lake_dir",
            "threads",
            "memory_limit",
            "compression",
            "events",
            "rows",
            "format",
            "path",
            "columns",
            "key",
            "partition_by",
            "file_name",
            "checks",
            "order_by",
            "nonsense",
            "csv",
            "zstd",
        ]);
        let leaf = prop_oneof![
            Just(serde_yaml::Value::Null),
            any::<bool>().prop_map(serde_yaml::Value::Bool),
            any::<i64>().prop_map(|n| serde_yaml::Value::Number(n.into())),
            "\\PC{0,12}".prop_map(serde_yaml::Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_yaml::Value::Sequence),
                prop::collection::btree_map(key.clone(), inner, 0..5).prop_map(|m| {
                    serde_yaml::Value::Mapping(
                        m.into_iter()
                            .map(|(k, v)| (serde_yaml::Value::String(k.to_owned()), v))
                            .collect(),
                    )
                }),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

        #[test]
        fn any_text_is_a_config_or_an_error_naming_the_file(text in "\\PC{0,300}") {
            if let Err(e) = Config::parse(&text, Path::new("w.yaml")) {
                let msg = format!("{e:#}");
                proptest::prop_assert!(msg.contains("w.yaml"), "{}", msg);
            }
        }

        #[test]
        fn any_yaml_is_a_config_or_an_error_naming_the_file(value in yaml_value()) {
            let text = serde_yaml::to_string(&value).unwrap();
            if let Err(e) = Config::parse(&text, Path::new("w.yaml")) {
                let msg = format!("{e:#}");
                proptest::prop_assert!(msg.contains("w.yaml"), "{}", msg);
            }
        }

        #[test]
        fn random_bytes_in_the_file_are_an_error_naming_it(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("warehouse.yaml");
            std::fs::write(&path, &bytes).unwrap();
            if let Err(e) = Config::load(&path, true) {
                let msg = format!("{e:#}");
                proptest::prop_assert!(msg.contains("warehouse.yaml"), "{}", msg);
            }
        }
    }

    #[test]
    fn memory_sizes() {
        assert!(is_memory_size("2GB") && is_memory_size("512 MiB") && is_memory_size("1.5gb"));
        assert!(!is_memory_size("GB") && !is_memory_size("2 parsecs") && !is_memory_size(""));
    }
}
