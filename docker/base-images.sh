#!/usr/bin/env bash
# Make the base images docker/Dockerfile can start FROM on a machine that reaches no image
# registry (Debian 12, root): a minimal Debian made with debootstrap, and Debian's Python in a
# virtual environment on top. Each is made once; an image that exists is kept.
#
#   bash docker/base-images.sh           # -> sweepkit-base/debian:bookworm, sweepkit-base/python:bookworm
#   docker build -f docker/Dockerfile --build-arg BASE=sweepkit-base/python:bookworm -t sweepkit:latest .
#
# Needs a running docker engine (see docker/README.md), debootstrap, and the Debian mirror of
# /etc/apt/sources.list.d/debian.sources. Takes ~1 min the first time (debootstrap), ~0 s after.
set -euo pipefail

debian_image=sweepkit-base/debian:bookworm
python_image=sweepkit-base/python:bookworm
have() { docker image inspect "$1" >/dev/null 2>&1; }

if ! have "$debian_image"; then
    command -v debootstrap >/dev/null || {
        echo "base-images.sh: debootstrap is missing (apt-get install debootstrap)" >&2
        exit 1
    }
    mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
    rootfs="$(mktemp -d)"
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant=minbase bookworm "$rootfs" "${mirror:-http://deb.debian.org/debian}" >/dev/null
    tar -C "$rootfs" -c . | docker import - "$debian_image" >/dev/null
fi

if ! have "$python_image"; then
    context="$(mktemp -d)"
    # pip inside the build must trust what pip trusts here (a proxy's CA, say). apt's own
    # ca-certificates rewrites the system bundle, so the host's goes in beside it, after apt.
    cp "$(python3 -m pip config get global.cert 2>/dev/null || echo /etc/ssl/certs/ca-certificates.crt)" \
        "$context/host-ca.crt"
    cat >"$context/Dockerfile" <<'EOF'
FROM sweepkit-base/debian:bookworm
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends python3 python3-venv ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv
COPY host-ca.crt /opt/host-ca.crt
ENV PATH=/opt/venv/bin:$PATH PIP_CERT=/opt/host-ca.crt
EOF
    docker build -q --network=host -t "$python_image" "$context" >/dev/null
    rm -rf "$context"
fi
echo "base images: $debian_image, $python_image"
