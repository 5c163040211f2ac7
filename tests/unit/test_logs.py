import json
import logging

from tiffin.config import Settings
from tiffin.runtime import logs


def test_json_logs_are_one_object_per_line(capsys):
    logger = logging.getLogger("tiffin-test-json")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logs.configure(Settings.from_env({"TIFFIN_LOG_FORMAT": "json"}))
        logger.warning("hello %s", "world", extra={"trace_id": 42})
    finally:
        logger.removeHandler(handler)
    line = capsys.readouterr().err.strip()
    entry = json.loads(line)
    assert entry["message"] == "hello world" and entry["level"] == "WARNING" and entry["trace_id"] == "42"


def test_plain_logs_unless_asked():
    handler = logging.StreamHandler()
    logging.getLogger("tiffin-test-plain").addHandler(handler)
    logs.configure(Settings.from_env({}))
    assert not isinstance(handler.formatter, logs.JsonFormatter)
