//! The report's HTML: one page, its styles inline, its charts inline SVG, no script and no
//! request to anywhere (a Content-Security-Policy says so to the browser).

use std::collections::BTreeMap;

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::chart::{self, TimeAxis};
use super::data::{
    Breakdown, Business, Events, GoldTable, Health, Report, Series, Telemetry, TREND_DAYS,
};
use super::map::{self, StateValue};
use crate::error::Result;
use crate::human;

const STYLE: &str = r#"
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1a1a1a; background: #fafafa; }
header, section { max-width: 1000px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 24px; }
h1 { margin: 0 0 4px; } h2 { border-bottom: 2px solid #0072B2; padding-bottom: 4px; margin-top: 40px; }
nav a { margin-right: 14px; color: #0072B2; }
.meta { color: #555; margin: 0 0 8px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; background: #fff; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: middle; }
th { background: #f0f0f0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
figure.chart { margin: 16px 0; background: #fff; border: 1px solid #ddd; padding: 8px; }
figure.chart svg { max-width: 100%; height: auto; display: block; }
figcaption { color: #444; font-size: 14px; margin-top: 6px; }
details { margin: 6px 0; } summary { cursor: pointer; color: #0072B2; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.card { background: #fff; border: 1px solid #ddd; padding: 10px 14px; min-width: 150px; }
.card b { display: block; font-size: 22px; }
.ok { color: #007a57; } .bad { color: #b34700; font-weight: bold; }
.scroll { overflow-x: auto; }
"#;

pub fn render(report: &Report, warehouse: &str) -> Result<String> {
    let mut nav = vec![("health", "Warehouse health")];
    if report.events.is_some() {
        nav.push(("events", "Events"));
    }
    if report.telemetry.is_some() {
        nav.push(("telemetry", "Telemetry"));
    }
    if report.business.is_some() {
        nav.push(("business-events", "Business events"));
    }
    if !report.gold.is_empty() {
        nav.push(("gold-tables", "Gold tables"));
    }
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta http-equiv="Content-Security-Policy"
                    content="default-src 'none'; style-src 'unsafe-inline'; img-src data:";
                title { "micro-wh report: " (warehouse) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { "Warehouse report" }
                    p.meta { "Generated " (report.generated_at) " from " code { (warehouse) } ". All times are UTC." }
                    nav { @for (id, name) in &nav { a href={"#" (id)} { (name) } } }
                }
                (health(&report.health, &report.gold))
                @if let Some(events) = &report.events { (events_section(events)?) }
                @if let Some(telemetry) = &report.telemetry { (telemetry_section(telemetry)?) }
                @if let Some(business) = &report.business { (business_section(business)?) }
                @if !report.gold.is_empty() { (gold_section(&report.gold)) }
            }
        }
    };
    Ok(page.into_string())
}

fn num(n: i64) -> Markup {
    html! { td.num { (human::int(n)) } }
}

fn dec(x: f64, decimals: usize) -> Markup {
    html! { td.num { (human::float(x, decimals)) } }
}

fn health(h: &Health, gold: &[GoldTable]) -> Markup {
    let quarantined: i64 = h.sources.iter().map(|s| s.rows_quarantined).sum();
    let lake_bytes: u64 = h.lake.iter().map(|l| l.bytes).sum();
    html! {
        section #health {
            h2 { "Warehouse health" }
            div.cards {
                @if let Some(last) = h.refreshes.first() {
                    div.card #card-last-refresh { "Last refresh #" (last.id)
                        b class=(status_class(&last.status)) { (last.status) }
                        (last.started_at) }
                }
                @if let Some((id, run, failing)) = &h.tests {
                    div.card #card-tests { "Data tests of refresh #" (id)
                        b class=(if failing.is_empty() { "ok" } else { "bad" }) {
                            (human::int(run - failing.len() as i64)) " / " (human::int(*run)) " passed" } }
                }
                @if !h.sources.is_empty() {
                    div.card #card-quarantined { "Rows quarantined" b { (human::int(quarantined)) } "in ingest_quarantine" }
                }
                @if !h.lake.is_empty() {
                    div.card #card-lake { "Lake size" b { (human::bytes(lake_bytes)) } (h.lake.len()) " datasets" }
                }
            }
            @if h.refreshes.is_empty() {
                p { "No refresh recorded yet: run " code { "micro-wh refresh" } "." }
            } @else {
                h3 { "Last refreshes" }
                div.scroll { table #refreshes {
                    tr { th { "#" } th { "started (UTC)" } th { "status" } th.num { "duration" }
                         th.num { "full" } th.num { "incremental" } th.num { "unchanged" }
                         th.num { "tests passed" } th.num { "tests failed" } th { "error" } }
                    @for r in &h.refreshes {
                        tr { td.num { (r.id) } td { (r.started_at) } td class=(status_class(&r.status)) { (r.status) }
                             td.num { @match r.seconds { Some(s) => { (human::float(s, 1)) " s" }, None => "–" } }
                             (num(r.modes.0 as i64)) (num(r.modes.1 as i64)) (num(r.modes.2 as i64))
                             (num(r.tests_passed)) (num(r.tests_failed))
                             td { (r.error.as_deref().and_then(|e| e.lines().next()).unwrap_or("")) } }
                    }
                } }
            }
            @if !h.last_models.is_empty() {
                details { summary { "Models of refresh #" (h.refreshes.first().map_or(0, |r| r.id)) ": mode and rows" }
                    table #last-models {
                        tr { th { "model" } th { "mode" } th.num { "rows" } }
                        @for (model, mode, rows) in &h.last_models {
                            tr { td { (model) } td { (mode) } @match rows { Some(n) => (num(*n)), None => td.num { "–" } } }
                        }
                    }
                }
            }
            @if let Some((id, run, failing)) = &h.tests {
                @if failing.is_empty() {
                    p.ok #tests-summary { "✓ All " (human::int(*run)) " data tests of refresh #" (id) " passed." }
                } @else {
                    p.bad #tests-summary { "✗ " (failing.len()) " of " (human::int(*run)) " data tests of refresh #" (id) " failed:" }
                    table #failing-tests {
                        tr { th { "model" } th { "test" } th.num { "failing rows" } th { "detail" } }
                        @for t in failing { tr { td { (t.model) } td { (t.test) } (num(t.failing_rows)) td { (t.detail) } } }
                    }
                }
            }
            @if !h.sources.is_empty() {
                h3 { "Ingested sources" }
                p.meta { "Files whose rows the lake holds now (from ingest_manifest)." }
                table #sources {
                    tr { th { "source" } th.num { "files" } th.num { "rows in" } th.num { "loaded" }
                         th.num { "quarantined" } th { "last ingest (UTC)" } }
                    @for s in &h.sources {
                        tr { td { (s.source) } (num(s.files)) (num(s.rows_in)) (num(s.rows_loaded))
                             td.num class=(if s.rows_quarantined > 0 { "bad" } else { "" }) { (human::int(s.rows_quarantined)) }
                             td { (s.last_ingest) } }
                    }
                }
            }
            @if !h.reasons.is_empty() {
                h3 { "Top quarantine reasons" }
                table #quarantine-reasons {
                    tr { th { "source" } th { "reason" } th.num { "rows" } }
                    @for (source, reason, rows) in &h.reasons { tr { td { (source) } td { (reason) } (num(*rows)) } }
                }
            }
            @if !h.lake.is_empty() {
                h3 { "Lake" }
                p.meta { "From the lake's folder listing; rows are those of bronze_<dataset> at the last successful refresh." }
                table #lake {
                    tr { th { "dataset" } th.num { "partitions" } th.num { "files" } th.num { "rows" } th.num { "size" } th { "newest partition" } }
                    @for l in &h.lake {
                        tr { td { (l.dataset) } (num(l.partitions as i64)) (num(l.files as i64))
                             @match l.rows { Some(n) => (num(n)), None => td.num { "–" } }
                             td.num { (human::bytes(l.bytes)) }
                             td { (l.newest_partition.as_deref().unwrap_or("–")) } }
                    }
                }
            }
            @if gold.iter().any(|g| g.newest.is_some()) {
                h3 { "Freshness" }
                table #freshness {
                    tr { th { "gold table" } th { "newest" } th { "in column" } }
                    @for g in gold { @if let Some((column, newest)) = &g.newest {
                        tr { td { (g.name) } td { (newest) } td { (column) } }
                    } }
                }
            }
        }
    }
}

fn status_class(status: &str) -> &'static str {
    match status {
        "succeeded" => "ok",
        "running" | "committed" => "",
        _ => "bad",
    }
}

/// A chart with its caption and, folded away, the numbers it draws.
fn figure(id: &str, svg: &str, caption: Markup, data: Markup) -> Markup {
    html! {
        figure.chart id=(id) {
            (PreEscaped(svg))
            figcaption { (caption) }
            details { summary { "Data" } div.scroll { (data) } }
        }
    }
}

/// The points of one or more series as a table: a row per time, a column per series.
fn series_table(id: &str, series: &[Series], axis: TimeAxis, decimals: usize) -> Markup {
    let mut rows: BTreeMap<chrono::NaiveDateTime, Vec<Option<f64>>> = BTreeMap::new();
    for (i, s) in series.iter().enumerate() {
        for (t, v) in &s.points {
            rows.entry(*t).or_insert_with(|| vec![None; series.len()])[i] = Some(*v);
        }
    }
    html! {
        table.data id=(id) {
            tr { th { (axis.description()) } @for s in series { th.num { (s.name) } } }
            @for (t, values) in &rows {
                tr { td { (axis.label(t)) }
                     @for v in values { @match v { Some(v) => (dec(*v, decimals)), None => td.num { "–" } } } }
            }
        }
    }
}

fn series_summary(s: &Series, what: &str) -> Markup {
    let last = s.points.last().map(|p| p.1).unwrap_or_default();
    let peak = s.points.iter().max_by(|a, b| a.1.total_cmp(&b.1));
    html! {
        "Latest: " b { (human::float(last, 0)) } " " (what)
        @if let Some((t, v)) = peak { "; peak " (human::float(*v, 0)) " on " (t.format("%Y-%m-%d")) }
        "."
    }
}

/// Totals per name with a sparkline of each over time.
fn breakdown_table(id: &str, items: &[Breakdown], bucket: &str) -> Markup {
    let all: i64 = items.iter().map(|b| b.total).sum();
    html! {
        table id=(id) {
            tr { th { "name" } th.num { "events" } th.num { "share" } th { "events per " (bucket) } }
            @for b in items {
                tr { td { (b.name) } (num(b.total))
                     td.num { (human::float(100.0 * b.total as f64 / all.max(1) as f64, 1)) " %" }
                     td { (chart::sparkline(&b.series, &format!("{} per {bucket}", b.name))) } }
            }
        }
    }
}

fn events_section(e: &Events) -> Result<Markup> {
    Ok(html! {
        section #events {
            h2 { "Events" }
            @if let Some(s) = &e.weekly_active_teams {
                (figure("chart-weekly-active-teams",
                    &chart::line_chart("Weekly active teams", "teams", std::slice::from_ref(s), TimeAxis::Days)?,
                    html! { "Teams with at least one event in the week starting on the date (Monday); the first and last weeks may be partial. " (series_summary(s, "teams")) },
                    series_table("data-weekly-active-teams", std::slice::from_ref(s), TimeAxis::Days, 0)))
            }
            @if let Some(s) = &e.daily_active_users {
                (figure("chart-daily-active-users",
                    &chart::line_chart("Daily active users", "users", std::slice::from_ref(s), TimeAxis::Days)?,
                    html! { "Users with at least one event on the day. " (series_summary(s, "users")) },
                    series_table("data-daily-active-users", std::slice::from_ref(s), TimeAxis::Days, 0)))
            }
            @if !e.mix.is_empty() {
                h3 { "Event mix" }
                (breakdown_table("event-mix", &e.mix, "week"))
            }
        }
    })
}

fn telemetry_section(t: &Telemetry) -> Result<Markup> {
    let values: BTreeMap<String, StateValue> = t
        .states
        .iter()
        .map(|s| {
            let tooltip = format!(
                "{}: {} dBm mean signal, {} devices at the peak hour",
                s.state,
                human::float(s.signal_dbm, 1),
                human::int(s.peak_devices)
            );
            (
                s.state.clone(),
                StateValue {
                    value: s.signal_dbm,
                    tooltip,
                },
            )
        })
        .collect();
    let title = format!("Mean signal strength per state on {} (UTC)", t.latest_date);
    let map = map::choropleth(&title, "mean signal (dBm)", &values, |v| human::float(v, 1))?;
    Ok(html! {
        section #telemetry {
            h2 { "Telemetry" }
            @if !t.states.is_empty() {
                figure.chart #chart-state-map {
                    (map)
                    figcaption { (title) ", device-weighted over the day's hours; hover a state for its figures. Grey: no measurements." }
                }
                h3 { "States on " (t.latest_date) }
                details { summary { "All " (t.states.len()) " states, most devices first" }
                    table #telemetry-states {
                        tr { th { "state" } th { "region" } th.num { "devices (peak hour)" } th.num { "mean signal (dBm)" }
                             th.num { "p95 latency (ms)" } th.num { "throughput (Mbit/s)" } }
                        @for s in &t.states {
                            tr { td { (s.state) } td { (s.region) } (num(s.peak_devices)) (dec(s.signal_dbm, 1))
                                 (dec(s.p95_latency_ms, 1)) (dec(s.throughput_mbps, 1)) }
                        }
                    }
                }
            }
            @if !t.trend.is_empty() {
                (figure("chart-region-hourly",
                    &chart::line_chart(&format!("Devices per region and hour, last {TREND_DAYS} days"), "devices", &t.trend, TimeAxis::Hours)?,
                    html! { "Sum over the region's states of the devices measured in each hour." },
                    series_table("data-region-hourly", &t.trend, TimeAxis::Hours, 0)))
            }
            @if !t.regions.is_empty() {
                h3 { "Regions on their latest day" }
                table #telemetry-regions {
                    tr { th { "region" } th.num { "devices" } th.num { "measurements" } th.num { "mean signal (dBm)" }
                         th.num { "p95 latency (ms)" } th.num { "throughput (Mbit/s)" } }
                    @for r in &t.regions {
                        tr { td { (r.region) } (num(r.devices)) (num(r.measurements)) (dec(r.signal_dbm, 1))
                             (dec(r.p95_latency_ms, 1)) (dec(r.throughput_mbps, 1)) }
                    }
                }
            }
        }
    })
}

fn business_section(b: &Business) -> Result<Markup> {
    let daily = std::slice::from_ref(&b.daily);
    Ok(html! {
        section #business-events {
            h2 { "Business events" }
            (figure("chart-business-daily",
                &chart::line_chart("Business events per day", "events", daily, TimeAxis::Days)?,
                html! { "All categories together. " (series_summary(&b.daily, "events")) },
                series_table("data-business-daily", daily, TimeAxis::Days, 0)))
            h3 { "Daily events per category" }
            (breakdown_table("business-categories", &b.categories, "day"))
        }
    })
}

/// A value as DuckDB rendered it, with thousands separators when its column is numeric.
fn cell(value: Option<&str>, data_type: &str) -> Markup {
    let integer = [
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
    ];
    let Some(text) = value else {
        return html! { td { i { "NULL" } } };
    };
    if integer.contains(&data_type) {
        if let Ok(n) = text.parse::<i64>() {
            return num(n);
        }
    }
    if data_type == "DOUBLE" || data_type == "FLOAT" || data_type.starts_with("DECIMAL") {
        if let Ok(x) = text.parse::<f64>() {
            return dec(x, 2);
        }
    }
    html! { td { (text) } }
}

fn gold_section(gold: &[GoldTable]) -> Markup {
    html! {
        section #gold-tables {
            h2 { "Gold tables" }
            @for g in gold {
                div.gold id={"gold-" (g.name)} {
                    h3 { code { (g.name) } }
                    p.meta { span.rows { (human::int(g.rows)) } " rows, " (g.columns.len()) " columns" }
                    div.scroll { table.preview {
                        tr { @for (name, data_type) in &g.columns { th { (name) br; small { (data_type) } } } }
                        @for row in &g.preview {
                            tr { @for (value, (_, data_type)) in row.iter().zip(&g.columns) { (cell(value.as_deref(), data_type)) } }
                        }
                    } }
                }
            }
        }
    }
}
