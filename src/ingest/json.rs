//! JSON inputs: `ndjson` (one object per line; quarantine by line number) and `json` (one
//! array of objects per file, streamed element by element; quarantine by element number).
//! Nested objects and arrays are kept as JSON text in `JSON` columns.

use std::fmt;
use std::io::{BufRead, BufReader};

use anyhow::Context;
use serde::de::{Deserializer as _, SeqAccess, Visitor};
use serde_json::Value;

use super::chunks::ChunkLoader;
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
        let mut loader = ChunkLoader::new(job, columns)?;
        let file = std::fs::File::open(job.file)
            .with_context(|| format!("cannot read {}", job.file.display()))?;
        let reader = BufReader::with_capacity(1 << 20, file);
        if self.array {
            read_array(reader, &mut loader)?;
        } else {
            read_lines(reader, &mut loader)?;
        }
        loader.finish()
    }
}

impl Json {
    /// DuckDB's JSON sniffing; nested types become JSON.
    fn infer(&self, job: &LoadJob<'_>) -> Result<Vec<Column>> {
        let format = if self.array { "array" } else { "newline_delimited" };
        describe(
            job.conn,
            &format!("read_json({}, format = '{format}', ignore_errors = true)", path_literal(job.file)),
            job.file,
        )
    }
}

/// Pushes one parsed value as a row, or rejects it when it is not an object.
fn push_value(loader: &mut ChunkLoader<'_>, line: u64, raw: &str, value: Value) -> Result<()> {
    let Value::Object(mut object) = value else {
        return loader.reject(line, raw, "not a JSON object");
    };
    let fields: Vec<Option<String>> = loader
        .columns()
        .iter()
        .map(|c| match object.remove(&c.name) {
            None | Some(Value::Null) => None,
            Some(v) if c.ty.eq_ignore_ascii_case("JSON") => Some(v.to_string()),
            Some(Value::String(s)) => Some(s),
            Some(v) => Some(v.to_string()),
        })
        .collect();
    loader.push(line, raw, &fields)
}

fn read_lines(mut reader: impl BufRead, loader: &mut ChunkLoader<'_>) -> Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let mut line = 0u64;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        line += 1;
        let bytes = trim_newline(&buf);
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let raw = String::from_utf8_lossy(bytes);
                loader.reject(line, &raw, &format!("invalid UTF-8 at byte {}", e.valid_up_to()))?;
                continue;
            }
        };
        if text.trim().is_empty() {
            loader.reject(line, text, "blank line")?;
            continue;
        }
        match serde_json::from_str::<Value>(text) {
            Ok(value) => push_value(loader, line, text, value)?,
            Err(e) => loader.reject(line, text, &format!("invalid JSON: {e}"))?,
        }
    }
}

pub fn trim_newline(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

/// Streams the elements of a top-level array; a malformed element ends the array there and is
/// quarantined, the elements before it load.
fn read_array(reader: impl std::io::Read, loader: &mut ChunkLoader<'_>) -> Result<()> {
    let mut elements = Elements {
        loader,
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

struct Elements<'l, 'a> {
    loader: &'l mut ChunkLoader<'a>,
    index: u64,
    failure: Option<anyhow::Error>,
    truncated: bool,
}

impl<'de> Visitor<'de> for &mut Elements<'_, '_> {
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
                    let raw = value.to_string();
                    if let Err(e) = push_value(self.loader, self.index, &raw, value) {
                        self.failure = Some(e);
                        return Err(A::Error::custom("stopped"));
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.index += 1;
                    self.truncated = true;
                    if let Err(e) = self.loader.reject(self.index, "", &format!("invalid JSON: {e}")) {
                        self.failure = Some(e);
                    }
                    return Err(e);
                }
            }
        }
    }
}
