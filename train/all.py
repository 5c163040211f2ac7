"""Train every model: `python -m train.all [--quick] [--missing]`.

--missing trains only the models that have no version in the store yet (what
`make serve` does on a fresh machine).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from tiffin import families

SCRIPTS = {family.name: family.train for family in families.TRAINED}  # store name -> training module


def missing() -> list[str]:
    import bentoml

    present = {m.tag.name for m in bentoml.models.list()}
    return [name for name in SCRIPTS if name not in present]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--missing", action="store_true", help="train only models absent from the store")
    args = parser.parse_args()
    names = missing() if args.missing else list(SCRIPTS)
    if not names:
        print("every model is in the store; nothing to train")
    start = time.perf_counter()
    for name in names:
        cmd = [sys.executable, "-m", SCRIPTS[name]] + (["--quick"] if args.quick else [])
        print(f"==> {' '.join(cmd[1:])}", flush=True)
        subprocess.run(cmd, check=True)
    print(f"trained {len(names)} model(s) in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
