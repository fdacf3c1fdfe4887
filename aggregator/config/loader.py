"""Loading the config: YAML read by libyaml (ruamel's C loader, YAML 1.2), validated against
the model, every problem located as `file:line:col: key.path: message`, relative paths resolved
against the file.

A config may come from anywhere, so before any value is built its text passes the bounds of
aggregator.config.bounds (size, characters, nesting depth, alias expansion), in linear time. An
invalid config is then placed line by line from a second pass over libyaml's events, only for
the keys at fault."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError

from aggregator.config import hints
from aggregator.config.bounds import (
    MAX_DEPTH,
    Location,
    _check_characters,
    _check_structure,
    _key_path,
    _Place,
    _position_of,
    _read,
    _Walker,
)
from aggregator.config.model import (
    CONFIG_ENV_VAR,
    CONFIG_FOLDER,
    DEFAULT_CONFIG_PATH,
    Config,
    resolve_path,
)
from aggregator.errors import ConfigError, ConfigProblem

_DUPLICATE_KEY = re.compile(r'found duplicate key "([^"]+)"')

# At most this many problems are listed in all (the bounds list at most _MAX_REPORTED of
# one kind): a generated config can have one per value.
_MAX_PROBLEMS = 100


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--config, else $AGGREGATOR_CONFIG, else config/aggregator.yaml."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH)


def load_config(path: Path) -> Config:
    """Read, validate and resolve a config file, or raise ConfigError listing every problem."""
    name = str(path)
    text = _read(path)
    _check_characters(name, text)
    _check_structure(name, text)
    folder = path.resolve().parent
    context = {CONFIG_FOLDER: folder}
    try:
        document = YAML(typ="safe").load(text)
    except YAMLError as error:
        raise ConfigError([_yaml_problem(name, text, error)]) from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError([ConfigProblem(name, 1, 1, "", "the config must be a mapping of keys")])
    document = _plain(document)
    invalid = [
        _Invalid(("sources", index, "name"), duplicate=(source, first))
        for index, source, first in _duplicate_source_names(document)
    ]
    config: Config | None = None
    try:
        config = Config.model_validate({**document, "path": path}, context=context)
    except ValidationError as error:
        for item in error.errors():
            location = tuple(part for part in item["loc"] if not hints.is_validator_tag(part))
            invalid.append(_Invalid(location, item["type"] == "extra_forbidden", item))
    if invalid or config is None:
        raise ConfigError(_located(name, text, invalid))
    return _resolve_paths(config, folder)


def _yaml_problem(name: str, text: str, error: YAMLError) -> ConfigProblem:
    """A YAML error located and worded by the round-trip loader, whose messages the hints know;
    it reads no further than the error, where libyaml stopped too."""
    loader = YAML(typ="rt")
    # The structure check has bounded the depth already; this stops the recursive pure-Python
    # composer should it ever read a document differently from libyaml.
    loader.max_depth = MAX_DEPTH + 2
    try:
        loader.load(text)
    except YAMLError as rt_error:
        error = rt_error
    # Otherwise the round-trip loader accepted what the safe one cannot build (an unknown tag,
    # a list as a key): libyaml's own error says what.
    if not isinstance(error, MarkedYAMLError):
        # Unmarked errors (a reader error, say) carry no line; their first line says what.
        message = str(error).strip().splitlines()[0] if str(error).strip() else "invalid YAML"
        line, column = _reader_position(text, error)
        return ConfigProblem(name, line, column, "", message)
    mark = error.problem_mark or error.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    message = " ".join(str(part) for part in (error.context, error.problem) if part)
    message = hints.yaml_message(message)
    duplicate = _DUPLICATE_KEY.search(message)
    key_path = duplicate.group(1) if duplicate else ""
    if duplicate:
        message = "duplicate key: each key may appear once in a mapping"
    return ConfigProblem(name, line, column, key_path, message)


@dataclass(frozen=True, slots=True)
class _Invalid:
    """One problem of a document that loaded: a duplicate source name or a pydantic error.
    Its message is worded only once it is among those shown (an unknown key's hint searches
    the known keys)."""

    location: Location
    at_key: bool = False  # an unknown key is shown at the key, not at its value
    error: Any = None  # pydantic's error, None for a duplicate name
    duplicate: tuple[str, int] | None = None  # the name and the index that used it first
    said: str | None = None  # worded already (a problem found after loading: see place)

    def message(self) -> str:
        if self.said is not None:
            return self.said
        if self.duplicate is not None:
            name, first = self.duplicate
            return (
                f"duplicate source name {name!r} (first used by sources[{first}]);"
                " give each source its own name"
            )
        return hints.message(Config, self.location, self.error)


def place(path: Path, found: Sequence[tuple[Location, str]]) -> list[ConfigProblem]:
    """Problems found in a config that loaded (`check`'s look at the disk: a missing folder,
    an unwritable store), each (key path, message), placed in the file as the loader places its
    own, in the order of the file."""
    if not found:
        return []
    return _located(
        str(path), _read(path), [_Invalid(location, said=said) for location, said in found]
    )


def raw_document(path: Path) -> dict[str, Any]:
    """The config's mapping as written, before defaults and path resolution (for a config that
    loaded: what a key says in the file, as opposed to what it means)."""
    document = YAML(typ="safe").load(_read(path))
    return _plain(document) if isinstance(document, dict) else {}


def _located(name: str, text: str, invalid: list[_Invalid]) -> list[ConfigProblem]:
    """The problems of a document that loaded but is invalid, in the order of the file, each
    placed by a second pass over libyaml's events (the round-trip loader, which records every
    node's place, is pure Python and far slower on a large config)."""
    wanted = {
        each.location[:length] for each in invalid for length in range(len(each.location) + 1)
    }
    walker = _Walker(name, places=wanted)
    with contextlib.suppress(YAMLError, ConfigError):
        walker.walk(YAML(typ="safe").parse(text))
    placed = sorted(
        ((_position(walker.places, each.location, at_key=each.at_key), each) for each in invalid),
        key=lambda pair: pair[0],
    )
    problems = [
        ConfigProblem(name, line, column, _key_path(each.location), each.message())
        for (line, column), each in placed[:_MAX_PROBLEMS]
    ]
    if len(placed) > _MAX_PROBLEMS:
        last = problems[-1]
        more = f"and {len(placed) - _MAX_PROBLEMS} more problems"
        problems.append(ConfigProblem(name, last.line, last.column, "", more))
    return problems


def _reader_position(text: str, error: YAMLError) -> tuple[int, int]:
    if isinstance(error, ReaderError) and isinstance(error.position, int):
        line, column = _position_of(text, min(error.position, len(text)))
        return line + 1, column + 1
    return 1, 1


def _plain(node: Any) -> Any:
    """The document with every key as text (`1:` too), as the file writes it and as the events
    that place each problem name it."""
    if isinstance(node, dict):
        return {str(key): _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(value) for value in node]
    return node


def _duplicate_source_names(document: dict[Any, Any]) -> list[tuple[int, str, int]]:
    """Each source that reuses a name: its index, the name, the index that used it first."""
    sources = document.get("sources")
    if not isinstance(sources, list):
        return []
    found: list[tuple[int, str, int]] = []
    seen: dict[str, int] = {}
    for index, source in enumerate(sources):
        if not isinstance(source, dict) or not isinstance(source.get("name"), str):
            continue
        name = source["name"]
        if name in seen:
            found.append((index, name, seen[name]))
        else:
            seen[name] = index
    return found


def _position(
    places: dict[Location, _Place], location: Location, *, at_key: bool = False
) -> tuple[int, int]:
    """1-based line and column of the deepest node of `location` that exists in the YAML: a
    scalar's value, else its key (always the key for an unknown key); for a location the
    document lacks from its first part, the document itself."""
    line, column = 0, 0
    for length in range(1, len(location) + 1):
        place = places.get(location[:length])
        if place is None:
            if length == 1 and () in places:
                line, column = places[()].value
            break
        value_wanted = place.key is None or (place.scalar and not at_key)
        line, column = place.value if value_wanted else (place.key or place.value)
    else:
        if not location and () in places:
            line, column = places[()].value
    return line + 1, column + 1


def _resolve_paths(config: Config, folder: Path) -> Config:
    output = config.output.model_copy(
        update={
            "dir": _resolve(folder, config.output.dir),
            "base_url": config.output.base_url.rstrip("/") + "/",
        }
    )
    sources = tuple(
        source.model_copy(update={"path": _resolve(folder, source.path)}) if source.path else source
        for source in config.sources
    )
    store = config.store.model_copy(update={"url": _resolve_sqlite_url(folder, config.store.url)})
    return config.model_copy(update={"output": output, "sources": sources, "store": store})


_resolve = resolve_path


def _resolve_sqlite_url(folder: Path, url: str) -> str:
    prefix, _, rest = url.partition(":///")
    if not prefix.startswith("sqlite") or not rest or rest.startswith((":memory:", "/")):
        return url
    database, question, query = rest.partition("?")
    return f"{prefix}:///{_resolve(folder, Path(database))}{question}{query}"
