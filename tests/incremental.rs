//! Incremental refresh: after every change to the lake (appended days, a day rewritten by late
//! updates, a deleted day, new model SQL, compaction) an incremental refresh must leave every
//! model exactly as a full rebuild of the same lake does: for the events dataset (partitions by
//! date, weekly gold) and for business events (partitions by category, year, month and day,
//! gold by day and category).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use common::Project;

const INCREMENTAL: [&str; 4] = [
    "silver_events_validated",
    "gold_weekly_active_teams",
    "gold_daily_active_users",
    "gold_event_mix",
];

/// Each model's rows, as order-independent fingerprints.
fn fingerprints(p: &Project, models: &[&str]) -> Vec<String> {
    models
        .iter()
        .map(|m| {
            p.warehouse_value(&format!(
                "SELECT count(*) || ':' || coalesce(sum(hash(t)), 0) FROM {m} t"
            ))
        })
        .collect()
}

/// The mode printed for `model` by a refresh.
fn mode<'o>(out: &'o str, model: &str) -> &'o str {
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{model} ")))
        .unwrap_or_else(|| panic!("no line for {model} in:\n{out}"));
    let rest = line[model.len()..].trim_start();
    let end = rest.find("  ").unwrap_or(rest.len());
    rest[..end].trim_end()
}

/// An incremental refresh, checked against a rebuild of everything from the same lake
/// (`--revalidate`: tables and the silver partitions in the lake): `models` hold the same
/// rows after both.
fn refresh_and_compare(p: &Project, step: &str, models: &[&str]) -> String {
    let out = p.ok(&["refresh", "--no-export"]);
    let incremental = fingerprints(p, models);
    let full = p.ok(&["refresh", "--no-export", "--revalidate"]);
    for m in models {
        assert_eq!(
            mode(&full, m),
            "full",
            "{step}: --revalidate rebuilt {m}\n{full}"
        );
    }
    assert_eq!(
        incremental,
        fingerprints(p, models),
        "{step}: incremental equals full\n{out}"
    );
    out
}

fn partitions(p: &Project) -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(p.path("data/events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("date="))
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_incremental_step_equals_a_full_rebuild() {
    let p = Project::new(4_000);
    let out = p.ok(&["refresh", "--no-export"]);
    for m in INCREMENTAL {
        assert_eq!(mode(&out, m), "full", "first build");
    }

    let out = p.ok(&["refresh", "--no-export"]);
    for m in INCREMENTAL {
        assert_eq!(mode(&out, m), "unchanged", "nothing changed");
    }
    // --full rebuilds the tables; silver, validated once per partition in the lake, stays.
    let out = p.ok(&["refresh", "--no-export", "--full"]);
    assert_eq!(mode(&out, "silver_events_validated"), "unchanged");
    for m in &INCREMENTAL[1..] {
        assert_eq!(mode(&out, m), "full", "--full");
    }
    let logged: String =
        p.warehouse_value("SELECT modes FROM refresh_log ORDER BY id DESC LIMIT 1");
    assert!(
        logged.contains("\"silver_events_validated\":\"unchanged\""),
        "{logged}"
    );

    // Appended rows: new files in some days.
    p.ok(&[
        "generate", "events", "--mode", "append", "--rows", "300", "--seed", "5",
    ]);
    let out = refresh_and_compare(&p, "append", &INCREMENTAL);
    let m = mode(&out, "silver_events_validated");
    assert!(
        m.starts_with("incremental (") && !m.starts_with("incremental (0"),
        "{m}"
    );

    // Late updates rewrite one day: its file is replaced by one with changed rows.
    let day = partitions(&p)[10].clone();
    let dir = p.path(&format!("data/events/{day}"));
    let conn = duckdb::Connection::open_in_memory().unwrap();
    conn.execute_batch(&format!(
        "COPY (SELECT event_time, user_id % 50 + 1 AS user_id, team_id, 'purchase' AS event_name, properties
               FROM read_parquet('{d}/*.parquet', hive_partitioning = false))
         TO '{d}/late_update.parquet.tmp' (FORMAT parquet)",
        d = dir.display()
    ))
    .unwrap();
    for f in std::fs::read_dir(&dir).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|e| e == "parquet") {
            std::fs::remove_file(f).unwrap();
        }
    }
    std::fs::rename(
        dir.join("late_update.parquet.tmp"),
        dir.join("late_update.parquet"),
    )
    .unwrap();
    let out = refresh_and_compare(&p, "late update", &INCREMENTAL);
    assert_eq!(
        mode(&out, "silver_events_validated"),
        "incremental (1 partitions)"
    );
    assert_eq!(
        mode(&out, "gold_weekly_active_teams"),
        "incremental (1 partitions)"
    );

    // A deleted day: its rows leave silver and gold.
    let gone = partitions(&p)[20].clone();
    std::fs::remove_dir_all(p.path(&format!("data/events/{gone}"))).unwrap();
    let out = refresh_and_compare(&p, "deleted day", &INCREMENTAL);
    assert_eq!(
        mode(&out, "gold_daily_active_users"),
        "incremental (1 partitions)"
    );
    let date = gone.trim_start_matches("date=");
    let left: i64 = p.warehouse_value(&format!(
        "SELECT count(*) FROM gold_daily_active_users WHERE date = DATE '{date}'"
    ));
    assert_eq!(left, 0);

    // New SQL for one model rebuilds it (and the incremental models after it) whole.
    p.write(
        "sql/models/events/gold_event_mix.sql",
        &format!(
            "-- reworded\n{}",
            p.read("sql/models/events/gold_event_mix.sql")
        ),
    );
    let out = refresh_and_compare(&p, "changed SQL", &INCREMENTAL);
    assert_eq!(mode(&out, "gold_event_mix"), "full");
    assert_eq!(mode(&out, "silver_events_validated"), "unchanged");

    // Compaction rewrites files into one per day, same rows: nothing to rebuild.
    p.ok(&[
        "generate", "events", "--mode", "append", "--rows", "300", "--seed", "6",
    ]);
    p.ok(&["refresh", "--no-export"]);
    let files_before = p.lake_files().len();
    p.ok(&["compact", "events"]);
    assert!(
        p.lake_files().len() < files_before,
        "compaction merged files"
    );
    let out = refresh_and_compare(&p, "compaction", &INCREMENTAL);
    for m in INCREMENTAL.iter().chain(&["silver_events"]) {
        assert_eq!(mode(&out, m), "unchanged", "after compaction\n{out}");
    }

    // Compaction of days a model has not consumed yet leaves them to the refresh.
    p.ok(&[
        "generate", "events", "--mode", "append", "--rows", "300", "--seed", "8",
    ]);
    p.ok(&["compact", "events"]);
    let out = refresh_and_compare(&p, "compaction before refresh", &INCREMENTAL);
    let m = mode(&out, "silver_events_validated");
    assert!(
        m.starts_with("incremental (") && !m.starts_with("incremental (0"),
        "{m}"
    );
}

/// Row-level tests of incremental models look at the changed partitions, and a bad row there
/// fails the refresh (exit 4), keeping the previous tables.
#[test]
fn row_tests_on_changed_partitions_fail_the_refresh() {
    let p = Project::new(2_000);
    p.write(
        "warehouse.yaml",
        "generate:\n  events:\n    rows: 2000\n    seed: 7\n    start: \"2023-01-01 00:00:00\"\n    end: \"2023-03-31 23:59:59\"\nengine:\n  memory_limit: 1GB\n",
    );
    p.write(
        "late.yaml",
        "generate:\n  events:\n    rows: 40\n    start: \"2024-06-01 00:00:00\"\n    end: \"2024-06-01 23:59:59\"\nengine:\n  memory_limit: 1GB\n",
    );
    // A rule the first lake keeps and the appended day breaks.
    let models = p.read("sql/models/events/models.yaml").replace(
        "      - expression: \"user_id BETWEEN 1 AND",
        "      - expression: \"date < DATE '2024-01-01'\"\n      - expression: \"user_id BETWEEN 1 AND",
    );
    p.write("sql/models/events/models.yaml", &models);
    let out = p.ok(&["refresh", "--no-export"]);
    assert_eq!(mode(&out, "silver_events"), "full");
    let out = p.ok(&["refresh", "--no-export"]);
    assert_eq!(mode(&out, "silver_events"), "unchanged");

    p.append_events("late.yaml", "3");
    let run = p.cmd(&["refresh", "--no-export"]).output().unwrap();
    assert_eq!(
        run.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let detail: String = p.warehouse_value(
        "SELECT detail FROM refresh_test_results WHERE test = 'expression(date < DATE ''2024-01-01'')' AND NOT passed",
    );
    assert_eq!(detail, "40 failing rows in the changed partitions");
    let kept: i64 = p.warehouse_value(
        "SELECT count(*) FROM silver_events_validated WHERE date >= DATE '2024-01-01'",
    );
    assert_eq!(kept, 0, "the failed refresh rolled back");

    // Without the bad day the refresh passes; a test added then meets every old row once.
    std::fs::remove_dir_all(p.path("data/events/date=2024-06-01")).unwrap();
    p.ok(&["refresh", "--no-export"]);
    let models = p.read("sql/models/events/models.yaml").replace(
        "      - expression: \"date < DATE '2024-01-01'\"",
        "      - expression: \"date < DATE '2024-01-01'\"\n      - expression: \"date <> DATE '2023-01-05'\"",
    );
    p.write("sql/models/events/models.yaml", &models);
    let run = p.cmd(&["refresh", "--no-export"]).output().unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(4), "{out}");
    let detail: String = p.warehouse_value(
        "SELECT detail FROM refresh_test_results WHERE test = 'expression(date <> DATE ''2023-01-05'')' AND NOT passed",
    );
    let day: i64 =
        p.warehouse_value("SELECT count(*) FROM silver_events WHERE date = DATE '2023-01-05'");
    assert!(day > 0);
    assert_eq!(
        detail,
        format!("{day} failing rows"),
        "the whole model was tested"
    );
}

/// The files of the silver folder in the lake, each with its size and modification time.
fn silver_files(p: &Project) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut files = Vec::new();
    common::walk(&p.path("data/silver_events_validated"), &mut |f| {
        let meta = std::fs::metadata(f).unwrap();
        files.push((
            f.strip_prefix(p.dir.path())
                .unwrap()
                .to_string_lossy()
                .into_owned(),
            meta.len(),
            meta.modified().unwrap(),
        ));
    });
    files.sort();
    files
}

/// Silver is validated Parquet in the lake, one file per day, written when the day arrives or
/// changes and never again otherwise; the warehouse holds only a view over it. A crash between
/// its publication and the warehouse commit, or a hand-deleted file, is repaired by the next
/// refresh, which then equals a rebuild of everything.
#[test]
fn silver_partitions_live_in_the_lake_written_once_and_repaired_after_a_crash() {
    let p = Project::new(3_000);
    p.ok(&["refresh", "--no-export"]);
    let kind: String = p.warehouse_value(
        "SELECT table_type FROM information_schema.tables WHERE table_name = 'silver_events_validated'",
    );
    assert_eq!(kind, "VIEW", "no copy of the lake inside the warehouse");
    let days = partitions(&p);
    let files = silver_files(&p);
    assert_eq!(files.len(), days.len(), "one file per day: {files:?}");
    for (day, (file, _, _)) in days.iter().zip(&files) {
        assert_eq!(
            file,
            &format!("data/silver_events_validated/{day}/data.parquet")
        );
    }
    let in_lake: i64 = p.file_value(
        "SELECT count(*) FROM read_parquet('data/silver_events_validated/*/*.parquet')",
    );
    assert_eq!(in_lake, 3_000);

    // Nothing new: not one silver file is written again, by a refresh or by --full.
    p.ok(&["refresh", "--no-export"]);
    p.ok(&["refresh", "--no-export", "--full"]);
    assert_eq!(silver_files(&p), files, "written once");

    // New rows in some days; the process dies after the first of their silver folders is
    // published, then after all of them, before the commit.
    p.ok(&[
        "generate", "events", "--mode", "append", "--rows", "40", "--seed", "5",
    ]);
    let run = p
        .cmd(&["refresh", "--no-export"])
        .env("MICRO_WH_FAULT", "publish-between-folders")
        .output()
        .unwrap();
    assert!(!run.status.success());
    let midway = silver_files(&p);
    assert_eq!(
        midway.iter().filter(|f| !files.contains(f)).count(),
        1,
        "one folder published"
    );
    let run = p
        .cmd(&["refresh", "--no-export"])
        .env("MICRO_WH_FAULT", "refresh-after-lake-publish")
        .output()
        .unwrap();
    assert!(!run.status.success());
    let published = silver_files(&p);
    let rewritten = published.iter().filter(|f| !files.contains(f)).count();
    assert!(rewritten > 1, "the new days were published");
    assert_eq!(
        published.len(),
        files.len() + partitions(&p).len() - days.len()
    );
    let out = refresh_and_compare(
        &p,
        "after a crash between lake publication and commit",
        &INCREMENTAL,
    );
    assert_eq!(
        mode(&out, "silver_events_validated"),
        format!("incremental ({rewritten} partitions)")
    );
    let log: String =
        p.warehouse_value("SELECT string_agg(status, ',' ORDER BY id) FROM refresh_log");
    assert!(log.contains("interrupted"), "{log}");

    // A silver file deleted by hand is written again, alone.
    let day = partitions(&p)[7].clone();
    std::fs::remove_file(p.path(&format!("data/silver_events_validated/{day}/data.parquet")))
        .unwrap();
    let out = refresh_and_compare(&p, "a deleted silver file", &INCREMENTAL);
    assert_eq!(
        mode(&out, "silver_events_validated"),
        "incremental (1 partitions)"
    );
    assert!(p
        .path(&format!("data/silver_events_validated/{day}/data.parquet"))
        .exists());
    let staging = p.path("data/.staging");
    assert!(
        !staging.exists() || std::fs::read_dir(&staging).unwrap().next().is_none(),
        "nothing left in staging"
    );
}

const BUSINESS: [&str; 2] = ["silver_business_events", "gold_business_events_daily"];

/// A project with the repository's business_events source and models only; business events
/// are the default dataset, so no events lake is generated. Events spread over 30 days.
fn business_events_project() -> Project {
    let p = Project::empty();
    p.copy_from_repo("sql");
    for dataset in ["events", "telemetry"] {
        std::fs::remove_dir_all(p.path("sql/models").join(dataset)).unwrap();
    }
    p.copy_from_repo("warehouse.yaml");
    let config = p.read("warehouse.yaml");
    let start = config
        .find("\n  business_events:\n    format")
        .expect("warehouse.yaml declares the business_events source");
    let end = start
        + config[start..]
            .find("\n  telemetry:")
            .expect("the telemetry source follows it");
    p.write(
        "warehouse.yaml",
        &format!(
            "refresh:\n  default_dataset: business_events\nengine:\n  memory_limit: 1GB\ngenerate:\n  business_events:\n    days: 30\nsources:{}\n",
            &config[start..end]
        ),
    );
    p
}

type Stamps = BTreeMap<String, (u64, SystemTime)>;

/// Every file of `data/<dataset>/` with its size and modification time, as a refresh sees it.
fn lake_stamps(p: &Project, dataset: &str) -> Stamps {
    let root = p.path(&format!("data/{dataset}"));
    common::relative_files(&root)
        .into_iter()
        .map(|rel| {
            let meta = std::fs::metadata(root.join(&rel)).unwrap();
            (rel, (meta.len(), meta.modified().unwrap()))
        })
        .collect()
}

/// The leaf folders whose files were added, rewritten or removed between two snapshots.
fn changed_folders(before: &Stamps, after: &Stamps) -> BTreeSet<String> {
    before
        .keys()
        .chain(after.keys())
        .filter(|f| before.get(*f) != after.get(*f))
        .map(|f| f.rsplit_once('/').expect("a file in a folder").0.to_owned())
        .collect()
}

fn assert_modes(out: &str, expected: &str, step: &str) {
    for m in BUSINESS {
        assert_eq!(mode(out, m), expected, "{step}: {m}\n{out}");
    }
}

/// Business events through a lake's life: generated files, a later batch, hand-written late
/// updates that rewrite old days, a deleted day folder, new SQL. After each step an
/// incremental refresh leaves the models exactly as `refresh --full` does, and it rebuilds
/// exactly the leaf folders (category, year, month, day) the step touched.
#[test]
fn business_events_steps_equal_a_full_rebuild() {
    let p = business_events_project();
    p.ok(&[
        "generate",
        "business-events",
        "--rows",
        "3000",
        "--seed",
        "1",
    ]);
    p.ok(&["ingest", "business_events"]);
    let out = p.ok(&["refresh", "--no-export"]);
    assert_modes(&out, "full", "first build");
    let out = p.ok(&["refresh", "--no-export"]);
    assert_modes(&out, "unchanged", "nothing changed");
    let folders = changed_folders(&Stamps::new(), &lake_stamps(&p, "business_events")).len();
    assert!(folders > 200, "{folders} folders over 30 days");

    // A later batch: new files whose events fall on two old days (and their late updates on
    // the days after), merged into those days' folders.
    p.write(
        "batch.yaml",
        "generate:\n  business_events:\n    rows: 200\n    files: 2\n    start: \"2023-01-10 00:00:00\"\n    days: 2\n",
    );
    let before = lake_stamps(&p, "business_events");
    let gold_before = fingerprints(&p, &BUSINESS[1..]);
    p.ok(&[
        "--config",
        "batch.yaml",
        "generate",
        "business-events",
        "--seed",
        "2",
    ]);
    p.ok(&["ingest", "business_events"]);
    let touched = changed_folders(&before, &lake_stamps(&p, "business_events")).len();
    assert!(
        touched > 0 && touched < folders / 2,
        "{touched} of {folders}"
    );
    let out = refresh_and_compare(&p, "later batch", &BUSINESS);
    assert_modes(
        &out,
        &format!("incremental ({touched} partitions)"),
        "later batch",
    );
    assert_ne!(fingerprints(&p, &BUSINESS[1..]), gold_before, "later batch");

    // Late updates of events ingested earlier: one keeps its day (new account and amount), one
    // moves two days on. Three folders: the first's, and the second's old and new day (its
    // category differs from the first's).
    let updates: String = p.warehouse_value(
        "SELECT string_agg(CAST(json_object('event_id', event_id, 'timestamp', strftime(ts, '%Y-%m-%dT%H:%M:%SZ'),
                'domain', domain, 'event_type', event_type, 'data', data) AS VARCHAR), chr(10) ORDER BY event_id)
         FROM ((SELECT event_id, event_time + INTERVAL 1 SECOND AS ts, domain, event_type,
                       json_object('account_id', 'acct_999999', 'amount', 4242.42, 'currency', 'EUR') AS data
                FROM silver_business_events
                WHERE event_date = DATE '2023-01-03' AND domain = 'transaction' AND hour(event_time) < 23
                ORDER BY event_id LIMIT 1)
               UNION ALL
               (SELECT event_id, event_time + INTERVAL 2 DAY, domain, event_type,
                       json_object('account_id', 'acct_999998', 'status', 'active')
                FROM silver_business_events
                WHERE event_date = DATE '2023-01-04' AND domain = 'account'
                ORDER BY event_id LIMIT 1))",
    );
    assert_eq!(updates.lines().count(), 2, "{updates}");
    p.write(
        "raw/business_events/late-updates.ndjson",
        &format!("{updates}\n"),
    );
    let before = lake_stamps(&p, "business_events");
    let gold_before = fingerprints(&p, &BUSINESS[1..]);
    p.ok(&["ingest", "business_events"]);
    let touched = changed_folders(&before, &lake_stamps(&p, "business_events"));
    assert_eq!(touched.len(), 3, "{touched:?}");
    let out = refresh_and_compare(&p, "late updates", &BUSINESS);
    assert_modes(&out, "incremental (3 partitions)", "late updates");
    assert_ne!(
        fingerprints(&p, &BUSINESS[1..]),
        gold_before,
        "late updates"
    );
    let moved: i64 = p.warehouse_value(
        "SELECT count(*) FROM silver_business_events WHERE account_id IN ('acct_999999', 'acct_999998')",
    );
    assert_eq!(moved, 2);

    // A deleted day folder: its group leaves gold, nothing else is rebuilt.
    let gone = lake_stamps(&p, "business_events")
        .into_keys()
        .find(|f| f.contains("/day=07/"))
        .expect("a folder of the 7th");
    let gone = gone.rsplit_once('/').unwrap().0.to_owned();
    let group = |folder: &str| {
        let v: BTreeMap<&str, &str> = folder
            .split('/')
            .filter_map(|part| part.split_once('='))
            .collect();
        format!(
            "day = DATE '{}-{}-{}' AND event_category = '{}'",
            v["year"], v["month"], v["day"], v["event_category"]
        )
    };
    let rows = |folder: &str| -> i64 {
        p.warehouse_value(&format!(
            "SELECT count(*) FROM gold_business_events_daily WHERE {}",
            group(folder)
        ))
    };
    assert_eq!(rows(&gone), 1, "{gone}");
    std::fs::remove_dir_all(p.path(&format!("data/business_events/{gone}"))).unwrap();
    let out = refresh_and_compare(&p, "deleted folder", &BUSINESS);
    assert_modes(&out, "incremental (1 partitions)", "deleted folder");
    assert_eq!(rows(&gone), 0, "{gone} left gold");

    // New gold SQL rebuilds gold whole; silver did not change.
    let gold_sql = "sql/models/business_events/gold_business_events_daily.sql";
    p.write(gold_sql, &format!("-- reworded\n{}", p.read(gold_sql)));
    let out = refresh_and_compare(&p, "changed gold SQL", &BUSINESS);
    assert_eq!(mode(&out, BUSINESS[0]), "unchanged", "{out}");
    assert_eq!(mode(&out, BUSINESS[1]), "full", "{out}");

    // New silver SQL rebuilds silver and, after it in its folder, gold.
    let silver_sql = "sql/models/business_events/silver_business_events.sql";
    p.write(silver_sql, &format!("-- reworded\n{}", p.read(silver_sql)));
    let out = refresh_and_compare(&p, "changed silver SQL", &BUSINESS);
    assert_modes(&out, "full", "changed silver SQL");
    let out = p.ok(&["refresh", "--no-export"]);
    assert_modes(&out, "unchanged", "nothing changed after new SQL");
}

/// A lake model must leave each row in the partition it was read from; one that moves rows
/// elsewhere is refused with its name and file, and nothing of it is published.
#[test]
fn a_lake_model_moving_rows_to_another_partition_is_refused_and_publishes_nothing() {
    let p = Project::new(1_000);
    p.ok(&["refresh", "--no-export"]);
    let before = silver_files(&p);
    let path = "sql/models/events/silver_events_validated.sql";
    p.write(
        path,
        &format!(
            "SELECT * REPLACE (CAST(date + 1 AS DATE) AS date) FROM (\n{}\n)",
            p.read(path)
        ),
    );
    let out = p.cmd(&["refresh", "--no-export"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("lake model silver_events_validated")
            && stderr.contains("silver_events_validated.sql")
            && stderr.contains("a partition none of its source rows came from"),
        "{stderr}"
    );
    assert_eq!(silver_files(&p), before, "nothing published");
    let staging = p.path("data/.staging");
    assert!(
        !staging.exists() || std::fs::read_dir(&staging).unwrap().next().is_none(),
        "nothing left in staging"
    );
}

/// An incremental refresh reads the files of the changed partitions and no other: every file
/// of the other days is overwritten with zeros behind the refresh's back (same size, same
/// modification time, so their partitions still look unchanged), and the refresh after an
/// append still succeeds. Binding the bronze view over the whole lake would open one of them.
/// `--revalidate`, which reads every file, then fails naming a zeroed one; with the files put
/// back, the incremental result equals a rebuild of everything.
#[test]
fn an_incremental_refresh_reads_only_the_changed_partitions_files() {
    let p = Project::new(2_000);
    p.ok(&["refresh", "--no-export"]);
    let before: BTreeSet<String> = p.lake_files().into_iter().collect();
    p.ok(&[
        "generate", "events", "--mode", "append", "--rows", "20", "--seed", "11",
    ]);
    let after: BTreeSet<String> = p.lake_files().into_iter().collect();
    let folder = |f: &str| f.rsplit_once('/').map(|(d, _)| d.to_owned()).unwrap();
    let changed: BTreeSet<String> = after.difference(&before).map(|f| folder(f)).collect();
    assert!(!changed.is_empty(), "the append wrote new files");
    let mut saved = Vec::new();
    for file in after
        .iter()
        .filter(|f| f.starts_with("data/events/") && !changed.contains(&folder(f)))
    {
        let path = p.path(file);
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, vec![0u8; bytes.len()]).unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(modified).unwrap();
        saved.push((path, bytes, modified));
    }
    assert!(saved.len() > 100, "most days untouched: {}", saved.len());

    let out = p.ok(&["refresh", "--no-export"]);
    assert_eq!(
        mode(&out, "bronze_events"),
        format!("incremental ({} partitions)", changed.len()),
        "{out}"
    );
    let incremental = fingerprints(&p, &INCREMENTAL);

    let failed = p
        .cmd(&["refresh", "--no-export", "--revalidate"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("data/events/date="),
        "names the file: {stderr}"
    );

    for (path, bytes, modified) in saved {
        std::fs::write(&path, bytes).unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(modified).unwrap();
    }
    p.ok(&["refresh", "--no-export", "--revalidate"]);
    assert_eq!(incremental, fingerprints(&p, &INCREMENTAL));
}

/// `unique` over a view of the lake holds over the whole view, though the refresh compares the
/// hashes it keeps per folder instead of reading every folder: an event id written again into
/// another day's folder fails the refresh (exit 4) with the exact count of rows sharing an id,
/// and without that file the next refresh passes and equals `refresh --revalidate`.
#[test]
fn a_key_repeated_in_another_folder_fails_unique_through_the_kept_hashes() {
    let p = business_events_project();
    p.ok(&[
        "generate",
        "business-events",
        "--rows",
        "2000",
        "--seed",
        "3",
    ]);
    p.ok(&["ingest", "business_events"]);
    p.ok(&["refresh", "--no-export"]);
    let stamps = lake_stamps(&p, "business_events");
    let mut files = stamps.keys();
    let (from, into) = (files.next().unwrap(), files.last().unwrap());
    let (from, into) = (
        p.path(&format!("data/business_events/{from}")),
        p.path(&format!("data/business_events/{into}")),
    );
    let copy = into.with_file_name("repeated.parquet");
    let conn = duckdb::Connection::open_in_memory().unwrap();
    conn.execute_batch(&format!(
        "COPY (SELECT * FROM read_parquet('{}', hive_partitioning = false) LIMIT 1) TO '{}' (FORMAT parquet)",
        from.display(),
        copy.display()
    ))
    .unwrap();

    let out = p.cmd(&["refresh", "--no-export"]).output().unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(4), "{printed}");
    assert!(printed.contains("unique(event_id)"), "{printed}");
    let failing: i64 = p.warehouse_value(
        "SELECT failing_rows FROM failed_data_tests WHERE model = 'silver_business_events' AND test = 'unique(event_id)'",
    );
    assert_eq!(failing, 2, "the row and its copy");

    // The failed refresh kept nothing: without the copy the lake is as last built.
    std::fs::remove_file(&copy).unwrap();
    let out = p.ok(&["refresh", "--no-export"]);
    assert_eq!(mode(&out, "silver_business_events"), "unchanged");
    let incremental = fingerprints(&p, &BUSINESS);
    p.ok(&["refresh", "--no-export", "--revalidate"]);
    assert_eq!(incremental, fingerprints(&p, &BUSINESS));
}

#[test]
fn a_lake_model_made_a_view_and_back_with_the_same_sql_is_rebuilt_each_time() {
    let p = Project::new(2_000);
    p.ok(&["refresh", "--no-export"]);
    let lake = p.read("sql/models/events/models.yaml");
    let (as_lake, as_view) = (
        "    materialized: lake\n    incremental: {lake: events, partition: date, source: bronze_events}",
        "    materialized: view\n    incremental: {lake: events, partition: date, source: bronze_events}",
    );
    assert!(
        lake.contains(as_lake),
        "the seed's silver_events_validated is a lake model"
    );
    let rows = fingerprints(&p, &["silver_events_validated"]);
    let reads_parquet = |p: &Project| -> bool {
        p.warehouse_value::<String>(
            "SELECT sql FROM duckdb_views() WHERE view_name = 'silver_events_validated'",
        )
        .contains("data/silver_events_validated")
    };
    assert!(reads_parquet(&p));

    // Only the materialization changes: the model must become a plain view over bronze.
    p.write(
        "sql/models/events/models.yaml",
        &lake.replace(as_lake, as_view),
    );
    let out = p.ok(&["refresh", "--no-export"]);
    assert_eq!(mode(&out, "silver_events_validated"), "full", "{out}");
    assert!(
        !reads_parquet(&p),
        "a view of its own SQL, not of the lake model's files"
    );
    assert_eq!(fingerprints(&p, &["silver_events_validated"]), rows);

    // And back: written to the lake again (the rows appended meanwhile included), not
    // found unchanged.
    p.ok(&[
        "generate", "events", "--mode", "append", "--rows", "50", "--seed", "5",
    ]);
    p.write("sql/models/events/models.yaml", &lake);
    let out = p.ok(&["refresh", "--no-export"]);
    assert_eq!(mode(&out, "silver_events_validated"), "full", "{out}");
    assert!(reads_parquet(&p));
    let in_lake: i64 = p.file_value(
        "SELECT count(*) FROM read_parquet('data/silver_events_validated/*/*.parquet')",
    );
    assert_eq!(in_lake, 2_050);
    let rebuilt = fingerprints(&p, &INCREMENTAL);
    p.ok(&["refresh", "--no-export", "--revalidate"]);
    assert_eq!(fingerprints(&p, &INCREMENTAL), rebuilt);
}

/// Lake layouts made by hand are read by an incremental refresh as the views' globs read
/// them, or refused: a Parquet file in a sub-folder of a day (which `*/*.parquet` does not
/// read) is left out of every model; a file that is a symbolic link is changed when its target
/// is; a second folder of a day (`date=2024-1-5` beside `date=2024-01-05`, one partition to
/// DuckDB) fails the refresh naming it, as reading just one of the two would lose rows.
#[test]
fn hand_made_lake_layouts_are_read_as_the_views_read_them_or_refused() {
    let p = Project::new(2_000);
    p.ok(&["refresh", "--no-export"]);
    let days = partitions(&p);
    let conn = duckdb::Connection::open_in_memory().unwrap();
    let copy = |from: &std::path::Path, to: &std::path::Path, user: u32| {
        conn.execute_batch(&format!(
            "COPY (SELECT event_time, user_id % {user} + 1 AS user_id, team_id, event_name, properties
                   FROM read_parquet('{}/*.parquet', hive_partitioning = false))
             TO '{}' (FORMAT parquet)",
            from.display(),
            to.display()
        ))
        .unwrap();
    };
    let bronze_rows: i64 = p.warehouse_value("SELECT count(*) FROM bronze_events");

    // A file one folder too deep: the bronze view does not read it, nor may the refresh.
    let day = p.path(&format!("data/events/{}", days[3]));
    std::fs::create_dir(day.join("sub")).unwrap();
    copy(&day, &day.join("sub/extra.parquet"), 50);
    refresh_and_compare(&p, "a file in a sub-folder", &INCREMENTAL);
    let silver_rows: i64 = p.warehouse_value("SELECT count(*) FROM silver_events_validated");
    assert_eq!(
        silver_rows, bronze_rows,
        "the sub-folder's rows are read by no view"
    );
    std::fs::remove_dir_all(day.join("sub")).unwrap();

    // A symbolic link: its target rewritten (the link itself untouched) is a change.
    let day = p.path(&format!("data/events/{}", days[5]));
    let target = p.path("linked.parquet");
    copy(&day, &target, 50);
    for f in std::fs::read_dir(&day).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    std::os::unix::fs::symlink(&target, day.join("linked.parquet")).unwrap();
    refresh_and_compare(&p, "a file linked", &INCREMENTAL);
    let rewritten = p.path("rewritten.parquet");
    copy(&day, &rewritten, 7);
    std::fs::rename(&rewritten, &target).unwrap();
    let out = refresh_and_compare(&p, "a linked file's target rewritten", &INCREMENTAL);
    assert_eq!(
        mode(&out, "silver_events_validated"),
        "incremental (1 partitions)",
        "{out}"
    );

    // A second folder of one day, written otherwise.
    let (canonical, twin) = days
        .iter()
        .find_map(|d| {
            let date =
                chrono::NaiveDate::parse_from_str(d.strip_prefix("date=")?, "%Y-%m-%d").ok()?;
            let twin = format!("date={}", date.format("%Y-%-m-%-d"));
            (twin != *d).then(|| (d.clone(), twin))
        })
        .expect("a day with a zero-padded month or day");
    let twin_dir = p.path(&format!("data/events/{twin}"));
    std::fs::create_dir(&twin_dir).unwrap();
    copy(
        &p.path(&format!("data/events/{canonical}")),
        &twin_dir.join("extra.parquet"),
        50,
    );
    let before = fingerprints(&p, &INCREMENTAL);
    for args in [
        &["refresh", "--no-export"][..],
        &["refresh", "--no-export", "--revalidate"],
    ] {
        let out = p.cmd(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("events/{twin}")) && stderr.contains(&canonical),
            "{args:?}: the error names both folders: {stderr}"
        );
    }
    assert_eq!(fingerprints(&p, &INCREMENTAL), before, "nothing committed");
    std::fs::remove_dir_all(&twin_dir).unwrap();
    refresh_and_compare(&p, "the second folder removed", &INCREMENTAL);

    // The folder DuckDB writes for a NULL partition value, which it reads back as NULL: its
    // arrival rebuilds the models following the lake whole; later changes elsewhere stay
    // incremental and still read its rows.
    let null_dir = p.path("data/events/date=__HIVE_DEFAULT_PARTITION__");
    std::fs::create_dir(&null_dir).unwrap();
    copy(
        &p.path(&format!("data/events/{}", days[1])),
        &null_dir.join("x.parquet"),
        50,
    );
    let out = p.cmd(&["refresh", "--no-export"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("date=__HIVE_DEFAULT_PARTITION__/x.parquet changed")
            && stderr.contains("rebuilt whole"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(mode(&stdout, "silver_events_validated"), "full", "{stdout}");
    let rejected: i64 = p.warehouse_value(
        "SELECT count(*) FROM silver_events_rejected WHERE date IS NULL \
         AND reject_reason = 'date partition does not match event_time'",
    );
    assert!(rejected > 0, "the NULL folder's rows are read and rejected");
    refresh_and_compare(&p, "a NULL date folder", &INCREMENTAL);
    let day = p.path(&format!("data/events/{}", days[2]));
    copy(&day, &day.join("more.parquet"), 9);
    let out = refresh_and_compare(&p, "a day changed beside the NULL folder", &INCREMENTAL);
    assert_eq!(
        mode(&out, "gold_weekly_active_teams"),
        "incremental (1 partitions)",
        "{out}"
    );
}

/// A source partitioned by a text column with NULLs: their rows go to the NULL folder, and
/// each refresh equals a full rebuild, whether the NULL folder or another one changed.
#[test]
fn a_null_partition_of_an_ingested_source_is_refreshed_like_the_others() {
    let p = Project::empty();
    p.write(
        "warehouse.yaml",
        "sources:\n  events:\n    format: csv\n    path: raw\n    columns:\n      id: VARCHAR NOT NULL\n      kind: VARCHAR\n    partition_by: [kind]\n",
    );
    p.write(
        "sql/models/events/models.yaml",
        "models:\n  - name: silver_kinds\n    layer: silver\n    materialized: view\n    incremental: {lake: events, partition: kind}\n    tests:\n      - not_null: [id]\n  - name: gold_kinds\n    layer: gold\n    materialized: incremental\n    incremental: {lake: events, partition: kind}\n    tests:\n      - unique: [kind]\n",
    );
    p.write(
        "sql/models/events/silver_kinds.sql",
        "SELECT * FROM bronze_events\n",
    );
    p.write(
        "sql/models/events/gold_kinds.sql",
        "SELECT kind, count(*) AS n, string_agg(id, ',' ORDER BY id) AS ids FROM silver_kinds GROUP BY kind\n",
    );
    let models = ["silver_kinds", "gold_kinds"];
    let gold = |p: &Project| -> String {
        p.warehouse_value("SELECT string_agg(coalesce(kind, '∅') || '=' || ids, ' ' ORDER BY kind NULLS FIRST) FROM gold_kinds")
    };
    p.write("raw/1.csv", "id,kind\n1,a\n2,\n3,b\n");
    p.ok(&["ingest", "events"]);
    assert!(p
        .path("data/events/kind=__HIVE_DEFAULT_PARTITION__")
        .is_dir());
    refresh_and_compare(&p, "first load", &models);
    assert_eq!(gold(&p), "∅=2 a=1 b=3");
    p.write("raw/2.csv", "id,kind\n4,\n5,a\n");
    p.ok(&["ingest", "events"]);
    refresh_and_compare(&p, "the NULL folder changed", &models);
    assert_eq!(gold(&p), "∅=2,4 a=1,5 b=3");
    p.write("raw/3.csv", "id,kind\n6,b\n");
    p.ok(&["ingest", "events"]);
    let out = refresh_and_compare(&p, "another folder changed", &models);
    assert_eq!(
        mode(&out, "gold_kinds"),
        "incremental (1 partitions)",
        "{out}"
    );
    assert_eq!(gold(&p), "∅=2,4 a=1,5 b=3,6");
}

/// A source `events` ingesting `raw/*.csv` (`id`, `kind`) into the lake partitioned by `kind`.
const KIND_SOURCE: &str = "sources:\n  events:\n    format: csv\n    path: raw\n    columns:\n      id: VARCHAR NOT NULL\n      kind: VARCHAR NOT NULL\n    partition_by: [kind]\n";

/// A project ingesting `raw/*.csv` (`id`, `kind`) into the lake partitioned by `kind`, and the
/// incremental gold table `gold_ids` by `kind` made by `sql`, with the test `unique: <unique>`.
fn gold_ids_project(unique: &str, sql: &str) -> Project {
    let p = Project::empty();
    p.write("warehouse.yaml", KIND_SOURCE);
    p.write(
        "sql/models/events/models.yaml",
        &format!("models:\n  - name: gold_ids\n    layer: gold\n    materialized: incremental\n    incremental: {{lake: events, partition: kind}}\n    tests:\n      - unique: {unique}\n"),
    );
    p.write("sql/models/events/gold_ids.sql", &format!("{sql}\n"));
    p
}

/// `unique` on an incremental table compares only the rows the refresh replaced when the
/// test's columns hold the table's key (the other rows passed before and did not change), and
/// the whole table otherwise: a key repeated within the replaced rows and an id repeated
/// across keys each fail the refresh (exit 4) with the exact number of rows that share it.
#[test]
fn unique_on_an_incremental_table_fails_within_the_replaced_keys_and_across_them() {
    let p = gold_ids_project(
        "[kind]\n      - unique: [id]",
        "SELECT kind, id FROM bronze_events",
    );
    // Ingests `csv` as `file`; the incremental refresh after it fails its tests with `failed`.
    let ingest_and_fail = |file: &str, csv: &str, failed: &str| {
        p.write(file, csv);
        p.ok(&["ingest", "events"]);
        let out = p.cmd(&["refresh", "--no-export"]).output().unwrap();
        assert_eq!(out.status.code(), Some(4), "{out:?}");
        let modes: String =
            p.warehouse_value("SELECT modes FROM refresh_log ORDER BY id DESC LIMIT 1");
        assert_eq!(modes, r#"{"gold_ids":"incremental (1 partitions)"}"#);
        let failing: String = p.warehouse_value(
            "SELECT string_agg(test || '=' || failing_rows, ' ' ORDER BY test) FROM refresh_test_results \
             WHERE NOT passed AND refresh_id = (SELECT max(id) FROM refresh_log)",
        );
        assert_eq!(failing, failed);
    };
    p.write("raw/1.csv", "id,kind\n1,a\n3,b\n");
    p.ok(&["ingest", "events"]);
    p.ok(&["refresh", "--no-export"]);

    // Id 1 again, under a new key: only the whole table shows it.
    ingest_and_fail("raw/2.csv", "id,kind\n1,c\n", "unique(id)=2");

    p.write("raw/2.csv", "id,kind\n7,c\n");
    p.ok(&["ingest", "events"]);
    p.ok(&["refresh", "--no-export"]);

    // A second row of key a, replaced by this refresh.
    ingest_and_fail("raw/3.csv", "id,kind\n8,a\n", "unique(kind)=2");
    let rows: i64 = p.warehouse_value("SELECT count(*) FROM gold_ids");
    assert_eq!(rows, 3, "the failed refresh kept the table as it was");
}

/// A gold table written outside a refresh (by hand in another DuckDB client, or by a
/// migration) is seen by the next refresh: its history equals the table at every refresh and
/// its `unique` test reads the whole table, though that refresh replaced one key only.
#[test]
fn a_gold_table_edited_outside_a_refresh_is_compared_whole_by_the_next() {
    let p = gold_ids_project(
        "[kind]",
        "SELECT kind, max(id) AS id FROM bronze_events GROUP BY kind",
    );
    let edit = |sql: &str| {
        let conn = duckdb::Connection::open(p.path("warehouse.duckdb")).unwrap();
        conn.execute_batch(sql).unwrap();
    };
    // The rows the history gives for the last refresh, less the table's, and the other way.
    let history_differs = |p: &Project| -> i64 {
        p.warehouse_value(
            "SELECT (SELECT count(*) FROM (SELECT kind, id FROM gold_ids EXCEPT ALL \
               SELECT kind, id FROM gold_ids_history WHERE refresh_id = (SELECT max(id) FROM refresh_log))) \
             + (SELECT count(*) FROM (SELECT kind, id FROM gold_ids_history WHERE refresh_id = \
               (SELECT max(id) FROM refresh_log) EXCEPT ALL SELECT kind, id FROM gold_ids))",
        )
    };
    let refresh_one_more_kind = |file: &str, kind: &str| {
        p.write(file, &format!("id,kind\n9,{kind}\n"));
        p.ok(&["ingest", "events"]);
        p.cmd(&["refresh", "--no-export"]).output().unwrap()
    };
    p.write("raw/1.csv", "id,kind\n1,a\n3,b\n");
    p.ok(&["ingest", "events"]);
    p.ok(&["refresh", "--no-export"]);

    // A second row of key b, added by hand: a refresh with nothing new, then one of key c
    // alone, still fail unique.
    edit("INSERT INTO gold_ids SELECT * FROM gold_ids WHERE kind = 'b'");
    let failing_unique = |p: &Project| -> i64 {
        p.warehouse_value(
            "SELECT failing_rows FROM refresh_test_results WHERE NOT passed AND test = 'unique(kind)' \
             AND refresh_id = (SELECT max(id) FROM refresh_log)",
        )
    };
    let out = p.cmd(&["refresh", "--no-export"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(failing_unique(&p), 2, "both rows of key b, nothing new");
    let out = refresh_one_more_kind("raw/2.csv", "c");
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(failing_unique(&p), 2, "both rows of key b, key c new");

    // The copy gone and a value of key b changed by hand: the history has the table as it is.
    edit(
        "DELETE FROM gold_ids WHERE rowid = (SELECT max(rowid) FROM gold_ids WHERE kind = 'b');
         UPDATE gold_ids SET id = '33' WHERE kind = 'b'",
    );
    let out = p.cmd(&["refresh", "--no-export"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(history_differs(&p), 0, "a refresh after an edit by hand");

    // A migration changing key a, applied by the refresh of key d.
    p.write(
        "sql/V001__fix_a.sql",
        "UPDATE gold_ids SET id = '11' WHERE kind = 'a';\n",
    );
    let out = refresh_one_more_kind("raw/3.csv", "d");
    assert!(out.status.success(), "{out:?}");
    let ids: String =
        p.warehouse_value("SELECT string_agg(kind || id, ' ' ORDER BY kind) FROM gold_ids");
    assert_eq!(ids, "a11 b33 c9 d9");
    assert_eq!(history_differs(&p), 0, "a refresh that applied a migration");

    // Nothing but micro-wh's ingest wrote the file since: the next refresh compares only the
    // rows of key e (every statement is logged whole at -vvv), and the history still holds.
    p.write("raw/4.csv", "id,kind\n9,e\n");
    p.ok(&["ingest", "events"]);
    let logged = |p: &Project| -> String {
        let out = p.cmd(&["-vvv", "refresh", "--no-export"]).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let out = logged(&p);
    let diff = |out: &str, within: &str| {
        out.contains(&format!(
            "SELECT \"kind\", \"id\", 1 AS micro_wh_n FROM \"gold_ids\" WHERE {within}"
        ))
    };
    assert!(diff(&out, "\"kind\" IN"), "compared within key e: {out}");
    assert_eq!(history_differs(&p), 0, "a refresh after a sealed one");
    // Written by hand again: compared whole.
    edit("UPDATE gold_ids SET id = '12' WHERE kind = 'a'");
    p.write("raw/5.csv", "id,kind\n9,f\n");
    p.ok(&["ingest", "events"]);
    let out = logged(&p);
    assert!(diff(&out, "true"), "compared whole: {out}");
    assert_eq!(
        history_differs(&p),
        0,
        "a refresh after another edit by hand"
    );
}

/// A model that follows no lake partitions (a view, a table) is built whole every time, but
/// an incremental model after it may read it: when its SQL changes, the incremental models
/// after it in its folder are rebuilt whole too, or their rows of the unchanged partitions
/// would keep what its old SQL gave (found by a review: the refresh said `unchanged`). A
/// migration applied while models keep earlier rows says so, naming the file and the models.
#[test]
fn a_changed_view_rebuilds_the_incremental_models_after_it_and_a_migration_warns() {
    let p = Project::empty();
    p.write("warehouse.yaml", KIND_SOURCE);
    p.write(
        "sql/models/events/models.yaml",
        "models:\n  - name: labels\n    layer: silver\n    materialized: view\n  - name: gold_labels\n    layer: gold\n    materialized: incremental\n    incremental: {lake: events, partition: kind}\n",
    );
    p.write(
        "sql/models/events/labels.sql",
        "SELECT 'a' AS kind, 'first' AS label\n",
    );
    p.write(
        "sql/models/events/gold_labels.sql",
        "SELECT e.kind, l.label, count(*) AS n FROM bronze_events e LEFT JOIN labels l USING (kind) GROUP BY ALL\n",
    );
    p.write("raw/1.csv", "id,kind\n1,a\n2,b\n");
    p.ok(&["ingest", "events"]);
    p.ok(&["refresh", "--no-export"]);
    let rows = || -> String {
        p.warehouse_value(
            "SELECT string_agg(kind || '=' || coalesce(label, '-'), ' ' ORDER BY kind) FROM gold_labels",
        )
    };
    assert_eq!(rows(), "a=first b=-");

    p.write(
        "sql/models/events/labels.sql",
        "SELECT 'a' AS kind, 'second' AS label\n",
    );
    let out = p.ok(&["refresh", "--no-export"]);
    assert_eq!(mode(&out, "gold_labels"), "full", "{out}");
    assert_eq!(rows(), "a=second b=-");
    let out = p.ok(&["refresh", "--no-export"]);
    assert_eq!(mode(&out, "gold_labels"), "unchanged", "{out}");

    p.write(
        "sql/V001__more.sql",
        "CREATE TABLE more_labels AS SELECT 1 AS x;\n",
    );
    let out = p.cmd(&["refresh", "--no-export"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("applied V001__more.sql: gold_labels keep the rows built before"),
        "{stderr}"
    );
    assert_eq!(rows(), "a=second b=-");
}

/// An incremental model over partitions whose folder names DuckDB escapes (`city=San%20Jose`)
/// takes their rows by the values DuckDB reads (`San Jose`): an incremental refresh after a
/// new or changed city equals a rebuild (found by a review: the new city's rows never came).
#[test]
fn partitions_with_escaped_folder_names_are_refreshed_like_the_others() {
    let p = Project::empty();
    p.write(
        "warehouse.yaml",
        "refresh: {export: false}\nsources:\n  s:\n    format: csv\n    path: raw\n    columns:\n      id: INTEGER NOT NULL\n      city: VARCHAR\n      amt: INTEGER\n    partition_by: [city]\n",
    );
    p.write(
        "sql/models/s/models.yaml",
        "models:\n  - name: gold_city\n    layer: gold\n    materialized: incremental\n    incremental: {lake: s, partition: city, source: bronze_s}\n    tests:\n      - unique: [city]\n",
    );
    p.write(
        "sql/models/s/gold_city.sql",
        "SELECT city, count(*) AS n, sum(amt) AS amt FROM bronze_s GROUP BY city\n",
    );
    let gold = || -> String {
        p.warehouse_value(
            "SELECT string_agg(city || '=' || n || '/' || amt, ' ' ORDER BY city) FROM gold_city",
        )
    };
    p.write("raw/1.csv", "id,city,amt\n1,Paris,10\n2,San Jose,20\n");
    p.ok(&["ingest", "s"]);
    p.ok(&["refresh"]);
    p.write(
        "raw/2.csv",
        "id,city,amt\n3,San Jose,30\n4,Zürich,40\n5,a/b,50\n",
    );
    p.ok(&["ingest", "s"]);
    let out = p.ok(&["refresh"]);
    assert_eq!(
        mode(&out, "gold_city"),
        "incremental (3 partitions)",
        "{out}"
    );
    assert_eq!(gold(), "Paris=1/10 San Jose=2/50 Zürich=1/40 a/b=1/50");
    p.write("raw/1.csv", "id,city,amt\n1,Paris,10\n");
    p.ok(&["ingest", "s"]);
    let out = p.ok(&["refresh"]);
    // The file had rows in Paris and San Jose.
    assert_eq!(
        mode(&out, "gold_city"),
        "incremental (2 partitions)",
        "{out}"
    );
    let incremental = gold();
    assert_eq!(incremental, "Paris=1/10 San Jose=1/30 Zürich=1/40 a/b=1/50");
    p.ok(&["refresh", "--full"]);
    assert_eq!(gold(), incremental);
}
