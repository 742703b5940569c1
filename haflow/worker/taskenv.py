"""What a task's process sees of its worker's environment: an allow-list, never the secrets.

A worker holds the metastore's and the broker's credentials (often as HAFLOW__* variables, or
files they name); a task needs none of them, and a task that dumps its environment into its
log must not publish them. So a task's environment is built, not inherited: the worker's
variables whose names match `[worker] task_env_allowlist` (shell-style patterns such as
`LC_*`), never a `HAFLOW__*` setting whatever the list says, then haflow's context
(`HAFLOW_DAG_ID`, `HAFLOW_ATTEMPT`, ...), then what the task itself sets (`BashTask(env=...)`).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping, Sequence

NEVER = ("HAFLOW__*", "PROMETHEUS_MULTIPROC_DIR")


def allowed(environ: Mapping[str, str], patterns: Sequence[str]) -> dict[str, str]:
    """The variables of `environ` a task may see."""
    return {
        k: v
        for k, v in environ.items()
        if any(fnmatch.fnmatchcase(k, p) for p in patterns)
        and not any(fnmatch.fnmatchcase(k, p) for p in NEVER)
    }


def task_environ(
    environ: Mapping[str, str],
    patterns: Sequence[str],
    context: Mapping[str, str],
    own: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A task's whole environment: the allowed part of `environ`, haflow's `context`, then the
    task's `own` variables (which win)."""
    return {**allowed(environ, patterns), **context, **(own or {})}


def become_task(patterns: Sequence[str], context: Mapping[str, str]) -> dict[str, str]:
    """In a task's own process, before any of its code runs: trade this process's environment
    for the task's (`task_environ` without the task's own variables, which bash is given at
    exec); returns it."""
    env = task_environ(os.environ, patterns, context)
    os.environ.clear()
    os.environ.update(env)
    return env
