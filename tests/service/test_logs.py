import io
import json
import logging
import time
from collections.abc import Callable

from service.logs import JsonFormatter, info_event


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


def _lines(handler_format: logging.Formatter, emit: Callable[[logging.Logger], None]) -> list[str]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(handler_format)
    logger = logging.getLogger("tests.events")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue().splitlines()


def _both(logger: logging.Logger, fields: dict[str, object]) -> None:
    info_event(logger, "admitted", fields)
    logger.info("admitted", extra=fields)


def test_an_info_event_writes_the_line_logger_info_would_write() -> None:
    fields = {"kind": "Pod", "operations": 3, "warnings": ["w"], "dry_run": False}
    [event, info] = _lines(
        JsonFormatter(),
        lambda logger: _both(logger, fields),
    )
    event_entry, info_entry = json.loads(event), json.loads(info)
    assert list(event_entry) == list(info_entry)
    assert {k: v for k, v in event_entry.items() if k != "time"} == {
        "level": "info", "logger": "tests.events", "message": "admitted", **fields,
    }  # fmt: skip
    assert abs(time.mktime(time.strptime(event_entry["time"], "%Y-%m-%dT%H:%M:%S")) - time.time()) < 5


def test_an_info_event_reads_like_any_record_in_the_text_format_and_honours_the_level() -> None:
    text = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(funcName)s: %(message)s %(kind)s")
    [line] = _lines(text, lambda logger: info_event(logger, "admitted", {"kind": "Job"}))
    assert line.split(" ", 2)[2] == "INFO tests.events (unknown function): admitted Job"

    def quiet(logger: logging.Logger) -> None:
        logger.setLevel(logging.WARNING)
        info_event(logger, "admitted", {"kind": "Job"})

    assert _lines(text, quiet) == []


class _Contextual(logging.Filter):
    """What a platform's logging setup may do: change a field, or add one, on every record."""

    def __init__(self, add: bool) -> None:
        super().__init__()
        self.add = add

    def filter(self, record: logging.LogRecord) -> bool:
        record.kind = "changed"
        if self.add:
            record.request = "r-1"
        return True


def test_an_info_event_shows_what_a_filter_changed_or_added_as_logger_info_does() -> None:
    fields = {"kind": "Pod", "operations": 3}
    for add in (False, True):
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
        handler.addFilter(_Contextual(add))
        logger = logging.getLogger("tests.filtered")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        try:
            _both(logger, dict(fields))
        finally:
            logger.removeHandler(handler)
        event, info = (json.loads(line) for line in stream.getvalue().splitlines())
        assert event["kind"] == "changed"
        assert ("request" in event) is add
        del event["time"], info["time"]
        assert list(event.items()) == list(info.items())
