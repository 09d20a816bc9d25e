#!/usr/bin/env python3
"""micro-wh report on a 10M-event warehouse, against reading the gold tables and the lake, in one run.

Usage (from the project root, after `cargo build --release`):
    python3 benches/report_bench.py [--rows 10000000] [--runs 5] [--work /tmp/micro-wh-report-bench] [--reuse]

It generates an events lake of --rows rows and refreshes the warehouse once, then times, each
in its own process, --runs times (median wall seconds, peak RSS from wait4):
  * micro-wh report                                   (the page: gold and bookkeeping tables)
  * micro-wh sql "<every gold table's count(*)>"      (reference: start, open the warehouse, touch gold)
  * micro-wh sql "<count(DISTINCT user_id) of bronze_events>"  (reference: one query over the lake)
It prints the figures, the ratios and the 2 s target; it asserts nothing.
"""
import argparse
import os
import statistics
import tempfile

from bench_util import events_project, require_binary, run


def median_of(args, cwd, runs):
    results = [run(args, cwd) for _ in range(runs)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results), results[-1][2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "micro-wh-report-bench"))
    ap.add_argument("--reuse", action="store_true", help="time the warehouse left in --work by an earlier run")
    args = ap.parse_args()
    require_binary()
    tg = tr = float("nan")
    if not (args.reuse and os.path.exists(os.path.join(args.work, "warehouse.duckdb"))):
        events_project(args.work, args.rows)
        tg, _, _ = run(["-q", "generate", "events"], args.work)
        tr, _, _ = run(["-q", "refresh", "--no-export"], args.work)
    gold = ["gold_weekly_active_teams", "gold_daily_active_users", "gold_event_mix"]
    touch_gold = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in gold)
    t_report, r_report, out = median_of(["report"], args.work, args.runs)
    t_gold, r_gold, _ = median_of(["sql", touch_gold], args.work, args.runs)
    t_lake, r_lake, _ = median_of(["sql", "SELECT count(DISTINCT user_id) FROM bronze_events"], args.work, args.runs)
    size = os.path.getsize(os.path.join(args.work, "exports", "report.html"))
    built = "reused from an earlier run" if tg != tg else f"generated in {tg:.1f} s, refreshed in {tr:.1f} s"
    print(f"lake of {args.rows:,} events ({built}); median of {args.runs} runs")
    print(f"report                 {t_report:7.3f} s {r_report:7.0f} MiB   ({size / 1024:.0f} KiB: {out.strip()})")
    print(f"reference: gold counts {t_gold:7.3f} s {r_gold:7.0f} MiB")
    print(f"reference: lake query  {t_lake:7.3f} s {r_lake:7.0f} MiB")
    print(f"report / gold counts: {t_report / t_gold:.2f}x; report / lake query: {t_report / t_lake:.2f}x; "
          f"target 2 s: {'met' if t_report < 2 else 'MISSED'} ({t_report / 2:.0%} of it)")


if __name__ == "__main__":
    main()
