//! `micro-wh report`: one offline HTML page whose every number is the warehouse's, with one
//! SVG per chart, that a real browser renders without a console message.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::Project;

/// The repository's demo project (events, business events) made small, with the
/// `csv_errors` fixture's weather source beside it so that rows are quarantined.
fn demo_project() -> Project {
    let p = Project::empty();
    p.copy_from_repo("sql");
    p.copy_from_repo("warehouse.yaml");
    p.fixture("csv_errors");
    let weather = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/csv_errors/warehouse.yaml"),
    )
    .unwrap();
    let weather = weather.strip_prefix("sources:\n").unwrap();
    let config =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("warehouse.yaml"))
            .unwrap()
            .replace("rows: 1000000", "rows: 5000")
            .replace("rows: 20000 ", "rows: 2000 ")
            .replace("memory_limit: 2GB", "memory_limit: 1GB")
            .replacen("\nsources:\n", &format!("\nsources:\n{weather}"), 1);
    p.write("warehouse.yaml", &config);
    p
}

/// The demo project after its first refresh, which ingests every source: exit 3, as the
/// weather fixture's bad rows are quarantined.
fn demo_refreshed() -> Project {
    let p = demo_project();
    exits(&p, &["refresh"], 3);
    p
}

fn exits(p: &Project, args: &[&str], code: i32) {
    let out = p.cmd(args).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "micro-wh {args:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Telemetry gold tables as the telemetry models write them (their schema), from the
/// project's own state geometry: every state but Texas, so that one state has no data. They
/// replace the tables the demo's telemetry models built (every state reports there).
fn add_telemetry(p: &Project) {
    let geometry: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/contiguous-us-states.geojson"),
        )
        .unwrap(),
    )
    .unwrap();
    let states = geometry["features"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(_, f)| f["properties"]["postal"] != "TX")
        .map(|(i, f)| {
            format!(
                "('{}', '{}', {i})",
                f["properties"]["postal"].as_str().unwrap(),
                f["properties"]["region"].as_str().unwrap()
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    p.write(
        "telemetry.sql",
        &format!(
            "CREATE OR REPLACE TABLE gold_state_hourly AS
             SELECT d::DATE AS date, h::INTEGER AS hour, region, state,
                    (10 + i * 3 + h * (i % 5))::BIGINT AS devices,
                    (-95 + i * 0.37 + h * 0.11)::DOUBLE AS avg_signal_dbm,
                    (20 + i + h)::DOUBLE AS p95_latency_ms,
                    (50 + i * 2.5 - h)::DOUBLE AS avg_throughput_mbps
             FROM (VALUES {states}) s(state, region, i),
                  range(DATE '2025-12-20', DATE '2026-01-01', INTERVAL 1 DAY) t(d), range(24) r(h);
             CREATE OR REPLACE TABLE gold_region_daily AS
             SELECT date, region, sum(devices)::BIGINT AS devices, (sum(devices) * 12)::BIGINT AS measurements,
                    avg(avg_signal_dbm) AS avg_signal_dbm, max(p95_latency_ms) AS p95_latency_ms,
                    avg(avg_throughput_mbps) AS avg_throughput_mbps
             FROM gold_state_hourly GROUP BY ALL;"
        ),
    );
    p.ok(&["sql", "-f", "telemetry.sql"]);
}

/// Every row of a query on the warehouse, each value as DuckDB renders it.
fn warehouse_rows(p: &Project, sql: &str) -> Vec<Vec<String>> {
    let conn = duckdb::Connection::open(p.path("warehouse.duckdb")).unwrap();
    let mut stmt = conn
        .prepare(&format!("SELECT COLUMNS(*)::VARCHAR FROM ({sql})"))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let rows = stmt
        .query_map([], |r| {
            let n = r.as_ref().column_count();
            (0..n)
                .map(|i| r.get::<_, Option<String>>(i).map(|v| v.unwrap_or_default()))
                .collect()
        })
        .unwrap()
        .collect::<duckdb::Result<Vec<Vec<String>>>>()
        .unwrap();
    rows
}

/// An element of the page, copied out of the parser: its attributes, text and inner HTML
/// (which `find` can search again).
struct El {
    attrs: BTreeMap<String, String>,
    text: String,
    inner: String,
}

impl El {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }
}

/// The elements of `html` matching a CSS selector, in document order.
fn find(html: &str, selector: &str) -> Vec<El> {
    let dom = tl::parse(html, tl::ParserOptions::default()).expect("the page parses as HTML");
    let parser = dom.parser();
    dom.query_selector(selector)
        .unwrap_or_else(|| panic!("bad selector {selector}"))
        .filter_map(|h| h.get(parser).and_then(|n| n.as_tag()))
        .map(|tag| El {
            attrs: tag
                .attributes()
                .iter()
                .map(|(k, v)| {
                    (
                        k.into_owned(),
                        v.map(|v| v.into_owned()).unwrap_or_default(),
                    )
                })
                .collect(),
            text: unescape(tag.inner_text(parser).trim()),
            inner: tag.inner_html(parser).to_string(),
        })
        .collect()
}

/// Text as the browser shows it: the page escapes `&`, `<`, `>` and `"`.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

fn one(html: &str, selector: &str) -> El {
    find(html, selector)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("the page has no {selector}"))
}

/// The cells of a table's body rows (rows of `td`), by the table's id.
fn table(page: &str, id: &str) -> Vec<Vec<String>> {
    let table = one(page, &format!("table#{id}"));
    find(&table.inner, "tr")
        .iter()
        .map(|tr| {
            find(&tr.inner, "td")
                .into_iter()
                .map(|td| td.text)
                .collect::<Vec<_>>()
        })
        .filter(|cells| !cells.is_empty())
        .collect()
}

/// A number as the page writes it for people (`1,234`, `-81.5`, `12.3 %`).
fn number(text: &str) -> f64 {
    text.trim_end_matches(" %")
        .replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("`{text}` is not a number"))
}

fn assert_close(page: &str, warehouse: &str, decimals: i32, what: &str) {
    let tolerance = 0.5 * 10f64.powi(-decimals) + 1e-9;
    assert!(
        (number(page) - number(warehouse)).abs() <= tolerance,
        "{what}: the page shows {page}, the warehouse holds {warehouse}"
    );
}

/// Columns of the page's table equal the warehouse's rows, in order; `decimals` per column
/// (None: compared as text).
fn assert_table(
    page: &str,
    id: &str,
    columns: &[usize],
    sql_rows: &[Vec<String>],
    decimals: &[Option<i32>],
) {
    let shown = table(page, id);
    assert_eq!(shown.len(), sql_rows.len(), "rows of #{id}: {shown:?}");
    for (row, (shown, expected)) in shown.iter().zip(sql_rows).enumerate() {
        for (k, &col) in columns.iter().enumerate() {
            let what = format!("#{id} row {row} column {col}");
            match decimals[k] {
                Some(d) => assert_close(&shown[col], &expected[k], d, &what),
                None => assert_eq!(shown[col], expected[k], "{what}"),
            }
        }
    }
}

fn build_demo_report() -> (Project, String) {
    let p = demo_refreshed();
    add_telemetry(&p);
    let stdout = p.ok(&["report"]);
    assert!(stdout.contains("exports/report.html"), "{stdout}");
    let html = p.read("exports/report.html");
    assert!(html.starts_with("<!DOCTYPE html>"), "{}", &html[..100]);
    (p, html)
}

#[test]
fn every_number_on_the_page_is_the_warehouses() {
    let (p, html) = build_demo_report();
    let page = html.as_str();

    // Health: refreshes, tests, sources, quarantine reasons, lake, freshness.
    assert_table(
        page,
        "refreshes",
        &[0, 2, 7, 8],
        &warehouse_rows(
            &p,
            "SELECT id, status, tests_passed, tests_failed FROM refresh_log ORDER BY id DESC",
        ),
        &[Some(0), None, Some(0), Some(0)],
    );
    let tests: i64 =
        p.warehouse_value("SELECT count(*) FROM refresh_test_results WHERE refresh_id = 1");
    assert!(tests > 20);
    let summary = one(page, "#tests-summary").text;
    assert_eq!(
        summary,
        format!("✓ All {tests} data tests of refresh #1 passed.")
    );
    assert_table(
        page,
        "sources",
        &[0, 1, 2, 3, 4],
        &warehouse_rows(
            &p,
            "SELECT source, count(*), sum(rows_in), sum(rows_loaded), sum(rows_quarantined)
             FROM ingest_manifest WHERE status IN ('loaded', 'quarantined') GROUP BY source ORDER BY source",
        ),
        &[None, Some(0), Some(0), Some(0), Some(0)],
    );
    let quarantined: i64 = p.warehouse_value("SELECT count(*) FROM ingest_quarantine");
    assert!(quarantined > 0);
    assert_table(
        page,
        "quarantine-reasons",
        &[0, 1, 2],
        &warehouse_rows(
            &p,
            "SELECT source, reason, count(*) FROM ingest_quarantine GROUP BY ALL ORDER BY 3 DESC, 1, 2 LIMIT 10",
        ),
        &[None, None, Some(0)],
    );
    let lake = table(page, "lake");
    let events = lake
        .iter()
        .find(|r| r[0] == "events")
        .expect("events in the lake table");
    assert_eq!(number(&events[2]) as usize, p.lake_files().len(), "files");
    let lake_rows: i64 = p.file_value(&format!("SELECT count(*) FROM {}", common::EVENTS));
    assert_eq!(number(&events[3]) as i64, lake_rows, "rows");
    let newest: String = p.warehouse_value("SELECT max(date)::VARCHAR FROM bronze_events");
    assert_eq!(events[5], format!("date={newest}"));
    assert!(
        lake.iter()
            .any(|r| r[0] == "business_events" && r[5].starts_with("year=")),
        "{lake:?}"
    );
    let freshness = table(page, "freshness");
    let dau_newest: String =
        p.warehouse_value("SELECT max(date)::VARCHAR FROM gold_daily_active_users");
    assert!(
        freshness.contains(&vec![
            "gold_daily_active_users".into(),
            dau_newest,
            "date".into()
        ]),
        "{freshness:?}"
    );

    // Events.
    assert_table(
        page,
        "data-weekly-active-teams",
        &[0, 1],
        &warehouse_rows(
            &p,
            "SELECT week, weekly_active_teams FROM gold_weekly_active_teams ORDER BY week",
        ),
        &[None, Some(0)],
    );
    assert_table(
        page,
        "data-daily-active-users",
        &[0, 1],
        &warehouse_rows(
            &p,
            "SELECT date, dau FROM gold_daily_active_users ORDER BY date",
        ),
        &[None, Some(0)],
    );
    assert_table(
        page,
        "event-mix",
        &[0, 1, 2],
        &warehouse_rows(
            &p,
            "SELECT event_name, sum(events), 100 * sum(events) / sum(sum(events)) OVER () FROM gold_event_mix
             GROUP BY event_name ORDER BY 2 DESC, 1",
        ),
        &[None, Some(0), Some(1)],
    );

    // Telemetry: the latest day per state, device-weighted, and the regions.
    assert_table(
        page,
        "telemetry-states",
        &[0, 1, 2, 3, 4, 5],
        &warehouse_rows(
            &p,
            "SELECT state, any_value(region), max(devices), sum(avg_signal_dbm * devices) / sum(devices),
                    sum(p95_latency_ms * devices) / sum(devices), sum(avg_throughput_mbps * devices) / sum(devices)
             FROM gold_state_hourly WHERE date = (SELECT max(date) FROM gold_state_hourly)
             GROUP BY state ORDER BY 3 DESC, state",
        ),
        &[None, None, Some(0), Some(1), Some(1), Some(1)],
    );
    assert_table(
        page,
        "telemetry-regions",
        &[0, 1, 2, 3, 4, 5],
        &warehouse_rows(
            &p,
            "SELECT region, devices, measurements, avg_signal_dbm, p95_latency_ms, avg_throughput_mbps
             FROM gold_region_daily WHERE date = (SELECT max(date) FROM gold_region_daily) ORDER BY region",
        ),
        &[None, Some(0), Some(0), Some(1), Some(1), Some(1)],
    );
    let hourly = table(page, "data-region-hourly");
    assert_eq!(hourly.len(), 7 * 24, "the last 7 days, hour by hour");
    let last = warehouse_rows(
        &p,
        "SELECT region, sum(devices) FROM gold_state_hourly
         WHERE date = (SELECT max(date) FROM gold_state_hourly) AND hour = 23 GROUP BY region ORDER BY region",
    );
    for (i, row) in last.iter().enumerate() {
        assert_close(
            &hourly[hourly.len() - 1][i + 1],
            &row[1],
            0,
            &format!("{} at the last hour", row[0]),
        );
    }
    // The map: one outline per state and DC, coloured by value; Texas has no data.
    let map = one(page, "figure#chart-state-map");
    let states = find(&map.inner, "path[data-state]");
    assert_eq!(states.len(), 49);
    let texas = states
        .iter()
        .find(|s| s.attr("data-state") == Some("TX"))
        .unwrap();
    assert_eq!(texas.attr("fill"), Some("#dddddd"));
    assert!(texas.text.ends_with("no data"), "{}", texas.text);
    let california = states
        .iter()
        .find(|s| s.attr("data-state") == Some("CA"))
        .unwrap();
    let ca_signal = warehouse_rows(
        &p,
        "SELECT round(sum(avg_signal_dbm * devices) / sum(devices), 1) FROM gold_state_hourly
         WHERE state = 'CA' AND date = (SELECT max(date) FROM gold_state_hourly)",
    );
    assert!(
        california
            .text
            .contains(&format!("{} dBm", ca_signal[0][0])),
        "{}",
        california.text
    );

    // Business events.
    assert_table(
        page,
        "data-business-daily",
        &[0, 1],
        &warehouse_rows(
            &p,
            "SELECT day, sum(events) FROM gold_business_events_daily GROUP BY day ORDER BY day",
        ),
        &[None, Some(0)],
    );
    assert_table(
        page,
        "business-categories",
        &[0, 1],
        &warehouse_rows(
            &p,
            "SELECT event_category, sum(events) FROM gold_business_events_daily GROUP BY ALL ORDER BY 2 DESC, 1",
        ),
        &[None, Some(0)],
    );

    // Every gold table: its row count, its columns and types, its first rows.
    let gold = warehouse_rows(
        &p,
        "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'gold\\_%' ESCAPE '\\'
         AND table_name NOT LIKE '%\\_history' ESCAPE '\\' AND table_name NOT LIKE '%\\_versions' ESCAPE '\\' ORDER BY 1",
    );
    let shown = find(page, "div.gold");
    assert_eq!(shown.len(), gold.len(), "{gold:?}");
    assert_eq!(gold.len(), 6, "4 gold models and 2 telemetry tables");
    for (div, name) in shown.iter().zip(gold.iter().map(|r| &r[0])) {
        assert_eq!(div.attr("id"), Some(format!("gold-{name}").as_str()));
        let rows: i64 = p.warehouse_value(&format!("SELECT count(*) FROM {name}"));
        let shown_rows = one(&div.inner, "span.rows").text;
        assert_eq!(number(&shown_rows) as i64, rows, "{name}");
        let types = warehouse_rows(
            &p,
            &format!("SELECT column_name || data_type FROM duckdb_columns() WHERE table_name = '{name}' ORDER BY column_index"),
        );
        let headers: Vec<String> = find(&div.inner, "th")
            .into_iter()
            .map(|th| th.text)
            .collect();
        assert_eq!(
            headers,
            types.into_iter().map(|r| r[0].clone()).collect::<Vec<_>>()
        );
        let first = warehouse_rows(&p, &format!("SELECT * FROM {name} ORDER BY ALL LIMIT 1"));
        let cells: Vec<String> = find(&find(&div.inner, "tr")[1].inner, "td")
            .into_iter()
            .map(|td| td.text)
            .collect();
        for (shown, value) in cells.iter().zip(&first[0]) {
            if value.parse::<f64>().is_ok() && !value.contains('-') || value.starts_with('-') {
                assert_close(shown, value, 2, name);
            } else {
                assert_eq!(shown, value, "{name}");
            }
        }
    }

    // One SVG per chart, and the page asks for nothing outside itself.
    let figures = find(page, "figure.chart");
    let ids: Vec<&str> = figures.iter().filter_map(|f| f.attr("id")).collect();
    assert_eq!(
        ids,
        [
            "chart-weekly-active-teams",
            "chart-daily-active-users",
            "chart-state-map",
            "chart-region-hourly",
            "chart-business-daily"
        ]
    );
    for f in &figures {
        assert_eq!(find(&f.inner, "svg").len(), 1, "{:?}", f.attr("id"));
    }
    let sparklines = find(page, "svg.sparkline").len();
    assert_eq!(
        sparklines,
        table(page, "event-mix").len() + table(page, "business-categories").len()
    );
    assert_eq!(find(page, "svg").len(), figures.len() + sparklines);
    for outside in [
        "<script",
        "src=",
        "http://",
        "https://",
        "url(",
        "@import",
        "@font-face",
    ] {
        let allowed = outside == "http://"
            && html.matches("http://").count()
                == html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count();
        assert!(
            allowed || !html.contains(outside),
            "the page holds `{outside}`"
        );
    }
}

#[test]
fn refresh_writes_the_report_when_configured_even_when_tests_fail() {
    let p = Project::new(3_000);
    let config = p.read("warehouse.yaml");
    p.write(
        "warehouse.yaml",
        &format!("{config}refresh:\n  report: true\n"),
    );
    let out = p.ok(&["refresh"]);
    assert!(
        out.contains("report written to exports/report.html"),
        "{out}"
    );
    let page = p.read("exports/report.html");
    assert_eq!(find(&page, "figure.chart").len(), 2, "the two event charts");
    assert!(
        find(&page, "section#telemetry").is_empty()
            && find(&page, "section#business-events").is_empty(),
        "no data, no section"
    );

    // A failing data test: refresh exits 4, and the report names the test and its rows.
    let models = p.read("sql/models/events/models.yaml");
    p.write(
        "sql/models/events/models.yaml",
        &models.replacen(
            "      - not_null: [date, dau]",
            "      - not_null: [date, dau]\n      - expression: \"dau < 5\"",
            1,
        ),
    );
    exits(&p, &["refresh"], 4);
    let failing: i64 = p.warehouse_value(
        "SELECT failing_rows FROM refresh_test_results WHERE refresh_id = 2 AND NOT passed",
    );
    let days: i64 =
        p.warehouse_value("SELECT count(*) FROM gold_daily_active_users WHERE dau >= 5");
    assert_eq!(failing, days);
    let page = p.read("exports/report.html");
    assert_eq!(
        table(&page, "failing-tests"),
        vec![vec![
            "gold_daily_active_users".to_owned(),
            "expression(dau < 5)".into(),
            micro_wh::human::int(failing),
            format!("{failing} failing rows")
        ]]
    );
    let refreshes = table(&page, "refreshes");
    assert_eq!(
        (refreshes[0][0].as_str(), refreshes[0][2].as_str()),
        ("2", "failed")
    );
}

#[test]
fn report_without_a_warehouse_says_to_refresh() {
    let p = Project::new(1_000);
    let err = p.fails(&["report"]);
    assert!(err.contains("micro-wh refresh"), "{err}");
    assert!(!p.path("exports/report.html").exists());
}

/// Chromium from the system packages (CI installs it).
fn chromium() -> Option<PathBuf> {
    common::tool(
        &["chromium", "chromium-browser", "google-chrome"],
        "apt-get install chromium; the report is not opened in a browser without it",
    )
}

/// Runs headless Chromium on `page` with `args`; returns (stdout, stderr).
fn run_chromium(browser: &Path, page: &Path, args: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--timeout=30000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "chromium failed:\n{stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

#[test]
fn a_real_browser_renders_every_chart_without_a_console_message() {
    let Some(browser) = chromium() else { return };
    let p = demo_refreshed();
    add_telemetry(&p);
    p.ok(&["report"]);
    let report = p.path("exports/report.html");

    // The page as written: a screenshot kept for people, and every console message (a
    // blocked request, a CSP violation) is a failure.
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("report.png");
    let _ = std::fs::remove_file(&screenshot);
    let (_, log) = run_chromium(
        &browser,
        &report,
        &[
            "--window-size=1280,6000",
            &format!("--screenshot={}", screenshot.display()),
        ],
    );
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    assert!(
        std::fs::metadata(&screenshot).unwrap().len() > 10_000,
        "screenshot {}",
        screenshot.display()
    );
    eprintln!("screenshot of the report: {}", screenshot.display());

    // A copy with a test-only script (the page's policy forbids scripts) that writes each
    // svg's rendered size into the DOM, read back with --dump-dom.
    let html = std::fs::read_to_string(&report).unwrap();
    let policy_start = html
        .find("<meta http-equiv=\"Content-Security-Policy\"")
        .unwrap();
    let policy_end = policy_start + html[policy_start..].find('>').unwrap() + 1;
    let probe = format!(
        "{}{}",
        &html[..policy_start],
        &html[policy_end..].replace(
            "</body>",
            "<script>const sizes = document.createElement('pre'); sizes.id = 'svg-sizes'; \
             sizes.textContent = Array.from(document.querySelectorAll('svg')).map(s => { const r = s.getBoundingClientRect(); \
             return (s.closest('figure') ? s.closest('figure').id : s.getAttribute('class')) + ' ' + r.width + ' ' + r.height; }).join('\\n'); \
             document.body.appendChild(sizes);</script></body>",
        )
    );
    let probe_path = p.path("exports/probe.html");
    std::fs::write(&probe_path, probe).unwrap();
    let (dom, _) = run_chromium(
        &browser,
        &probe_path,
        &["--window-size=1280,1024", "--dump-dom"],
    );
    let sizes = one(&dom, "pre#svg-sizes").text;
    let sizes: Vec<(String, f64, f64)> = sizes
        .lines()
        .map(|l| {
            let mut parts = l.rsplitn(3, ' ');
            let h = parts.next().unwrap().parse().unwrap();
            let w = parts.next().unwrap().parse().unwrap();
            (parts.next().unwrap().to_owned(), w, h)
        })
        .collect();
    // Chromium's HTML parser finds the same SVGs as the test's.
    assert_eq!(sizes.len(), find(&html, "svg").len());
    let charts: BTreeMap<&str, (f64, f64)> = sizes
        .iter()
        .filter(|(id, _, _)| id.starts_with("chart-"))
        .map(|(id, w, h)| (id.as_str(), (*w, *h)))
        .collect();
    assert_eq!(charts.len(), 5, "{sizes:?}");
    for (id, w, h) in &sizes {
        assert!(*w > 50.0 && *h > 10.0, "{id} renders {w} x {h}");
    }
    // The charts fill the page's width, and the map keeps its proportions.
    let (w, h) = charts["chart-state-map"];
    assert!(
        w > 800.0 && (h / w - 616.0 / 960.0).abs() < 0.01,
        "map {w} x {h}"
    );
}
