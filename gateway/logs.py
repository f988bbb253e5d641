"""Where the gateway's log events go: readable text lines (default) or one JSON object per
line, on standard error, from a chosen level up.

Events are written by their format string and the named values in it — ids, codes, routes,
counts. The code never puts client data (BSNs, names, amounts, file contents) into a log
event, so neither format can carry any.

A JSON line of a failure carries its traceback — each frame's file, line and function, for
every exception of the chain — and the exceptions' types, never their messages (an
exception's text may quote what it failed on, a value from a file) nor the source lines
(the file and line number find them).
"""

from __future__ import annotations

import json
import math
import traceback
from collections.abc import Iterable
from datetime import UTC, datetime
from string import Formatter
from typing import IO, Any

from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    formatEventAsClassicLogText,
    formatTime,
    globalLogBeginner,
    timeFormatRFC3339,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from gateway.config import LogFormat, LoggingConfig

__all__ = [
    "JsonLinesObserver",
    "begin_logging",
    "failure_traceback",
    "json_line",
    "observer_for",
    "text_observer",
]

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
        out["traceback"] = failure_traceback(failure)
    return json.dumps(out, ensure_ascii=False)


def _type_name(kind: type[BaseException]) -> str:
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _frames(frames: Iterable[tuple[str, str, int]]) -> list[str]:
    lines = ["Traceback (most recent call last):"]
    for function, filename, lineno in frames:
        lines.append(f'  File "{filename}", line {lineno}, in {function}')
    return lines


def _chain(exception: BaseException | None) -> list[str]:
    """The exceptions that led to ``exception`` (its cause or context), oldest first."""
    lines: list[str] = []
    seen: set[int] = set()
    current = exception
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        earlier = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
        if earlier is None:
            break
        link = (
            "The above exception was the direct cause of the following exception:"
            if current.__cause__ is not None
            else "During handling of the above exception, another exception occurred:"
        )
        frames = [
            (f.name, f.filename, f.lineno or 0) for f in traceback.extract_tb(earlier.__traceback__)
        ]
        lines = [*_frames(frames), _type_name(type(earlier)), "", link, "", *lines]
        current = earlier
    return lines


def failure_traceback(failure: Failure) -> str:
    """The traceback of ``failure`` as Python prints it, but each exception given by its
    type alone: the text of an exception is left out, since it may carry client data."""
    assert failure.type is not None
    value = failure.value if isinstance(failure.value, BaseException) else None
    frames = [(name, filename, lineno) for name, filename, lineno, _, _ in failure.frames]
    lines = [*_chain(value), *_frames(frames), _type_name(failure.type)]
    return "\n".join(lines)


@implementer(ILogObserver)
class JsonLinesObserver:
    """Writes each event as one JSON line (:func:`json_line`)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def __call__(self, event: dict[str, Any]) -> None:
        self._stream.write(json_line(event) + "\n")
        self._stream.flush()


def text_observer(stream: IO[str]) -> FileLogObserver:
    """Twisted's text lines (what ``textFileLogObserver`` writes), the time of day
    formatted once per second rather than for each event (its format shows whole seconds;
    the gateway logs a line or two per request)."""
    last: list[tuple[int, str]] = [(-1, "")]

    def time_text(when: float | None) -> str:
        if when is None:
            return formatTime(when, timeFormatRFC3339)
        second = math.floor(when)
        known = last[0]  # (one tuple, replaced whole: log calls come from several threads)
        if known[0] == second:
            return known[1]
        text = formatTime(when, timeFormatRFC3339)
        last[0] = (second, text)
        return text

    def format_event(event: dict[str, Any]) -> str | None:
        return formatEventAsClassicLogText(event, formatTime=time_text)

    return FileLogObserver(stream, format_event)


def observer_for(config: LoggingConfig, stream: IO[str]) -> FilteringLogObserver:
    inner: ILogObserver = (
        JsonLinesObserver(stream) if config.format is LogFormat.JSON else text_observer(stream)
    )
    level = LogLevel.levelWithName(config.level)
    return FilteringLogObserver(inner, [LogLevelFilterPredicate(defaultLogLevel=level)])


def begin_logging(config: LoggingConfig, stream: IO[str]) -> None:
    globalLogBeginner.beginLoggingTo([observer_for(config, stream)], redirectStandardIO=False)
