"""Shadow traffic: a share of a model's requests is also answered by a candidate version, on
the side, and the two answers are compared; the caller only ever gets the primary's.

The candidate has its own batcher with a small queue and model threads at the lowest OS
priority, and is offered a request only after the primary has answered it: it never holds a
primary answer up. What it cannot take (its queue is full, or SHADOW_PENDING items are
already waiting) is dropped and counted. Compared, per model and pair of versions:

    tiffin_shadow_compared_total{model,primary,shadow,agree}   agree: the top label matches
        (a classifier), or the values are within 5 % of the primary's (a regressor)
    tiffin_shadow_abs_difference{model,primary,shadow}         |primary - shadow| of a regressor
    tiffin_shadow_dropped_total{model,shadow}

Disagreements go to a bounded JSON-lines file per worker (TIFFIN_SHADOW_LOG, default
$BENTOML_HOME/shadow/disagreements-w<N>.jsonl; 8 MB x 2): both answers and the input's digest.
"""

from __future__ import annotations

import functools
import os
import random
import time
from pathlib import Path
from typing import Any

from tiffin.runtime.cache import key_of

SHADOW_PENDING = 256  # items offered and not yet answered, per model and worker: more are dropped
SHADOW_QUEUE = 128  # the shadow batcher's own queue bound
REGRESSION_AGREES = 0.05  # relative difference under which two regressors' answers agree
LOG_BYTES, LOG_FILES = 8 * 2**20, 1


def _top(answer: dict) -> str:
    probs = answer["probabilities"]
    return max(probs, key=probs.__getitem__)


def disagreements_log(model: str):
    from tiffin.config import settings
    from tiffin.runtime.payload_log import JsonLines

    named = settings().shadow_log
    home = os.environ.get("BENTOML_HOME") or os.path.join(os.path.expanduser("~"), "bentoml")
    base = Path(named) if named else Path(home) / "shadow" / "disagreements.jsonl"
    try:
        from bentoml import server_context

        worker = server_context.worker_index or 0
    except ImportError:
        worker = 0
    try:
        return JsonLines(base.with_name(f"{base.stem}-w{worker}{base.suffix or '.jsonl'}"), LOG_BYTES, LOG_FILES, "shadow-log")
    except OSError:  # a read-only place: the counters still count
        return None


class Shadow:
    def __init__(self, model: str, lane: Any, percent: float, output: str | None, log: Any = None):
        """`lane`: the candidate's InProcess backend; `output`: a regressor's answer field (None:
        a classifier); `percent` of requests are offered to it."""
        from tiffin.runtime.metrics import ModelMetrics

        self.model, self.lane, self.percent, self.output, self.log = model, lane, percent, output, log
        self._offered = self._settled = 0  # items queued, items answered: pending = the difference
        metrics = ModelMetrics.get()
        self._compared, self._diff = metrics.shadow_compared, metrics.shadow_abs_difference
        self._dropped = metrics.shadow_dropped.labels(model, lane.version)

    @property
    def version(self) -> str:
        return self.lane.version

    def offer(self, items: list, answers: list[dict]) -> None:
        """On the event loop, after the primary answered `items` with `answers`: each item is
        queued on the candidate's batcher with a callback, which compares on its model thread,
        so the loop spends no task or wake-up on it."""
        if self.percent < 100 and random.random() * 100 >= self.percent:
            return
        if self._offered - self._settled + len(items) > SHADOW_PENDING:
            self._dropped.inc(len(items))
            return
        batcher = self.lane.batcher
        for item, primary in zip(items, answers):
            self._offered += 1
            if not batcher.offer(item, functools.partial(self._compare, item, primary)):
                self._offered -= 1
                self._dropped.inc()

    def _compare(self, item: Any, p: dict, s: dict | BaseException) -> None:
        """On the candidate's model thread: its answer `s` (or why there is none) against `p`."""
        self._settled += 1  # only here: `_offered` only on the loop, so neither loses a count
        if isinstance(s, BaseException):  # late, or the candidate failed: the primary is untouched
            self._dropped.inc()
            return
        first, second = p["model"].rpartition(":")[2], s["model"].rpartition(":")[2]
        if self.output is None:
            agree = _top(p) == _top(s)
        else:
            diff = abs(float(p[self.output]) - float(s[self.output]))
            self._diff.labels(self.model, first, second).observe(diff)
            agree = diff <= REGRESSION_AGREES * max(abs(float(p[self.output])), 1e-9)
        self._compared.labels(self.model, first, second, "true" if agree else "false").inc()
        if not agree and self.log is not None:
            self.log.put(
                {
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "model": self.model,
                    "input_blake2b": key_of(self.model, "", item).hex(),
                    "primary": p,
                    "shadow": s,
                }
            )

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
