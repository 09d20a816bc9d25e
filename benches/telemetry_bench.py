#!/usr/bin/env python3
"""micro-wh telemetry benchmark: registry, hourly tick, ingest and incremental refresh, each
against DuckDB alone doing the same work, measured side by side in one run.

Usage (from the project root, after `cargo build --release`):
    python3 benches/telemetry_bench.py [--devices 1000000,20000000] [--series-devices 50000]
                                       [--series 1,24,168] [--work /tmp/micro-wh-telemetry-bench]

For each registry size K (a fresh project under --work):
  * init:    micro-wh telemetry init --devices K (seconds, peak RSS).
  * tick:    micro-wh telemetry tick (one hour, K rows) vs DuckDB alone writing the same CSV
             from the registry: COPY (SELECT <registry columns>, <hour> AS datetime,
             random() AS metric_1, ... FROM read_parquet(registry)) TO ... (FORMAT csv, HEADER).
  * ingest:  micro-wh ingest telemetry (that hour's file: typed columns, checks, quarantine,
             manifest, SHA-256) vs DuckDB alone: COPY (SELECT *, strftime(datetime, '%d-%m-%y')
             AS date, hour(datetime) AS hour FROM read_csv(...)) TO ... (FORMAT parquet,
             PARTITION_BY (date, hour, region, state)).
  * refresh: micro-wh refresh after that hour (telemetry models only).
Then, with --series-devices devices, the lake is grown to each hour count of --series and the
refresh after one more hour is timed: it should not grow with the hours already there.
The reference runs on the same DuckDB engine (`micro-wh sql --in-memory -f`). Each timing is
its own process (wall seconds, peak RSS from wait4). It prints figures; it asserts nothing.
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


def run(cmd, cwd):
    """Runs cmd; returns (seconds, peak RSS MiB)."""
    with tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - started
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            sys.exit(f"{' '.join(cmd)} failed ({code}):\n{err.read().decode(errors='replace')[-3000:]}")
        return seconds, usage.ru_maxrss / 1024


def sql(script, cwd):
    path = os.path.join(cwd, "reference.sql")
    with open(path, "w") as f:
        f.write(script)
    return run([BIN, "sql", "--in-memory", "-f", path], cwd)


def project(work, name, devices):
    """A project with the repository's telemetry source and models only."""
    dir = os.path.join(work, name)
    shutil.rmtree(dir, ignore_errors=True)
    os.makedirs(os.path.join(dir, "sql", "models"))
    shutil.copytree(os.path.join(ROOT, "sql", "models", "telemetry"),
                    os.path.join(dir, "sql", "models", "telemetry"))
    for f in os.listdir(os.path.join(ROOT, "sql")):
        if f.endswith(".sql"):
            shutil.copy(os.path.join(ROOT, "sql", f), os.path.join(dir, "sql", f))
    with open(os.path.join(ROOT, "warehouse.yaml")) as f:
        config = f.read()
    start = config.index("\n  business_events:\n    format")
    end = config.index("\n  telemetry:                    # the hourly feed")
    config = config[:start] + config[end:]
    config = config.replace("devices: 10000 ", f"devices: {devices} ")
    config = config.replace("rows: 1000000", "rows: 1000")   # the default dataset, unused here
    with open(os.path.join(dir, "warehouse.yaml"), "w") as f:
        f.write(config)
    return dir


def mib_s(path, seconds):
    return os.path.getsize(path) / 2**20 / seconds


def one_size(work, k):
    dir = project(work, f"k{k}", k)
    csv = os.path.join(dir, "raw", "telemetry", "telemetry_2020-01-01T00.csv")
    init_s, init_rss = run([BIN, "-q", "telemetry", "init", "--devices", str(k)], dir)
    tick_s, tick_rss = run([BIN, "-q", "telemetry", "tick"], dir)
    size = os.path.getsize(csv)

    metrics = ", ".join(f"random() * 100 AS metric_{i}" for i in range(1, 21))
    ref_csv = os.path.join(dir, "reference.csv")
    ref_tick_s, ref_tick_rss = sql(
        "SET preserve_insertion_order = false;\n"
        f"COPY (SELECT region, state, latitude, longitude, site, cell, sector, band, "
        f"TIMESTAMP '2020-01-01 00:00:00' AS datetime, {metrics} "
        f"FROM read_parquet('registry/telemetry/devices.parquet')) TO '{ref_csv}' (FORMAT csv, HEADER);\n", dir)

    ingest_s, ingest_rss = run([BIN, "-q", "ingest", "telemetry"], dir)
    ref_lake = os.path.join(dir, "reference_lake")
    ref_ingest_s, ref_ingest_rss = sql(
        "SET preserve_insertion_order = false;\n"
        f"COPY (SELECT * EXCLUDE (region, state), strftime(datetime, '%d-%m-%y') AS date, "
        f"hour(datetime) AS hour, region, state FROM read_csv('{csv}')) TO '{ref_lake}' "
        "(FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date, hour, region, state));\n", dir)
    refresh_s, refresh_rss = run([BIN, "-q", "refresh", "--no-export"], dir)

    print(f"\n## {k:,} devices")
    print(f"init     {init_s:8.2f} s  {init_rss:7.0f} MiB  ({k / init_s:,.0f} devices/s)")
    print(f"tick     {tick_s:8.2f} s  {tick_rss:7.0f} MiB  {mib_s(csv, tick_s):6.1f} MiB/s, "
          f"{size / 2**20:,.0f} MiB ({size / k:.0f} B/row)")
    print(f"  DuckDB {ref_tick_s:8.2f} s  {ref_tick_rss:7.0f} MiB  {mib_s(ref_csv, ref_tick_s):6.1f} MiB/s, "
          f"{os.path.getsize(ref_csv) / 2**20:,.0f} MiB ({os.path.getsize(ref_csv) / k:.0f} B/row)"
          f"  -> ratio {tick_s / ref_tick_s:.2f}x time, {tick_rss / ref_tick_rss:.2f}x RSS")
    print(f"ingest   {ingest_s:8.2f} s  {ingest_rss:7.0f} MiB")
    print(f"  DuckDB {ref_ingest_s:8.2f} s  {ref_ingest_rss:7.0f} MiB"
          f"  -> ratio {ingest_s / ref_ingest_s:.2f}x time, {ingest_rss / ref_ingest_rss:.2f}x RSS")
    print(f"refresh  {refresh_s:8.2f} s  {refresh_rss:7.0f} MiB")
    total = tick_s + ingest_s + refresh_s
    print(f"one hour: tick + ingest + refresh = {total:.1f} s, peak RSS "
          f"{max(tick_rss, ingest_rss, refresh_rss):.0f} MiB")
    os.remove(ref_csv)
    shutil.rmtree(ref_lake)


def series(work, k, points):
    dir = project(work, "series", k)
    run([BIN, "-q", "telemetry", "init", "--devices", str(k)], dir)
    have = 0
    print(f"\n## refresh after one new hour, {k:,} devices")
    for hours in points:
        if hours > have:
            run([BIN, "-q", "telemetry", "tick", "--hours", str(hours - have)], dir)
            run([BIN, "-q", "ingest", "telemetry"], dir)
            run([BIN, "-q", "refresh", "--no-export"], dir)
            have = hours
        run([BIN, "-q", "telemetry", "tick"], dir)
        run([BIN, "-q", "ingest", "telemetry"], dir)
        s, rss = run([BIN, "-q", "refresh", "--no-export"], dir)
        have += 1
        print(f"lake of {hours:4d} hours + 1: refresh {s:6.2f} s  {rss:6.0f} MiB")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default="1000000,20000000")
    ap.add_argument("--series-devices", type=int, default=50000)
    ap.add_argument("--series", default="1,24,168")
    ap.add_argument("--work", default="/tmp/micro-wh-telemetry-bench")
    args = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"build first: cargo build --release ({BIN} is missing)")
    os.makedirs(args.work, exist_ok=True)
    print(f"micro-wh telemetry benchmark, {os.cpu_count()} cores")
    for k in [int(x) for x in args.devices.split(",") if x]:
        one_size(args.work, k)
    if args.series:
        series(args.work, args.series_devices, [int(x) for x in args.series.split(",")])


if __name__ == "__main__":
    main()
