//! Progress bars for long work; they draw only when stderr is a terminal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use duckdb::Connection;
use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// Where long work reports its progress. The command layer decides whether bars are shown;
/// the code doing the work only asks for bars.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    hidden: bool,
}

impl Progress {
    pub fn new(hidden: bool) -> Progress {
        Progress { hidden }
    }

    /// No bars at all (tests, library use).
    pub fn hidden() -> Progress {
        Progress { hidden: true }
    }

    fn target(&self) -> ProgressDrawTarget {
        // indicatif's stderr target already hides itself when stderr is not a terminal.
        if self.hidden {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        }
    }

    /// A bar counting rows, with throughput.
    pub fn rows_bar(&self, total: u64, label: &str) -> ProgressBar {
        rows_bar(total, label, self.target())
    }

    /// A bar counting bytes read, with throughput.
    pub fn bytes_bar(&self, total: u64, label: &str) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(Some(total), self.target());
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}",
            )
            .expect("valid template"),
        );
        bar.set_prefix(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// A bar counting the steps of a multi-step job; the message names the current step.
    pub fn steps_bar(&self, total: u64, label: &str) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(Some(total), self.target());
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{label} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} {{msg}}"
            ))
            .expect("valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}

fn rows_bar(total: u64, label: &str, target: ProgressDrawTarget) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), target);
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
