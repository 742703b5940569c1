"""A thin wrapper over the `docker` command line: every call bounded in time, every failure a
`DockerError` that says which command failed, what docker said and what to do.

The CLI (not the HTTP API) is used on purpose: it is what an operator types, and its output is
what `haflow chaos` shows when a fault goes wrong.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from haflow.errors import HaflowError

DEBIAN_DOCKER = "/usr/bin/docker"
"""Debian's docker.io client, the same version as its engine; preferred over other clients."""


class DockerError(HaflowError):
    """A docker command failed, or no Docker engine answers."""


@dataclass(frozen=True)
class Docker:
    """Runs docker commands; `binary` is the client, `timeout_s` bounds each call."""

    binary: str = ""
    timeout_s: float = 60.0

    def exe(self) -> str:
        if self.binary:
            return self.binary
        if shutil.which(DEBIAN_DOCKER):
            return DEBIAN_DOCKER
        found = shutil.which("docker")
        if found is None:
            raise DockerError(
                "no docker client found; run `bash scripts/docker-engine.sh` as root "
                "(installs Debian's docker.io and starts its engine)"
            )
        return found

    def run(
        self,
        *args: str,
        check: bool = True,
        timeout_s: float | None = None,
        stdin: bytes | None = None,
    ) -> str:
        """Run `docker ARGS`; its stdout. Raises DockerError on failure when `check`."""
        cmd = [self.exe(), *args]
        try:
            done = subprocess.run(
                cmd,
                input=stdin,
                capture_output=True,
                timeout=timeout_s or self.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise DockerError(
                f"`{_shown(cmd)}` did not finish within {exc.timeout} s; is the engine alive? "
                "(`docker info`)"
            ) from exc
        if check and done.returncode != 0:
            said = done.stderr.decode(errors="replace").strip() or "(no message)"
            raise DockerError(f"`{_shown(cmd)}` failed (exit {done.returncode}): {said}")
        return done.stdout.decode(errors="replace")

    def ok(self, *args: str, timeout_s: float | None = None) -> bool:
        """Whether `docker ARGS` succeeds (never raises for a non-zero exit)."""
        try:
            self.run(*args, timeout_s=timeout_s)
        except DockerError:
            return False
        return True

    def require_engine(self) -> None:
        try:
            self.run("info", "--format", "{{.ServerVersion}}", timeout_s=15)
        except DockerError as exc:
            raise DockerError(
                f"no Docker engine answers ({exc}); start one with "
                "`bash scripts/docker-engine.sh` (as root)"
            ) from exc

    def inspect(self, *names: str, kind: str = "container") -> list[dict[str, Any]]:
        """`docker inspect` of existing objects; missing ones are left out."""
        out = self.run(kind, "inspect", *names, check=False)
        try:
            data = json.loads(out or "[]")
        except ValueError:
            return []
        return [d for d in data if isinstance(d, dict)]

    def names(self, kind: str, label: str) -> list[str]:
        """Names of containers (kind "container", including stopped) or networks with `label`."""
        if kind == "container":
            out = self.run("ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}")
        else:
            out = self.run("network", "ls", "--filter", f"label={label}", "--format", "{{.Name}}")
        return [line for line in out.splitlines() if line.strip()]

    def exec(self, container: str, argv: Sequence[str], user: str = "") -> str:
        opts = ["--user", user] if user else []
        return self.run("exec", *opts, container, *argv)


def _shown(cmd: Sequence[str]) -> str:
    text = " ".join(cmd)
    return text if len(text) < 300 else text[:300] + " ..."
