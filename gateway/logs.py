"""Where the gateway's log events go: readable text lines (default) or one JSON object per
line, on standard error, from a chosen level up.

Events are written by their format string and the named values in it — ids, codes, routes,
counts. The code never puts client data (BSNs, names, amounts, file contents) into a log
event, so neither format can carry any.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from string import Formatter
from typing import IO, Any

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    globalLogBeginner,
    textFileLogObserver,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from gateway.config import LogFormat, LoggingConfig

__all__ = ["JsonLinesObserver", "begin_logging", "json_line", "observer_for"]

_PLAIN = (str, int, float, bool, type(None))


def json_line(event: dict[str, Any]) -> str:
    """One event as a JSON object: time, level, logger, message, the named values of its
    format (plain values only) and, for a failure, the exception's type — not its text."""
    level = event.get("log_level")
    out: dict[str, Any] = {
        "time": datetime.fromtimestamp(event.get("log_time", 0.0), UTC).isoformat(),
        "level": level.name if isinstance(level, type(LogLevel.info)) else "info",
        "logger": event.get("log_namespace", "-"),
        "message": formatEvent(event),
    }
    fmt = event.get("log_format")
    if isinstance(fmt, str):
        for _, name, _, _ in Formatter().parse(fmt):
            if name and name in event and isinstance(event[name], _PLAIN):
                out.setdefault(name, event[name])
    failure = event.get("log_failure")
    if isinstance(failure, Failure) and failure.type is not None:
        out["error"] = failure.type.__name__
    return json.dumps(out, ensure_ascii=False)


@implementer(ILogObserver)
class JsonLinesObserver:
    """Writes each event as one JSON line (:func:`json_line`)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def __call__(self, event: dict[str, Any]) -> None:
        self._stream.write(json_line(event) + "\n")
        self._stream.flush()


def observer_for(config: LoggingConfig, stream: IO[str]) -> FilteringLogObserver:
    inner: ILogObserver = (
        JsonLinesObserver(stream)
        if config.format is LogFormat.JSON
        else textFileLogObserver(stream)
    )
    level = LogLevel.levelWithName(config.level)
    return FilteringLogObserver(inner, [LogLevelFilterPredicate(defaultLogLevel=level)])


def begin_logging(config: LoggingConfig, stream: IO[str]) -> None:
    globalLogBeginner.beginLoggingTo([observer_for(config, stream)], redirectStandardIO=False)
