//! Progress bars for long work; they draw only when stderr is a terminal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use duckdb::Connection;
use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

fn target(quiet: bool) -> ProgressDrawTarget {
    // indicatif's stderr target already hides itself when stderr is not a terminal.
    if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    }
}

/// A bar counting rows, with throughput.
pub fn rows_bar(total: u64, label: &str, quiet: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), target(quiet));
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} rows ({rate}, eta {eta}) {msg}",
        )
        .expect("valid template")
        .with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{} rows/s", HumanCount(state.per_sec() as u64));
        }),
    );
    bar.set_prefix(label.to_owned());
    bar
}

/// A bar counting steps of a multi-step job; the message names the current step.
pub fn steps_bar(total: u64, quiet: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), target(quiet));
    bar.set_style(
        ProgressStyle::with_template("refresh [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Runs `work` (which uses `conn`) while a watcher thread shows DuckDB's own estimate
/// of the running query's progress in `bar`'s message after `label`.
pub fn with_query_progress<T>(
    conn: &Connection,
    bar: &ProgressBar,
    label: &str,
    work: impl FnOnce() -> T,
) -> T {
    bar.set_message(label.to_owned());
    if bar.is_hidden() {
        return work();
    }
    let handle = conn.progress_handle();
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (done, bar, label) = (done.clone(), bar.clone(), label.to_owned());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(pct) = handle.query_progress().percentage() {
                    bar.set_message(format!("{label} ({pct:.0}%)"));
                }
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };
    let result = work();
    done.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    result
}
