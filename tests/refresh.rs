//! `micro-wh refresh`: models, exports, history, migrations, data tests and configuration errors.

mod common;

use common::{Project, EVENTS};

const GOLD: [&str; 3] = [
    "gold_weekly_active_teams",
    "gold_daily_active_users",
    "gold_event_mix",
];

#[test]
fn fresh_project_refresh_generates_then_builds_tests_and_exports() {
    let p = Project::new(25_000);
    let out = p.cmd(&["refresh"]).output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("is empty: generating the default dataset first"),
        "{stderr}"
    );
    assert!(stdout.contains("refresh #1 succeeded"), "{stdout}");
    assert!(
        stdout.contains("applied V001__dim_event_names.sql"),
        "{stdout}"
    );

    assert_eq!(
        p.warehouse_value::<i64>("SELECT count(*) FROM bronze_events"),
        25_000
    );
    let silver: i64 = p.warehouse_value("SELECT count(*) FROM silver_events");
    let rejected: i64 = p.warehouse_value("SELECT count(*) FROM silver_events_rejected");
    assert_eq!(
        silver + rejected,
        25_000,
        "every bronze row is in silver or rejected"
    );

    for table in GOLD {
        let export = format!("exports/{table}.parquet");
        assert!(p.path(&export).exists(), "{export}");
        let in_warehouse: i64 = p.warehouse_value(&format!("SELECT count(*) FROM {table}"));
        let in_export: i64 = p.file_value(&format!("SELECT count(*) FROM '{export}'"));
        assert!(in_warehouse > 0);
        assert_eq!(in_export, in_warehouse, "{table}");
        let differing = p.rows_differing(&export, table);
        assert_eq!(
            differing, 0,
            "{table}: export holds exactly the warehouse rows"
        );
    }
    // Gold values agree with the lake computed independently.
    let dau_lake: i64 = p.file_value(&format!(
        "SELECT count(DISTINCT user_id) FROM {EVENTS} WHERE date = DATE '2024-02-29'"
    ));
    let dau_gold: i64 =
        p.warehouse_value("SELECT dau FROM gold_daily_active_users WHERE date = DATE '2024-02-29'");
    assert_eq!(dau_gold, dau_lake);
    let max_teams: i64 =
        p.warehouse_value("SELECT max(weekly_active_teams) FROM gold_weekly_active_teams");
    assert!(max_teams <= 1000);
    let mix_total: i64 = p.warehouse_value("SELECT sum(events)::BIGINT FROM gold_event_mix");
    assert_eq!(mix_total, silver);

    // The refresh is logged, with rows per model, tests and exported files.
    let (status, tests_failed, exported): (String, i32, i64) = {
        let conn = duckdb::Connection::open(p.path("warehouse.duckdb")).unwrap();
        conn.query_row(
            "SELECT status, tests_failed, len(exported_files) FROM refresh_log WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    };
    assert_eq!(
        (status.as_str(), tests_failed, exported),
        ("succeeded", 0, 3)
    );
    let tests_passed: i32 = p.warehouse_value("SELECT tests_passed FROM refresh_log WHERE id = 1");
    assert!(tests_passed >= 20, "{tests_passed}");
    let bronze_rows: i64 =
        p.warehouse_value("SELECT CAST(json_extract(rows_per_model, '$.bronze_events') AS BIGINT) FROM refresh_log WHERE id = 1");
    assert_eq!(bronze_rows, 25_000);
}

#[test]
fn each_refresh_appends_gold_history_and_applies_versioned_files_once() {
    let p = Project::new(8_000);
    p.ok(&["generate", "events"]);
    p.ok(&["refresh"]);
    p.ok(&["generate", "events", "--rows", "5000", "--seed", "3"]);
    let out = p.ok(&["refresh"]);
    assert!(out.contains("refresh #2 succeeded"), "{out}");
    assert!(
        !out.contains("applied V001"),
        "V001 applied only once: {out}"
    );
    for table in GOLD {
        let per_refresh: String = p.warehouse_value(&format!(
            "SELECT string_agg(n::VARCHAR, ',' ORDER BY refresh_id) FROM \
             (SELECT refresh_id, count(*) AS n FROM {table}_history GROUP BY refresh_id)"
        ));
        let current: i64 = p.warehouse_value(&format!("SELECT count(*) FROM {table}"));
        let counts: Vec<i64> = per_refresh.split(',').map(|n| n.parse().unwrap()).collect();
        assert_eq!(counts.len(), 2, "{table}: {per_refresh}");
        assert_eq!(
            counts[1], current,
            "{table}: the last refresh's rows are the current table"
        );
    }
    let events_2: i64 = p.warehouse_value(
        "SELECT sum(events)::BIGINT FROM gold_event_mix_history WHERE refresh_id = 2",
    );
    let rejected: i64 = p.warehouse_value("SELECT count(*) FROM silver_events_rejected");
    assert_eq!(events_2 + rejected, 5_000);
    assert_eq!(
        p.warehouse_value::<i64>("SELECT count(*) FROM micro_wh_schema_history WHERE version = 1"),
        1
    );
}

/// Gold history keeps row versions: refreshes that change nothing add no rows, an appended day
/// adds the rows it changed, and every refresh's rows still read back whole from
/// `<gold>_history`, also after a history table of full copies (as earlier versions kept it)
/// was converted.
#[test]
fn gold_history_grows_with_changes_and_reads_back_every_refresh() {
    let p = Project::new(6_000);
    p.write(
        "late.yaml",
        "generate:\n  events:\n    rows: 300\n    start: \"2024-06-01 00:00:00\"\n    end: \"2024-06-01 23:59:59\"\nengine:\n  memory_limit: 1GB\n",
    );
    let exec = |sql: &str| {
        let conn = duckdb::Connection::open(p.path("warehouse.duckdb")).unwrap();
        conn.execute_batch(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    };
    // Each refresh's rows, as the table was right after it.
    let snapshot = |id: i64| {
        for table in GOLD {
            exec(&format!(
                "CREATE OR REPLACE TABLE seen_{id}_{table} AS SELECT * FROM {table}"
            ));
        }
    };
    let differing = |id: i64, table: &str| -> i64 {
        p.warehouse_value(&format!(
            "SELECT (SELECT count(*) FROM (SELECT * EXCLUDE (refresh_id) FROM {table}_history WHERE refresh_id = {id} \
                                          EXCEPT ALL SELECT * FROM seen_{id}_{table})) \
                  + (SELECT count(*) FROM (SELECT * FROM seen_{id}_{table} \
                                          EXCEPT ALL SELECT * EXCLUDE (refresh_id) FROM {table}_history WHERE refresh_id = {id}))"
        ))
    };
    let versions =
        |table: &str| p.warehouse_value::<i64>(&format!("SELECT count(*) FROM {table}_versions"));

    p.ok(&["refresh"]);
    snapshot(1);
    p.ok(&["refresh"]);
    snapshot(2);
    for table in GOLD {
        let rows: i64 = p.warehouse_value(&format!("SELECT count(*) FROM {table}"));
        assert!(rows > 0, "{table}");
        assert_eq!(
            versions(table),
            rows,
            "{table}: a refresh that changed nothing adds no versions"
        );
    }
    p.append_events("late.yaml", "5");
    let out = p.ok(&["refresh"]);
    assert!(out.contains("incremental (1 partitions)"), "{out}");
    snapshot(3);
    // The appended day is a new date and a new week: it adds rows and closes none.
    let added: i64 =
        p.warehouse_value("SELECT count(*) FROM gold_event_mix_versions WHERE valid_from = 3");
    let day_rows: i64 =
        p.warehouse_value("SELECT count(*) FROM gold_event_mix WHERE date = DATE '2024-06-01'");
    assert!(day_rows > 0);
    assert_eq!(added, day_rows, "only the changed rows are new versions");
    for id in 1..=3 {
        for table in GOLD {
            assert_eq!(differing(id, table), 0, "{table} at refresh {id}");
        }
    }

    // The same history as full copies, as an earlier micro-wh kept it: converted on the next
    // refresh, which a changed day (a second append into it) makes close some rows.
    for table in GOLD {
        exec(&format!(
            "CREATE TABLE copies AS SELECT * FROM {table}_history;
             DROP VIEW {table}_history;
             DROP TABLE {table}_versions;
             DELETE FROM micro_wh_history_refreshes WHERE model = '{table}';
             ALTER TABLE copies RENAME TO {table}_history;"
        ));
    }
    p.append_events("late.yaml", "6");
    p.ok(&["refresh"]);
    snapshot(4);
    let closed: i64 =
        p.warehouse_value("SELECT count(*) FROM gold_event_mix_versions WHERE valid_to = 4");
    assert!(
        closed > 0,
        "the rewritten day's previous rows are closed at refresh 4"
    );
    for id in 1..=4 {
        for table in GOLD {
            assert_eq!(
                differing(id, table),
                0,
                "{table} at refresh {id}, after conversion"
            );
        }
    }
    let kind: String = p.warehouse_value(
        "SELECT table_type FROM information_schema.tables WHERE table_name = 'gold_event_mix_history'",
    );
    assert_eq!(kind, "VIEW");

    // A column whose type changed, or an old table with a column the model lacks, cannot be
    // recorded: the refresh says which table to rename or drop, and keeps its rows.
    let sql = p.read("sql/models/events/gold_daily_active_users.sql");
    p.write(
        "sql/models/events/gold_daily_active_users.sql",
        &sql.replace(
            "count(DISTINCT user_id) AS dau",
            "count(DISTINCT user_id) * 2.0 AS dau",
        ),
    );
    let before = versions("gold_daily_active_users");
    let stderr = p.fails(&["refresh"]);
    assert!(
        stderr.contains("gold_daily_active_users_versions has the columns (date DATE, dau BIGINT)")
            && stderr.contains("rename or drop that table"),
        "{stderr}"
    );
    assert_eq!(versions("gold_daily_active_users"), before);
    p.write("sql/models/events/gold_daily_active_users.sql", &sql);
    exec(
        "CREATE TABLE copies AS SELECT *, 'kept' AS legacy FROM gold_event_mix_history;
         DROP VIEW gold_event_mix_history;
         DROP TABLE gold_event_mix_versions;
         ALTER TABLE copies RENAME TO gold_event_mix_history;",
    );
    let stderr = p.fails(&["refresh"]);
    assert!(
        stderr.contains("gold_event_mix_history has the columns")
            && stderr.contains("legacy VARCHAR"),
        "{stderr}"
    );
    let kept: i64 =
        p.warehouse_value("SELECT count(*) FROM gold_event_mix_history WHERE legacy = 'kept'");
    assert!(kept > 0, "the old table is kept");
}

#[test]
fn invalid_rows_are_rejected_with_a_reason_not_dropped() {
    let p = Project::new(3_000);
    p.ok(&["generate", "events"]);
    // Add a hand-made partition with bad rows beside the generated ones.
    let conn = duckdb::Connection::open_in_memory().unwrap();
    let dir = p.path("data/events/date=2024-05-01");
    std::fs::create_dir_all(&dir).unwrap();
    conn.execute_batch(&format!(
        "COPY (SELECT * FROM (VALUES
            (TIMESTAMP '2024-05-01 10:00:00', 0::BIGINT, 5::BIGINT, 'page_view', '{{\"a\":1}}'),
            (TIMESTAMP '2024-05-01 10:00:01', 7::BIGINT, NULL::BIGINT, 'page_view', '{{\"a\":1}}'),
            (TIMESTAMP '2024-05-01 10:00:02', 7::BIGINT, 5::BIGINT, 'teleport', '{{\"a\":1}}'),
            (TIMESTAMP '2024-05-01 10:00:03', 7::BIGINT, 5::BIGINT, 'share', '{{not json'),
            (TIMESTAMP '2024-05-01 10:00:04', 7::BIGINT, 5::BIGINT, 'share', '{{\"a\":1}}'),
            (TIMESTAMP '2024-05-01 10:00:04', 7::BIGINT, 5::BIGINT, 'share', '{{\"a\":1}}')
         ) t(event_time, user_id, team_id, event_name, properties)) TO '{}' (FORMAT parquet)",
        dir.join("handmade.parquet").display()
    ))
    .unwrap();
    p.ok(&["refresh"]);
    let reasons: String = p.warehouse_value(
        "SELECT string_agg(reject_reason, '|' ORDER BY reject_reason) FROM silver_events_rejected",
    );
    assert_eq!(
        reasons,
        "duplicate of another row|properties is not a JSON object|team_id is missing|unknown event_name|user_id out of range"
    );
    assert_eq!(
        p.warehouse_value::<i64>("SELECT count(*) FROM silver_events") + 5,
        p.warehouse_value::<i64>("SELECT count(*) FROM bronze_events")
    );
}

#[test]
fn failing_data_test_fails_the_refresh_and_keeps_previous_tables_and_exports() {
    let p = Project::new(6_000);
    p.ok(&["refresh"]);
    let export = p.path("exports/gold_weekly_active_teams.parquet");
    let export_bytes = std::fs::read(&export).unwrap();
    let gold_before: i64 =
        p.warehouse_value("SELECT sum(weekly_active_teams)::BIGINT FROM gold_weekly_active_teams");

    // New data and an impossible expectation: the refresh must change nothing visible.
    p.ok(&["generate", "events", "--rows", "9000", "--seed", "8"]);
    let models = p.read("sql/models/events/models.yaml").replace(
        "      - expression: \"weekly_active_teams BETWEEN 1 AND {{ events.max_team_id }}\"",
        "      - expression: \"weekly_active_teams BETWEEN 1 AND {{ events.max_team_id }}\"\n      - expression: \"weekly_active_teams <= 3\"",
    );
    p.write("sql/models/events/models.yaml", &models);
    let err = p.fails(&["refresh"]);
    assert!(err.contains("data tests failed"), "{err}");
    assert!(
        err.contains("gold_weekly_active_teams: expression(weekly_active_teams <= 3) failed"),
        "{err}"
    );
    assert!(err.contains("failing rows"), "{err}");

    assert_eq!(
        std::fs::read(&export).unwrap(),
        export_bytes,
        "export untouched"
    );
    assert_eq!(
        p.warehouse_value::<i64>(
            "SELECT sum(weekly_active_teams)::BIGINT FROM gold_weekly_active_teams"
        ),
        gold_before,
        "gold table untouched"
    );
    assert_eq!(
        p.warehouse_value::<i64>("SELECT count(*) FROM gold_weekly_active_teams_history"),
        p.warehouse_value::<i64>("SELECT count(*) FROM gold_weekly_active_teams"),
        "no history appended"
    );
    assert_eq!(
        p.warehouse_value::<String>("SELECT status FROM refresh_log WHERE id = 2"),
        "failed"
    );
    assert!(p.warehouse_value::<i32>("SELECT tests_failed FROM refresh_log WHERE id = 2") >= 1);
    let failing: i64 = p.warehouse_value(
        "SELECT failing_rows FROM failed_data_tests WHERE test = 'expression(weekly_active_teams <= 3)'",
    );
    assert!(failing > 0);
}

#[test]
fn an_edited_applied_migration_is_an_error_naming_the_file_and_checksums() {
    let p = Project::new(2_000);
    p.ok(&["refresh"]);
    let original = p.read("sql/V001__dim_event_names.sql");
    p.write(
        "sql/V001__dim_event_names.sql",
        &format!("{original}\n-- edited\n"),
    );
    let err = p.fails(&["refresh"]);
    assert!(err.contains("V001__dim_event_names.sql"), "{err}");
    assert!(err.contains("already applied with checksum"), "{err}");
    let applied: String =
        p.warehouse_value("SELECT checksum FROM micro_wh_schema_history WHERE version = 1");
    assert!(err.contains(&applied), "names the applied checksum: {err}");
    let current = sha256(&format!("{original}\n-- edited\n"));
    assert!(err.contains(&current), "names the new checksum: {err}");
}

fn sha256(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn new_versioned_files_apply_in_order_and_repeatables_reapply_when_changed() {
    let p = Project::new(2_000);
    p.ok(&["refresh"]);
    p.write(
        "sql/V003__c.sql",
        "CREATE TABLE c AS SELECT (SELECT count(*) FROM b) AS n;",
    );
    p.write(
        "sql/V002__b.sql",
        "CREATE TABLE b (x INT); INSERT INTO b VALUES (1), (2);",
    );
    let out = p.ok(&["refresh"]);
    let (b, c) = (
        out.find("applied V002__b.sql").unwrap(),
        out.find("applied V003__c.sql").unwrap(),
    );
    assert!(b < c, "{out}");
    assert!(
        !out.contains("R__refresh_views"),
        "unchanged repeatable not re-applied: {out}"
    );
    assert_eq!(p.warehouse_value::<i64>("SELECT n FROM c"), 2);

    let views = p.read("sql/R__refresh_views.sql");
    p.write(
        "sql/R__refresh_views.sql",
        &format!("{views}\nCREATE OR REPLACE VIEW extra AS SELECT 42 AS answer;\n"),
    );
    let out = p.ok(&["refresh"]);
    assert!(out.contains("applied R__refresh_views.sql"), "{out}");
    assert_eq!(p.warehouse_value::<i32>("SELECT answer FROM extra"), 42);
    let out = p.ok(&["refresh"]);
    assert!(!out.contains("applied"), "nothing pending: {out}");
}

#[test]
fn a_misnamed_sql_file_is_an_error_not_skipped() {
    let p = Project::new(1_000);
    p.write("sql/002_oops.sql", "SELECT 1;");
    let err = p.fails(&["refresh"]);
    assert!(
        err.contains("002_oops.sql") && err.contains("does not match"),
        "{err}"
    );
}

#[test]
fn a_failing_migration_names_the_file_and_the_sql() {
    let p = Project::new(1_000);
    p.write(
        "sql/V002__broken.sql",
        "CREATE TABLE t AS SELECT * FROM no_such_table;",
    );
    let err = p.fails(&["refresh"]);
    assert!(
        err.contains("V002__broken.sql") && err.contains("no_such_table"),
        "{err}"
    );
    assert_eq!(
        p.warehouse_value::<String>("SELECT status FROM refresh_log WHERE id = 1"),
        "failed"
    );
}

#[test]
fn unknown_config_keys_and_bad_values_name_the_key_and_file() {
    let p = Project::new(1_000);
    p.write("warehouse.yaml", "paths:\n  lake_dirr: elsewhere\n");
    let err = p.fails(&["status"]);
    assert!(
        err.contains("warehouse.yaml") && err.contains("lake_dirr"),
        "{err}"
    );

    p.write("warehouse.yaml", "lake:\n  compression: gzip\n");
    let err = p.fails(&["generate", "events"]);
    assert!(
        err.contains("warehouse.yaml") && err.contains("gzip"),
        "{err}"
    );

    p.write(
        "warehouse.yaml",
        "generate:\n  events:\n    end: 2020-01-01 00:00:00\n",
    );
    let err = p.fails(&["refresh"]);
    assert!(err.contains("generate.events.end"), "{err}");

    let err = p.fails(&["--config", "missing.yaml", "status"]);
    assert!(err.contains("missing.yaml"), "{err}");
}

#[test]
fn config_paths_and_flags_are_honoured() {
    let p = Project::new(2_000);
    p.write(
        "warehouse.yaml",
        "paths:\n  lake_dir: lake\n  warehouse: wh/main.duckdb\n  exports_dir: out\ngenerate:\n  events:\n    rows: 2000\n",
    );
    p.ok(&["refresh"]);
    assert!(p.path("lake/events").is_dir());
    assert!(p.path("wh/main.duckdb").is_file());
    assert!(p.path("out/gold_event_mix.parquet").is_file());
    // Flags override the file; they are relative to where micro-wh runs.
    std::fs::rename(p.path("sql"), p.path("queries")).unwrap();
    let out = p.ok(&[
        "refresh",
        "--exports-dir",
        "out2",
        "--lake-dir",
        "lake2",
        "--warehouse",
        "wh2.duckdb",
        "--sql-dir",
        "queries",
    ]);
    assert!(
        out.contains("refresh #1 succeeded"),
        "a new warehouse: {out}"
    );
    assert!(
        p.path("lake2/events").is_dir(),
        "the empty lake2 was generated"
    );
    assert!(p.path("wh2.duckdb").is_file());
    assert!(p.path("out2/gold_event_mix.parquet").is_file());
    let out = p.ok(&[
        "refresh",
        "--no-export",
        "--exports-dir",
        "out3",
        "--sql-dir",
        "queries",
    ]);
    assert!(out.contains("exports skipped"), "{out}");
    assert!(!p.path("out3").exists());
    // Bad flag values are refused like bad file values.
    let err = p.fails(&["--memory-limit", "lots", "status"]);
    assert!(
        err.contains("engine.memory_limit") && err.contains("command-line flag"),
        "{err}"
    );
}

#[test]
fn a_model_can_switch_between_view_and_table() {
    let p = Project::new(2_000);
    p.ok(&["refresh"]);
    let as_table = p.read("sql/models/events/models.yaml").replace(
        "  - name: silver_events\n    layer: silver\n    materialized: view",
        "  - name: silver_events\n    layer: silver\n    materialized: table",
    );
    p.write("sql/models/events/models.yaml", &as_table);
    p.ok(&["refresh"]);
    let kind =
        "SELECT table_type FROM information_schema.tables WHERE table_name = 'silver_events'";
    assert_eq!(p.warehouse_value::<String>(kind), "BASE TABLE");
    p.write(
        "sql/models/events/models.yaml",
        &as_table.replace(
            "  - name: silver_events\n    layer: silver\n    materialized: table",
            "  - name: silver_events\n    layer: silver\n    materialized: view",
        ),
    );
    p.ok(&["refresh"]);
    assert_eq!(p.warehouse_value::<String>(kind), "VIEW");
}

#[test]
fn a_model_name_that_is_not_an_identifier_is_refused() {
    let p = Project::new(1_000);
    let models = p
        .read("sql/models/events/models.yaml")
        .replace("- name: gold_event_mix", "- name: ../gold_event_mix");
    p.write("sql/models/events/models.yaml", &models);
    let err = p.fails(&["refresh"]);
    assert!(
        err.contains("models.yaml") && err.contains("`../gold_event_mix`"),
        "{err}"
    );
}

#[test]
fn status_reports_lake_migrations_and_refreshes() {
    let p = Project::new(4_000);
    let out = p.ok(&["status"]);
    assert!(
        out.contains("empty") && out.contains("not created yet"),
        "{out}"
    );
    p.ok(&["refresh"]);
    let out = p.ok(&["status"]);
    assert!(out.contains("events") && out.contains("4000 rows"), "{out}");
    assert!(out.contains("V001__dim_event_names.sql"), "{out}");
    assert!(out.contains("#1") && out.contains("succeeded"), "{out}");
}

#[test]
fn print_sql_shows_the_plain_model_sql_and_touches_nothing() {
    let p = Project::new(1_000);
    let out = p.ok(&["refresh", "--print-sql"]);
    assert!(
        out.contains("CREATE OR REPLACE VIEW \"bronze_events\""),
        "{out}"
    );
    assert!(
        out.contains("read_parquet('data/events/*/*.parquet'"),
        "{out}"
    );
    assert!(out.contains("COPY \"gold_event_mix\" TO"), "{out}");
    assert!(!p.path("warehouse.duckdb").exists() && !p.path("data").exists());
}

#[test]
fn help_teaches_the_commands() {
    let p = Project::new(1);
    let out = p.ok(&["--help"]);
    for word in ["generate", "refresh", "status", "sql", "warehouse.yaml"] {
        assert!(out.contains(word), "{word}: {out}");
    }
    let out = p.ok(&["generate", "--help"]);
    assert!(
        out.contains("--mode") && out.contains("append") && out.contains("--seed"),
        "{out}"
    );
}

#[test]
fn sql_command_queries_the_warehouse() {
    let p = Project::new(3_000);
    p.ok(&["refresh"]);
    let out = p.ok(&["sql", "SELECT count(*) AS n FROM bronze_events"]);
    assert!(out.contains("| n") && out.contains("3000"), "{out}");
    let err = p.fails(&["sql", "SELECT * FROM nowhere"]);
    assert!(err.contains("nowhere"), "{err}");
    // A script's error names the file and says DuckDB's message once, nothing after it.
    p.write("bad.sql", "SELECT 1;\nSELEC 2;\n");
    let err = p.fails(&["sql", "-f", "bad.sql"]);
    assert!(
        err.contains("bad.sql failed: Parser Error") && err.contains("SELEC 2"),
        "{err}"
    );
    assert!(!err.contains("error code"), "{err}");
}

#[test]
fn export_writes_csv_and_sql_output_picks_the_format_by_extension() {
    let p = Project::new(3_000);
    p.ok(&["refresh", "--no-export"]);
    let out = p.ok(&["export", "gold_daily_active_users", "--format", "csv"]);
    assert!(out.contains("exports/gold_daily_active_users.csv"), "{out}");
    let in_warehouse: i64 = p.warehouse_value("SELECT count(*) FROM gold_daily_active_users");
    let in_csv: i64 = p.file_value(
        "SELECT count(*) FROM read_csv('exports/gold_daily_active_users.csv', header = true)",
    );
    assert_eq!(in_csv, in_warehouse);
    for ext in ["csv", "parquet", "json"] {
        let file = format!("out.{ext}");
        p.ok(&[
            "sql",
            "SELECT date, dau FROM gold_daily_active_users",
            "--output",
            &file,
        ]);
        let rows: i64 = p.file_value(&format!(
            "SELECT count(*) FROM '{}'",
            p.path(&file).display()
        ));
        assert_eq!(rows, in_warehouse, "{ext}");
    }
    let err = p.fails(&["sql", "SELECT 1", "--output", "out.txt"]);
    assert!(
        err.contains("out.txt") && err.contains(".csv, .parquet or .json"),
        "{err}"
    );

    p.write(
        "warehouse.yaml",
        &format!(
            "{}refresh:\n  export_formats: [parquet, csv]\n",
            p.read("warehouse.yaml")
        ),
    );
    p.ok(&["refresh"]);
    for table in GOLD {
        assert!(
            p.path(&format!("exports/{table}.csv")).exists(),
            "{table}.csv"
        );
        assert!(
            p.path(&format!("exports/{table}.parquet")).exists(),
            "{table}.parquet"
        );
    }
    // Back to Parquet only: the CSVs of the gold tables would keep the old rows, so they go;
    // a table exported by hand in another format stays.
    p.ok(&["export", "--format", "csv", "silver_events"]);
    p.write(
        "warehouse.yaml",
        &p.read("warehouse.yaml").replace(
            "export_formats: [parquet, csv]",
            "export_formats: [parquet]",
        ),
    );
    let out = p.cmd(&["refresh"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for table in GOLD {
        assert!(
            !p.path(&format!("exports/{table}.csv")).exists(),
            "{table}.csv is stale"
        );
        assert!(stderr.contains(&format!("{table}.csv")), "{stderr}");
        assert!(p.path(&format!("exports/{table}.parquet")).exists());
    }
    assert!(p.path("exports/silver_events.csv").exists());
    // `export --format csv` of a gold table writes its CSV beside the Parquet, not instead.
    p.ok(&["export", "--format", "csv", GOLD[0]]);
    assert!(p.path(&format!("exports/{}.parquet", GOLD[0])).exists());
    assert!(p.path(&format!("exports/{}.csv", GOLD[0])).exists());
}

#[test]
fn a_subdirectory_finds_the_project_and_sql_never_creates_a_database() {
    let p = Project::new(2_000);
    p.ok(&["refresh", "--no-export"]);
    std::fs::create_dir_all(p.path("notes/deep")).unwrap();
    let out = p
        .cmd(&["status"])
        .current_dir(p.path("notes/deep"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("2000 rows"),
        "{stdout}"
    );
    assert!(!p.path("notes/deep/data").exists() && !p.path("notes/deep/warehouse.duckdb").exists());

    let err = p.fails(&["sql", "--db", "typo.duckdb", "SELECT 1"]);
    assert!(
        err.contains("typo.duckdb") && err.contains("never creates"),
        "{err}"
    );
    assert!(!p.path("typo.duckdb").exists());
}

#[test]
fn append_without_a_seed_never_repeats_rows() {
    let p = Project::new(2_000);
    p.ok(&["generate", "events"]);
    p.ok(&["generate", "events", "--mode", "append"]);
    let distinct: i64 = p.file_value(&format!(
        "SELECT count(DISTINCT (event_time, user_id, team_id, event_name, properties)) FROM {EVENTS}"
    ));
    assert_eq!(distinct, 4_000, "the append drew new rows");
}

#[test]
fn exit_codes_tell_failures_apart() {
    let p = Project::new(2_000);
    p.ok(&["refresh", "--no-export"]);
    let code = |args: &[&str]| p.cmd(args).output().unwrap().status.code();
    assert_eq!(code(&["generate", "nope"]), Some(1), "unknown dataset");
    assert_eq!(code(&["refresh", "--bogus"]), Some(2), "usage");
    // The warehouse held by another process.
    let holder = duckdb::Connection::open(p.path("warehouse.duckdb")).unwrap();
    let out = p.cmd(&["refresh", "--no-export"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("is open in another process"), "{stderr}");
    drop(holder);
    // With --lock-timeout it waits for the file, and goes on once the holder lets go.
    let holder = duckdb::Connection::open(p.path("warehouse.duckdb")).unwrap();
    let mut waiting = std::process::Command::new(assert_cmd::cargo::cargo_bin("micro-wh"))
        .current_dir(p.dir.path())
        .args(["-q", "--lock-timeout", "60", "refresh", "--no-export"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        waiting.try_wait().unwrap().is_none(),
        "the refresh waits while the warehouse is held"
    );
    drop(holder);
    assert!(waiting.wait().unwrap().success());
    // A failing data test.
    p.write(
        "sql/models/events/models.yaml",
        &p.read("sql/models/events/models.yaml").replace(
            "- unique: [week]",
            "- unique: [week]\n      - expression: \"weekly_active_teams <= 3\"",
        ),
    );
    assert_eq!(
        code(&["refresh", "--no-export"]),
        Some(4),
        "data tests failed"
    );
    // An applied migration edited.
    p.write(
        "sql/models/events/models.yaml",
        &p.read("sql/models/events/models.yaml")
            .replace("\n      - expression: \"weekly_active_teams <= 3\"", ""),
    );
    p.write(
        "sql/V001__dim_event_names.sql",
        &format!("{}\n-- edited\n", p.read("sql/V001__dim_event_names.sql")),
    );
    assert_eq!(code(&["refresh", "--no-export"]), Some(5), "drift");
}

#[test]
fn a_removed_applied_migration_stops_the_refresh_unless_allowed() {
    let p = Project::new(2_000);
    p.write(
        "sql/V002__extra.sql",
        "CREATE TABLE extra AS SELECT 1 AS x;\n",
    );
    p.ok(&["refresh", "--no-export"]);
    std::fs::remove_file(p.path("sql/V002__extra.sql")).unwrap();
    let out = p.cmd(&["refresh", "--no-export"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("V002__extra.sql") && stderr.contains("--allow-missing"),
        "{stderr}"
    );
    p.ok(&["refresh", "--no-export", "--allow-missing"]);
}

fn refresh_status(p: &Project, id: i64) -> String {
    p.warehouse_value(&format!("SELECT status FROM refresh_log WHERE id = {id}"))
}

fn export_matches_warehouse(p: &Project) -> bool {
    GOLD.iter()
        .all(|t| p.rows_differing(&format!("exports/{t}.parquet"), t) == 0)
}

#[test]
fn a_refresh_aborted_around_its_commit_is_recorded_as_what_happened() {
    let p = Project::new(3_000);
    p.ok(&["refresh"]);
    p.write(
        "exports/.gitkeep-like-note",
        "a file of the user's in the exports folder",
    );
    let gold = |p: &Project| -> String {
        p.warehouse_value("SELECT count(*) || ':' || sum(dau) FROM gold_daily_active_users")
    };
    let before = gold(&p);

    // Before the commit: nothing changes; the next refresh calls it interrupted.
    p.ok(&["generate", "events", "--rows", "4000", "--seed", "9"]);
    let out = p
        .cmd(&["refresh"])
        .env("MICRO_WH_FAULT", "refresh-before-commit")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(gold(&p), before, "the models were rolled back");
    assert!(export_matches_warehouse(&p), "exports untouched");
    p.ok(&["refresh"]);
    assert_eq!(refresh_status(&p, 2), "interrupted");
    assert_eq!(refresh_status(&p, 3), "succeeded");
    assert_ne!(gold(&p), before);

    // After the commit: the tables are new, the exports old, the log says `committed`;
    // `micro-wh export` finishes the job.
    p.ok(&["generate", "events", "--rows", "5000", "--seed", "10"]);
    let out = p
        .cmd(&["refresh"])
        .env("MICRO_WH_FAULT", "refresh-after-commit")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(refresh_status(&p, 4), "committed");
    assert_eq!(
        p.warehouse_value::<i64>("SELECT count(*) FROM bronze_events"),
        5_000
    );
    assert!(
        !export_matches_warehouse(&p),
        "the exports are the previous refresh's"
    );
    let out = p.ok(&["export"]);
    assert!(out.contains("refresh #4 is now complete"), "{out}");
    assert_eq!(refresh_status(&p, 4), "succeeded");
    assert!(export_matches_warehouse(&p));

    // With every new export written but not yet in place: the exports are all the previous
    // ones, byte for byte; the next refresh puts all the new ones in place.
    let exports_bytes = |p: &Project| -> Vec<Vec<u8>> {
        GOLD.iter()
            .map(|t| std::fs::read(p.path(&format!("exports/{t}.parquet"))).unwrap())
            .collect()
    };
    let previous = exports_bytes(&p);
    p.ok(&["generate", "events", "--rows", "6000", "--seed", "11"]);
    let out = p
        .cmd(&["refresh"])
        .env("MICRO_WH_FAULT", "export-before-swap")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(exports_bytes(&p), previous, "all old, not a mix");
    assert!(
        p.path("exports/.gitkeep-like-note").exists(),
        "other files stay"
    );
    p.ok(&["refresh"]);
    assert_eq!(refresh_status(&p, 5), "exports_failed");
    assert!(export_matches_warehouse(&p), "all new");
    assert!(
        p.path("exports/.gitkeep-like-note").exists(),
        "other files stay"
    );
    let leftovers: Vec<_> = std::fs::read_dir(p.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".exports."))
        .collect();
    assert!(leftovers.is_empty(), "staging cleaned: {leftovers:?}");
}

#[test]
fn a_lake_publication_failing_rolls_back_and_is_logged_as_failed() {
    let p = Project::new(2_000);
    p.ok(&["refresh", "--no-export"]);
    let gold = |p: &Project| -> Vec<String> {
        GOLD.iter()
            .map(|t| {
                p.warehouse_value(&format!(
                    "SELECT count(*) || ':' || sum(hash(t)) FROM {t} t"
                ))
            })
            .collect()
    };
    let before = gold(&p);
    p.ok(&[
        "generate", "events", "--mode", "append", "--rows", "60", "--seed", "5",
    ]);
    // The silver folders are in place when the step fails, the warehouse's work is not.
    let out = p
        .cmd(&["refresh", "--no-export"])
        .env("MICRO_WH_FAIL", "lake-model-published")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("failing at lake-model-published"), "{err}");
    assert_eq!(
        refresh_status(&p, 2),
        "failed",
        "logged as what happened, not lost"
    );
    let logged: String = p.warehouse_value("SELECT error FROM refresh_log WHERE id = 2");
    assert!(logged.contains("lake-model-published"), "{logged}");
    assert_eq!(gold(&p), before, "the models were rolled back");

    // The next refresh takes the published folders the warehouse never recorded as changed.
    p.ok(&["refresh", "--no-export"]);
    assert_eq!(refresh_status(&p, 3), "succeeded");
    let incremental = gold(&p);
    assert_ne!(incremental, before);
    p.ok(&["refresh", "--no-export", "--full"]);
    assert_eq!(gold(&p), incremental, "as a full rebuild");
}

#[test]
fn exports_failing_after_the_commit_are_reported_as_such_and_finished_later() {
    let p = Project::new(3_000);
    p.write("out", "a file where the exports directory should be");
    let out = p
        .cmd(&["--exports-dir", "out", "refresh"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refresh #1 is committed") && stderr.contains("micro-wh export"),
        "{stderr}"
    );
    assert_eq!(refresh_status(&p, 1), "exports_failed");
    assert!(p.warehouse_value::<i64>("SELECT count(*) FROM gold_daily_active_users") > 0);
    std::fs::remove_file(p.path("out")).unwrap();
    let out = p.ok(&["--exports-dir", "out", "export"]);
    assert!(out.contains("refresh #1 is now complete"), "{out}");
    assert_eq!(refresh_status(&p, 1), "succeeded");
}

#[test]
fn a_silver_layer_rejecting_most_rows_fails_the_refresh() {
    let p = Project::new(3_000);
    p.ok(&["refresh", "--no-export"]);
    // The lake keeps user ids up to 100000; a range of 10 makes silver reject nearly all.
    p.write(
        "warehouse.yaml",
        &p.read("warehouse.yaml")
            .replace("seed: 7", "seed: 7\n    max_user_id: 10"),
    );
    let out = p.cmd(&["refresh", "--no-export"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("silver_events_rejected: reject_rate(<= 1 % of bronze_events) failed"),
        "{stderr}"
    );
}

#[test]
fn a_corrupt_lake_file_fails_the_refresh_naming_it_and_commits_nothing() {
    let p = Project::new(2_000);
    p.ok(&["refresh"]);
    let gold = |p: &Project| -> String {
        p.warehouse_value("SELECT count(*) || ':' || sum(dau) FROM gold_daily_active_users")
    };
    let before = gold(&p);
    p.write(
        "data/events/date=2024-05-01/zz-corrupt.parquet",
        "PAR1 this is not a Parquet file, whatever its name says",
    );
    let err = p.fails(&["refresh"]);
    assert!(err.contains("zz-corrupt.parquet"), "{err}");
    assert_eq!(refresh_status(&p, 2), "failed");
    assert_eq!(gold(&p), before, "nothing committed");
    assert!(export_matches_warehouse(&p), "exports untouched");
}

/// `micro-wh` started in the background, held at `point` (MICRO_WH_PAUSE) until `release`.
struct Paused {
    child: std::process::Child,
    file: std::path::PathBuf,
}

impl Paused {
    fn start(p: &Project, point: &str, args: &[&str]) -> Paused {
        let file = p.path(&format!("paused-{point}"));
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("micro-wh"))
            .current_dir(p.dir.path())
            .env_remove("RUST_LOG")
            .env("MICRO_WH_PAUSE", point)
            .env("MICRO_WH_PAUSE_FILE", &file)
            .args(args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Waits for a state, not a duration: the process says where it is by the file.
        while !file.exists() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("micro-wh {args:?} ended ({status}) before reaching {point}");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Paused { child, file }
    }

    fn release(mut self) -> std::process::ExitStatus {
        std::fs::remove_file(&self.file).unwrap();
        self.child.wait().unwrap()
    }
}

#[test]
fn a_second_refresh_or_a_generate_during_a_refresh_fails_clearly_or_waits_and_nothing_doubles() {
    let p = Project::new(2_000);
    p.ok(&["refresh", "--no-export"]);
    // A refresh holding the lake and the warehouse, before it reads either.
    let first = Paused::start(&p, "refresh-building", &["-q", "refresh", "--no-export"]);

    let out = p.cmd(&["refresh", "--no-export"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains("in use by pid") && stderr.contains("-q refresh --no-export"),
        "the second refresh names the first: {stderr}"
    );
    assert!(
        !stderr.contains("IO Error"),
        "no DuckDB text stack: {stderr}"
    );

    let append = ["generate", "events", "--mode", "append", "--seed", "9"];
    let out = p.cmd(&append).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains("in use by pid") && stderr.contains("refresh --no-export"),
        "the busy lake names the refresh holding it: {stderr}"
    );

    // A writer told to wait gets the lake once the refresh is done with it.
    let writer = std::process::Command::new(assert_cmd::cargo::cargo_bin("micro-wh"))
        .current_dir(p.dir.path())
        .env_remove("RUST_LOG")
        .args(["-q", "--lock-timeout", "300"])
        .args(append)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(first.release().success());
    assert!(writer.wait_with_output().unwrap().status.success());
    // The held refresh read the lake as it was when it started: no appended row in it.
    let built: i64 = p.warehouse_value("SELECT count(*) FROM silver_events_validated");
    assert_eq!(built, 2_000);
    let statuses: String =
        p.warehouse_value("SELECT string_agg(status, ',' ORDER BY id) FROM refresh_log");
    assert_eq!(
        statuses, "succeeded,succeeded",
        "the refused refresh left no row"
    );

    p.ok(&["refresh", "--no-export"]);
    let (rows, distinct): (i64, i64) = (
        p.warehouse_value("SELECT count(*) FROM silver_events"),
        p.warehouse_value(
            "SELECT count(DISTINCT (event_time, user_id, team_id, event_name, properties)) FROM silver_events",
        ),
    );
    assert_eq!((rows, distinct), (4_000, 4_000), "each append counted once");
}
