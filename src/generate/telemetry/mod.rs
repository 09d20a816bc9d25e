//! Wifi-device telemetry as a network operator's feed delivers it: a kept registry of devices
//! placed inside real US state borders, and one CSV file per hour holding every device's
//! measurements, produced by a kept clock that never skips or repeats an hour.
//!
//! `micro-wh telemetry init|tick|status` drive it; `micro-wh generate telemetry` (and a fresh
//! project's first refresh) creates the registry if absent and ticks `hours` hours.

pub mod geography;
pub mod metrics;
pub mod registry;
pub mod tick;

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::events::parse_time;
use super::{FileGenerator, FilesReport, Generator, Kind};
use crate::config::Config;
use crate::error::Result;
use crate::progress::Progress;

pub use registry::{Registry, RegistryState};

pub const KIND: Kind = Kind {
    name: "telemetry",
    about: "hourly wifi-device telemetry CSV files from a kept device registry (see `micro-wh telemetry`)",
    build: |section, options| {
        let mut config = TelemetryConfig::from_section(section)?;
        if let Some(seed) = options.seed {
            config.seed = seed;
        }
        Ok(Generator::Files(Box::new(Feed { config })))
    },
    settings: |section| Ok(serde_yaml::to_value(TelemetryConfig::from_section(section)?)?),
};

/// `generate.telemetry` in warehouse.yaml.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Devices of a new registry (`telemetry init --devices` overrides).
    pub devices: u64,
    /// Seed of a new registry; the hourly measurements derive from it too.
    pub seed: u64,
    /// Folder of the registry (devices.parquet) and its clock (state.json), from the root.
    pub registry: PathBuf,
    /// The clock of a new registry, "YYYY-MM-DD HH:MM:SS" (UTC, whole hour).
    pub start: String,
    /// Hours `micro-wh generate telemetry` (and a fresh project's refresh) ticks.
    pub hours: u32,
    /// Folder the hourly CSV files go to, from the root: the `telemetry` source's path.
    pub out: PathBuf,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            devices: 10_000,
            seed: 42,
            registry: "registry/telemetry".into(),
            start: "2020-01-01 00:00:00".into(),
            hours: 2,
            out: "raw/telemetry".into(),
        }
    }
}

impl TelemetryConfig {
    pub fn from_section(section: Option<&serde_yaml::Value>) -> Result<TelemetryConfig> {
        let config: TelemetryConfig = super::section("telemetry", section)?;
        let start = parse_time(&config.start).context("generate.telemetry.start")?;
        anyhow::ensure!(
            start.and_utc().timestamp() % 3600 == 0,
            "generate.telemetry.start: {} is not a whole hour",
            config.start
        );
        anyhow::ensure!(
            config.devices >= 1,
            "generate.telemetry.devices: must be at least 1"
        );
        Ok(config)
    }

    /// The registry folder, resolved against the project root.
    pub fn registry_dir(&self, root: &Path) -> PathBuf {
        root.join(&self.registry)
    }
}

/// The feed as a file generator: registry if absent, then `hours` hourly files.
struct Feed {
    config: TelemetryConfig,
}

impl FileGenerator for Feed {
    fn default_out(&self) -> PathBuf {
        self.config.out.clone()
    }

    fn write(
        &self,
        root: &Path,
        out_dir: &Path,
        config: &Config,
        progress: &Progress,
    ) -> Result<FilesReport> {
        let dir = self.config.registry_dir(root);
        let registry = match Registry::open(&dir)? {
            Some(r) => r,
            None => {
                registry::init(
                    &dir,
                    &self.config,
                    self.config.devices,
                    self.config.seed,
                    false,
                    config,
                    progress,
                )?;
                Registry::open(&dir)?.context("the registry just written cannot be read")?
            }
        };
        let ticks = tick::tick(&registry, out_dir, self.config.hours, config, progress)?;
        Ok(FilesReport {
            rows: ticks.iter().map(|t| t.rows).sum(),
            files: ticks.into_iter().map(|t| t.file).collect(),
        })
    }
}
