//! `micro-wh spark`: the same models over the same lake on Apache Spark. micro-wh writes a
//! plan (the models' SQL as refresh renders it, their data tests, the views and tables
//! refresh gets from elsewhere) and the PySpark runner under `spark/` executes it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Serialize;

use super::{refresh, Outcome, Project};
use crate::cli::SparkArgs;
use crate::error::{Error, Result};
use crate::ingest::BronzeView;
use crate::warehouse::models::Model;
use crate::{db, ingest, warehouse};

/// The runner, built into the binary so `micro-wh spark` works from any project.
const RUNNER: &str = include_str!("../../spark/micro_wh_spark.py");

#[derive(Serialize)]
struct Plan {
    /// The project root: other relative paths in the SQL are read from there.
    root: String,
    /// Where the lake is (absolute), and what `{{ lake_dir }}` became in the SQL.
    lake_dir: String,
    lake_dir_in_sql: String,
    /// micro-wh's exports, which `--lake-report` reads too.
    exports_dir: String,
    sources: Vec<BronzeView>,
    /// Per lake dataset folder, its partition columns typed as DuckDB's plain
    /// `read_parquet(…, hive_partitioning = true)` types them.
    lake_partition_types: BTreeMap<String, Vec<(String, String)>>,
    reference_tables: Vec<ReferenceTable>,
    models: Vec<PlannedModel>,
}

/// A table the migrations create and fill (such as `dim_event_names`), with its rows as text.
#[derive(Serialize)]
struct ReferenceTable {
    name: String,
    columns: Vec<(String, String)>,
    rows: Vec<Vec<Option<String>>>,
}

#[derive(Serialize)]
struct PlannedModel {
    name: String,
    dataset: String,
    /// bronze | silver | gold; gold is written to the target.
    layer: String,
    /// view | table | incremental (Spark builds every one in full).
    materialized: String,
    path: String,
    sql: String,
    tests: Vec<PlannedTest>,
}

#[derive(Serialize)]
struct PlannedTest {
    name: String,
    sql: String,
    min: Option<u64>,
    max: Option<u64>,
}

pub fn run(project: &Project, args: &SparkArgs) -> Result<Outcome> {
    let plan = plan(project, &args.datasets)?;
    let json = serde_json::to_string_pretty(&plan)?;
    if args.plan {
        println!("{json}");
        return Ok(Outcome::Success);
    }
    let target = args.target.as_deref().context("--target is required")?;
    // A local folder is relative to where the user is, as every path flag; a URI is Spark's.
    let target = if target.contains("://") {
        target.to_owned()
    } else {
        project.cwd.join(target).to_string_lossy().into_owned()
    };
    let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
    let (runner, plan_file) = (
        dir.path().join("micro_wh_spark.py"),
        dir.path().join("plan.json"),
    );
    std::fs::write(&runner, RUNNER).context("cannot write the Spark runner")?;
    std::fs::File::create(&plan_file)
        .and_then(|mut f| f.write_all(json.as_bytes()))
        .context("cannot write the Spark plan")?;
    let mut command = std::process::Command::new(&args.python);
    command.arg(&runner).arg("--plan").arg(&plan_file).args([
        "--target",
        &target,
        "--master",
        &args.master,
    ]);
    if let Some(lake) = &args.lake {
        command.args(["--lake", lake]);
    }
    if let Some(report) = &args.lake_report {
        command.arg("--lake-report").arg(project.cwd.join(report));
    }
    let status = command.status().with_context(|| {
        format!(
            "cannot run {} (set --python or MICRO_WH_PYTHON to a Python with pyspark and sqlglot)",
            args.python
        )
    })?;
    match status.code() {
        Some(0) => Ok(Outcome::Success),
        Some(code) if code == i32::from(crate::error::exit::DATA_TESTS_FAILED) => {
            Err(Error::DataTestsFailed(vec![
                "  (listed above; nothing was written to the target)".to_owned()
            ])
            .into())
        }
        _ => bail!("the Spark run failed ({status}); its message is above"),
    }
}

/// Everything the runner needs, with no access to the warehouse file.
fn plan(project: &Project, datasets: &[String]) -> Result<Plan> {
    let inputs = refresh::inputs(project)?;
    let known: std::collections::BTreeSet<&str> =
        inputs.models.iter().map(|m| m.group.as_str()).collect();
    if let Some(d) = datasets.iter().find(|d| !known.contains(d.as_str())) {
        bail!(
            "--dataset {d}: no models.yaml under {}/models/{d} (datasets with models: {})",
            project.config.paths.sql_dir.display(),
            known.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    let conn = db::open_in_memory(&project.config, project.config.threads())?;
    let models = inputs
        .models
        .iter()
        .filter(|m| datasets.is_empty() || datasets.contains(&m.group))
        .map(planned)
        .collect();
    Ok(Plan {
        root: project.root.to_string_lossy().replace('\\', "/"),
        lake_dir: project.lake_dir().to_string_lossy().replace('\\', "/"),
        lake_dir_in_sql: project
            .config
            .paths
            .lake_dir
            .to_string_lossy()
            .replace('\\', "/"),
        exports_dir: project.exports_dir().to_string_lossy().replace('\\', "/"),
        sources: ingest::bronze_views(&project.config, &project.lake_dir())?,
        lake_partition_types: lake_partition_types(&conn, &project.lake_dir())?,
        reference_tables: reference_tables(&conn, &inputs.migrations)?,
        models,
    })
}

fn planned(model: &Model) -> PlannedModel {
    let tests = model
        .tests
        .iter()
        .flat_map(|t| {
            t.checks(
                &model.name,
                None,
                &warehouse::data_tests::read_count,
                &warehouse::data_tests::read_unique,
            )
        })
        .map(|c| {
            let (min, max) = c.bounds().unwrap_or_default();
            PlannedTest {
                name: c.name.clone(),
                sql: c.sql(),
                min,
                max,
            }
        })
        .collect();
    PlannedModel {
        name: model.name.clone(),
        dataset: model.group.clone(),
        layer: format!("{:?}", model.layer).to_lowercase(),
        materialized: format!("{:?}", model.materialized).to_lowercase(),
        path: model.path.to_string_lossy().into_owned(),
        sql: model.select.clone(),
        tests,
    }
}

/// The migrations applied to an empty in-memory database (the warehouse file is not
/// touched): the tables they create beside micro-wh's bookkeeping, with their rows.
fn reference_tables(
    conn: &duckdb::Connection,
    migrations: &[warehouse::migrations::Migration],
) -> Result<Vec<ReferenceTable>> {
    warehouse::ensure_bookkeeping(conn)?;
    let tables = |conn: &duckdb::Connection| -> Result<Vec<String>> {
        let sql = "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' ORDER BY 1";
        let mut stmt = db::prepare(conn, sql)?;
        let names = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(names)
    };
    let bookkeeping = tables(conn)?;
    warehouse::migrations::apply(conn, migrations, false)
        .context("cannot apply the migrations to an in-memory database for Spark")?;
    let mut out = Vec::new();
    for name in tables(conn)?
        .into_iter()
        .filter(|t| !bookkeeping.contains(t))
    {
        out.push(reference_table(conn, &name)?);
    }
    Ok(out)
}

fn reference_table(conn: &duckdb::Connection, name: &str) -> Result<ReferenceTable> {
    let table = db::ident(name);
    let mut stmt = db::prepare(conn, &format!("DESCRIBE {table}"))?;
    let columns: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let as_text: Vec<String> = columns
        .iter()
        .map(|(c, _)| format!("CAST({} AS VARCHAR)", db::ident(c)))
        .collect();
    let mut stmt = db::prepare(conn, &format!("SELECT {} FROM {table}", as_text.join(", ")))?;
    let width = columns.len();
    let rows = stmt
        .query_map([], |r| {
            (0..width)
                .map(|i| r.get::<_, Option<String>>(i))
                .collect::<Result<Vec<_>, _>>()
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ReferenceTable {
        name: name.to_owned(),
        columns,
        rows,
    })
}

/// DuckDB's types for the partition columns of every dataset folder in the lake (from the
/// folder names of its first file), so a model's `read_parquet` without `hive_types` sees
/// the same types on Spark: `hour=7` a BIGINT, `month=01` the text '01'.
fn lake_partition_types(
    conn: &duckdb::Connection,
    lake_dir: &Path,
) -> Result<BTreeMap<String, Vec<(String, String)>>> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(lake_dir) else {
        return Ok(out);
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let dataset = entry.file_name().to_string_lossy().into_owned();
        if dataset.starts_with(['.', '_']) || !entry.path().is_dir() {
            continue;
        }
        let Some(first) = crate::lake::list_files(lake_dir, &dataset)?
            .into_iter()
            .next()
        else {
            continue;
        };
        let partitions: Vec<String> = first
            .iter()
            .filter_map(|part| part.to_str()?.split_once('=').map(|(k, _)| k.to_owned()))
            .collect();
        if partitions.is_empty() {
            continue;
        }
        let glob = format!(
            "{}/**/*.parquet",
            crate::lake::dataset_dir(lake_dir, &dataset)
                .to_string_lossy()
                .replace('\\', "/")
        );
        let sql = format!(
            "DESCRIBE SELECT * FROM read_parquet({}, hive_partitioning = true, union_by_name = true)",
            db::literal(&glob)
        );
        let mut stmt = db::prepare(conn, &sql)?;
        let columns: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let typed = partitions
            .iter()
            .filter_map(|p| columns.iter().find(|(c, _)| c == p).cloned())
            .collect();
        out.insert(dataset, typed);
    }
    Ok(out)
}
