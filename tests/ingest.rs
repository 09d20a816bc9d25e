//! `micro-wh ingest`: every format and failure mode, with exact counts, lines and reasons.

mod common;

use common::Project;

/// (line, reason) of every quarantined row of a file, in line order.
fn quarantine(p: &Project, file: &str) -> Vec<(i64, String)> {
    let conn = duckdb::Connection::open(p.path("warehouse.duckdb")).unwrap();
    let mut stmt = conn
        .prepare("SELECT line, reason FROM ingest_quarantine WHERE file = ? ORDER BY line")
        .unwrap();
    stmt.query_map([file], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// (rows_in, rows_loaded, rows_quarantined, status) of the latest manifest row of a file.
fn manifest(p: &Project, file: &str) -> (i64, i64, i64, String) {
    let conn = duckdb::Connection::open(p.path("warehouse.duckdb")).unwrap();
    conn.query_row(
        "SELECT rows_in, rows_loaded, rows_quarantined, status FROM ingest_manifest
         WHERE file = ? ORDER BY ingest_id DESC, finished_at DESC LIMIT 1",
        [file],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
    .unwrap()
}

fn exit_code(p: &Project, args: &[&str]) -> (i32, String, String) {
    let out = p.cmd(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_reason(q: &(i64, String), line: i64, words: &[&str]) {
    assert_eq!(q.0, line, "{q:?}");
    for w in words {
        assert!(
            q.1.to_lowercase().contains(&w.to_lowercase()),
            "line {line}: reason `{}` lacks `{w}`",
            q.1
        );
    }
}

#[test]
fn csv_bad_lines_are_quarantined_with_line_and_reason_and_the_rest_loads() {
    let p = Project::empty();
    p.fixture("csv_errors");
    let (code, stdout, stderr) = exit_code(&p, &["ingest", "weather"]);
    assert_eq!(code, 3, "quarantined rows exit 3\n{stdout}\n{stderr}");

    let jan = "raw/weather/2013-01.csv";
    assert_eq!(manifest(&p, jan), (9, 3, 6, "quarantined".into()));
    let q = quarantine(&p, jan);
    assert_eq!(q.len(), 6, "{q:?}");
    assert_reason(&q[0], 4, &["temp", "abc", "DOUBLE"]);
    assert_reason(&q[1], 5, &["missing columns"]);
    assert_reason(&q[2], 6, &["time_hour", "2013-02-30"]);
    assert_reason(&q[3], 7, &["column origin: NULL in a NOT NULL column"]);
    assert_reason(&q[4], 8, &["check failed: temp BETWEEN -80 AND 140"]);
    assert_reason(&q[5], 9, &["too many columns"]);
    // The raw text travels with the reason.
    let raw: String = p.warehouse_value(
        "SELECT raw FROM ingest_quarantine WHERE file = 'raw/weather/2013-01.csv' AND line = 8",
    );
    assert_eq!(raw, "LGA,150.5,2013-01-01 10:00:00");

    let feb = "raw/weather/2013-02.csv";
    assert_eq!(manifest(&p, feb), (4, 2, 2, "quarantined".into()));
    let q = quarantine(&p, feb);
    assert_reason(&q[0], 3, &["unicode"]);
    assert_reason(&q[1], 5, &["missing columns"]);

    // The lake holds exactly the loaded rows, partitioned by origin; NA read as NULL.
    assert_eq!(
        p.warehouse_value::<i64>("SELECT count(*) FROM bronze_weather"),
        5
    );
    assert_eq!(
        p.warehouse_value::<i64>(
            "SELECT count(*) FROM bronze_weather WHERE origin = 'JFK' AND temp IS NULL"
        ),
        1
    );
    let dirs: i64 = p.file_value(
        "SELECT count(DISTINCT regexp_extract(filename, 'origin=([A-Z]+)', 1)) FROM read_parquet('data/weather/*/*.parquet', filename = true)",
    );
    assert_eq!(dirs, 3);
    // Every file obeys rows_in = rows_loaded + rows_quarantined.
    let broken: i64 = p.warehouse_value(
        "SELECT count(*) FROM ingest_manifest WHERE rows_in <> rows_loaded + rows_quarantined",
    );
    assert_eq!(broken, 0);
}

#[test]
fn unchanged_files_are_skipped_and_changed_files_replace_their_rows() {
    let p = Project::empty();
    p.fixture("csv_errors");
    exit_code(&p, &["ingest", "weather"]);
    let (code, stdout, _) = exit_code(&p, &["ingest", "weather"]);
    assert_eq!(code, 0, "a skip quarantines nothing new\n{stdout}");
    assert_eq!(stdout.matches("skipped").count(), 3, "{stdout}");
    assert_eq!(
        p.warehouse_value::<i64>("SELECT count(*) FROM bronze_weather"),
        5
    );

    // Rewrite January with two good lines: its 3 earlier rows go, February's 2 stay.
    p.write(
        "raw/weather/2013-01.csv",
        "origin,temp,time_hour\nEWR,1,2013-01-01 05:00:00\nEWR,2,2013-01-01 06:00:00\n",
    );
    let (code, stdout, stderr) = exit_code(&p, &["ingest", "weather"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(
        p.warehouse_value::<i64>("SELECT count(*) FROM bronze_weather"),
        4
    );
    assert_eq!(
        manifest(&p, "raw/weather/2013-01.csv"),
        (2, 2, 0, "loaded".into())
    );
    assert_eq!(quarantine(&p, "raw/weather/2013-01.csv"), vec![]);
    let replaced: i64 = p.warehouse_value(
        "SELECT count(*) FROM ingest_manifest WHERE file = 'raw/weather/2013-01.csv' AND status = 'replaced'",
    );
    assert_eq!(replaced, 1);
}

#[test]
fn empty_header_only_and_binary_files() {
    let p = Project::empty();
    p.fixture("csv_edge");
    let (code, stdout, stderr) = exit_code(&p, &["ingest", "--all"]);
    assert_eq!(code, 1, "a failed file exits 1\n{stdout}\n{stderr}");
    assert!(
        stderr.contains("raw/w/c_binary.csv") && stderr.contains("not a CSV file"),
        "{stderr}"
    );
    assert_eq!(
        manifest(&p, "raw/w/a_empty.csv"),
        (0, 0, 0, "loaded".into())
    );
    assert_eq!(
        manifest(&p, "raw/w/b_header_only.csv"),
        (0, 0, 0, "loaded".into())
    );
    assert_eq!(
        manifest(&p, "raw/w/c_binary.csv"),
        (0, 0, 0, "failed".into())
    );
    // The other files still loaded.
    assert_eq!(manifest(&p, "raw/w/d_good.csv"), (2, 2, 0, "loaded".into()));
    assert_eq!(p.warehouse_value::<i64>("SELECT count(*) FROM bronze_w"), 2);

    // The only file with rows emptied: its rows leave the lake, and the view over the lake,
    // which would now fail on every read with "No files found", reads the declared columns
    // of no rows instead, saying so.
    std::fs::remove_file(p.path("raw/w/c_binary.csv")).unwrap();
    p.write("raw/w/d_good.csv", "");
    let (code, stdout, stderr) = exit_code(&p, &["ingest", "--all"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("no rows of w") && stderr.contains("bronze_w reads no rows"),
        "{stderr}"
    );
    assert_eq!(p.warehouse_value::<i64>("SELECT count(*) FROM bronze_w"), 0);
}

/// A line that is not UTF-8 is quarantined as the file has it, only its invalid bytes
/// replaced, and a rejected line's text is the line alone, whatever the line ends.
#[test]
fn quarantined_lines_keep_their_text_in_lf_and_crlf_files() {
    for end in ["\n", "\r\n"] {
        let p = Project::empty();
        p.write(
            "warehouse.yaml",
            "sources:\n  w:\n    format: csv\n    path: raw/w.csv\n    columns:\n      a: VARCHAR\n      b: BIGINT\n",
        );
        let lines: [&[u8]; 5] = [b"a,b", b"ok,1", b"\xe9LGA,2", b"x,notanumber", b"z\xff,4"];
        let mut bytes = Vec::new();
        for line in lines {
            bytes.extend_from_slice(line);
            bytes.extend_from_slice(end.as_bytes());
        }
        std::fs::create_dir_all(p.path("raw")).unwrap();
        std::fs::write(p.path("raw/w.csv"), bytes).unwrap();
        let (code, ..) = exit_code(&p, &["ingest", "w"]);
        assert_eq!(code, 3, "rows quarantined");
        let raw: String = p.warehouse_value(
            "SELECT string_agg(line || ':' || raw, '|' ORDER BY line) FROM ingest_quarantine",
        );
        assert_eq!(
            raw, "3:\u{fffd}LGA,2|4:x,notanumber|5:z\u{fffd},4",
            "{end:?} line ends"
        );
    }
}

/// Rows failing NOT NULL or a check are quarantined with their own line and text in a CRLF
/// file (with a blank line), a CR-only file, after a quoted field holding line breaks and after
/// a quote left open on a rejected line (the whole file failed), and so are the rows
/// DuckDB rejects there, which it numbers as if each record took one line (found by a review:
/// lines one too low, texts starting with LF, and every later row shifted).
#[test]
fn quarantined_lines_are_the_files_lines_after_crlf_blank_and_multiline_records() {
    let cases: [(&str, &str); 5] = [
        (
            "id,a,b\r\n1,1,x\r\n2,x,x\r\n3,500,x\r\n\r\n,2,x\r\n4,700,x",
            "3:2,x,x|4:3,500,x|6:,2,x|7:4,700,x",
        ),
        (
            "id,a,b\n1,1,\"multi\nline\nvalue\"\n2,zz,ok\n3,500,ok\n,1,nullid\n4,2,\"q\"\n",
            "5:2,zz,ok|6:3,500,ok|7:,1,nullid",
        ),
        (
            "id,a,b\r1,1,ok\r2,x,ok\r,3,nullid\r3,500,chk\r4,1,ok\r",
            "3:2,x,ok|4:,3,nullid|5:3,500,chk",
        ),
        ("id,a,b\r\n1,1,ok\r\n\r\n2,x,ok\r\n3,1,ok\r\n", "4:2,x,ok"),
        // A quote left open reads on to the next quote: lines 3 to 5 are one rejected record.
        (
            "id,a,b\n1,1,ok\n2,\"x,ok\n,3,nullid\n3,500,\"chk\"\n4,y,ok\n5,1,ok\n",
            "3:2,\"x,ok\n,3,nullid\n3,500,\"chk\"|6:4,y,ok",
        ),
    ];
    // DuckDB keeps 10,000 characters of a rejected row's text: a record spanning lines whose
    // first line is longer is still read whole.
    let long = format!(
        "id,a,b\n1,2,x\n2,q,\"{}\nabc\"\n3,200,y\n,5,w\n",
        "z".repeat(20_000)
    );
    let cases: Vec<(&str, &str)> = cases
        .into_iter()
        .chain([(long.as_str(), "5:3,200,y|6:,5,w")])
        .collect();
    for (csv, expected) in cases {
        let p = Project::empty();
        p.write(
            "warehouse.yaml",
            "sources:\n  w:\n    format: csv\n    path: raw/w.csv\n    columns:\n      id: INTEGER NOT NULL\n      a: INTEGER\n      b: VARCHAR\n    checks: [\"a < 100\"]\n",
        );
        p.write("raw/w.csv", csv);
        let (code, ..) = exit_code(&p, &["ingest", "w"]);
        assert_eq!(code, 3, "rows quarantined");
        let raw: String = p.warehouse_value(
            "SELECT string_agg(line || ':' || raw, '|' ORDER BY line) FILTER (WHERE length(raw) < 100) FROM ingest_quarantine",
        );
        assert_eq!(raw, expected, "{:?}", &csv[..csv.len().min(80)]);
        let reasons = quarantine(&p, "raw/w.csv");
        assert!(
            reasons.iter().any(|r| r.1.contains("Could not convert")),
            "{reasons:?}"
        );
    }
}

/// A quote left open is never left to DuckDB's sniffer, which then chose no quote at all:
/// quoted values loaded with their quotes and rows whose quoted field holds the separator
/// were refused (found by a review). The quote is `"` unless declared, the separator comes
/// from the header line, and the lines a quote left open joins are quarantined, saying so.
#[test]
fn a_quote_left_open_never_changes_how_the_other_rows_are_read() {
    let p = Project::empty();
    p.write(
        "warehouse.yaml",
        "sources:\n  w:\n    format: csv\n    path: raw/w.csv\n    columns:\n      id: INTEGER NOT NULL\n      name: VARCHAR\n      d: DATE\n  s:\n    format: csv\n    path: raw/s.csv\n    columns:\n      id: INTEGER\n      name: VARCHAR\n  u:\n    format: csv\n    path: raw/u.csv\n  q:\n    format: csv\n    path: raw/q.csv\n    delimiter: \"|\"\n    quote: \"'\"\n  w_us:\n    format: csv\n    path: raw/us.csv\n    columns:\n      id: INTEGER\n      name: VARCHAR\n      d: DATE\n",
    );
    p.write(
        "raw/w.csv",
        "id,name,d\n1,\"Smith, J\",2024-03-04\n2,\"open,2024-12-31\n3,\"ok\",2024-01-02\n4,plain,2024-01-03\n",
    );
    p.write(
        "raw/s.csv",
        "id;name\n1;\"a; b\"\n2;\"never closed\n3;c\n4;d\n",
    );
    p.write("raw/u.csv", "id,name\n1,\"a, b\"\n2,\"open\n");
    p.write("raw/q.csv", "id|name\n1|'a | b'\n2|\"x\"\n");
    // Quotes all closed: DuckDB still detects the file's date form (US here).
    p.write(
        "raw/us.csv",
        "id,name,d\n1,\"a, b\",03/04/2024\n2,c,12/31/2024\n",
    );
    let (code, stdout, stderr) = exit_code(&p, &["ingest", "--all"]);
    assert_eq!(code, 1, "u fails: {stdout}\n{stderr}");
    // w: lines 3 and 4 are one record (the quote closes on line 4); the rows around it load
    // as written.
    let w = quarantine(&p, "raw/w.csv");
    assert_eq!(w.len(), 1, "{w:?}");
    assert_reason(&w[0], 3, &["unterminated quote"]);
    assert_eq!(
        p.warehouse_value::<String>(
            "SELECT string_agg(name || ' ' || d, '|' ORDER BY id) FROM bronze_w"
        ),
        "Smith, J 2024-03-04|plain 2024-01-03"
    );
    assert!(
        stderr.contains("raw/w.csv line 3: a quote opened there"),
        "{stderr}"
    );
    assert!(
        stderr.contains("raw/w.csv: DuckDB cannot detect"),
        "{stderr}"
    );
    assert_eq!(
        p.warehouse_value::<String>(
            "SELECT string_agg(name || ' ' || d, '|' ORDER BY id) FROM bronze_w_us"
        ),
        "a, b 2024-03-04|c 2024-12-31"
    );
    // s: `;` from the header; the open quote reads to the end of the file.
    assert_eq!(
        p.warehouse_value::<String>("SELECT name FROM bronze_s"),
        "a; b"
    );
    assert_eq!(manifest(&p, "raw/s.csv"), (2, 1, 1, "quarantined".into()));
    // u: no declared columns, nothing to read the file by: it fails, saying what to do.
    assert!(
        stderr.contains("cannot infer the columns of raw/u.csv") && stderr.contains("columns:"),
        "{stderr}"
    );
    // q: the declared separator and quote.
    assert_eq!(
        p.warehouse_value::<String>("SELECT string_agg(name, ',' ORDER BY id) FROM bronze_q"),
        "a | b,\"x\""
    );
}

#[test]
fn ndjson_lines_are_typed_checked_and_quarantined_by_line() {
    let p = Project::empty();
    p.fixture("ndjson_errors");
    let (code, ..) = exit_code(&p, &["ingest", "orders"]);
    assert_eq!(code, 3);
    let f = "raw/orders.ndjson";
    assert_eq!(manifest(&p, f), (8, 2, 6, "quarantined".into()));
    let q = quarantine(&p, f);
    assert_reason(&q[0], 2, &["column id: 'x' is not a valid BIGINT"]);
    assert_reason(&q[1], 3, &["invalid JSON"]);
    assert_reason(&q[2], 4, &["blank line"]);
    assert_reason(&q[3], 5, &["not a JSON object"]);
    assert_reason(&q[4], 6, &["column name: NULL in a NOT NULL column"]);
    assert_reason(&q[5], 7, &["check failed: amount >= 0"]);
    // Nested values land as JSON that silver SQL can extract from.
    assert_eq!(
        p.warehouse_value::<i64>(
            "SELECT CAST(meta ->> 'k' AS BIGINT) FROM bronze_orders WHERE id = 1"
        ),
        1
    );
    assert_eq!(
        p.warehouse_value::<i64>("SELECT json_array_length(meta) FROM bronze_orders WHERE id = 5"),
        2
    );
}

#[test]
fn json_arrays_quarantine_by_element_and_a_truncated_array_keeps_what_came_before() {
    let p = Project::empty();
    p.fixture("json_array");
    let (code, ..) = exit_code(&p, &["ingest", "items"]);
    assert_eq!(code, 3);
    assert_eq!(
        manifest(&p, "raw/a_items.json"),
        (3, 2, 1, "quarantined".into())
    );
    assert_reason(
        &quarantine(&p, "raw/a_items.json")[0],
        2,
        &["column id", "two", "INTEGER"],
    );
    assert_eq!(
        manifest(&p, "raw/b_truncated.json"),
        (3, 2, 1, "quarantined".into())
    );
    assert_reason(
        &quarantine(&p, "raw/b_truncated.json")[0],
        3,
        &["invalid JSON"],
    );
    assert_eq!(
        p.warehouse_value::<i64>("SELECT sum(id) FROM bronze_items"),
        1 + 3 + 10 + 11
    );
}

#[test]
fn log_lines_that_do_not_match_are_quarantined() {
    let p = Project::empty();
    p.fixture("log_lines");
    let (code, ..) = exit_code(&p, &["ingest", "app"]);
    assert_eq!(code, 3);
    assert_eq!(manifest(&p, "raw/app.log"), (7, 3, 4, "quarantined".into()));
    let q = quarantine(&p, "raw/app.log");
    assert_reason(&q[0], 3, &["no match for pattern"]);
    assert_reason(&q[1], 4, &["no match for pattern"]);
    assert_reason(&q[2], 6, &["column ts", "TIMESTAMP"]);
    assert_reason(&q[3], 7, &["check failed"]);
    assert_eq!(
        p.warehouse_value::<String>("SELECT string_agg(level, ',' ORDER BY ts) FROM bronze_app"),
        "INFO,WARN,ERROR"
    );
}

#[test]
fn sqlite_tables_land_in_their_own_folders_and_misfits_are_quarantined() {
    let p = Project::empty();
    std::fs::create_dir_all(p.path("raw")).unwrap();
    let db = rusqlite::Connection::open(p.path("raw/shop.sqlite")).unwrap();
    db.execute_batch(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, joined DATE);
         INSERT INTO customers VALUES (1, 'Ada', '2024-01-05'), (2, NULL, NULL), (3, 'Bob', '2024-02-30');
         CREATE TABLE orders (id INTEGER, customer_id INTEGER, amount NUMERIC(10,2), note TEXT);
         INSERT INTO orders VALUES (1, 1, 9.99, NULL), (2, 'abc', 5, 'text in an INTEGER column'),
                                   (3, 2, 1.5, 'ok'), (4, 2.5, 3, 'fraction in an INTEGER column'),
                                   (5, NULL, NULL, NULL);",
    )
    .unwrap();
    drop(db);
    p.write(
        "warehouse.yaml",
        "sources:\n  shop:\n    format: sqlite\n    path: raw/shop.sqlite\n",
    );
    let (code, stdout, stderr) = exit_code(&p, &["ingest", "shop"]);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    let conn = duckdb::Connection::open(p.path("warehouse.duckdb")).unwrap();
    let rows: Vec<(String, i64, i64, i64)> = conn
        .prepare("SELECT source, rows_in, rows_loaded, rows_quarantined FROM ingest_manifest ORDER BY source")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        vec![
            ("shop.customers".into(), 3, 2, 1),
            ("shop.orders".into(), 5, 3, 2)
        ]
    );
    let reasons: Vec<(i64, String)> = conn
        .prepare(
            "SELECT line, reason FROM ingest_quarantine WHERE source = 'shop.orders' ORDER BY line",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    drop(conn);
    assert_reason(&reasons[0], 2, &["column customer_id", "abc", "BIGINT"]);
    assert_reason(&reasons[1], 4, &["column customer_id", "2.5", "BIGINT"]);
    assert!(p.path("data/shop/customers").is_dir() && p.path("data/shop/orders").is_dir());
    assert_eq!(
        p.warehouse_value::<String>("SELECT CAST(sum(amount) AS VARCHAR) FROM bronze_shop_orders"),
        "11.49"
    );
    assert_eq!(
        p.warehouse_value::<String>("SELECT typeof(amount) FROM bronze_shop_orders LIMIT 1"),
        "DECIMAL(10,2)"
    );
    // NULLs stay NULL, not empty strings.
    assert_eq!(
        p.warehouse_value::<i64>(
            "SELECT count(*) FROM bronze_shop_customers WHERE name IS NULL AND joined IS NULL"
        ),
        1
    );
}

#[test]
fn keys_keep_the_latest_row_across_files_and_runs() {
    let p = Project::empty();
    p.fixture("keyed");
    let values = |p: &Project| -> String {
        p.warehouse_value(
            "SELECT string_agg(id || '=' || v || '@' || day, ' ' ORDER BY id) FROM bronze_events",
        )
    };
    let (code, stdout, _) = exit_code(&p, &["ingest", "events"]);
    assert_eq!(code, 0, "{stdout}");
    // Within a file: the newer e1 wins; the tie on e3 goes to the later line.
    assert_eq!(
        values(&p),
        "e1=3@2024-01-01 e2=2@2024-01-01 e3=5@2024-01-02"
    );
    assert!(stdout.contains("loaded"), "{stdout}");

    // A later file: e1 updated onto another day, e2 with an older timestamp loses, e4 new.
    p.write(
        "raw/b.ndjson",
        "{\"id\": \"e1\", \"ts\": \"2024-01-03 08:00:00\", \"kind\": \"x\", \"v\": 6}\n\
         {\"id\": \"e2\", \"ts\": \"2024-01-01 09:00:00\", \"kind\": \"x\", \"v\": 7}\n\
         {\"id\": \"e4\", \"ts\": \"2024-01-02 10:00:00\", \"kind\": \"z\", \"v\": 8}\n",
    );
    p.ok(&["ingest", "events"]);
    assert_eq!(
        values(&p),
        "e1=6@2024-01-03 e2=2@2024-01-01 e3=5@2024-01-02 e4=8@2024-01-02"
    );
    // A changed file replaces the rows it loaded: e3 only came from a.ndjson.
    p.write(
        "raw/a.ndjson",
        "{\"id\": \"e1\", \"ts\": \"2024-01-01 10:00:00\", \"kind\": \"x\", \"v\": 1}\n\
         {\"id\": \"e2\", \"ts\": \"2024-01-01 11:00:00\", \"kind\": \"x\", \"v\": 2}\n",
    );
    p.ok(&["ingest", "events"]);
    assert_eq!(
        values(&p),
        "e1=6@2024-01-03 e2=2@2024-01-01 e4=8@2024-01-02"
    );

    // One data.parquet per day folder, and nothing else.
    let mut files = Vec::new();
    common::walk(&p.path("data/events"), &mut |f| {
        files.push(
            f.strip_prefix(p.path("data/events"))
                .unwrap()
                .to_string_lossy()
                .into_owned(),
        )
    });
    files.sort();
    assert_eq!(
        files,
        [
            "day=2024-01-01/data.parquet",
            "day=2024-01-02/data.parquet",
            "day=2024-01-03/data.parquet"
        ]
    );
}

#[test]
fn a_run_killed_between_lake_and_manifest_is_finished_by_the_next_run() {
    for point in ["ingest-before-publish", "ingest-after-publish"] {
        let p = Project::empty();
        p.fixture("keyed");
        let out = p
            .cmd(&["ingest", "events"])
            .env("MICRO_WH_FAULT", point)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{point}: the fault aborts");
        let (code, stdout, stderr) = exit_code(&p, &["ingest", "events"]);
        assert_eq!(code, 0, "{point}: {stdout}\n{stderr}");
        assert_eq!(
            manifest(&p, "raw/a.ndjson"),
            (5, 5, 0, "loaded".into()),
            "{point}"
        );
        assert_eq!(
            p.warehouse_value::<i64>("SELECT count(*) FROM bronze_events"),
            3,
            "{point}: each row once"
        );
        let loaded: i64 =
            p.warehouse_value("SELECT count(*) FROM ingest_manifest WHERE status = 'loaded'");
        assert_eq!(loaded, 1, "{point}");
    }
}

#[test]
fn errors_name_the_source_path_and_format() {
    let p = Project::empty();
    p.write(
        "warehouse.yaml",
        "sources:\n  a:\n    format: csv\n    path: raw/missing\n  b:\n    format: xml\n    path: raw\n",
    );
    let err = p.fails(&["ingest", "nope"]);
    assert!(
        err.contains("source `nope` is not declared") && err.contains("a, b"),
        "{err}"
    );
    let err = p.fails(&["ingest", "a"]);
    assert!(
        err.contains("source `a`") && err.contains("raw/missing does not exist"),
        "{err}"
    );
    let err = p.fails(&["ingest", "b"]);
    assert!(
        err.contains("sources.b.format: unknown format `xml`"),
        "{err}"
    );
    p.write(
        "warehouse.yaml",
        "sources:\n  a:\n    format: csv\n    path: x\n    partition: [a]\n",
    );
    let err = p.fails(&["ingest", "a"]);
    assert!(
        err.contains("warehouse.yaml") && err.contains("partition"),
        "{err}"
    );
    // A misspelled type stops the run before any file is read, naming the key; a check that
    // is not SQL fails its files, saying why without the kilobytes of generated SQL.
    p.write("raw/c.csv", "id,amount\n1,5\n");
    p.write(
        "warehouse.yaml",
        "sources:\n  c:\n    format: csv\n    path: raw/c.csv\n    columns:\n      id: BANANA\n",
    );
    let err = p.fails(&["ingest", "c"]);
    assert!(
        err.contains("sources.c.columns.id: `BANANA` is not a DuckDB type"),
        "{err}"
    );
    assert!(
        !p.path("warehouse.duckdb").exists() || {
            let tables: i64 = p.warehouse_value(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'ingest_manifest'",
            );
            tables == 0 || p.warehouse_value::<i64>("SELECT count(*) FROM ingest_manifest") == 0
        },
        "no file recorded"
    );
    p.write(
        "warehouse.yaml",
        "sources:\n  c:\n    format: csv\n    path: raw/c.csv\n    columns:\n      id: BIGINT\n    checks: [\"amount >== 0\"]\n",
    );
    let err = p.fails(&["ingest", "c"]);
    assert!(
        err.contains("raw/c.csv") && err.contains(">==") && !err.contains("--- SQL ---"),
        "{err}"
    );
    // Usage errors are exit 2 (clap).
    let (code, ..) = exit_code(&p, &["ingest"]);
    assert_eq!(code, 2);
}

#[test]
fn path_overrides_the_configured_path_for_one_source() {
    let p = Project::empty();
    p.fixture("csv_edge");
    let (code, stdout, stderr) = exit_code(&p, &["ingest", "w", "--path", "raw/w/d_good.csv"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(p.warehouse_value::<i64>("SELECT count(*) FROM bronze_w"), 2);
}

#[test]
fn the_shipped_example_loads_every_format_in_one_command() {
    let p = Project::empty();
    p.copy_from_repo("examples/ingest");
    let dir = p.path("examples/ingest");
    let status = std::process::Command::new("python3")
        .arg(dir.join("make_shop_sqlite.py"))
        .status()
        .expect("python3 runs the example's SQLite maker");
    assert!(status.success());
    let out = p
        .cmd(&[
            "--config",
            "examples/ingest/warehouse.yaml",
            "ingest",
            "--all",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for source in [
        "weather",
        "orders",
        "items",
        "app",
        "shop.customers",
        "shop.orders",
    ] {
        assert!(
            stdout.contains(source),
            "{source} in the summary:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("6 files: 35 rows in, 16 loaded, 19 quarantined, 0 skipped"),
        "{stdout}"
    );
}

/// DuckDB escapes partition values in folder names (`city=San%20Jose`) and reads them back
/// unescaped: a keyed source whose partition values have spaces, `/`, `=` or accents still
/// replaces the rows a changed file loaded and keeps one row per key across files (found by a
/// review: the old folder was kept beside the new rows, or the ingest refused to overwrite it).
#[test]
fn keys_replace_rows_in_partitions_whose_folder_names_are_escaped() {
    let p = Project::empty();
    p.write(
        "warehouse.yaml",
        "sources:\n  s:\n    format: csv\n    path: raw\n    columns:\n      id: INTEGER NOT NULL\n      city: VARCHAR\n      ts: INTEGER\n    key: [id]\n    order_by: ts\n    partition_by: [city]\n",
    );
    let rows = || -> String {
        p.warehouse_value("SELECT string_agg(id || '@' || city, ' ' ORDER BY id) FROM bronze_s")
    };
    p.write(
        "raw/a.csv",
        "id,city,ts\n1,New York,1\n2,a/b=c,1\n3,Zürich,1\n",
    );
    p.ok(&["ingest", "s"]);
    assert_eq!(rows(), "1@New York 2@a/b=c 3@Zürich");
    // A changed file: its rows in every one of those folders are replaced.
    p.write("raw/a.csv", "id,city,ts\n1,Paris,2\n3,Zürich,2\n");
    p.ok(&["ingest", "s"]);
    assert_eq!(rows(), "1@Paris 3@Zürich");
    // Another file's newer row of a key moves it out of an escaped folder.
    p.write("raw/b.csv", "id,city,ts\n3,New York,3\n");
    p.ok(&["ingest", "s"]);
    assert_eq!(rows(), "1@Paris 3@New York");
    let folders: Vec<String> = std::fs::read_dir(p.path("data/s"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(folders.len(), 2, "{folders:?}");
}

/// A file whose content was loaded before under another name (renamed, copied into the
/// landing folder twice) is loaded again, as a source without a key cannot tell a re-delivery
/// from new rows, but the ingest says so, naming both files.
#[test]
fn the_same_content_under_another_name_is_loaded_with_a_warning() {
    let p = Project::empty();
    p.write(
        "warehouse.yaml",
        "sources:\n  s:\n    format: csv\n    path: raw\n    columns:\n      id: INTEGER NOT NULL\n",
    );
    p.write("raw/a.csv", "id\n1\n2\n");
    let (code, _, stderr) = exit_code(&p, &["ingest", "s"]);
    assert_eq!(code, 0);
    assert!(!stderr.contains("same content"), "{stderr}");
    p.write("raw/b.csv", "id\n1\n2\n");
    let (code, _, stderr) = exit_code(&p, &["ingest", "s"]);
    assert_eq!(code, 0);
    assert!(
        stderr.contains("raw/b.csv: the same content as raw/a.csv, loaded before"),
        "{stderr}"
    );
    let rows: i64 = p.warehouse_value("SELECT count(*) FROM bronze_s");
    assert_eq!(rows, 4);
}

#[test]
fn a_check_raising_an_error_quarantines_its_row_and_a_source_of_no_rows_keeps_a_typed_view() {
    let p = Project::empty();
    p.write(
        "warehouse.yaml",
        "sources:\n  w:\n    format: csv\n    path: raw/w.csv\n    columns:\n      id: INTEGER NOT NULL\n      code: VARCHAR\n      d: DATE\n    checks: [\"CAST(code AS INTEGER) > 0\"]\n    partition_by:\n      year: \"strftime(d, '%Y')\"\n  n:\n    format: ndjson\n    path: raw/n.ndjson\n    columns:\n      id: INTEGER\n      code: VARCHAR\n    checks: [\"CAST(code AS INTEGER) > 0\"]\n  u:\n    format: csv\n    path: raw/u.csv\n    checks: [\"x > 0\"]\n",
    );
    // Every row of w fails: one check errors (the cast of 'abc'), one is false.
    p.write(
        "raw/w.csv",
        "id,code,d\n1,abc,2024-01-01\n2,-4,2025-02-02\n",
    );
    p.write(
        "raw/n.ndjson",
        "{\"id\":1,\"code\":\"x1\"}\n{\"id\":2,\"code\":\"3\"}\n",
    );
    p.write("raw/u.csv", "x\n-1\n");
    let (code, stdout, stderr) = exit_code(&p, &["ingest", "--all"]);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    let w = quarantine(&p, "raw/w.csv");
    assert_eq!(w.len(), 2, "{w:?}");
    assert_reason(
        &w[0],
        2,
        &["could not be evaluated", "CAST(code AS INTEGER) > 0"],
    );
    assert_reason(&w[1], 3, &["check failed: CAST(code AS INTEGER) > 0"]);
    assert_eq!(
        manifest(&p, "raw/n.ndjson"),
        (2, 1, 1, "quarantined".into())
    );
    assert_reason(
        &quarantine(&p, "raw/n.ndjson")[0],
        1,
        &["could not be evaluated"],
    );

    // A source with declared columns and no rows still has its view, typed, empty.
    let columns: String = p.warehouse_value(
        "SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY column_index) FROM duckdb_columns() WHERE table_name = 'bronze_w'",
    );
    assert_eq!(columns, "id INTEGER, code VARCHAR, d DATE, year VARCHAR");
    assert_eq!(p.warehouse_value::<i64>("SELECT count(*) FROM bronze_w"), 0);
    assert!(stderr.contains("view bronze_w reads no rows"), "{stderr}");
    // Without declared columns there is nothing to type it by: the warning says so.
    assert!(
        stderr.contains("no view bronze_u") && stderr.contains("columns:"),
        "{stderr}"
    );

    // Rows arriving later replace the empty view with the lake's.
    p.write(
        "raw/w.csv",
        "id,code,d\n1,abc,2024-01-01\n2,-4,2025-02-02\n3,8,2025-03-03\n",
    );
    let (code, ..) = exit_code(&p, &["ingest", "w"]);
    assert_eq!(code, 3);
    assert_eq!(
        p.warehouse_value::<String>("SELECT code || ' ' || year FROM bronze_w"),
        "8 2025"
    );
}

/// Files a review of the dialect change read wrongly, each now read as it means: a header
/// quote left open lost the whole file with exit 0; TSV quotes that are text, quotes escaped
/// by a backslash and checks TRY cannot guard regressed; a header that does not split into
/// the declared columns quarantined every row; the empty view's columns were not the lake's.
#[test]
fn csv_dialects_the_sniffer_reads_right_stay_and_a_header_quote_left_open_is_an_error() {
    let p = Project::empty();
    let declared = "    columns:\n      id: INTEGER NOT NULL\n      txt: VARCHAR\n";
    let mut yaml = String::from("sources:\n");
    for (name, extra) in [
        ("hdr", "    checks: [\"id < 100\"]\n"),
        ("tsv", "    quote: \"\"\n"),
        ("bs", ""),
        (
            "vol",
            "    checks: [\"random() < 2\", \"id IN (FROM (VALUES (1), (2)))\"]\n",
        ),
        ("late", ""),
        ("inner", ""),
        ("ncol", ""),
        ("last", ""),
    ] {
        yaml.push_str(&format!(
            "  {name}:\n    format: csv\n    path: raw/{name}.csv\n{declared}{extra}"
        ));
    }
    yaml.push_str(
        "  kept:\n    format: csv\n    path: raw/kept.csv\n    columns:\n      id: INTEGER\n      d: DATE\n      city: VARCHAR\n    key: [id]\n    order_by: d\n    partition_by:\n      yr: \"year(d)\"\n      city: city\n",
    );
    p.write("warehouse.yaml", &yaml);
    p.write("raw/hdr.csv", "id,\"txt\n1,a\n2,\"b\"\n3,c\n");
    // Declared: the quotes are text.
    p.write("raw/tsv.csv", "id\ttxt\n1\t\"Hi, she said\n2\t12\" ruler\n");
    // The first quoted fields come after the lines DuckDB's sniffer samples: they are still
    // quoted fields (the sniffer, finding no quote, had them loaded with their quotes).
    let mut late = String::from("id,txt\n");
    for i in 1..=40_000 {
        late.push_str(&format!("{i},t{i}\n"));
    }
    late.push_str("40001,\"a,b\"\n40002,\"q\"\"x\"\n40003,\"multi\nline\"\n40004,z\n");
    p.write("raw/late.csv", &late);
    // A quote inside a header name is text; a quoted name may hold a line break.
    p.write("raw/inner.csv", "id,\"si\nze\"\"in\"\n1,\"a,b\"\n2,x\"y\n");
    p.write("raw/bs.csv", "id,txt\n1,\"say \\\"hi\\\"\"\n2,\"x, y\"\n");
    p.write("raw/vol.csv", "id,txt\n1,a\n2,b\n3,c\n");
    p.write("raw/ncol.csv", "id,txt,more\n1,a,b\n");
    p.write("raw/last.csv", "id,txt\n1,\"a\"\n2,\"open\n");
    p.write("raw/kept.csv", "id,d,city\n1,2024-01-02,Paris\n");
    let (code, stdout, stderr) = exit_code(&p, &["ingest", "--all"]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("raw/hdr.csv: in the header line a quoted name is followed by more text"),
        "{stderr}"
    );
    assert!(
        stderr.contains("raw/ncol.csv: the header line has 3 column(s)")
            && stderr.contains("2 are declared (id, txt)"),
        "{stderr}"
    );
    let texts = |source: &str| -> String {
        p.warehouse_value(&format!(
            "SELECT string_agg(txt, '|' ORDER BY id) FROM bronze_{source}"
        ))
    };
    assert_eq!(texts("tsv"), "\"Hi, she said|12\" ruler");
    assert_eq!(texts("bs"), "say \"hi\"|x, y");
    assert_eq!(texts("vol"), "a|b");
    assert_reason(
        &quarantine(&p, "raw/vol.csv")[0],
        4,
        &["check failed: id IN"],
    );
    assert_eq!(
        manifest(&p, "raw/late.csv"),
        (40_004, 40_004, 0, "loaded".into())
    );
    assert_eq!(
        p.warehouse_value::<String>(
            "SELECT string_agg(txt, '|' ORDER BY id) FROM bronze_late WHERE id > 40000"
        ),
        "a,b|q\"x|multi\nline|z"
    );
    assert_eq!(texts("inner"), "a,b|x\"y");
    // A quote left open on the last line: its text without the line break, and no claim
    // that it joined lines after it.
    assert_eq!(quarantine(&p, "raw/last.csv")[0].0, 3);
    assert_eq!(
        p.warehouse_value::<String>(
            "SELECT raw FROM ingest_quarantine WHERE file = 'raw/last.csv'"
        ),
        "2,\"open"
    );
    assert!(
        !stderr.contains("raw/last.csv line 3: a quote opened there"),
        "{stderr}"
    );

    // A keyed, partitioned source of no rows: its view has the lake's columns in its order.
    let columns = |p: &Project| -> String {
        p.warehouse_value(
            "SELECT string_agg(column_name, ',' ORDER BY column_index) FROM duckdb_columns() WHERE table_name = 'bronze_kept'",
        )
    };
    let with_rows = columns(&p);
    assert_eq!(with_rows, "id,d,_source_file,city,yr");
    p.write("raw/kept.csv", "id,d,city\n");
    exit_code(&p, &["ingest", "kept"]);
    assert_eq!(
        p.warehouse_value::<i64>("SELECT count(*) FROM bronze_kept"),
        0
    );
    assert_eq!(columns(&p), with_rows);

    // Settings DuckDB would refuse for every file are refused before any is read.
    for (setting, words) in [
        ("quote: \",\"", "declare `delimiter:` too"),
        (
            "delimiter: \";\"\n    escape: \";\"",
            "must differ from the delimiter",
        ),
    ] {
        p.write(
            "warehouse.yaml",
            &format!("sources:\n  w:\n    format: csv\n    path: raw/vol.csv\n    {setting}\n"),
        );
        let err = p.fails(&["ingest", "w"]);
        assert!(err.contains(words) && err.contains("sources.w"), "{err}");
    }
}

/// Blank and comment lines before the header are skipped as DuckDB skips them, and the lines
/// of quarantined rows after them are still the file's (found by a third review: the first
/// line was taken for the header, which loaded one column of `id;name` or failed the file);
/// a header over 64 KiB and a space after a quoted name are read too.
#[test]
fn lines_before_the_header_long_headers_and_spaced_quotes_are_read_as_duckdb_reads_them() {
    let p = Project::empty();
    let wide: Vec<String> = (0..3000).map(|i| format!("sensor_column_{i:05}")).collect();
    let mut yaml = String::from(
        "sources:\n  w:\n    format: csv\n    path: raw/w.csv\n    columns:\n      id: INTEGER NOT NULL\n      name: VARCHAR\n    checks: [\"id < 4\"]\n  u:\n    format: csv\n    path: raw/u.csv\n  s:\n    format: csv\n    path: raw/s.csv\n    columns:\n      id: INTEGER\n      name: VARCHAR\n  wide:\n    format: csv\n    path: raw/wide.csv\n    columns:\n",
    );
    for name in &wide {
        yaml.push_str(&format!("      {name}: INTEGER\n"));
    }
    p.write("warehouse.yaml", &yaml);
    p.write(
        "raw/w.csv",
        "# exported\n\nid,name\n1,\"a\"\n,b\nx,c\n4,\"d\"\n2,\"multi\nline\"\n,z\n",
    );
    p.write("raw/u.csv", "\n# by a tool\nid;name\n1;a\n2;b\n");
    p.write("raw/s.csv", "\"id\" ,\"name\"\n1,a\n");
    let row: Vec<String> = (0..3000).map(|i| i.to_string()).collect();
    p.write(
        "raw/wide.csv",
        &format!("{}\n{}\n", wide.join(","), row.join(",")),
    );
    let (code, stdout, stderr) = exit_code(&p, &["ingest", "--all"]);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    let lines: Vec<i64> = quarantine(&p, "raw/w.csv").iter().map(|q| q.0).collect();
    assert_eq!(lines, [5, 6, 7, 10]);
    assert_eq!(
        p.warehouse_value::<String>("SELECT string_agg(name, '|' ORDER BY id) FROM bronze_w"),
        "a|multi\nline"
    );
    assert_eq!(
        p.warehouse_value::<String>(
            "SELECT string_agg(id || '=' || name, '|' ORDER BY id) FROM bronze_u"
        ),
        "1=a|2=b"
    );
    assert_eq!(
        p.warehouse_value::<String>("SELECT name FROM bronze_s"),
        "a"
    );
    assert_eq!(
        p.warehouse_value::<i64>("SELECT sensor_column_02999 FROM bronze_wide"),
        2999
    );

    // Only blank and comment lines are skipped: DuckDB's sniffer skips a header that does not
    // fit the rows and takes the first row for it (a fourth review: row 3 vanished, exit 0).
    // A quoted header name over two lines counts as one line, as DuckDB counts it.
    let p = Project::empty();
    p.write(
        "warehouse.yaml",
        "sources:\n  t:\n    format: csv\n    path: raw/t.csv\n  one:\n    format: csv\n    path: raw/one.csv\n    columns:\n      id: INTEGER\n  sp:\n    format: csv\n    path: raw/sp.csv\n    columns:\n      id: INTEGER NOT NULL\n      name: VARCHAR\n  u:\n    format: csv\n    path: raw/u.csv\n  h:\n    format: csv\n    path: raw/h.csv\n    columns:\n      id: INTEGER NOT NULL\n      name: VARCHAR\n  c:\n    format: csv\n    path: raw/c.csv\n    columns:\n      id: INTEGER NOT NULL\n      name: VARCHAR\n  g:\n    format: csv\n    path: raw/g.csv\n    columns:\n      id: INTEGER NOT NULL\n      name: VARCHAR\n      x: VARCHAR\n  m:\n    format: csv\n    path: raw/m.csv\n    columns:\n      id: INTEGER NOT NULL\n      name: VARCHAR\n",
    );
    p.write(
        "raw/g.csv",
        "id,name\n3,\"n3\",x\n4,\"n4\",x\n5,\"n5\",x\n6,\"n6\",x\n",
    );
    p.write("raw/m.csv", "id,\"na\nme\"\n1,a\n,b\nx,d\n");
    // A header beginning with `#` is the header (a fifth review: it was skipped as a comment
    // and the first row taken for the header, lost with exit 0).
    p.write("raw/h.csv", "#id,name\n1,\"a\"\n2,b\n");
    // A comment before the header of a file with bad rows, whose sniffing skips nothing (a
    // sixth review: the comment was taken for the header and the file failed).
    p.write("raw/c.csv", "# c\nid,name\n1,a\n2,b\nx,d\n5,e,f\n6,g\n");
    // A seventh review: a one-column `#id` header, a header indented before its `#`, and an
    // undeclared `#` header whose first row is bad lost a row or failed the file.
    p.write("raw/one.csv", "#id\n1\n2\n");
    p.write("raw/sp.csv", " #id,name\n1,a\n2,b\n");
    p.write("raw/u.csv", "#id,name\n1\n2,b\n3,c\n");
    // An eighth: a comment, a `#` header and a short first row made one column of it all.
    p.write("raw/t.csv", "# generated\n#id\tname\n1\n2\tb\n3\tc\n");
    let (code, stdout, stderr) = exit_code(&p, &["ingest", "--all"]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("raw/g.csv: the header line has 2 column(s)"),
        "{stderr}"
    );
    let m = quarantine(&p, "raw/m.csv");
    assert_eq!(m.len(), 2, "{m:?}");
    assert_reason(&m[0], 4, &["NULL in a NOT NULL column"]);
    assert_reason(&m[1], 5, &["Could not convert"]);
    assert_eq!(
        p.warehouse_value::<String>("SELECT string_agg(id || name, ',' ORDER BY id) FROM bronze_h"),
        "1a,2b"
    );
    assert_eq!(
        p.warehouse_value::<String>("SELECT string_agg(id || name, ',' ORDER BY id) FROM bronze_c"),
        "1a,2b,6g"
    );
    let c: Vec<i64> = quarantine(&p, "raw/c.csv").iter().map(|q| q.0).collect();
    assert_eq!(c, [5, 6]);
    let ids = |source: &str, id: &str| -> String {
        p.warehouse_value(&format!(
            "SELECT string_agg(CAST({id} AS VARCHAR), ',' ORDER BY {id}) FROM bronze_{source}"
        ))
    };
    assert_eq!(ids("one", "id"), "1,2");
    assert_eq!(ids("sp", "id"), "1,2");
    assert_eq!(ids("u", "\"#id\""), "2,3");
    assert_eq!(quarantine(&p, "raw/u.csv")[0].0, 2);
    assert_eq!(
        p.warehouse_value::<String>(
            "SELECT string_agg(\"#id\" || name, ',' ORDER BY \"#id\") FROM bronze_t"
        ),
        "2b,3c"
    );
    assert_eq!(quarantine(&p, "raw/t.csv")[0].0, 3);
}
