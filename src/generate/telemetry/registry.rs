//! The device registry: `devices.parquet` (one row per device: region, state, latitude,
//! longitude, site, cell, sector, band) and `state.json` (its seed, size and the feed's
//! clock) in one folder, written once by `init` and kept.
//!
//! Placement rule: devices 0..49 go one to each state (so every state reports, whatever the
//! registry size); every other device picks a state with probability proportional to its
//! land area and a point uniform over that state's area, i.e. uniform over the land.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use arrow::array::{Float64Array, Int32Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono::{NaiveDateTime, TimeDelta};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::geography::Geography;
use super::TelemetryConfig;
use crate::config::Config;
use crate::db;
use crate::error::Result;
use crate::generate::plan::Unit;
use crate::generate::{table_function, Dataset};
use crate::progress::Progress;

pub const DEVICES_FILE: &str = "devices.parquet";
pub const STATE_FILE: &str = "state.json";
/// Clock text in the state file and in CSV file names.
pub const HOUR_FORMAT: &str = "%Y-%m-%dT%H";

/// What `state.json` holds: the registry's identity and the feed's clock.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegistryState {
    pub devices: u64,
    pub seed: u64,
    /// Run id written into the Parquet file's metadata: ties the file to this state.
    pub run_id: String,
    pub created_at: String,
    /// The hour the next tick produces ("YYYY-MM-DDTHH", UTC).
    pub next_hour: String,
    pub hours_produced: u64,
    /// A tick that committed its hour but had not yet renamed its file into place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    pub partial: PathBuf,
    pub target: PathBuf,
}

impl RegistryState {
    pub fn next_hour(&self) -> Result<NaiveDateTime> {
        NaiveDateTime::parse_from_str(&format!("{}:00:00", self.next_hour), "%Y-%m-%dT%H:%M:%S")
            .with_context(|| {
                format!(
                    "{STATE_FILE}: next_hour `{}` is not YYYY-MM-DDTHH",
                    self.next_hour
                )
            })
    }

    pub fn advance(&mut self) -> Result<()> {
        self.next_hour = (self.next_hour()? + TimeDelta::hours(1))
            .format(HOUR_FORMAT)
            .to_string();
        self.hours_produced += 1;
        Ok(())
    }
}

/// An existing registry.
pub struct Registry {
    pub dir: PathBuf,
    pub state: RegistryState,
}

impl Registry {
    /// The registry in `dir`, or None when there is none; an interrupted `init` is finished
    /// (its Parquet file names a run the state does not know: the state is rewritten).
    pub fn open(dir: &Path) -> Result<Option<Registry>> {
        let devices = dir.join(DEVICES_FILE);
        if !devices.exists() {
            return Ok(None);
        }
        let meta = file_metadata(&devices)?;
        let state_path = dir.join(STATE_FILE);
        let state =
            match std::fs::read_to_string(&state_path) {
                Ok(text) => Some(serde_json::from_str::<RegistryState>(&text).with_context(
                    || format!("{} is not a registry state", state_path.display()),
                )?),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("cannot read {}", state_path.display())))
                }
            };
        let state = match state {
            Some(s) if s.run_id == meta.run_id => s,
            _ => {
                tracing::warn!(
                    "{}: finishing an interrupted `telemetry init`",
                    dir.display()
                );
                let s = meta.fresh_state();
                write_state(dir, &s)?;
                s
            }
        };
        Ok(Some(Registry {
            dir: dir.to_owned(),
            state,
        }))
    }

    pub fn devices_file(&self) -> PathBuf {
        self.dir.join(DEVICES_FILE)
    }

    pub fn save(&self) -> Result<()> {
        write_state(&self.dir, &self.state)
    }
}

/// What `init` writes into the Parquet file's key-value metadata.
struct FileMeta {
    devices: u64,
    seed: u64,
    run_id: String,
    created_at: String,
    start: String,
}

impl FileMeta {
    fn fresh_state(&self) -> RegistryState {
        RegistryState {
            devices: self.devices,
            seed: self.seed,
            run_id: self.run_id.clone(),
            created_at: self.created_at.clone(),
            next_hour: self.start.clone(),
            hours_produced: 0,
            pending: None,
        }
    }
}

fn file_metadata(path: &Path) -> Result<FileMeta> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let reader = parquet::file::reader::SerializedFileReader::new(file)
        .with_context(|| format!("{} is not a Parquet file", path.display()))?;
    use parquet::file::reader::FileReader;
    let kv = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default();
    let get = |key: &str| {
        kv.iter()
            .find(|e| e.key == key)
            .and_then(|e| e.value.clone())
            .with_context(|| {
                format!(
                    "{}: no `{key}` in its metadata; not a micro-wh registry",
                    path.display()
                )
            })
    };
    Ok(FileMeta {
        devices: get("devices")?.parse().context("devices")?,
        seed: get("seed")?.parse().context("seed")?,
        run_id: get("run_id")?,
        created_at: get("created_at")?,
        start: get("start")?,
    })
}

/// Writes `state` in place of the old one in one rename, durably.
pub fn write_state(dir: &Path, state: &RegistryState) -> Result<()> {
    let path = dir.join(STATE_FILE);
    let temp = dir.join(format!(".{STATE_FILE}.partial"));
    let mut file = std::fs::File::create(&temp)
        .with_context(|| format!("cannot create {}", temp.display()))?;
    file.write_all(serde_json::to_string_pretty(state)?.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temp, &path).with_context(|| format!("cannot replace {}", path.display()))?;
    sync_dir(dir)
}

pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}

/// Devices per work unit: one DuckDB vector.
fn unit_devices() -> usize {
    table_function::max_unit_rows()
}

/// The registry's rows, generated in parallel units of one vector each.
struct Devices {
    geography: Geography,
    devices: u64,
    seed: u64,
    schema: SchemaRef,
}

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("region", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("latitude", DataType::Float64, false),
        Field::new("longitude", DataType::Float64, false),
        Field::new("site", DataType::Int64, false),
        Field::new("cell", DataType::Int32, false),
        Field::new("sector", DataType::Int32, false),
        Field::new("band", DataType::Int32, false),
    ]))
}

impl Dataset for Devices {
    fn name(&self) -> &'static str {
        "telemetry_registry"
    }
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn partition_by(&self) -> &'static [&'static str] {
        &[]
    }
    fn total_rows(&self) -> u64 {
        self.devices
    }
    fn plan(&self, max_unit_rows: usize) -> Vec<Unit> {
        let size = max_unit_rows as u64;
        (0..self.devices.div_ceil(size))
            .map(|id| Unit {
                id,
                start: (id * size) as i64,
                end: ((id + 1) * size).min(self.devices) as i64,
                rows: (((id + 1) * size).min(self.devices) - id * size) as usize,
            })
            .collect()
    }
    fn build(&self, unit: &Unit) -> Result<RecordBatch> {
        let mut rng = unit.rng(self.seed);
        let n = unit.rows;
        let (mut region, mut state) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut lat, mut lon) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut site = Vec::with_capacity(n);
        let (mut cell, mut sector, mut band) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let states = &self.geography.states;
        for device in unit.start..unit.end {
            let s = match usize::try_from(device) {
                Ok(d) if d < states.len() => d,
                _ => self.geography.draw_state(&mut rng),
            };
            let (x, y) = states[s].sample(&mut rng);
            region.push(states[s].region.as_str());
            state.push(states[s].postal.as_str());
            lon.push(x);
            lat.push(y);
            site.push(device + 1);
            cell.push(rng.random_range(1..=10));
            sector.push(rng.random_range(1..=10));
            band.push(rng.random_range(1..=10));
        }
        Ok(RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(StringArray::from(region)),
                Arc::new(StringArray::from(state)),
                Arc::new(Float64Array::from(lat)),
                Arc::new(Float64Array::from(lon)),
                Arc::new(Int64Array::from(site)),
                Arc::new(Int32Array::from(cell)),
                Arc::new(Int32Array::from(sector)),
                Arc::new(Int32Array::from(band)),
            ],
        )?)
    }
}

/// Creates the registry in `dir`: refused when one exists, unless `force`, which replaces it
/// and restarts the clock. The Parquet file is written beside the old one and renamed over
/// it; the state follows (an interruption in between is finished by [`Registry::open`]).
pub fn init(
    dir: &Path,
    settings: &TelemetryConfig,
    devices: u64,
    seed: u64,
    force: bool,
    config: &Config,
    progress: &Progress,
) -> Result<Registry> {
    anyhow::ensure!(devices >= 1, "--devices must be at least 1");
    if !force {
        if let Some(existing) = Registry::open(dir)? {
            let s = &existing.state;
            bail!(
                "a registry already exists in {}: {} devices, seed {}, clock at {} ({} hours produced); \
                 pass --force to replace it (the clock restarts at {})",
                dir.display(),
                s.devices,
                s.seed,
                s.next_hour,
                s.hours_produced,
                settings.start
            );
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let start = super::parse_time(&settings.start)?
        .format(HOUR_FORMAT)
        .to_string();
    let meta = FileMeta {
        devices,
        seed,
        run_id: crate::lake::run_id(),
        created_at: chrono::Utc::now()
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        start,
    };
    let threads = config.threads();
    let dataset = Arc::new(Devices {
        geography: Geography::contiguous_us()?,
        devices,
        seed,
        schema: schema(),
    });
    let bar = progress.rows_bar(devices, "telemetry init");
    let conn = db::open_in_memory(config, threads)?;
    db::execute(&conn, "SET preserve_insertion_order = false")?;
    let units = dataset.plan(unit_devices());
    let count = units.len();
    table_function::register(
        &conn,
        Arc::new(table_function::Job {
            dataset,
            units,
            threads,
            progress: bar.clone(),
        }),
    )?;
    let partial = dir.join(format!(".{DEVICES_FILE}.partial"));
    let kv: Vec<String> = [
        ("devices", meta.devices.to_string()),
        ("seed", meta.seed.to_string()),
        ("run_id", meta.run_id.clone()),
        ("created_at", meta.created_at.clone()),
        ("start", meta.start.clone()),
    ]
    .iter()
    .map(|(k, v)| format!("{k}: {}", db::literal(v)))
    .collect();
    db::execute(
        &conn,
        &format!(
            // zstd's fastest level: a third of the write's CPU at the default, for a file
            // written once and read a row group at a time.
            "COPY (SELECT * FROM {}(0, {count})) TO {} (FORMAT parquet, COMPRESSION {}, COMPRESSION_LEVEL 1, ROW_GROUP_SIZE {}, KV_METADATA {{{}}})",
            table_function::NAME,
            db::path_literal(&partial),
            config.lake.compression.as_sql(),
            config.lake.row_group_size,
            kv.join(", ")
        ),
    )?;
    drop(conn);
    bar.finish_and_clear();
    std::fs::File::open(&partial).and_then(|f| f.sync_all())?;
    crate::fault::point("telemetry-init-before-publish");
    std::fs::rename(&partial, dir.join(DEVICES_FILE))
        .with_context(|| format!("cannot move the new registry into {}", dir.display()))?;
    sync_dir(dir)?;
    crate::fault::point("telemetry-init-before-state");
    let state = meta.fresh_state();
    write_state(dir, &state)?;
    Ok(Registry {
        dir: dir.to_owned(),
        state,
    })
}
