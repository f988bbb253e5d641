"""Log output: readable text by default, JSON lines on request, filtered by level."""

from __future__ import annotations

import io
import json

from twisted.logger import Logger, LogLevel, LogPublisher, textFileLogObserver
from twisted.python.failure import Failure

from gateway.config import LogFormat, LoggingConfig
from gateway.logs import json_line, observer_for, text_observer


def logger_into(config: LoggingConfig) -> tuple[Logger, io.StringIO]:
    stream = io.StringIO()
    publisher = LogPublisher(observer_for(config, stream))
    return Logger(namespace="gateway.test", observer=publisher), stream


def test_json_lines_carry_the_message_and_its_named_values() -> None:
    log, stream = logger_into(LoggingConfig(format=LogFormat.JSON))
    log.info("upload {outcome} traceerId={traceer_id}", outcome="stored", traceer_id="t-1")
    (line,) = stream.getvalue().splitlines()
    event = json.loads(line)
    assert event["message"] == "upload stored traceerId=t-1"
    assert event["level"] == "info"
    assert event["logger"] == "gateway.test"
    assert event["traceer_id"] == "t-1"
    assert event["time"].endswith("+00:00")


def test_values_not_named_in_the_format_are_not_written() -> None:
    log, stream = logger_into(LoggingConfig(format=LogFormat.JSON))
    log.info("refused", payload=b"0123 secret file", bsn="111222333")
    assert "111222333" not in stream.getvalue()
    assert "secret" not in stream.getvalue()


def test_a_failure_is_named_by_its_type_not_its_text() -> None:
    try:
        raise ValueError("111222333 is not insured")
    except ValueError:
        failure = Failure()
    event = {"log_format": "cannot start", "log_failure": failure, "log_time": 0.0}
    line = json.loads(json_line(event))
    assert line["error"] == "ValueError"
    assert "111222333" not in json.dumps(line)


def test_text_is_the_default_and_the_level_filters() -> None:
    log, stream = logger_into(LoggingConfig(level="warn"))
    log.info("not shown")
    log.warn("shown {code}", code="0010")
    text = stream.getvalue()
    assert "not shown" not in text
    assert "shown 0010" in text
    assert not text.startswith("{")


def _parse_bsn(text: str) -> int:
    return int(text)  # raises with the text in its message


def _read_line(text: str) -> int:
    try:
        return _parse_bsn(text)
    except ValueError as exc:
        raise RuntimeError(f"line {text} unreadable") from exc


def test_a_failure_keeps_its_traceback_without_the_exceptions_texts() -> None:
    log, stream = logger_into(LoggingConfig(format=LogFormat.JSON))
    try:
        _read_line("11122233x")
    except RuntimeError:
        log.failure("a bundling run failed")
    (line,) = stream.getvalue().splitlines()
    event = json.loads(line)
    assert event["error"] == "RuntimeError"
    trace = event["traceback"]
    assert trace.startswith("Traceback (most recent call last):")
    assert "in _read_line" in trace
    assert "in _parse_bsn" in trace  # the cause's frames too
    assert "return int(text)" not in trace  # file and line name it; a literal may be data
    assert "direct cause" in trace
    assert trace.splitlines()[-1] == "RuntimeError"
    assert "11122233x" not in line


def test_text_lines_are_twisteds_own_with_the_time_formatted_once_a_second() -> None:
    ours, twisteds = io.StringIO(), io.StringIO()
    observers = [text_observer(ours), textFileLogObserver(twisteds)]
    base = 1_780_000_000.0
    times: list[float | None] = [base, base + 0.25, base + 0.999, base + 1, base + 61.5, base]
    times += [None, base + 86_400 * 180]  # no time; half a year later (another UTC offset?)
    for n, when in enumerate(times):
        event = {
            "log_format": "upload {n} stored",
            "n": n,
            "log_level": LogLevel.info,
            "log_namespace": "gateway.test",
            "log_system": "-",
        }
        if when is not None:
            event["log_time"] = when
        for observer in observers:
            observer(dict(event))

    assert ours.getvalue() == twisteds.getvalue()
    assert len(ours.getvalue().splitlines()) == len(times)
