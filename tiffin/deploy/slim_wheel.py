"""A serving copy of a wheel for the container images (torch's, tokenizers'): the same build
without what eager inference never loads, so each image carries ~300 MB less
(docs/decisions/016-image-sizes.md).

    python -m tiffin.deploy.slim_wheel IN.whl OUT_DIR [--drop-requires sympy,networkx,setuptools]

Left out: the C++ test binaries (torch/test, torch/bin except torch_shm_manager, which
tensor sharing between processes starts) and the C++ headers (torch/include: only
torch.compile's C++ code generation and C++ extensions read them, and the images use
neither); the shared libraries' symbol tables are stripped (`strip --strip-unneeded`, from
binutils: their code is unchanged). --drop-requires removes dependencies from the wheel's
metadata for images that never import them (sympy and networkx serve torch.compile and
torch.fx shapes; setuptools serves C++ extensions). RECORD is written anew.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LEFT_OUT = ("torch/test/", "torch/include/", "torch/bin/")
KEPT_IN_BIN = ("torch/bin/torch_shm_manager",)


def left_out(name: str) -> bool:
    return name.startswith(LEFT_OUT) and name not in KEPT_IN_BIN


def stripped(data: bytes) -> bytes:
    """`data` (an ELF shared library) without its symbol table; as it was if strip fails."""
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "lib.so"
        lib.write_bytes(data)
        done = subprocess.run(["strip", "--strip-unneeded", str(lib)], capture_output=True)
        return lib.read_bytes() if done.returncode == 0 else data


def metadata(text: str, drop: set[str]) -> str:
    dropped = {canonicalize_name(d) for d in drop}

    def keep(line: str) -> bool:
        if not line.startswith("Requires-Dist:"):
            return True
        return canonicalize_name(Requirement(line.split(":", 1)[1].strip()).name) not in dropped

    return "".join(line for line in text.splitlines(keepends=True) if keep(line))


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}\n"


def slim(wheel: Path, out_dir: Path, drop: set[str]) -> Path:
    if not shutil.which("strip"):
        sys.exit("slim_wheel: needs `strip` (Debian package binutils)")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / wheel.name
    record, saved = [], 0
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as dst:
        names = src.namelist()
        record_name = next(n for n in names if n.endswith(".dist-info/RECORD"))
        for info in src.infolist():
            if info.is_dir() or info.filename == record_name:
                continue
            if left_out(info.filename):
                saved += info.file_size
                continue
            data = src.read(info)
            if info.filename.endswith(".so") or ".so." in info.filename:
                slimmer = stripped(data)
                saved += len(data) - len(slimmer)
                data = slimmer
            elif info.filename.endswith(".dist-info/METADATA") and drop:
                data = metadata(data.decode(), drop).encode()
            out = zipfile.ZipInfo(info.filename, info.date_time)
            out.external_attr = info.external_attr  # keeps torch_shm_manager executable
            out.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(out, data)
            record.append(record_line(info.filename, data))
        record.append(f"{record_name},,\n")
        dst.writestr(zipfile.ZipInfo(record_name, (2026, 1, 1, 0, 0, 0)), "".join(record))
    print(
        f"{target}: {saved / 2**20:.0f} MiB less installed than {wheel.name}; requires without {sorted(drop) or '-'}",
        file=sys.stderr,
    )
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--drop-requires", default="", help="comma-separated distribution names")
    args = parser.parse_args()
    slim(args.wheel, args.out_dir, {d.strip().lower() for d in args.drop_requires.split(",") if d.strip()})


if __name__ == "__main__":
    main()
