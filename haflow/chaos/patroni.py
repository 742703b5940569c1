"""What a Patroni cluster's members say about themselves (their REST API): which one is the
primary, and whether a synchronous standby streams from it. One `view` per question: the
other functions read it."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Collection, Mapping
from typing import Any

API_PORT = 8008

View = dict[str, dict[str, Any]]
"""member name -> Patroni's entry for it (role, state, lag...)."""


def view(members: Mapping[str, str], timeout_s: float = 2.0) -> View:
    """The cluster as the first member of `members` (name -> REST API address, `host` or
    `host:port`, port 8008 when not given) that answers sees it; {} when none does."""
    for address in members.values():
        where = address if ":" in address else f"{address}:{API_PORT}"
        try:
            with urllib.request.urlopen(f"http://{where}/cluster", timeout=timeout_s) as resp:
                cluster = json.loads(resp.read())
        except (OSError, ValueError):
            continue
        return {str(m["name"]): m for m in cluster.get("members", [])}
    return {}


def primary(seen: View, among: Collection[str] | None = None) -> str | None:
    """The member that leads and runs (accepts writes), if any; only one of `among` when
    given: a dead primary stays `leader` in the others' view until its key expires."""
    for name, m in seen.items():
        if among is not None and name not in among:
            continue
        if m.get("role") == "leader" and m.get("state") == "running":
            return name
    return None


def replicating(seen: View) -> bool:
    """A running primary and a streaming synchronous standby: an acknowledged commit is on
    two members."""
    roles = {m.get("role"): m.get("state") for m in seen.values()}
    return roles.get("leader") == "running" and roles.get("sync_standby") == "streaming"
