//! The lake is plain Hive-partitioned Parquet: pyarrow and polars read an ingested source's
//! folder as it is, with the same rows and partition columns DuckDB sees.

mod common;

use common::Project;

/// Runs a Python script; None (a skip) where pyarrow or polars is missing outside CI.
fn python(script: &str) -> Option<String> {
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("ModuleNotFoundError") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install pyarrow and polars: {stderr}"
        );
        eprintln!("SKIPPED: {stderr}");
        return None;
    }
    assert!(out.status.success(), "{stderr}");
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn pyarrow_and_polars_read_the_category_layout_as_duckdb_does() {
    let p = Project::empty();
    p.copy_from_repo("warehouse.yaml");
    p.ok(&[
        "generate",
        "business-events",
        "--rows",
        "2000",
        "--seed",
        "4",
    ]);
    p.ok(&["ingest", "business_events"]);
    let rows: i64 = p.warehouse_value("SELECT count(*) FROM bronze_business_events");
    let categories: i64 =
        p.warehouse_value("SELECT count(DISTINCT event_category) FROM bronze_business_events");
    let root = p.path("data/business_events");
    let script = format!(
        r#"
import pyarrow.dataset as ds, polars as pl
root = {root:?}
t = ds.dataset(root, format="parquet", partitioning="hive").to_table()
df = pl.scan_parquet(root + "/**/*.parquet", hive_partitioning=True).collect()
print(t.num_rows, len(set(t.column("event_category").to_pylist())), df.height, df["event_category"].n_unique(),
      sorted(t.column_names) == sorted(df.columns), "year" in df.columns and "day" in df.columns)
"#,
        root = root.to_string_lossy()
    );
    let Some(out) = python(&script) else { return };
    assert_eq!(
        out,
        format!("{rows} {categories} {rows} {categories} True True")
    );
}
