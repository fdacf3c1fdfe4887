"""Every error the aggregator raises on purpose derives from one root.

    AggregatorError
    ├── ConfigError          a config file is unreadable or invalid (carries every problem found)
    ├── SourceError          a whole source could not be read (folder missing, fetch failed)
    ├── EntryError           one post, file or feed entry is malformed; it is skipped, the rest kept
    │   └── DecodeError      its bytes are in no encoding we could detect
    ├── StoreError           the database refused or could not be migrated
    └── RenderError          an output file could not be written

Each message names what it is about: the config file with line and column, the source name,
the post's file name or the entry, so a user can go and fix it.
"""

from __future__ import annotations

from dataclasses import dataclass


class AggregatorError(Exception):
    """Root of every error the aggregator raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a config file, located as `file:line:col: key.path: message`."""

    file: str
    line: int
    column: int
    key_path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return (
            f"{where}: {self.key_path}: {self.message}"
            if self.key_path
            else (f"{where}: {self.message}")
        )


class ConfigError(AggregatorError):
    """The config could not be loaded; `problems` lists every error, not just the first."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


class SourceError(AggregatorError):
    """A whole source failed; the message starts with the source name."""

    def __init__(self, source: str, message: str) -> None:
        self.source = source
        self.reason = message
        super().__init__(f"{source}: {message}")


class EntryError(AggregatorError):
    """One entry (a post file, a feed item) is malformed and is skipped."""

    def __init__(self, origin: str, message: str) -> None:
        self.origin = origin
        self.reason = message
        super().__init__(f"{origin}: {message}")


class DecodeError(EntryError):
    """The bytes of an entry are in no encoding we could detect."""


class StoreError(AggregatorError):
    """The database could not be opened, migrated or written."""


class LeaseLostError(StoreError):
    """A node's save of a source was refused: its lease on the source ran out and another node
    claimed it (the fencing token moved on). The save is undone; the other node's stands."""

    def __init__(self, source: str, holder: str | None) -> None:
        self.source = source
        self.holder = holder
        self.reason = f"its lease ran out and {holder or 'another node'} claimed it"
        super().__init__(f"{source}: {self.reason}")


class RenderError(AggregatorError):
    """An output file could not be written."""


def describe(error: BaseException) -> str:
    """An unexpected exception as one line for a source's status or an entry's message: its
    type (which says what broke) and its message, cut to a readable length."""
    message = " ".join(str(error).split())
    if isinstance(error, AggregatorError):
        text = getattr(error, "reason", None) or message
    else:
        text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return text if len(text) <= 300 else text[:299] + "…"
