"""`haflow db clean` on a metastore of 100,000 old events (and old runs with their task
instances, attempts and logs) while a scheduler runs a steady workload on it: the leader's
loop time before, during and after the clean, side by side, with the clean's own rate; then
the same rows again, pruned by the leader's own retention pass (a thread of the scheduler).

    python benchmarks/retention.py [--events N] [--runs N] [--quick] [--json]

On a fresh PostgreSQL database; the scheduler (local executor) runs in this process while a
run of a 10-task DAG is triggered every 0.5 s; `haflow db clean` runs as the command, in a
process of its own. Nothing is asserted: it prints figures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from common import ensure_services, fresh_postgres, summary
from sqlalchemy import insert

from haflow.assembly.scheduler import build_scheduler
from haflow.config import load_settings
from haflow.core.clock import utcnow
from haflow.metastore import models as m
from haflow.metastore.engine import create_engine
from haflow.metastore.repository.retention import TABLES
from haflow.scheduler.listener import Listeners, SchedulerListener
from haflow.scheduler.retention import RetentionConfig, RetentionPass

DAG = """
from datetime import datetime
from haflow.dag import DAG, BashTask
with DAG("busy", start_date=datetime(2026, 1, 1), max_active_runs=64):
    for i in range(10):
        BashTask(f"t{i}", bash_command="true")
"""
TRIGGER_EVERY_S = 0.5


class Ticks(SchedulerListener):
    def __init__(self) -> None:
        self.ticks: list[tuple[float, float, bool]] = []

    def ticked(self, epoch: int, seconds: float, busy: bool) -> None:
        self.ticks.append((time.monotonic(), seconds, busy))


def seed(url: str, events: int, runs: int) -> None:
    """`events` events and `runs` finished runs (4 task instances, attempts, log lines each),
    all 60 days old."""
    old = utcnow() - timedelta(days=60)
    engine = create_engine(url)
    with engine.begin() as conn:
        for start in range(0, events, 5000):
            rows = [
                {"ts": old, "kind": "ti.success", "actor": "seed", "dag_id": "busy", "detail": ""}
                for _ in range(min(5000, events - start))
            ]
            conn.execute(insert(m.Event), rows)
        for i in range(runs):
            pk = conn.execute(
                insert(m.DagRun).values(
                    dag_id="busy",
                    run_id=f"old{i}",
                    run_type="manual",
                    state="success",
                    conf="{}",
                    created_at=old,
                    ended_at=old,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            for t in range(4):
                ti = conn.execute(
                    insert(m.TaskInstance).values(
                        run_pk=pk, dag_id="busy", task_id=f"t{t}", state="success", attempt=1
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
                conn.execute(
                    insert(m.TaskAttempt).values(
                        ti_id=ti, attempt=1, state="success", epoch=1, queued_at=old
                    )
                )
                conn.execute(insert(m.TaskLog).values(ti_id=ti, attempt=1, ts=old, data="ok\n"))
    engine.dispose()


def _settings(home: Path, url: str) -> Any:
    return load_settings(
        home=home,
        environ={
            "HAFLOW__CORE__SQL_ALCHEMY_CONN": url,
            "HAFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "HAFLOW__CORE__PARALLELISM": "4",
            "HAFLOW__LOGGING__LEVEL": "WARNING",
        },
    )


def measure(events: int, runs: int, phase_s: float) -> dict[str, Any]:
    with fresh_postgres("haflow_retention") as url, tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        (home / "dags").mkdir()
        (home / "dags" / "busy.py").write_text(DAG)
        seeded_at = time.monotonic()
        seed(url, events, runs)
        seed_s = time.monotonic() - seeded_at
        service = build_scheduler(_settings(home, url))
        ticks = Ticks()
        service.listener = Listeners([service.listener, ticks])
        repo = service.repo
        thread = threading.Thread(target=service.run, daemon=True)
        thread.start()
        stop = threading.Event()
        triggered = [0]

        def trigger() -> None:
            while not stop.wait(TRIGGER_EVERY_S) and triggered[0] < 10_000:
                repo.runs.trigger("busy", {}, utcnow())
                triggered[0] += 1

        try:
            deadline = time.monotonic() + 60
            while not repo.dags.all() and time.monotonic() < deadline:
                time.sleep(0.1)
            trigger_thread = threading.Thread(target=trigger, daemon=True)
            trigger_thread.start()
            time.sleep(5)  # warm up: the pool's processes, the DAG file
            env = {**os.environ, "HAFLOW_HOME": tmp, "HAFLOW__CORE__SQL_ALCHEMY_CONN": url}
            clean = [sys.executable, "-m", "haflow.cli.main", "db", "clean", "--older-than", "30d"]
            marks = [time.monotonic()]
            time.sleep(phase_s)
            marks.append(time.monotonic())
            done = subprocess.run(clean, env=env, capture_output=True, text=True, check=True)
            marks.append(time.monotonic())
            time.sleep(phase_s)
            marks.append(time.monotonic())
            seed(url, events, runs)  # again, for the leader's own pass
            time.sleep(3)
            marks.append(time.monotonic())
            part = RetentionPass(repo, RetentionConfig(older_than_days=30, tables=TABLES))
            part.elected(service.epoch or 0, "database", utcnow())
            by_leader = part.run_once()
            marks.append(time.monotonic())
            time.sleep(phase_s)
            marks.append(time.monotonic())
        finally:
            stop.set()
            service.stop_requested.set()
            thread.join(60)
    out: dict[str, Any] = {
        "events": events,
        "runs": runs,
        "seed_s": round(seed_s, 1),
        "clean_s": round(marks[2] - marks[1], 2),
        "clean_output": done.stdout.strip(),
        "leader_pass_s": round(marks[5] - marks[4], 2),
        "leader_pass_deleted": by_leader,
        "runs_triggered": triggered[0],
    }
    return out | _tick_figures(ticks, marks)


PHASES = ["before", "cli_clean", "after", "reseed", "leader_pass", "after_pass"]


def _tick_figures(ticks: Ticks, marks: list[float]) -> dict[str, Any]:
    """The leader's busy ticks of each phase (between successive marks), reseeding aside."""
    out: dict[str, Any] = {}
    for name, (a, b) in zip(PHASES, itertools.pairwise(marks), strict=False):
        if name == "reseed":
            continue
        busy = [s * 1000 for at, s, was_busy in ticks.ticks if a <= at < b and was_busy]
        figures = summary(busy) if busy else {"min": 0, "p50": 0, "p95": 0, "max": 0}
        out[f"{name}_busy_ticks"] = len(busy)
        for k, v in figures.items():
            out[f"{name}_tick_ms_{k}"] = round(v, 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=2_000)
    p.add_argument("--phase", type=float, default=15.0, help="seconds before and after")
    p.add_argument("--quick", action="store_true", help="20,000 events, 400 runs, 8 s phases")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if a.quick:
        a.events, a.runs, a.phase = 20_000, 400, 8.0
    ensure_services()
    r = measure(a.events, a.runs, a.phase)
    print(f"seeded {a.events} events and {a.runs} runs (60 days old) in {r['seed_s']} s")
    print(f"haflow db clean --older-than 30d: {r['clean_s']} s: {r['clean_output']}")
    passed = sum(r["leader_pass_deleted"].values())
    print(f"the same again by the leader's pass: {passed} rows in {r['leader_pass_s']} s")
    print(f"leader's busy ticks while a run of 10 tasks was triggered every {TRIGGER_EVERY_S} s:")
    print(f"{'phase':<12} {'ticks':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name in ("before", "cli_clean", "after", "leader_pass", "after_pass"):
        print(
            f"{name:<12} {r[f'{name}_busy_ticks']:>6} {r[f'{name}_tick_ms_p50']:>8} "
            f"{r[f'{name}_tick_ms_p95']:>8} {r[f'{name}_tick_ms_max']:>8}"
        )
    if a.json:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
