//! Deterministic crash points for tests: `MICRO_WH_FAULT=<point>` aborts the process there,
//! as a kill at that instant would, so tests prove recovery without racing a timer.
//! `MICRO_WH_PAUSE=<point>` instead holds the process there (locks and all) while the file
//! `MICRO_WH_PAUSE_FILE` exists, so a test can run another command against it mid-way.
//! `MICRO_WH_FAIL=<point>` makes a fallible step ([`fail`]) return an error there, as a full
//! disk or a refused permission would, so tests prove what its caller does with the error.

/// Aborts the process when `MICRO_WH_FAULT` names this point; pauses when `MICRO_WH_PAUSE` does.
pub fn point(name: &str) {
    if std::env::var("MICRO_WH_FAULT").is_ok_and(|v| v == name) {
        eprintln!("MICRO_WH_FAULT: aborting at {name}");
        std::process::abort();
    }
    if std::env::var("MICRO_WH_PAUSE").is_ok_and(|v| v == name) {
        if let Some(file) = std::env::var_os("MICRO_WH_PAUSE_FILE") {
            let file = std::path::PathBuf::from(file);
            if std::fs::write(&file, name).is_ok() {
                eprintln!(
                    "MICRO_WH_PAUSE: holding at {name} until {} is removed",
                    file.display()
                );
                while file.exists() {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        }
    }
}

/// [`point`], and an error when `MICRO_WH_FAIL` names this point.
pub fn fail(name: &str) -> anyhow::Result<()> {
    point(name);
    if std::env::var("MICRO_WH_FAIL").is_ok_and(|v| v == name) {
        anyhow::bail!("MICRO_WH_FAIL: failing at {name}");
    }
    Ok(())
}
