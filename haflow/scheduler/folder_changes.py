"""What a master saw change in its own DAGs folder: the DAGs that appeared in it or vanished
from it between two looks. With several masters whose folders may differ, only these changes
(and DAGs whose version came from this master's folder) let a master make a DAG active or
inactive in the metastore (`Presence`, `haflow.metastore.repository.dags`)."""

from __future__ import annotations

from collections.abc import Mapping

from haflow.metastore.records import Presence
from haflow.scheduler.parsing import FolderView


class FolderChanges:
    """Not thread-safe: the scheduling loop alone uses it."""

    def __init__(self, node: str) -> None:
        self.node = node  # this master's name, as its versions record it
        self._before: dict[str, str] | None = None  # DAG id -> file, at the previous look
        self._starting: set[str] = set()  # files listed at the first look, not parsed yet
        self._appeared: set[str] = set()
        self._vanished: set[str] = set()

    def observe(self, dags: Mapping[str, str], view: FolderView) -> None:
        """Take the folder's DAGs now (DAG id -> file). A DAG first seen because a file listed
        at the first look was parsed for the first time did not appear: this master is only
        starting."""
        now = dict(dags)
        before, self._before = self._before, now
        if before is None:
            self._starting = set(view.pending)
            return
        for dag_id, fileloc in now.items():
            if dag_id not in before and fileloc not in self._starting:
                self._appeared.add(dag_id)
        self._vanished.update(d for d in before if d not in now)
        self._starting.difference_update(view.results)

    def presence(self) -> Presence:
        return Presence(self.node, frozenset(self._appeared), frozenset(self._vanished))

    def synced(self) -> None:
        self._appeared.clear()
        self._vanished.clear()
