//! `{{ name }}` placeholders in SQL files, filled from the configuration.
//!
//! Views over the lake must name the lake's path; the path lives in `warehouse.yaml`,
//! so SQL files refer to it as `{{ lake_dir }}` instead of repeating it.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::bail;

use crate::config::Config;
use crate::error::Result;

#[derive(Debug, Clone, Default)]
pub struct Vars(BTreeMap<String, String>);

impl Vars {
    /// `{{ lake_dir }}` from the configuration, plus `extra` (such as the generators'
    /// `{{ <dataset>.<key> }}` settings, which the caller resolves).
    pub fn new(config: &Config, extra: BTreeMap<String, String>) -> Vars {
        let lake_dir = config
            .paths
            .lake_dir
            .to_string_lossy()
            .replace('\\', "/")
            .replace('\'', "''");
        let mut vars = extra;
        vars.insert("lake_dir".to_owned(), lake_dir);
        Vars(vars)
    }

    /// Replaces every `{{ name }}` in `text`; an unknown name is an error naming `file`.
    pub fn render(&self, text: &str, file: &Path) -> Result<String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            let Some(close) = rest[open..].find("}}") else {
                bail!("{}: `{{{{` without a closing `}}}}`", file.display());
            };
            let name = rest[open + 2..open + close].trim();
            let Some(value) = self.0.get(name) else {
                let known: Vec<&str> = self.0.keys().map(String::as_str).collect();
                bail!(
                    "{}: unknown placeholder {{{{ {name} }}}} (known: {})",
                    file.display(),
                    known.join(", ")
                );
            };
            out.push_str(&rest[..open]);
            out.push_str(value);
            rest = &rest[open + close + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_known_and_names_unknown() {
        let vars = Vars::new(
            &Config::default(),
            BTreeMap::from([("events.max_team_id".to_owned(), "1000".to_owned())]),
        );
        let sql = vars
            .render(
                "SELECT '{{ lake_dir }}/x', {{events.max_team_id}}",
                Path::new("a.sql"),
            )
            .unwrap();
        assert_eq!(sql, "SELECT 'data/x', 1000");
        let err = vars
            .render("{{ nope }}", Path::new("a.sql"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("a.sql") && err.contains("nope"), "{err}");
    }
}
