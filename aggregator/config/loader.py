"""Loading the config: YAML with line numbers kept, validated against the model, every problem
located as `file:line:col: key.path: message`, relative paths resolved against the file."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from aggregator import confighints
from aggregator.config.model import CONFIG_ENV_VAR, DEFAULT_CONFIG_PATH, Config
from aggregator.errors import ConfigError, ConfigProblem

_DUPLICATE_KEY = re.compile(r'found duplicate key "([^"]+)"')


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--config, else $AGGREGATOR_CONFIG, else config/aggregator.yaml."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_PATH)


def load_config(path: Path) -> Config:
    """Read, validate and resolve a config file, or raise ConfigError listing every problem."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([ConfigProblem(name, 1, 1, "", f"cannot read config: {error}")]) from None
    valid = _load_valid(text, path)
    if valid is not None:
        return _resolve_paths(valid, path.resolve().parent)
    try:
        document = YAML(typ="rt").load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(str(part) for part in (error.context, error.problem) if part)
        message = confighints.yaml_message(message)
        duplicate = _DUPLICATE_KEY.search(message)
        key_path = duplicate.group(1) if duplicate else ""
        if duplicate:
            message = "duplicate key: each key may appear once in a mapping"
        raise ConfigError([ConfigProblem(name, line, column, key_path, message)]) from None
    if document is None:
        document = CommentedMap()
    if not isinstance(document, dict):
        raise ConfigError([ConfigProblem(name, 1, 1, "", "the config must be a mapping of keys")])
    problems = _duplicate_source_names(name, document)
    try:
        config = Config.model_validate({**_plain(document), "path": path})
    except ValidationError as error:
        problems += [_problem(name, document, item) for item in error.errors()]
        problems.sort(key=lambda problem: (problem.line, problem.column))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return _resolve_paths(config, path.resolve().parent)


def _load_valid(text: str, path: Path) -> Config | None:
    """The fast path: libyaml (ruamel's C loader, the same YAML 1.2 rules) and validation,
    about six times faster than the round-trip loader on a config of a thousand sources.
    None when anything is wrong: the round-trip loader then reads it again to tell where."""
    try:
        document = YAML(typ="safe").load(text)
    except YAMLError:
        return None
    if not isinstance(document, dict):
        return None
    sources = document.get("sources")
    if isinstance(sources, list):
        names = [source.get("name") for source in sources if isinstance(source, dict)]
        if len(set(map(str, names))) != len(names):
            return None
    try:
        return Config.model_validate({**document, "path": path})
    except ValidationError:
        return None


def _plain(node: Any) -> Any:
    """Turn ruamel's commented containers into plain dicts and lists for pydantic."""
    if isinstance(node, dict):
        return {str(key): _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(value) for value in node]
    return node


def _duplicate_source_names(file: str, document: dict[str, Any]) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    sources = document.get("sources")
    if not isinstance(sources, list):
        return problems
    seen: dict[str, int] = {}
    for index, source in enumerate(sources):
        if not isinstance(source, dict) or not isinstance(source.get("name"), str):
            continue
        name = source["name"]
        if name in seen:
            line, column = _position(document, ("sources", index, "name"))
            problems.append(
                ConfigProblem(
                    file,
                    line,
                    column,
                    f"sources[{index}].name",
                    f"duplicate source name {name!r} (first used by sources[{seen[name]}]);"
                    " give each source its own name",
                )
            )
        else:
            seen[name] = index
    return problems


def _problem(file: str, document: Any, error: Any) -> ConfigProblem:
    location = tuple(part for part in error["loc"] if not _is_validator_tag(part))
    line, column = _position(document, location, at_key=error["type"] == "extra_forbidden")
    message = confighints.message(Config, location, error)
    return ConfigProblem(file, line, column, _key_path(location), message)


def _is_validator_tag(part: object) -> bool:
    # pydantic inserts tags like "function-after[...]" or a Literal's repr into some locations.
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _key_path(location: Sequence[object]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _position(
    document: Any, location: Sequence[object], *, at_key: bool = False
) -> tuple[int, int]:
    """1-based line and column of the deepest node of `location` that exists in the YAML."""
    line, column = 0, 0
    node = document
    for part in location:
        if isinstance(node, CommentedMap) and part in node:
            value_wanted = _is_scalar(node[part]) and not at_key
            line, column = node.lc.value(part) if value_wanted else node.lc.key(part)
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line, column = node.lc.item(part)
            node = node[part]
        else:
            if isinstance(node, CommentedMap | CommentedSeq) and (line, column) == (0, 0):
                line, column = node.lc.line, node.lc.col
            break
    return line + 1, column + 1


def _is_scalar(node: object) -> bool:
    return not isinstance(node, dict | list)


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


def _resolve(folder: Path, path: Path) -> Path:
    return path.expanduser() if path.expanduser().is_absolute() else (folder / path).resolve()


def _resolve_sqlite_url(folder: Path, url: str) -> str:
    prefix, _, rest = url.partition(":///")
    if not prefix.startswith("sqlite") or not rest or rest.startswith((":memory:", "/")):
        return url
    database, question, query = rest.partition("?")
    return f"{prefix}:///{_resolve(folder, Path(database))}{question}{query}"
