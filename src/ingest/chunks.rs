//! Rows read in Rust (NDJSON, JSON arrays, log lines, SQLite) go to DuckDB in chunks: DuckDB
//! casts them to the declared types and applies the contract, so every format gets the same
//! typing and the same quarantine reasons.
//!
//! The reader runs on its own thread and hands Arrow batches over a bounded channel, so
//! reading one chunk overlaps DuckDB's work on the previous one, and memory holds at most a
//! few chunks. JSON rows travel as their raw text and DuckDB parses them (one parse per row,
//! on all cores); other rows travel as one text value per column. DuckDB checks them in passes
//! of `lake.max_rows_per_write` rows, each pass's valid rows written out as one Parquet file.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use arrow::array::{ArrayBuilder, ArrayRef, Int64Builder, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::validate::{checked_select, Column};
use super::{LoadJob, Loaded, SCRATCH};
use crate::db::{self, ident, literal};
use crate::error::Result;

const CHUNK: &str = "chunk";
const CHECKED: &str = "checked";
const REJECTS: &str = "quarantine";
/// Chunks in flight between the reader and DuckDB.
const IN_FLIGHT: usize = 2;

/// What a row carries from the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One text value per column (and optionally the raw record).
    Columns,
    /// The raw text of one JSON value; DuckDB extracts the columns.
    Json,
}

enum Msg {
    Rows(RecordBatch),
    Rejects(RecordBatch),
}

/// The reader's side: builds Arrow batches and sends each full chunk to DuckDB's side.
pub struct Rows {
    shape: Shape,
    schema: SchemaRef,
    lines: Int64Builder,
    raw: StringBuilder,
    values: Vec<StringBuilder>,
    reject_lines: Int64Builder,
    reject_raw: StringBuilder,
    reject_reasons: StringBuilder,
    rows_in: u64,
    chunk_rows: usize,
    tx: SyncSender<Msg>,
}

impl Rows {
    /// A row of text values in column order; `raw` is the record as read, when there is one
    /// (without it, a quarantined row's text is rebuilt from its values).
    pub fn push<S: AsRef<str>>(
        &mut self,
        line: u64,
        raw: Option<&str>,
        fields: &[Option<S>],
    ) -> Result<()> {
        debug_assert_eq!(self.shape, Shape::Columns);
        self.rows_in += 1;
        self.lines.append_value(line as i64);
        self.raw.append_option(raw);
        for (builder, value) in self.values.iter_mut().zip(fields) {
            builder.append_option(value.as_ref().map(|v| v.as_ref()));
        }
        self.maybe_send()
    }

    /// A JSON text (one line of NDJSON, one element of an array).
    pub fn push_json(&mut self, line: u64, raw: &str) -> Result<()> {
        debug_assert_eq!(self.shape, Shape::Json);
        self.rows_in += 1;
        self.lines.append_value(line as i64);
        self.raw.append_value(raw);
        self.maybe_send()
    }

    /// A row refused before typing (not parseable, no match for the pattern).
    pub fn reject(&mut self, line: u64, raw: &str, reason: &str) -> Result<()> {
        self.rows_in += 1;
        self.reject_lines.append_value(line as i64);
        self.reject_raw.append_value(raw);
        self.reject_reasons.append_value(reason);
        if self.reject_lines.len() >= self.chunk_rows {
            self.send_rejects()?;
        }
        Ok(())
    }

    fn maybe_send(&mut self) -> Result<()> {
        if self.lines.len() >= self.chunk_rows {
            self.send_rows()?;
        }
        Ok(())
    }

    fn send_rows(&mut self) -> Result<()> {
        if self.lines.len() == 0 {
            return Ok(());
        }
        let mut arrays: Vec<ArrayRef> =
            vec![Arc::new(self.lines.finish()), Arc::new(self.raw.finish())];
        arrays.extend(
            self.values
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)?;
        self.tx
            .send(Msg::Rows(batch))
            .map_err(|_| anyhow::anyhow!("the engine stopped taking rows"))
    }

    fn send_rejects(&mut self) -> Result<()> {
        if self.reject_lines.len() == 0 {
            return Ok(());
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("line", DataType::Int64, true),
            Field::new("raw", DataType::Utf8, true),
            Field::new("reason", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(self.reject_lines.finish()) as ArrayRef,
                Arc::new(self.reject_raw.finish()),
                Arc::new(self.reject_reasons.finish()),
            ],
        )?;
        self.tx
            .send(Msg::Rejects(batch))
            .map_err(|_| anyhow::anyhow!("the engine stopped taking rows"))
    }

    fn finish(mut self) -> Result<u64> {
        self.send_rows()?;
        self.send_rejects()?;
        Ok(self.rows_in)
    }
}

/// Calls `f` with each line's number (1-based) and text, line endings removed; a line that is
/// not UTF-8 is quarantined with the offset of its first bad byte.
pub fn each_line(
    mut reader: impl std::io::BufRead,
    rows: &mut Rows,
    mut f: impl FnMut(&mut Rows, u64, &str) -> Result<()>,
) -> Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let mut line = 0u64;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        line += 1;
        let bytes = trim_newline(&buf);
        match std::str::from_utf8(bytes) {
            Ok(text) => f(rows, line, text)?,
            Err(e) => rows.reject(
                line,
                &String::from_utf8_lossy(bytes),
                &format!("invalid UTF-8 at byte {}", e.valid_up_to()),
            )?,
        }
    }
}

/// A line without its `\n` or `\r\n`.
pub fn trim_newline(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

/// Runs `read` on its own thread, feeding DuckDB chunk by chunk; returns what was loaded.
pub fn load<F>(job: &LoadJob<'_>, columns: Vec<Column>, shape: Shape, read: F) -> Result<Loaded>
where
    F: FnOnce(&mut Rows) -> Result<()> + Send,
{
    let mut fields = vec![
        Field::new("_line", DataType::Int64, false),
        Field::new("_raw", DataType::Utf8, true),
    ];
    if shape == Shape::Columns {
        fields.extend(
            columns
                .iter()
                .map(|c| Field::new(c.name.clone(), DataType::Utf8, true)),
        );
    }
    let schema = Arc::new(Schema::new(fields));
    let chunk_rows = job.source.chunk_rows;
    let (tx, rx) = sync_channel(IN_FLIGHT);
    let text_columns = if shape == Shape::Columns {
        columns.len()
    } else {
        0
    };
    let rows = Rows {
        shape,
        schema,
        lines: Int64Builder::with_capacity(chunk_rows),
        raw: StringBuilder::new(),
        values: (0..text_columns).map(|_| StringBuilder::new()).collect(),
        reject_lines: Int64Builder::new(),
        reject_raw: StringBuilder::new(),
        reject_reasons: StringBuilder::new(),
        rows_in: 0,
        chunk_rows,
        tx,
    };
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut rows = rows;
            read(&mut rows)?;
            rows.finish()
        });
        let consumed = consume(job, &columns, shape, rx);
        // The receiver is gone (consumed or failed), so a blocked reader wakes and ends.
        let rows_in = reader
            .join()
            .map_err(|_| anyhow::anyhow!("the reader thread panicked"))?;
        let rows_loaded = consumed?;
        Ok(Loaded {
            rows_in: rows_in?,
            rows_loaded,
            columns,
        })
    })
}

/// DuckDB's side: every chunk typed, checked, split into quarantine and valid rows.
fn consume(job: &LoadJob<'_>, columns: &[Column], shape: Shape, rx: Receiver<Msg>) -> Result<u64> {
    let conn = job.conn;
    let mut chunk_defs = vec!["_line BIGINT".to_owned(), "_raw VARCHAR".to_owned()];
    if shape == Shape::Columns {
        chunk_defs.extend(
            columns
                .iter()
                .map(|c| format!("{} VARCHAR", ident(&c.name))),
        );
    }
    db::execute(
        conn,
        &format!(
            "CREATE OR REPLACE TABLE {SCRATCH}.{CHUNK} ({}); SET preserve_insertion_order = false;",
            chunk_defs.join(", "),
        ),
    )?;
    let relation = match shape {
        Shape::Columns => format!("{SCRATCH}.{CHUNK}"),
        Shape::Json => json_relation(columns),
    };
    let pre_reason = (shape == Shape::Json).then_some(NOT_AN_OBJECT);
    let checked = checked_select(
        job.conn,
        &relation,
        columns,
        &job.source.checks,
        true,
        pre_reason,
    );
    let mut valid_list: Vec<String> = columns.iter().map(|c| ident(&c.name)).collect();
    if job.ordered {
        valid_list.push("_line".into());
    }
    if valid_list.is_empty() {
        valid_list.push("NULL".into());
    }
    let raw_rebuilt = match shape {
        // SQLite rows carry no raw text: rebuild it, for the quarantined rows only.
        Shape::Columns if !columns.is_empty() => format!(
            "coalesce(c._raw, CAST(json_object({}) AS VARCHAR))",
            columns
                .iter()
                .map(|c| format!("{}, c.{}", literal(&c.name), ident(&c.name)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => "c._raw".to_owned(),
    };

    // DuckDB runs a query over one row group (122,880 rows) on one thread: passes of many
    // reader chunks keep both cores busy.
    let pass_rows = (job.max_rows_per_write as usize).max(job.source.chunk_rows);
    let mut loaded = 0u64;
    let mut buffered = 0usize;
    let mut parts = 0usize;
    let pass = |parts: &mut usize| -> Result<u64> {
        // The raw text stays in the chunk table: only quarantined rows need it back.
        db::execute(
            conn,
            &format!("CREATE OR REPLACE TABLE {SCRATCH}.{CHECKED} AS SELECT * EXCLUDE (_raw) FROM ({checked})"),
        )?;
        db::execute(
            conn,
            &format!(
                "INSERT INTO {SCRATCH}.{REJECTS}
                 SELECT k._line, {raw_rebuilt}, k._reason
                 FROM {SCRATCH}.{CHECKED} k JOIN {SCRATCH}.{CHUNK} c ON c._line = k._line
                 WHERE k._reason IS NOT NULL"
            ),
        )?;
        let n = job.write_incoming(
            &format!(
                "SELECT {} FROM {SCRATCH}.{CHECKED} WHERE _reason IS NULL",
                valid_list.join(", ")
            ),
            *parts,
        )?;
        *parts += 1;
        db::execute(conn, &format!("DELETE FROM {SCRATCH}.{CHUNK}"))?;
        Ok(n)
    };
    for msg in rx {
        match msg {
            Msg::Rejects(batch) => {
                let mut appender = conn.appender_to_catalog_and_db(REJECTS, SCRATCH, "main")?;
                appender.append_record_batch(batch)?;
                appender.flush()?;
            }
            Msg::Rows(batch) => {
                buffered += batch.num_rows();
                {
                    let mut appender = conn.appender_to_catalog_and_db(CHUNK, SCRATCH, "main")?;
                    appender.append_record_batch(batch)?;
                    appender.flush()?;
                }
                if buffered >= pass_rows {
                    loaded += pass(&mut parts)?;
                    buffered = 0;
                }
            }
        }
    }
    if buffered > 0 {
        loaded += pass(&mut parts)?;
    }
    Ok(loaded)
}

/// Why a JSON text is not a row: `_t` is its JSON type, NULL when it does not parse.
const NOT_AN_OBJECT: &str = "CASE WHEN r._t IS NULL THEN CASE WHEN trim(r._raw) = '' THEN 'blank line' ELSE 'invalid JSON' END \
     WHEN r._t <> 'OBJECT' THEN 'not a JSON object' END";

/// The columns of JSON objects, extracted by DuckDB: one parse finds the type (`TRY`: invalid
/// text gives NULL, not an error), one more extracts every column of an object at once, as
/// text for typed columns (cast later) and as JSON for `JSON` columns.
fn json_relation(columns: &[Column]) -> String {
    let is_json = |c: &Column| c.ty.eq_ignore_ascii_case("JSON");
    let path = |c: &Column| literal(&format!("$.\"{}\"", c.name.replace('"', "\\\"")));
    let texts: Vec<&Column> = columns.iter().filter(|c| !is_json(c)).collect();
    let jsons: Vec<&Column> = columns.iter().filter(|c| is_json(c)).collect();
    let mut lists = Vec::new();
    if !texts.is_empty() {
        lists.push(format!(
            "CASE WHEN _t = 'OBJECT' THEN json_extract_string(_raw, [{}]) END AS _s",
            texts.iter().map(|c| path(c)).collect::<Vec<_>>().join(", ")
        ));
    }
    if !jsons.is_empty() {
        lists.push(format!(
            "CASE WHEN _t = 'OBJECT' THEN json_extract(_raw, [{}]) END AS _j",
            jsons.iter().map(|c| path(c)).collect::<Vec<_>>().join(", ")
        ));
    }
    let picks: Vec<String> = columns
        .iter()
        .map(|c| {
            let (list, i) = if is_json(c) {
                ("_j", jsons.iter().position(|x| x.name == c.name))
            } else {
                ("_s", texts.iter().position(|x| x.name == c.name))
            };
            format!("{list}[{}] AS {}", i.unwrap_or(0) + 1, ident(&c.name))
        })
        .collect();
    let mut inner = vec!["_line".to_owned(), "_raw".to_owned(), "_t".to_owned()];
    inner.extend(lists);
    let mut outer = vec!["_line".to_owned(), "_raw".to_owned(), "_t".to_owned()];
    outer.extend(picks);
    format!(
        "(SELECT {} FROM (SELECT {} FROM (SELECT _line, _raw, TRY(json_type(_raw)) AS _t FROM {SCRATCH}.{CHUNK})))",
        outer.join(", "),
        inner.join(", ")
    )
}
