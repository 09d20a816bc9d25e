//! Models: one SELECT per file under `sql/models/<dataset>/`, declared with their layer,
//! materialization and data tests in that folder's `models.yaml`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

use super::data_tests::DataTest;
use super::template::Vars;
use crate::error::{Error, Result};

pub const MODELS_DIR: &str = "models";
pub const MODELS_FILE: &str = "models.yaml";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    Bronze,
    Silver,
    Gold,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Materialized {
    /// Computed when read; always current with the lake.
    View,
    /// Rebuilt on every refresh, so reads are instant.
    Table,
    /// A table refreshed by the lake partitions that changed since the last refresh.
    Incremental,
    /// Parquet partitions in the lake, `<lake>/<model>/<partition>=…/data.parquet`, written
    /// when the source partitions they come from arrive or change (never again otherwise);
    /// the warehouse holds a view over them. For silver: validated and deduplicated once per
    /// partition, and the warehouse file stays small however large the lake grows.
    Lake,
}

/// How an incremental model follows the lake: which dataset's partitions, and which of its
/// rows a changed partition stands for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncrementalSpec {
    /// Lake dataset (folder) whose files drive the model.
    pub lake: String,
    /// The dataset's partition column(s) a change is tracked by: `date` for `date=…/`, or
    /// `[date, hour]` for `date=…/hour=…/` (deeper levels count as part of their parent).
    #[serde(deserialize_with = "one_or_many")]
    pub partition: Vec<String>,
    /// The model's column(s) that a changed partition's rows are found by (default: the
    /// partition columns).
    #[serde(default, deserialize_with = "one_or_many_opt")]
    pub key: Option<Vec<String>>,
    /// SQL over the partition columns (as folder text) giving the key value a partition
    /// feeds (default: the value itself cast to the key's type): one expression for one key,
    /// e.g. `date_trunc('week', CAST(date AS DATE))`, or a map key -> expression.
    #[serde(default)]
    pub key_of_partition: Option<KeyOfPartition>,
    /// A relation the model reads whose rows of a partition feed only that partition's rows
    /// (a bronze view over the lake), or with `key_of_partition` only the rows of the key
    /// that expression maps the partition to (its week): while the model is refreshed
    /// incrementally it sees just the rows of the changed partitions (keys), so only they are read.
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum KeyOfPartition {
    One(String),
    Each(std::collections::BTreeMap<String, String>),
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

fn one_or_many_opt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Vec<String>>, D::Error> {
    one_or_many(d).map(Some)
}

impl IncrementalSpec {
    pub fn keys(&self) -> &[String] {
        self.key.as_deref().unwrap_or(&self.partition)
    }

    /// The expression giving key `key` from the partition columns, when one is declared.
    pub fn key_expression(&self, key: &str) -> Option<&str> {
        match &self.key_of_partition {
            Some(KeyOfPartition::One(e)) => Some(e),
            Some(KeyOfPartition::Each(map)) => map.get(key).map(String::as_str),
            None => None,
        }
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.partition.is_empty() || self.keys().is_empty() {
            return Err("incremental: `partition` and `key` need at least one column".into());
        }
        match &self.key_of_partition {
            Some(KeyOfPartition::One(_)) if self.keys().len() != 1 => {
                Err("incremental: one `key_of_partition` expression needs exactly one key; give a map key -> expression".into())
            }
            Some(KeyOfPartition::Each(map)) => match map.keys().find(|k| !self.keys().contains(k)) {
                Some(k) => Err(format!("incremental: key_of_partition names `{k}`, which is not a key")),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelsFile {
    models: Vec<ModelSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelSpec {
    name: String,
    layer: Layer,
    materialized: Materialized,
    /// SQL file beside models.yaml; defaults to `<name>.sql`.
    #[serde(default)]
    sql: Option<String>,
    /// Written as `- not_null: [a, b]`, i.e. one-key maps rather than YAML tags.
    #[serde(default, with = "serde_yaml::with::singleton_map_recursive")]
    tests: Vec<DataTest>,
    /// Required for `materialized: incremental`.
    #[serde(default)]
    incremental: Option<IncrementalSpec>,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub name: String,
    pub layer: Layer,
    pub materialized: Materialized,
    pub path: PathBuf,
    /// The SELECT, placeholders filled.
    pub select: String,
    pub tests: Vec<DataTest>,
    pub incremental: Option<IncrementalSpec>,
    /// SHA-256 of the SQL and the incremental spec: a change forces a full rebuild.
    pub checksum: String,
    /// SHA-256 of the declared tests: new or changed tests run over the whole model once.
    pub tests_checksum: String,
    /// The models.yaml folder the model belongs to.
    pub group: String,
}

impl Model {
    /// The statement that (re)creates the model.
    pub fn create_sql(&self) -> String {
        let kind = match self.materialized {
            // Written as Parquet by the refresh (see `lake_model`); as plain SQL, a view.
            Materialized::View | Materialized::Lake => "VIEW",
            Materialized::Table | Materialized::Incremental => "TABLE",
        };
        format!(
            "CREATE OR REPLACE {kind} {} AS\n{}",
            crate::db::ident(&self.name),
            self.select.trim_end().trim_end_matches(';')
        )
    }

    /// Gold models are historized and exported.
    pub fn is_gold(&self) -> bool {
        self.layer == Layer::Gold
    }
}

/// Loads every `<sql_dir>/models/<dataset>/models.yaml`, datasets in name order, models in
/// the order their file lists them (which must put a model after what it reads).
pub fn discover(sql_dir: &Path, vars: &Vars) -> Result<Vec<Model>> {
    let root = sql_dir.join(MODELS_DIR);
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&root) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot read {}", root.display())))
        }
    };
    dirs.sort();
    let mut models: Vec<Model> = Vec::new();
    for dir in dirs {
        let spec_path = dir.join(MODELS_FILE);
        let text = std::fs::read_to_string(&spec_path)
            .with_context(|| format!("cannot read {}", spec_path.display()))?;
        let file: ModelsFile = serde_yaml::from_str(&text).map_err(|e| Error::Config {
            path: spec_path.clone(),
            message: e.to_string(),
        })?;
        for spec in file.models {
            // The name becomes a table name and an export file name.
            let valid = !spec.name.is_empty()
                && spec
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                bail!(
                    "{}: model name `{}` must be letters, digits and underscores",
                    spec_path.display(),
                    spec.name
                );
            }
            if models.iter().any(|m| m.name == spec.name) {
                bail!(
                    "{}: model `{}` is declared twice",
                    spec_path.display(),
                    spec.name
                );
            }
            let path = dir.join(
                spec.sql
                    .clone()
                    .unwrap_or_else(|| format!("{}.sql", spec.name)),
            );
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "{}: cannot read the SQL of model `{}`",
                    spec_path.display(),
                    spec.name
                )
            })?;
            let tests = spec
                .tests
                .into_iter()
                .map(|t| t.rendered(vars, &spec_path))
                .collect::<Result<Vec<_>>>()?;
            // On a view or table, `incremental` only says which lake partitions its rows
            // follow, so that its row-level tests look at the changed ones.
            if spec.materialized == Materialized::Incremental && spec.incremental.is_none() {
                bail!(
                    "{}: model `{}`: `materialized: incremental` needs `incremental: {{lake, partition}}`",
                    spec_path.display(),
                    spec.name
                );
            }
            if spec.materialized == Materialized::Lake
                && spec.incremental.as_ref().is_none_or(|i| i.source.is_none())
            {
                bail!(
                    "{}: model `{}`: `materialized: lake` needs `incremental: {{lake, partition, source}}`: \
                     its partitions are written from the source's rows of the same partitions",
                    spec_path.display(),
                    spec.name
                );
            }
            if let Some(Err(message)) = spec.incremental.as_ref().map(IncrementalSpec::check) {
                bail!("{}: model `{}`: {message}", spec_path.display(), spec.name);
            }
            let tests_checksum = super::migrations::sha256_hex(format!("{tests:?}").as_bytes());
            let select = vars.render(&text, &path)?;
            // The materialization too: a view made a lake model with the same SQL must be
            // written to the lake, not found unchanged.
            let checksum = super::migrations::sha256_hex(
                format!("{select}\n{:?}\n{:?}", spec.incremental, spec.materialized).as_bytes(),
            );
            models.push(Model {
                select,
                name: spec.name,
                layer: spec.layer,
                materialized: spec.materialized,
                path,
                tests,
                incremental: spec.incremental,
                checksum,
                tests_checksum,
                group: dir
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            });
        }
    }
    Ok(models)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        /// Whatever models.yaml holds, discovery answers with models or an error naming it.
        #[test]
        fn any_models_file_is_models_or_an_error_naming_it(text in "(models:\\n  - name: [a-z_]{1,8}\\n    layer: (bronze|gold|tin)\\n    materialized: (view|table)\\n)?\\PC{0,120}") {
            let dir = tempfile::tempdir().unwrap();
            let folder = dir.path().join(MODELS_DIR).join("d");
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::write(folder.join(MODELS_FILE), &text).unwrap();
            let vars = Vars::new(&crate::config::Config::default(), Default::default());
            if let Err(e) = discover(dir.path(), &vars) {
                let msg = format!("{e:#}");
                proptest::prop_assert!(msg.contains("models.yaml"), "{}", msg);
            }
        }
    }
}
