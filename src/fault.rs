//! Deterministic crash points for tests: `MICRO_WH_FAULT=<point>` aborts the process there,
//! as a kill at that instant would, so tests prove recovery without racing a timer.

/// Aborts the process when `MICRO_WH_FAULT` names this point.
pub fn point(name: &str) {
    if std::env::var("MICRO_WH_FAULT").is_ok_and(|v| v == name) {
        eprintln!("MICRO_WH_FAULT: aborting at {name}");
        std::process::abort();
    }
}
