"""A scheduler daemon whose background part dies stops, naming the part, instead of limping on:
its metrics listener, its ZooKeeper worker watch (on a real ensemble) and its DAG file
processor, each killed under a real scheduler on a real metastore."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from haflow.assembly.scheduler import build_scheduler
from haflow.config import load_settings
from haflow.errors import HaflowError
from haflow.scheduler.service import SchedulerService
from tests.ports import free_port
from tests.redisserver import redis_url
from tests.waiting import wait_for

PG_OR_SQLITE = "sqlite"


class Running:
    """A scheduler run on a thread; `error` is what its `run` raised."""

    def __init__(self, service: SchedulerService) -> None:
        self.service = service
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="scheduler", daemon=True)

    def _run(self) -> None:
        try:
            self.service.run()
        except BaseException as exc:
            self.error = exc

    def part(self, name: str) -> Any:
        return next(p for p in self.service.extras if name in p.name)


@pytest.fixture(autouse=True)
def _metrics_stay_in_this_test() -> Iterator[None]:
    """A scheduler with a metrics port switches its process to prometheus-client's
    multiprocess mode (and sets PROMETHEUS_MULTIPROC_DIR, which every daemon a later test
    starts would inherit, pointing at a directory gone by then): undo both afterwards."""
    from prometheus_client import values

    from haflow.metrics.process import ENV

    saved_env, saved_value = os.environ.get(ENV), values.ValueClass
    yield
    values.ValueClass = saved_value
    if saved_env is None:
        os.environ.pop(ENV, None)
    else:
        os.environ[ENV] = saved_env


@pytest.fixture
def start(tmp_path: Path, db_url: str) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def _start(**env: str) -> Running:
        (tmp_path / "dags").mkdir(exist_ok=True)
        settings = load_settings(
            home=tmp_path,
            environ={
                "HAFLOW__CORE__SQL_ALCHEMY_CONN": db_url,
                "HAFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags"),
                "HAFLOW__CORE__PARALLELISM": "1",
                "HAFLOW__SCHEDULER__LOOP_INTERVAL": "0.1",
                **env,
            },
        )
        r = Running(build_scheduler(settings))
        r.thread.start()
        started.append(r)
        wait_for("a leader", lambda: r.service.epoch is not None, timeout=30)
        return r

    yield _start
    for r in started:
        r.service.stop_requested.set()
        r.thread.join(30)


def _stops_naming(r: Running, name: str) -> None:
    r.thread.join(15)
    assert not r.thread.is_alive(), f"the scheduler kept running with its {name} dead"
    assert isinstance(r.error, HaflowError), r.error
    assert name in str(r.error) and "died" in str(r.error)


@pytest.mark.parametrize("backend", [PG_OR_SQLITE], indirect=True)
def test_a_dead_metrics_listener_stops_the_scheduler(start: Callable[..., Running]) -> None:
    r = start(
        HAFLOW__SCHEDULER__METRICS_PORT=str(free_port()),
        HAFLOW__SCHEDULER__METRICS_HOST="127.0.0.1",  # [scheduler] metrics_host is honoured
    )
    server = r.part("metrics listener")
    assert server._server.server_address[0] == "127.0.0.1"
    server._server.shutdown()  # the listener's thread ends, as if it had crashed
    _stops_naming(r, "metrics listener")


@pytest.mark.parametrize("backend", [PG_OR_SQLITE], indirect=True)
def test_a_dead_dag_processor_stops_the_scheduler(start: Callable[..., Running]) -> None:
    r = start()
    r.part("DAG file processor").processor._stop.set()  # its thread ends
    _stops_naming(r, "DAG file processor")


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_dead_zookeeper_worker_watch_stops_the_scheduler(
    start: Callable[..., Running], zk_hosts: str
) -> None:
    r = start(
        HAFLOW__CORE__EXECUTOR="celery",
        HAFLOW__CELERY__BROKER_URL=redis_url(7),
        HAFLOW__ELECTION__ZK_HOSTS=zk_hosts,
    )
    watch = r.part("ZooKeeper worker watch")
    assert watch.healthy()
    watch.client.stop()  # kazoo's connection routine ends for good
    _stops_naming(r, "ZooKeeper worker watch")


def test_a_dead_web_ui_stops_the_standalone(tmp_path: Path) -> None:
    """`haflow standalone` runs its web UI, the UI's heartbeat and the progress printer as parts
    of its scheduler: the web UI's server dying stops the whole standalone, naming it."""
    from haflow.assembly.standalone import build_standalone

    r = Running(build_standalone(str(tmp_path / "home"), parallelism=1, port=free_port()))
    r.thread.start()
    try:
        wait_for("a leader", lambda: r.service.epoch is not None, timeout=60)
        assert {"web UI", "webserver heartbeat", "progress printer"} <= {
            p.name for p in r.service.extras
        }
        r.part("web UI").server.shutdown()  # serve_forever returns, as if it had crashed
        _stops_naming(r, "web UI")
    finally:
        r.service.stop_requested.set()
        r.thread.join(30)
