"""The sole elector (`[election] mode = none`): this scheduler assumes it is the only one.

Used by `haflow standalone`. Even here a second scheduler started by mistake cannot corrupt
state: taking leadership increments the epoch, which fences the first one out.
"""

from __future__ import annotations

from datetime import datetime

from haflow.election.base import Elector


class SoleElector(Elector):
    mode = "none"

    def __init__(self) -> None:
        self._leading = False

    def start(self) -> None:
        self._leading = True

    def poll(self, now: datetime) -> bool:
        return self._leading

    def release(self) -> None:
        self._leading = False

    def stop(self) -> None:
        self._leading = False
