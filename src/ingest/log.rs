//! Line-oriented text logs: a regex's named groups become columns; a line that does not
//! match (blank lines included) is quarantined as `no match for pattern`.

use std::io::BufReader;

use anyhow::{bail, Context};
use regex::Regex;

use super::chunks::{self, Shape};
use super::validate::Column;
use super::{Format, LoadJob, Loaded};
use crate::config::SourceConfig;
use crate::error::Result;

pub struct Log;

fn compile(source: &SourceConfig) -> Result<Regex> {
    let pattern = source.pattern.as_deref().unwrap_or_default();
    let regex = Regex::new(pattern)
        .with_context(|| format!("pattern: `{pattern}` is not a valid regex"))?;
    if regex.capture_names().flatten().next().is_none() {
        bail!("pattern: `{pattern}` has no named group such as (?P<level>\\w+)");
    }
    Ok(regex)
}

impl Format for Log {
    fn name(&self) -> &'static str {
        "log"
    }

    fn check_config(&self, source: &SourceConfig) -> Result<()> {
        let regex = compile(source)?;
        if let Some(columns) = &source.columns {
            let groups: Vec<&str> = regex.capture_names().flatten().collect();
            for (name, _) in columns {
                if !groups.contains(&name.as_str()) {
                    bail!(
                        "columns.{name}: the pattern has no group named `{name}` (groups: {})",
                        groups.join(", ")
                    );
                }
            }
        }
        Ok(())
    }

    fn load(&self, job: &LoadJob<'_>) -> Result<Loaded> {
        let regex = compile(job.source)?;
        let groups: Vec<&str> = regex.capture_names().flatten().collect();
        // Declared types where given, text for the other groups, in the pattern's order.
        let columns: Vec<Column> = groups
            .iter()
            .map(|g| {
                job.columns
                    .and_then(|cols| cols.iter().find(|c| c.name == *g).cloned())
                    .unwrap_or_else(|| Column::new(g, "VARCHAR"))
            })
            .collect();
        let file = std::fs::File::open(job.file)
            .with_context(|| format!("cannot read {}", job.file.display()))?;
        let reader = BufReader::with_capacity(1 << 20, file);
        chunks::load(job, columns, Shape::Columns, move |rows| {
            let groups: Vec<&str> = regex.capture_names().flatten().collect();
            chunks::each_line(reader, rows, |rows, line, text| {
                match regex.captures(text) {
                    Some(caps) => {
                        let fields: Vec<Option<&str>> = groups
                            .iter()
                            .map(|g| caps.name(g).map(|m| m.as_str()))
                            .collect();
                        rows.push(line, Some(text), &fields)
                    }
                    // Blank lines too: a line is a row, and it does not match.
                    None => rows.reject(line, text, "no match for pattern"),
                }
            })
        })
    }
}
