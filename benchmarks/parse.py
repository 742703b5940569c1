"""Parse time of a DAGs folder through the scheduler's parse pool, beside the same files
imported one after another in this process (what the pool adds: a fork and a pickle per file).

    python benchmarks/parse.py [--files 1000] [--tasks 10] [--processes 2] [--json]

Writes `--files` DAG files of `--tasks` Bash tasks each (a chain) into a temporary folder, then
(1) imports them all in this process (`haflow.dag.loader.load_dag_file`), the floor;
(2) parses them through `haflow.scheduler.parsing.DagFileProcessor` with `--processes`
children at a time, from start to the last result; prints both, files/s and ms per file, side by
side, and with --json one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from haflow.dag.loader import load_dag_file
from haflow.scheduler.dags import DagRegistry
from haflow.scheduler.parsing import DagFileProcessor

TEMPLATE = """
from datetime import datetime
from haflow.dag import DAG, BashTask

with DAG("bench_{n:05d}", start_date=datetime(2026, 1, 1), schedule="@daily"):
    tasks = [BashTask(f"t{{i}}", bash_command="true") for i in range({tasks})]
    for a, b in zip(tasks, tasks[1:]):
        a >> b
"""


def write_folder(folder: Path, files: int, tasks: int) -> None:
    for n in range(files):
        (folder / f"bench_{n:05d}.py").write_text(TEMPLATE.format(n=n, tasks=tasks))


def in_process(folder: Path) -> float:
    started = time.monotonic()
    for path in sorted(folder.glob("*.py")):
        dags, error = load_dag_file(path)
        assert error is None and len(dags) == 1, error
    return time.monotonic() - started


def through_pool(folder: Path, files: int, processes: int) -> float:
    p = DagFileProcessor(folder, interval_s=3600.0, timeout_s=60.0, processes=processes)
    started = time.monotonic()
    p.start()
    try:
        if not p.wait_parsed(1800.0):
            raise SystemExit("the pool did not parse the folder within 30 min")
        took = time.monotonic() - started
        registry = DagRegistry(p)
        registry.refresh()
        assert len(registry.dags) == files and not registry.import_errors, registry.import_errors
    finally:
        p.stop()
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--tasks", type=int, default=10)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="haflow-parse-bench-") as tmp:
        folder = Path(tmp)
        write_folder(folder, args.files, args.tasks)
        print(f"{args.files} DAG files of {args.tasks} tasks each in {folder}", flush=True)
        floor = in_process(folder)
        print(f"imported in this process: {floor:.2f} s", flush=True)
        pool = through_pool(folder, args.files, args.processes)
    rows = [
        ("in this process, one by one (floor)", floor),
        (f"parse pool, {args.processes} children", pool),
    ]
    print(f"\n{'':40} {'seconds':>9} {'files/s':>9} {'ms/file':>9}")
    for label, secs in rows:
        print(f"{label:40} {secs:9.2f} {args.files / secs:9.1f} {1000 * secs / args.files:9.2f}")
    if args.json:
        print(
            json.dumps(
                {
                    "files": args.files,
                    "tasks": args.tasks,
                    "processes": args.processes,
                    "in_process_s": round(floor, 3),
                    "pool_s": round(pool, 3),
                }
            )
        )


if __name__ == "__main__":
    main()
