#!/usr/bin/env bash
# Make a Docker engine available for the chaos harness: install Debian's docker.io when dockerd
# is missing, start dockerd in the background when no engine answers, and wait (bounded) until
# `docker info` works. Idempotent: running it again with an engine up does nothing.
#
#   bash scripts/docker-engine.sh            # exit 0 when `docker info` works
#   DOCKER_ENGINE_WAIT=60 bash scripts/docker-engine.sh
#
# The engine's own log goes to $DOCKER_ENGINE_LOG (default /var/log/haflow-dockerd.log).
set -euo pipefail

WAIT_S="${DOCKER_ENGINE_WAIT:-60}"
LOG="${DOCKER_ENGINE_LOG:-/var/log/haflow-dockerd.log}"
CONTAINERD_LOG="${CONTAINERD_LOG:-/var/log/haflow-containerd.log}"
DOCKER=/usr/bin/docker   # Debian's client, the same version as its engine
[ -x "$DOCKER" ] || DOCKER="$(command -v docker || true)"

engine_up() {
    [ -n "$DOCKER" ] && timeout 10 "$DOCKER" info >/dev/null 2>&1 && containerd_up
}

# dockerd answers `docker info` even when the containerd it was started against has died
# (every `docker run` then fails with "connection refused" on containerd.sock).
CONTAINERD_SOCK=/run/containerd/containerd.sock
containerd_up() {
    [ ! -S "$CONTAINERD_SOCK" ] && return 0    # dockerd supervises its own containerd
    timeout 10 ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1
}

start_containerd() {
    need_root "starting containerd"
    echo "docker-engine.sh: containerd at $CONTAINERD_SOCK is dead; starting it (log: $CONTAINERD_LOG)" >&2
    setsid nohup containerd >>"$CONTAINERD_LOG" 2>&1 < /dev/null &
}

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "docker-engine.sh: $1 needs root (run it as root or with sudo)" >&2
        exit 1
    fi
}

install_engine() {
    need_root "installing docker.io"
    echo "docker-engine.sh: installing Debian's docker.io" >&2
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get install -y -q docker.io >/dev/null \
        || { timeout 120 apt-get update -q >/dev/null && timeout 300 apt-get install -y -q docker.io >/dev/null; }
    DOCKER=/usr/bin/docker
}

start_engine() {
    need_root "starting dockerd"
    echo "docker-engine.sh: starting dockerd (log: $LOG)" >&2
    # setsid: the engine must outlive the shell (and the test session) that started it.
    setsid nohup dockerd --host=unix:///var/run/docker.sock >>"$LOG" 2>&1 < /dev/null &
}

if engine_up; then
    exit 0
fi
command -v dockerd >/dev/null 2>&1 || install_engine
pgrep -x dockerd >/dev/null || start_engine
containerd_up || pgrep -x containerd >/dev/null || start_containerd

deadline=$((SECONDS + WAIT_S))
until engine_up; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "docker-engine.sh: no Docker engine answered within ${WAIT_S} s; last lines of $LOG:" >&2
        tail -n 20 "$LOG" >&2 || true
        exit 1
    fi
    sleep 1
done
echo "docker-engine.sh: Docker engine ready ($("$DOCKER" version --format '{{.Server.Version}}' 2>/dev/null))" >&2
