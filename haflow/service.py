"""The contract of every long-running part of a daemon (listeners, watches, servers, threads).

A daemon starts its parts, checks `healthy()` on every one each iteration of its loop, and
exits non-zero naming the part when one has died: a dead metrics listener or ZooKeeper watch
must not leave the process limping on, unnoticed, when systemd or compose would restart it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable


@runtime_checkable
class Service(Protocol):
    """A part that runs in the background between `start` and `stop`."""

    @property
    def name(self) -> str:
        """What the part is, for the log line and error naming it."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def healthy(self) -> bool:
        """False once the part has died (its thread ended, its listener closed)."""
        ...


def dead(parts: Iterable[Service]) -> list[str]:
    """The names of the parts that have died."""
    return [p.name for p in parts if not p.healthy()]
