//! The warehouse file is an interface: the DuckDB CLI from PyPI (1.5.x) must open it and
//! every view and table must answer when run from the project root.

mod common;

use common::Project;

fn duckdb_cli() -> Option<std::path::PathBuf> {
    common::tool(&["duckdb"], "pip install duckdb-cli")
}

#[test]
fn duckdb_cli_opens_the_warehouse_and_every_model_answers() {
    let Some(cli) = duckdb_cli() else { return };
    let p = Project::new(5_000);
    p.ok(&["refresh"]);
    let models = [
        "bronze_events",
        "silver_events_validated",
        "silver_events",
        "silver_events_rejected",
        "gold_weekly_active_teams",
        "gold_daily_active_users",
        "gold_event_mix",
        "gold_event_mix_history",
        "refresh_log",
        "last_refresh",
        "dim_event_names",
    ];
    let sql = models
        .iter()
        .map(|m| format!("SELECT '{m}', count(*) FROM {m};"))
        .collect::<String>();
    let out = std::process::Command::new(&cli)
        .current_dir(p.dir.path())
        .args([
            "-readonly",
            "-csv",
            "-noheader",
            "warehouse.duckdb",
            "-c",
            &sql,
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{stdout}\n{stderr}"
    );
    for m in models {
        assert!(
            stdout.lines().any(|l| l.starts_with(&format!("{m},"))),
            "{m} answered: {stdout}"
        );
    }
    assert!(stdout.contains("bronze_events,5000"), "{stdout}");
    let version = std::process::Command::new(&cli)
        .arg("--version")
        .output()
        .unwrap();
    eprintln!(
        "checked with DuckDB CLI {}",
        String::from_utf8_lossy(&version.stdout).trim()
    );
}

#[test]
fn duckdb_cli_reads_an_ingested_source_right_after_ingest() {
    let Some(cli) = duckdb_cli() else { return };
    let p = Project::empty();
    p.fixture("csv_errors");
    let out = p.cmd(&["ingest", "weather"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let out = std::process::Command::new(cli)
        .current_dir(p.dir.path())
        .args([
            "warehouse.duckdb",
            "-readonly",
            "-csv",
            "-noheader",
            "-c",
            "SELECT count(*), count(DISTINCT origin) FROM bronze_weather; SELECT count(*) FROM ingest_quarantine; SELECT sum(rows_in) FROM ingest_manifest",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.split_whitespace().collect::<Vec<_>>(),
        ["5,3", "8", "13"]
    );
}
