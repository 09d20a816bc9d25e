//! `micro-wh telemetry init|tick|status`.

use super::{Outcome, Project};
use crate::cli::{TelemetryArgs, TelemetryCommand};
use crate::error::Result;
use crate::generate::telemetry::{registry, tick, Registry, TelemetryConfig};

pub fn run(project: &Project, args: &TelemetryArgs) -> Result<Outcome> {
    let settings = TelemetryConfig::from_section(project.config.generate.get("telemetry"))?;
    let dir = settings.registry_dir(&project.root);
    let shown = |p: &std::path::Path| {
        p.strip_prefix(&project.root)
            .unwrap_or(p)
            .display()
            .to_string()
    };
    match &args.command {
        TelemetryCommand::Init {
            devices,
            seed,
            force,
        } => {
            let started = std::time::Instant::now();
            let r = registry::init(
                &dir,
                &settings,
                devices.unwrap_or(settings.devices),
                seed.unwrap_or(settings.seed),
                *force,
                &project.config,
                &project.progress(),
            )?;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "registry of {} devices (seed {}) written to {} in {secs:.1} s ({:.0} devices/s); clock at {}",
                r.state.devices,
                r.state.seed,
                shown(&r.devices_file()),
                r.state.devices as f64 / secs.max(1e-9),
                r.state.next_hour
            );
        }
        TelemetryCommand::Tick { hours, out } => {
            let registry = open(&dir)?;
            let out = match out {
                Some(d) => project.cwd.join(d),
                None => project.path(&settings.out),
            };
            for t in tick::tick(
                &registry,
                &out,
                *hours,
                &project.config,
                &project.progress(),
            )? {
                println!(
                    "{}: {} rows, {}",
                    shown(&t.file),
                    t.rows,
                    super::status::human_bytes(std::fs::metadata(&t.file).map_or(0, |m| m.len()))
                );
            }
        }
        TelemetryCommand::Status => {
            let r = open(&dir)?;
            let s = &r.state;
            println!("registry  {}", shown(&r.devices_file()));
            println!("devices   {}", s.devices);
            println!("seed      {}", s.seed);
            println!("created   {}", s.created_at);
            println!(
                "clock     {}:00 UTC (the next tick writes this hour)",
                s.next_hour
            );
            println!("produced  {} hours", s.hours_produced);
            println!("metrics   (columns metric_1 … metric_20 of each hourly file)");
            for (i, meaning) in crate::generate::telemetry::metrics::MEANINGS
                .iter()
                .enumerate()
            {
                println!("  metric_{:<3} {meaning}", i + 1);
            }
        }
    }
    Ok(Outcome::Success)
}

fn open(dir: &std::path::Path) -> Result<Registry> {
    Registry::open(dir)?.ok_or_else(|| {
        anyhow::anyhow!(
            "no telemetry registry in {}: create one with `micro-wh telemetry init`",
            dir.display()
        )
    })
}
