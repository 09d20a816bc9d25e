//! `micro-wh export`: tables of the warehouse to the exports directory, all replaced together.

use super::{Outcome, Project};
use crate::cli::ExportArgs;
use crate::error::Result;
use crate::warehouse::export::StagedExports;

pub fn run(project: &Project, args: &ExportArgs) -> Result<Outcome> {
    let all_gold = args.tables.is_empty();
    let tables = if all_gold {
        super::refresh::inputs(project)?
            .models
            .iter()
            .filter(|m| m.is_gold())
            .map(|m| m.name.clone())
            .collect()
    } else {
        args.tables.clone()
    };
    let conn = project.open_bookkeeping()?;
    let format = args.format();
    let mut exports = StagedExports::new(
        &project.exports_dir(),
        project.config.lake.compression,
        &[format],
    )?;
    for table in &tables {
        exports.write(&conn, table)?;
    }
    let files = exports.publish()?;
    if all_gold {
        if let Some(id) = crate::warehouse::exports_finished(&conn, &files)? {
            println!("refresh #{id} is now complete: its exports are written");
        }
    }
    for f in &files {
        println!(
            "exported {}",
            f.strip_prefix(&project.root).unwrap_or(f).display()
        );
    }
    Ok(Outcome::Success)
}
