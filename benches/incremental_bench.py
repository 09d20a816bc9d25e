#!/usr/bin/env python3
"""micro-wh incremental refresh against a full refresh of the same lake, in one run.

Usage (from the project root, after `cargo build --release`):
    python3 benches/incremental_bench.py [--rows 10000000] [--day-rows 10000] [--work /tmp/micro-wh-incr-bench]

It generates an events lake of --rows rows, builds the warehouse once, appends --day-rows rows
into one day (a second config whose start/end span that day), then times, each in its own
process (wall seconds, peak RSS from wait4):
  * micro-wh refresh --no-export          (incremental: only the appended day's partitions)
  * micro-wh refresh --no-export --full   (every model rebuilt whole, same lake)
  * micro-wh refresh --no-export          (nothing changed)
It prints the figures and the ratio incremental / full; it asserts nothing.
"""
import argparse
import os
import tempfile

from bench_util import events_project, require_binary, run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--day-rows", type=int, default=10_000)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "micro-wh-incr-bench"))
    args = ap.parse_args()
    require_binary()
    events_project(args.work, args.rows)
    with open(os.path.join(args.work, "oneday.yaml"), "w") as f:
        f.write(f'generate:\n  events:\n    rows: {args.day_rows}\n'
                f'    start: "2025-12-31 00:00:00"\n    end: "2025-12-31 23:59:59"\n')
    run(["-q", "generate", "events"], args.work)
    run(["-q", "refresh", "--no-export"], args.work)
    run(["-q", "--config", "oneday.yaml", "generate", "events", "--mode", "append", "--seed", "77"], args.work)
    ti, ri, out = run(["refresh", "--no-export"], args.work)
    modes = [l.split()[0] + ": " + " ".join(l.split()[1:4]) for l in out.splitlines() if "incremental (" in l]
    tf, rf, _ = run(["-q", "refresh", "--no-export", "--full"], args.work)
    tu, ru, _ = run(["-q", "refresh", "--no-export"], args.work)
    print(f"lake {args.rows} events + {args.day_rows} appended into one day")
    print(f"incremental {ti:7.2f} s {ri:7.0f} MiB   ({'; '.join(modes)})")
    print(f"full        {tf:7.2f} s {rf:7.0f} MiB")
    print(f"unchanged   {tu:7.2f} s {ru:7.0f} MiB")
    print(f"incremental / full: time {ti / tf:.3f}x ({100 * ti / tf:.1f}%), RSS {ri / rf:.2f}x")


if __name__ == "__main__":
    main()
