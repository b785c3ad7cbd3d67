import json
import logging
import time

from service.logs import JsonFormatter


def record(created: float, **extra: object) -> logging.LogRecord:
    entry = logging.makeLogRecord({"name": "x", "levelno": 30, "levelname": "WARNING", "msg": "m %s"})
    entry.args = ("arg",)
    entry.created = created
    entry.__dict__.update(extra)
    return entry


def test_each_line_has_the_local_time_of_its_own_second() -> None:
    formatter = JsonFormatter()
    base = 1_700_000_000.25
    for created in (base, base + 0.5, base + 1.0, base - 3600.0, base + 0.1):
        line = json.loads(formatter.format(record(created)))
        assert line["time"] == time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(created))


def test_extra_fields_follow_the_standard_ones_and_values_of_any_type_are_written() -> None:
    text = JsonFormatter().format(record(0.0, kind="Pod", when=object))
    line = json.loads(text)
    assert list(line)[:4] == ["time", "level", "logger", "message"]
    assert line["message"] == "m arg"
    assert line["kind"] == "Pod"
    assert "object" in line["when"]
    assert "\n" not in text
