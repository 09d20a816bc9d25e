#!/usr/bin/env python3
"""micro-wh ingest benchmark against DuckDB alone, measured side by side in one run.

Usage (from the project root, after `cargo build --release`):
    python3 benches/ingest_bench.py [--rows 57000000] [--ndjson-rows 10000000]
                                    [--sqlite-rows 10000000] [--work /tmp/micro-wh-ingest-bench]

Inputs are made once in --work (kept between runs): a flights-like 5-column CSV (~2 GB at 57M
rows), NDJSON of the same shape, and a SQLite table. Each timing is its own process (wall
seconds, peak RSS from wait4):
  * CSV:    micro-wh ingest (declared columns, store_rejects quarantine, manifest, SHA-256)
            vs DuckDB alone at its best settings: SET preserve_insertion_order = false;
            COPY (SELECT * FROM read_csv(..., columns = {...})) TO ... (FORMAT parquet, COMPRESSION zstd)
  * NDJSON: micro-wh ingest vs COPY (SELECT * FROM read_ndjson(..., columns = {...})) TO ...
  * SQLite: micro-wh ingest, rows/s (DuckDB cannot read SQLite here: no sqlite extension).
The reference runs on the same DuckDB engine (`micro-wh sql --in-memory -f`). It prints figures
and ratios; it asserts nothing.
"""
import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.path.join(TARGET, "release", "micro-wh")

COLUMNS = {"origin": "VARCHAR", "dest": "VARCHAR", "dep_time": "TIMESTAMP",
           "dep_delay": "DOUBLE", "distance": "INTEGER"}
COLUMNS_SQL = "{" + ", ".join(f"'{k}': '{v}'" for k, v in COLUMNS.items()) + "}"
AIRPORTS = "['EWR','JFK','LGA','ATL','ORD','LAX','DFW','DEN','SFO','SEA','BOS','MIA']"


def run(cmd, cwd, stdin=None):
    """Runs cmd; returns (seconds, peak RSS MiB, exit code)."""
    with tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - started
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 3):
            err.seek(0)
            sys.exit(f"{' '.join(cmd)} failed ({code}):\n{err.read().decode(errors='replace')[-3000:]}")
        return seconds, usage.ru_maxrss / 1024, code


def sql(script, cwd):
    path = os.path.join(cwd, "script.sql")
    with open(path, "w") as f:
        f.write(script)
    return run([BIN, "sql", "--in-memory", "-f", path], cwd)


def make_inputs(work, rows, ndjson_rows, sqlite_rows):
    os.makedirs(work, exist_ok=True)
    flights = f"""
        SELECT {AIRPORTS}[1 + (i % 12)::INT] AS origin,
               {AIRPORTS}[1 + ((i * 7 + 3) % 12)::INT] AS dest,
               TIMESTAMP '2013-01-01' + to_seconds((i * 37) % 31536000) AS dep_time,
               round(((i * 13) % 600) / 10.0 - 15, 1) AS dep_delay,
               (100 + (i * 11) % 4900)::INTEGER AS distance
        FROM range({{n}}) t(i)"""
    csv = os.path.join(work, f"flights-{rows}.csv")
    if not os.path.exists(csv):
        print(f"making {csv} ...", flush=True)
        sql(f"SET preserve_insertion_order = false; COPY ({flights.format(n=rows)}) TO '{csv}' (FORMAT csv, HEADER true);", work)
    ndjson = os.path.join(work, f"flights-{ndjson_rows}.ndjson")
    if not os.path.exists(ndjson):
        print(f"making {ndjson} ...", flush=True)
        sql(f"SET preserve_insertion_order = false; COPY ({flights.format(n=ndjson_rows)}) TO '{ndjson}' (FORMAT json);", work)
    db = os.path.join(work, f"flights-{sqlite_rows}.sqlite")
    if not os.path.exists(db):
        print(f"making {db} ...", flush=True)
        con = sqlite3.connect(db + ".tmp")
        con.execute("CREATE TABLE flights (origin TEXT, dest TEXT, dep_time DATETIME, dep_delay REAL, distance INTEGER)")
        airports = AIRPORTS.strip("[]").replace("'", "").split(",")
        batch = 200_000
        for start in range(0, sqlite_rows, batch):
            con.executemany("INSERT INTO flights VALUES (?, ?, ?, ?, ?)", (
                (airports[i % 12], airports[(i * 7 + 3) % 12],
                 time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(1356998400 + (i * 37) % 31536000)),
                 round(((i * 13) % 600) / 10.0 - 15, 1), 100 + (i * 11) % 4900)
                for i in range(start, min(start + batch, sqlite_rows))))
        con.commit()
        con.close()
        os.rename(db + ".tmp", db)
    return csv, ndjson, db


def project(work, name, source_yaml):
    d = os.path.join(work, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    with open(os.path.join(d, "warehouse.yaml"), "w") as f:
        f.write("sources:\n" + source_yaml)
    return d


def columns_yaml():
    return "    columns:\n" + "".join(f"      {k}: {v}\n" for k, v in COLUMNS.items())


def compare(label, ours, ref, rows):
    (ts, rs, _), (tr, rr, _) = ours, ref
    print(f"{label:<8} micro-wh {ts:7.2f} s {rs:7.0f} MiB {rows / ts / 1e6:6.2f} M rows/s | "
          f"DuckDB alone {tr:7.2f} s {rr:7.0f} MiB | time ratio {ts / tr:5.2f}x  RSS ratio {rs / rr:5.2f}x", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=57_000_000)
    ap.add_argument("--ndjson-rows", type=int, default=10_000_000)
    ap.add_argument("--sqlite-rows", type=int, default=10_000_000)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "micro-wh-ingest-bench"))
    args = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} not found: run `cargo build --release` (or set CARGO_TARGET_DIR)")
    csv, ndjson, db = make_inputs(args.work, args.rows, args.ndjson_rows, args.sqlite_rows)
    print(f"CSV {os.path.getsize(csv) / 2**30:.2f} GiB, {args.rows} rows; NDJSON "
          f"{os.path.getsize(ndjson) / 2**30:.2f} GiB, {args.ndjson_rows} rows; SQLite {args.sqlite_rows} rows", flush=True)

    ref_dir = os.path.join(args.work, "ref")
    os.makedirs(ref_dir, exist_ok=True)
    p = project(args.work, "csv", f"  flights:\n    format: csv\n    path: {csv}\n" + columns_yaml())
    ours = run([BIN, "-q", "ingest", "flights"], p)
    ref = sql(f"SET preserve_insertion_order = false; COPY (SELECT * FROM read_csv('{csv}', header = true, "
              f"columns = {COLUMNS_SQL})) TO '{ref_dir}/csv.parquet' (FORMAT parquet, COMPRESSION zstd);", ref_dir)
    compare("csv", ours, ref, args.rows)

    p = project(args.work, "ndjson", f"  flights:\n    format: ndjson\n    path: {ndjson}\n" + columns_yaml())
    ours = run([BIN, "-q", "ingest", "flights"], p)
    ref = sql(f"SET preserve_insertion_order = false; COPY (SELECT * FROM read_ndjson('{ndjson}', "
              f"columns = {COLUMNS_SQL})) TO '{ref_dir}/ndjson.parquet' (FORMAT parquet, COMPRESSION zstd);", ref_dir)
    compare("ndjson", ours, ref, args.ndjson_rows)

    p = project(args.work, "sqlite", f"  flights:\n    format: sqlite\n    path: {db}\n")
    t, r, _ = run([BIN, "-q", "ingest", "flights"], p)
    print(f"sqlite   micro-wh {t:7.2f} s {r:7.0f} MiB {args.sqlite_rows / t / 1e6:6.2f} M rows/s", flush=True)


if __name__ == "__main__":
    main()
