"""The local executor: the attempt pool (`haflow.worker.pool`) on the scheduler's machine.

`parallelism` slots, `[core] attempts_per_process` of them in each process; the scheduler
hands attempts over and is woken as each one ends.
"""

from __future__ import annotations

from collections.abc import Sequence

from haflow.executors.base import Executor
from haflow.metastore.records import AttemptRef
from haflow.worker.pool import AttemptPool, PoolConfig

__all__ = ["LocalExecutor", "PoolConfig"]


class LocalExecutor(Executor):
    def __init__(self, cfg: PoolConfig, parallelism: int, per_process: int = 1) -> None:
        super().__init__()
        self.pool = AttemptPool(
            cfg, parallelism, per_process, on_done=self.wake.set, prefix="haflow-local"
        )

    @property
    def replaced(self) -> int:
        return self.pool.replaced

    def start(self) -> None:
        self.pool.start()

    def maintain(self) -> None:
        self.pool.maintain()

    def healthy(self) -> bool:
        return True

    def submit(self, refs: Sequence[AttemptRef]) -> None:
        self.pool.submit(refs)

    def open_slots(self) -> int:
        return self.pool.open_slots()

    def stop(self, grace_s: float = 10.0) -> None:
        """Let running attempts finish for `grace_s`, then kill them (reported as lost)."""
        self.pool.stop(grace_s)
