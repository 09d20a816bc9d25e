//! JSON inputs: `ndjson` (one object per line; quarantine by line number) and `json` (one
//! array of objects per file, streamed element by element; quarantine by element number).
//! Nested objects and arrays are kept as JSON text in `JSON` columns.

use std::fmt;
use std::io::{BufRead, BufReader};

use anyhow::Context;
use serde::de::{Deserializer as _, SeqAccess, Visitor};
use serde_json::Value;

use super::chunks::{self, Rows, Shape};
use super::validate::{describe, Column};
use super::{Format, LoadJob, Loaded};
use crate::db::path_literal;
use crate::error::Result;

pub struct Json {
    array: bool,
}

impl Json {
    pub const ARRAY: Json = Json { array: true };
    pub const LINES: Json = Json { array: false };
}

impl Format for Json {
    fn name(&self) -> &'static str {
        if self.array {
            "json"
        } else {
            "ndjson"
        }
    }

    fn load(&self, job: &LoadJob<'_>) -> Result<Loaded> {
        let columns = match job.columns {
            Some(c) => c.to_vec(),
            None => self.infer(job)?,
        };
        let file = std::fs::File::open(job.file)
            .with_context(|| format!("cannot read {}", job.file.display()))?;
        let reader = BufReader::with_capacity(1 << 20, file);
        let array = self.array;
        chunks::load(job, columns, Shape::Json, move |rows| {
            if array {
                read_array(reader, rows)
            } else {
                read_lines(reader, rows)
            }
        })
    }
}

impl Json {
    /// DuckDB's JSON sniffing; nested types become JSON.
    fn infer(&self, job: &LoadJob<'_>) -> Result<Vec<Column>> {
        let format = if self.array {
            "array"
        } else {
            "newline_delimited"
        };
        describe(
            job.conn,
            &format!(
                "read_json({}, format = '{format}', ignore_errors = true)",
                path_literal(job.file)
            ),
            job.file,
        )
    }
}

/// One row per line, as its raw text: DuckDB parses it (blank lines and invalid JSON are
/// quarantined there).
fn read_lines(reader: impl BufRead, rows: &mut Rows) -> Result<()> {
    chunks::each_line(reader, rows, |rows, line, text| rows.push_json(line, text))
}

/// Streams the elements of a top-level array; a malformed element ends the array there and is
/// quarantined, the elements before it load.
fn read_array(reader: impl std::io::Read, rows: &mut Rows) -> Result<()> {
    let mut elements = Elements {
        rows,
        index: 0,
        failure: None,
        truncated: false,
    };
    let mut de = serde_json::Deserializer::from_reader(reader);
    let outcome = (&mut de).deserialize_seq(&mut elements);
    if let Some(e) = elements.failure.take() {
        return Err(e);
    }
    match outcome {
        Ok(()) => de
            .end()
            .map_err(|e| anyhow::anyhow!("text after the JSON array: {e}")),
        Err(_) if elements.truncated => Ok(()),
        Err(e) if elements.index == 0 => Err(anyhow::anyhow!("not a JSON array: {e}")),
        Err(e) => Err(anyhow::anyhow!("malformed JSON array: {e}")),
    }
}

struct Elements<'r> {
    rows: &'r mut Rows,
    index: u64,
    failure: Option<anyhow::Error>,
    truncated: bool,
}

impl<'de> Visitor<'de> for &mut Elements<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        use serde::de::Error as _;
        loop {
            match seq.next_element::<Value>() {
                Ok(Some(value)) => {
                    self.index += 1;
                    if let Err(e) = self.rows.push_json(self.index, &value.to_string()) {
                        self.failure = Some(e);
                        return Err(A::Error::custom("stopped"));
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.index += 1;
                    self.truncated = true;
                    if let Err(e) = self
                        .rows
                        .reject(self.index, "", &format!("invalid JSON: {e}"))
                    {
                        self.failure = Some(e);
                    }
                    return Err(e);
                }
            }
        }
    }
}
