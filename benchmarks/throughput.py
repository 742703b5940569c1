"""Scheduling throughput and hop latency of the local executor, side by side per metastore.

    python benchmarks/throughput.py [--quick] [--json]
        [--configs local-postgresql,local-sqlite,celery-redis,celery-rabbitmq]
        [--executor local|celery] [--broker redis|rabbitmq]

Runs the real scheduler in this process with the local executor (pool processes) or the Celery
executor (one `haflow worker` process with --concurrency = --parallelism, on PostgreSQL, through
Redis or RabbitMQ), against a fresh database, one configuration per column:
(1) one run of a DAG of N no-op Python tasks fanned out from one root (N=1000, --quick 200):
wall time from the run's creation to its end, and tasks/s; (2) one run of a chain of M no-op
tasks (M=50, --quick 20): per-hop latency, from one task's attempt ending to the next one's
attempt starting, p50 / p95. Before each column it measures the database's own limit in the
same run (single-row commits per second, 4 clients, through the same driver), and reports the
fan-out's commits per task (PostgreSQL's counter, every process of the run included) and the
share of that limit the fan-out used, and the CPU the fan-out cost per task: haflow's processes
(this one, every descendant and a Celery worker's tree) and PostgreSQL's, from /proc. Prints a
table next to Apache Airflow 3.3.2's reference figures and, with --json, one JSON object as the
last line.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from common import (
    commit_rate,
    commits_so_far,
    cpu_by_pid,
    cpu_spent,
    ensure_services,
    fresh_postgres,
    postgres_pids,
    run_figures,
    start_haflow,
    stop_group,
    tree,
)

from haflow.assembly.scheduler import build_scheduler
from haflow.config import load_settings
from haflow.core.clock import utcnow
from haflow.metastore.engine import create_engine
from haflow.metastore.migrate import migrate
from haflow.metastore.repository import Repository

AIRFLOW = {"fanout_tasks_per_s": 8.0, "chain_hop_p50_ms": 970.0}
TARGET = {"fanout_tasks_per_s": 400.0, "chain_hop_p50_ms": 20.0, "fanout_commits_per_task": 3.0}

DAGS = """
from datetime import datetime
from haflow.dag import DAG, PythonTask

def noop():
    pass

with DAG("bench_fanout", start_date=datetime(2026, 1, 1), max_active_runs=1):
    root = PythonTask("root", python_callable=noop)
    root >> [PythonTask(f"t{{i:04d}}", python_callable=noop) for i in range({fanout})]

with DAG("bench_warmup", start_date=datetime(2026, 1, 1)):
    [PythonTask(f"w{{i}}", python_callable=noop) for i in range({warm})]

with DAG("bench_chain", start_date=datetime(2026, 1, 1)):
    prev = None
    for i in range({chain}):
        cur = PythonTask(f"c{{i:03d}}", python_callable=noop)
        if prev is not None:
            prev >> cur
        prev = cur
"""


def wait_run(repo: Repository, dag_id: str, run_id: str, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if repo.runs.get(dag_id, run_id).state in ("success", "failed"):
            return
        time.sleep(0.05)
    raise SystemExit(f"{dag_id} {run_id} did not finish within {limit_s} s")


def measure(
    config: str, fanout: int, chain: int, parallelism: int, settings: dict[str, str] | None = None
) -> dict[str, float]:
    executor, _, rest = config.partition("-")
    backend = rest if executor == "local" else "postgresql"
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        database = (
            fresh_postgres("haflow_bench")
            if backend == "postgresql"
            else contextlib.nullcontext(f"sqlite:///{tmp / 'bench.db'}")
        )
        with database as url:
            env = {
                "HAFLOW__CORE__SQL_ALCHEMY_CONN": url,
                "HAFLOW__CORE__DAGS_FOLDER": str(tmp / "dags"),
                "HAFLOW__CORE__PARALLELISM": str(parallelism),
                "HAFLOW__LOGGING__LEVEL": "WARNING",
                **(settings or {}),
            }
            if executor == "celery":
                env["HAFLOW__CORE__EXECUTOR"] = "celery"
                env["HAFLOW__CELERY__BROKER_URL"] = BROKERS[rest]
            limit = commit_rate(url)
            figures = _measure(tmp, env, fanout, chain, parallelism)
            figures["db_commits_per_s"] = round(limit, 1)
            per_task = figures.get("fanout_commits_per_task")
            if per_task is not None:
                used = figures["fanout_tasks_per_s"] * per_task / limit
                figures["fanout_share_of_db_limit"] = round(used, 3)
            return figures


BROKERS = {"redis": "redis://127.0.0.1:6379/9", "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//"}


def _worker(tmp: Path, env: dict[str, str], parallelism: int) -> subprocess.Popen[bytes]:
    return start_haflow(
        *("worker", "-c", str(parallelism), "-n", "bench", "--allow-root"),
        env={**os.environ, "HAFLOW_HOME": str(tmp), **env},
        log=tmp / "worker.log",
    )


def _measure(
    tmp: Path, env: dict[str, str], fanout: int, chain: int, parallelism: int
) -> dict[str, float]:
    (tmp / "dags").mkdir()
    (tmp / "dags" / "bench.py").write_text(
        DAGS.format(fanout=fanout, chain=chain, warm=parallelism * 2)
    )
    migrate(create_engine(env["HAFLOW__CORE__SQL_ALCHEMY_CONN"]))
    settings = load_settings(home=tmp, environ=env)
    worker = _worker(tmp, env, parallelism) if "HAFLOW__CORE__EXECUTOR" in env else None
    service = build_scheduler(settings)
    repo = service.repo
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while len(repo.dags.all()) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        # warm up: every pool process imports haflow and parses the DAG file before timing
        repo.runs.trigger("bench_warmup", {}, utcnow(), run_id="warmup")
        wait_run(repo, "bench_warmup", "warmup", 120)
        url = env["HAFLOW__CORE__SQL_ALCHEMY_CONN"]
        before, cpu_before = commits_so_far(url), _cpu(worker)
        repo.runs.trigger("bench_fanout", {}, utcnow(), run_id="fanout")
        wait_run(repo, "bench_fanout", "fanout", 600)
        after, cpu_after = commits_so_far(url), _cpu(worker)
        repo.runs.trigger("bench_chain", {}, utcnow(), run_id="chain")
        wait_run(repo, "bench_chain", "chain", 600)
        figures = _figures(repo, fanout)
        spent = {
            kind: cpu_spent(cpu_before[kind], cpu_after[kind]) * 1000 / (fanout + 1)
            for kind in cpu_after
        }
        spent["haflow"] = spent["scheduler"] + spent["workers"] + spent["tasks"]
        for kind, ms in spent.items():
            figures[f"fanout_cpu_ms_per_task_{kind}"] = round(ms, 2)
        if before is not None and after is not None:
            # the flush wait before the second reading is idle time: commits, not seconds
            figures["fanout_commits_per_task"] = round((after - before) / (fanout + 1), 2)
        return figures
    finally:
        service.stop_requested.set()
        thread.join(60)
        if worker is not None:
            stop_group(worker, grace_s=30)


def _cpu(worker: subprocess.Popen[bytes] | None) -> dict[str, dict[int, float]]:
    """CPU so far of haflow's processes by role and of PostgreSQL's: the scheduler (this
    process), its workers (pool processes, or a Celery worker's tree) and the tasks (the warm
    processes, with the attempt children they reaped)."""
    me = os.getpid()
    pids = tree(me)
    if worker is not None and worker.pid not in pids:
        pids += tree(worker.pid)
    tasks = [p for p in pids if _is_warm(p)]
    workers = [p for p in pids if p != me and p not in tasks]
    return {
        "scheduler": cpu_by_pid([me]),
        "workers": cpu_by_pid(workers),
        "tasks": cpu_by_pid(tasks),
        "db": cpu_by_pid(postgres_pids()),
    }


def _is_warm(pid: int) -> bool:
    try:
        return b"haflow.worker.warm" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _figures(repo: Repository, fanout: int) -> dict[str, float]:
    run = repo.runs.get("bench_fanout", "fanout")
    assert run.state == "success", f"fan-out run ended {run.state}"
    again = [
        t.task_id for t in repo.history.task_instances("bench_fanout", "fanout") if t.attempt > 1
    ]
    assert not again, (
        f"{len(again)} fan-out tasks ran more than once (lost attempts): not a fair figure"
    )
    assert run.ended_at is not None
    seconds = (run.ended_at - run.created_at).total_seconds()
    tis = {t.task_id: t for t in repo.history.task_instances("bench_chain", "chain")}
    attempts = [repo.history.attempts(tis[tid].id)[-1] for tid in sorted(tis)]
    hops = []
    for prev, cur in itertools.pairwise(attempts):
        assert prev.ended_at is not None and cur.started_at is not None
        hops.append((cur.started_at - prev.ended_at).total_seconds() * 1000)
    return run_figures(fanout + 1, seconds, hops)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    ap.add_argument("--json", action="store_true", help="print a JSON object as the last line")
    ap.add_argument(
        "--configs",
        default="local-postgresql,local-sqlite,celery-redis,celery-rabbitmq",
        help="columns to measure, side by side",
    )
    ap.add_argument(
        "--executor",
        choices=["local", "celery"],
        default=None,
        help="shorthand: only this executor (with --broker for celery)",
    )
    ap.add_argument("--broker", choices=["redis", "rabbitmq"], default=None)
    ap.add_argument("--parallelism", type=int, default=8)
    ap.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="SECTION__KEY=VALUE",
        help="a haflow setting for every column, e.g. core__attempts_per_process=8",
    )
    args = ap.parse_args()
    settings = dict(_setting(s) for s in args.setting)
    configs = args.configs.split(",")
    if args.executor == "celery":
        configs = [f"celery-{args.broker}"] if args.broker else ["celery-redis", "celery-rabbitmq"]
    elif args.executor == "local":
        configs = ["local-postgresql", "local-sqlite"]
    fanout, chain = (200, 20) if args.quick else (1000, 50)
    ensure_services()
    results = {}
    for config in configs:
        print(f"measuring {config}: fan-out of {fanout}, chain of {chain} ...", flush=True)
        results[config] = measure(config, fanout, chain, args.parallelism, settings)
    print_table(results)
    if args.json:
        print(
            json.dumps(
                {
                    "parallelism": args.parallelism,
                    "settings": settings,
                    "fanout": fanout,
                    "chain": chain,
                    **{f"{b}_{k}": v for b, r in results.items() for k, v in r.items()},
                }
            )
        )


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or "__" not in name:
        raise SystemExit(f"--setting {text!r}: expected SECTION__KEY=VALUE")
    return f"HAFLOW__{name.upper()}", value


def print_table(results: dict[str, dict[str, float]]) -> None:
    metrics = [
        "db_commits_per_s",
        "fanout_tasks",
        "fanout_seconds",
        "fanout_tasks_per_s",
        "fanout_commits_per_task",
        "fanout_share_of_db_limit",
        "fanout_cpu_ms_per_task_haflow",
        "fanout_cpu_ms_per_task_scheduler",
        "fanout_cpu_ms_per_task_workers",
        "fanout_cpu_ms_per_task_tasks",
        "fanout_cpu_ms_per_task_db",
        "chain_hop_p50_ms",
        "chain_hop_p95_ms",
    ]
    cols = [*results, "airflow 3.3.2", "target"]
    print(f"{'metric':<30}" + "".join(f"{c:>18}" for c in cols))
    for m in metrics:
        row = [results[b].get(m, "") for b in results]
        row += [AIRFLOW.get(m, ""), TARGET.get(m, "")]
        print(f"{m:<30}" + "".join(f"{v!s:>18}" for v in row))


if __name__ == "__main__":
    main()
