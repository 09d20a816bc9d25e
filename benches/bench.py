#!/usr/bin/env python3
"""micro-wh benchmark: generation and refresh against DuckDB alone, measured in one run.

Usage (from the project root, after `cargo build --release`):
    python3 benches/bench.py [--rows 1000000 10000000] [--work /tmp/micro-wh-bench]

For every row count it times, each in its own process (wall seconds and peak RSS from wait4):
  * micro-wh generate events            (Rust Arrow batches -> DuckDB partitioned COPY)
  * DuckDB alone: COPY (SELECT ... FROM range(N)) TO ... PARTITION_BY (date), same schema,
    run by the same DuckDB engine (`micro-wh sql --in-memory -f`)
and, over the largest lake:
  * micro-wh refresh                    (migrations, models, data tests, history, log, exports)
  * the bare SQL of the same models and exports (`micro-wh refresh --print-sql`) run by DuckDB.
It prints the figures and the ratios; it asserts nothing.
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

EVENT_NAMES = ["page_view", "button_click", "form_submit", "video_play", "video_pause", "add_to_cart",
               "remove_from_cart", "checkout", "purchase", "sign_up", "sign_in", "sign_out", "search",
               "filter_apply", "share"]
# Property key -> SQL producing its JSON value text (the same vocabularies' shape as micro-wh's).
PROPERTY_VALUES = [
    ("page_url", "'\"/' || ['home','products','pricing','blog','docs','cart','account','search'][1 + floor(random() * 8)::INT] || '/' || (1 + floor(random() * 500)::INT) || '\"'"),
    ("button_id", "'\"btn_' || ['signup','buy_now','add_to_cart','learn_more','subscribe','close'][1 + floor(random() * 6)::INT] || '\"'"),
    ("form_id", "'\"form_' || ['signup','login','checkout','contact','newsletter'][1 + floor(random() * 5)::INT] || '\"'"),
    ("video_id", "'\"vid_' || lpad((1 + floor(random() * 5000)::INT)::VARCHAR, 5, '0') || '\"'"),
    ("product_id", "'\"prod_' || lpad((1 + floor(random() * 20000)::INT)::VARCHAR, 5, '0') || '\"'"),
    ("category", "'\"' || ['electronics','books','clothing','home','sports','toys','beauty','grocery'][1 + floor(random() * 8)::INT] || '\"'"),
    ("price", "printf('%.2f', 0.99 + floor(random() * 99901) / 100)"),
    ("quantity", "(1 + floor(random() * 10)::INT)::VARCHAR"),
    ("search_term", "'\"' || ['laptop','running shoes','coffee','headphones','desk','novel','jacket','lamp','backpack','phone case'][1 + floor(random() * 10)::INT] || '\"'"),
    ("filter_type", "'\"' || ['price','brand','rating','category','color','size'][1 + floor(random() * 6)::INT] || '\"'"),
    ("platform", "'\"' || ['web','ios','android'][1 + floor(random() * 3)::INT] || '\"'"),
    ("browser", "'\"' || ['chrome','safari','firefox','edge'][1 + floor(random() * 4)::INT] || '\"'"),
    ("device_type", "'\"' || ['desktop','mobile','tablet'][1 + floor(random() * 3)::INT] || '\"'"),
    ("session_id", "'\"sess_' || lpad(printf('%x', floor(random() * 281474976710656)::BIGINT), 12, '0') || '\"'"),
]


def duckdb_alone_sql(rows, out_dir):
    names = "[" + ", ".join(f"'{n}'" for n in EVENT_NAMES) + "]"
    value_of = "CASE k " + " ".join(
        f"WHEN {i} THEN '\"{key}\":' || {sql}" for i, (key, sql) in enumerate(PROPERTY_VALUES)) + " END"
    # 2-5 distinct keys: a random start and stride 5 (coprime with 14) over the key indexes.
    # Cheaper than shuffling all 14 per row, so the reference is not slowed by key choice.
    keys = "list_transform(range(2 + floor(random() * 4)::INT), lambda j: (j * 5 + s) % 14)"
    return f"""
SET preserve_insertion_order = false;
COPY (
    SELECT event_time, user_id, team_id, event_name, properties, CAST(event_time AS DATE) AS date
    FROM (
        SELECT
            TIMESTAMP '2023-01-01 00:00:00' + to_seconds(floor(random() * 94694400)::BIGINT) AS event_time,
            1 + floor(random() * 100000)::BIGINT AS user_id,
            1 + floor(random() * 1000)::BIGINT AS team_id,
            {names}[1 + floor(random() * 15)::INT] AS event_name,
            '{{' || array_to_string(list_transform({keys}, lambda k: {value_of}), ',') || '}}' AS properties
        FROM (SELECT floor(random() * 14)::INT AS s FROM range({rows}))
    )
) TO '{out_dir}' (FORMAT parquet, PARTITION_BY (date), COMPRESSION zstd);
"""


def run(cmd, cwd):
    """Runs cmd; returns (seconds, peak RSS in MiB). Fails loudly if the command fails."""
    with tempfile.TemporaryFile() as stderr:  # a file, not a pipe: a chatty child cannot block
        started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - started
        if os.waitstatus_to_exitcode(status) != 0:
            stderr.seek(0)
            sys.exit(f"command failed: {' '.join(cmd)}\n{stderr.read().decode(errors='replace')}")
    return seconds, usage.ru_maxrss / 1024


def fresh(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def fresh_file(path):
    if os.path.exists(path):
        os.remove(path)
    return path


def row(label, rows, seconds, rss):
    rate = f"{rows / seconds:>12,.0f}" if rows else f"{'':>12}"
    print(f"{label:<42} {seconds:>8.2f} s {rate} rows/s {rss:>8.0f} MiB", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--work", default="/tmp/micro-wh-bench")
    args = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} not found: run `cargo build --release` first (CARGO_TARGET_DIR={TARGET})")
    work = fresh(args.work)
    project = fresh(os.path.join(work, "project"))
    shutil.copytree(os.path.join(ROOT, "sql"), os.path.join(project, "sql"))
    shutil.copy(os.path.join(ROOT, "warehouse.yaml"), project)
    print(f"cores: {os.cpu_count()}  binary: {BIN}")

    gen = {}
    for rows in args.rows:
        mw_s, mw_rss = run([BIN, "-q", "generate", "events", "--rows", str(rows)], project)
        row(f"micro-wh generate events ({rows:,})", rows, mw_s, mw_rss)
        script = os.path.join(work, "duckdb_alone.sql")
        with open(script, "w") as f:
            f.write(duckdb_alone_sql(rows, fresh(os.path.join(work, "duckdb_alone_lake"))))
        dd_s, dd_rss = run([BIN, "-q", "sql", "--in-memory", "-f", script], project)
        row(f"DuckDB alone COPY from range ({rows:,})", rows, dd_s, dd_rss)
        print(f"{'':<42} ratio micro-wh / DuckDB alone: time {mw_s / dd_s:.2f}x, peak RSS {mw_rss / dd_rss:.2f}x")
        gen[rows] = (mw_s, mw_rss)
    if len(args.rows) > 1:
        lo, hi = min(args.rows), max(args.rows)
        print(f"micro-wh growth {lo:,} -> {hi:,} rows: peak RSS {gen[hi][1] / gen[lo][1]:.2f}x, "
              f"seconds per row {gen[hi][0] / hi / (gen[lo][0] / lo):.2f}x")

    # The lake now holds the largest row count: refresh it both ways.
    rows = max(args.rows)
    rf_s, rf_rss = run([BIN, "-q", "--warehouse", fresh_file(os.path.join(work, "refresh.duckdb")), "refresh"], project)
    row(f"micro-wh refresh ({rows:,} events)", 0, rf_s, rf_rss)
    plain = subprocess.run([BIN, "refresh", "--print-sql", "--exports-dir", fresh(os.path.join(work, "bare_exports"))],
                           cwd=project, check=True, capture_output=True, text=True).stdout
    script = os.path.join(work, "bare_refresh.sql")
    with open(script, "w") as f:
        # The bare run needs the reference table the versioned SQL creates.
        f.write(open(os.path.join(project, "sql", "V001__dim_event_names.sql")).read() + "\n" + plain)
    bare_s, bare_rss = run([BIN, "-q", "sql", "--db", fresh_file(os.path.join(work, "bare.duckdb")), "-f", script], project)
    row(f"bare DuckDB, same model SQL + exports", 0, bare_s, bare_rss)
    print(f"{'':<42} ratio micro-wh refresh / bare SQL: time {rf_s / bare_s:.2f}x, peak RSS {rf_rss / bare_rss:.2f}x")


if __name__ == "__main__":
    main()
