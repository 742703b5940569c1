"""Where a DAG's notifications go: callbacks (functions of the DAG file) and the built-in
notifiers (`Webhook`, `Email`), set on tasks and on the DAG, and the rules the metastore keeps.

A rule reads "on event `on` (of task `task`, of any task when `task` is None, or of the run),
deliver to `target`". Rules are plain JSON kept in the DAG's row, so the transaction that
changes a state (a worker's report, the leader's fenced apply) writes the notification requests
too (the outbox, `haflow.metastore.repository.notifications`). A callback is kept by where to
find it again (its file, task, hook and position), never pickled: the leader imports the file
in a process of its own to call it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from haflow.core.notices import Rule
from haflow.errors import DagDefinitionError


@dataclass(frozen=True)
class Webhook:
    """POST the event as JSON to `url`, with an `Idempotency-Key` header that is the same for
    every delivery of one notification (so the receiver can drop a repeat)."""

    url: str

    def __post_init__(self) -> None:
        parts = urlsplit(self.url) if isinstance(self.url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise DagDefinitionError(f"Webhook: url must be an http(s) URL, got {self.url!r}")

    def target(self) -> dict[str, Any]:
        return {"type": "webhook", "url": self.url}


@dataclass(frozen=True)
class Email:
    """Mail the event to `to` (one address or several) through `[notifications] smtp_host`."""

    to: str | tuple[str, ...]

    def __post_init__(self) -> None:
        to = (self.to,) if isinstance(self.to, str) else tuple(self.to)
        if not to or not all(isinstance(a, str) and "@" in a for a in to):
            raise DagDefinitionError(f"Email: to must be e-mail addresses, got {self.to!r}")
        object.__setattr__(self, "to", to)

    def target(self) -> dict[str, Any]:
        return {"type": "email", "to": sorted(self.to)}


Notifier = Webhook | Email


def hook_list(value: object, where: str) -> list[Callable[..., object] | Notifier]:
    """A hook's value as a list: None, one callable or notifier, or a list of them."""
    if value is None:
        return []
    items = list(value) if isinstance(value, list | tuple) else [value]
    out: list[Callable[..., object] | Notifier] = []
    for item in items:
        if not isinstance(item, Webhook | Email) and not callable(item):
            raise DagDefinitionError(
                f"{where}: a callback must be a function, a Webhook or an Email, got {item!r}"
            )
        out.append(item)
    return out


def hook_rules(
    event: str,
    items: list[Callable[..., object] | Notifier],
    *,
    fileloc: str,
    task_id: str | None,
    hook: str,
) -> list[Rule]:
    """The rules of one hook of a task (`task_id`) or of a DAG (None)."""
    rules = []
    for index, item in enumerate(items):
        if isinstance(item, Webhook | Email):
            target = item.target()
        else:
            name = getattr(item, "__qualname__", None) or type(item).__name__
            target = {
                "type": "callback",
                "file": fileloc,
                "task": task_id,
                "hook": hook,
                "index": index,
                "name": name,
            }
        rules.append({"on": event, "task": task_id, "target": target})
    return rules
