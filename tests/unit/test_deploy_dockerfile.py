"""deploy/Dockerfile, checked without a registry (the image cannot be built here).

What can be checked statically: the base, a non-root user for everything after the install,
a HEALTHCHECK, and that every file it copies exists in the repository and is let through by
deploy/Dockerfile.dockerignore.
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_base_user_and_healthcheck() -> None:
    steps = instructions()
    # The base is a build argument whose default is the registry's image (make images passes
    # haflow-local/base where no registry answers).
    assert steps[:2] == [("ARG", "BASE=python:3.11-slim"), ("FROM", "${BASE}")]
    kinds = [kind for kind, _ in steps]
    assert "HEALTHCHECK" in kinds
    users = [arg for kind, arg in steps if kind == "USER"]
    assert users == ["haflow"]
    # Nothing runs as root after the switch to the haflow user.
    assert "RUN" not in kinds[kinds.index("USER") :]
    assert any(kind == "RUN" and "useradd" in arg and "haflow" in arg for kind, arg in steps)


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; '!' re-includes."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.lstrip("!").replace("**/", "*").replace("/**", "/*")
        if fnmatch.fnmatch(path, glob) or (glob == "**" and path):
            result = not negate
    return result


def test_copied_files_exist_and_pass_the_dockerignore() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / "deploy" / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copies = [arg.split()[:-1] for kind, arg in instructions() if kind == "COPY"]
    sources = [source for sources in copies for source in sources]
    assert sources
    for source in sources:
        path = ROOT / source
        assert path.exists(), source
        files = [path] if path.is_file() else [p for p in path.rglob("*.py")]
        for file in files:
            assert not ignored(str(file.relative_to(ROOT)), patterns), file
    for script in ("haflow-master", "haflow-healthcheck", "haflow-init"):
        assert os.access(ROOT / "deploy" / "bin" / script, os.X_OK), script
