"""What the micro-wh benchmarks share: the release binary, running it with its time and peak
RSS, and projects holding only the events dataset or only the business_events source.
Imported by the scripts beside it."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.path.join(TARGET, "release", "micro-wh")


def require_binary():
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} not found: run `cargo build --release` (or set CARGO_TARGET_DIR)")


def run(args, cwd):
    """Runs micro-wh; returns (seconds, peak RSS MiB, stdout)."""
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


def events_project(work, rows):
    """A fresh project in `work` with the repository's SQL for the events dataset only."""
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    shutil.copytree(os.path.join(ROOT, "sql"), os.path.join(work, "sql"))
    shutil.rmtree(os.path.join(work, "sql", "models", "business_events"))
    with open(os.path.join(work, "warehouse.yaml"), "w") as f:
        f.write(f"generate:\n  events:\n    rows: {rows}\n")


def business_events_project(work, rows, days, seed=1):
    """A fresh project in `work` with the repository's business_events source (from its
    warehouse.yaml) and models only; business events are the default dataset, so a refresh
    generates no events lake. `micro-wh generate business-events` writes `rows` lines over `days`."""
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "sql", "models"))
    for f in os.listdir(os.path.join(ROOT, "sql")):
        if f.endswith(".sql"):
            shutil.copy(os.path.join(ROOT, "sql", f), os.path.join(work, "sql", f))
    shutil.copytree(os.path.join(ROOT, "sql", "models", "business_events"),
                    os.path.join(work, "sql", "models", "business_events"))
    with open(os.path.join(ROOT, "warehouse.yaml")) as f:
        config = f.read()
    start = config.index("\n  business_events:\n    format")
    end = config.index("\n  telemetry:", start)
    with open(os.path.join(work, "warehouse.yaml"), "w") as f:
        f.write("refresh:\n  default_dataset: business_events\n"
                f"generate:\n  business_events:\n    rows: {rows}\n    days: {days}\n    seed: {seed}\n"
                f"sources:{config[start:end]}\n")
