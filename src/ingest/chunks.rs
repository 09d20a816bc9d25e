//! Rows read in Rust (NDJSON, JSON arrays, log lines, SQLite) go to DuckDB in chunks of text
//! columns: DuckDB casts them to the declared types and applies the contract, so every format
//! gets the same typing and the same quarantine reasons. Valid rows are buffered up to
//! `lake.max_rows_per_write` and written out, so memory stays bounded whatever the file size.

use std::sync::Arc;

use arrow::array::{ArrayBuilder, ArrayRef, Int64Builder, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::validate::{checked_select, Column};
use super::{LoadJob, Loaded, SCRATCH};
use crate::db::{self, ident};
use crate::error::Result;

const CHUNK: &str = "chunk";
const CHECKED: &str = "checked";
const VALID: &str = "valid";
const REJECTS: &str = "quarantine";

pub struct ChunkLoader<'a> {
    job: &'a LoadJob<'a>,
    columns: Vec<Column>,
    schema: SchemaRef,
    lines: Int64Builder,
    raw: StringBuilder,
    values: Vec<StringBuilder>,
    buffered: usize,
    reject_lines: Int64Builder,
    reject_raw: StringBuilder,
    reject_reasons: StringBuilder,
    rows_in: u64,
    rows_loaded: u64,
    pending: u64,
    parts: usize,
    chunk_rows: usize,
}

impl<'a> ChunkLoader<'a> {
    /// Prepares the scratch tables for rows of `columns` (values arrive as text).
    pub fn new(job: &'a LoadJob<'a>, columns: Vec<Column>) -> Result<ChunkLoader<'a>> {
        let text: Vec<String> = columns
            .iter()
            .map(|c| format!("{} VARCHAR", ident(&c.name)))
            .collect();
        let typed: Vec<String> = columns
            .iter()
            .map(|c| format!("{} {}", ident(&c.name), c.ty))
            .chain(job.ordered.then(|| "_line BIGINT".to_owned()))
            .collect();
        db::execute(
            job.conn,
            &format!(
                "CREATE OR REPLACE TABLE {SCRATCH}.{CHUNK} (_line BIGINT, _raw VARCHAR{}{});
                 CREATE OR REPLACE TABLE {SCRATCH}.{VALID} ({});",
                if text.is_empty() { "" } else { ", " },
                text.join(", "),
                if typed.is_empty() { "_none BOOLEAN".to_owned() } else { typed.join(", ") },
            ),
        )?;
        let mut fields = vec![
            Field::new("_line", DataType::Int64, false),
            Field::new("_raw", DataType::Utf8, true),
        ];
        fields.extend(
            columns
                .iter()
                .map(|c| Field::new(c.name.clone(), DataType::Utf8, true)),
        );
        let chunk_rows = job.source.chunk_rows;
        Ok(ChunkLoader {
            job,
            values: columns.iter().map(|_| StringBuilder::new()).collect(),
            columns,
            schema: Arc::new(Schema::new(fields)),
            lines: Int64Builder::with_capacity(chunk_rows),
            raw: StringBuilder::new(),
            buffered: 0,
            reject_lines: Int64Builder::new(),
            reject_raw: StringBuilder::new(),
            reject_reasons: StringBuilder::new(),
            rows_in: 0,
            rows_loaded: 0,
            pending: 0,
            parts: 0,
            chunk_rows,
        })
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// A row whose fields (in column order) DuckDB will type and check.
    pub fn push<S: AsRef<str>>(&mut self, line: u64, raw: &str, fields: &[Option<S>]) -> Result<()> {
        self.rows_in += 1;
        self.lines.append_value(line as i64);
        self.raw.append_value(raw);
        for (builder, value) in self.values.iter_mut().zip(fields) {
            builder.append_option(value.as_ref().map(|v| v.as_ref()));
        }
        self.buffered += 1;
        if self.buffered >= self.chunk_rows {
            self.flush_chunk()?;
        }
        Ok(())
    }

    /// A row refused before typing (not parseable, no match for the pattern).
    pub fn reject(&mut self, line: u64, raw: &str, reason: &str) -> Result<()> {
        self.rows_in += 1;
        self.reject_lines.append_value(line as i64);
        self.reject_raw.append_value(raw);
        self.reject_reasons.append_value(reason);
        if self.reject_lines.len() >= self.chunk_rows {
            self.flush_rejects()?;
        }
        Ok(())
    }

    fn flush_rejects(&mut self) -> Result<()> {
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
        let mut appender = self
            .job
            .conn
            .appender_to_catalog_and_db(REJECTS, SCRATCH, "main")?;
        appender.append_record_batch(batch)?;
        appender.flush()?;
        Ok(())
    }

    fn flush_chunk(&mut self) -> Result<()> {
        if self.buffered == 0 {
            return Ok(());
        }
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(self.lines.finish()),
            Arc::new(self.raw.finish()),
        ];
        arrays.extend(
            self.values
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        self.buffered = 0;
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)?;
        let conn = self.job.conn;
        db::execute(conn, &format!("DELETE FROM {SCRATCH}.{CHUNK}"))?;
        {
            let mut appender = conn.appender_to_catalog_and_db(CHUNK, SCRATCH, "main")?;
            appender.append_record_batch(batch)?;
            appender.flush()?;
        }
        let checked = checked_select(
            &format!("{SCRATCH}.{CHUNK}"),
            &self.columns,
            &self.job.source.checks,
            true,
        );
        db::execute(
            conn,
            &format!("CREATE OR REPLACE TABLE {SCRATCH}.{CHECKED} AS {checked}"),
        )?;
        self.job
            .quarantine_failures(&format!("FROM {SCRATCH}.{CHECKED}"))?;
        let n: i64 = db::query_one(
            conn,
            &format!("SELECT count(*) FROM {SCRATCH}.{CHECKED} WHERE _reason IS NULL"),
        )?;
        db::execute(
            conn,
            &format!(
                "INSERT INTO {SCRATCH}.{VALID} SELECT {} FROM {SCRATCH}.{CHECKED} WHERE _reason IS NULL",
                self.valid_list()
            ),
        )?;
        self.rows_loaded += n as u64;
        self.pending += n as u64;
        if self.pending >= self.job.max_rows_per_write {
            self.flush_valid()?;
        }
        Ok(())
    }

    fn valid_list(&self) -> String {
        let mut list: Vec<String> = self.columns.iter().map(|c| ident(&c.name)).collect();
        if self.job.ordered {
            list.push("_line".to_owned());
        }
        if list.is_empty() {
            list.push("NULL".to_owned());
        }
        list.join(", ")
    }

    fn flush_valid(&mut self) -> Result<()> {
        if self.pending == 0 {
            return Ok(());
        }
        self.job
            .write_incoming(&format!("SELECT * FROM {SCRATCH}.{VALID}"), self.parts)?;
        self.parts += 1;
        self.pending = 0;
        db::execute(self.job.conn, &format!("DELETE FROM {SCRATCH}.{VALID}"))?;
        Ok(())
    }

    pub fn finish(mut self) -> Result<Loaded> {
        self.flush_chunk()?;
        self.flush_rejects()?;
        self.flush_valid()?;
        Ok(Loaded {
            rows_in: self.rows_in,
            rows_loaded: self.rows_loaded,
            columns: self.columns,
        })
    }
}
