"""Write the serving requirements for bentos: pyproject.toml's pinned core and `serve` extra
(a served bento needs neither the training nor the dev dependencies).

    python -m tiffin.deploy.requirements build/requirements.txt

The container bentos write their own from the same pins (tiffin/deploy/container_bentos.py).
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
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(pins()) + "\n")


if __name__ == "__main__":
    main()
