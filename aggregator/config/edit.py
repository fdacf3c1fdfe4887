"""Editing the `sources:` list of a config file in place, keeping everything else byte for byte.

ruamel.yaml's round-trip loader tells where each source sits (line and column of every item and
key); its dumper renders the block of a new source. The file itself is edited by splicing lines,
not by dumping the whole document again: ruamel re-indents a whole document to one indentation
setting on dump, so a file with mixed indentation would change in lines nobody touched. Splicing
keeps every comment, blank line and odd indentation outside the edited source, which is what
makes `sources add` followed by `sources remove` give back the very same bytes.

Every edit is validated as a whole config before the file is replaced (atomically), so a command
never leaves a config that `aggregator check` would refuse.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from aggregator.config import Config, load_config
from aggregator.errors import AggregatorError, ConfigError

_SOURCES_KEY = re.compile(r"^sources\s*:\s*(\[\s*\])?\s*(#.*)?$")
_TOKEN = re.compile(r"[^\s,}#]+")


class ConfigEditError(AggregatorError):
    """The config could not be edited as asked; nothing was written."""


@dataclass(frozen=True, slots=True)
class _Item:
    """Where one source sits: its lines [start, end) and the columns of its dash and keys."""

    start: int
    end: int
    dash: int
    keys: int
    node: CommentedMap


@dataclass(frozen=True, slots=True)
class _Layout:
    lines: list[str]  # with their line endings
    key_line: int | None  # the `sources:` line; None when the key is missing
    empty_flow: bool  # `sources: []`
    items: list[_Item]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _lines(text: str) -> list[str]:
    # Not str.splitlines: it also breaks at characters YAML keeps inside a line (U+2028, ...).
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def _blank(line: str) -> bool:
    return not line.strip()


def _layout(text: str) -> _Layout:
    try:
        document = YAML(typ="rt").load(text)
    except YAMLError as error:
        raise ConfigEditError(f"the config is not valid YAML: {error}") from None
    lines = _lines(text)
    if not isinstance(document, CommentedMap):
        raise ConfigEditError("the config must be a mapping of keys")
    if "sources" not in document:
        return _Layout(lines, None, False, [])
    key_line = document.lc.key("sources")[0]
    sources = document["sources"]
    if sources is None:
        return _Layout(lines, key_line, False, [])
    if not isinstance(sources, CommentedSeq):
        raise ConfigEditError("`sources` must be a list")
    if len(sources) == 0:
        written = _SOURCES_KEY.match(lines[key_line].rstrip("\r\n"))
        if written and written.group(1):
            return _Layout(lines, key_line, True, [])
        raise ConfigEditError("write the empty `sources` list as `sources: []` on one line")
    if sources.fa.flow_style():
        raise ConfigEditError(
            "`sources` is written as a flow list [...]; write it as a block list"
            " (one `- name: ...` per source) to edit it with this command"
        )
    items: list[_Item] = []
    for index, node in enumerate(sources):
        if not isinstance(node, CommentedMap):
            raise ConfigEditError(f"sources[{index}] is not a mapping")
        line, column = sources.lc.item(index)
        dash = lines[line].rfind("-", 0, column)
        if dash < 0:  # `-` alone on its line, the mapping below it
            line -= 1
            dash = lines[line].index("-")
        end = line + 1
        for number in range(line + 1, len(lines)):
            if _blank(lines[number]):
                continue
            if _indent(lines[number]) <= dash:
                break
            end = number + 1
        items.append(_Item(line, end, dash, column, node))
    return _Layout(lines, key_line, False, items)


def _render(source: Mapping[str, Any], dash: int, keys: int) -> list[str]:
    """The lines of one new list item, indented as the list's last item is."""
    node = CommentedMap()
    for key, value in source.items():
        if isinstance(value, list | tuple):
            flow = CommentedSeq(value)
            flow.fa.set_flow_style()  # `tags: [a, b]`, as configs are written by hand
            node[key] = flow
        else:
            node[key] = value
    yaml = YAML(typ="rt")
    yaml.width = 4096  # one line per key, never folded
    buffer = io.StringIO()
    yaml.dump(node, buffer)
    body = buffer.getvalue().splitlines(keepends=True)
    first = " " * dash + "-" + " " * max(1, keys - dash - 1)
    return [first + body[0], *(" " * keys + line for line in body[1:])]


def _newline(lines: list[str]) -> str:
    return "\r\n" if lines and lines[0].endswith("\r\n") else "\n"


def add_sources(text: str, sources: Sequence[Mapping[str, Any]]) -> str:
    """`text` with these sources appended to the end of its `sources:` list."""
    if not sources:
        return text
    layout = _layout(text)
    lines = list(layout.lines)
    newline = _newline(lines)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += newline
    if layout.items:
        last = layout.items[-1]
        at, dash, keys = last.end, last.dash, last.keys
    else:
        dash, keys = 2, 4
        if layout.key_line is None:
            lines.append("sources:" + newline)
            at = len(lines)
        else:
            at = layout.key_line + 1
            if layout.empty_flow:
                key = layout.key_line
                lines[key] = re.sub(r"[ \t]*\[[ \t]*\]", "", lines[key], count=1)
    block: list[str] = []
    for source in sources:
        block += [line.replace("\n", newline) for line in _render(source, dash, keys)]
    return "".join(lines[:at] + block + lines[at:])


def _find(layout: _Layout, name: str) -> _Item:
    for item in layout.items:
        if item.node.get("name") == name:
            return item
    raise ConfigEditError(f"no source named {name!r} in the config")


def remove_source(text: str, name: str) -> str:
    """`text` without the source called `name` (its lines, and a blank line it leaves doubled)."""
    layout = _layout(text)
    item = _find(layout, name)
    lines = layout.lines
    start, end = item.start, item.end
    doubled = start > 0 and _blank(lines[start - 1]) and end < len(lines) and _blank(lines[end])
    if doubled:
        end += 1
    kept = lines[:start] + lines[end:]
    if len(layout.items) == 1 and layout.key_line is not None:
        # The list is now empty: say so, or the key would hold null.
        key = layout.key_line
        kept[key] = re.sub(r"^sources\s*:", "sources: []", kept[key], count=1)
    return "".join(kept)


def set_enabled(text: str, name: str, enabled: bool) -> str:
    """`text` with the source's `enabled` set; a source is enabled when the key is absent, so
    enabling removes a bare `enabled: false` line and disabling adds one."""
    layout = _layout(text)
    item = _find(layout, name)
    lines = list(layout.lines)
    node = item.node
    if "enabled" in node:
        line, column = node.lc.value("enabled")
        current = lines[line]
        bare = current.strip() == "enabled: false" and not node.fa.flow_style()
        if enabled and bare:
            del lines[line]
        elif enabled and node.fa.flow_style() and ", enabled: false" in current:
            lines[line] = current.replace(", enabled: false", "", 1)
        else:
            lines[line] = _TOKEN.sub("true" if enabled else "false", current[column:], count=1)
            lines[line] = current[:column] + lines[line]
        return "".join(lines)
    if enabled:
        return text
    if node.fa.flow_style():
        return "".join(_add_to_flow_mapping(lines, item, "enabled: false", name))
    newline = _newline(lines)
    last = item.end - 1
    if not lines[last].endswith("\n"):
        lines[last] += newline
    lines.insert(item.end, " " * item.keys + "enabled: false" + newline)
    return "".join(lines)


def _add_to_flow_mapping(lines: list[str], item: _Item, pair: str, name: str) -> list[str]:
    for number in range(item.end - 1, item.start - 1, -1):
        code = lines[number].split(" #", 1)[0]
        close = code.rfind("}")
        if close >= 0:
            line = lines[number]
            lines[number] = line[:close].rstrip() + f", {pair}" + line[len(line[:close].rstrip()) :]
            return lines
    raise ConfigEditError(f"source {name!r}: cannot find the end of its {{...}} mapping")


def edit_config(path: Path, change: Callable[[str], str]) -> Config:
    """Apply `change` to the file's text, validate the result as a config, then replace the file
    in one step. Raises ConfigEditError (nothing written) when the result would be invalid."""
    # newline="" both ways: a CRLF file stays CRLF, byte for byte.
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigEditError(f"{path}: cannot read config: {error}") from None
    edited = change(text)
    if edited == text:
        return load_config(path)
    # In the same folder, so that relative paths resolve as they will for the real file.
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(edited)
        try:
            config = load_config(temp)
        except ConfigError as error:
            message = str(error).replace(str(temp), str(path))
            raise ConfigEditError(f"the edit would make the config invalid:\n{message}") from None
        if path.exists():
            os.chmod(temp, path.stat().st_mode & 0o7777)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return config.model_copy(update={"path": path})
