#!/usr/bin/env bash
# `make bench` for the GPU goal, on a lent GPU machine (the device tool), after
# `bash bench/device/prepare.sh` here: run there with carry [".whl"] and this command.
# ResNet-50-sized model only (`--skip fashion`: no data package there); results, log and
# plot go to $OUT, which comes back.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD BENTOML_DO_NOT_TRACK=true PYTHONUNBUFFERED=1
mkdir -p /tmp/wrk && for f in .whl/deb/*.deb; do dpkg -x "$f" /tmp/wrk; done
export PATH=/tmp/wrk/usr/bin:$PATH LD_LIBRARY_PATH=/tmp/wrk/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
wrk --version | head -1 || true
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
out=${OUT:-build/bench-gpu}
mkdir -p "$out"
python3 -m bench.run --skip fashion --store /tmp/bench-store --out "$out" "$@" 2>&1 | tee "$out/bench.log"
