"""Metrics never break what they observe: every listener hook runs guarded."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., None])


def guarded(hook: F) -> F:
    """Run `hook`, logging (never raising) whatever it raises."""

    @functools.wraps(hook)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            hook(*args, **kwargs)
        except Exception:
            log.warning("metrics hook %s failed", hook.__name__, exc_info=True)

    return run  # type: ignore[return-value]
