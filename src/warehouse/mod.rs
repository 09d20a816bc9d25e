//! The warehouse file: migrations, model refreshes with data tests, the refresh log and exports.

pub mod data_tests;
pub mod export;
pub mod history;
pub mod incremental;
pub mod lake_model;
pub mod migrations;
pub mod models;
pub mod refresh;
pub mod seal;
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
                status VARCHAR NOT NULL,            -- running | committed | succeeded | failed | exports_failed | interrupted
                rows_per_model VARCHAR,             -- JSON object: model -> rows
                tests_passed INTEGER,
                tests_failed INTEGER,
                exported_files VARCHAR[],
                error VARCHAR
            );
            ALTER TABLE {REFRESH_LOG} ADD COLUMN IF NOT EXISTS modes VARCHAR;  -- JSON object: model -> full | incremental (N partitions) | unchanged
            CREATE TABLE IF NOT EXISTS {TEST_RESULTS} (
                refresh_id BIGINT NOT NULL,
                model VARCHAR NOT NULL,
                test VARCHAR NOT NULL,
                passed BOOLEAN NOT NULL,
                failing_rows BIGINT NOT NULL,
                detail VARCHAR
            );
            CREATE TABLE IF NOT EXISTS {refreshes} (model VARCHAR NOT NULL, refresh_id BIGINT NOT NULL);",
            refreshes = history::REFRESHES
        ),
    )?;
    Ok(())
}

/// After `micro-wh export` wrote every gold model: the latest refresh, if it was committed
/// without its exports, is now complete.
pub fn exports_finished(conn: &Connection, files: &[std::path::PathBuf]) -> Result<Option<i64>> {
    ensure_bookkeeping(conn)?;
    let files = files
        .iter()
        .map(|p| db::literal(&p.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(", ");
    let id: Option<i64> = db::query_one(
        conn,
        &format!(
            "SELECT max(id) FILTER (WHERE status IN ('committed', 'exports_failed') AND id = (SELECT max(id) FROM {REFRESH_LOG})) FROM {REFRESH_LOG}"
        ),
    )?;
    if let Some(id) = id {
        db::execute(
            conn,
            &format!(
                "UPDATE {REFRESH_LOG} SET status = 'succeeded', exported_files = [{files}]::VARCHAR[],
                 error = error || ' (exports written later by micro-wh export)' WHERE id = {id}"
            ),
        )?;
    }
    Ok(id)
}
