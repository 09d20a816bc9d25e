//! `micro-wh sql`: a query printed or written to a file, or a script of statements.

use anyhow::{bail, Context};

use super::{Outcome, Project};
use crate::cli::SqlArgs;
use crate::db;
use crate::error::Result;

pub fn run(project: &Project, args: &SqlArgs) -> Result<Outcome> {
    let threads = project.config.threads();
    let conn = if args.in_memory {
        db::open_in_memory(&project.config, threads)?
    } else {
        let path = args
            .db
            .as_ref()
            .map_or_else(|| project.warehouse(), |db| project.cwd.join(db));
        // A typo must not leave a new empty database behind.
        if !path.exists() {
            bail!(
                "no database at {} (micro-wh sql never creates one: run `micro-wh refresh`, or use --in-memory)",
                path.display()
            );
        }
        db::open_warehouse(&path, &project.config, threads)?
    };
    if let Some(file) = &args.file {
        let file = project.cwd.join(file);
        let script = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        // The error names the file; repeating a whole script after it would bury the message.
        // DuckDB's message is the error itself (its code, "Unknown error code", says nothing).
        conn.execute_batch(&script)
            .map_err(|e| anyhow::anyhow!("script {} failed: {e}", file.display()))?;
        return Ok(Outcome::Success);
    }
    let query = args.query.as_deref().unwrap_or_default();
    if let Some(output) = &args.output {
        let output = project.cwd.join(output);
        let format = match output.extension().and_then(|e| e.to_str()) {
            Some("csv") => "FORMAT csv, HEADER true",
            Some("parquet") => "FORMAT parquet, COMPRESSION zstd",
            Some("json") => "FORMAT json",
            _ => bail!(
                "{}: the output's extension decides its format: .csv, .parquet or .json",
                output.display()
            ),
        };
        let rows: i64 = db::query_one(
            &conn,
            &format!(
                "COPY ({}) TO {} ({format})",
                query.trim().trim_end_matches(';'),
                db::path_literal(&output)
            ),
        )?;
        println!("wrote {rows} rows to {}", output.display());
        return Ok(Outcome::Success);
    }
    let mut stmt = db::prepare(&conn, query)?;
    let batches: Vec<_> = stmt.query_arrow([])?.collect();
    println!("{}", arrow::util::pretty::pretty_format_batches(&batches)?);
    Ok(Outcome::Success)
}
