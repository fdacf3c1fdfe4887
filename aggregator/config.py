"""The YAML config: loaded with line numbers kept, validated strictly, errors located.

Every problem is reported as `file:line:col: key.path: message` (all of them at once), unknown
keys are errors, and relative paths resolve against the config file's own folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lxml.cssselect import CSSSelector
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from aggregator import confighints
from aggregator.errors import ConfigError, ConfigProblem
from aggregator.urls import is_web_url

DEFAULT_CONFIG_PATH = Path("config/aggregator.yaml")
CONFIG_ENV_VAR = "AGGREGATOR_CONFIG"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DUPLICATE_KEY = re.compile(r'found duplicate key "([^"]+)"')
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
}


def parse_duration(value: object) -> timedelta:
    """`15m`, `1h30m`, `20s`, `1d`; a bare number means seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError("must be a duration such as 10m or 1h")
    text = value.strip().replace(" ", "")
    if not text or _DURATION_PART.sub("", text):
        raise ValueError(f"{value!r} is not a duration; use 10m or 1h")
    seconds = sum(
        float(number) * _DURATION_UNITS[unit.lower()]
        for number, unit in _DURATION_PART.findall(text)
    )
    return timedelta(seconds=seconds)


def parse_size(value: object) -> int:
    """`5MB`, `512KiB`, or a number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"{value!r} is not a size; use 512KB or 5MB")
    number, unit = match.groups()
    return int(float(number) * _SIZE_UNITS[(unit or "b").lower()])


def _positive(delta: timedelta) -> timedelta:
    if delta <= timedelta(0):
        raise ValueError("must be longer than zero")
    return delta


def _web_url(url: str) -> str:
    if not is_web_url(url):
        raise ValueError(f"{url!r} is not an http(s) URL")
    return url


def _regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as error:
        raise ValueError(f"{pattern!r} is not a valid regular expression: {error}") from None
    return pattern


def _selector(selector: str) -> str:
    try:
        CSSSelector(selector)
    except Exception as error:  # cssselect raises its own SelectorError family
        raise ValueError(f"{selector!r} is not a CSS selector: {error}") from None
    return selector


def _timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a time zone; use a name like Asia/Shanghai") from None
    return name


Duration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive)]
Selector = Annotated[str, AfterValidator(_selector)]
TimeZone = Annotated[str, AfterValidator(_timezone)]
Size = Annotated[int, BeforeValidator(parse_size), Field(gt=0)]
WebUrl = Annotated[str, AfterValidator(_web_url)]
Regex = Annotated[str, AfterValidator(_regex)]
Name = Annotated[str, Field(min_length=1, pattern=r"^[^\s/\\]+$")]
# A host name for host-keyed clean rules: lowercase labels, applies to its subdomains too.
Host = Annotated[
    str, Field(pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class StoreConfig(_Strict):
    url: str = "sqlite:///../var/aggregator.db"


class OutputConfig(_Strict):
    dir: Path = Path("../public")
    base_url: WebUrl = "http://127.0.0.1:8080/"
    items_per_feed: int = Field(default=50, ge=1, le=10000)
    title: str = "Aggregator"


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)


class Defaults(_Strict):
    interval: Duration = timedelta(minutes=15)
    timeout: Duration = timedelta(seconds=20)
    max_bytes: Size = 5_000_000
    per_host: int = Field(default=2, ge=1, le=64)  # concurrent requests to one host
    concurrency: int = Field(default=50, ge=1, le=1000)  # concurrent requests in all
    timezone: TimeZone = "UTC"  # for dates that carry no zone


class CleanRules(_Strict):
    drop: tuple[Selector, ...] = ()
    drop_text: tuple[Regex, ...] = ()


class SourceConfig(_Strict):
    name: Name
    kind: Literal["posts", "feed", "page"]
    path: Path | None = None
    url: WebUrl | None = None
    tags: tuple[str, ...] = ()
    interval: Duration | None = None
    timeout: Duration | None = None
    max_bytes: Size | None = None
    enabled: bool = True
    timezone: TimeZone | None = None
    clean: CleanRules = CleanRules()
    # page sources: CSS selectors on the listing page and on each article page
    selector: Selector | None = None
    content_selector: Selector | None = None
    title_selector: Selector | None = None
    date_selector: Selector | None = None

    @model_validator(mode="after")
    def _location_fits_kind(self) -> SourceConfig:
        if self.kind == "posts" and self.path is None:
            raise ValueError("a posts source needs `path` (a folder of posts)")
        if self.kind != "posts" and self.url is None:
            raise ValueError(f"a {self.kind} source needs `url`")
        if self.kind == "page" and self.selector is None:
            raise ValueError("a page source needs `selector` (CSS for its article links)")
        return self


class RuleConfig(_Strict):
    tag: str = Field(min_length=1)
    match: Regex


class DedupeConfig(_Strict):
    """When two texts are the same story (near-duplicate layer, see aggregator.dedupe)."""

    jaccard: float = Field(default=0.5, gt=0, le=1)  # estimated Jaccard of the 5-gram sets
    containment: float = Field(default=0.8, gt=0, le=1)  # of the shorter text in the longer
    min_shingles: int = Field(default=100, ge=1)  # the shorter text's 5-grams, for containment
    window: Duration = timedelta(days=7)  # candidates published at most this far apart


class Config(_Strict):
    store: StoreConfig = StoreConfig()
    output: OutputConfig = OutputConfig()
    server: ServerConfig = ServerConfig()
    defaults: Defaults = Defaults()
    sources: tuple[SourceConfig, ...] = ()
    rules: tuple[RuleConfig, ...] = ()
    dedupe: DedupeConfig = DedupeConfig()
    # Clean rules keyed by the host of the article's link (subdomains included), for sources
    # that carry several sites; they add to the source's own `clean` rules.
    clean: dict[Host, CleanRules] = Field(default_factory=dict)
    path: Path = Path("config/aggregator.yaml")  # set by the loader, never read from YAML

    def interval(self, source: SourceConfig) -> timedelta:
        return source.interval or self.defaults.interval

    def timeout(self, source: SourceConfig) -> timedelta:
        return source.timeout or self.defaults.timeout

    def max_bytes(self, source: SourceConfig) -> int:
        return source.max_bytes or self.defaults.max_bytes

    def zone(self, source: SourceConfig) -> ZoneInfo:
        return ZoneInfo(source.timezone or self.defaults.timezone)

    def source(self, name: str) -> SourceConfig | None:
        return next((source for source in self.sources if source.name == name), None)


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
