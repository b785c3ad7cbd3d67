import io
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from service.logs import JsonFormatter, WriteThroughHandler, _sole_json_handler, configure, info_event


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
    """What a platform's logging setup may do to every record: change a field, add one, or replace one."""

    def __init__(self, change: str) -> None:
        super().__init__()
        self.change = change

    def filter(self, record: logging.LogRecord) -> bool:
        record.kind = "changed"
        if self.change in ("add", "replace"):
            record.request = "r-1"
        if self.change == "replace":
            delattr(record, "operations")
        return True


def test_an_info_event_shows_what_a_filter_changed_or_added_as_logger_info_does() -> None:
    fields = {"kind": "Pod", "operations": 3}
    for change in ("value", "add", "replace"):
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
        handler.addFilter(_Contextual(change))
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
        assert ("request" in event) is (change != "value")
        assert ("operations" in event) is (change != "replace")
        del event["time"], info["time"]
        assert list(event.items()) == list(info.items())


@pytest.fixture
def root_logging() -> Iterator[None]:
    """``configure`` replaces the root logger's handlers: put the test runner's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("root_logging")
def test_on_a_write_through_stderr_each_line_reaches_the_file_without_a_flush(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)  # a line still held in a buffer fails the read instead of hanging
    with io.TextIOWrapper(io.FileIO(write_end, "w"), write_through=True) as stream:
        monkeypatch.setattr(sys, "stderr", stream)
        configure("json")
        [handler] = logging.getLogger().handlers
        assert isinstance(handler, WriteThroughHandler)
        logging.getLogger("tests.through").warning("first")
        logging.getLogger("tests.through").warning("second")
        lines = os.read(read_end, 65536).decode().splitlines()
    os.close(read_end)
    assert [json.loads(line)["message"] for line in lines] == ["first", "second"]


@pytest.mark.usefixtures("root_logging")
def test_a_buffered_stderr_keeps_the_flush_after_each_line(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.TextIOWrapper(io.BytesIO(), write_through=False)
    monkeypatch.setattr(sys, "stderr", stream)
    configure("text")
    [handler] = logging.getLogger().handlers
    assert type(handler) is logging.StreamHandler
    logging.getLogger("tests.buffered").warning("kept")
    assert b"kept" in stream.buffer.getvalue()


@pytest.fixture
def json_on_a_pipe(monkeypatch: pytest.MonkeyPatch, root_logging: None) -> Iterator[Callable[[], list[str]]]:
    """``configure("json")`` with stderr a write-through pipe, as in a container; yields a reader of the
    lines written so far."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    with io.TextIOWrapper(io.FileIO(write_end, "w"), write_through=True) as stream:
        monkeypatch.setattr(sys, "stderr", stream)
        configure("json")

        def lines() -> list[str]:
            try:
                return os.read(read_end, 65536).decode().splitlines()
            except BlockingIOError:  # nothing written
                return []

        yield lines
    os.close(read_end)


def _only_configured_handlers() -> None:
    """Drop the handlers pytest's log capture adds to the root logger for each test's call: in a
    service, configure's handler is the root logger's only one."""
    root = logging.getLogger()
    root.handlers[:] = [handler for handler in root.handlers if type(handler) is WriteThroughHandler]


def test_under_the_json_configuration_an_info_event_is_written_as_logger_info_writes_it(
    json_on_a_pipe: Callable[[], list[str]],
) -> None:
    _only_configured_handlers()
    logger = logging.getLogger("tests.direct")
    assert _sole_json_handler(logger) is logging.getLogger().handlers[0]
    fields = {"kind": "Pod", "operations": 3, "warnings": ["w"], "dry_run": False, "when": object()}
    _both(logger, fields)
    event, info = (json.loads(line) for line in json_on_a_pipe())
    del event["time"], info["time"]
    assert list(event.items()) == list(info.items())
    assert event["logger"] == "tests.direct"
    assert event["level"] == "info"


def _with_a_filter_on_the_handler(logger: logging.Logger) -> None:
    logging.getLogger().handlers[0].addFilter(_Contextual("value"))


def _with_a_filter_on_the_logger(logger: logging.Logger) -> None:
    logger.addFilter(_Contextual("value"))


def _with_a_second_handler(logger: logging.Logger) -> None:
    logging.getLogger("tests").addHandler(logging.StreamHandler(io.StringIO()))


def _without_propagation(logger: logging.Logger) -> None:
    logger.propagate = False
    logger.addHandler(logging.StreamHandler(io.StringIO()))


def _in_the_text_format(logger: logging.Logger) -> None:
    logging.getLogger().handlers[0].setFormatter(logging.Formatter("%(message)s"))


def _with_the_handler_above_info(logger: logging.Logger) -> None:
    logging.getLogger().handlers[0].setLevel(logging.WARNING)


@pytest.mark.parametrize(
    "change",
    [
        _with_a_filter_on_the_handler,
        _with_a_filter_on_the_logger,
        _with_a_second_handler,
        _without_propagation,
        _in_the_text_format,
        _with_the_handler_above_info,
    ],
)
def test_any_other_logging_setup_gets_the_record(
    json_on_a_pipe: Callable[[], list[str]], change: Callable[[logging.Logger], None]
) -> None:
    _only_configured_handlers()
    logger = logging.getLogger("tests.other.setup")
    try:
        change(logger)
        assert _sole_json_handler(logger) is None
        info_event(logger, "admitted", {"kind": "Pod"})
        lines = json_on_a_pipe()
        if change in (_with_a_filter_on_the_handler, _with_a_filter_on_the_logger):
            assert [json.loads(line)["kind"] for line in lines] == ["changed"]  # the filter saw a record
        elif change in (_without_propagation, _with_the_handler_above_info):
            assert lines == []  # the root handler gets nothing, as for logger.info
        elif change is _in_the_text_format:
            assert lines == ["admitted"]
        else:
            assert [json.loads(line)["kind"] for line in lines] == ["Pod"]
    finally:
        logger.filters.clear()
        logger.handlers.clear()
        logger.propagate = True
        logging.getLogger("tests").handlers.clear()


def test_an_info_event_that_cannot_be_written_does_not_fail_the_caller(
    monkeypatch: pytest.MonkeyPatch, root_logging: None
) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails with EPIPE
    with io.TextIOWrapper(io.FileIO(write_end, "w"), write_through=True) as stream:
        monkeypatch.setattr(sys, "stderr", stream)
        configure("json")
        _only_configured_handlers()
        logger = logging.getLogger("tests.broken")
        assert _sole_json_handler(logger) is not None
        reported: list[logging.LogRecord] = []
        monkeypatch.setattr(logging.getLogger().handlers[0], "handleError", reported.append)
        info_event(logger, "admitted", {"kind": "Pod"})
    assert [(r.getMessage(), r.__dict__["kind"]) for r in reported] == [("admitted", "Pod")]
