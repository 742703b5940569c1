"""The executor seam: the scheduler commits an attempt, then `submit`s its reference here.

An executor never changes state itself: whoever runs the attempt claims and reports it through
the repository, so a lost or duplicated hand-over cannot corrupt state.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence

from haflow.metastore.records import AttemptRef


class Executor(ABC):
    def __init__(self) -> None:
        self.wake = threading.Event()  # set when an attempt finished: the scheduler looks again

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self, grace_s: float = 10.0) -> None:
        """Stop taking work; attempts still running after `grace_s` are killed and reported lost."""

    @abstractmethod
    def healthy(self) -> bool: ...

    def maintain(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Housekeeping the scheduler calls every iteration (e.g. replace dead processes)."""

    @abstractmethod
    def submit(self, refs: Sequence[AttemptRef]) -> None: ...

    @abstractmethod
    def open_slots(self) -> int:
        """How many more attempts this executor wants to be handed now."""
