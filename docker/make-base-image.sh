#!/bin/sh
# Make a local Python base image for the Dockerfile's BASE_IMAGE, without any image registry.
#
# On machines that reach Debian's package mirror but no public image registry, the official
# slim Python image cannot be pulled. This script makes an equivalent from Debian's packages:
#   1. debootstrap --variant=minbase bookworm into a temporary folder, with the mirror the
#      machine's apt already uses, and `docker import` it as local/debian:bookworm;
#   2. build docker/base.Dockerfile on it: python3 + python3-venv, and the machine's own
#      extra CA certificates (an egress proxy's, say) so that pip inside `docker build`
#      trusts what the host trusts.
# Each image is made only when missing, so a second run takes a fraction of a second.
#
#   docker/make-base-image.sh [IMAGE]      default IMAGE: local/python:3.11-bookworm
#   docker build --network host --build-arg BASE_IMAGE=local/python:3.11-bookworm -t ubernetes .
set -eu

IMAGE=${1:-local/python:3.11-bookworm}
DEBIAN_IMAGE=${DEBIAN_IMAGE:-local/debian:bookworm}
SUITE=bookworm
HERE=$(cd "$(dirname "$0")" && pwd)

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "make-base-image: $IMAGE exists; nothing to do"
    exit 0
fi

mirror() {
    # The first Debian mirror of apt's sources (deb822 .sources files or one-line lists).
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f"
    done | head -n 1
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] && awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/ && $i !~ /security/) { print $i; exit } }' "$f"
    done | head -n 1
}

if ! docker image inspect "$DEBIAN_IMAGE" >/dev/null 2>&1; then
    if ! command -v debootstrap >/dev/null 2>&1; then
        echo "make-base-image: installing debootstrap"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    fi
    MIRROR=${DEBIAN_MIRROR:-$(mirror | head -n 1)}
    [ -n "$MIRROR" ] || { echo "make-base-image: no Debian mirror in /etc/apt; set DEBIAN_MIRROR" >&2; exit 1; }
    ROOTFS=$(mktemp -d /var/tmp/ubernetes-rootfs.XXXXXX)
    trap 'rm -rf "$ROOTFS"' EXIT
    echo "make-base-image: debootstrap $SUITE from $MIRROR (about a minute)"
    debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 \
        || { tail -n 20 "$ROOTFS.log" >&2; rm -f "$ROOTFS.log"; exit 1; }
    rm -f "$ROOTFS.log"
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
    tar -C "$ROOTFS" -c . | docker import -c 'CMD ["/bin/bash"]' - "$DEBIAN_IMAGE" >/dev/null
    rm -rf "$ROOTFS"
    trap - EXIT
    echo "make-base-image: imported $DEBIAN_IMAGE"
fi

# The build context: only the Dockerfile and the machine's extra CA certificates.
CONTEXT=$(mktemp -d /var/tmp/ubernetes-base.XXXXXX)
trap 'rm -rf "$CONTEXT"' EXIT
mkdir "$CONTEXT/ca"
for crt in /usr/local/share/ca-certificates/*.crt; do
    [ -f "$crt" ] && cp "$crt" "$CONTEXT/ca/"
done
cp "$HERE/base.Dockerfile" "$CONTEXT/Dockerfile"
echo "make-base-image: building $IMAGE from $DEBIAN_IMAGE"
DOCKER_BUILDKIT=0 docker build -q --network host --build-arg DEBIAN_IMAGE="$DEBIAN_IMAGE" -t "$IMAGE" "$CONTEXT" >/dev/null
echo "make-base-image: built $IMAGE"
