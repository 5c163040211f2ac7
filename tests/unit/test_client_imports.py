"""The client is for people who call a served model: importing it loads neither torch nor
BentoML (nor anything of the serving side)."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
import tiffin.client, tiffin.client.cli
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in
                        ("torch", "bentoml", "_bentoml_sdk", "_bentoml_impl", "transformers", "pandas", "starlette")
                        or m.startswith(("tiffin.families", "tiffin.runtime", "tiffin.store", "tiffin.oip.models")))))
"""


def test_import_tiffin_client_loads_no_torch_and_no_bentoml():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
