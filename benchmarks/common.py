"""What the benchmarks share: a fresh PostgreSQL database each, percentile summaries, and the
tests' helpers (daemons are started and stopped the one way tests/daemons.py does it)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text

from haflow.metastore.engine import create_engine
from haflow.metastore.migrate import migrate

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the benchmarks run as scripts from a source checkout

from tests.daemons import start_haflow, stop_group  # noqa: E402
from tests.ports import free_ports  # noqa: E402
from tests.waiting import wait_for  # noqa: E402
from tests.zkensemble import ZkEnsemble  # noqa: E402

__all__ = [
    "ROOT",
    "ZkEnsemble",
    "commit_rate",
    "commits_so_far",
    "ensure_services",
    "free_ports",
    "fresh_postgres",
    "start_haflow",
    "stop_group",
    "wait_for",
]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def ensure_services() -> None:
    """Start (and install when root) the servers the benchmarks use, as the tests do."""
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "test-services.sh")], check=True, stdout=subprocess.DEVNULL
    )


@contextmanager
def fresh_postgres(prefix: str, *, migrated: bool = True) -> Iterator[str]:
    """A new database on the local PostgreSQL for one measurement, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN)
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
        if migrated:
            engine = create_engine(url)
            migrate(engine)
            engine.dispose()
        yield url
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def commit_rate(url: str, seconds: float = 2.0, clients: int = 4) -> float:
    """The database's own limit, measured in the run that compares with it: single-row INSERT
    commits per second from `clients` threads through the same driver and pool haflow uses
    (like `pgbench -N -c 4`, on a table of its own, dropped afterwards)."""
    engine = create_engine(url, pool_size=clients)
    table = f"bench_commit_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {table} (v INTEGER)"))
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def loop(k: int) -> None:
        while time.monotonic() < stop:
            with engine.begin() as conn:
                conn.execute(text(f"INSERT INTO {table} (v) VALUES (:v)"), {"v": counts[k]})
            counts[k] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=loop, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - started
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {table}"))
    engine.dispose()
    return sum(counts) / took


def commits_so_far(url: str) -> int | None:
    """Transactions committed in the database of `url` (PostgreSQL's statistics, flushed
    within a second); None where the database keeps no such count (SQLite)."""
    if not url.startswith("postgresql"):
        return None
    time.sleep(1.2)  # PostgreSQL 15 flushes a backend's counters at most once a second
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(
            text("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        ).scalar_one()
    engine.dispose()
    return int(n)


TICKS = os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    kids, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def postgres_pids() -> list[int]:
    """The local PostgreSQL server's processes (its backends included)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == "postgres":
                    found.append(int(entry))
            except OSError:
                continue
    return found


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """Seconds of CPU of each process: its own, and its children's that it has reaped (so a
    short-lived child counts once its parent reaps it, and a live one on its own)."""
    out = {}
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[p] = sum(int(f) for f in fields[11:15]) / TICKS  # utime stime cutime cstime
    return out


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two `cpu_by_pid` readings, by the processes of the second."""
    return sum(seconds - before.get(p, 0.0) for p, seconds in after.items())


def run_figures(tasks: int, seconds: float, hops_ms: list[float]) -> dict[str, float]:
    """A fan-out's size, time and tasks/s and a chain's hop latencies, as every throughput
    benchmark prints them (haflow's and Airflow's alike)."""
    hops = sorted(hops_ms)
    return {
        "fanout_tasks": tasks,
        "fanout_seconds": round(seconds, 3),
        "fanout_tasks_per_s": round(tasks / seconds, 1),
        "chain_hop_p50_ms": round(statistics.median(hops), 1),
        "chain_hop_p95_ms": round(hops[int(0.95 * (len(hops) - 1))], 1),
    }


def summary(values: list[float]) -> dict[str, float]:
    """min / p50 / p95 / max of a list of measurements."""
    values = sorted(values)
    return {
        "min": values[0],
        "p50": statistics.median(values),
        "p95": values[min(len(values) - 1, round(0.95 * (len(values) - 1)))],
        "max": values[-1],
    }
