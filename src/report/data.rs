//! What the report shows, read from the warehouse's gold and bookkeeping tables (never the
//! lake's rows): one struct per section, each None when its tables are missing or empty.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{NaiveDate, NaiveDateTime};
use duckdb::Connection;

use crate::db::{self, ident, literal};
use crate::error::Result;
use crate::ingest::manifest::{MANIFEST_TABLE, QUARANTINE_TABLE};
use crate::lake;
use crate::warehouse::{REFRESH_LOG, TEST_RESULTS};

/// Refreshes shown in the health section.
const REFRESHES_SHOWN: usize = 10;
/// Quarantine reasons shown.
const REASONS_SHOWN: usize = 10;
/// Rows shown of each gold table.
pub const PREVIEW_ROWS: usize = 5;
/// Days of the hourly telemetry trend.
pub const TREND_DAYS: i64 = 7;

pub struct Report {
    pub generated_at: String,
    pub health: Health,
    pub events: Option<Events>,
    pub telemetry: Option<Telemetry>,
    pub business: Option<Business>,
    pub gold: Vec<GoldTable>,
}

#[derive(Default)]
pub struct Health {
    pub refreshes: Vec<RefreshRow>,
    /// The models of the latest refresh: name, mode, rows.
    pub last_models: Vec<(String, String, Option<i64>)>,
    /// The latest refresh that ran tests: its id, tests run, and the failing ones.
    pub tests: Option<(i64, i64, Vec<FailingTest>)>,
    pub sources: Vec<SourceRow>,
    pub reasons: Vec<(String, String, i64)>,
    pub lake: Vec<LakeRow>,
}

pub struct RefreshRow {
    pub id: i64,
    pub started_at: String,
    pub status: String,
    pub seconds: Option<f64>,
    /// Models rebuilt whole, incrementally, and left unchanged.
    pub modes: (usize, usize, usize),
    pub tests_passed: i64,
    pub tests_failed: i64,
    pub error: Option<String>,
}

pub struct FailingTest {
    pub model: String,
    pub test: String,
    pub failing_rows: i64,
    pub detail: String,
}

pub struct SourceRow {
    pub source: String,
    pub files: i64,
    pub rows_in: i64,
    pub rows_loaded: i64,
    pub rows_quarantined: i64,
    pub last_ingest: String,
}

pub struct LakeRow {
    pub dataset: String,
    pub partitions: u64,
    pub files: u64,
    pub bytes: u64,
    /// Rows of `bronze_<dataset>` at the latest successful refresh, when it is a model.
    pub rows: Option<i64>,
    pub newest_partition: Option<String>,
}

/// A time series: one name, points in time order.
pub struct Series {
    pub name: String,
    pub points: Vec<(NaiveDateTime, f64)>,
}

/// A total per name with its series over time buckets (for tables with sparklines).
pub struct Breakdown {
    pub name: String,
    pub total: i64,
    pub series: Vec<i64>,
}

pub struct Events {
    pub weekly_active_teams: Option<Series>,
    pub daily_active_users: Option<Series>,
    pub mix: Vec<Breakdown>,
}

pub struct Telemetry {
    pub latest_date: String,
    /// Per state for the latest day, most devices first.
    pub states: Vec<StateDay>,
    /// Devices per region and hour over the last days.
    pub trend: Vec<Series>,
    pub regions: Vec<RegionDay>,
}

pub struct StateDay {
    pub state: String,
    pub region: String,
    pub peak_devices: i64,
    pub signal_dbm: f64,
    pub p95_latency_ms: f64,
    pub throughput_mbps: f64,
}

pub struct RegionDay {
    pub region: String,
    pub devices: i64,
    pub measurements: i64,
    pub signal_dbm: f64,
    pub p95_latency_ms: f64,
    pub throughput_mbps: f64,
}

pub struct Business {
    pub daily: Series,
    pub categories: Vec<Breakdown>,
}

pub struct GoldTable {
    pub name: String,
    pub rows: i64,
    /// Column name and DuckDB type.
    pub columns: Vec<(String, String)>,
    /// The first rows (ordered by every column in turn), as DuckDB renders each value.
    pub preview: Vec<Vec<Option<String>>>,
    /// The first DATE column and its newest value.
    pub newest: Option<(String, String)>,
}

/// Reads everything the report shows. `lake_dir` adds the lake's folder sizes (a listing of
/// file names and sizes, no file is opened).
pub fn read(conn: &Connection, lake_dir: Option<&Path>) -> Result<Report> {
    let tables = tables(conn)?;
    let has = |name: &str| tables.contains(name);
    Ok(Report {
        generated_at: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        health: health(conn, &has, lake_dir)?,
        events: events(conn, &has)?,
        telemetry: telemetry(conn, &has)?,
        business: business(conn, &has)?,
        gold: gold_tables(conn, &tables)?,
    })
}

/// Rows of a query, each turned into a value by `f`.
fn rows<T>(
    conn: &Connection,
    sql: &str,
    f: impl FnMut(&duckdb::Row<'_>) -> duckdb::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = db::prepare(conn, sql)?;
    let mapped = stmt
        .query_map([], f)
        .map_err(|cause| db_error(sql, cause))?;
    Ok(mapped
        .collect::<duckdb::Result<Vec<T>>>()
        .map_err(|cause| db_error(sql, cause))?)
}

fn db_error(sql: &str, cause: duckdb::Error) -> crate::error::Error {
    crate::error::Error::Sql {
        sql: sql.to_owned(),
        cause,
    }
}

/// Tables and views of the main schema.
fn tables(conn: &Connection) -> Result<BTreeSet<String>> {
    Ok(rows(
        conn,
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'
         UNION SELECT view_name FROM duckdb_views() WHERE schema_name = 'main' AND NOT internal",
        |r| r.get(0),
    )?
    .into_iter()
    .collect())
}

fn date_time(text: &str) -> Result<NaiveDateTime> {
    let parsed = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").or_else(|_| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").map(|d| d.and_hms_opt(0, 0, 0).unwrap())
    });
    parsed.map_err(|e| anyhow::anyhow!("`{text}` is not a date: {e}"))
}

/// A series from a query returning (time as text, value), in time order.
fn series(conn: &Connection, name: &str, sql: &str) -> Result<Option<Series>> {
    let points = rows(conn, sql, |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?))
    })?
    .into_iter()
    .map(|(t, v)| Ok((date_time(&t)?, v)))
    .collect::<Result<Vec<_>>>()?;
    Ok((!points.is_empty()).then(|| Series {
        name: name.to_owned(),
        points,
    }))
}

/// Series per name from a query returning (name, time as text, value) ordered by name, time.
fn series_by_name(conn: &Connection, sql: &str) -> Result<Vec<Series>> {
    let mut out: Vec<Series> = Vec::new();
    for (name, t, v) in rows(conn, sql, |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, f64>(2)?,
        ))
    })? {
        let point = (date_time(&t)?, v);
        match out.last_mut() {
            Some(s) if s.name == name => s.points.push(point),
            _ => out.push(Series {
                name,
                points: vec![point],
            }),
        }
    }
    Ok(out)
}

/// Totals and bucket series from a query returning (name, bucket, value): every name gets
/// every bucket, zero where it had no row. Largest total first.
fn breakdown(conn: &Connection, sql: &str) -> Result<Vec<Breakdown>> {
    let cells = rows(conn, sql, |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    let buckets: BTreeSet<&str> = cells.iter().map(|(_, b, _)| b.as_str()).collect();
    let index: BTreeMap<&str, usize> = buckets.iter().enumerate().map(|(i, b)| (*b, i)).collect();
    let mut by_name: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (name, bucket, value) in &cells {
        by_name
            .entry(name)
            .or_insert_with(|| vec![0; buckets.len()])[index[bucket.as_str()]] += value;
    }
    let mut out: Vec<Breakdown> = by_name
        .into_iter()
        .map(|(name, series)| Breakdown {
            name: name.to_owned(),
            total: series.iter().sum(),
            series,
        })
        .collect();
    out.sort_by(|a, b| b.total.cmp(&a.total).then(a.name.cmp(&b.name)));
    Ok(out)
}

fn health(
    conn: &Connection,
    has: &dyn Fn(&str) -> bool,
    lake_dir: Option<&Path>,
) -> Result<Health> {
    let mut health = Health::default();
    let mut bronze_rows: BTreeMap<String, i64> = BTreeMap::new();
    if has(REFRESH_LOG) {
        health.refreshes = rows(
            conn,
            &format!(
                "SELECT id, strftime(started_at, '%Y-%m-%d %H:%M:%S'), status,
                        epoch(finished_at - started_at)::DOUBLE, coalesce(modes, '{{}}'),
                        coalesce(tests_passed, 0)::BIGINT, coalesce(tests_failed, 0)::BIGINT, error
                 FROM {REFRESH_LOG} ORDER BY id DESC LIMIT {REFRESHES_SHOWN}"
            ),
            |r| {
                let modes: String = r.get(4)?;
                Ok(RefreshRow {
                    id: r.get(0)?,
                    started_at: r.get(1)?,
                    status: r.get(2)?,
                    seconds: r.get(3)?,
                    modes: count_modes(&modes),
                    tests_passed: r.get(5)?,
                    tests_failed: r.get(6)?,
                    error: r.get(7)?,
                })
            },
        )?;
        let latest: Vec<(Option<String>, Option<String>)> = rows(
            conn,
            &format!("SELECT modes, rows_per_model FROM {REFRESH_LOG} ORDER BY id DESC LIMIT 1"),
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if let Some((modes, counts)) = latest.into_iter().next() {
            let modes: BTreeMap<String, String> = parse_json_map(modes.as_deref());
            let counts: BTreeMap<String, i64> = parse_json_map(counts.as_deref());
            health.last_models = modes
                .into_iter()
                .map(|(model, mode)| {
                    let rows = counts.get(&model).copied();
                    (model, mode, rows)
                })
                .collect();
        }
        let succeeded: Vec<Option<String>> = rows(
            conn,
            &format!(
                "SELECT rows_per_model FROM {REFRESH_LOG} WHERE status = 'succeeded' ORDER BY id DESC LIMIT 1"
            ),
            |r| r.get(0),
        )?;
        bronze_rows = parse_json_map(succeeded.into_iter().next().flatten().as_deref());
    }
    if has(TEST_RESULTS) {
        let latest: Option<i64> =
            db::query_one(conn, &format!("SELECT max(refresh_id) FROM {TEST_RESULTS}"))?;
        if let Some(id) = latest {
            let run: i64 = db::query_one(
                conn,
                &format!("SELECT count(*) FROM {TEST_RESULTS} WHERE refresh_id = {id}"),
            )?;
            let failing = rows(
                conn,
                &format!(
                    "SELECT model, test, failing_rows, coalesce(detail, '') FROM {TEST_RESULTS}
                     WHERE refresh_id = {id} AND NOT passed ORDER BY failing_rows DESC, model, test"
                ),
                |r| {
                    Ok(FailingTest {
                        model: r.get(0)?,
                        test: r.get(1)?,
                        failing_rows: r.get(2)?,
                        detail: r.get(3)?,
                    })
                },
            )?;
            health.tests = Some((id, run, failing));
        }
    }
    if has(MANIFEST_TABLE) {
        // The files whose rows the lake holds now (a later version replaces an earlier one).
        health.sources = rows(
            conn,
            &format!(
                "SELECT source, count(*), sum(rows_in)::BIGINT, sum(rows_loaded)::BIGINT,
                        sum(rows_quarantined)::BIGINT, strftime(max(finished_at), '%Y-%m-%d %H:%M:%S')
                 FROM {MANIFEST_TABLE} WHERE status IN ('loaded', 'quarantined')
                 GROUP BY source ORDER BY source"
            ),
            |r| {
                Ok(SourceRow {
                    source: r.get(0)?,
                    files: r.get(1)?,
                    rows_in: r.get(2)?,
                    rows_loaded: r.get(3)?,
                    rows_quarantined: r.get(4)?,
                    last_ingest: r.get(5)?,
                })
            },
        )?;
    }
    if has(QUARANTINE_TABLE) {
        health.reasons = rows(
            conn,
            &format!(
                "SELECT source, reason, count(*) FROM {QUARANTINE_TABLE}
                 GROUP BY source, reason ORDER BY count(*) DESC, source, reason LIMIT {REASONS_SHOWN}"
            ),
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
    }
    if let Some(lake_dir) = lake_dir {
        for dataset in lake::datasets(lake_dir)? {
            let files = lake::scan_files(lake_dir, &dataset)?;
            if files.files == 0 {
                continue;
            }
            health.lake.push(LakeRow {
                // A source's rows are its bronze view's; a lake model's folder, its own.
                rows: bronze_rows
                    .get(&format!("bronze_{dataset}"))
                    .or_else(|| bronze_rows.get(&dataset))
                    .copied(),
                newest_partition: lake::newest_partition(lake_dir, &dataset)?,
                dataset,
                partitions: files.partitions,
                files: files.files,
                bytes: files.bytes,
            });
        }
    }
    Ok(health)
}

fn parse_json_map<T: serde::de::DeserializeOwned>(text: Option<&str>) -> BTreeMap<String, T> {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}

/// Models rebuilt whole, incrementally and left unchanged, from `refresh_log.modes`.
fn count_modes(modes: &str) -> (usize, usize, usize) {
    let modes: BTreeMap<String, String> = parse_json_map(Some(modes));
    let count = |prefix: &str| modes.values().filter(|m| m.starts_with(prefix)).count();
    (count("full"), count("incremental"), count("unchanged"))
}

fn events(conn: &Connection, has: &dyn Fn(&str) -> bool) -> Result<Option<Events>> {
    let weekly_active_teams = if has("gold_weekly_active_teams") {
        series(
            conn,
            "weekly active teams",
            "SELECT CAST(week AS VARCHAR), weekly_active_teams FROM gold_weekly_active_teams ORDER BY week",
        )?
    } else {
        None
    };
    let daily_active_users = if has("gold_daily_active_users") {
        series(
            conn,
            "daily active users",
            "SELECT CAST(date AS VARCHAR), dau FROM gold_daily_active_users ORDER BY date",
        )?
    } else {
        None
    };
    let mix = if has("gold_event_mix") {
        breakdown(
            conn,
            "SELECT event_name, CAST(date_trunc('week', date) AS DATE)::VARCHAR, sum(events)::BIGINT
             FROM gold_event_mix GROUP BY ALL",
        )?
    } else {
        Vec::new()
    };
    Ok(
        (weekly_active_teams.is_some() || daily_active_users.is_some() || !mix.is_empty())
            .then_some(Events {
                weekly_active_teams,
                daily_active_users,
                mix,
            }),
    )
}

fn telemetry(conn: &Connection, has: &dyn Fn(&str) -> bool) -> Result<Option<Telemetry>> {
    if !has("gold_state_hourly") {
        return Ok(None);
    }
    let latest: Option<String> = db::query_one(
        conn,
        "SELECT CAST(max(date) AS VARCHAR) FROM gold_state_hourly",
    )?;
    let Some(latest_date) = latest else {
        return Ok(None);
    };
    let day = format!("DATE {}", literal(&latest_date));
    // Device-weighted means: a state's hour with more devices counts for more.
    let states = rows(
        conn,
        &format!(
            "SELECT state, any_value(region), max(devices)::BIGINT,
                    sum(avg_signal_dbm * devices) / nullif(sum(devices), 0),
                    sum(p95_latency_ms * devices) / nullif(sum(devices), 0),
                    sum(avg_throughput_mbps * devices) / nullif(sum(devices), 0)
             FROM gold_state_hourly WHERE date = {day}
             GROUP BY state ORDER BY 3 DESC, state"
        ),
        |r| {
            Ok(StateDay {
                state: r.get(0)?,
                region: r.get(1)?,
                peak_devices: r.get(2)?,
                signal_dbm: r.get::<_, Option<f64>>(3)?.unwrap_or(f64::NAN),
                p95_latency_ms: r.get::<_, Option<f64>>(4)?.unwrap_or(f64::NAN),
                throughput_mbps: r.get::<_, Option<f64>>(5)?.unwrap_or(f64::NAN),
            })
        },
    )?;
    let trend = series_by_name(
        conn,
        &format!(
            "SELECT region, strftime(date + hour * INTERVAL 1 HOUR, '%Y-%m-%d %H:%M:%S'), sum(devices)::DOUBLE
             FROM gold_state_hourly WHERE date > {day} - INTERVAL {TREND_DAYS} DAY
             GROUP BY region, date, hour ORDER BY region, date, hour"
        ),
    )?;
    let regions = if has("gold_region_daily") {
        rows(
            conn,
            "SELECT region, devices, measurements, avg_signal_dbm, p95_latency_ms, avg_throughput_mbps
             FROM gold_region_daily WHERE date = (SELECT max(date) FROM gold_region_daily)
             ORDER BY region",
            |r| {
                Ok(RegionDay {
                    region: r.get(0)?,
                    devices: r.get(1)?,
                    measurements: r.get(2)?,
                    signal_dbm: r.get(3)?,
                    p95_latency_ms: r.get(4)?,
                    throughput_mbps: r.get(5)?,
                })
            },
        )?
    } else {
        Vec::new()
    };
    Ok(Some(Telemetry {
        latest_date,
        states,
        trend,
        regions,
    }))
}

fn business(conn: &Connection, has: &dyn Fn(&str) -> bool) -> Result<Option<Business>> {
    if !has("gold_business_events_daily") {
        return Ok(None);
    }
    let daily = series(
        conn,
        "events",
        "SELECT CAST(day AS VARCHAR), sum(events)::DOUBLE FROM gold_business_events_daily GROUP BY day ORDER BY day",
    )?;
    let categories = breakdown(
        conn,
        "SELECT event_category, CAST(day AS VARCHAR), events::BIGINT FROM gold_business_events_daily",
    )?;
    Ok(daily.map(|daily| Business { daily, categories }))
}

/// Gold tables: `gold_*`, without their history.
fn gold_tables(conn: &Connection, tables: &BTreeSet<String>) -> Result<Vec<GoldTable>> {
    let mut out = Vec::new();
    for name in tables
        .iter()
        .filter(|t| t.starts_with("gold_") && !crate::warehouse::history::is_history(t))
    {
        let table = ident(name);
        let columns: Vec<(String, String)> = rows(
            conn,
            &format!(
                "SELECT column_name, data_type FROM duckdb_columns()
                 WHERE schema_name = 'main' AND table_name = {} ORDER BY column_index",
                literal(name)
            ),
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let rows_count: i64 = db::query_one(conn, &format!("SELECT count(*) FROM {table}"))?;
        let rendered = columns
            .iter()
            .map(|(c, _)| format!("CAST({} AS VARCHAR)", ident(c)))
            .collect::<Vec<_>>()
            .join(", ");
        let order = columns
            .iter()
            .map(|(c, _)| ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let width = columns.len();
        let preview = rows(
            conn,
            &format!("SELECT {rendered} FROM {table} ORDER BY {order} LIMIT {PREVIEW_ROWS}"),
            |r| (0..width).map(|i| r.get(i)).collect(),
        )?;
        let newest = match columns.iter().find(|(_, t)| t == "DATE") {
            Some((column, _)) => db::query_one::<Option<String>>(
                conn,
                &format!(
                    "SELECT CAST(max({}) AS VARCHAR) FROM {table}",
                    ident(column)
                ),
            )?
            .map(|v| (column.clone(), v)),
            None => None,
        };
        out.push(GoldTable {
            name: name.clone(),
            rows: rows_count,
            columns,
            preview,
            newest,
        });
    }
    Ok(out)
}
