"""The chaos cluster's node image, built locally (no registry is reachable here).

The image holds nothing but the directory skeleton: `bin`, `sbin`, `lib`, `lib64` link into
`usr/`, and empty `etc`, `tmp`, `data`, `root`, `records`. Each node bind-mounts the host's
`/usr` and `/etc` read-only (the servers' binaries come from Debian packages on the host), the
project with its virtualenv and the interpreter it links to, and gets a tmpfs for `/tmp`.
"""

from __future__ import annotations

import hashlib
import io
import tarfile

from haflow.chaos.docker import Docker

IMAGE_REPO = "haflow-chaos-node"
LINKS = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}
DIRS = {"etc": 0o755, "tmp": 0o1777, "data": 0o1777, "root": 0o755, "records": 0o1777}


def skeleton_tar() -> bytes:
    """The image's whole content as an uncompressed tar (deterministic: fixed mtimes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, mode in DIRS.items():
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, 0
            tar.addfile(info)
        for name, target in LINKS.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, 0
            tar.addfile(info)
    return buf.getvalue()


def image_tag() -> str:
    """A tag derived from the skeleton, so a changed skeleton gets a new image."""
    return f"{IMAGE_REPO}:{hashlib.sha256(skeleton_tar()).hexdigest()[:12]}"


def ensure_image(docker: Docker) -> str:
    """Import the skeleton image unless it exists; its tag."""
    tag = image_tag()
    if not docker.ok("image", "inspect", tag):
        docker.run("import", "-", tag, stdin=skeleton_tar(), timeout_s=120)
    return tag
