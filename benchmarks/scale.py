"""How the scheduler's cost grows with DAGs and active task instances, and what idle daemons cost.

    python benchmarks/scale.py [--sizes 100,1000] [--tasks 10] [--window 30] [--json]
        [--profile]     # samples the leader with py-spy (`pip install py-spy`)

For each size N: N DAGs on cron schedules (`*/5 * * * *`, ten to a file), each of `--tasks`
independent no-op tasks, on a fresh PostgreSQL database. Two real `haflow scheduler`
processes (database election: a leader and a standby, Celery executor on Redis with no worker
for the default queue, so every task instance stays active), an idle `haflow worker` on a
queue of its own and a `haflow webserver` (2 gunicorn workers). Measured:
- idle: each daemon's RSS (the scheduler's whole process tree too: its DAG parse pool) once the
  DAGs are parsed and before any run exists;
- loaded: one run triggered for every DAG (N x tasks active task instances; at most
  `[scheduler] max_active_tasks` of them queued at once), then over `--window` seconds: the
  leader's loop time per iteration (mean, and p50 / p95 as the upper bound of the
  `haflow_scheduler_loop_seconds` histogram bucket), and the CPU of the leader and of the
  standby (process trees) as a share of one core.
Goals (issue 16): loop time grows at most linearly with active task instances; a standby costs
<= 1 % of a core; an idle scheduler <= 150 MiB RSS. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from common import (
    cpu_by_pid,
    cpu_spent,
    ensure_services,
    free_ports,
    fresh_postgres,
    start_haflow,
    stop_group,
    tree,
    wait_for,
)
from sqlalchemy import text

from haflow.core.clock import utcnow
from haflow.metastore.engine import create_engine
from haflow.metastore.repository import Repository

LOOP = "haflow_scheduler_loop_seconds"
PAGE = os.sysconf("SC_PAGE_SIZE")
DAG_FILE = """
from datetime import datetime
from haflow.dag import DAG, PythonTask

def noop():
    pass

for d in range({first}, {last}):
    with DAG(f"scale_{{d:05d}}", schedule="*/5 * * * *", start_date=datetime(2026, 1, 1)):
        [PythonTask(f"t{{i}}", python_callable=noop) for i in range({tasks})]
"""


def rss_mib(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE
        except OSError:
            continue
    return round(total / 2**20, 1)


def loop_histogram(port: int) -> dict[str, float]:
    """The leader's `haflow_scheduler_loop_seconds` buckets, sum and count, from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        body = resp.read().decode()
    out: dict[str, float] = {}
    for line in body.splitlines():
        if line.startswith(LOOP + "_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[le] = float(line.rsplit(" ", 1)[1])
        elif line.startswith(
            ("haflow_scheduler_loop_seconds_sum", "haflow_scheduler_loop_seconds_count")
        ):
            out[line.split(" ", 1)[0].rsplit("_", 1)[1]] = float(line.rsplit(" ", 1)[1])
    return out


def quantile_bound(before: dict[str, float], after: dict[str, float], q: float) -> float:
    """The upper bound of the bucket holding quantile `q` of the iterations in between."""
    count = after["count"] - before["count"]
    bounds = sorted((float(le), le) for le in after if le not in ("sum", "count"))
    for bound, le in bounds:
        if after[le] - before.get(le, 0.0) >= q * count:
            return bound
    return float("inf")


Ranking = list[tuple[str, float]]


def hot_spots(collapsed: Path, top: int = 12) -> tuple[Ranking, Ranking]:
    """From py-spy's collapsed stacks, by share of the samples: haflow's and SQLAlchemy's
    functions inclusive (each counted once per stack), and the innermost frames (self time)."""
    inclusive: dict[str, int] = {}
    innermost: dict[str, int] = {}
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        samples += n
        frames = [_frame(f) for f in stack.split(";")]
        innermost[frames[-1][0]] = innermost.get(frames[-1][0], 0) + n
        for key in {key for key, ours in frames if ours}:
            inclusive[key] = inclusive.get(key, 0) + n

    def ranked(totals: dict[str, int]) -> Ranking:
        best = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
        return [(k, round(v / max(samples, 1), 3)) for k, v in best]

    return ranked(inclusive), ranked(innermost)


def _frame(frame: str) -> tuple[str, bool]:
    """("function (file.py)", whether it is haflow's or SQLAlchemy's) of one py-spy frame."""
    name, _, where = frame.partition(" (")
    ours = "haflow/" in where or "sqlalchemy/" in where
    return f"{name} ({where.rsplit('/', 1)[-1].split(':')[0].rstrip(')')})", ours


def measure(
    n_dags: int, tasks: int, window_s: float, profile: Path | None = None
) -> dict[str, float]:
    with fresh_postgres("haflow_scale") as url, tempfile.TemporaryDirectory() as tmpdir:
        home = Path(tmpdir)
        dags = home / "dags"
        dags.mkdir()
        for first in range(0, n_dags, 10):
            text_ = DAG_FILE.format(first=first, last=min(first + 10, n_dags), tasks=tasks)
            (dags / f"scale_{first:05d}.py").write_text(text_)
        m1, m2, web_port, worker_metrics = free_ports(4)
        env = {
            **os.environ,
            "HAFLOW_HOME": str(home),
            "HAFLOW__CORE__SQL_ALCHEMY_CONN": url,
            "HAFLOW__CORE__DAGS_FOLDER": str(dags),
            "HAFLOW__CORE__EXECUTOR": "celery",
            "HAFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/10",
            "HAFLOW__ELECTION__MODE": "database",
            "HAFLOW__WEBSERVER__SECRET_KEY": "scale-benchmark-key-of-32-bytes-at-least",
            "HAFLOW__LOGGING__LEVEL": "WARNING",
        }
        procs = {}
        try:
            for name, port in (("s1", m1), ("s2", m2)):
                procs[name] = start_haflow(
                    "scheduler",
                    env={**env, "HAFLOW__SCHEDULER__METRICS_PORT": str(port)},
                    log=home / f"{name}.log",
                )
            procs["worker"] = start_haflow(
                *("worker", "-c", "1", "-n", "idle", "-q", "idle", "--allow-root"),
                env={**env, "HAFLOW__WORKER__METRICS_PORT": str(worker_metrics)},
                log=home / "worker.log",
            )
            procs["web"] = start_haflow(
                "webserver",
                "--port",
                str(web_port),
                "--workers",
                "2",
                env=env,
                log=home / "web.log",
            )
            repo = Repository(create_engine(url), cluster="default")
            wait_for("every DAG parsed", lambda: len(repo.dags.all()) == n_dags, 600)
            wait_for("a leader", repo.leadership.current, 60)
            leader = repo.leadership.current()
            assert leader is not None
            lead_pid = int(str(leader.holder).split(":")[1])
            lead, standby = ("s1", "s2") if procs["s1"].pid == lead_pid else ("s2", "s1")
            time.sleep(5)  # settle after parsing
            out: dict[str, float] = {
                "dags": n_dags,
                "idle_scheduler_rss_mib": rss_mib([procs[lead].pid]),
                "idle_scheduler_tree_rss_mib": rss_mib(tree(procs[lead].pid)),
                "idle_standby_rss_mib": rss_mib([procs[standby].pid]),
                "idle_worker_tree_rss_mib": rss_mib(tree(procs["worker"].pid)),
                "idle_webserver_tree_rss_mib": rss_mib(tree(procs["web"].pid)),
            }
            now = utcnow()
            for d in repo.dags.all():
                repo.runs.trigger(d.dag_id, {}, now, run_id="scale")
            expected = n_dags * tasks
            with repo.engine.connect() as conn:

                def created() -> bool:
                    n = conn.execute(text("SELECT count(*) FROM task_instance")).scalar_one()
                    conn.commit()
                    return bool(n >= expected)

                wait_for(f"{expected} task instances", created, 600)
            time.sleep(5)
            ports = {"s1": m1, "s2": m2}
            h0 = loop_histogram(ports[lead])
            c0 = {k: cpu_by_pid(tree(procs[k].pid)) for k in (lead, standby)}
            t0 = time.monotonic()
            spy = None
            if profile is not None:
                spy = subprocess.Popen(
                    [
                        "py-spy",
                        "record",
                        "-p",
                        str(procs[lead].pid),
                        "-d",
                        str(int(window_s)),
                        "-f",
                        "raw",
                        "-o",
                        str(profile),
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            time.sleep(window_s)
            took = time.monotonic() - t0
            if spy is not None:
                spy.wait(60)
            c1 = {k: cpu_by_pid(tree(procs[k].pid)) for k in (lead, standby)}
            h1 = loop_histogram(ports[lead])
            iterations = h1["count"] - h0["count"]
            out.update(
                {
                    "active_task_instances": expected,
                    "loop_iterations": iterations,
                    "loop_mean_ms": round((h1["sum"] - h0["sum"]) / iterations * 1000, 1),
                    "loop_p50_ms_at_most": quantile_bound(h0, h1, 0.5) * 1000,
                    "loop_p95_ms_at_most": quantile_bound(h0, h1, 0.95) * 1000,
                    "leader_cpu_share": round(cpu_spent(c0[lead], c1[lead]) / took, 3),
                    "standby_cpu_share": round(cpu_spent(c0[standby], c1[standby]) / took, 4),
                    "loaded_scheduler_rss_mib": rss_mib([procs[lead].pid]),
                }
            )
            repo.engine.dispose()
            return out
        finally:
            for p in procs.values():
                stop_group(p, grace_s=20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100,1000", help="numbers of DAGs, one column each")
    ap.add_argument("--tasks", type=int, default=10, help="tasks per DAG")
    ap.add_argument("--window", type=float, default=30.0, help="seconds measured under load")
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="sample the leader with py-spy during the window; print its hot spots",
    )
    args = ap.parse_args()
    if args.profile and shutil.which("py-spy") is None:
        raise SystemExit("--profile needs py-spy on PATH: `.venv/bin/pip install py-spy`")
    ensure_services()
    results = {}
    for n in (int(x) for x in args.sizes.split(",")):
        print(f"measuring {n} DAGs of {args.tasks} tasks ...", flush=True)
        profile = Path(tempfile.mkdtemp()) / f"leader-{n}.txt" if args.profile else None
        results[str(n)] = measure(n, args.tasks, args.window, profile)
        if profile is not None and profile.exists():
            print(f"leader's hot spots with {n} DAGs (share of samples, inclusive):")
            inclusive, innermost = hot_spots(profile)
            for name, share in inclusive:
                print(f"  {share:6.1%}  {name}")
            print("innermost frames (self time):")
            for name, share in innermost:
                print(f"  {share:6.1%}  {name}")
    keys = list(next(iter(results.values())))
    print(f"{'DAGs':<30}" + "".join(f"{c:>12}" for c in results))
    for k in keys[1:]:
        print(f"{k:<30}" + "".join(f"{results[c][k]!s:>12}" for c in results))
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
