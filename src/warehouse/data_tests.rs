//! Data tests declared beside the models: each compiles to a query counting offending rows.

use std::path::Path;

use anyhow::Context;
use duckdb::Connection;
use serde::Deserialize;

use super::template::Vars;
use crate::db::{self, ident, literal};
use crate::error::Result;

/// One declared test, as written in `models.yaml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DataTest {
    /// No NULL in any of these columns (one check per column).
    NotNull(Vec<String>),
    /// No two rows share the values of these columns.
    Unique(Vec<String>),
    /// Every non-NULL value of `column` is one of `values`.
    AcceptedValues { column: String, values: Vec<String> },
    /// The model has at least `min` (and at most `max`) rows.
    RowCount {
        #[serde(default)]
        min: Option<u64>,
        #[serde(default)]
        max: Option<u64>,
    },
    /// A boolean SQL expression that must be true for every row (NULL counts as false).
    Expression(String),
    /// This model (rows rejected from silver) holds at most `max_fraction` of the rows of
    /// `of`: a silver layer rejecting most of its input fails instead of passing quietly.
    RejectRate {
        of: String,
        #[serde(default = "default_max_reject_fraction")]
        max_fraction: f64,
    },
}

fn default_max_reject_fraction() -> f64 {
    0.01
}

/// A model's row count as an SQL expression.
pub type RowCount<'a> = &'a dyn Fn(&str) -> String;

/// For a `unique` test on these columns, a cheaper query that is zero exactly when the test's
/// own query is (kept key hashes), when the refresh has one.
pub type UniqueBy<'a> = &'a dyn Fn(&[String]) -> Option<String>;

/// No cheaper `unique` query: the test reads the model.
pub fn read_unique(_: &[String]) -> Option<String> {
    None
}

/// The row count of `model`, read from it.
pub fn read_count(model: &str) -> String {
    format!("(SELECT count(*) FROM {})", ident(model))
}

/// A single check, ready to run.
#[derive(Debug, Clone)]
pub struct Check {
    pub model: String,
    pub name: String,
    query: Query,
    bounds: Option<(Option<u64>, Option<u64>)>,
    /// When `query` is a cheaper stand-in: the exact query, run only when it finds rows.
    confirm: Option<String>,
    /// Run over the changed partitions only.
    scoped: bool,
    /// Its outcome depends on the model's rows alone (not on other relations an expression
    /// may read, nor on another model's size).
    self_contained: bool,
}

/// What a check asks DuckDB: one BIGINT, the number of offending rows (for row_count: the
/// row count, checked against `bounds`).
#[derive(Debug, Clone)]
enum Query {
    /// The rows of `relation` meeting `condition`: checks of one relation share a scan.
    Count {
        relation: String,
        condition: String,
    },
    /// A value known without asking (a row count the refresh keeps).
    Value(i64),
    Sql(String),
}

#[derive(Debug, Clone)]
pub struct CheckOutcome {
    pub model: String,
    pub name: String,
    pub failing_rows: u64,
    pub passed: bool,
    pub detail: String,
}

impl DataTest {
    /// Fills placeholders in expressions.
    pub fn rendered(self, vars: &Vars, file: &Path) -> Result<DataTest> {
        Ok(match self {
            DataTest::Expression(e) => DataTest::Expression(vars.render(&e, file)?),
            other => other,
        })
    }

    /// Tests of single rows (not_null, accepted_values, expression): they can look at just
    /// the rows that changed. The others hold over the whole table.
    pub fn is_row_level(&self) -> bool {
        matches!(
            self,
            DataTest::NotNull(_) | DataTest::AcceptedValues { .. } | DataTest::Expression(_)
        )
    }

    /// The checks of this test on `model`. `changed`, a relation holding the model's rows of
    /// the changed partitions, narrows the row-level tests to them; whole-table invariants
    /// (unique, row_count, reject_rate) always hold over the whole model, whose row count
    /// `count` gives as SQL (read, or kept per partition by the refresh), as `unique` may
    /// give a unique test's.
    pub fn checks(
        &self,
        model: &str,
        changed: Option<&str>,
        count: RowCount<'_>,
        unique: UniqueBy<'_>,
    ) -> Vec<Check> {
        let whole = ident(model);
        let changed = changed.filter(|_| self.is_row_level());
        let table = changed.map_or_else(|| whole.clone(), |c| format!("{c} AS {whole}"));
        let check = |name: String, query: Query| Check {
            model: model.to_owned(),
            name,
            query,
            bounds: None,
            confirm: None,
            scoped: changed.is_some(),
            self_contained: !matches!(self, DataTest::Expression(_) | DataTest::RejectRate { .. }),
        };
        let counting = |name: String, condition: String| {
            check(
                name,
                Query::Count {
                    relation: table.clone(),
                    condition,
                },
            )
        };
        match self {
            DataTest::NotNull(columns) => columns
                .iter()
                .map(|c| counting(format!("not_null({c})"), format!("{} IS NULL", ident(c))))
                .collect(),
            DataTest::Unique(columns) => {
                let exact = duplicates_among(&whole, columns);
                let name = format!("unique({})", columns.join(", "));
                match unique(columns) {
                    Some(cheaper) => vec![Check {
                        confirm: Some(exact),
                        ..check(name, Query::Sql(cheaper))
                    }],
                    None => vec![check(name, Query::Sql(exact))],
                }
            }
            DataTest::AcceptedValues { column, values } => {
                let list = values
                    .iter()
                    .map(|v| literal(v))
                    .collect::<Vec<_>>()
                    .join(", ");
                vec![counting(
                    format!("accepted_values({column})"),
                    format!("{} NOT IN ({list})", ident(column)),
                )]
            }
            DataTest::RowCount { min, max } => vec![Check {
                model: model.to_owned(),
                name: format!(
                    "row_count({}{})",
                    min.map(|m| format!(">= {m}")).unwrap_or_default(),
                    max.map(|m| format!("{}<= {m}", if min.is_some() { ", " } else { "" }))
                        .unwrap_or_default()
                ),
                query: match count(model) {
                    // A count the refresh keeps or has just taken: no statement to ask it.
                    known if known.parse::<i64>().is_ok() => Query::Value(known.parse().unwrap()),
                    sql => Query::Sql(format!("SELECT {sql}")),
                },
                bounds: Some((*min, *max)),
                confirm: None,
                scoped: false,
                self_contained: true,
            }],
            DataTest::RejectRate { of, max_fraction } => vec![check(
                format!("reject_rate(<= {} % of {of})", max_fraction * 100.0),
                // Fails with this model's row count when the fraction is exceeded.
                Query::Sql(format!(
                    "SELECT CASE WHEN {rows} > {max_fraction} * {} THEN {rows} ELSE 0 END",
                    count(of),
                    rows = count(model)
                )),
            )],
            DataTest::Expression(expr) => vec![counting(
                format!("expression({expr})"),
                format!("({expr}) IS NOT TRUE"),
            )],
        }
    }
}

/// The rows of `relation` that share their `columns` with another, as SQL: the query of a
/// `unique` test.
pub fn duplicates_among(relation: &str, columns: &[String]) -> String {
    let cols = columns
        .iter()
        .map(|c| ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT coalesce(sum(n), 0)::BIGINT FROM \
         (SELECT count(*) AS n FROM {relation} GROUP BY {cols} HAVING count(*) > 1)"
    )
}

impl Check {
    /// The DuckDB query counting offending rows (for another engine to transpile).
    pub fn sql(&self) -> String {
        match &self.query {
            Query::Count {
                relation,
                condition,
            } => format!("SELECT count(*) FROM {relation} WHERE {condition}"),
            Query::Value(value) => format!("SELECT {value}"),
            Query::Sql(sql) => sql.clone(),
        }
    }

    /// For row_count: the bounds the query's value must lie within.
    pub fn bounds(&self) -> Option<(Option<u64>, Option<u64>)> {
        self.bounds
    }

    /// Whether the check still holds, unrun, on a model none of whose rows changed since it
    /// last passed: a scoped check has no row to test, and a whole-model check that reads
    /// nothing but the model's rows would read the same rows again (binding a view over the
    /// whole lake just to find that costs more than the answer).
    pub fn holds_when_unchanged(&self) -> bool {
        self.scoped || self.self_contained
    }

    /// The outcome of a check that holds unrun (see `holds_when_unchanged`).
    pub fn nothing_changed(&self) -> CheckOutcome {
        CheckOutcome {
            model: self.model.clone(),
            name: self.name.clone(),
            failing_rows: 0,
            passed: true,
            detail: "no changed partitions".to_owned(),
        }
    }

    pub fn run(&self, conn: &Connection) -> Result<CheckOutcome> {
        Ok(run_all(conn, std::slice::from_ref(self))?.remove(0))
    }

    /// The outcome of this check whose query gave `value`, confirmed by the exact query when
    /// a cheaper one found rows.
    fn outcome(&self, conn: &Connection, mut value: u64) -> Result<CheckOutcome> {
        if let (Some(exact), true) = (&self.confirm, value > 0) {
            value = db::query_one::<i64>(conn, exact)? as u64;
        }
        let (failing_rows, detail) = match self.bounds {
            Some((min, max)) => {
                let ok = min.is_none_or(|m| value >= m) && max.is_none_or(|m| value <= m);
                (u64::from(!ok), format!("{value} rows"))
            }
            None if self.scoped => (
                value,
                format!("{value} failing rows in the changed partitions"),
            ),
            None => (value, format!("{value} failing rows")),
        };
        Ok(CheckOutcome {
            model: self.model.clone(),
            name: self.name.clone(),
            failing_rows,
            passed: failing_rows == 0,
            detail,
        })
    }
}

/// Runs `checks`, those counting rows of the same relation in one scan (`count(*) FILTER`):
/// a statement costs about a millisecond of DuckDB's own work whatever it reads, and an
/// incremental refresh's checks each read a few thousand rows. (One statement of scalar
/// subqueries would cost more: DuckDB plans each as a join.)
pub fn run_all(conn: &Connection, checks: &[Check]) -> Result<Vec<CheckOutcome>> {
    let mut values: Vec<Option<i64>> = vec![None; checks.len()];
    let mut relations: Vec<&str> = Vec::new();
    for check in checks {
        if let Query::Count { relation, .. } = &check.query {
            if !relations.contains(&relation.as_str()) {
                relations.push(relation);
            }
        }
    }
    for relation in relations {
        let of_relation: Vec<(usize, &str)> = checks
            .iter()
            .enumerate()
            .filter_map(|(i, check)| match &check.query {
                Query::Count {
                    relation: r,
                    condition,
                } if r == relation => Some((i, condition.as_str())),
                _ => None,
            })
            .collect();
        let counts: Vec<String> = of_relation
            .iter()
            .map(|(_, condition)| format!("count(*) FILTER (WHERE {condition})"))
            .collect();
        let sql = format!("SELECT {} FROM {relation}", counts.join(", "));
        let counted: Vec<i64> = db::query_row(conn, &sql, |row| {
            (0..of_relation.len()).map(|i| row.get(i)).collect()
        })
        .with_context(|| {
            // Running each alone instead would not tell which: an error while running aborts
            // the refresh's transaction, and every query after it fails for that.
            let names: Vec<&str> = of_relation
                .iter()
                .map(|(i, _)| checks[*i].name.as_str())
                .collect();
            format!("one of the tests {} does not run", names.join(", "))
        })?;
        for ((i, _), value) in of_relation.into_iter().zip(counted) {
            values[i] = Some(value);
        }
    }
    checks
        .iter()
        .zip(values)
        .map(|(check, value)| {
            let value = match (value, &check.query) {
                (Some(value), _) => value,
                (None, Query::Value(value)) => *value,
                (None, _) => db::query_one::<i64>(conn, &check.sql())?,
            };
            check.outcome(conn, value as u64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_forms() {
        let yaml =
            "- not_null: [a, b]\n- unique: [a]\n- accepted_values: {column: c, values: [x, y]}\n\
                    - row_count: {min: 1}\n- expression: a <= 10\n";
        let tests: Vec<DataTest> = serde_yaml::with::singleton_map_recursive::deserialize(
            serde_yaml::Deserializer::from_str(yaml),
        )
        .unwrap();
        assert_eq!(tests.len(), 5);
        assert_eq!(
            tests[3],
            DataTest::RowCount {
                min: Some(1),
                max: None
            }
        );
        assert_eq!(
            tests[0].checks("m", None, &read_count, &read_unique).len(),
            2
        );
    }

    #[test]
    fn checks_count_offending_rows() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE m AS SELECT * FROM (VALUES (1, 'x'), (1, 'y'), (NULL, 'z')) t(a, c)",
        )
        .unwrap();
        let run = |t: DataTest| {
            t.checks("m", None, &read_count, &read_unique)
                .iter()
                .map(|c| c.run(&conn).unwrap().failing_rows)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            run(DataTest::NotNull(vec!["a".into(), "c".into()])),
            vec![1, 0]
        );
        assert_eq!(
            run(DataTest::Unique(vec!["a".into()])),
            vec![2],
            "both rows with a = 1"
        );
        assert_eq!(
            run(DataTest::AcceptedValues {
                column: "c".into(),
                values: vec!["x".into(), "y".into()]
            }),
            vec![1]
        );
        assert_eq!(
            run(DataTest::RowCount {
                min: Some(4),
                max: None
            }),
            vec![1]
        );
        assert_eq!(
            run(DataTest::RowCount {
                min: Some(1),
                max: Some(3)
            }),
            vec![0]
        );
        assert_eq!(
            run(DataTest::Expression("a <= 1".into())),
            vec![1],
            "NULL counts as failing"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Checks of one relation counted together in one scan give what each check's own
        /// query (the one another engine runs) gives alone, whatever the rows.
        #[test]
        fn checks_sharing_a_scan_count_as_each_alone(
            rows in proptest::collection::vec(
                (proptest::option::of(0i64..4), proptest::option::of("[xyz]")),
                0..12,
            ),
        ) {
            let conn = Connection::open_in_memory().unwrap();
            conn.execute_batch("CREATE TABLE m (a BIGINT, c VARCHAR); CREATE TABLE n AS SELECT * FROM m")
                .unwrap();
            for (a, c) in &rows {
                conn.execute("INSERT INTO m VALUES (?, ?)", duckdb::params![a, c]).unwrap();
                conn.execute("INSERT INTO n VALUES (?, ?)", duckdb::params![a.map(|v| 3 - v), c]).unwrap();
            }
            let tests = [
                DataTest::NotNull(vec!["a".into(), "c".into()]),
                DataTest::AcceptedValues { column: "c".into(), values: vec!["x".into(), "3".into()] },
                DataTest::Expression("a <= 2".into()),
                DataTest::Unique(vec!["c".into()]),
            ];
            let checks: Vec<Check> = ["m", "n"]
                .iter()
                .flat_map(|model| {
                    tests.iter().flat_map(|t| t.checks(model, None, &read_count, &read_unique))
                })
                .collect();
            let together: Vec<u64> = run_all(&conn, &checks)
                .unwrap()
                .iter()
                .map(|o| o.failing_rows)
                .collect();
            let alone: Vec<u64> = checks
                .iter()
                .map(|c| db::query_one::<i64>(&conn, &c.sql()).unwrap() as u64)
                .collect();
            proptest::prop_assert_eq!(together, alone);
        }
    }
}
