//! The warehouse file: migrations, model refreshes with data tests, the refresh log and exports.

pub mod data_tests;
pub mod export;
pub mod migrations;
pub mod models;
pub mod refresh;
pub mod template;

use duckdb::Connection;

use crate::db;
use crate::error::Result;

pub const REFRESH_LOG: &str = "refresh_log";
pub const TEST_RESULTS: &str = "refresh_test_results";

/// Tables micro-wh itself writes, created on first use.
pub fn ensure_bookkeeping(conn: &Connection) -> Result<()> {
    migrations::ensure_history_table(conn)?;
    db::execute(
        conn,
        &format!(
            "CREATE TABLE IF NOT EXISTS {REFRESH_LOG} (
                id BIGINT PRIMARY KEY,
                started_at TIMESTAMP NOT NULL,       -- UTC
                finished_at TIMESTAMP,
                status VARCHAR NOT NULL,            -- running | succeeded | failed | interrupted
                rows_per_model VARCHAR,             -- JSON object: model -> rows
                tests_passed INTEGER,
                tests_failed INTEGER,
                exported_files VARCHAR[],
                error VARCHAR
            );
            CREATE TABLE IF NOT EXISTS {TEST_RESULTS} (
                refresh_id BIGINT NOT NULL,
                model VARCHAR NOT NULL,
                test VARCHAR NOT NULL,
                passed BOOLEAN NOT NULL,
                failing_rows BIGINT NOT NULL,
                detail VARCHAR
            );"
        ),
    )?;
    Ok(())
}

/// Name of the table keeping every refresh's rows of a gold model.
pub fn history_table(model: &str) -> String {
    format!("{model}_history")
}
