"""The log's shape: one line per event, with its time, level and (when it is about one) source.

    2025-05-01T12:00:00+00:00 INFO zaobao-china: 3 new, 0 changed, 0 skipped, 0 undated
    {"time": "2025-05-01T12:00:00+00:00", "level": "INFO", "logger": "aggregator",
     "source": "zaobao-china", "message": "3 new, 0 changed, 0 skipped, 0 undated"}

Text for people, JSON (`--log-format json`, one object per line) for a log shipper. Under
journald the text lines leave out the time: the journal stamps every line itself. Both go
through mask_text, since messages quote URLs and a URL may carry a password or an API key.

A line is about a source when the call says so (`extra={"source": name}`), or when its message
starts with `%s: ` and that argument is one of the config's source names (the pipeline's
convention, `log.info("%s: ...", source.name, ...)`): the names are told here by whoever loads
a config, so that "SIGTERM: finishing ..." is not taken for a source's line.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable
from datetime import datetime
from typing import Literal, TextIO

from aggregator.redact import MaskingFormatter, mask_text

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

# Libraries that speak at INFO about what is routine for us; they show at --verbose.
_NOISY = ("httpx", "aiohttp", "apscheduler", "alembic")


class _Sources(logging.Filter):
    """Sets `record.source`: the one the call named, else the one its message starts with."""

    def __init__(self) -> None:
        super().__init__()
        self.names: frozenset[str] = frozenset()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "source", None) is None:
            # LogRecord keeps `extra` in its __dict__ too: the formatters read it the same way.
            record.__dict__["source"] = self._named(record)
        return True

    def _named(self, record: logging.LogRecord) -> str | None:
        args = record.args
        if not (isinstance(record.msg, str) and record.msg.startswith("%s: ")):
            return None
        if isinstance(args, tuple) and args and isinstance(args[0], str) and args[0] in self.names:
            return args[0]
        return None


_SOURCES = _Sources()


def name_sources(names: Iterable[str]) -> None:
    """The config's source names, so that their lines carry `source` (see the module's doc)."""
    _SOURCES.names = frozenset(names)


def _moment(record: logging.LogRecord) -> str:
    # Local time with its offset, to the second: what a person compares with a clock, and what
    # sorts and parses the same everywhere.
    return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="seconds")


class TextFormatter(MaskingFormatter):
    """`TIME LEVEL message`, masked; the time left out when the journal adds its own."""

    def __init__(self, *, with_time: bool = True) -> None:
        super().__init__("%(levelname)s %(message)s")
        self.with_time = with_time

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        return f"{_moment(record)} {line}" if self.with_time else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, source (when known), message; an
    exception's traceback as `exception`."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        source = getattr(record, "source", None)
        document: dict[str, str] = {
            "time": _moment(record),
            "level": record.levelname,
            "logger": record.name,
        }
        if source:
            document["source"] = mask_text(str(source))
            # The source is a field of its own: the message need not repeat it.
            message = message.removeprefix(f"{source}: ")
        document["message"] = mask_text(message)
        if record.exc_info:
            document["exception"] = mask_text(self.formatException(record.exc_info))
        elif record.exc_text:
            document["exception"] = mask_text(record.exc_text)
        # ensure_ascii off: a Chinese source name stays readable in the journal.
        return json.dumps(document, ensure_ascii=False)


def _journal_has_stderr() -> bool:
    """Whether stderr is the journal's stream (systemd sets JOURNAL_STREAM to its device:inode)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(part) for part in stream.split(":"))
        status = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (status.st_dev, status.st_ino) == (device, inode)


def log_handler(stream: TextIO, log_format: LogFormat = "text") -> logging.Handler:
    """A handler writing this module's lines (see its doc) to `stream`."""
    handler = logging.StreamHandler(stream)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter(with_time=not _journal_has_stderr()))
    handler.addFilter(_SOURCES)
    return handler


def configure(*, verbose: bool = False, log_format: LogFormat = "text") -> None:
    """Every log line of this process to stderr, in `log_format`, at INFO (DEBUG: verbose)."""
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(log_handler(sys.stderr, log_format))
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
