"""The config's model: every key with its type, default and check (pydantic, strict).

Durations (`15m`, `1h30m`) and sizes (`5MB`) are parsed here; unknown keys are errors.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from aggregator.urls import is_web_url

DEFAULT_CONFIG_PATH = Path("config/aggregator.yaml")
CONFIG_ENV_VAR = "AGGREGATOR_CONFIG"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
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
    # lxml only for a config that has selectors: a pass of 304s needs no HTML at all.
    from lxml.cssselect import CSSSelector  # noqa: PLC0415

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
    # What the entries' own categories become: tags (each its own feed), or nothing, so a
    # handful of feeds cannot make a hundred tags.
    categories: Literal["tags", "ignore"] = "tags"
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
