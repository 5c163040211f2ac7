"""Aliases move while the all-in-one API serves 64 clients: the new version is loaded and
warmed beside the old one and swapped in between batches, with no failed request, and a
version that cannot load leaves the old one serving."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import time

import aiohttp
import httpx
import numpy as np
import pytest

from bench.loadgen import closed_loop
from bench.points import multipart
from tests.conftest import MEASUREMENTS, ROOT, stored_versions
from tiffin import families
from tiffin.deploy.serve import Server
from tiffin.versions.book import Book

pytestmark = pytest.mark.integration
PNG = (ROOT / "services/examples/bag.png").read_bytes()
# built once: encoding a form per request would make the client, not the server, what is timed
FORM, FORM_TYPE = multipart("image", "bag.png", "image/png", PNG)
INFER, OPS = "infer-key-for-the-swap-test", "ops-key-for-the-swap-test"


def _hex(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture(scope="module")
def swapping(version_home):
    """The API over the version store, following fashion-cnn@production in a book of its own."""
    versions = [v["version"] for v in stored_versions(version_home, "fashion-cnn")]
    first, second = versions[2], versions[1]  # the test store's own, and the good one the fixture added
    book = Book(version_home / "swap-aliases.json")
    book.move("fashion-cnn", "production", first, action="promote", why="start")
    env = {
        "BENTOML_HOME": str(version_home),
        "TIFFIN_ALIASES_FILE": str(book.path),
        "TIFFIN_ALIAS_POLL_S": "0.2",
        "TIFFIN_SHADOW_LOG": str(version_home / "shadow" / "disagreements.jsonl"),
        "TIFFIN_API_KEYS": f"app:{_hex(INFER)}:infer ops:{_hex(OPS)}:admin+metrics",
        **{family.env: "" for family in families.TRAINED},  # no fixed versions: follow the aliases
    }
    with Server(env=env) as srv:
        yield srv, book, f"fashion-cnn:{first}", f"fashion-cnn:{second}"


async def _load(url: str, seconds: float, moves: list[tuple[float, str, dict]]) -> tuple[list, list, list]:
    """64 clients for `seconds`; at each (t, path, body) an admin POST. Returns the answers as
    (sent, model tag, latency, received), the admin answers as (sent, received, status, body),
    and the requests that failed; times in seconds from the start. aiohttp: httpx's pool
    tops out near 200 requests/s at 64 connections here, which would time the client."""
    answers, admin, failed = [], [], []
    start = time.perf_counter()
    async with aiohttp.ClientSession(base_url=url, connector=aiohttp.TCPConnector(limit=80)) as client:
        infer = {**FORM_TYPE, "authorization": f"Bearer {INFER}"}

        async def send() -> bool:
            t0 = time.perf_counter()
            try:
                async with client.post("/classify_image", data=FORM, headers=infer) as r:
                    body = await r.json()
                    status = r.status
            except aiohttp.ClientError as exc:
                failed.append((t0 - start, repr(exc)))
                return False
            if status != 200:
                failed.append((t0 - start, status, body))
                return False
            t1 = time.perf_counter()
            answers.append((t0 - start, body["model"], t1 - t0, t1 - start))
            return True

        async def operator() -> None:
            for at, path, body in moves:
                await asyncio.sleep(max(0.0, at - (time.perf_counter() - start)))
                sent = time.perf_counter() - start
                async with client.post(path, json=body, headers={"authorization": f"Bearer {OPS}"}) as r:
                    admin.append((sent, time.perf_counter() - start, r.status, await r.json()))

        await asyncio.gather(closed_loop("swap", send, 64, seconds, warmup=0.0), operator())
    return answers, admin, failed


def test_alias_moves_under_load_fail_no_request(swapping):
    srv, book, first, second = swapping
    steady, _, steady_failed = asyncio.run(_load(srv.url, 6, []))
    assert steady_failed == [] and {a[1] for a in steady} == {first}
    moves = [
        (8.0, "/admin/models/fashion-cnn/promote", {"version": second.split(":")[1], "why": "swap test"}),
        (18.0, "/admin/models/fashion-cnn/rollback", {"why": "swap test"}),
    ]
    answers, admin, failed = asyncio.run(_load(srv.url, 30, moves))

    assert [status for _, _, status, _ in admin] == [200, 200], admin
    (move_sent, moved, _, _), (back_sent, back, _, _) = admin
    assert failed == [], (failed[:5], admin)
    named = {a[1] for a in answers}
    assert named == {first, second}, named
    # each worker polls every 0.2 s and loads the version in well under a second
    assert {m for _, m, _, got in answers if got < move_sent} == {first}
    assert {m for sent, m, _, got in answers if sent > moved + 3 and got < back_sent} == {second}
    assert {m for sent, m, _, _ in answers if sent > back + 3} == {first}
    p99 = lambda rows: float(np.percentile([a[2] for a in rows], 99))  # noqa: E731
    MEASUREMENTS.append(
        f"two alias moves under 64 clients: {len(answers)} answers in 30 s, 0 failed;"
        f" p99 {p99(answers) * 1000:.0f} ms against {p99(steady) * 1000:.0f} ms steady"
    )
    assert p99(answers) <= 2 * p99(steady), (p99(answers), p99(steady))
    assert [m["action"] for m in book.history("fashion-cnn")[-2:]] == ["promote", "rollback"]
    assert all(m["who"] == "key:ops" for m in book.history("fashion-cnn")[-2:])

    metrics = httpx.get(srv.url + "/metrics", headers={"authorization": f"Bearer {OPS}"}).text
    for tag in (first, second):
        version = tag.split(":")[1]
        assert f'tiffin_model_requests_total{{model="fashion-cnn",outcome="ok",version="{version}"}}' in metrics


def _classify(client: httpx.Client, **headers: str) -> httpx.Response:
    return client.post("/classify_image", content=FORM, headers={**FORM_TYPE, "authorization": f"Bearer {INFER}", **headers})


def _set(client: httpx.Client, what: str, body: dict, wanted: dict | None) -> None:
    """POST /admin/models/fashion-cnn/<what> and wait until both workers serve it: until the
    admin API, asked on ten new connections (either worker), reports `wanted` each time."""
    r = client.post(f"/admin/models/fashion-cnn/{what}", json=body, headers={"authorization": f"Bearer {OPS}"})
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        seen = []
        for _ in range(10):
            with httpx.Client(base_url=str(client.base_url), headers={"authorization": f"Bearer {OPS}"}) as fresh:
                seen.append(fresh.get("/admin/models/fashion-cnn").json()["serving"][{"split": "traffic"}.get(what, what)])
        if all(s == wanted for s in seen):
            return
        time.sleep(0.3)
    raise AssertionError(f"{what} did not reach every worker in 20 s: {seen}")


def _set_split(client: httpx.Client, body: dict) -> None:
    wanted = None if body.get("off") else {"weights": body["weights"], "sticky": body.get("sticky", "").lower() or None}
    _set(client, "split", body, wanted)


async def _shares(url: str, n: int, concurrency: int = 32) -> dict[str, int]:
    counts: dict[str, int] = {}
    async with aiohttp.ClientSession(base_url=url) as client:
        infer = {**FORM_TYPE, "authorization": f"Bearer {INFER}"}

        async def worker(k: int) -> None:
            for _ in range(k):
                async with client.post("/classify_image", data=FORM, headers=infer) as r:
                    assert r.status == 200, await r.text()
                    model = (await r.json())["model"]
                    assert r.headers["x-tiffin-version"] == model.split(":")[1]
                counts[model] = counts.get(model, 0) + 1

        await asyncio.gather(*(worker(n // concurrency) for _ in range(concurrency)))
    return counts


def test_traffic_split_by_weight_sticky_key_and_override(swapping):
    srv, book, first, second = swapping
    v1, v2 = first.split(":")[1], second.split(":")[1]
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        _set_split(client, {"weights": {v1: 90, v2: 10}, "why": "canary"})
        counts = asyncio.run(_shares(srv.url, 10_000))
        share = 100 * counts.get(second, 0) / sum(counts.values())
        MEASUREMENTS.append(f"a 90/10 split over {sum(counts.values())} requests: {share:.2f} % to the 10")
        assert set(counts) == {first, second} and abs(share - 10) <= 1.5, counts

        _set_split(client, {"weights": {v1: 100, v2: 0}})  # 0: reachable only by asking
        assert asyncio.run(_shares(srv.url, 2_000)) == {first: 2_000 // 32 * 32}

        _set_split(client, {"weights": {v1: 50, v2: 50}, "sticky": "X-User-Id"})
        seen = {}
        for user in range(20):
            got = {_classify(client, **{"x-user-id": f"user-{user}"}).json()["model"] for _ in range(8)}
            assert len(got) == 1, (user, got)  # the same key, the same version, in either worker
            seen[user] = got.pop()
        assert set(seen.values()) == {first, second}

        asked = _classify(client, **{"x-tiffin-version": v2, "x-user-id": "user-0"})
        assert asked.json()["model"] == second and asked.headers["x-tiffin-version"] == v2
        assert _classify(client, **{"x-tiffin-version": f"fashion-cnn:{v1}"}).json()["model"] == first
        unknown = _classify(client, **{"x-tiffin-version": "nosuchversion"})
        assert unknown.status_code == 400 and "not served" in unknown.json()["error"] and v1 in unknown.json()["error"]

        # the OIP: metadata lists both versions, and a version in the path is the one that answers
        ops = {"authorization": f"Bearer {OPS}"}
        infer = {"authorization": f"Bearer {INFER}"}
        meta = client.get("/v2/models/fashion-cnn", headers=infer).json()
        assert set(meta["versions"]) == {v1, v2}
        body = {"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 28, 28], "data": [0] * 784}]}
        for version in (v1, v2):
            r = client.post(f"/v2/models/fashion-cnn/versions/{version}/infer", json=body, headers=infer)
            assert r.status_code == 200 and r.json()["model_version"] == version, r.text
        assert client.post("/v2/models/fashion-cnn/versions/nosuchversion/infer", json=body, headers=infer).status_code == 404

        _set_split(client, {"off": True})
        assert _classify(client, **{"x-tiffin-version": v2}).status_code == 400
        assert {_classify(client).json()["model"] for _ in range(20)} == {first}
        bad = client.post("/admin/models/fashion-cnn/split", json={"weights": {v1: -1}}, headers=ops)
        assert bad.status_code == 400 and "whole number" in bad.json()["error"]


def _metric_sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_a_shadow_is_compared_and_never_answers(swapping, version_home):
    srv, book, first, _ = swapping
    bad = stored_versions(version_home, "fashion-cnn")[0]["version"]  # trained on shuffled labels
    v1 = first.split(":")[1]
    pictures = [(ROOT / f"services/examples/{n}.png").read_bytes() for n in ("bag", "trouser", "ankle-boot")]
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        _set(client, "shadow", {"version": bad, "percent": 100, "why": "compare"}, {"version": bad, "percent": 100.0})
        answered = set()
        for i in range(120):
            png = pictures[i % 3]
            r = client.post(
                "/classify_image", files={"image": ("x.png", png, "image/png")}, headers={"authorization": f"Bearer {INFER}"}
            )
            assert r.status_code == 200, r.text
            answered.add(r.json()["model"])
        assert answered == {first}  # the shadow never answers
        time.sleep(1)  # the shadow's last comparisons
        metrics = client.get("/metrics", headers={"authorization": f"Bearer {OPS}"}).text
        pair = {"model": "fashion-cnn", "primary": v1, "shadow": bad}
        compared = _metric_sum(metrics, "tiffin_shadow_compared_total", **pair)
        dropped = _metric_sum(metrics, "tiffin_shadow_dropped_total", model="fashion-cnn", shadow=bad)
        disagreed = _metric_sum(metrics, "tiffin_shadow_compared_total", **pair, agree="false")
        assert compared + dropped == 120 and compared >= 60 and disagreed >= 1, (compared, dropped, disagreed)
        lines = [
            json.loads(x) for f in (version_home / "shadow").glob("disagreements-w*.jsonl") for x in f.read_text().splitlines()
        ]
        assert len(lines) == disagreed
        assert {(x["primary"]["model"], x["shadow"]["model"]) for x in lines} == {(first, f"fashion-cnn:{bad}")}
        _set(client, "shadow", {"off": True}, None)


def test_a_bad_canary_is_rolled_back_without_a_person(swapping, version_home):
    srv, book, first, _ = swapping
    bad = stored_versions(version_home, "fashion-cnn")[0]["version"]  # trained on shuffled labels
    pictures = [(ROOT / f"services/examples/{n}.png").read_bytes() for n in ("bag", "trouser", "ankle-boot")]
    ops = {"authorization": f"Bearer {OPS}"}
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        start = {"action": "start", "version": bad, "weight": 20, "interval_s": 1, "failures": 2, "checks": {"min_samples": 10}}
        r = client.post("/admin/models/fashion-cnn/canary", json=start, headers=ops)
        assert r.status_code == 200, r.text
        again = client.post("/admin/models/fashion-cnn/canary", json=start, headers=ops)
        assert again.status_code == 409 and "already has a canary running" in again.json()["error"]
        deadline, answered, i = time.monotonic() + 60, set(), 0
        while time.monotonic() < deadline and book.read()["canary"]["fashion-cnn"]["state"] == "running":
            png = pictures[i % 3]
            i += 1
            r = client.post(
                "/classify_image", files={"image": ("x.png", png, "image/png")}, headers={"authorization": f"Bearer {INFER}"}
            )
            assert r.status_code == 200, r.text
            answered.add(r.json()["model"])
        entry = book.read()["canary"]["fashion-cnn"]
        assert entry["state"] == "rolled_back", entry
        assert answered == {first, f"fashion-cnn:{bad}"}  # it did answer its share meanwhile
        assert [x["verdict"] for x in entry["results"]][-2:] == ["fail", "fail"]
        last = book.history("fashion-cnn")[-1]
        assert (last["action"], last["who"], last["to"]) == ("canary-rollback", "canary", first.split(":")[1])
        assert "disagreement" in last["why"] and "2 failed checks in a row" in last["why"]
        data = book.read()
        assert "fashion-cnn" not in data.get("traffic", {}) and "fashion-cnn" not in data.get("shadow", {})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if {_classify(client).json()["model"] for _ in range(20)} == {first}:
                break
            time.sleep(0.3)
        assert {_classify(client).json()["model"] for _ in range(40)} == {first}


def test_a_version_that_cannot_load_leaves_the_old_one_serving(swapping, version_home):
    srv, book, first, _ = swapping
    served = book.resolve("fashion-cnn")
    broken = version_home / "models" / "fashion-cnn" / "brokenweights0001"
    shutil.copytree(version_home / "models" / "fashion-cnn" / served, broken)
    meta = (broken / "model.yaml").read_text().replace(f"version: {served}", "version: brokenweights0001")
    (broken / "model.yaml").write_text(meta)
    (broken / "weights.safetensors").write_bytes(b"not a safetensors file")
    ops = {"authorization": f"Bearer {OPS}"}
    infer = {"authorization": f"Bearer {INFER}"}

    moved = httpx.post(srv.url + "/admin/models/fashion-cnn/promote", json={"version": "brokenweights0001"}, headers=ops)
    assert moved.status_code == 200, moved.text
    deadline = time.monotonic() + 20
    shown = {}
    while time.monotonic() < deadline:
        shown = httpx.get(srv.url + "/admin/models/fashion-cnn", headers=ops).json()
        if shown["serving"].get("error"):
            break
        time.sleep(0.2)
    assert "could not load fashion-cnn:brokenweights0001" in shown["serving"]["error"]
    assert shown["serving"]["serving"] == f"fashion-cnn:{served}"
    for _ in range(8):  # both workers still answer, with the old version
        r = httpx.post(srv.url + "/classify_image", files={"image": ("bag.png", PNG, "image/png")}, headers=infer)
        assert r.status_code == 200 and r.json()["model"] == f"fashion-cnn:{served}"
    assert httpx.get(srv.url + "/readyz").status_code == 200
    assert "could not load fashion-cnn:brokenweights0001" in srv.logs()
    assert (
        httpx.post(
            srv.url + "/admin/models/fashion-cnn/promote",
            json={"version": "brokenweights0001"},
            headers={"authorization": f"Bearer {INFER}"},
        ).status_code
        == 403
    )


def test_with_keys_off_the_admin_api_reads_but_does_not_move(server):
    listed = httpx.get(server.url + "/admin/models")
    assert listed.status_code == 200 and "fashion-cnn" in {m["name"] for m in listed.json()["models"]}
    moved = httpx.post(server.url + "/admin/models/fashion-cnn/rollback", json={})
    assert moved.status_code == 403 and "TIFFIN_API_KEYS" in moved.json()["error"]
