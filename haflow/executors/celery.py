"""The Celery executor: publishes each committed attempt to its queue on the broker.

A publish that fails (broker down, no confirmation within [celery] publish_timeout) leaves the
attempt queued in the metastore; the leader publishes it again after [scheduler]
queued_timeout, and a duplicate delivery is harmless because workers claim attempts
conditionally.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from celery import Celery

from haflow.executors.base import Executor
from haflow.metastore.records import AttemptRef
from haflow.worker.celery_app import TASK_NAME

log = logging.getLogger(__name__)


class CeleryExecutor(Executor):
    def __init__(self, app: Celery, *, max_in_flight: int, publish_timeout_s: float) -> None:
        super().__init__()
        self.app = app
        self.max_in_flight = max_in_flight
        self.publish_timeout_s = publish_timeout_s

    def start(self) -> None:
        pass

    def stop(self, grace_s: float = 10.0) -> None:
        self.app.close()

    def healthy(self) -> bool:
        return True

    def open_slots(self) -> int:
        """Workers pull at their own pace; the planner also caps queued + running attempts."""
        return self.max_in_flight

    def submit(self, refs: Sequence[AttemptRef]) -> None:
        with self.app.producer_or_acquire() as producer:
            for ref in refs:
                try:
                    self.app.send_task(
                        TASK_NAME,
                        args=[ref.ti_id, ref.attempt, ref.epoch],
                        queue=ref.queue,
                        producer=producer,
                        retry=True,
                        retry_policy={
                            "max_retries": 2,
                            "interval_start": 0.2,
                            "interval_step": 0.5,
                            "interval_max": 1.0,
                        },
                        timeout=self.publish_timeout_s,
                        confirm_timeout=self.publish_timeout_s,
                    )
                except Exception as exc:  # the broker's errors vary by transport
                    log.warning(
                        "could not publish attempt %s of task instance %s to queue %r "
                        "(%s: %s); it stays queued and is published again later",
                        ref.attempt,
                        ref.ti_id,
                        ref.queue,
                        type(exc).__name__,
                        exc,
                    )
