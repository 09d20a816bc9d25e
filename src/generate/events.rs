//! The product-events dataset: who did what, when, with which properties.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Int64Array, StringBuilder, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use anyhow::Context;
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use super::plan::{time_sliced_units, Unit};
use super::{Dataset, Generator, Kind};
use crate::error::Result;

pub const KIND: Kind = Kind {
    name: "events",
    about: "product events (event_time, user_id, team_id, event_name, JSON properties) into the lake, by date",
    build: |section, options| {
        let config: EventsConfig = super::section("events", section)?;
        config.validate()?;
        Ok(Generator::Lake(Arc::new(Events::new(&config, options.rows, options.seed)?)))
    },
    settings: |section| {
        let config: EventsConfig = super::section("events", section)?;
        config.validate()?;
        Ok(serde_yaml::to_value(config)?)
    },
};

/// `generate.events` in warehouse.yaml.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    pub rows: u64,
    pub seed: u64,
    /// First possible `event_time`, "YYYY-MM-DD HH:MM:SS".
    pub start: String,
    /// Last possible `event_time` (inclusive).
    pub end: String,
    pub max_user_id: i64,
    pub max_team_id: i64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            rows: 1_000_000,
            seed: 42,
            start: "2023-01-01 00:00:00".into(),
            end: "2025-12-31 23:59:59".into(),
            max_user_id: 100_000,
            max_team_id: 1_000,
        }
    }
}

impl EventsConfig {
    /// Checks what serde cannot; the message names the key.
    pub fn validate(&self) -> Result<()> {
        anyhow::ensure!(self.rows >= 1, "generate.events.rows: must be at least 1");
        let start = parse_time(&self.start).context("generate.events.start")?;
        let end = parse_time(&self.end).context("generate.events.end")?;
        anyhow::ensure!(
            end >= start,
            "generate.events.end: {end} is before start {start}"
        );
        anyhow::ensure!(
            self.max_user_id >= 1,
            "generate.events.max_user_id: must be at least 1"
        );
        anyhow::ensure!(
            self.max_team_id >= 1,
            "generate.events.max_team_id: must be at least 1"
        );
        Ok(())
    }
}

pub fn parse_time(text: &str) -> Result<NaiveDateTime> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .with_context(|| format!("`{text}` is not a time of the form YYYY-MM-DD HH:MM:SS"))
}

pub const EVENT_NAMES: [&str; 15] = [
    "page_view",
    "button_click",
    "form_submit",
    "video_play",
    "video_pause",
    "add_to_cart",
    "remove_from_cart",
    "checkout",
    "purchase",
    "sign_up",
    "sign_in",
    "sign_out",
    "search",
    "filter_apply",
    "share",
];

pub const PROPERTY_KEYS: [&str; 14] = [
    "page_url",
    "button_id",
    "form_id",
    "video_id",
    "product_id",
    "category",
    "price",
    "quantity",
    "search_term",
    "filter_type",
    "platform",
    "browser",
    "device_type",
    "session_id",
];

const PAGES: [&str; 8] = [
    "home", "products", "pricing", "blog", "docs", "cart", "account", "search",
];
const BUTTONS: [&str; 6] = [
    "signup",
    "buy_now",
    "add_to_cart",
    "learn_more",
    "subscribe",
    "close",
];
const FORMS: [&str; 5] = ["signup", "login", "checkout", "contact", "newsletter"];
const CATEGORIES: [&str; 8] = [
    "electronics",
    "books",
    "clothing",
    "home",
    "sports",
    "toys",
    "beauty",
    "grocery",
];
const SEARCH_TERMS: [&str; 10] = [
    "laptop",
    "running shoes",
    "coffee",
    "headphones",
    "desk",
    "novel",
    "jacket",
    "lamp",
    "backpack",
    "phone case",
];
const FILTERS: [&str; 6] = ["price", "brand", "rating", "category", "color", "size"];
const PLATFORMS: [&str; 3] = ["web", "ios", "android"];
const BROWSERS: [&str; 4] = ["chrome", "safari", "firefox", "edge"];
const DEVICES: [&str; 3] = ["desktop", "mobile", "tablet"];

/// Generator parameters after the CLI overrides are applied.
#[derive(Debug, Clone)]
pub struct Events {
    pub rows: u64,
    pub seed: u64,
    start: i64,
    end: i64,
    max_user_id: i64,
    max_team_id: i64,
    schema: SchemaRef,
}

impl Events {
    pub fn new(config: &EventsConfig, rows: Option<u64>, seed: Option<u64>) -> Result<Events> {
        Ok(Events {
            rows: rows.unwrap_or(config.rows),
            seed: seed.unwrap_or(config.seed),
            start: parse_time(&config.start)?.and_utc().timestamp(),
            end: parse_time(&config.end)?.and_utc().timestamp(),
            max_user_id: config.max_user_id,
            max_team_id: config.max_team_id,
            schema: Arc::new(Schema::new(vec![
                Field::new(
                    "event_time",
                    DataType::Timestamp(TimeUnit::Microsecond, None),
                    false,
                ),
                Field::new("user_id", DataType::Int64, false),
                Field::new("team_id", DataType::Int64, false),
                Field::new("event_name", DataType::Utf8, false),
                Field::new("properties", DataType::Utf8, false),
                Field::new("date", DataType::Date32, false),
            ])),
        })
    }
}

impl Dataset for Events {
    fn name(&self) -> &'static str {
        "events"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn partition_by(&self) -> &'static [&'static str] {
        &["date"]
    }

    fn total_rows(&self) -> u64 {
        self.rows
    }

    fn plan(&self, max_unit_rows: usize) -> Vec<Unit> {
        time_sliced_units(self.start, self.end, self.rows, self.seed, max_unit_rows)
    }

    fn build(&self, unit: &Unit) -> Result<RecordBatch> {
        let mut rng = unit.rng(self.seed);
        let n = unit.rows;
        let mut seconds: Vec<i64> = (0..n)
            .map(|_| rng.random_range(unit.start..=unit.end))
            .collect();
        seconds.sort_unstable();
        let event_time =
            TimestampMicrosecondArray::from_iter_values(seconds.iter().map(|s| s * 1_000_000));
        let date =
            Date32Array::from_iter_values(seconds.iter().map(|s| s.div_euclid(86_400) as i32));
        let user_id =
            Int64Array::from_iter_values((0..n).map(|_| rng.random_range(1..=self.max_user_id)));
        let team_id =
            Int64Array::from_iter_values((0..n).map(|_| rng.random_range(1..=self.max_team_id)));

        let mut event_name = StringBuilder::with_capacity(n, n * 12);
        let mut properties = StringBuilder::with_capacity(n, n * 110);
        let mut json = String::with_capacity(256);
        for _ in 0..n {
            event_name.append_value(EVENT_NAMES[rng.random_range(0..EVENT_NAMES.len())]);
            json.clear();
            write_properties(&mut rng, &mut json);
            properties.append_value(&json);
        }

        let columns: Vec<ArrayRef> = vec![
            Arc::new(event_time),
            Arc::new(user_id),
            Arc::new(team_id),
            Arc::new(event_name.finish()),
            Arc::new(properties.finish()),
            Arc::new(date),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

fn pick<'a>(rng: &mut ChaCha8Rng, words: &[&'a str]) -> &'a str {
    words[rng.random_range(0..words.len())]
}

/// Writes a JSON object with 2 to 5 distinct keys, each with a value of a fitting type.
/// Every string value comes from a fixed vocabulary or a formatted id, so none needs escaping.
fn write_properties(rng: &mut ChaCha8Rng, out: &mut String) {
    let count = rng.random_range(2..=5);
    let mut keys: [usize; PROPERTY_KEYS.len()] = std::array::from_fn(|i| i);
    for i in 0..count {
        let j = rng.random_range(i..keys.len());
        keys.swap(i, j);
    }
    out.push('{');
    for (i, &key) in keys[..count].iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let name = PROPERTY_KEYS[key];
        let _ = match name {
            "page_url" => write!(
                out,
                r#""{name}":"/{}/{}""#,
                pick(rng, &PAGES),
                rng.random_range(1..=500)
            ),
            "button_id" => write!(out, r#""{name}":"btn_{}""#, pick(rng, &BUTTONS)),
            "form_id" => write!(out, r#""{name}":"form_{}""#, pick(rng, &FORMS)),
            "video_id" => write!(out, r#""{name}":"vid_{:05}""#, rng.random_range(1..=5_000)),
            "product_id" => write!(
                out,
                r#""{name}":"prod_{:05}""#,
                rng.random_range(1..=20_000)
            ),
            "category" => write!(out, r#""{name}":"{}""#, pick(rng, &CATEGORIES)),
            "price" => {
                let cents: u32 = rng.random_range(99..=99_999);
                write!(out, r#""{name}":{}.{:02}"#, cents / 100, cents % 100)
            }
            "quantity" => write!(out, r#""{name}":{}"#, rng.random_range(1..=10)),
            "search_term" => write!(out, r#""{name}":"{}""#, pick(rng, &SEARCH_TERMS)),
            "filter_type" => write!(out, r#""{name}":"{}""#, pick(rng, &FILTERS)),
            "platform" => write!(out, r#""{name}":"{}""#, pick(rng, &PLATFORMS)),
            "browser" => write!(out, r#""{name}":"{}""#, pick(rng, &BROWSERS)),
            "device_type" => write!(out, r#""{name}":"{}""#, pick(rng, &DEVICES)),
            "session_id" => write!(out, r#""{name}":"sess_{:012x}""#, rng.random::<u64>() >> 16),
            _ => unreachable!("every key in PROPERTY_KEYS has a writer"),
        };
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use rand::SeedableRng;

    #[test]
    fn properties_are_json_objects_with_two_to_five_distinct_known_keys() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut seen_counts = [false; 6];
        for _ in 0..2_000 {
            let mut s = String::new();
            write_properties(&mut rng, &mut s);
            let v: serde_json::Value =
                serde_json::from_str(&s).unwrap_or_else(|e| panic!("{s}: {e}"));
            let obj = v.as_object().unwrap();
            assert!((2..=5).contains(&obj.len()), "{s}");
            seen_counts[obj.len()] = true;
            for (k, val) in obj {
                assert!(PROPERTY_KEYS.contains(&k.as_str()), "{k}");
                match k.as_str() {
                    "price" => assert!(val.as_f64().unwrap() > 0.0),
                    "quantity" => assert!(val.as_u64().unwrap() >= 1),
                    _ => assert!(val.is_string()),
                }
            }
        }
        assert!(
            seen_counts[2..=5].iter().all(|&b| b),
            "every key count from 2 to 5 occurs"
        );
    }

    #[test]
    fn bad_settings_name_their_key() {
        for (yaml, key) in [
            ("rows: 0", "generate.events.rows"),
            ("start: yesterday", "generate.events.start"),
            ("rowz: 3", "rowz"),
        ] {
            let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
            let err = format!("{:#}", (KIND.settings)(Some(&value)).unwrap_err());
            assert!(err.contains(key), "{yaml} -> {err}");
        }
    }

    #[test]
    fn a_unit_builds_the_same_rows_twice_and_stays_in_its_day() {
        let events = Events::new(&EventsConfig::default(), Some(5_000), Some(9)).unwrap();
        let units = events.plan(2048);
        let unit = units[3];
        let a = events.build(&unit).unwrap();
        assert_eq!(a, events.build(&unit).unwrap());
        assert_eq!(a.num_rows(), unit.rows);
        let times = a
            .column(0)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        for i in 0..times.len() {
            let s = times.value(i) / 1_000_000;
            assert!(s >= unit.start && s <= unit.end);
        }
    }
}
