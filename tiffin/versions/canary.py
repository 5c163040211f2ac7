"""Canary analysis: a candidate version gets a share of a model's traffic (a split) and a
shadow of the rest, and is judged every `interval_s` on what it did since the last check:

    success        its requests answered / all its requests (busy and errors count against it)
    disagreement   its shadow answers that disagree with the primary's / all compared
    latency        p99 of its batch compute time / the primary's (from the histogram buckets)

A check fails when any figure with at least `min_samples` behind it is past its threshold; it
passes when all are within; else it waits for traffic. After `failures` failed checks in a row
the candidate is rolled back without a person (split and shadow removed, history says why,
by "canary"); `tiffin canary promote` promotes it (through the promotion gate) and ends both.

The judge runs in the serving workers that serve the model, one at a time: the worker holding
an flock on the book's `.canary-<model>` file judges, reading every worker's series
(Prometheus's multi-process files); if it exits, another takes the lock within JUDGE_RETRY_S.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from typing import Any

from tiffin.versions.book import DEFAULT_ALIAS, AliasError, Book, record

log = logging.getLogger("tiffin")
CHECKS = {"min_success": 0.99, "max_disagreement": 0.2, "max_latency_ratio": 2.0, "min_samples": 20}
RESULTS_KEPT = 20
JUDGE_RETRY_S = 5.0


def start(
    name: str,
    version: str,
    *,
    weight: int = 10,
    shadow_percent: float = 100.0,
    interval_s: float = 10.0,
    failures: int = 3,
    checks: dict[str, float] | None = None,
    alias: str = DEFAULT_ALIAS,
    why: str = "",
    by: str | None = None,
) -> dict:
    """Send `weight` % of `name`'s traffic to `version`, shadow it on `shadow_percent` % of the rest, judge it."""
    from tiffin.versions.manage import Ref, find

    if not 0 < weight < 100:
        raise ValueError(f"weight {weight!r}: the candidate's share, a whole number from 1 to 99")
    unknown = set(checks or {}) - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown checks {sorted(unknown)}; known: {', '.join(CHECKS)}")
    book = Book()
    candidate = find(Ref(name, version=version), book).tag.version
    primary = book.resolve(name, alias) or find(Ref(name), book).tag.version
    if candidate == primary:
        raise AliasError(f"{name}@{alias} already names {candidate}; a canary needs another version")
    with book.change() as data:
        running = data.get("canary", {}).get(name)
        if running and running["state"] == "running":
            raise AliasError(f"{name} already has a canary running ({running['version']}); promote or roll it back first")
        data.setdefault("traffic", {})[name] = {"weights": {primary: 100 - weight, candidate: weight}, "sticky": None}
        data.setdefault("shadow", {})[name] = {"version": candidate, "percent": float(shadow_percent)}
        data.setdefault("canary", {})[name] = {
            "version": candidate,
            "primary": primary,
            "alias": alias,
            "weight": weight,
            "state": "running",
            "interval_s": interval_s,
            "failures_allowed": failures,
            "failed": 0,
            "checks": {**CHECKS, **(checks or {})},
            "results": [],
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        return record(data, name, alias, "canary-start", primary, f"{candidate} at {weight}%", why, by)


def _end(data: dict, name: str, state: str) -> dict:
    entry = data.get("canary", {}).get(name)
    if not entry or entry["state"] != "running":
        raise AliasError(f"{name} has no canary running")
    entry["state"] = state
    data.get("traffic", {}).pop(name, None)
    data.get("shadow", {}).pop(name, None)
    return entry


def rollback(name: str, *, why: str = "", by: str | None = None) -> dict:
    with Book().change() as data:
        entry = _end(data, name, "rolled_back")
        return record(data, name, entry["alias"], "canary-rollback", entry["version"], entry["primary"], why, by)


def promote(name: str, *, force: bool = False, why: str = "", by: str | None = None) -> dict:
    from tiffin.versions import manage

    entry = status(name)
    if entry is None or entry["state"] != "running":
        raise AliasError(f"{name} has no canary running")
    move = manage.promote(name, entry["version"], entry["alias"], force=force, why=why or "canary promoted", by=by)
    with Book().change() as data:
        _end(data, name, "promoted")
        record(data, name, entry["alias"], "canary-end", entry["version"], entry["version"], "promoted", by)
    return move


def status(name: str) -> dict | None:
    return Book().read().get("canary", {}).get(name)


# --- judging -------------------------------------------------------------------------------


def samples() -> dict[tuple[str, frozenset], float]:
    """Every tiffin_* sample of this process's registry, or of every worker's when BentoML runs
    Prometheus in multi-process mode: {(name, labels): value}."""
    import prometheus_client
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = prometheus_client.REGISTRY
    out: dict[tuple[str, frozenset], float] = {}
    for metric in registry.collect():
        if metric.name.startswith("tiffin_"):
            for s in metric.samples:
                key = (s.name, frozenset(s.labels.items()))
                out[key] = out.get(key, 0.0) + s.value
    return out


def _sum(now: dict, before: dict, name: str, **labels: str) -> float:
    want = set(labels.items())
    total = 0.0
    for (n, ls), value in now.items():
        if n == name and want <= ls:
            total += value - before.get((n, ls), 0.0)
    return total


def _p99(now: dict, before: dict, name: str, **labels: str) -> tuple[float | None, float]:
    """(p99 estimated from the bucket counts added since `before`, how many observations)."""
    want = set(labels.items())
    buckets: dict[float, float] = {}
    for (n, ls), value in now.items():
        if n == name + "_bucket" and want <= ls:
            bound = float(dict(ls)["le"])
            buckets[bound] = buckets.get(bound, 0.0) + value - before.get((n, ls), 0.0)
    if not buckets:
        return None, 0.0
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return None, 0.0
    for bound in bounds:
        if buckets[bound] >= 0.99 * total:
            return bound, total
    return bounds[-1], total


def judge(model: str, entry: dict, now: dict, before: dict) -> dict:
    """One check of a running canary over the window between two sets of samples."""
    c, cand, prim = entry["checks"], entry["version"], entry["primary"]
    ok = _sum(now, before, "tiffin_model_requests_total", model=model, version=cand, outcome="ok")
    bad = sum(_sum(now, before, "tiffin_model_requests_total", model=model, version=cand, outcome=o) for o in ("busy", "error"))
    agree = _sum(now, before, "tiffin_shadow_compared_total", model=model, primary=prim, shadow=cand, agree="true")
    differ = _sum(now, before, "tiffin_shadow_compared_total", model=model, primary=prim, shadow=cand, agree="false")
    p99_c, n_c = _p99(now, before, "tiffin_model_batch_seconds", model=model, version=cand)
    p99_p, n_p = _p99(now, before, "tiffin_model_batch_seconds", model=model, version=prim)
    figures, failed = {}, []
    enough = c["min_samples"]
    if ok + bad >= enough:
        figures["success"] = round(ok / (ok + bad), 4)
        if figures["success"] < c["min_success"]:
            failed.append(f"success {figures['success']:.3f} < {c['min_success']}")
    if agree + differ >= enough:
        figures["disagreement"] = round(differ / (agree + differ), 4)
        if figures["disagreement"] > c["max_disagreement"]:
            failed.append(f"disagreement {figures['disagreement']:.3f} > {c['max_disagreement']}")
    if p99_c and p99_p and min(n_c, n_p) >= enough / 4:  # batches, not requests: fewer
        figures["latency_ratio"] = round(p99_c / p99_p, 3)
        if figures["latency_ratio"] > c["max_latency_ratio"]:
            failed.append(f"p99 batch time {figures['latency_ratio']:.2f}x the primary's > {c['max_latency_ratio']}")
    verdict = (
        "fail" if failed else ("pass" if len(figures) == 3 or ("success" in figures and "disagreement" in figures) else "wait")
    )
    return {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "verdict": verdict, "figures": figures, "failed": failed}


class Judge:
    """Runs in every worker, for the models that worker serves; judges a model's canary only
    while it holds that model's lock, so one worker of the host does."""

    def __init__(self, models, book: Book | None = None):
        self.models, self.book = set(models), book or Book()
        self._locks: dict[str, Any] = {}
        self._before: dict[str, tuple[float, dict, tuple]] = {}  # model -> (when, samples, canary)

    def _lead(self, model: str) -> bool:
        if model in self._locks:
            return True
        path = self.book.path.with_name(f"{self.book.path.name}.canary-{model}")
        try:
            f = open(path, "a")  # noqa: SIM115 (held open while this worker judges)
        except OSError:
            return False
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            return False
        self._locks[model] = f
        return True

    async def run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.step)
            except Exception:  # a judge that fails must not take the worker with it
                log.exception("canary judge failed; trying again")
            await asyncio.sleep(1.0 if self._locks else JUDGE_RETRY_S)

    def step(self) -> None:
        try:
            running = {m: e for m, e in self.book.read().get("canary", {}).items() if e["state"] == "running"}
        except AliasError:
            return
        mine = [m for m in running if m in self.models and self._lead(m)]
        if not mine:
            return
        now, clock = samples(), time.monotonic()
        for model in mine:
            entry, seen = running[model], self._before.get(model)
            this = (entry["version"], entry["started"])
            if seen is None or seen[2] != this:
                self._before[model] = (clock, now, this)  # the window starts here
                continue
            if clock - seen[0] < entry["interval_s"]:
                continue
            self._before[model] = (clock, now, this)
            self._record(model, judge(model, entry, now, seen[1]))

    def _record(self, model: str, result: dict) -> None:
        with self.book.change() as data:
            entry = data.get("canary", {}).get(model)
            if not entry or entry["state"] != "running":
                return
            entry["results"] = [*entry["results"], result][-RESULTS_KEPT:]
            if result["verdict"] == "fail":
                entry["failed"] += 1
            elif result["verdict"] == "pass":
                entry["failed"] = 0
            if entry["failed"] >= entry["failures_allowed"]:
                _end(data, model, "rolled_back")
                why = f"{entry['failed']} failed checks in a row: " + "; ".join(result["failed"])
                record(data, model, entry["alias"], "canary-rollback", entry["version"], entry["primary"], why, "canary")
                log.warning("%s: canary %s rolled back: %s", model, entry["version"], why)
