"""A real scheduler (with its local executor) in a thread of the test process, over DAG files
the test writes: the one way integration tests run DAGs end to end without a daemon."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from haflow.assembly.scheduler import build_scheduler
from haflow.config import load_settings
from haflow.scheduler.service import SchedulerService


@contextlib.contextmanager
def scheduler_thread(
    home: Path, db_url: str, dag_files: Mapping[str, str], **settings: str
) -> Iterator[SchedulerService]:
    """Write `dag_files` (name -> source) into `home`/dags and run a scheduler on them, its
    loop every 0.1 s; `settings` are more HAFLOW__* variables. The scheduler disposes of its
    engine when it stops: read everything from its repository inside the block."""
    dags = home / "dags"
    dags.mkdir(exist_ok=True)
    for name, source in dag_files.items():
        (dags / name).write_text(source)
    environ = {
        "HAFLOW__CORE__SQL_ALCHEMY_CONN": db_url,
        "HAFLOW__CORE__DAGS_FOLDER": str(dags),
        "HAFLOW__SCHEDULER__LOOP_INTERVAL": "0.1",
        **settings,
    }
    service = build_scheduler(load_settings(home=home, environ=environ))
    thread = threading.Thread(target=service.run, name="scheduler", daemon=True)
    thread.start()
    try:
        yield service
    finally:
        service.stop_requested.set()
        thread.join(30)
        assert not thread.is_alive(), "the scheduler did not stop within 30 s"
