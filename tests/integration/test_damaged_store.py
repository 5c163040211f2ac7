"""A model that cannot load stops `bentoml serve` within seconds, with a message naming the
model, the file and the problem (issue 19), for the all-in-one API and a runner on its own.
Before: workers failed and were restarted for ever, the server stayed up and the damaged
model's route timed out."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import MEASUREMENTS
from tiffin import store
from tiffin.deploy.serve import Server
from tiffin.families import fashion


def rewrite(file: Path, data: bytes) -> None:
    """Replace a file that may be a hard link into the shared test store without touching it."""
    file.unlink()
    file.write_bytes(data)


def truncate_weights(version: Path) -> None:
    weights = version / store.WEIGHTS
    rewrite(weights, weights.read_bytes()[: weights.stat().st_size // 2])


def cut_config(version: Path) -> None:
    config = version / store.CONFIG
    rewrite(config, config.read_bytes()[: config.stat().st_size // 2])


DAMAGES = {
    "truncated weights": (truncate_weights, "weights.safetensors: unreadable weights"),
    "config cut mid-JSON": (cut_config, "config.json: not valid JSON"),
    "missing tag": (None, "fashion-cnn:doesnotexist could not be found"),
}


@pytest.mark.parametrize(
    ("target", "damage"),
    [("services.api:Tiffin", name) for name in DAMAGES] + [("services.image_runner:ImageRunner", "truncated weights")],
)
def test_a_damaged_model_stops_the_server_naming_it(model_store, tmp_path, target, damage):
    home = store.linked_home(model_store, tmp_path / "home")
    spoil, message = DAMAGES[damage]
    env = {"BENTOML_HOME": str(home)}
    if spoil is None:
        env[fashion.FAMILY.env] = "fashion-cnn:doesnotexist"
    else:
        for version in (home / "models" / fashion.FAMILY.name).iterdir():
            if version.is_dir():
                spoil(version)
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="bentoml serve exited with 1") as failed, Server(target, env=env, ready_timeout=60):
        pass
    seconds = time.perf_counter() - start
    MEASUREMENTS.append(f"{target} with {damage}: exited 1 in {seconds:.1f} s")
    assert message in str(failed.value)
    if spoil is not None:
        assert "model fashion-cnn:" in str(failed.value)
    # a hang or a restart loop would run into ready_timeout instead; 10 s is the goal
    assert seconds < 30, f"{target} took {seconds:.1f} s to give up"
