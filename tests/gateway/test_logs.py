"""Log output: readable text by default, JSON lines on request, filtered by level."""

from __future__ import annotations

import io
import json

from twisted.logger import Logger, LogPublisher
from twisted.python.failure import Failure

from gateway.config import LogFormat, LoggingConfig
from gateway.logs import json_line, observer_for


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
