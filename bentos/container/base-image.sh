#!/usr/bin/env bash
# Make the local base image for tiffin's CPU container from Debian packages, for machines
# that cannot pull from a container registry. It trusts the host's extra CA certificates
# (/usr/local/share/ca-certificates), so pip and uv work inside image builds behind a
# TLS-inspecting proxy. Needs root, debootstrap and podman or docker. Does nothing if the
# image exists.
set -euo pipefail
# The tag changes whenever what the image holds does (tiffin/deploy/container_bentos.py names
# it too), so a machine that kept an older base builds the new one.
IMAGE=${IMAGE:-localhost/tiffin-base:bookworm-2}
# docker has its own image store; podman and buildah share one, which podman fills.
ENGINE=${ENGINE:-podman}
[ "$ENGINE" = buildah ] && ENGINE=podman
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if "$ENGINE" image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "$IMAGE exists"
    exit 0
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
# No python3-pip (pip, setuptools, wheel: 25 MB in every image): the bento's build stage makes
# a throwaway venv (python3-venv carries pip's wheel) to get uv, and uv installs the rest.
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$MIRROR"
cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
chroot "$root" update-ca-certificates
# The bento's build installs into virtual environments of its own.
rm -f "$root"/usr/lib/python3.*/EXTERNALLY-MANAGED
ln -sf /usr/bin/python3 "$root/usr/local/bin/python"
chroot "$root" apt-get clean
# what no server reads: package lists, documentation, manual pages, translations (~45 MB)
rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/usr/share/locale/*
# uv ships its own CA roots unless told to use the system's.
tar -C "$root" -c . | "$ENGINE" import \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV UV_NATIVE_TLS=true' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' \
    - "$IMAGE"
echo "made $IMAGE"
