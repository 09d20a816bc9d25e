//! Spark parity: the same lake and the same models on Apache Spark (PySpark in local mode,
//! `micro-wh spark`) give every gold table micro-wh's refresh exports, row for row; a plain
//! `spark.read.parquet` of each lake folder sees what DuckDB sees; and a model using a
//! DuckDB-only function is refused with the model, the function and the line.
//!
//! Type mapping checked here (README: Scaling out): every type must be equal, except that
//! DECIMAL precision may differ at the same scale (Spark sizes a sum's precision from its
//! input; DuckDB uses 38), and a partition column of digits may be INT on Spark where DuckDB
//! infers BIGINT, or VARCHAR for zero-padded digits (`month=01`: DuckDB '01', Spark 1; the
//! values must then be the same numbers). micro-wh's own views and `micro-wh spark` type
//! such columns alike (VARCHAR). Floating-point values must agree within a relative 1e-9.

mod common;

use std::path::Path;

use common::Project;
use duckdb::Connection;

/// Floating-point columns agree within this relative difference.
const FLOAT_TOLERANCE: f64 = 1e-9;

/// Whether PySpark, sqlglot and Java are here; in CI their absence fails the test.
fn spark_available() -> bool {
    let python = std::process::Command::new("python3")
        .args(["-c", "import pyspark, sqlglot"])
        .output();
    let java = std::process::Command::new("java").arg("-version").output();
    let missing = match (&python, &java) {
        (Ok(p), _) if !p.status.success() => {
            format!(
                "pyspark/sqlglot: {}",
                String::from_utf8_lossy(&p.stderr).trim()
            )
        }
        (Err(e), _) => format!("python3: {e}"),
        (_, Err(e)) => format!("java: {e}"),
        (_, Ok(j)) if !j.status.success() => "java -version failed".to_owned(),
        _ => return true,
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must provide Spark (.ci/run installs java and `pip install pyspark sqlglot`): {missing}"
    );
    eprintln!("\n*** SKIPPED spark parity: {missing} (pip install pyspark sqlglot; a JDK) ***\n");
    false
}

/// The repository's configuration with a small lake: two months of events, two weeks of
/// business events (few partitions: Spark's cost here is per file, not per row).
fn small_project() -> Project {
    let p = Project::empty();
    p.copy_from_repo("sql");
    let mut config: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("warehouse.yaml"))
            .unwrap(),
    )
    .unwrap();
    let set = |config: &mut serde_yaml::Value, path: &[&str], value: serde_yaml::Value| {
        let mut node = config;
        for key in &path[..path.len() - 1] {
            node = &mut node[*key];
        }
        node[path[path.len() - 1]] = value;
    };
    set(&mut config, &["generate", "events", "rows"], 3000.into());
    set(
        &mut config,
        &["generate", "events", "start"],
        "2024-01-01 00:00:00".into(),
    );
    set(
        &mut config,
        &["generate", "events", "end"],
        "2024-02-29 23:59:59".into(),
    );
    set(
        &mut config,
        &["generate", "business_events", "rows"],
        2000.into(),
    );
    set(
        &mut config,
        &["generate", "business_events", "files"],
        2.into(),
    );
    set(
        &mut config,
        &["generate", "business_events", "days"],
        14.into(),
    );
    set(
        &mut config,
        &["generate", "business_events", "seed"],
        1.into(),
    );
    p.write("warehouse.yaml", &serde_yaml::to_string(&config).unwrap());
    p
}

fn spark_cmd(p: &Project, args: &[&str]) -> std::process::Output {
    p.cmd(&[&["spark", "--master", "local[2]"], args].concat())
        // A small lake: a few shuffle partitions, not Spark's 200.
        .env("MICRO_WH_SPARK_SHUFFLE_PARTITIONS", "2")
        .output()
        .unwrap()
}

#[test]
fn every_gold_table_on_spark_equals_micro_wh_row_for_row() {
    if !spark_available() {
        return;
    }
    let p = small_project();
    p.ok(&["refresh"]);
    let plan: serde_json::Value = serde_json::from_str(&p.ok(&["spark", "--plan"])).unwrap();
    let gold: Vec<(String, String)> = plan["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["layer"] == "gold")
        .map(|m| {
            (
                m["dataset"].as_str().unwrap().to_owned(),
                m["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for dataset in ["events", "business_events"] {
        assert!(
            gold.iter().any(|(d, _)| d == dataset),
            "no gold model of {dataset} in the plan: {gold:?}"
        );
    }

    let target = p.path("spark_gold");
    let report = p.path("lake_report.json");
    let out = spark_cmd(
        &p,
        &[
            "--target",
            &target.to_string_lossy(),
            "--lake-report",
            &report.to_string_lossy(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "micro-wh spark failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{} gold tables written", gold.len())),
        "{stdout}"
    );

    let conn = Connection::open_in_memory().unwrap();
    for (_, name) in &gold {
        let duck = format!(
            "read_parquet('{}')",
            p.path(&format!("exports/{name}.parquet")).display()
        );
        let spark = format!("read_parquet('{}/*.parquet')", target.join(name).display());
        let (duck_cols, spark_cols) = (columns(&conn, &duck), columns(&conn, &spark));
        assert_eq!(
            duck_cols.iter().map(|c| &c.0).collect::<Vec<_>>(),
            spark_cols.iter().map(|c| &c.0).collect::<Vec<_>>(),
            "{name}: columns"
        );
        for ((col, d), (_, s)) in duck_cols.iter().zip(&spark_cols) {
            assert!(
                same_type(d, s, false),
                "{name}.{col}: DuckDB {d}, Spark {s}"
            );
        }
        let rows: i64 = value(&conn, &format!("SELECT count(*) FROM {duck}"));
        assert!(rows > 0, "{name} is empty: nothing compared");
        assert_eq!(
            value::<i64>(&conn, &format!("SELECT count(*) FROM {spark}")),
            rows,
            "{name}: row count"
        );
        let differing = differing_rows(&conn, &duck, &spark, &duck_cols);
        assert_eq!(differing, 0, "{name}: {differing} of {rows} rows differ");
    }

    // The exports and the lake itself, read plainly by both engines.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    for (_, name) in &gold {
        let file = format!("{name}.parquet");
        let spark = &report["exports"][&file];
        let duck = format!(
            "read_parquet('{}')",
            p.path(&format!("exports/{file}")).display()
        );
        assert_eq!(
            spark["rows"].as_i64(),
            Some(value::<i64>(&conn, &format!("SELECT count(*) FROM {duck}"))),
            "exports/{file}: rows on Spark ({spark})"
        );
        let spark_cols: Vec<(String, String)> = spark["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let (name, ty) = (c[0].as_str().unwrap(), c[1].as_str().unwrap());
                (name.to_owned(), spark_name_as_duckdb(ty))
            })
            .collect();
        assert_eq!(columns(&conn, &duck), spark_cols, "exports/{file}: columns");
    }
    for dataset in ["events", "business_events"] {
        let spark = &report["lake"][dataset];
        let dir = p.path(&format!("data/{dataset}"));
        let duck = format!(
            "read_parquet('{}/**/*.parquet', hive_partitioning = true)",
            dir.display()
        );
        assert_eq!(
            spark["rows"].as_i64().unwrap(),
            value::<i64>(&conn, &format!("SELECT count(*) FROM {duck}")),
            "{dataset}: rows"
        );
        let duck_cols = columns(&conn, &duck);
        let partitions = partition_names(&dir);
        let spark_cols: Vec<(String, String)> = spark["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c[0].as_str().unwrap().to_owned(),
                    c[1].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            duck_cols.len(),
            spark_cols.len(),
            "{dataset}: {duck_cols:?} vs {spark_cols:?}"
        );
        for (col, d) in &duck_cols {
            let s = &spark_cols
                .iter()
                .find(|c| &c.0 == col)
                .unwrap_or_else(|| panic!("{dataset}.{col} not on Spark"))
                .1;
            assert!(
                same_type(d, &spark_name_as_duckdb(s), partitions.contains(col)),
                "{dataset}.{col}: DuckDB {d}, Spark {s}"
            );
        }
        // In folder order (DuckDB lists hive columns by name, Spark in folder order).
        let mut as_text = Vec::new();
        for col in &partitions {
            let d = &duck_cols.iter().find(|c| &c.0 == col).unwrap().1;
            let s = &spark_cols.iter().find(|c| &c.0 == col).unwrap().1;
            // Zero-padded numbers: DuckDB keeps '01' as text, Spark reads 1 (documented).
            as_text.push(if d == "VARCHAR" && s.contains("int") {
                format!("CAST(CAST(\"{col}\" AS BIGINT) AS VARCHAR)")
            } else {
                format!("CAST(\"{col}\" AS VARCHAR)")
            });
        }
        let list = as_text.join(", ");
        let duck_values: String = value(
            &conn,
            &format!("SELECT CAST(to_json(list(v)) AS VARCHAR) FROM (SELECT DISTINCT [{list}] AS v FROM {duck})"),
        );
        let mut spark_values: Vec<Vec<Option<String>>> =
            serde_json::from_value(spark["partition_values"].clone()).unwrap();
        spark_values.sort();
        let mut duck_values: Vec<Vec<Option<String>>> = serde_json::from_str(&duck_values).unwrap();
        duck_values.sort();
        assert!(!duck_values.is_empty(), "{dataset}: no partitions");
        assert_eq!(spark_values, duck_values, "{dataset}: partition values");
    }
}

#[test]
fn a_duckdb_only_function_is_named_with_its_model_and_line() {
    if !spark_available() {
        return;
    }
    let p = Project::empty();
    p.fixture("spark_unportable");
    let out = spark_cmd(&p, &["--target", "out"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("model gold_chart")
            && stderr.contains("gold_chart.sql")
            && stderr.contains("line 4")
            && stderr.contains("`bar`"),
        "the error must name the model, its file, the line and the function:\n{stderr}"
    );
    assert!(!p.path("out").exists(), "nothing is written");
}

/// (name, type) of a relation's columns, as DuckDB reads them.
fn columns(conn: &Connection, relation: &str) -> Vec<(String, String)> {
    let sql = format!("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {relation})");
    let mut stmt = conn.prepare(&sql).unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn value<T: duckdb::types::FromSql>(conn: &Connection, sql: &str) -> T {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Equal after the documented mapping (see the module comment).
fn same_type(duck: &str, spark: &str, partition: bool) -> bool {
    let scale = |t: &str| {
        t.strip_prefix("DECIMAL(")
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|r| r.split(',').nth(1))
            .map(|s| s.trim().to_owned())
    };
    let integer = |t: &str| matches!(t, "INTEGER" | "BIGINT");
    duck == spark
        || (scale(duck).is_some() && scale(duck) == scale(spark))
        || (partition && (integer(duck) || duck == "VARCHAR") && integer(spark))
}

/// Spark's `simpleString` type names in DuckDB's spelling.
fn spark_name_as_duckdb(spark: &str) -> String {
    match spark {
        "string" => "VARCHAR".to_owned(),
        "bigint" => "BIGINT".to_owned(),
        "int" => "INTEGER".to_owned(),
        "smallint" => "SMALLINT".to_owned(),
        "double" => "DOUBLE".to_owned(),
        "float" => "FLOAT".to_owned(),
        "boolean" => "BOOLEAN".to_owned(),
        "date" => "DATE".to_owned(),
        "timestamp_ntz" => "TIMESTAMP".to_owned(),
        "timestamp" => "TIMESTAMP WITH TIME ZONE".to_owned(),
        other => other.to_uppercase(),
    }
}

/// Rows of `a` and `b` paired in sorted order that differ: exactly in every column, except
/// floating-point columns, within FLOAT_TOLERANCE.
fn differing_rows(conn: &Connection, a: &str, b: &str, cols: &[(String, String)]) -> i64 {
    let order = cols
        .iter()
        .map(|(c, _)| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let same = cols
        .iter()
        .map(|(c, t)| {
            if matches!(t.as_str(), "DOUBLE" | "FLOAT") {
                format!(
                    "coalesce(a.\"{c}\" IS NULL AND b.\"{c}\" IS NULL \
                     OR abs(a.\"{c}\" - b.\"{c}\") <= {FLOAT_TOLERANCE} * greatest(1, abs(a.\"{c}\")), false)"
                )
            } else {
                format!("a.\"{c}\" IS NOT DISTINCT FROM b.\"{c}\"")
            }
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    value(
        conn,
        &format!(
            "WITH a AS (SELECT *, row_number() OVER (ORDER BY {order}) AS _rn FROM {a}),
                  b AS (SELECT *, row_number() OVER (ORDER BY {order}) AS _rn FROM {b})
             SELECT count(*) FROM a FULL JOIN b USING (_rn) WHERE NOT ({same}) OR a._rn IS NULL OR b._rn IS NULL"
        ),
    )
}

/// The partition column names of a Hive-partitioned folder, outermost first.
fn partition_names(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let mut dir = dir.to_path_buf();
    loop {
        let mut sub: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir() && e.file_name().to_string_lossy().contains('='))
            .map(|e| e.path())
            .collect();
        sub.sort();
        let Some(first) = sub.into_iter().next() else {
            return names;
        };
        let name = first.file_name().unwrap().to_string_lossy();
        names.push(name.split('=').next().unwrap().to_owned());
        dir = first;
    }
}
