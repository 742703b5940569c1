"""Apache Airflow 3 and haflow, measured the same way on the same machine, side by side.

    AIRFLOW_VENV=/opt/airflow-venv python benchmarks/peer_airflow.py [--fanout 200] [--chain 50]
        [--parallelism 8] [--timeout 900] [--only airflow|haflow] [--json]

With AIRFLOW_VENV pointing at a virtualenv that holds apache-airflow 3.x, first runs Airflow on a
fresh PostgreSQL database (AIRFLOW_HOME in a temporary folder, `airflow db migrate`, then
`airflow api-server`, `airflow dag-processor` and `airflow scheduler`, each in a process group of
its own), with Airflow's default settings except the LocalExecutor with [core] parallelism =
--parallelism and the execution API of Airflow 3 (through which every task reports its state)
pointed at that api-server. Three DAGs of no-op PythonOperator tasks are run with
`airflow dags trigger`: a warm-up of 2 x parallelism tasks, untimed; (1) a root fanned out to N
tasks (N=200): wall time from the run's creation (queued_at) to its end, and tasks/s; (2) a chain
of M tasks (M=50): per-hop latency, from one task instance's end_date to the next one's
start_date, p50 / p95. The figures are read from Airflow's own database, and so are the fan-out's
commits per task (PostgreSQL's counter, every process included); the RSS of each of the three
process trees, and the PSS of all of them, is read from /proc after the runs. Then haflow's local
executor is measured with the same sizes and pool size through throughput.py's `measure`.

Prints one row per metric with a ratio that reads as haflow's advantage (haflow/airflow for
tasks/s, airflow/haflow for seconds, commits and latencies) and, with --json, one JSON object as
the last line. Without a usable AIRFLOW_VENV it says how to make one and exits 0. Every process it
started is stopped and the database dropped on any exit; Airflow's home and logs are kept (and
named) only when the Airflow side fails. Not part of CI.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
import throughput
from common import (
    commits_so_far,
    ensure_services,
    free_ports,
    fresh_postgres,
    run_figures,
    stop_group,
)

from tests.daemons import launch  # importable once `common` has put the checkout on sys.path

HOW_TO = """\
Airflow is not measured: set AIRFLOW_VENV to a virtualenv holding apache-airflow 3.x, e.g.

    python3 -m venv /opt/airflow-venv
    /opt/airflow-venv/bin/pip install apache-airflow==3.3.2 \\
        apache-airflow-providers-postgres psycopg2-binary
    AIRFLOW_VENV=/opt/airflow-venv python benchmarks/peer_airflow.py
"""

DAGS = """
from datetime import datetime

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG


def noop():
    pass


def op(task_id):
    return PythonOperator(task_id=task_id, python_callable=noop)


ALWAYS_ON = dict(
    schedule=None, start_date=datetime(2026, 1, 1), catchup=False, is_paused_upon_creation=False
)

with DAG("bench_fanout", max_active_runs=1, **ALWAYS_ON):
    op("root") >> [op(f"t{{i:04d}}") for i in range({fanout})]

with DAG("bench_warmup", **ALWAYS_ON):
    [op(f"w{{i:04d}}") for i in range({warm})]

with DAG("bench_chain", **ALWAYS_ON):
    prev = None
    for i in range({chain}):
        cur = op(f"c{{i:04d}}")
        if prev is not None:
            prev >> cur
        prev = cur
"""
DAG_IDS = ("bench_warmup", "bench_fanout", "bench_chain")
DAEMONS = ("api-server", "dag-processor", "scheduler")  # started in this order, stopped reversed

RUN_SQL = "SELECT state, queued_at, end_date FROM dag_run WHERE dag_id = %s AND run_id = %s"
CHAIN_SQL = (
    "SELECT task_id, start_date, end_date FROM task_instance"
    " WHERE dag_id = 'bench_chain' AND run_id = %s ORDER BY task_id"
)
PARSED_SQL = "SELECT count(DISTINCT dag_id) FROM serialized_dag WHERE dag_id = ANY(%s)"

# metric, and which way is better for its ratio ("" = no ratio)
ROWS = [
    ("fanout_tasks", ""),
    ("fanout_seconds", "lower"),
    ("fanout_tasks_per_s", "higher"),
    ("fanout_commits_per_task", "lower"),
    ("chain_hop_p50_ms", "lower"),
    ("chain_hop_p95_ms", "lower"),
    ("api_server_tree_rss_mib", ""),
    ("dag_processor_tree_rss_mib", ""),
    ("scheduler_tree_rss_mib", ""),
    ("total_rss_mib", ""),
    ("total_pss_mib", ""),
    ("db_commits_per_s", ""),
]


@dataclass
class AirflowSite:
    """One Airflow installation under test: its home, its environment and its daemons, each in a
    process group of its own so that stopping it stops its executor workers and children too."""

    venv: Path
    home: Path
    env: dict[str, str]
    url: str
    daemons: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def command(self, *args: str) -> list[str]:
        return [str(self.venv / "bin" / "airflow"), *args]

    def cli(self, *args: str, timeout: float = 600.0) -> None:
        """Run `airflow ARGS` to its end, its output appended to cli.log."""
        log, shown = self.home / "cli.log", " ".join(args)
        with open(log, "ab") as out:
            try:
                done = subprocess.run(
                    self.command(*args),
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise SystemExit(f"`airflow {shown}` ran over {timeout} s; see {log}") from None
        if done.returncode != 0:
            raise SystemExit(f"`airflow {shown}` exited {done.returncode}; see {log}")

    def start(self) -> None:
        for name in DAEMONS:
            self.daemons[name] = launch(self.command(name), self.env, self.log(name))

    def stop(self) -> None:
        for name in reversed(list(self.daemons)):
            stop_group(self.daemons[name], grace_s=30)
        kill_strays(f"AIRFLOW_HOME={self.home}")

    def log(self, name: str) -> Path:
        return self.home / f"{name}.log"

    def logs(self) -> str:
        return ", ".join(str(self.log(name)) for name in self.daemons)

    def check_alive(self) -> None:
        """Stop the measurement as soon as one daemon has died: the rest would only limp on."""
        for name, proc in self.daemons.items():
            if proc.poll() is not None:
                raise SystemExit(f"airflow {name} exited {proc.returncode}; see {self.log(name)}")


def kill_strays(marker: str) -> None:
    """SIGKILL what is left of this installation: Airflow 3 runs each task in a session of its
    own, out of its executor's process group; every such process still carries `marker` in the
    environment it inherited."""
    needle = marker.encode() + b"\0"
    for environ in Path("/proc").glob("[0-9]*/environ"):
        pid = int(environ.parent.name)
        try:
            if pid != os.getpid() and needle in environ.read_bytes():
                os.kill(pid, signal.SIGKILL)
        except OSError:
            continue  # ended meanwhile, or not ours to read


def airflow_version(venv: Path) -> str | None:
    """The apache-airflow-core version installed in `venv` (a 3.x-only package), None if none."""
    python = venv / "bin" / "python"
    if not (python.exists() and (venv / "bin" / "airflow").exists()):
        return None
    probe = "import importlib.metadata as m; print(m.version('apache-airflow-core'))"
    done = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def airflow_env(home: Path, url: str, port: int, parallelism: int) -> dict[str, str]:
    """Airflow's default settings but for what this benchmark must fix; none of the caller's
    AIRFLOW* or PYTHON* variables leak in."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON"))}
    keep.pop("VIRTUAL_ENV", None)
    database = url.replace("postgresql://", "postgresql+psycopg2://")
    return {
        **keep,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        # Airflow 3 tasks report through the api-server's execution API, even with LocalExecutor
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        # the scheduler signs the tasks' tokens and the api-server checks them: one shared secret
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
    }


def measure_airflow(
    venv: Path, fanout: int, chain: int, parallelism: int, timeout: float
) -> dict[str, float]:
    """Airflow's figures from a fresh database and home; the home and its logs are kept and
    named when anything fails, removed otherwise."""
    home = Path(tempfile.mkdtemp(prefix="peer_airflow_"))
    try:
        with fresh_postgres("airflow_bench", migrated=False) as url:
            env = airflow_env(home, url, free_ports(1)[0], parallelism)
            site = AirflowSite(venv, home, env, url)
            figures = _measure_airflow(site, fanout, chain, parallelism, timeout)
    except BaseException:
        print(f"Airflow's home and logs are kept in {home}", file=sys.stderr)
        raise
    shutil.rmtree(home, ignore_errors=True)
    return figures


def _measure_airflow(
    site: AirflowSite, fanout: int, chain: int, parallelism: int, timeout: float
) -> dict[str, float]:
    (site.home / "dags").mkdir()
    (site.home / "dags" / "bench.py").write_text(
        DAGS.format(fanout=fanout, chain=chain, warm=parallelism * 2)
    )
    print("  airflow db migrate ...", flush=True)
    site.cli("db", "migrate", timeout=timeout)
    try:
        site.start()
        with psycopg.connect(site.url, autocommit=True) as conn:
            wait_ready(site, conn, timeout)
            print("  warm-up, fan-out, chain ...", flush=True)
            run_dag(site, conn, "bench_warmup", "warmup", timeout)
            before = commits_so_far(site.url)
            run_dag(site, conn, "bench_fanout", "fanout", timeout)
            after = commits_so_far(site.url)
            run_dag(site, conn, "bench_chain", "chain", timeout)
            figures = airflow_figures(conn, fanout)
        if before is not None and after is not None:
            figures["fanout_commits_per_task"] = round((after - before) / (fanout + 1), 2)
        figures.update(daemons_rss(site))
        return figures
    finally:
        site.stop()


def wait_until(site: AirflowSite, what: str, check: Callable[[], bool], timeout: float) -> None:
    """Poll `check` while every daemon lives; fail naming the logs after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        site.check_alive()
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not happen within {timeout} s; see {site.logs()}")
        time.sleep(0.2)


def wait_ready(site: AirflowSite, conn: psycopg.Connection[Any], timeout: float) -> None:
    port = site.env["AIRFLOW__API__PORT"]
    health = f"http://127.0.0.1:{port}/api/v2/monitor/health"
    wait_until(site, f"the api-server answering {health}", lambda: _answers(health), timeout)

    def parsed() -> bool:
        row = conn.execute(PARSED_SQL, [list(DAG_IDS)]).fetchone()
        return row is not None and row[0] == len(DAG_IDS)

    wait_until(site, f"the dag-processor storing {', '.join(DAG_IDS)}", parsed, timeout)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status) == 200
    except OSError:
        return False


def run_dag(
    site: AirflowSite, conn: psycopg.Connection[Any], dag_id: str, run_id: str, timeout: float
) -> None:
    """Trigger `dag_id` by the CLI and wait for its run to end; a failed run fails the benchmark."""
    site.cli("dags", "trigger", dag_id, "--run-id", run_id)
    state = ""

    def ended() -> bool:
        nonlocal state
        row = conn.execute(RUN_SQL, [dag_id, run_id]).fetchone()
        state = row[0] if row is not None else "missing"
        return state in ("success", "failed")

    wait_until(site, f"the end of {dag_id} run {run_id}", ended, timeout)
    if state != "success":
        raise SystemExit(f"{dag_id} run {run_id} ended {state}; see {site.logs()}")


def airflow_figures(conn: psycopg.Connection[Any], fanout: int) -> dict[str, float]:
    """The same figures as throughput.py's, from Airflow's dag_run and task_instance rows."""
    row = conn.execute(RUN_SQL, ["bench_fanout", "fanout"]).fetchone()
    assert row is not None
    _, queued_at, end_date = row
    seconds = (end_date - queued_at).total_seconds()
    tis = conn.execute(CHAIN_SQL, ["chain"]).fetchall()
    hops = [(cur[1] - prev[2]).total_seconds() * 1000 for prev, cur in itertools.pairwise(tis)]
    return run_figures(fanout + 1, seconds, hops)


def daemons_rss(site: AirflowSite) -> dict[str, float]:
    """RSS of each daemon's process group (the daemon, its executor workers, parse processes
    and web workers), summed, in MiB; and the PSS of all three, which counts the pages that
    forked workers share with their parent once."""
    figures, pss = {}, 0.0
    for name, proc in site.daemons.items():
        memory = group_memory_mib(proc.pid)
        figures[f"{name.replace('-', '_')}_tree_rss_mib"] = memory["Rss"]
        pss += memory["Pss"]
    figures["total_rss_mib"] = round(sum(figures.values()), 1)
    figures["total_pss_mib"] = round(pss, 1)
    return figures


def group_memory_mib(pgid: int) -> dict[str, float]:
    """Rss and Pss of the processes in group `pgid`, summed, in MiB."""
    kib = {"Rss": 0, "Pss": 0}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # the fields after the command name (which may hold spaces): state, ppid, pgrp, ...
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            rollup = (stat.parent / "smaps_rollup").read_text()
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile
        for line in rollup.splitlines():
            key, _, value = line.partition(":")
            if key in kib:
                kib[key] += int(value.split()[0])
    return {key: round(value / 1024, 1) for key, value in kib.items()}


def ratio(airflow: float | None, haflow: float | None, better: str) -> float | None:
    """How many times better haflow's figure is than Airflow's."""
    if not better or not airflow or not haflow:
        return None
    return round(haflow / airflow if better == "higher" else airflow / haflow, 2)


def ratios(results: dict[str, dict[str, float]]) -> dict[str, float]:
    airflow, haflow = results.get("airflow", {}), results.get("haflow", {})
    found = {m: ratio(airflow.get(m), haflow.get(m), better) for m, better in ROWS}
    return {m: r for m, r in found.items() if r is not None}


def print_table(results: dict[str, dict[str, float]], version: str | None) -> None:
    airflow, haflow, times = results.get("airflow", {}), results.get("haflow", {}), ratios(results)
    airflow_col = f"airflow {version}" if version else "airflow"
    print(f"{'metric':<28}{airflow_col:>16}{'haflow':>12}{'ratio':>10}")
    for metric, _ in ROWS:
        if metric not in airflow and metric not in haflow:
            continue
        cells = [airflow.get(metric, ""), haflow.get(metric, "")]
        shown = f"{times[metric]}x" if metric in times else ""
        print(f"{metric:<28}" + f"{cells[0]!s:>16}{cells[1]!s:>12}{shown:>10}")
    print("ratio: haflow/airflow for tasks/s, airflow/haflow for seconds, commits and latencies")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fanout", type=int, default=200, help="tasks fanned out from the root")
    ap.add_argument("--chain", type=int, default=50, help="tasks in the chain")
    ap.add_argument("--parallelism", type=int, default=8, help="tasks running at once")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per run")
    ap.add_argument("--only", choices=["airflow", "haflow"], default=None, help="one side only")
    ap.add_argument("--json", action="store_true", help="print a JSON object as the last line")
    return ap.parse_args()


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `finally`: daemons and database go


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    venv = Path(os.environ["AIRFLOW_VENV"]) if os.environ.get("AIRFLOW_VENV") else None
    version = airflow_version(venv) if venv is not None and args.only != "haflow" else None
    if args.only != "haflow" and (version is None or not version.startswith("3.")):
        found = f" (found apache-airflow-core {version} in {venv})" if version else ""
        print(HOW_TO.rstrip() + found)
        return
    ensure_services()
    sizes = {"fanout": args.fanout, "chain": args.chain, "parallelism": args.parallelism}
    results: dict[str, dict[str, float]] = {}
    if venv is not None and version is not None:
        print(f"measuring Airflow {version}: {sizes} ...", flush=True)
        results["airflow"] = measure_airflow(venv, **sizes, timeout=args.timeout)
    if args.only != "airflow":
        print(f"measuring haflow: {sizes} ...", flush=True)
        results["haflow"] = throughput.measure("local-postgresql", **sizes)
    print_table(results, version)
    if args.json:
        flat = {f"{side}_{k}": v for side, figures in results.items() for k, v in figures.items()}
        times = {f"ratio_{k}": v for k, v in ratios(results).items()}
        print(json.dumps({"airflow_version": version, **sizes, **flat, **times}))


if __name__ == "__main__":
    main()
