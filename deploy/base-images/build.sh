#!/usr/bin/env bash
# The base images docker-compose.yml and the Dockerfile name (python:3.11-slim, postgres:16,
# redis:7.4): kept if present, else pulled, else made here from the configured apt sources where
# no registry answers: a Debian bookworm rootfs by mmdebstrap (minbase and the service's
# packages), imported, and the stand-in recipe (<name>.Dockerfile) built on it. Needs root,
# docker (DOCKER_HOST honoured) and mmdebstrap. Usage: deploy/base-images/build.sh
set -euo pipefail
cd "$(dirname "$0")"
SOURCES=${GH_ASSETS_APT_SOURCES:-/etc/apt/sources.list.d/debian.sources}
[ -f "$SOURCES" ] || SOURCES=/etc/apt/sources.list
# image  recipe  Debian packages
IMAGES=(
    "python:3.11-slim python python3,python3-venv,ca-certificates"
    "postgres:16 postgres postgresql,ca-certificates"
    "redis:7.4 redis redis-server"
)
for row in "${IMAGES[@]}"; do
    read -r image recipe packages <<<"$row"
    docker image inspect "$image" >/dev/null 2>&1 && continue
    docker pull -q "$image" >/dev/null 2>&1 && continue
    rootfs="gh-assets-rootfs/$recipe:bookworm"
    if ! docker image inspect "$rootfs" >/dev/null 2>&1; then
        echo "base images: $image cannot be pulled; making it from $SOURCES" >&2
        mmdebstrap --quiet --variant=minbase --include="$packages" \
            --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
            bookworm - "$SOURCES" | docker import - "$rootfs" >/dev/null
    fi
    DOCKER_BUILDKIT=0 docker build -q --build-arg "ROOTFS=$rootfs" -t "$image" \
        -f "$recipe.Dockerfile" . >/dev/null
done
