"""The CPU container bentos, one per deployable: each is its bentofile (bentofile.yaml for
the all-in-one `tiffin`, bentos/<name>.yaml for the gateway and each runner) made buildable
on machines with no container registry, and carrying only what its service imports.

    python -m tiffin.deploy.container_bentos NAME...   # build/container/NAME-cpu.yaml, and what it needs
    python -m tiffin.deploy.container_bentos --split   # the gateway's and each runner's; prints the names

What each gets instead of its bentofile's `docker`/`python` (`make containerize`,
`make containerize-split`):
- the local Debian base image that `make base-image` makes (it trusts the host's CA
  certificates) and bentos/container/Dockerfile.j2, BentoML's Dockerfile with the install in
  a stage of its own (no wheel, uv or cache left in the image);
- the `serve` pins, with serving copies of the torch and tokenizers wheels
  (tiffin/deploy/slim_wheel.py) whose metadata drops what no served model imports (SLIMMED);
  images that run no MiniLM leave out its tokenizer too;
- TIFFIN_LOG_FORMAT=json: one JSON object per log line.

Every image runs its bento's service with no arguments, or any one service of its bento
with `start-http-server` and BENTOML_SERVE_SERVICE_NAME (tiffin/deploy/containers.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "build/container"
BASE_IMAGE = "localhost/tiffin-base:bookworm-2"  # bentos/container/base-image.sh makes it
DOWNLOADS = ROOT / "build/wheels"  # the pinned wheels as published
WHEEL_DIR = "build/wheels/slim"  # their serving copies (tiffin/deploy/slim_wheel.py)
# What a serving copy's metadata no longer requires: nothing a served model imports (each
# image is measured serving without them: decision 016). sympy and networkx serve
# torch.compile and torch.fx shapes, setuptools C++ extensions; huggingface-hub (with
# hf-xet, 19 MB) serves tokenizers' from_pretrained, and tiffin reads tokenizer.json itself.
SLIMMED = {"torch": {"sympy", "networkx", "setuptools"}, "tokenizers": {"huggingface-hub"}}
# what a service that runs no MiniLM model never imports
MINILM_ONLY = ("tokenizers",)
# name -> (its bentofile, whether a MiniLM model runs in it)
IMAGES: dict[str, tuple[str, bool]] = {
    "tiffin": ("bentofile.yaml", True),
    "tiffin-gateway": ("bentos/gateway.yaml", False),
    "tiffin-image": ("bentos/image.yaml", False),
    "tiffin-text-small": ("bentos/text-small.yaml", False),
    "tiffin-text-large": ("bentos/text-large.yaml", True),
    "tiffin-demand": ("bentos/demand.yaml", False),
}
SPLIT = tuple(name for name in IMAGES if name != "tiffin")


def requirements_file(minilm: bool) -> str:
    return "build/requirements-cpu.txt" if minilm else "build/requirements-cpu-lite.txt"


def pins(minilm: bool) -> list[str]:
    from tiffin.deploy import requirements

    return [p for p in requirements.pins() if minilm or p.split("==")[0] not in MINILM_ONLY]


def serving_wheel(pin: str) -> Path:
    """The serving copy of `pin`'s wheel (NAME==VERSION), made when missing or older than its
    download or the tool; pip downloads the wheel when build/wheels lacks it (on our
    machines pip finds the local CPU torch; elsewhere PIP_INDEX_URL=https://download.pytorch.org/whl/cpu
    gets the CPU build)."""
    from tiffin.deploy import slim_wheel

    name, version = pin.split("==")
    found = sorted(DOWNLOADS.glob(f"{name}-{version}[-+]*.whl"))
    if not found:
        pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(DOWNLOADS), pin]
        subprocess.run(pip, check=True, stdout=sys.stderr)  # stdout: the names make reads
        found = sorted(DOWNLOADS.glob(f"{name}-{version}[-+]*.whl"))
    source = found[-1]
    wheel = ROOT / WHEEL_DIR / source.name
    if not wheel.exists() or wheel.stat().st_mtime < max(source.stat().st_mtime, Path(slim_wheel.__file__).stat().st_mtime):
        slim_wheel.slim(source, wheel.parent, SLIMMED[name])
    return wheel


def wheels(minilm: bool) -> dict[str, str]:
    """The serving wheels a container bento carries: distribution name -> path from the
    repository root."""
    named = {pin.split("==")[0]: pin for pin in pins(minilm)}
    return {name: f"{WHEEL_DIR}/{serving_wheel(pin).name}" for name, pin in named.items() if name in SLIMMED}


def prepare(minilm: bool) -> None:
    """The serving wheels and the requirements a container bento names: the pins, with the
    slimmed wheels' files in place of their names."""
    carried = wheels(minilm)
    named = {pin.split("==")[0]: pin for pin in pins(minilm)}
    lines = [f"./wheels/{Path(carried[name]).name}" if name in carried else pin for name, pin in named.items()]
    (ROOT / requirements_file(minilm)).write_text("\n".join(lines) + "\n")


def bentofile(name: str) -> dict[str, Any]:
    source, minilm = IMAGES[name]
    spec = yaml.safe_load((ROOT / source).read_text())
    spec["name"] = f"{name}-cpu"
    spec["labels"] = {**spec.get("labels", {}), "variant": "cpu"}
    spec.pop("description", None)  # a path relative to the source bentofile
    spec["python"] = {
        "requirements_txt": requirements_file(minilm),
        "lock_packages": False,
        "wheels": list(wheels(minilm).values()),
    }
    spec["envs"] = [{"name": "TIFFIN_LOG_FORMAT", "value": "json"}]
    spec["docker"] = {"base_image": BASE_IMAGE, "dockerfile_template": "bentos/container/Dockerfile.j2"}
    return spec


def write(name: str, out: Path = OUT) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}-cpu.yaml"
    header = f"# Generated by tiffin/deploy/container_bentos.py from {IMAGES[name][0]}; do not edit.\n"
    path.write_text(header + yaml.safe_dump(bentofile(name), sort_keys=False))
    return path


def main(args: list[str]) -> None:
    names = list(SPLIT) if args == ["--split"] else args
    unknown = sorted(set(names) - set(IMAGES))
    if unknown or not names:
        sys.exit(f"usage: NAME... (of {sorted(IMAGES)}) or --split")
    for minilm in sorted({IMAGES[n][1] for n in names}):
        prepare(minilm)
    for name in names:
        write(name)
        print(name)


if __name__ == "__main__":
    main(sys.argv[1:])
