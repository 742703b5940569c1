"""Bounded polling for tests: wait for a condition, never for a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    what: str, check: Callable[[], object], timeout: float = 30.0, interval: float = 0.05
) -> float:
    """Poll `check` until it is truthy and return the seconds that took; fail naming `what`
    after `timeout` seconds."""
    start = time.monotonic()
    deadline = start + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic() - start
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
