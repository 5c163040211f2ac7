"""Monitoring, with Debian's Prometheus: the alert rules pass `promtool check rules` and their
unit tests, a real Prometheus scrapes a real tiffin server and answers a query on its series,
and every series the Grafana dashboard and the rules name is one tiffin exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import httpx
import pytest
import yaml

from tests.conftest import ROOT
from tiffin.deploy.serve import free_port

pytestmark = pytest.mark.integration
MONITORING = ROOT / "bentos/deploy/monitoring"
PROMTOOL, PROMETHEUS = shutil.which("promtool"), shutil.which("prometheus")


def test_promtool_checks_and_tests_the_rules():
    assert PROMTOOL, "promtool is missing: `make install` installs Debian's prometheus"
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        out = subprocess.run([PROMTOOL, *args], cwd=MONITORING, capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr


def _series(expr: str) -> set[str]:
    return {m for m in re.findall(r"\b(tiffin_[a-z_]+)", expr)}


def test_the_dashboard_and_rules_name_only_series_tiffin_exports(server):
    exported = {
        line.split("{")[0].split(" ")[0]
        for line in httpx.get(server.url + "/metrics", timeout=10).text.splitlines()
        if line.startswith("tiffin_")
    }
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    named = set().union(*(_series(e) for e in exprs))
    assert named and named <= exported, named - exported


def test_a_real_prometheus_scrapes_tiffin(server, tmp_path):
    assert PROMETHEUS, "prometheus is missing: `make install` installs Debian's prometheus"
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [str(MONITORING / "alerts.yml")]
    config["scrape_configs"][0]["static_configs"] = [{"targets": [server.url.removeprefix("http://")]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(5):
            assert httpx.post(server.url + "/classify_text", json={"text": "a fine film"}, timeout=30).status_code == 200
        query = 'sum(tiffin_model_requests_total{model="review-textcnn", outcome="ok"})'
        deadline, value = time.monotonic() + 60, 0.0
        while time.monotonic() < deadline and value < 5:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": query}, timeout=5).json()
                value = float(answer["data"]["result"][0]["value"][1]) if answer["data"]["result"] else 0.0
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(0.5)
        assert value >= 5, f"Prometheus saw {value} answered requests"
        rules = httpx.get(f"http://127.0.0.1:{port}/api/v1/rules", timeout=5).json()["data"]["groups"]
        assert {r["name"] for g in rules for r in g["rules"]} >= {"TiffinDown", "TiffinModelErrors", "TiffinOverloaded"}
        up = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": 'up{job="tiffin"}'}, timeout=5).json()
        assert up["data"]["result"][0]["value"][1] == "1"
    finally:
        proc.terminate()
        proc.wait(20)
