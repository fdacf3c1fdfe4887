"""The config's model: every key with its type, default and check (pydantic, strict).

Durations (`15m`, `1h30m`) and sizes (`5MB`) are parsed by units.py; unknown keys are errors.
Checks that need the file system (is `output.dir` a folder we may write and clean? see
output_dir.py) run only when the loader passes the config's folder in the validation context,
so that a Config built in code for a test never depends on what a disk holds.
"""

from __future__ import annotations

import os
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
    ValidationInfo,
    model_validator,
)

from aggregator import __version__
from aggregator.config.output_dir import output_dir_problem
from aggregator.config.units import parse_duration, parse_size, shown
from aggregator.urls import is_web_url

DEFAULT_CONFIG_PATH = Path("config/aggregator.yaml")
CONFIG_ENV_VAR = "AGGREGATOR_CONFIG"
# The validation context key the loader sets to the config file's folder (a Path).
CONFIG_FOLDER = "config_folder"


# SQLAlchemy's make_url grammar (sqlalchemy.engine.url._parse_url), so that `check` refuses
# what the store would, without importing SQLAlchemy (only the store may, and it is slow to
# import for a command that opens no database).
_STORE_URL = re.compile(
    r"""
    (?P<name>[\w+]+)://
    (?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?
    (?:(?:\[(?P<ipv6host>[^/?]+)\]|(?P<ipv4host>[^/:?]+))?(?::(?P<port>[^/?]*))?)?
    (?:/(?P<database>[^?]*))?
    (?:\?(?P<query>.*))?
    """,
    re.VERBOSE,
)
STORE_SCHEMES = ("sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg")
_STORE_EXAMPLES = "use sqlite:///path/to/file.db or postgresql+psycopg://user@host/database"


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
    except (RecursionError, OverflowError):
        # sre's parser recurses per nested group and caps repeat counts.
        raise ValueError(
            f"{shown(pattern)} is too deeply nested or repeats too often for a regular expression"
        ) from None
    return pattern


def _selector(selector: str) -> str:
    # lxml only for a config that has selectors: a pass of 304s needs no HTML at all.
    from lxml.cssselect import CSSSelector  # noqa: PLC0415

    try:
        CSSSelector(selector)
    except Exception as error:  # cssselect raises its own SelectorError family
        raise ValueError(f"{selector!r} is not a CSS selector: {error}") from None
    return selector


def _listing_selector(selector: str) -> str:
    # A listing page is read with Beautiful Soup, whose soupsieve knows more CSS than lxml.
    import soupsieve  # noqa: PLC0415 - see _selector

    try:
        soupsieve.compile(selector)
    except soupsieve.SelectorSyntaxError as error:
        # soupsieve's message goes on to draw the selector with a caret: one line is enough here.
        reason = str(error).splitlines()[0]
        raise ValueError(f"{selector!r} is not a CSS selector: {reason}") from None
    return selector


def _timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a name too long for the file system, looked up as a file under TZPATH.
        raise ValueError(
            f"{shown(name)} is not a time zone; use a name like Asia/Shanghai"
        ) from None
    return name


# Control characters and YAML's line breaks (U+0085, U+2028, U+2029): a title stays one line in
# the config and in every page, feed and OPML file that shows it.
_NOT_IN_TITLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _display_title(title: str) -> str:
    if not title.strip():
        raise ValueError("is blank; leave `title` out to show the source's name")
    if _NOT_IN_TITLE.search(title):
        raise ValueError(f"{shown(title)} holds a line break or control character")
    return title


def resolve_path(folder: Path, path: Path) -> Path:
    """A path of the config: `~` expanded, a relative one taken from the config's folder."""
    expanded = path.expanduser()
    return expanded if expanded.is_absolute() else (folder / expanded).resolve()


def _output_dir(path: Path, info: ValidationInfo) -> Path:
    folder = (info.context or {}).get(CONFIG_FOLDER)
    if not isinstance(folder, Path):
        return path
    resolved = resolve_path(folder, path)
    problem = output_dir_problem(resolved)
    if problem is None:
        return path
    # What the folder really is, when the config spells it otherwise (relative, .., a link).
    try:
        real = os.path.realpath(resolved)
    except (OSError, ValueError):
        real = str(resolved)
    named = repr(str(path)) if real == str(path) else f"{str(path)!r} ({real})"
    raise ValueError(
        f"{named} {problem}; the aggregator writes its feeds there and deletes its own temp"
        " files, so give it a new or empty folder of its own, e.g. /var/lib/aggregator/public"
    )


def _store_url(url: str) -> str:
    """Only a URL the store opens: SQLAlchemy's syntax, SQLite or PostgreSQL with psycopg."""
    match = _STORE_URL.match(url)
    if match is None:
        raise ValueError(f"{shown(url)} is not a database URL; {_STORE_EXAMPLES}")
    masked = _without_password(url, match)
    scheme = match["name"]
    if scheme not in STORE_SCHEMES:
        hint = " (PostgreSQL's is postgresql://)" if scheme.startswith("postgres") else ""
        raise ValueError(
            f"{masked}: {scheme!r} is not a database the store can use{hint}; {_STORE_EXAMPLES}"
        )
    port = match["port"]
    if port is not None:  # "host:" with no number is an error too
        try:
            int(port)
        except ValueError:
            raise ValueError(f"{masked}: the port {port!r} is not a number") from None
    return url


def _without_password(url: str, match: re.Match[str]) -> str:
    # Error messages reach logs and terminals; a database password must not.
    if match["password"] is None:
        return repr(url)
    start, end = match.span("password")
    return repr(url[:start] + "***" + url[end:])


Duration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive)]
OutputDir = Annotated[Path, AfterValidator(_output_dir)]
StoreUrl = Annotated[str, AfterValidator(_store_url)]
Selector = Annotated[str, AfterValidator(_selector)]
ListingSelector = Annotated[str, AfterValidator(_listing_selector)]
TimeZone = Annotated[str, AfterValidator(_timezone)]
Size = Annotated[int, BeforeValidator(parse_size), Field(gt=0)]
WebUrl = Annotated[str, AfterValidator(_web_url)]
Regex = Annotated[str, AfterValidator(_regex)]
Name = Annotated[str, Field(min_length=1, pattern=r"^[^\s/\\]+$")]
# A header value: printable ASCII, no line breaks, of a sensible length.
UserAgent = Annotated[str, Field(min_length=1, max_length=300, pattern=r"^[ -~]+$")]
DisplayTitle = Annotated[str, Field(max_length=300), AfterValidator(_display_title)]
# A host name for host-keyed clean rules: lowercase labels, applies to its subdomains too.
Host = Annotated[
    str, Field(pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class StoreConfig(_Strict):
    url: StoreUrl = "sqlite:///../var/aggregator.db"


class OutputConfig(_Strict):
    # Checked even when left out: the default, ../public beside the config, may be unsafe too.
    dir: OutputDir = Field(default=Path("../public"), validate_default=True)
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
    per_host: int = Field(default=2, ge=1, le=64)  # concurrent requests to one host, at first
    # The most a healthy host's window grows to (a per_host above it is kept as asked).
    per_host_max: int = Field(default=16, ge=1, le=64)
    concurrency: int = Field(default=100, ge=1, le=1000)  # concurrent requests in all
    timezone: TimeZone = "UTC"  # for dates that carry no zone
    # What requests call themselves; default `aggregator/VERSION (+output.base_url)`, so a
    # publisher can see whose instance polls it.
    user_agent: UserAgent | None = None


class CleanRules(_Strict):
    drop: tuple[Selector, ...] = ()
    drop_text: tuple[Regex, ...] = ()


class SourceConfig(_Strict):
    name: Name
    # What readers see instead of the name (provenance, pages, OPML); the name stays the
    # CLI's handle. Filled from the feed's own title by `sources add` and OPML import.
    title: DisplayTitle | None = None
    kind: Literal["posts", "feed", "page"]
    path: Path | None = None
    url: WebUrl | None = None
    site_url: WebUrl | None = None  # the home page the feed belongs to (OPML's htmlUrl)
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
    user_agent: UserAgent | None = None  # this source's own (a publisher that asks for one)
    # May reach private networks and loopback whatever its URL's host name says (an intranet
    # feed under a public-looking name); by default a public name resolving inside is refused.
    private_network: bool = False
    # page sources: CSS selectors on the listing page and on each article page
    selector: ListingSelector | None = None  # any CSS selector soupsieve reads
    content_selector: Selector | None = None
    title_selector: Selector | None = None
    date_selector: Selector | None = None

    @property
    def fetched(self) -> bool:
        """Read over HTTP (a feed, or a listing page and its articles); else a local folder."""
        return self.kind != "posts"

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


class LimitsConfig(_Strict):
    """What one entry may hold at most; past it, the entry is cut (and counted in status), so
    no input costs more than linear time to clean, store and render."""

    html_depth: int = Field(default=2000, ge=8, le=10_000)  # deeper tags dropped, text kept
    categories: int = Field(default=32, ge=0, le=1000)  # per entry, the first ones kept
    category_length: int = Field(default=100, ge=1, le=1000)  # characters
    title_length: int = Field(default=500, ge=10, le=100_000)  # characters


class Config(_Strict):
    store: StoreConfig = StoreConfig()
    # Built from {} rather than a ready instance, so that a config without `output` still has
    # its default folder checked against the file system in the loader's context.
    output: OutputConfig = Field(default_factory=dict, validate_default=True)
    server: ServerConfig = ServerConfig()
    defaults: Defaults = Defaults()
    sources: tuple[SourceConfig, ...] = ()
    rules: tuple[RuleConfig, ...] = ()
    dedupe: DedupeConfig = DedupeConfig()
    limits: LimitsConfig = LimitsConfig()
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

    def user_agent(self, source: SourceConfig | None = None) -> str:
        configured = (source.user_agent if source else None) or self.defaults.user_agent
        return configured or f"aggregator/{__version__} (+{self.output.base_url})"

    def zone(self, source: SourceConfig) -> ZoneInfo:
        return ZoneInfo(source.timezone or self.defaults.timezone)

    def source(self, name: str) -> SourceConfig | None:
        return next((source for source in self.sources if source.name == name), None)
