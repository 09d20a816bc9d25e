//! Gold history: each committed refresh's rows of every gold model, kept as row versions so
//! that it grows with what changed, not with the number of refreshes.
//!
//! `<gold>_versions` holds each row once per stretch of refreshes it was in the table
//! (`valid_from`, the first refresh that had it; `valid_to`, the first that no longer did, NULL
//! while it still is). The view `<gold>_history` gives it back as one snapshot per refresh,
//! `(refresh_id, columns…)`, joined with `micro_wh_history_refreshes` (the refreshes that
//! recorded the model). An hourly refresh that changes one day of a gold table adds that day's
//! rows, where a copy of the whole table per refresh grew the warehouse by the table each hour.
//! Rows are a multiset: identical rows are versioned copy by copy.

use std::collections::{BTreeMap, BTreeSet};

use duckdb::Connection;

use super::REFRESH_LOG;
use crate::db::{self, ident, literal};
use crate::error::Result;

/// The refreshes that recorded each gold model's rows.
pub const REFRESHES: &str = "micro_wh_history_refreshes";

/// The view of every refresh's rows of a gold model.
pub fn history_view(model: &str) -> String {
    format!("{model}_history")
}

/// The table of a gold model's row versions.
pub fn versions_table(model: &str) -> String {
    format!("{model}_versions")
}

/// Whether `name` is a history view or versions table rather than a gold model.
pub fn is_history(name: &str) -> bool {
    name.ends_with(&history_view("")) || name.ends_with(&versions_table(""))
}

/// What a refresh changed of a gold model's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// Nothing: its rows are those its open versions hold.
    Nothing,
    /// Only rows meeting this condition (SQL over its columns) were replaced.
    Within(String),
    /// Any row may have changed (rebuilt whole).
    Anything,
}

/// Records a refresh's rows of its gold models.
pub struct Recorder<'a> {
    conn: &'a Connection,
    /// The refresh.
    id: i64,
    /// What the warehouse's names are (`VIEW`, `BASE TABLE`) at the start of the refresh.
    kinds: &'a BTreeMap<String, String>,
    /// The models the last committed refresh recorded, when nothing else wrote the warehouse
    /// since: only their open versions hold the rows they had before this refresh (one
    /// refreshed while it was no gold model, or edited by a migration or by hand, changed
    /// unrecorded).
    recorded_last: BTreeSet<String>,
}

impl<'a> Recorder<'a> {
    /// `untouched`: nothing but refreshes wrote the warehouse since the last one committed.
    pub fn new(
        conn: &'a Connection,
        id: i64,
        kinds: &'a BTreeMap<String, String>,
        untouched: bool,
    ) -> Result<Recorder<'a>> {
        if !untouched {
            return Ok(Recorder {
                conn,
                id,
                kinds,
                recorded_last: BTreeSet::new(),
            });
        }
        let recorded_last = db::query_rows(
            conn,
            &format!(
                "SELECT model FROM {REFRESHES} WHERE refresh_id = \
                 (SELECT max(id) FROM {REFRESH_LOG} WHERE status IN ('committed', 'succeeded', 'exports_failed'))"
            ),
            [],
            |r| r.get(0),
        )?;
        Ok(Recorder {
            conn,
            id,
            kinds,
            recorded_last: recorded_last.into_iter().collect(),
        })
    }

    /// Records the refresh's rows of gold `model`, of which it changed `changed`: all it
    /// compares with the open versions when those are the rows the model had before, so the
    /// cost does not grow with the gold table. A `<gold>_history` table of an earlier micro-wh
    /// (a full copy per refresh) is turned into versions first.
    pub fn record(&self, model: &str, changed: Changed) -> Result<()> {
        let (conn, id) = (self.conn, self.id);
        let (view, versions) = (history_view(model), versions_table(model));
        let columns = || db::describe(conn, &format!("SELECT * FROM {}", ident(model)));
        let kind = |name: &str| self.kinds.get(name).map(String::as_str);
        // What the open versions are compared over: nothing, the rows meeting a condition,
        // or every row.
        let mut compare = match changed {
            Changed::Anything => Some(None),
            _ if !self.recorded_last.contains(model) => Some(None),
            Changed::Nothing => None,
            Changed::Within(condition) => Some(Some(condition)),
        };
        if kind(&view) == Some("BASE TABLE") {
            convert(conn, model, &columns()?)?;
            compare = Some(None);
        } else if kind(&versions).is_none() {
            db::execute(
                conn,
                &format!(
                    "CREATE TABLE IF NOT EXISTS {} AS SELECT CAST(NULL AS BIGINT) AS valid_from, \
                     CAST(NULL AS BIGINT) AS valid_to, * FROM {} LIMIT 0",
                    ident(&versions),
                    ident(model)
                ),
            )?;
            compare = Some(None);
        }
        if kind(&view) != Some("VIEW") {
            create_view(conn, model)?;
        }
        if let Some(within) = compare {
            apply_changes(conn, model, &columns()?, id, within.as_deref())?;
        }
        db::execute(
            conn,
            &format!("INSERT INTO {REFRESHES} VALUES ({}, {id})", literal(model)),
        )?;
        Ok(())
    }
}

/// The view giving each recorded refresh's rows.
fn create_view(conn: &Connection, model: &str) -> Result<()> {
    db::execute(
        conn,
        &format!(
            "CREATE OR REPLACE VIEW {view} AS
             SELECT r.refresh_id, v.* EXCLUDE (valid_from, valid_to)
             FROM {REFRESHES} AS r JOIN {versions} AS v
               ON r.refresh_id >= v.valid_from AND r.refresh_id < coalesce(v.valid_to, 9223372036854775807)
             WHERE r.model = {name}",
            view = ident(&history_view(model)),
            versions = ident(&versions_table(model)),
            name = literal(model)
        ),
    )?;
    Ok(())
}

/// Closes the open versions of rows no longer in `model` and opens versions of its new rows,
/// as of refresh `id`: per distinct row, the difference between its copies in the table and
/// its open versions, over the rows meeting `within` when only those changed.
fn apply_changes(
    conn: &Connection,
    model: &str,
    typed: &[(String, String)],
    id: i64,
    within: Option<&str>,
) -> Result<()> {
    same_columns(
        conn,
        typed,
        &versions_table(model),
        "valid_from, valid_to",
        "rename or drop that table",
    )?;
    let columns = names(typed);
    let columns = columns.as_slice();
    let versions = ident(&versions_table(model));
    let cols = list(columns, "");
    // NULL is a value like any other here, as GROUP BY sees it.
    let same = columns
        .iter()
        .map(|c| format!("o.{c} IS NOT DISTINCT FROM d.{c}", c = ident(c)))
        .collect::<Vec<_>>()
        .join(" AND ");
    db::execute(
        conn,
        &format!(
            "CREATE OR REPLACE TEMP TABLE micro_wh_history_diff AS
             SELECT {cols}, CAST(sum(micro_wh_n) AS BIGINT) AS micro_wh_n FROM (
                 SELECT {cols}, 1 AS micro_wh_n FROM {table} WHERE {within}
                 UNION ALL
                 SELECT {cols}, -1 AS micro_wh_n FROM {versions} WHERE valid_to IS NULL AND ({within})
             ) GROUP BY {cols} HAVING sum(micro_wh_n) <> 0;
             -- Joined before numbered: only the copies of rows to close are ranked.
             UPDATE {versions} SET valid_to = {id} WHERE rowid IN (
                 SELECT micro_wh_rowid FROM (
                     SELECT o.rowid AS micro_wh_rowid, d.micro_wh_n,
                            row_number() OVER (PARTITION BY {o_cols}) AS micro_wh_copy
                     FROM {versions} AS o
                     JOIN (SELECT * FROM temp.main.micro_wh_history_diff WHERE micro_wh_n < 0) AS d ON {same}
                     WHERE o.valid_to IS NULL
                 ) WHERE micro_wh_copy <= -micro_wh_n
             );
             INSERT INTO {versions} SELECT {id}, NULL, {cols} FROM (
                 SELECT *, unnest(range(micro_wh_n)) FROM temp.main.micro_wh_history_diff WHERE micro_wh_n > 0
             );
             DROP TABLE temp.main.micro_wh_history_diff;",
            table = ident(model),
            o_cols = list(columns, "o."),
            within = within.unwrap_or("true"),
        ),
    )
    .map_err(|e| {
        anyhow::Error::new(e).context(format!(
            "cannot record {model}'s rows in {}: if the model's columns changed, rename or drop that table",
            versions_table(model)
        ))
    })
}

/// Turns a history table holding a full copy of the model per refresh into versions: each
/// copy of a row is a version for each run of consecutive recorded refreshes that had it.
fn convert(conn: &Connection, model: &str, typed: &[(String, String)]) -> Result<()> {
    // Columns the model no longer has would be lost with the table, and a type changed
    // would cast its values: both are the user's to settle.
    same_columns(
        conn,
        typed,
        &history_view(model),
        "refresh_id",
        "rename or drop the history table",
    )?;
    let columns = names(typed);
    let columns = columns.as_slice();
    let (old, versions) = (ident(&history_view(model)), ident(&versions_table(model)));
    let cols = list(columns, "");
    db::execute(
        conn,
        &format!(
            "CREATE TABLE {versions} AS SELECT CAST(NULL AS BIGINT) AS valid_from, \
             CAST(NULL AS BIGINT) AS valid_to, {cols} FROM {old} LIMIT 0;
             INSERT INTO {REFRESHES} SELECT DISTINCT {name}, refresh_id FROM {old};
             INSERT INTO {versions}
             WITH ranks AS (
                 SELECT refresh_id, row_number() OVER (ORDER BY refresh_id) AS micro_wh_rank
                 FROM (SELECT DISTINCT refresh_id FROM {old})
             ), copies AS (
                 SELECT ranks.micro_wh_rank, {h_cols},
                        row_number() OVER (PARTITION BY h.refresh_id, {h_cols}) AS micro_wh_copy
                 FROM {old} AS h JOIN ranks USING (refresh_id)
             ), runs AS (
                 SELECT *, micro_wh_rank - row_number() OVER (PARTITION BY {cols}, micro_wh_copy ORDER BY micro_wh_rank) AS micro_wh_run
                 FROM copies
             ), spans AS (
                 SELECT {cols}, min(micro_wh_rank) AS micro_wh_first, max(micro_wh_rank) AS micro_wh_last
                 FROM runs GROUP BY {cols}, micro_wh_copy, micro_wh_run
             )
             SELECT f.refresh_id, n.refresh_id, {s_cols}
             FROM spans AS s JOIN ranks AS f ON f.micro_wh_rank = s.micro_wh_first
             LEFT JOIN ranks AS n ON n.micro_wh_rank = s.micro_wh_last + 1;
             DROP TABLE {old};",
            name = literal(model),
            h_cols = list(columns, "h."),
            s_cols = list(columns, "s."),
        ),
    )
    .map_err(|e| {
        anyhow::Error::new(e).context(format!(
            "cannot turn {} (a copy of {model} per refresh) into {}: if the model's columns \
             changed, rename or drop the history table",
            history_view(model),
            versions_table(model)
        ))
    })
}

/// Refuses `table` (less its own columns `own`) when its columns, names and types in order,
/// are not the model's `typed`: versions of other columns cannot record the model's rows.
fn same_columns(
    conn: &Connection,
    typed: &[(String, String)],
    table: &str,
    own: &str,
    what_to_do: &str,
) -> Result<()> {
    let kept = db::describe(
        conn,
        &format!("SELECT * EXCLUDE ({own}) FROM {}", ident(table)),
    )?;
    if kept != typed {
        let show = |c: &[(String, String)]| {
            c.iter()
                .map(|(n, t)| format!("{n} {t}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        anyhow::bail!(
            "{table} has the columns ({}), the gold model now ({}): the model's columns \
             changed; {what_to_do} (its rows are kept until you do)",
            show(&kept),
            show(typed)
        );
    }
    Ok(())
}

fn names(typed: &[(String, String)]) -> Vec<String> {
    typed.iter().map(|(n, _)| n.clone()).collect()
}

fn list(columns: &[String], prefix: &str) -> String {
    columns
        .iter()
        .map(|c| format!("{prefix}{}", ident(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Row = (Option<i32>, Option<String>);

    fn load(conn: &Connection, rows: &[Row]) {
        conn.execute_batch("DELETE FROM gold_t").unwrap();
        let mut app = conn.appender("gold_t").unwrap();
        for (a, b) in rows {
            app.append_row(duckdb::params![a, b]).unwrap();
        }
    }

    /// Refresh `id`'s rows as the history view gives them, and as they were, each sorted.
    fn snapshot(conn: &Connection, sql: &str) -> Vec<Row> {
        let mut rows = db::query_rows(conn, sql, [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.sort();
        rows
    }

    fn kinds(conn: &Connection) -> BTreeMap<String, String> {
        db::relation_kinds(conn).unwrap()
    }

    fn rows() -> impl Strategy<Value = Vec<Row>> {
        // Few distinct values, so rows repeat within and across refreshes.
        let row = (
            proptest::option::of(0..3i32),
            proptest::option::of(prop_oneof![Just("x".to_owned()), Just("y".to_owned())]),
        );
        proptest::collection::vec(row, 0..6)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        /// Every refresh's rows read back from the versions equal the table as it was, for
        /// versions kept refresh by refresh and for versions converted from full copies;
        /// an unchanged model adds nothing; a refresh that replaced only the rows of one key
        /// compares only those, unless a committed refresh since the model's last record
        /// changed it unrecorded.
        #[test]
        fn versions_give_back_every_refresh_rows(
            refreshes in proptest::collection::vec((rows(), 0..4u8), 1..8),
        ) {
            let conn = Connection::open_in_memory().unwrap();
            conn.execute_batch(
                "CREATE TABLE gold_t (a INTEGER, b VARCHAR);
                 CREATE TABLE copies (refresh_id BIGINT, a INTEGER, b VARCHAR);",
            ).unwrap();
            crate::warehouse::ensure_bookkeeping(&conn).unwrap();
            let mut last: Option<Vec<Row>> = None;
            let mut recorded = Vec::new();
            for (i, (rows, step)) in refreshes.iter().enumerate() {
                let id = i as i64 + 1;
                let key = i as i32 % 3;
                let (rows, changed) = match (step, &last) {
                    // Left unchanged: the previous refresh's rows.
                    (1, Some(last)) => (last.clone(), Changed::Nothing),
                    // Only the rows of one key replaced, as an incremental gold table's.
                    (2, Some(last)) => {
                        let mut now: Vec<Row> = last.iter().filter(|r| r.0 != Some(key)).cloned().collect();
                        now.extend(rows.iter().map(|(_, b)| (Some(key), b.clone())));
                        (now, Changed::Within(format!("a IN ({key})")))
                    }
                    _ => (rows.clone(), Changed::Anything),
                };
                load(&conn, &rows);
                conn.execute_batch(&format!(
                    "INSERT INTO refresh_log (id, started_at, status) VALUES ({id}, now()::TIMESTAMP, 'running')"
                )).unwrap();
                let commit = || conn.execute_batch(&format!(
                    "UPDATE refresh_log SET status = 'succeeded' WHERE id = {id}"
                )).unwrap();
                // Committed without recording the model (it was no gold model then, say).
                if *step == 3 && last.is_some() {
                    commit();
                    last = Some(rows);
                    continue;
                }
                let before: i64 = db::query_one(&conn, "SELECT count(*) FROM gold_t_versions").unwrap_or(0);
                // Left unchanged since the last commit, which recorded it: nothing to add.
                let unchanged = changed == Changed::Nothing && recorded.last() == Some(&(id - 1));
                let kinds = kinds(&conn);
                Recorder::new(&conn, id, &kinds, true).unwrap().record("gold_t", changed).unwrap();
                commit();
                if unchanged {
                    let after: i64 = db::query_one(&conn, "SELECT count(*) FROM gold_t_versions").unwrap();
                    prop_assert_eq!(before, after);
                }
                conn.execute_batch(&format!("INSERT INTO copies SELECT {id}, * FROM gold_t")).unwrap();
                recorded.push(id);
                last = Some(rows);
            }
            let listed: Vec<i64> = db::query_rows(
                &conn, "SELECT DISTINCT refresh_id FROM gold_t_history ORDER BY 1", [], |r| r.get(0),
            ).unwrap();
            let nonempty: Vec<i64> = db::query_rows(
                &conn, "SELECT DISTINCT refresh_id FROM copies ORDER BY 1", [], |r| r.get(0),
            ).unwrap();
            prop_assert_eq!(listed, nonempty, "the history lists the recorded refreshes that had rows");
            for &id in &recorded {
                let kept = snapshot(&conn, &format!("SELECT a, b FROM gold_t_history WHERE refresh_id = {id}"));
                let was = snapshot(&conn, &format!("SELECT a, b FROM copies WHERE refresh_id = {id}"));
                prop_assert_eq!(&kept, &was, "refresh {}", id);
            }

            // The same refreshes held as full copies by an earlier micro-wh, then converted.
            let old = Connection::open_in_memory().unwrap();
            old.execute_batch("CREATE TABLE gold_t (a INTEGER, b VARCHAR)").unwrap();
            crate::warehouse::ensure_bookkeeping(&old).unwrap();
            let mut copies = conn.prepare("SELECT refresh_id, a, b FROM copies").unwrap();
            let all: Vec<(i64, Option<i32>, Option<String>)> =
                copies.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect();
            old.execute_batch("CREATE TABLE gold_t_history (refresh_id BIGINT, a INTEGER, b VARCHAR)").unwrap();
            {
                let mut app = old.appender("gold_t_history").unwrap();
                for (id, a, b) in &all {
                    app.append_row(duckdb::params![id, a, b]).unwrap();
                }
            }
            load(&old, last.as_ref().unwrap());
            let next = refreshes.len() as i64 + 1;
            let old_kinds = kinds(&old);
            Recorder::new(&old, next, &old_kinds, true).unwrap().record("gold_t", Changed::Nothing).unwrap();
            for id in recorded.iter().copied().chain([next]) {
                let kept = snapshot(&old, &format!("SELECT a, b FROM gold_t_history WHERE refresh_id = {id}"));
                let mut was: Vec<Row> = all.iter().filter(|r| r.0 == id).map(|r| (r.1, r.2.clone())).collect();
                if id == next {
                    was = last.clone().unwrap();
                }
                was.sort();
                prop_assert_eq!(&kept, &was, "converted, refresh {}", id);
            }
        }
    }
}
