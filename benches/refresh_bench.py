#!/usr/bin/env python3
"""micro-wh refresh costs over one events lake, every figure and ratio from the same run.

Usage (from the project root, after `cargo build --release`):
    python3 benches/refresh_bench.py [--rows 10000000] [--day-rows 10000] [--work /tmp/micro-wh-refresh-bench]

It generates an events lake of --rows rows and builds the warehouse once, then times, each in its
own process (wall seconds, peak RSS from wait4):
  * the plain DuckDB script benches/plain_refresh.sql (the seed's minimal refresh: bronze view,
    silver view that casts and drops NULL ids and invalid JSON, no dedup, the three gold
    aggregates, three Parquet exports), run by the same engine (`micro-wh sql --in-memory -f`)
  * micro-wh refresh --full               (every table rebuilt, tested, historized, exported;
                                           silver, validated once per partition, is read from the lake)
  * micro-wh refresh --revalidate         (--full, and every silver partition rewritten and retested)
then appends --day-rows rows into one day and times
  * the plain DuckDB script benches/plain_one_day.sql, told which day changed (validates and
    deduplicates the day into one silver Parquet file, recomputes that day's and week's gold rows
    over the plain script's gold tables, exports them; no change detection, tests, log or history):
    the least a refresh after that append can do, best of two runs
  * micro-wh refresh                      (incremental: only the appended day's partitions)
  * micro-wh refresh                      (nothing changed)
  * micro-wh compact events, then micro-wh refresh (the models must say `unchanged`)
It prints the figures and the ratios full / script, incremental / full and incremental / plain
one-day script; it asserts nothing.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.path.join(TARGET, "release", "micro-wh")


def run(args, cwd):
    """Runs micro-wh; returns (seconds, peak RSS MiB, stdout). Fails loudly if it fails."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen([BIN] + args, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"micro-wh {' '.join(args)} failed:\n{err.read().decode(errors='replace')[-3000:]}")
        return seconds, usage.ru_maxrss / 1024, out.read().decode()


def du(path):
    """MiB of the files under `path`."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs) / 2**20


def modes(out):
    """`model: mode` of every model line a refresh printed."""
    return "; ".join(f"{l.split()[0]}: {l.split()[1]}" + (f" {l.split()[2]} {l.split()[3]}" if "(" in l else "")
                     for l in out.splitlines() if " rows  built in " in l)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--day-rows", type=int, default=10_000)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "micro-wh-refresh-bench"))
    args = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} not found: run `cargo build --release` (or set CARGO_TARGET_DIR)")
    work = os.path.abspath(args.work)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    shutil.copytree(os.path.join(ROOT, "sql"), os.path.join(work, "sql"))
    for other in os.listdir(os.path.join(work, "sql", "models")):
        if other != "events":  # the events models only: the other datasets are not generated here
            shutil.rmtree(os.path.join(work, "sql", "models", other))
    with open(os.path.join(work, "warehouse.yaml"), "w") as f:
        f.write(f"generate:\n  events:\n    rows: {args.rows}\n")
    with open(os.path.join(work, "oneday.yaml"), "w") as f:
        f.write(f'generate:\n  events:\n    rows: {args.day_rows}\n'
                f'    start: "2025-12-31 00:00:00"\n    end: "2025-12-31 23:59:59"\n')
    plain_exports = os.path.join(work, "plain_exports")
    os.makedirs(plain_exports)
    with open(os.path.join(ROOT, "benches", "plain_refresh.sql")) as f:
        script = f.read().replace("{{lake_dir}}", os.path.join(work, "data")).replace("{{exports_dir}}", plain_exports)
    with open(os.path.join(work, "plain_refresh.sql"), "w") as f:
        f.write(script)
    # The same script once more into a database file, whose gold tables the one-day script updates.
    plain_db = os.path.join(work, "plain.duckdb")
    with open(os.path.join(work, "plain_refresh_kept.sql"), "w") as f:
        f.write(f"ATTACH '{plain_db}' AS plain;\nUSE plain;\n" + script)
    day = "2025-12-31"  # oneday.yaml's day, a Wednesday: its week began on Monday the 29th
    week_before = [os.path.join(work, "data", "events", f"date={d}", "*.parquet") for d in ("2025-12-29", "2025-12-30")]
    plain_silver = os.path.join(work, "plain_silver")
    os.makedirs(plain_silver)
    with open(os.path.join(ROOT, "benches", "plain_one_day.sql")) as f:
        one_day = (f.read().replace("{{db}}", plain_db).replace("{{lake_dir}}", os.path.join(work, "data"))
                   .replace("{{day}}", day).replace("{{silver_dir}}", plain_silver)
                   .replace("{{exports_dir}}", plain_exports)
                   .replace("{{week_before}}", "[" + ", ".join(f"'{p}'" for p in week_before) + "]"))
    with open(os.path.join(work, "plain_one_day.sql"), "w") as f:
        f.write(one_day)

    run(["-q", "generate", "events"], work)
    t1, r1, _ = run(["-q", "refresh"], work)
    ts, rs, _ = run(["-q", "sql", "--in-memory", "-f", "plain_refresh.sql"], work)
    tf, rf, _ = run(["-q", "refresh", "--full"], work)
    tv, rv, _ = run(["-q", "refresh", "--revalidate"], work)
    run(["-q", "sql", "--in-memory", "-f", "plain_refresh_kept.sql"], work)
    run(["-q", "--config", "oneday.yaml", "generate", "events", "--mode", "append", "--seed", "77"], work)
    # Run twice (the second does the same work again), keep the faster: the reference at its best.
    td, rd, _ = min(run(["-q", "sql", "--in-memory", "-f", "plain_one_day.sql"], work) for _ in range(2))
    ti, ri, out_i = run(["refresh"], work)
    tu, ru, _ = run(["refresh"], work)
    run(["-q", "compact", "events"], work)
    tc, rc, out_c = run(["refresh"], work)
    size = os.path.getsize(os.path.join(work, "warehouse.duckdb")) / 2**20
    print(f"cores: {os.cpu_count()}  lake: {args.rows:,} events  binary: {BIN}")
    print(f"plain DuckDB script      {ts:7.2f} s {rs:7.0f} MiB")
    print(f"first micro-wh refresh   {t1:7.2f} s {r1:7.0f} MiB   (silver validated and written into the lake)")
    print(f"micro-wh refresh --full  {tf:7.2f} s {rf:7.0f} MiB   warehouse.duckdb {size:.0f} MiB, "
          f"silver in the lake {du(os.path.join(work, 'data', 'silver_events_validated')):.0f} MiB, "
          f"bronze {du(os.path.join(work, 'data', 'events')):.0f} MiB")
    print(f"  full / script: time {tf / ts:.2f}x, peak RSS {rf / rs:.2f}x")
    print(f"refresh --revalidate     {tv:7.2f} s {rv:7.0f} MiB   (every silver partition rewritten, every row test over all rows)")
    print(f"  revalidate / script: time {tv / ts:.2f}x, peak RSS {rv / rs:.2f}x")
    print(f"+ {args.day_rows:,} events appended into one day:")
    print(f"plain one-day script     {td:7.2f} s {rd:7.0f} MiB   (told the day; no change detection, tests, log or history)")
    print(f"  plain one-day / full: time {td / tf:.3f}x ({100 * td / tf:.1f}%)")
    print(f"incremental              {ti:7.2f} s {ri:7.0f} MiB   ({modes(out_i)})")
    print(f"unchanged                {tu:7.2f} s {ru:7.0f} MiB")
    print(f"after compact events     {tc:7.2f} s {rc:7.0f} MiB   ({modes(out_c)})")
    print(f"  incremental / full: time {ti / tf:.3f}x ({100 * ti / tf:.1f}%), RSS {ri / rf:.2f}x")
    print(f"  incremental / plain one-day script: time {ti / td:.2f}x")


if __name__ == "__main__":
    main()
