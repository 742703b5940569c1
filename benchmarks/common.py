"""What the benchmarks share: a fresh PostgreSQL database each, percentile summaries, and the
tests' helpers (daemons are started and stopped the one way tests/daemons.py does it)."""

from __future__ import annotations

import statistics
import subprocess
import sys
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
from tests.zkensemble import ZkEnsemble  # noqa: E402

__all__ = ["ROOT", "ZkEnsemble", "ensure_services", "fresh_postgres", "start_haflow", "stop_group"]
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


def summary(values: list[float]) -> dict[str, float]:
    """min / p50 / p95 / max of a list of measurements."""
    values = sorted(values)
    return {
        "min": values[0],
        "p50": statistics.median(values),
        "p95": values[min(len(values) - 1, round(0.95 * (len(values) - 1)))],
        "max": values[-1],
    }
