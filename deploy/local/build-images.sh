#!/usr/bin/env bash
# Build every image deploy/docker-compose.yml runs, here, from Debian packages: for hosts that
# reach a Debian mirror and PyPI but no container registry (`make images` runs this).
#
#   deploy/local/build-images.sh             # then: docker-compose -f deploy/docker-compose.yml
#                                            #         -f deploy/compose.local.yml up -d
#
# 1. A Debian 12 image. Pulled as debian:bookworm-slim when a registry answers; otherwise made
#    with debootstrap (installed from apt when missing) into a temporary folder and imported as
#    haflow-local/debian:bookworm. It is labelled with the hash of its inputs (suite, mirror,
#    packages) and made again only when they change.
# 2. haflow-local/base (base.Dockerfile): Python 3.11 in a virtualenv, the host's extra CAs.
# 3. haflow:local from deploy/Dockerfile, the file users build, with BASE=haflow-local/base.
# 4. haflow-local/{zookeeper,postgres,rabbitmq,haproxy,prometheus,redis} from their Dockerfiles
#    here (redis is for a Redis broker, which the chaos harness's clusters use), and
#    haflow-local/patroni from deploy/patroni/Dockerfile on haflow-local/postgres (the metastore
#    under Patroni, for a cluster without a single point of failure).
# Steps 2-4 are `docker build`s: an unchanged input is a cache hit, a few seconds in all.
# Grafana is not packaged by Debian: the local stack runs without it (compose.local.yml).
#
# Knobs: HAFLOW_DEBIAN_MIRROR (default: this host's apt mirror, else deb.debian.org),
# HAFLOW_DEBIAN_IMAGE (use this Debian 12 image, skip step 1), HAFLOW_IMAGES (the images of
# steps 3-4 to build, default all: "haflow zookeeper postgres patroni rabbitmq haproxy prometheus redis").
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
SUITE=bookworm
DEBIAN_LOCAL=haflow-local/debian:$SUITE
BASE=haflow-local/base
SERVERS="zookeeper postgres patroni rabbitmq haproxy prometheus redis"
IMAGES=${HAFLOW_IMAGES:-haflow $SERVERS}
started=$SECONDS

say() { echo "[images $((SECONDS - started))s] $*" >&2; }

need_docker() {
    if ! docker info >/dev/null 2>&1; then
        echo "build-images.sh: no Docker engine answers (bash scripts/docker-engine.sh starts one)" >&2
        exit 1
    fi
}

host_mirror() {  # the first Debian mirror this host's apt uses, else deb.debian.org
    local found
    found=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | sed -n 's|^URIs: *\(http[^ ]*/debian\)/*$|\1|p' | head -n 1)
    [ -n "$found" ] || found=$(sed -n 's|^deb \(http[^ ]*/debian\)/* .*|\1|p' \
        /etc/apt/sources.list 2>/dev/null | head -n 1)
    echo "${found:-http://deb.debian.org/debian}"
}

label_of() {  # label_of IMAGE: its haflow.inputs label, empty when the image is missing
    docker image inspect -f '{{index .Config.Labels "haflow.inputs"}}' "$1" 2>/dev/null || true
}

debootstrap_image() {  # make $DEBIAN_LOCAL with debootstrap unless its inputs are unchanged
    local mirror inputs rootfs
    mirror=${HAFLOW_DEBIAN_MIRROR:-$(host_mirror)}
    inputs=$(printf '%s\n' "$SUITE" "$mirror" minbase ca-certificates \
        | sha256sum | cut -c1-16)
    if [ "$(label_of "$DEBIAN_LOCAL")" = "$inputs" ]; then
        say "$DEBIAN_LOCAL is up to date"
        return
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "build-images.sh: debootstrap needs root (or set HAFLOW_DEBIAN_IMAGE)" >&2
        exit 1
    fi
    if ! command -v debootstrap >/dev/null; then
        say "installing debootstrap"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null \
            || { apt-get update -q >/dev/null \
                 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null; }
    fi
    rootfs=$(mktemp -d /var/tmp/haflow-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    say "debootstrap $SUITE from $mirror (about a minute)"
    debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$rootfs" "$mirror" \
        > "$rootfs.log" 2>&1 || { tail -n 20 "$rootfs.log" >&2; exit 1; }
    rm -f "$rootfs.log"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import \
        -c "LABEL haflow.inputs=$inputs" -c 'CMD ["bash"]' - "$DEBIAN_LOCAL" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
    say "imported $DEBIAN_LOCAL"
}

build() {  # build TAG DOCKERFILE CONTEXT [ARGS...]
    local tag=$1 file=$2 context=$3 log
    shift 3
    log=$(mktemp)
    if ! docker build -q -f "$file" -t "$tag" "$@" "$context" > "$log" 2>&1; then
        echo "build-images.sh: building $tag failed:" >&2
        tail -n 30 "$log" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
    say "built $tag"
}

need_docker
debian=${HAFLOW_DEBIAN_IMAGE:-}
if [ -z "$debian" ]; then
    if docker image inspect debian:$SUITE-slim >/dev/null 2>&1 \
        || timeout 60 docker pull -q debian:$SUITE-slim >/dev/null 2>&1; then
        debian=debian:$SUITE-slim
        say "using debian:$SUITE-slim from the registry"
    else
        say "no registry answers: making the Debian image with debootstrap"
        debootstrap_image
        debian=$DEBIAN_LOCAL
    fi
fi

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$here/base.Dockerfile" "$context/"
mkdir "$context/extra-ca"
cp /usr/local/share/ca-certificates/*.crt "$context/extra-ca/" 2>/dev/null || true
build "$BASE" "$context/base.Dockerfile" "$context" --build-arg "DEBIAN=$debian"

for image in $IMAGES; do
    case $image in
        haflow) build haflow:local "$root/deploy/Dockerfile" "$root" --build-arg "BASE=$BASE" ;;
        # the deploy kit's own Dockerfile (its default base is postgres:15), on Debian's
        patroni) build haflow-local/patroni "$root/deploy/patroni/Dockerfile" "$root/deploy/patroni" \
            --build-arg "BASE=haflow-local/postgres" ;;
        *) build "haflow-local/$image" "$here/$image.Dockerfile" "$here" --build-arg "BASE=$BASE" ;;
    esac
done
say "done"
