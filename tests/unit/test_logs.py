import json
import logging

from tiffin import logs


def test_json_logs_are_one_object_per_line(monkeypatch, capsys):
    logger = logging.getLogger("tiffin-test-json")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    logger.propagate = False
    try:
        monkeypatch.setenv("TIFFIN_LOG_FORMAT", "json")
        logs.configure()
        logger.warning("hello %s", "world", extra={"trace_id": 42})
    finally:
        logger.removeHandler(handler)
    line = capsys.readouterr().err.strip()
    entry = json.loads(line)
    assert entry["message"] == "hello world" and entry["level"] == "WARNING" and entry["trace_id"] == "42"


def test_plain_logs_unless_asked(monkeypatch):
    handler = logging.StreamHandler()
    logging.getLogger("tiffin-test-plain").addHandler(handler)
    monkeypatch.delenv("TIFFIN_LOG_FORMAT", raising=False)
    logs.configure()
    assert not isinstance(handler.formatter, logs.JsonFormatter)
