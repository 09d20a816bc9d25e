//! Categorized business events as an upstream system delivers them: NDJSON files in time
//! order, with exact duplicates and late-arriving updates (same `event_id`, newer timestamp,
//! in a later file), for `micro-wh ingest` to deduplicate.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::events::parse_time;
use super::{FileGenerator, FilesReport, Generator, Kind};
use crate::error::Result;
use crate::progress::Progress;

pub const KIND: Kind = Kind {
    name: "business_events",
    about: "categorized business events as NDJSON files (duplicates, late updates) for ingest",
    build: |section, options| {
        let mut config: BusinessEventsConfig = super::section("business_events", section)?;
        config.validate()?;
        if let Some(rows) = options.rows {
            config.rows = rows;
        }
        if let Some(seed) = options.seed {
            config.seed = Some(seed);
        }
        Ok(Generator::Files(Box::new(BusinessEvents { config })))
    },
    settings: |section| {
        let config: BusinessEventsConfig = super::section("business_events", section)?;
        config.validate()?;
        Ok(serde_yaml::to_value(config)?)
    },
};

/// Domains and the event types each one emits; `event_category` is `<domain>_<event_type>`.
pub const CATEGORIES: [(&str, &[&str]); 4] = [
    ("account", &["created", "status-change", "closed"]),
    ("transaction", &["payment", "refund", "chargeback"]),
    ("subscription", &["started", "renewed", "cancelled"]),
    ("support", &["ticket-opened", "ticket-closed"]),
];

const STATUSES: [&str; 4] = ["pending", "active", "suspended", "closed"];
const CURRENCIES: [&str; 3] = ["USD", "EUR", "GBP"];
const PLANS: [&str; 3] = ["basic", "pro", "enterprise"];

/// `generate.business_events` in warehouse.yaml.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusinessEventsConfig {
    /// Lines written per run, duplicates and updates included.
    pub rows: u64,
    /// Files per run, in time order.
    pub files: u32,
    /// Fixed seed; when absent each run draws a fresh one, so runs never repeat event ids.
    pub seed: Option<u64>,
    /// First possible timestamp, "YYYY-MM-DD HH:MM:SS" (UTC).
    pub start: String,
    /// Days the events spread over.
    pub days: u32,
    /// Share of lines that repeat an earlier line exactly.
    pub duplicate_share: f64,
    /// Share of lines that update an event of an earlier file (same id, newer timestamp).
    pub late_update_share: f64,
    /// Folder the files are written to, relative to the project root.
    pub out: PathBuf,
}

impl Default for BusinessEventsConfig {
    fn default() -> Self {
        BusinessEventsConfig {
            rows: 20_000,
            files: 4,
            seed: None,
            start: "2023-01-01 00:00:00".into(),
            days: 90,
            duplicate_share: 0.02,
            late_update_share: 0.05,
            out: "raw/business_events".into(),
        }
    }
}

impl BusinessEventsConfig {
    fn validate(&self) -> Result<()> {
        parse_time(&self.start).context("generate.business_events.start")?;
        anyhow::ensure!(
            self.files >= 1,
            "generate.business_events.files: must be at least 1"
        );
        anyhow::ensure!(
            self.days >= 1,
            "generate.business_events.days: must be at least 1"
        );
        for (key, share) in [
            ("duplicate_share", self.duplicate_share),
            ("late_update_share", self.late_update_share),
        ] {
            anyhow::ensure!(
                (0.0..0.5).contains(&share),
                "generate.business_events.{key}: {share} must be in [0, 0.5)"
            );
        }
        Ok(())
    }
}

struct BusinessEvents {
    config: BusinessEventsConfig,
}

/// An event as written, kept so later lines can repeat or update it.
#[derive(Clone)]
struct Event {
    id: String,
    seconds: i64,
    domain: &'static str,
    event_type: &'static str,
    data: serde_json::Value,
}

impl FileGenerator for BusinessEvents {
    fn default_out(&self) -> PathBuf {
        self.config.out.clone()
    }

    fn write(
        &self,
        _root: &Path,
        out_dir: &Path,
        _config: &crate::config::Config,
        progress: &Progress,
    ) -> Result<FilesReport> {
        let c = &self.config;
        let seed = c.seed.unwrap_or_else(|| {
            let now = chrono::Utc::now();
            now.timestamp_nanos_opt().unwrap_or_default() as u64 ^ u64::from(std::process::id())
        });
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        std::fs::create_dir_all(out_dir)
            .with_context(|| format!("cannot create {}", out_dir.display()))?;
        let start = parse_time(&c.start)?.and_utc().timestamp();
        let span = i64::from(c.days) * 86_400;
        let window = span / i64::from(c.files);
        let run = crate::lake::run_id();
        let bar = progress.rows_bar(c.rows, "generate business-events");
        let mut earlier: Vec<Event> = Vec::new();
        let mut files = Vec::new();
        let mut written = 0u64;
        for k in 0..u64::from(c.files) {
            let lines = c.rows / u64::from(c.files) + u64::from(k < c.rows % u64::from(c.files));
            let path = out_dir.join(format!("business-events-{run}-{k:03}.ndjson"));
            let file = std::fs::File::create(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut out = BufWriter::new(file);
            let (from, to) = (
                start + window * k as i64,
                start + window * (k as i64 + 1) - 1,
            );
            let mut this_file: Vec<Event> = Vec::new();
            for _ in 0..lines {
                let draw: f64 = rng.random();
                let event = if draw < c.duplicate_share && !this_file.is_empty() {
                    this_file[rng.random_range(0..this_file.len())].clone()
                } else if draw < c.duplicate_share + c.late_update_share && !earlier.is_empty() {
                    let mut e = earlier[rng.random_range(0..earlier.len())].clone();
                    // Updated later, possibly on another day: the key moves partitions.
                    e.seconds = e.seconds.max(from) + rng.random_range(1..=3 * 86_400);
                    e.data = data(&mut rng, e.domain, e.event_type);
                    e
                } else {
                    let (domain, types) = CATEGORIES[rng.random_range(0..CATEGORIES.len())];
                    let event_type = types[rng.random_range(0..types.len())];
                    let mut bytes = [0u8; 16];
                    rng.fill(&mut bytes);
                    Event {
                        id: uuid::Builder::from_random_bytes(bytes)
                            .into_uuid()
                            .to_string(),
                        seconds: rng.random_range(from..=to),
                        domain,
                        event_type,
                        data: data(&mut rng, domain, event_type),
                    }
                };
                let ts = chrono::DateTime::from_timestamp(event.seconds, 0)
                    .context("timestamp out of range")?
                    .format("%Y-%m-%dT%H:%M:%SZ");
                let line = json!({
                    "event_id": event.id,
                    "timestamp": ts.to_string(),
                    "domain": event.domain,
                    "event_type": event.event_type,
                    "data": event.data,
                });
                writeln!(out, "{line}")?;
                this_file.push(event);
                written += 1;
                bar.inc(1);
            }
            out.flush()?;
            earlier.extend(this_file);
            files.push(path);
        }
        bar.finish_and_clear();
        Ok(FilesReport {
            files,
            rows: written,
        })
    }
}

fn data(rng: &mut ChaCha8Rng, domain: &str, event_type: &str) -> serde_json::Value {
    let account = format!("acct_{:06}", rng.random_range(1..=50_000));
    match domain {
        "account" => json!({
            "account_id": account,
            "status": if event_type == "closed" { "closed" } else { STATUSES[rng.random_range(0..3)] },
        }),
        "transaction" => json!({
            "account_id": account,
            "amount": f64::from(rng.random_range(100..=500_000u32)) / 100.0,
            "currency": CURRENCIES[rng.random_range(0..CURRENCIES.len())],
        }),
        "subscription" => json!({
            "account_id": account,
            "plan": PLANS[rng.random_range(0..PLANS.len())],
            "seats": rng.random_range(1..=200),
        }),
        _ => json!({
            "account_id": account,
            "ticket_id": format!("T-{:07}", rng.random_range(1..=9_999_999)),
            "priority": rng.random_range(1..=4),
        }),
    }
}
