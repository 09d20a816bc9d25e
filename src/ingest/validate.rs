//! The row contract of a source in SQL: declared types (TRY_CAST), NOT NULL and checks, each
//! failure turned into a reason that names the column and the expected type or the check.

use anyhow::bail;
use duckdb::Connection;

use crate::db::{ident, literal};
use crate::error::Result;

/// One declared (or inferred) column.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Column {
    pub name: String,
    /// A DuckDB type such as `DOUBLE` or `DECIMAL(10,2)`.
    #[serde(rename = "type")]
    pub ty: String,
    pub not_null: bool,
}

impl Column {
    pub fn new(name: &str, ty: &str) -> Column {
        Column {
            name: name.to_owned(),
            ty: ty.to_owned(),
            not_null: false,
        }
    }
}

/// Parses `columns:` entries such as `VARCHAR NOT NULL`; `source` names the config key in errors.
pub fn parse_columns(pairs: &[(String, String)], source: &str) -> Result<Vec<Column>> {
    let mut columns = Vec::with_capacity(pairs.len());
    for (name, spec) in pairs {
        let words: Vec<&str> = spec.split_whitespace().collect();
        let (ty, not_null) = match words.as_slice() {
            [] => bail!("sources.{source}.columns.{name}: missing type"),
            [rest @ .., n, nn]
                if n.eq_ignore_ascii_case("not") && nn.eq_ignore_ascii_case("null") =>
            {
                (rest.join(" "), true)
            }
            all => (all.join(" "), false),
        };
        if ty.is_empty() {
            bail!("sources.{source}.columns.{name}: missing type before NOT NULL");
        }
        if columns.iter().any(|c: &Column| c.name == *name) {
            bail!("sources.{source}.columns.{name}: declared twice");
        }
        columns.push(Column {
            name: name.clone(),
            ty,
            not_null,
        });
    }
    Ok(columns)
}

/// Whether `check` may run under `TRY`, which turns an error it raises on a row (a cast of
/// that row's text) into a failure of that row instead of the file's. DuckDB refuses `TRY`
/// around a subquery or a volatile function (`random()`), in whatever form it is written,
/// so it is asked: the check is bound over NULLs of the file's `columns`. Such a check
/// raising an error still fails the file.
fn guardable(conn: &Connection, columns: &[Column], check: &str) -> bool {
    let nulls: Vec<String> = columns
        .iter()
        .map(|c| format!("CAST(NULL AS {}) AS {}", c.ty, ident(&c.name)))
        .chain(["CAST(NULL AS BIGINT) AS _line".to_owned()])
        .collect();
    let probe = format!(
        "SELECT TRY(({check}) IS NOT FALSE) FROM (SELECT {})",
        nulls.join(", ")
    );
    match conn.prepare(&probe) {
        Err(e) => !e.to_string().contains("TRY can not be used"),
        Ok(_) => true,
    }
}

/// Checks the types of a source's declared `columns` before any file is read: a misspelled
/// type is one error naming the column, not a failure of every file in the manifest. (Keys,
/// checks and partition expressions may name columns that are not declared, which only a
/// file has: they are checked per file.)
pub fn check_types(conn: &Connection, source: &str, columns: &[Column]) -> Result<()> {
    for c in columns {
        if let Err(e) = conn.prepare(&format!("SELECT CAST(NULL AS {})", c.ty)) {
            // DuckDB's message without the statement it quotes back.
            let e = e.to_string();
            bail!(
                "sources.{source}.columns.{}: `{}` is not a DuckDB type: {}",
                c.name,
                c.ty,
                e.lines().next().unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// Whether rows can fail the contract after the reader typed them (NOT NULL or checks).
pub fn has_constraints(columns: &[Column], checks: &[String]) -> bool {
    !checks.is_empty() || columns.iter().any(|c| c.not_null)
}

/// `SELECT _line, _raw, <columns>, _reason FROM <relation>`: `_reason` is NULL for a valid
/// row. With `cast`, the relation's columns are text (or any type) cast to the declared
/// types, and a value that does not cast is a failure, never a NULL. `pre_reason`, an SQL
/// expression over the relation `r`, refuses a row before anything else (a line that is not
/// a JSON object).
pub fn checked_select(
    conn: &Connection,
    relation: &str,
    columns: &[Column],
    checks: &[String],
    cast: bool,
    pre_reason: Option<&str>,
) -> String {
    let mut inner = Vec::new();
    let mut cast_errors = Vec::new();
    for c in columns {
        let col = format!("r.{}", ident(&c.name));
        if cast {
            let try_cast = format!("TRY_CAST({col} AS {})", c.ty);
            inner.push(format!("{try_cast} AS {}", ident(&c.name)));
            cast_errors.push(format!(
                "CASE WHEN {col} IS NOT NULL AND {try_cast} IS NULL THEN {} || left(CAST({col} AS VARCHAR), 80) || {} END",
                literal(&format!("column {}: '", c.name)),
                literal(&format!("' is not a valid {}", c.ty)),
            ));
        } else {
            inner.push(format!("{col} AS {}", ident(&c.name)));
        }
    }
    let cast_error = if cast_errors.is_empty() {
        "CAST(NULL AS VARCHAR)".to_owned()
    } else {
        format!("nullif(concat_ws('; ', {}), '')", cast_errors.join(", "))
    };
    let mut rules = Vec::new();
    // The same rules as one predicate: most rows pass, and DuckDB evaluates the reasons'
    // string building only for the rows that fail it.
    let mut passes = Vec::new();
    for c in columns.iter().filter(|c| c.not_null) {
        passes.push(format!("{} IS NOT NULL", ident(&c.name)));
        rules.push(format!(
            "CASE WHEN {} IS NULL THEN {} END",
            ident(&c.name),
            literal(&format!(
                "column {}: NULL in a NOT NULL column ({} NOT NULL)",
                c.name, c.ty
            ))
        ));
    }
    for check in checks {
        // SQL CHECK semantics: a predicate that is NULL (a NULL input) passes; NOT NULL is
        // declared on the column. A guarded check that raises an error on a row fails that
        // row: TRY turns the error into NULL, which `IS NOT FALSE` never gives otherwise.
        let verdict = if guardable(conn, columns, check) {
            format!("TRY(({check}) IS NOT FALSE)")
        } else {
            format!("(({check}) IS NOT FALSE)")
        };
        passes.push(format!("{verdict} IS TRUE"));
        rules.push(format!(
            "CASE {verdict} WHEN false THEN {} WHEN true THEN NULL ELSE {} END",
            literal(&format!("check failed: {check}")),
            literal(&format!(
                "check could not be evaluated (it raised an error on this row): {check}"
            ))
        ));
    }
    let rule_error = if rules.is_empty() {
        "CAST(NULL AS VARCHAR)".to_owned()
    } else {
        format!(
            "CASE WHEN {} THEN NULL ELSE nullif(concat_ws('; ', {}), '') END",
            passes.join(" AND "),
            rules.join(", ")
        )
    };
    let names: Vec<String> = columns.iter().map(|c| ident(&c.name)).collect();
    let mut inner_list = vec!["r._line".to_owned(), "r._raw".to_owned()];
    inner_list.extend(inner);
    let mut outer_list = vec!["_line".to_owned(), "_raw".to_owned()];
    outer_list.extend(names);
    format!(
        "SELECT {outer}, coalesce(_pre_reason, _cast_error, CASE WHEN _cast_error IS NULL THEN {rule_error} END) AS _reason
         FROM (SELECT {inner}, {pre} AS _pre_reason, {cast_error} AS _cast_error FROM {relation} r)",
        outer = outer_list.join(", "),
        inner = inner_list.join(", "),
        pre = pre_reason.unwrap_or("CAST(NULL AS VARCHAR)"),
    )
}

/// The columns DuckDB infers for `relation` (a table function call such as `read_csv(…)`),
/// nested types kept as JSON; errors name `file`.
pub fn describe(
    conn: &duckdb::Connection,
    relation: &str,
    file: &std::path::Path,
) -> Result<Vec<Column>> {
    use anyhow::Context;
    let mut stmt = crate::db::prepare(conn, &format!("DESCRIBE SELECT * FROM {relation}"))?;
    let columns = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .map(|r| r.map(|(name, ty)| Column::new(&name, &lake_type(&ty))))
        .collect::<std::result::Result<Vec<_>, _>>()
        .with_context(|| format!("cannot infer the columns of {}", file.display()))?;
    Ok(columns)
}

/// Maps a type DuckDB inferred to the type the lake keeps: nested values stay JSON text,
/// which silver SQL extracts from.
pub fn lake_type(inferred: &str) -> String {
    let upper = inferred.to_ascii_uppercase();
    if upper.starts_with("STRUCT") || upper.starts_with("MAP") || upper.ends_with(']') {
        "JSON".to_owned()
    } else {
        inferred.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_null_and_multiword_types_parse() {
        let cols = parse_columns(
            &[
                ("a".into(), "VARCHAR NOT NULL".into()),
                ("b".into(), "DECIMAL(10, 2)".into()),
                ("c".into(), "timestamp not null".into()),
            ],
            "s",
        )
        .unwrap();
        assert_eq!(
            cols[0],
            Column {
                name: "a".into(),
                ty: "VARCHAR".into(),
                not_null: true
            }
        );
        assert_eq!(cols[1].ty, "DECIMAL(10, 2)");
        assert!(!cols[1].not_null && cols[2].not_null);
        let err = parse_columns(&[("x".into(), "NOT NULL".into())], "s").unwrap_err();
        assert!(err.to_string().contains("sources.s.columns.x"), "{err}");
    }

    #[test]
    fn nested_types_become_json() {
        assert_eq!(lake_type("STRUCT(a BIGINT)"), "JSON");
        assert_eq!(lake_type("BIGINT[]"), "JSON");
        assert_eq!(lake_type("DOUBLE"), "DOUBLE");
    }
}
