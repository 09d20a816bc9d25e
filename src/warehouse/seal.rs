//! Whether anything wrote the warehouse file since the last committed refresh closed it.
//!
//! If nothing did, its tables are exactly as that refresh left them, and a refresh may compare
//! only what it changes itself (a gold table's history, `unique` on an incremental table). A
//! migration, `micro-wh sql` or the DuckDB CLI editing a gold table breaks that premise, and
//! none of them says so; the file does. So a committed refresh, once the file is closed,
//! notes its size and modification time (and its WAL's) beside it, and the next refresh
//! trusts its own records only when the file is still that. A missing or unreadable note
//! means "written since": the refresh compares whole, which costs time, never rows.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::error::Result;

/// The note beside `warehouse`.
fn note_path(warehouse: &Path) -> PathBuf {
    let mut name = warehouse.file_name().unwrap_or_default().to_os_string();
    name.push(".refreshed");
    warehouse.with_file_name(name)
}

/// The size and modification time (ns) of `warehouse` and of its WAL (absent: none).
fn state(warehouse: &Path) -> Result<String> {
    let stamp = |path: &Path| -> Result<String> {
        match std::fs::metadata(path) {
            Ok(m) => {
                let modified = m
                    .modified()?
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos();
                Ok(format!("{} {modified}", m.len()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok("none".to_owned()),
            Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display()))),
        }
    };
    let mut wal = warehouse.as_os_str().to_os_string();
    wal.push(".wal");
    Ok(format!(
        "{}\n{}\n",
        stamp(warehouse)?,
        stamp(Path::new(&wal))?
    ))
}

/// Notes the warehouse file as the refresh that committed and closed it left it.
pub fn seal(warehouse: &Path) -> Result<()> {
    let note = note_path(warehouse);
    let written = note.with_extension("refreshed.tmp");
    std::fs::write(&written, state(warehouse)?)
        .and_then(|()| std::fs::rename(&written, &note))
        .with_context(|| format!("cannot write {}", note.display()))
}

/// Whether the warehouse file is as the last sealed refresh left it.
pub fn untouched(warehouse: &Path) -> bool {
    match (
        std::fs::read_to_string(note_path(warehouse)),
        state(warehouse),
    ) {
        (Ok(noted), Ok(now)) => noted == now,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_write_after_the_seal_shows() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("w.duckdb");
        assert!(!untouched(&db), "no note, no file");
        std::fs::write(&db, b"one").unwrap();
        assert!(!untouched(&db), "no note");
        seal(&db).unwrap();
        assert!(untouched(&db));
        std::fs::write(dir.path().join("w.duckdb.wal"), b"x").unwrap();
        assert!(!untouched(&db), "a WAL appeared");
        std::fs::remove_file(dir.path().join("w.duckdb.wal")).unwrap();
        assert!(untouched(&db));
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&db, b"two").unwrap();
        assert!(!untouched(&db), "same size, written again");
        std::fs::write(note_path(&db), b"not a note").unwrap();
        assert!(!untouched(&db), "an unreadable note");
    }
}
