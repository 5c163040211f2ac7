"""Write the serving requirements for bentos: pyproject.toml's pinned core and `serve` extra
(a served bento needs neither the training nor the dev dependencies).

    python -m tiffin.deploy.requirements build/requirements.txt
    python -m tiffin.deploy.requirements build/requirements-cpu.txt --torch-wheel build/wheels/torch-...whl

With --torch-wheel, torch is installed from that wheel (carried in the bento under
env/python/wheels/) instead of the index, whose default torch build is the CUDA one.
"""

import argparse
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pins() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["dependencies"] + project["optional-dependencies"]["serve"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--torch-wheel", type=Path)
    args = parser.parse_args()
    lines = pins()
    if args.torch_wheel:
        # install.sh reads requirements from env/python/, beside the wheels/ folder
        lines = [f"./wheels/{args.torch_wheel.name}" if p.startswith("torch==") else p for p in lines]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
