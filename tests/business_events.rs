//! Categorized business events: generated NDJSON with duplicates and late updates, ingested
//! into `event_category=/year=/month=/day=/data.parquet`, deduplicated by event_id.

mod common;

use common::Project;

/// A project with the repository's default configuration and all its SQL.
fn demo_project() -> Project {
    let p = Project::empty();
    p.copy_from_repo("sql");
    p.copy_from_repo("warehouse.yaml");
    p
}

#[test]
fn layout_is_category_year_month_day_with_one_data_file_and_no_duplicate_ids() {
    let p = demo_project();
    for seed in ["1", "2"] {
        p.ok(&[
            "generate",
            "business-events",
            "--rows",
            "3000",
            "--seed",
            seed,
        ]);
        let out = p.cmd(&["ingest", "business_events"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let root = p.path("data/business_events");
    let pattern = regex::Regex::new(
        r"^event_category=(account|transaction|subscription|support)_[a-z-]+/year=\d{4}/month=(0[1-9]|1[0-2])/day=(0[1-9]|[12]\d|3[01])/data\.parquet$",
    )
    .unwrap();
    let files = common::relative_files(&root).len();
    for rel in common::relative_files(&root) {
        assert!(pattern.is_match(&rel), "unexpected lake file {rel}");
    }
    assert!(files > 100, "{files} day folders");

    // No event_id twice, and each one holds its latest version from every file ever delivered.
    let dupes: i64 =
        p.warehouse_value("SELECT count(*) - count(DISTINCT event_id) FROM bronze_business_events");
    assert_eq!(dupes, 0);
    let latest = "(SELECT event_id, max(CAST(\"timestamp\" AS TIMESTAMP)) AS ts FROM read_ndjson('raw/business_events/*.ndjson', columns = {'event_id': 'VARCHAR', 'timestamp': 'VARCHAR'}) GROUP BY event_id)";
    let expected: i64 = p.file_value(&format!("SELECT count(*) FROM {latest}"));
    let lake = "(SELECT event_id, \"timestamp\" AS ts FROM read_parquet('data/business_events/*/*/*/*/data.parquet'))";
    let differing: i64 = p.file_value(&format!(
        "SELECT (SELECT count(*) FROM (FROM {latest} EXCEPT FROM {lake})) + (SELECT count(*) FROM (FROM {lake} EXCEPT FROM {latest}))"
    ));
    assert_eq!(
        differing, 0,
        "the lake holds exactly the latest version of each of {expected} events"
    );
    // Late updates crossed partitions, so some ids were replaced.
    let replaced: i64 = p.warehouse_value("SELECT sum(rows_replaced) FROM ingest_manifest");
    assert!(replaced > 0);
    // Partition folders agree with the rows.
    let misplaced: i64 = p.warehouse_value(
        "SELECT count(*) FROM bronze_business_events WHERE event_category <> domain || '_' || event_type
            OR strftime(\"timestamp\", '%Y-%m-%d') <> year || '-' || month || '-' || day",
    );
    assert_eq!(misplaced, 0);
}

#[test]
fn fresh_demo_refresh_generates_ingests_and_builds_the_business_event_models() {
    let p = demo_project();
    p.write(
        "warehouse.yaml",
        &p.read("warehouse.yaml")
            .replace("rows: 1000000", "rows: 20000")
            .replace(
                "rows: 20000                 # lines",
                "rows: 2000                  # lines",
            ),
    );
    let out = p.ok(&["refresh"]);
    assert!(out.contains("refresh #1 succeeded"), "{out}");
    let lake: i64 = p.warehouse_value("SELECT count(*) FROM bronze_business_events");
    let gold: i64 =
        p.warehouse_value("SELECT CAST(sum(events) AS BIGINT) FROM gold_business_events_daily");
    assert_eq!(gold, lake);
    assert!(p
        .path("exports/gold_business_events_daily.parquet")
        .exists());
}
