#!/usr/bin/env python3
"""micro-wh refresh after a small business-events ingest: incremental vs full, and the
incremental refresh on a lake twice as large, every figure from the same run.

Usage (from the project root, after `cargo build --release`):
    python3 benches/business_refresh_bench.py [--rows 2000000] [--days 365] [--updates 300]
                                              [--update-days 3] [--work /tmp/micro-wh-business-bench]

Two fresh projects (the business_events source and models only): a lake of --rows events over
--days days, and one of twice the rows over twice the days, so both have the same rows per
`event_category=…/year=…/month=…/day=…` folder and a refresh proportional to the touched days
costs the same on both. In each:
  * micro-wh generate business-events, micro-wh ingest business_events, micro-wh refresh
  * one NDJSON file of --updates late updates (same event_id, a second later on the same day, a
    new account_id) of events of --update-days days spread over the first --days days (the same
    days in both lakes); micro-wh ingest rewrites just those days' folders of the categories hit
then times, each in its own process (wall seconds, peak RSS from wait4):
  * micro-wh refresh          (incremental: the rewritten folders)
  * micro-wh refresh --full   (every model rebuilt whole from the same lake)
It prints the figures, the partitions refreshed, each model's build and test time, and the
ratios incremental / full and incremental (2x lake) / incremental (1x lake); it asserts nothing.
"""
import argparse
import datetime
import os
import re
import tempfile

from bench_util import business_events_project, require_binary, run

START = datetime.date(2023, 1, 1)  # generate.business_events.start


def models(out):
    """{model: (mode, build s, test s)} from the lines a refresh printed."""
    found = {}
    for line in out.splitlines():
        m = re.match(r"(\S+)\s+(full|unchanged|incremental \(\d+ partitions\))\s.*built in\s+([\d.]+) s, tested in\s+([\d.]+) s", line)
        if m:
            found[m.group(1)] = (m.group(2), float(m.group(3)), float(m.group(4)))
    return found


def late_updates(work, days, count):
    """Writes raw/business_events/late-updates.ndjson: `count` events of `days`, each a second
    later on its day with a new account_id. Returns the folders (category, day) it touches."""
    labels = ", ".join(f"('{d:%Y}', '{d:%m}', '{d:%d}')" for d in days)
    picked = (f"SELECT * FROM bronze_business_events WHERE (year, month, day) IN ({labels}) "
              f"AND hour(\"timestamp\") < 23 ORDER BY hash(event_id) LIMIT {count}")
    run(["-q", "sql", f"""COPY (
        SELECT event_id, strftime("timestamp" + INTERVAL 1 SECOND, '%Y-%m-%dT%H:%M:%SZ') AS "timestamp",
               domain, event_type, json_merge_patch(data, json_object('account_id', 'acct_late_' || (hash(event_id) % 1000))) AS data
        FROM ({picked})) TO 'raw/business_events/late-updates.ndjson' (FORMAT json)"""], work)
    _, _, out = run(["sql", f"SELECT count(DISTINCT (event_category, year, month, day)) FROM ({picked})"], work)
    return int(re.findall(r"\|\s*(\d+)\s*\|", out)[-1])


def lake(work, rows, days, update_days, updates):
    """Builds one lake and warehouse, ingests the late updates, times both refreshes."""
    business_events_project(work, rows, days)
    tg, _, _ = run(["-q", "generate", "business-events"], work)
    ti, _, _ = run(["-q", "ingest", "business_events"], work)
    tr, _, _ = run(["-q", "refresh"], work)
    folders = late_updates(work, update_days, updates)
    tl, rl, _ = run(["-q", "ingest", "business_events"], work)
    t_inc, r_inc, out_inc = run(["refresh"], work)
    t_full, r_full, out_full = run(["refresh", "--full"], work)
    lake_files = sum(len(f) for _, _, f in os.walk(os.path.join(work, "data", "business_events")))
    return {
        "rows": rows, "days": days, "files": lake_files, "folders": folders,
        "setup": f"generate {tg:.1f} s, ingest {ti:.1f} s, first refresh {tr:.1f} s",
        "late_ingest": (tl, rl),
        "incremental": (t_inc, r_inc, models(out_inc)),
        "full": (t_full, r_full, models(out_full)),
    }


def show(label, result):
    print(f"{label}: {result['rows']:,} events over {result['days']} days, {result['files']:,} lake files "
          f"({result['setup']})")
    tl, rl = result["late_ingest"]
    print(f"  ingest of the late updates ({result['folders']} folders)  {tl:7.2f} s {rl:7.0f} MiB")
    for kind in ("incremental", "full"):
        t, r, ms = result[kind]
        print(f"  micro-wh refresh{' --full' if kind == 'full' else '':7}            {t:7.2f} s {r:7.0f} MiB")
        for name, (mode, build, test) in ms.items():
            print(f"      {name:28} {mode:27} built {build:6.2f} s, tested {test:6.2f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--updates", type=int, default=300)
    ap.add_argument("--update-days", type=int, default=3)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "micro-wh-business-bench"))
    args = ap.parse_args()
    require_binary()
    work = os.path.abspath(args.work)
    step = args.days // (args.update_days + 1)
    update_days = [START + datetime.timedelta(days=step * (i + 1)) for i in range(args.update_days)]
    one = lake(os.path.join(work, "1x"), args.rows, args.days, update_days, args.updates)
    two = lake(os.path.join(work, "2x"), 2 * args.rows, 2 * args.days, update_days, args.updates)
    print(f"cores: {os.cpu_count()}  late updates: {args.updates} events of {', '.join(map(str, update_days))}")
    show("1x lake", one)
    show("2x lake", two)
    (ti1, ri1, m1), (tf1, rf1, _) = one["incremental"], one["full"]
    (ti2, ri2, m2), (tf2, _, _) = two["incremental"], two["full"]
    gold = "gold_business_events_daily"
    print(f"partitions refreshed: 1x {m1.get(gold, ('?',))[0]}, 2x {m2.get(gold, ('?',))[0]}")
    print(f"incremental / full (1x lake): time {ti1 / tf1:.3f}x ({100 * ti1 / tf1:.1f}%), RSS {ri1 / rf1:.2f}x")
    print(f"incremental (2x lake) / incremental (1x lake): time {ti2 / ti1:.2f}x, RSS {ri2 / ri1:.2f}x"
          f"   (full: {tf2 / tf1:.2f}x)")


if __name__ == "__main__":
    main()
