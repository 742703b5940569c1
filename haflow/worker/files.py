"""An attempt's own files: the results it may read, and the one it returns.

The runner makes a private folder per attempt before it starts the attempt's child and removes
it after the end is reported. `upstream.json` holds the run's results as the claim read them
(task id -> value; the child narrows it to the task's ancestors); the task's result goes to
`result.json`: a Python task's return value is written there by its child, a bash task writes
it itself (`$HAFLOW_RESULT_FILE`, JSON). The runner reads it back only after a successful end,
refuses one over `[worker] max_result_bytes` or that is not JSON, and reports it with the end;
the metastore keeps it only if that report is accepted (`haflow.metastore.repository.attempts`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from haflow.dag.secrets import ATTEMPT_ENV, SOCKET_ENV

RESULT_ENV = "HAFLOW_RESULT_FILE"
UPSTREAM_ENV = "HAFLOW_UPSTREAM_RESULTS"
SECRETS_SOCKET = "secrets.sock"  # in the folder of the attempts' folders (haflow.worker.secrets)


class ResultRefused(Exception):
    """The attempt's result cannot be kept; the message says why."""


@dataclass(frozen=True)
class AttemptFiles:
    folder: str

    @property
    def result(self) -> Path:
        return Path(self.folder, "result.json")

    @property
    def upstream(self) -> Path:
        return Path(self.folder, "upstream.json")

    @property
    def poke(self) -> Path:
        return Path(self.folder, "poke.json")

    def env(self) -> dict[str, str]:
        return {
            RESULT_ENV: str(self.result),
            UPSTREAM_ENV: str(self.upstream),
            ATTEMPT_ENV: self.folder,
            SOCKET_ENV: str(Path(self.folder).parent / SECRETS_SOCKET),
        }

    # -- in the attempt's child -----------------------------------------------------------
    def read_upstream(self) -> dict[str, Any]:
        try:
            with open(self.upstream, encoding="utf-8") as f:
                value = json.load(f)
        except FileNotFoundError:
            return {}
        return value if isinstance(value, dict) else {}

    def write_upstream(self, results: Mapping[str, Any]) -> None:
        self.upstream.write_text(json.dumps(results), encoding="utf-8")

    def write_result(self, task_id: str, value: object) -> None:
        """Write a Python task's return value; None writes nothing. A value JSON cannot hold
        fails the attempt, saying so in its log."""
        if value is None:
            return
        try:
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            print(
                f"[haflow: task {task_id!r} returned a value that is not JSON "
                f"({type(value).__name__}): {exc}; return JSON types (dict, list, str, int, "
                "float, bool, None) to pass a result]",
                file=sys.stderr,
            )
            raise SystemExit(1) from None
        self.result.write_text(text, encoding="utf-8")

    def write_poke(self, answer: object, sensing: Mapping[str, Any]) -> None:
        """A sensor's poke: whether its condition held (or, for a check the worker makes
        itself, what to check: a dict), with how it pokes (`BaseSensor.sensing`)."""
        external = answer if isinstance(answer, dict) else None
        done = external is None and bool(answer)
        said = "condition met" if done else "for the worker to check" if external else "not yet"
        print(f"[haflow: poke: {said}]")
        body = {"done": done, "external": external, **sensing}
        self.poke.write_text(json.dumps(body), encoding="utf-8")


# -- in the runner ----------------------------------------------------------------------------
def prepare(base: Path, ti_id: int, attempt: int, run_results: Mapping[str, str]) -> AttemptFiles:
    """A fresh private folder for attempt `attempt` of task instance `ti_id` under `base`,
    holding the run's results (task id -> JSON text, as the metastore keeps them)."""
    folder = base / f"{ti_id}-{attempt}"
    shutil.rmtree(folder, ignore_errors=True)  # left by an earlier claim of the same attempt
    folder.mkdir(mode=0o700, parents=True)
    files = AttemptFiles(str(folder))
    if run_results:  # none (the usual case): no file, which the attempt reads as {}
        body = ",".join(f"{json.dumps(k)}:{v}" for k, v in sorted(run_results.items()))
        files.upstream.write_text("{" + body + "}", encoding="utf-8")
    return files


def collect(files: AttemptFiles, cap: int) -> str | None:
    """The attempt's result as JSON text, None if it wrote none; ResultRefused if it is over
    `cap` bytes or not JSON."""
    try:
        with open(files.result, "rb") as f:
            data = f.read(cap + 1)
    except FileNotFoundError:
        return None
    if len(data) > cap:
        size = os.path.getsize(files.result)
        raise ResultRefused(
            f"result of {size} bytes is over [worker] max_result_bytes = {cap}; pass large "
            "data through storage both tasks reach and return its location"
        )
    text = data.decode("utf-8", "replace").strip()
    if not text:
        return None
    try:
        json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        raise ResultRefused(
            f"${RESULT_ENV} does not hold JSON ({exc}); write a JSON value, e.g. "
            f'echo \'"some text"\' > "${RESULT_ENV}"'
        ) from None
    return text


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def remove(files: AttemptFiles) -> None:
    shutil.rmtree(files.folder, ignore_errors=True)
