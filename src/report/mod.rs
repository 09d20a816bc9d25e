//! The report: one self-contained HTML page of charts and tables drawn from the warehouse's
//! gold and bookkeeping tables, for people who look before they query.

pub mod chart;
pub mod data;
pub mod map;
mod page;

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use duckdb::Connection;

use crate::error::Result;

/// What was written.
pub struct Written {
    pub bytes: u64,
    pub sections: Vec<&'static str>,
}

/// Reads the warehouse through `conn`, renders the page and replaces `out` with it at once
/// (a reader never sees half a page). `lake_dir` adds the lake's folder sizes.
pub fn write(
    conn: &Connection,
    lake_dir: Option<&Path>,
    warehouse: &str,
    out: &Path,
) -> Result<Written> {
    let report = data::read(conn, lake_dir)?;
    let html = page::render(&report, warehouse)?;
    let dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    file.write_all(html.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("cannot write {}", file.path().display()))?;
    // A temp file is private to its owner; the report is for everyone who can read the folder.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("cannot write {}", file.path().display()))?;
    }
    file.persist(out)
        .with_context(|| format!("cannot replace {}", out.display()))?;
    let mut sections = vec!["health"];
    sections.extend(report.events.is_some().then_some("events"));
    sections.extend(report.telemetry.is_some().then_some("telemetry"));
    sections.extend(report.business.is_some().then_some("business events"));
    sections.extend((!report.gold.is_empty()).then_some("gold tables"));
    Ok(Written {
        bytes: html.len() as u64,
        sections,
    })
}
