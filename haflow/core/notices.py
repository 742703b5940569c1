"""Which events notify whom, and the key that names one notification.

A DAG's rules (written by `haflow.dag.notifiers` from its callbacks and notifiers, plus the
cluster's `[notifications]` ones) read "on event `on` of task `task` (of any task when None,
of the run for `run.*` events) deliver to `target`". The transaction that writes an event
writes one notification per matching target; its key is a hash of the event's identity and
the target's, so the same state change can never be notified twice under two keys, and every
delivery of one notification carries the same key (the receivers' idempotency key).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

TASK_HOOKS: Mapping[str, str] = {
    "on_success_callback": "ti.success",
    "on_failure_callback": "ti.failed",
    "on_retry_callback": "ti.up_for_retry",
}
"""A task's hooks and the event of its task instance each one answers."""

RUN_HOOKS: Mapping[str, str] = {
    "on_success_callback": "run.success",
    "on_failure_callback": "run.failed",
}
"""A DAG's hooks and the event of its runs each one answers."""

NOTIFIABLE: frozenset[str] = frozenset({*TASK_HOOKS.values(), *RUN_HOOKS.values()})
"""The events a notification can follow: a task instance that succeeded, failed for good or
is up for retry; a run that succeeded or failed. Manual marks (`ti.marked`, `run.marked`)
notify nobody, as in Airflow."""

Rule = dict[str, Any]


def target_id(target: Mapping[str, Any]) -> str:
    """What tells one target of an event from another (part of the notification's key)."""
    kind = target["type"]
    if kind == "webhook":
        return f"webhook:{target['url']}"
    if kind == "email":
        return "email:" + ",".join(target["to"])
    return f"callback:{target['task'] or '-'}:{target['hook']}:{target['index']}"


def host_of(url: str) -> str:
    """A webhook's host and port only: its path, query or user part often hold a token,
    and error texts and events are shown to every reader."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def matching(rules: Sequence[Rule], event: str, task_id: str | None) -> list[dict[str, Any]]:
    """The targets of `rules` that `event` (of `task_id`; None for a run's) notifies, each
    once."""
    out: dict[str, dict[str, Any]] = {}
    for r in rules:
        if r["on"] == event and (r["task"] is None or r["task"] == task_id):
            out.setdefault(target_id(r["target"]), r["target"])
    return list(out.values())


def notification_key(
    event: str,
    dag_id: str,
    run_id: str,
    task_id: str | None,
    generation: int,
    target: Mapping[str, Any],
    run_created: str = "",
) -> str:
    """The key of the notification of one event to one target. `generation` tells apart
    the same event happening again: the attempt number for a task instance, the run's
    revision (bumped by a clear) for a run; `run_created` (when the run was created) tells
    apart a run that reuses the id of one deleted before it."""
    ident = "\x1f".join(
        (event, dag_id, run_id, run_created, task_id or "", str(generation), target_id(target))
    )
    return hashlib.sha256(ident.encode("utf-8")).hexdigest()
