//! `micro-wh generate`: layout, distributions, determinism, modes, and interrupted writes.

mod common;

use common::{Project, EVENTS};

#[test]
fn lake_is_hive_partitioned_by_date() {
    let p = Project::new(30_000);
    let out = p.ok(&["generate", "events"]);
    assert!(out.contains("generated 30000 events rows"), "{out}");
    let files = p.lake_files();
    assert!(
        files.len() > 900,
        "about one file per day over three years, got {}",
        files.len()
    );
    for f in &files {
        let parts: Vec<&str> = f.split('/').collect();
        assert_eq!(parts.len(), 4, "{f}");
        assert_eq!((parts[0], parts[1]), ("data", "events"));
        let date = parts[2]
            .strip_prefix("date=")
            .unwrap_or_else(|| panic!("{f}"));
        chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    // The partition value is the date of every event_time inside it.
    let mismatched: i64 = p.file_value(&format!(
        "SELECT count(*) FROM {EVENTS} WHERE CAST(event_time AS DATE) <> date"
    ));
    assert_eq!(mismatched, 0);
    assert_eq!(
        p.file_value::<i64>(&format!("SELECT count(*) FROM {EVENTS}")),
        30_000
    );
}

#[test]
fn columns_follow_the_documented_distributions() {
    let p = Project::new(60_000);
    p.ok(&["generate", "events", "--rows", "60000", "--seed", "11"]);
    let v = |sql: &str| {
        p.file_value::<String>(&format!("SELECT CAST(({sql}) AS VARCHAR) FROM {EVENTS}"))
    };
    assert!(
        v("min(event_time)").as_str() >= "2023-01-01 00:00:00",
        "{}",
        v("min(event_time)")
    );
    assert!(
        v("max(event_time)").as_str() <= "2025-12-31 23:59:59",
        "{}",
        v("max(event_time)")
    );
    // Uniform over three years: each year holds about a third of the rows.
    for year in ["2023", "2024", "2025"] {
        let share: f64 = p.file_value(&format!(
            "SELECT avg((year(event_time) = {year})::INT)::DOUBLE FROM {EVENTS}"
        ));
        assert!((0.31..0.36).contains(&share), "{year}: {share}");
    }
    assert!(v("min(user_id)").parse::<i64>().unwrap() >= 1);
    assert!(v("max(user_id)").parse::<i64>().unwrap() <= 100_000);
    assert!(
        v("max(user_id)").parse::<i64>().unwrap() > 99_000,
        "uses the whole user id range"
    );
    assert_eq!(v("min(team_id)"), "1");
    assert_eq!(v("max(team_id)"), "1000");
    assert_eq!(v("count(DISTINCT event_name)"), "15");
    let unknown: i64 = p.file_value(&format!(
        "SELECT count(*) FROM {EVENTS} WHERE event_name NOT IN ('page_view', 'button_click', 'form_submit', \
         'video_play', 'video_pause', 'add_to_cart', 'remove_from_cart', 'checkout', 'purchase', 'sign_up', \
         'sign_in', 'sign_out', 'search', 'filter_apply', 'share')"
    ));
    assert_eq!(unknown, 0);
    assert_eq!(v("count(*) FILTER (WHERE NOT json_valid(properties))"), "0");
    let keys = format!("(SELECT json_keys(properties::JSON) AS k FROM {EVENTS})");
    let p2 =
        |sql: &str| p.file_value::<String>(&format!("SELECT CAST(({sql}) AS VARCHAR) FROM {keys}"));
    assert_eq!(p2("min(len(k))"), "2");
    assert_eq!(p2("max(len(k))"), "5");
    assert_eq!(
        p2("count(*) FILTER (WHERE len(list_distinct(k)) <> len(k))"),
        "0",
        "keys are distinct"
    );
    let all_keys: String = p.file_value(&format!(
        "SELECT string_agg(DISTINCT key, ',' ORDER BY key) FROM (SELECT unnest(json_keys(properties::JSON)) AS key FROM {EVENTS})"
    ));
    assert_eq!(
        all_keys,
        "browser,button_id,category,device_type,filter_type,form_id,page_url,platform,price,product_id,quantity,search_term,session_id,video_id"
    );
    let typed: i64 = p.file_value(&format!(
        "SELECT count(*) FROM {EVENTS} WHERE json_type(properties::JSON, '$.price') NOT IN ('DOUBLE', 'UBIGINT') \
         OR json_type(properties::JSON, '$.quantity') <> 'UBIGINT'"
    ));
    assert_eq!(typed, 0, "price and quantity are numbers when present");
}

/// Row count and an order-independent hash of every row, as "count:hash".
fn fingerprint(p: &Project) -> String {
    p.file_value(&format!(
        "SELECT count(*) || ':' || sum(hash(event_time, user_id, team_id, event_name, properties, date)) FROM {EVENTS}"
    ))
}

fn rows(p: &Project) -> i64 {
    p.file_value(&format!("SELECT count(*) FROM {EVENTS}"))
}

#[test]
fn same_seed_same_rows_whatever_the_thread_count() {
    let one = Project::new(40_000);
    one.ok(&["generate", "events", "--seed", "5", "--threads", "1"]);
    let two = Project::new(40_000);
    two.ok(&["generate", "events", "--seed", "5", "--threads", "2"]);
    let four = Project::new(40_000);
    four.ok(&["generate", "events", "--seed", "5", "--threads", "4"]);
    assert_eq!(fingerprint(&one), fingerprint(&two));
    assert_eq!(fingerprint(&one), fingerprint(&four));
    assert_eq!(rows(&one), 40_000);

    // Writing in many small slices (one COPY each) changes neither the rows nor the layout.
    let sliced = Project::new(40_000);
    sliced.write(
        "warehouse.yaml",
        "generate:\n  events:\n    rows: 40000\n    seed: 7\nlake:\n  max_rows_per_write: 3000\n",
    );
    sliced.ok(&["generate", "events", "--seed", "5"]);
    assert_eq!(fingerprint(&sliced), fingerprint(&one));
    assert_eq!(
        sliced.lake_files().len(),
        one.lake_files().len(),
        "still one file per day"
    );

    let other = Project::new(40_000);
    other.ok(&["generate", "events", "--seed", "6", "--threads", "2"]);
    assert_ne!(
        fingerprint(&one),
        fingerprint(&other),
        "another seed gives other rows"
    );
}

#[test]
fn overwrite_replaces_and_append_adds_without_touching_existing_files() {
    let p = Project::new(10_000);
    p.ok(&["generate", "events"]);
    p.ok(&[
        "generate",
        "events",
        "--rows",
        "4000",
        "--mode",
        "overwrite",
    ]);
    assert_eq!(
        p.file_value::<i64>(&format!("SELECT count(*) FROM {EVENTS}")),
        4_000
    );

    let before = p.lake_files();
    let modified: Vec<_> = before
        .iter()
        .map(|f| std::fs::metadata(p.path(f)).unwrap().modified().unwrap())
        .collect();
    p.ok(&[
        "generate", "events", "--rows", "3000", "--seed", "99", "--mode", "append",
    ]);
    assert_eq!(
        p.file_value::<i64>(&format!("SELECT count(*) FROM {EVENTS}")),
        7_000
    );
    let after = p.lake_files();
    for (f, m) in before.iter().zip(&modified) {
        assert!(after.contains(f), "{f} kept");
        assert_eq!(
            std::fs::metadata(p.path(f)).unwrap().modified().unwrap(),
            *m,
            "{f} not rewritten"
        );
    }
    assert!(after.len() > before.len());
}

#[test]
fn snappy_compression_is_honoured() {
    let p = Project::new(5_000);
    p.ok(&["generate", "events", "--compression", "snappy"]);
    let codec: String = p.file_value(
        "SELECT DISTINCT compression FROM parquet_metadata('data/events/*/*.parquet') WHERE path_in_schema = 'user_id'",
    );
    assert_eq!(codec.to_uppercase(), "SNAPPY");
    p.ok(&["generate", "events"]);
    let codec: String = p.file_value(
        "SELECT DISTINCT compression FROM parquet_metadata('data/events/*/*.parquet') WHERE path_in_schema = 'user_id'",
    );
    assert_eq!(codec.to_uppercase(), "ZSTD");
}

#[test]
fn a_write_aborted_at_any_step_leaves_the_old_or_the_new_lake_and_is_cleaned_up() {
    // (fault point, whether the new lake is published when the process dies there)
    for (point, published) in [
        ("generate-before-publish", false),
        ("publish-after-swap", true),
    ] {
        let p = Project::new(5_000);
        p.ok(&["generate", "events"]);
        let (old_files, old) = (p.lake_files(), fingerprint(&p));
        let out = p
            .cmd(&["-q", "generate", "events", "--rows", "7000", "--seed", "3"])
            .env("MICRO_WH_FAULT", point)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{point}: the process aborts");
        let left: Vec<_> = std::fs::read_dir(p.path("data/.staging"))
            .map(|d| d.collect())
            .unwrap_or_default();
        assert!(
            !left.is_empty(),
            "{point}: the aborted run leaves staging behind"
        );
        if published {
            assert_eq!(rows(&p), 7_000, "{point}: the whole new lake");
            assert_ne!(p.lake_files(), old_files);
        } else {
            assert_eq!(p.lake_files(), old_files, "{point}: lake files unchanged");
            assert_eq!(fingerprint(&p), old, "{point}: same rows");
        }
        // The next run removes the leftovers.
        p.ok(&["generate", "events", "--rows", "1000"]);
        let leftovers: Vec<_> = std::fs::read_dir(p.path("data/.staging"))
            .map(|d| d.collect())
            .unwrap_or_default();
        assert!(
            leftovers.is_empty(),
            "{point}: staging cleaned: {leftovers:?}"
        );
        assert_eq!(rows(&p), 1_000);
    }
}

#[test]
fn bad_arguments_are_explained() {
    let p = Project::new(100);
    let err = p.fails(&["generate", "nope"]);
    assert!(
        err.contains("`nope` is not a dataset") && err.contains("events, business-events"),
        "{err}"
    );
    let err = p.fails(&["generate", "events", "--rows", "0"]);
    assert!(err.contains("rows"), "{err}");
}

fn flock(file: &std::fs::File, op: i32) {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor the test owns.
    assert_eq!(
        unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) },
        0
    );
}

#[test]
fn a_busy_lake_is_waited_for_or_refused_naming_who_holds_it() {
    let p = Project::new(2_000);
    p.ok(&["generate", "events"]);
    p.ok(&["generate", "business-events", "--rows", "300"]);
    p.write(
        "warehouse.yaml",
        &format!(
            "{}sources:\n  business_events:\n    format: ndjson\n    path: raw/business_events\n",
            p.read("warehouse.yaml")
        ),
    );
    let open_lock = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(p.path("data/.lock"))
            .unwrap()
    };

    // Another process holds the lake without saying who: a writer and a refresh are both
    // refused at once, and say why.
    let reader = open_lock();
    flock(&reader, libc::LOCK_SH);
    // An ingest is refused before it reads a file: none is recorded as failed.
    for command in [
        &["generate", "events"][..],
        &["refresh", "--no-export"],
        &["ingest", "business_events"],
    ] {
        let out = p.cmd(command).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(6), "{stderr}");
        assert!(
            stderr.contains("in use by another process") && stderr.contains("--lock-timeout"),
            "{stderr}"
        );
    }

    // With --lock-timeout the writer waits, and goes on once the reader lets go.
    let mut writer = std::process::Command::new(assert_cmd::cargo::cargo_bin("micro-wh"))
        .current_dir(p.dir.path())
        .args([
            "-q",
            "--lock-timeout",
            "60",
            "generate",
            "events",
            "--rows",
            "3000",
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    assert!(
        writer.try_wait().unwrap().is_none(),
        "the writer waits while the lake is held"
    );
    drop(reader);
    assert!(writer.wait().unwrap().success());
    assert_eq!(rows(&p), 3_000);
    p.ok(&["ingest", "business_events"]);
    let manifest: String = p.warehouse_value(
        "SELECT count(*) FILTER (WHERE status = 'failed') || ' failed, ' || count(*) FILTER (WHERE status = 'loaded') || ' loaded' FROM ingest_manifest",
    );
    assert!(
        manifest.starts_with("0 failed, ") && !manifest.ends_with(" 0 loaded"),
        "{manifest}"
    );

    // A writer holding the lake (exclusive) is named by the pid and command it left there.
    let mut holder = open_lock();
    flock(&holder, libc::LOCK_EX);
    use std::io::Write;
    writeln!(holder, "pid 4242: micro-wh ingest --all").unwrap();
    let out = p.cmd(&["refresh", "--no-export"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains("pid 4242: micro-wh ingest --all"),
        "{stderr}"
    );
}

#[test]
fn compact_leaves_one_file_per_partition_and_exactly_the_same_rows() {
    let p = Project::new(3_000);
    p.ok(&["generate", "events"]);
    p.ok(&["generate", "events", "--mode", "append", "--seed", "8"]);
    p.ok(&["generate", "events", "--mode", "append", "--seed", "9"]);
    p.ok(&["refresh", "--no-export"]);
    let gold = |p: &Project| -> String {
        p.warehouse_value(
            "SELECT count(*) || ':' || sum(dau) || ':' || (SELECT sum(weekly_active_teams) FROM gold_weekly_active_teams) FROM gold_daily_active_users",
        )
    };
    let (rows_before, gold_before, files_before) = (fingerprint(&p), gold(&p), p.lake_files());
    let folders = |files: &[String]| -> std::collections::BTreeMap<String, usize> {
        let mut m = std::collections::BTreeMap::new();
        for f in files {
            *m.entry(f.rsplit_once('/').unwrap().0.to_owned())
                .or_default() += 1;
        }
        m
    };
    assert!(
        folders(&files_before).values().any(|&n| n > 1),
        "appends left several files"
    );

    let out = p
        .cmd(&["compact", "events"])
        .env("MICRO_WH_FAULT", "compact-before-publish")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        p.lake_files(),
        files_before,
        "an aborted compaction changes nothing"
    );

    let out = p.ok(&["compact"]);
    assert!(
        out.contains("events:") && out.contains(&format!("{} files", files_before.len())),
        "{out}"
    );
    let after = p.lake_files();
    assert_eq!(
        folders(&after).len(),
        folders(&files_before).len(),
        "same partitions"
    );
    assert!(
        folders(&after).values().all(|&n| n == 1),
        "one file per partition"
    );
    assert_eq!(fingerprint(&p), rows_before, "the same rows");
    p.ok(&["refresh", "--no-export"]);
    assert_eq!(gold(&p), gold_before);
    assert!(p
        .ok(&["compact", "events"])
        .contains("0 partitions rewritten"));

    // Ingested sources whose file names record their input file are refused, by name.
    p.write("raw/w.csv", "a,b\n1,2\n");
    p.write(
        "warehouse.yaml",
        &format!(
            "{}sources:\n  w:\n    format: csv\n    path: raw/w.csv\n",
            p.read("warehouse.yaml")
        ),
    );
    p.ok(&["ingest", "w"]);
    let err = p.fails(&["compact", "w"]);
    assert!(
        err.contains("w is an ingested source") && err.contains("key"),
        "{err}"
    );
}
