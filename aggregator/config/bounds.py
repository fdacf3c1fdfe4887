"""Bounds on a config's YAML text, so that a hostile config (an alias bomb, control
characters, a huge file, deep nesting) is refused before anything is built from it, in linear
time.

A config may come from anywhere (a download, a generated file, an attacker who can write it),
so before any value is built the text is checked in one streaming pass over libyaml's events:
its size (a huge file or a device is never read whole), characters YAML forbids (control
characters, raw or written as escapes), nesting depth, and the number of values its aliases
expand to. The loader builds an alias as one shared object, but validation walks every
expansion, so a kilobyte of nested aliases (a "billion laughs") would otherwise cost minutes and
gigabytes; the pass counts each alias as the size of what it names, in linear time. Every
problem is located by line, column and key path.

The same walk over the events places the problems of a config that loaded but is invalid (the
loader's second pass, see aggregator.config.loader)."""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    MappingStartEvent,
    ScalarEvent,
)

from aggregator.errors import ConfigError, ConfigProblem

# A source is about ten values (keys included) and a hundred bytes, so these allow thousands of
# sources; past them a file is no list of feeds. The values bound what loading and validating
# cost, a bad config's error reports included (pydantic lists an error per bad value).
MAX_CONFIG_BYTES = 4_000_000
MAX_VALUES = 100_000
# A config nests five levels deep (sources, a source, clean, drop, a selector); the loaders and
# pydantic recurse per level.
MAX_DEPTH = 32
_READ_CHUNK = 1 << 16
# At most this many problems of one kind are listed; a binary file has thousands.
_MAX_REPORTED = 10
# What YAML 1.2 allows in a stream (c-printable), negated: C0 and C1 controls but tab, line
# feed, carriage return and NEL, DEL, surrogates, U+FFFE and U+FFFF.
_FORBIDDEN = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# ... and in a value, where an escape ("\0") can write any character: tab and line breaks are
# text, every other control character is a corrupted or hostile value.
_FORBIDDEN_IN_VALUE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff]")

Position = tuple[int, int]  # 0-based line and column, as YAML marks count


def _read(path: Path) -> str:
    """The config's text: at most MAX_CONFIG_BYTES (a device or a huge file is never read
    whole), decoded as UTF-8, line breaks normalised as text mode does."""
    name = str(path)
    chunks: list[bytes] = []
    size = 0
    try:
        with path.open("rb") as handle:
            # In chunks: one read of the whole cap would hold that much memory for a small file.
            while size <= MAX_CONFIG_BYTES and (chunk := handle.read(_READ_CHUNK)):
                chunks.append(chunk)
                size += len(chunk)
    except OSError as error:
        raise ConfigError([ConfigProblem(name, 1, 1, "", f"cannot read config: {error}")]) from None
    data = b"".join(chunks)
    if size > MAX_CONFIG_BYTES:
        message = (
            f"the config is larger than {MAX_CONFIG_BYTES // 1_000_000} MB;"
            " that is no list of feeds (is this the right file?)"
        )
        raise ConfigError([ConfigProblem(name, 1, 1, "", message)])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        before = data[: error.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
        message = (
            f"byte 0x{data[error.start]:02x} is not UTF-8;"
            " save the config as UTF-8 (is this a binary file?)"
        )
        raise ConfigError([ConfigProblem(name, line, column, "", message)]) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _check_characters(name: str, text: str) -> None:
    """Every control character YAML forbids in a file, located and named by its key."""
    found = [match.start() for match in itertools.islice(_FORBIDDEN.finditer(text), _MAX_REPORTED)]
    if not found:
        return
    positions = [_position_of(text, index) for index in found]
    # The same document with each bad character made harmless tells which key it is under.
    walker = _Walker(name, labels=positions)
    # On an error, the keys found so far; the rest are named by their position only.
    with contextlib.suppress(YAMLError, ConfigError):
        walker.walk(YAML(typ="safe").parse(_FORBIDDEN.sub("\ufffd", text)))
    problems = [
        ConfigProblem(
            name,
            line + 1,
            column + 1,
            _key_path(walker.labels.get((line, column), ())),
            f"control character {_codepoint(text[index])} is not allowed in YAML; delete it",
        )
        for index, (line, column) in zip(found, positions, strict=True)
    ]
    more = _FORBIDDEN.subn("", text)[1] - len(found)
    if more > 0:
        problems.append(
            ConfigProblem(
                name,
                problems[-1].line,
                problems[-1].column,
                "",
                f"and {more} more control characters (is this a binary file?)",
            )
        )
    raise ConfigError(problems)


def _check_structure(name: str, text: str) -> None:
    """Depth, alias expansion and escaped control characters, from libyaml's events: nothing
    is built, so a bomb costs no more than its own bytes. A syntax error ends the pass quietly:
    the loaders report it, having read no further."""
    walker = _Walker(name)
    with contextlib.suppress(YAMLError):
        walker.walk(YAML(typ="safe").parse(text))
    if walker.problems:
        raise ConfigError(walker.problems)


Part = str | int  # a key of a mapping or an index of a sequence, in a key path
Location = tuple[Part, ...]


class _Place(NamedTuple):
    """Where a node of the document is: its key's start (None for a sequence item or the
    document), its own start, and whether it is a scalar."""

    key: Position | None
    value: Position
    scalar: bool


@dataclass(slots=True)
class _Frame:
    """A mapping or sequence being read."""

    part: Part | None  # where it sits in its parent (None: the document, or a complex key)
    mapping: bool
    anchor: str | None
    start: Position
    size: int = 1  # values it holds, aliases counted as what they name, itself included
    index: int = 0  # a sequence: the next item's index
    key: str | None = None  # a mapping: the key of the value being read; None while at a key
    key_start: Position = (0, 0)  # a mapping: where that key is written


class _Walker:
    """Follows a YAML event stream, counting values. The key path of a node is worked out only
    for a problem, a wanted position or a wanted place: building one for every node would slow
    every load."""

    __slots__ = (
        "_anchors",
        "_frames",
        "_open",
        "_scalar_anchors",
        "_wanted",
        "_wanted_places",
        "file",
        "labels",
        "places",
        "problems",
        "values",
    )

    def __init__(
        self, file: str, labels: Sequence[Position] = (), places: Iterable[Location] = ()
    ) -> None:
        self.file = file
        # Positions whose key path is wanted: each gets the path of the innermost node holding it.
        self._wanted = list(labels)
        self.labels: dict[Position, Location] = {}
        # Key paths whose place in the text is wanted (each prefix of an error's location).
        self._wanted_places = set(places)
        self.places: dict[Location, _Place] = {}
        self.problems: list[ConfigProblem] = []
        self.values = 0  # so far, each alias counted as the size of what it names
        self._frames: list[_Frame] = []
        self._anchors: dict[str, int] = {}  # anchor: the size of its value
        self._scalar_anchors: set[str] = set()
        self._open: dict[str, int] = {}  # anchors of the collections still being read

    def walk(self, events: Iterable[Any]) -> None:
        for event in events:
            if isinstance(event, ScalarEvent):
                self._scalar(event)
            elif isinstance(event, CollectionStartEvent):
                self._start(event)
            elif isinstance(event, CollectionEndEvent):
                self._end(event)
            elif isinstance(event, AliasEvent):
                self._alias(event)

    def _scalar(self, event: ScalarEvent) -> None:
        self._count(1, event)
        start: Position = (event.start_mark.line, event.start_mark.column)
        value = event.value
        if self._wanted:
            self._label_span(start, (event.end_mark.line, event.end_mark.column), self._path())
        if self._wanted_places:
            self._place(start, scalar=True)
        if _FORBIDDEN_IN_VALUE.search(value) is not None:
            self._bad_value(value, event)
        if event.anchor is not None:
            self._anchors[event.anchor] = 1
            self._scalar_anchors.add(event.anchor)
        self._done(1, value, start)

    def _alias(self, event: AliasEvent) -> None:
        name = event.anchor
        start: Position = (event.start_mark.line, event.start_mark.column)
        if name in self._open:
            self._fail(
                event,
                self._path(),
                f"the alias *{name} is inside the value &{name} names;"
                " a config cannot contain itself",
            )
        size = self._anchors.get(name, 1)  # undefined: the loader says so
        self._count(size, event, alias=name)
        if self._wanted_places:
            self._place(start, scalar=name in self._scalar_anchors)
        self._done(size, f"*{name}", start)

    def _start(self, event: CollectionStartEvent) -> None:
        self._count(1, event)
        if len(self._frames) >= MAX_DEPTH:
            # The first levels say where; all of them would make a line of [0][0][0]...
            self._fail(
                event,
                self._path()[:6],
                f"nested more than {MAX_DEPTH} levels deep; a config needs about five",
            )
        start: Position = (event.start_mark.line, event.start_mark.column)
        if self._wanted_places:
            self._place(start, scalar=False)
        frame = _Frame(self._part(), isinstance(event, MappingStartEvent), event.anchor, start)
        self._frames.append(frame)
        if frame.anchor is not None:
            self._open[frame.anchor] = self._open.get(frame.anchor, 0) + 1
            self._scalar_anchors.discard(frame.anchor)

    def _end(self, event: CollectionEndEvent) -> None:
        if not self._frames:
            return
        if self._wanted:
            end: Position = (event.end_mark.line, event.end_mark.column)
            self._label_span(self._frames[-1].start, end, self._open_path())
        frame = self._frames.pop()
        if frame.anchor is not None:
            self._anchors[frame.anchor] = frame.size
            self._open[frame.anchor] -= 1
            if not self._open[frame.anchor]:
                del self._open[frame.anchor]
        self._done(frame.size, None, frame.start)

    def _part(self) -> Part | None:
        """Where the node about to be read sits in the collection being read."""
        if not self._frames:
            return None
        frame = self._frames[-1]
        return frame.key if frame.mapping else frame.index

    def _path(self) -> Location:
        """The key path of the node about to be read (a mapping's key: the mapping's path)."""
        part = self._part()
        return self._open_path() if part is None else (*self._open_path(), part)

    def _open_path(self) -> Location:
        """The key path of the collection being read."""
        return tuple(frame.part for frame in self._frames[1:] if frame.part is not None)

    def _place(self, start: Position, *, scalar: bool) -> None:
        frame = self._frames[-1] if self._frames else None
        if frame is not None and frame.mapping and frame.key is None:
            return  # a key: it is placed with its value
        path = self._path()
        if path in self._wanted_places:
            key = frame.key_start if frame is not None and frame.mapping else None
            self.places[path] = _Place(key, start, scalar)

    def _done(self, size: int, text: str | None, start: Position) -> None:
        """A node of `size` values is complete: its parent holds it and moves on."""
        if not self._frames:
            return
        frame = self._frames[-1]
        frame.size += size
        if not frame.mapping:
            frame.index += 1
        elif frame.key is None:
            frame.key = "?" if text is None else text
            frame.key_start = start
        else:
            frame.key = None

    def _count(self, size: int, event: Any, alias: str | None = None) -> None:
        self.values += size
        if self.values <= MAX_VALUES:
            return
        if alias is not None:
            message = (
                f"the alias *{alias} makes the config more than {MAX_VALUES} values"
                " (nested aliases multiply); write the values out instead"
            )
        else:
            message = f"the config has more than {MAX_VALUES} values; that is no list of feeds"
        self._fail(event, self._path(), message)

    def _bad_value(self, value: str, event: Any) -> None:
        bad = _FORBIDDEN_IN_VALUE.search(value)
        if bad is None or len(self.problems) >= _MAX_REPORTED:
            return
        self.problems.append(
            ConfigProblem(
                self.file,
                event.start_mark.line + 1,
                event.start_mark.column + 1,
                _key_path(self._path()),
                f"control character {_codepoint(bad.group())} (written as an escape) is not"
                " allowed in a value; delete it",
            )
        )

    def _label_span(self, start: Position, end: Position, path: Location) -> None:
        for position in self._wanted:
            if position not in self.labels and start <= position <= end:
                self.labels[position] = path

    def _fail(self, event: Any, path: Location, message: str) -> None:
        mark = event.start_mark
        problem = ConfigProblem(self.file, mark.line + 1, mark.column + 1, _key_path(path), message)
        raise ConfigError([*self.problems, problem])


def _position_of(text: str, index: int) -> Position:
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index), index - line_start


def _codepoint(character: str) -> str:
    return f"U+{ord(character):04X}"


def _key_path(location: Sequence[object]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path
