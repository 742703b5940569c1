"""What a chaos cluster's Patroni members say about themselves (their REST API, port 8008):
which one is the primary, and whether a synchronous standby streams from it."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping
from typing import Any

API_PORT = 8008


def view(addresses: Mapping[str, str], timeout_s: float = 2.0) -> dict[str, dict[str, Any]]:
    """member name -> Patroni's entry for it (role, state, lag...), from the first member of
    `addresses` (name -> address) that answers; {} when none does."""
    for address in addresses.values():
        try:
            url = f"http://{address}:{API_PORT}/cluster"
            with urllib.request.urlopen(url, timeout=timeout_s) as resp:
                cluster = json.loads(resp.read())
        except (OSError, ValueError):
            continue
        return {str(m["name"]): m for m in cluster.get("members", [])}
    return {}


def primary(addresses: Mapping[str, str]) -> str | None:
    """The member of `addresses` that leads and runs (accepts writes), if any. Only they are
    asked and named: a dead primary stays `leader` in the others' view until its key expires."""
    for name, m in view(addresses).items():
        if name in addresses and m.get("role") == "leader" and m.get("state") == "running":
            return name
    return None


def replicating(addresses: Mapping[str, str]) -> bool:
    """A running primary and a streaming synchronous standby: an acknowledged commit is on
    two members."""
    roles = {m.get("role"): m.get("state") for m in view(addresses).values()}
    return roles.get("leader") == "running" and roles.get("sync_standby") == "streaming"
