"""The chaos cluster's node images, built locally (no registry is reachable here).

On the `images` runtime (haflow.chaos.spec), each role runs the image users deploy, built by
deploy/local/build-images.sh, plus one layer that adds the node's data folder `/data` (mode
1777: the image's own user keeps its state there, on a volume of the container's own).

On the `host` runtime, the image holds nothing but the directory skeleton: `bin`, `sbin`,
`lib`, `lib64` link into `usr/`, and empty `etc`, `tmp`, `data`, `root`, `records`. Each node
bind-mounts the host's `/usr` and `/etc` read-only (the servers' binaries come from Debian
packages on the host), the project with its virtualenv and the interpreter it links to, and
gets a tmpfs for `/tmp`.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

from haflow.chaos.docker import Docker, DockerError

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


DEPLOYED = {
    "zookeeper": "haflow-local/zookeeper",
    "postgres": "haflow-local/postgres",
    "patroni": "haflow-local/patroni",
    "broker": "haflow-local/redis",
    "rabbitmq": "haflow-local/rabbitmq",
    "master": "haflow:local",
    "worker": "haflow:local",
    "receiver": "haflow:local",
    "lb": "haflow-local/haproxy",
}
"""The deployed image each role runs on the `images` runtime."""
BUILT = "haflow zookeeper postgres patroni redis rabbitmq haproxy"
"""What build-images.sh builds for the harness (HAFLOW_IMAGES): the images of DEPLOYED."""
NODE_LAYER = "FROM {image}\nUSER root\nRUN install -d -m 1777 /data\nUSER {user}\n"
BUILD_TIMEOUT_S = 1200


def node_images(
    docker: Docker, build_script: Path, progress: Callable[[str], None]
) -> dict[str, str]:
    """Build (or find up to date: a cache hit takes about a second) the deployed images with
    `build_script`, then each one's chaos layer; role -> image tag."""
    progress(f"building the deployed images ({build_script}; cached after the first time)")
    try:
        done = subprocess.run(
            ["bash", str(build_script)],
            env={**os.environ, "HAFLOW_IMAGES": BUILT},
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise DockerError(f"{build_script} took over {exc.timeout} s") from exc
    if done.returncode != 0:
        raise DockerError(f"{build_script} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    out: dict[str, str] = {}
    for role, image in DEPLOYED.items():
        found = docker.inspect(image, kind="image")
        user = str(((found[0] if found else {}).get("Config") or {}).get("User") or "root")
        tag = f"haflow-chaos/{image.split('/')[-1].replace(':', '-')}"
        if tag not in out.values():
            layer = NODE_LAYER.format(image=image, user=user).encode()
            docker.run("build", "-q", "-t", tag, "-", stdin=layer, timeout_s=300)
        out[role] = tag
    return out
