"""The elector seam. An elector says whether this candidate may lead *now*; it never writes state.

Whatever an elector believes, a leader's writes are accepted only under the epoch it took in the
metastore (see metastore.repository), so a stale belief costs a rejected write, never a second
writer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime


class Elector(ABC):
    mode: str = "abstract"

    @abstractmethod
    def start(self) -> None:
        """Join the election (connect, enter the candidate queue). Must not block for long."""

    @abstractmethod
    def poll(self, now: datetime) -> bool:
        """True while this candidate holds leadership. Cheap; called on every loop iteration."""

    @abstractmethod
    def release(self) -> None:
        """Give leadership up (if held) but stay a candidate."""

    @abstractmethod
    def stop(self) -> None:
        """Leave the election, releasing leadership."""

    def healthy(self) -> bool:
        return True
