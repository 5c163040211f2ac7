#!/usr/bin/env bash
# Write a containers.conf for podman/buildah here: runc as the runtime, and ulimits a
# sandboxed root can set (runc fails to raise RLIMIT_NPROC past what it is given, and
# podman's defaults ask for more). Use with CONTAINERS_CONF=<this file>.
set -euo pipefail
out=$1
mkdir -p "$(dirname "$out")"
nofile=$(ulimit -Hn)
cat > "$out" <<CONF
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
