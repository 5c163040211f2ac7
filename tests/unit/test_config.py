"""One settings object: every TIFFIN_* value read once, a wrong value refused by name."""

from __future__ import annotations

import dataclasses

import pytest

from tiffin import config
from tiffin.config import Settings, SettingsError


def test_defaults_without_environment():
    s = Settings.from_env({})
    assert (s.grpc_port, s.hot_max_queue, s.cascade_threshold, s.front_door) == (3001, 1024, None, True)
    assert s.malloc_tuning and s.gc_freeze and s.cuda_graphs and s.log_format == "plain"
    assert s.max_image_bytes == 8 * 1024 * 1024 and s.max_json_bytes == 64 * 1024


@pytest.mark.parametrize("raw, expected", [("on", True), ("OFF", False), ("true", True), ("0", False), (" no ", False)])
def test_one_reading_of_a_switch(raw, expected):
    assert Settings.from_env({"TIFFIN_GC_FREEZE": raw}).gc_freeze is expected


@pytest.mark.parametrize(
    "name, raw, accepted",
    [
        ("TIFFIN_GC_FREEZE", "of", "off"),
        ("TIFFIN_HOT_MAX_QUEUE", "1k", "whole number"),
        ("TIFFIN_HOT_MAX_QUEUE", "0", "at least 1"),
        ("TIFFIN_CASCADE_THRESHOLD", "1.5", "from 0.0 to 1.0"),
        ("TIFFIN_LOG_FORMAT", "jsno", "plain, json"),
        ("TIFFIN_GRPC_PORT", "99999", "from 1 to 65535"),
        ("TIFFIN_API_WORKERS", "0", "at least 1"),
        ("TIFFIN_RUNNER_URLS", "tiffin-image=tiffin-image:3000", "service=URL pairs"),
    ],
)
def test_a_typo_fails_naming_the_variable_and_what_it_takes(name, raw, accepted):
    with pytest.raises(SettingsError, match=name) as caught:
        Settings.from_env({name: raw})
    assert accepted in str(caught.value) and repr(raw) in str(caught.value)


def test_runner_urls_read_as_bentoml_writes_its_dependency_map():
    raw = "tiffin-image=http://a:3000 tiffin-demand=https://b,tiffin-text-small=http://c:1"
    s = Settings.from_env({"TIFFIN_RUNNER_URLS": raw})
    assert dict(s.runner_urls) == {
        "tiffin-image": "http://a:3000",
        "tiffin-demand": "https://b",
        "tiffin-text-small": "http://c:1",
    }


def test_switches_and_overrides():
    s = Settings.from_env({"TIFFIN_FRONT_DOOR": "off", "TIFFIN_IMAGE_MODEL": "fashion-cnn:abc", "TIFFIN_HOT_MAX_WAIT_MS": "2.5"})
    assert s.front_door is False and s.image_model == "fashion-cnn:abc" and s.hot_max_wait_ms == 2.5


def test_every_field_has_its_variable_and_the_object_is_frozen():
    names = [config.env_name(f.name) for f in dataclasses.fields(Settings)]
    assert len(set(names)) == len(names) and all(n.startswith("TIFFIN_") for n in names)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().gc_freeze = False  # type: ignore[misc]


def test_read_once_per_process(monkeypatch):
    config.settings.cache_clear()
    first = config.settings()
    monkeypatch.setenv("TIFFIN_HOT_MAX_QUEUE", "7")
    assert config.settings() is first  # read at first use, not per call
    config.settings.cache_clear()


def test_a_misspelt_name_is_reported(caplog):
    with caplog.at_level("WARNING", logger="tiffin"):
        s = Settings.from_env({"TIFFIN_HOT_MAX_QUEU": "8", "TIFFIN_TEST_STORE": "/tmp/x"})
    assert s.hot_max_queue == 1024
    assert [r.getMessage().split()[0] for r in caplog.records] == ["TIFFIN_HOT_MAX_QUEU"]
    assert "TIFFIN_HOT_MAX_QUEUE" in caplog.records[0].getMessage()
