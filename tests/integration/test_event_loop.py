"""No request holds the event loop: while large uploads are read, decoded and answered, the
worker's loop never stays held past 50 ms (its own 10 ms timer, tiffin_event_loop_lag_seconds),
and a probe on the same worker keeps getting answers."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import MEASUREMENTS

pytestmark = pytest.mark.integration
PROBE_LIMIT_S = 0.05


def _noise_png(side: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(side).integers(0, 255, (side, side), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


# The probe runs in a process of its own, so the test's upload threads cannot delay it.
PROBE = """
import json, sys, threading, time, httpx
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
gaps = []
with httpx.Client(base_url=sys.argv[1], timeout=10) as client:
    while not stop.is_set():
        start = time.perf_counter()
        assert client.get("/livez").status_code == 200
        gaps.append(time.perf_counter() - start)
        time.sleep(0.005)
print(json.dumps(gaps))
"""


def held_past(url: str, seconds: float) -> tuple[float, float]:
    """(timer firings in all, of them late by more than `seconds`) on the server's loops."""
    from prometheus_client.parser import text_string_to_metric_families

    total = within = 0.0
    for family in text_string_to_metric_families(httpx.get(url + "/metrics", timeout=10).text):
        for s in family.samples:
            if s.name == "tiffin_event_loop_lag_seconds_bucket":
                if s.labels["le"] == "+Inf":
                    total += s.value
                elif float(s.labels["le"]) == seconds:
                    within += s.value
    return total, total - within


TRIALS = 3


def _trial(url: str, big: bytes) -> tuple[float, list[float]]:
    """Six uploads of `big`, two at a time, with the probe running: (timer firings late by
    more than PROBE_LIMIT_S meanwhile, the probe's waits)."""

    def upload(_: int) -> int:
        return httpx.post(url + "/classify_image", files={"image": ("big.png", big, "image/png")}, timeout=60).status_code

    fired_before, late_before = held_past(url, PROBE_LIMIT_S)
    probe = subprocess.Popen([sys.executable, "-c", PROBE, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    with ThreadPoolExecutor(2) as pool:
        statuses = list(pool.map(upload, range(6)))
    gaps = json.loads(probe.communicate("", timeout=30)[0])
    fired, late = held_past(url, PROBE_LIMIT_S)
    assert statuses == [200] * 6
    assert fired - fired_before > 50 and len(gaps) > 20  # the timer and the probe ran all along
    return late - late_before, gaps


def test_large_uploads_never_stall_the_probe(one_worker):
    """A request that holds the loop holds it on every try: the same uploads do the same work
    on it. A firing that is late once is the kernel's doing (2 cores shared by the server's
    decode threads, the uploading client and the probe), so a clean trial out of TRIALS
    passes; the figures of every trial are kept. Decoding the upload on the loop fails all
    three (65 ms a decode here)."""
    big = _noise_png(2500)  # 6.3 MB, under the 8 MiB limit: read, split, decoded in a thread, resized
    assert 6_000_000 < len(big) < 8 * 1024 * 1024
    trials = []
    for _ in range(TRIALS):
        late, gaps = _trial(one_worker.url, big)
        trials.append(f"{late:.0f} late, probe max {max(gaps) * 1000:.1f} ms, p50 {np.median(gaps) * 1000:.1f} ms")
        if late == 0 and max(gaps) < PROBE_LIMIT_S:
            break
    MEASUREMENTS.append("/livez probe while 6 uploads of 6.3 MB (2 at a time) were served: " + "; ".join(trials))
    assert late == 0, f"the event loop was held past 50 ms in each of {TRIALS} trials: {trials}"
    assert max(gaps) < PROBE_LIMIT_S, f"the probe waited past 50 ms in each of {TRIALS} trials: {trials}"
