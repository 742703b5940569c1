"""The Service contract's watchdog: the first dead part is named once, and the daemon told."""

from __future__ import annotations

import threading

from haflow.service import Service, Watchdog, dead


class Part:
    def __init__(self, name: str) -> None:
        self.name = name
        self.alive = True

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def healthy(self) -> bool:
        return self.alive


def test_dead_names_the_parts_that_died() -> None:
    a, b = Part("metrics listener"), Part("worker heartbeat")
    assert isinstance(a, Service)
    assert dead([a, b]) == []
    b.alive = False
    assert dead([a, b]) == ["worker heartbeat"]


def test_the_watchdog_tells_the_daemon_once_when_a_part_dies() -> None:
    a, b = Part("metrics listener"), Part("ZooKeeper worker node")
    told: list[list[str]] = []
    fired = threading.Event()

    def on_dead(names: list[str]) -> None:
        told.append(names)
        fired.set()

    dog = Watchdog([a, b], on_dead, every_s=0.02)
    dog.start()
    try:
        assert not fired.wait(0.1) and dog.healthy()
        b.alive = False
        assert fired.wait(2.0)
        a.alive = False  # later deaths are not reported again: the daemon is stopping
        dog._thread.join(0.5)
        assert not dog._thread.is_alive()
    finally:
        dog.stop()
    assert told == [["ZooKeeper worker node"]]
    assert not dog.healthy() and dog.died == ["ZooKeeper worker node"]
