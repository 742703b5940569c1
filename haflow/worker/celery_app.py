"""The Celery application shared by the Celery executor (publisher) and `haflow worker`.

Settings for no loss, as docs/design.md section 3 asks: acknowledge late (a message is
acknowledged once its attempt ended, or handed back when its claim could not reach the
metastore), prefetch one message, JSON only (never pickle), publisher confirms on RabbitMQ, a
Redis visibility timeout above the longest execution timeout. No result backend: an attempt's
state lives in the metastore, written by its claim and report. `haflow worker` consumes on
Celery's threads; each hands its attempt to the worker's attempt pool (worker.pool).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Celery
from celery.exceptions import Reject

from haflow.config import Settings
from haflow.errors import ConfigError
from haflow.worker.pool import UNREACHABLE, AttemptPool

log = logging.getLogger(__name__)

TASK_NAME = "haflow.run_attempt"
REQUEUE_DELAY_S = 1.0
"""How long a worker that cannot reach the metastore holds a message before handing it back
(so a worker cut off from the metastore does not swallow every message it is given)."""


_pool: AttemptPool | None = None
"""Where this process's Celery task threads hand their attempts and wait for each one's
outcome: set by `haflow worker` before Celery starts."""


def make_app(settings: Settings) -> Celery:
    url = settings.celery.broker_url
    if not url:
        raise ConfigError(
            "[core] executor = celery needs [celery] broker_url (amqp://... for RabbitMQ, "
            "redis://... for Redis)"
        )
    app = Celery("haflow", broker=url, set_as_current=False)
    app.conf.update(broker_settings(settings))
    app.task(
        name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True
    )(run_attempt)
    return app


def broker_settings(settings: Settings) -> dict[str, Any]:
    url = settings.celery.broker_url
    transport: dict[str, Any] = {}
    if url.startswith(("amqp", "pyamqp")):
        transport["confirm_publish"] = True
    elif url.startswith(("redis", "rediss")):
        transport["visibility_timeout"] = settings.celery.visibility_timeout
    return {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        "result_backend": None,
        "task_default_queue": settings.celery.default_queue,
        # the default queue and any other a task names (declared on first use) alike; Celery
        # turns the global prefetch limit (which quorum queues refuse) into a per-consumer one
        "task_default_queue_type": settings.celery.queue_type,
        "task_create_missing_queue_type": settings.celery.queue_type,
        "worker_detect_quorum_queues": True,
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 5,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "worker_enable_remote_control": remote_control(settings),
    }


def remote_control(settings: Settings) -> bool:
    """`[celery] remote_control`. Off is safer (a broker message can shut a worker down), but
    with Redis a worker without the remote-control channel stops consuming after the broker
    restarts (3 of 4 runs of test_broker_restart_mid_run_every_run_completes[redis] hung; 0 of
    6 with it on), so auto keeps it on there."""
    choice = settings.celery.remote_control
    if choice == "auto":
        return settings.celery.broker_url.startswith(("redis", "rediss"))
    return choice == "on"


def set_pool(pool: AttemptPool) -> None:
    global _pool
    _pool = pool


def run_attempt(task: Any, ti_id: int, attempt: int, epoch: int) -> str:
    """The Celery task: have the worker's attempt pool claim attempt `attempt` of task
    instance `ti_id` and run it, and wait for its end.

    A duplicate or redelivered message fails the claim and is dropped (and recorded as
    `attempt.claim_rejected`); the attempt's outcome goes to the metastore, not to Celery. A
    claim that cannot reach the metastore hands the message back (rejected, requeued), so a
    worker cut off from the metastore does not swallow work meant for the others. An attempt
    whose pool process died ends here as lost; the leader reclaims it.
    """
    from haflow.metastore.records import AttemptRef

    if _pool is None:
        raise ConfigError("this process runs haflow tasks but was not started by `haflow worker`")
    ref = AttemptRef(
        ti_id, attempt, epoch, task.request.delivery_info.get("routing_key") or "default"
    )
    outcome = _pool.run(ref)
    if outcome == UNREACHABLE:  # the claim could not be made: leave it to another worker
        log.warning(
            "cannot reach the metastore to claim attempt %s of task instance %s; "
            "handing the message back to the queue in %.0f s",
            attempt,
            ti_id,
            REQUEUE_DELAY_S,
        )
        time.sleep(REQUEUE_DELAY_S)  # not at once: another worker should get it first
        raise Reject("the metastore is unreachable", requeue=True)
    if outcome == "rejected":
        log.info(
            "attempt %s of task instance %s was not claimable (duplicate or "
            "redelivered message): dropped",
            attempt,
            ti_id,
        )
    return outcome
