"""Collectors read at scrape time from live state of this process (not from metric files):
build information and the scheduler's view of leadership, elector and ZooKeeper connection."""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import haflow

ELECTOR_MODES = ("zookeeper", "database", "none")
ZK_STATES = ("connected", "suspended", "lost")


class BuildInfo(Collector):
    """`haflow_build_info{version, python, daemon} 1`."""

    def __init__(self, daemon: str) -> None:
        self.daemon = daemon

    def collect(self) -> Iterator[Metric]:
        g = GaugeMetricFamily(
            "haflow_build_info",
            "Always 1; the labels say which haflow and Python this daemon runs.",
            labels=["version", "python", "daemon"],
        )
        g.add_metric([haflow.__version__, platform.python_version(), self.daemon], 1)
        yield g


class LeadershipView(Protocol):
    leading: bool
    epoch: int
    mode: str
    configured_mode: str


class SchedulerState(Collector):
    """Leadership, epoch and elector mode as this scheduler sees them, plus its ZooKeeper
    connection when it has one. `sum(haflow_scheduler_is_leader)` over all schedulers is the
    number of leaders (1 when healthy)."""

    def __init__(self, view: LeadershipView, zk_state: Callable[[], str] | None = None) -> None:
        self.view = view
        self.zk_state = zk_state

    def collect(self) -> Iterator[Metric]:
        v = self.view
        yield _gauge("haflow_scheduler_is_leader", "1 while this scheduler leads.", v.leading)
        yield _gauge(
            "haflow_leader_epoch",
            "The fencing epoch this scheduler leads under; 0 while it is a standby.",
            v.epoch if v.leading else 0,
        )
        modes = GaugeMetricFamily(
            "haflow_elector_mode",
            "1 for the elector mode this scheduler's election runs in now, 0 for the others.",
            labels=["mode"],
        )
        for mode in sorted({*ELECTOR_MODES, v.mode}):
            modes.add_metric([mode], 1 if mode == v.mode else 0)
        yield modes
        yield _gauge(
            "haflow_elector_fallback",
            "1 while ZooKeeper is configured but unreachable for longer than "
            "[election] zk_fallback_after, so candidates compete on the database lock alone.",
            v.configured_mode == "zookeeper" and v.mode == "database",
        )
        if self.zk_state is not None:
            yield zk_state_family(self.zk_state())


def zk_state_family(current: str) -> GaugeMetricFamily:
    g = GaugeMetricFamily(
        "haflow_zookeeper_connection_state",
        "1 for the state of this daemon's ZooKeeper connection (kazoo's), 0 for the others.",
        labels=["state"],
    )
    for state in sorted({*ZK_STATES, current}):
        g.add_metric([state], 1 if state == current else 0)
    return g


class ZooKeeperState(Collector):
    def __init__(self, state: Callable[[], str]) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        yield zk_state_family(self.state())


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value))
