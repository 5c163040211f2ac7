#!/usr/bin/env bash
# Packs .whl/ for a `make bench` run on a lent GPU machine (the device tool; see its README):
# that machine has Python 3.12 with a CUDA torch, aiohttp, grpcio, numpy and more, nothing
# can be installed there from the network, and what it lacks travels with the working tree.
# Here: Python 3.12 wheels of what our services need and its image lacks (bentoml and its
# dependencies, pydantic, uvicorn, httptools, uvloop, python-multipart; our venv's versions), and wrk's
# Debian packages (the load generator). Then, on the device: `bash bench/device/run.sh`.
set -euo pipefail
cd "$(dirname "$0")/../.."
# The device image's package list, as the device tool documents it.
KINDS=${DEVICE_KINDS:-/work/.library/device/KINDS.md}
PY=${PY:-.venv/bin/python}
rm -rf .whl && mkdir -p .whl/all .whl/deb
$PY -m pip freeze --exclude-editable | grep -v '^torch==' > .whl/constraints.txt
$PY -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_26_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -c .whl/constraints.txt -d .whl/all bentoml pydantic uvicorn httptools uvloop python-multipart
# Keep only what the image lacks: two versions of one package there stop the whole install.
$PY - "$KINDS" <<'PY'
import re, shutil, sys
from pathlib import Path

text = Path(sys.argv[1]).read_text() if Path(sys.argv[1]).exists() else ""
listed = re.search(r"^nvidia-h200:.*?Packages: (.*?)\.\s*$", text, re.M)
norm = lambda name: re.sub(r"[-_.]+", "-", name.strip().lower())
present = {norm(p) for p in listed.group(1).split(",")} if listed else set()
for wheel in sorted(Path(".whl/all").glob("*.whl")):
    if norm(wheel.name.split("-")[0]) not in present:
        shutil.move(wheel, Path(".whl") / wheel.name)
print(f"{len(list(Path('.whl').glob('*.whl')))} wheels the device image lacks"
      + ("" if listed else " (no package list found: all of them)"))
PY
rm -rf .whl/all
(cd .whl/deb && apt-get download -qq wrk libluajit-5.1-2 libssl3)
du -sh .whl
