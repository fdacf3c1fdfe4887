"""What every feed format shares: dates, plain text, and the rules that turn a raw entry into an
Entry, so the lxml, feedparser and JSON paths cannot drift apart."""

from __future__ import annotations

import hashlib
import html
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import TYPE_CHECKING, TypeVar

from lxml import etree
from lxml import html as lxml_html

from aggregator.errors import EntryError, describe
from aggregator.models import Document, Entry
from aggregator.urls import canonical_url, is_web_url

if TYPE_CHECKING:
    from dateparser.date import DateDataParser

_TAG = re.compile(r"<[A-Za-z/!]")
_TAGS = re.compile(r"<[^<>]*>")
# What lxml raises for HTML it will not take: a lone <html> (its fragment parser asserts), a
# control character in a URL, nesting past its depth.
_LXML_REFUSALS = (etree.ParserError, etree.XMLSyntaxError, ValueError, AssertionError)
_LOOKS_LIKE_HTML = re.compile(
    r"</[A-Za-z][A-Za-z0-9]*\s*>|&(?:#[0-9]+|#[xX][0-9A-Fa-f]+|[A-Za-z][A-Za-z0-9]*);"
)
# An attribute value that is neither absolute, protocol-relative, a fragment nor empty. The `=` is
# searched first and the name checked after: one regex with the names tries each at every spot.
_RELATIVE_VALUE = re.compile(r"""=\s*["']?(?![a-zA-Z][a-zA-Z0-9+.-]*:|//|#|["'])""")
_LINK_NAME = re.compile(r"(?:^|[\s\"'/])(?:href|src|poster)$")
# ASCII whitespace and no-break spaces only: an ideographic space (U+3000) is typography in a
# CJK title and stays byte-exact.
_SPACES = re.compile(r"[ \t\n\r\f\v\u00a0]+")
_RFC822 = re.compile(r"(?:[A-Za-z]{3},?\s*)?\d{1,2}\s+[A-Za-z]{3,9}\s+\d{2,4}\s+\d{1,2}:\d{2}")
_ZONE_NAME = re.compile(r"\s([A-Za-z]{2,5})$")
# "GMT+8", "UTC+08:00": dateutil would read the sign the POSIX way, backwards.
_GMT_OFFSET = re.compile(r"\s(?:GMT|UTC)\s*([+-])(\d{1,2})(?::?(\d{2}))?$", re.I)
_CJK_DATE = re.compile(
    r"(\d{4})\s*[年/.-]\s*(\d{1,2})\s*[月/.-]\s*(\d{1,2})\s*日?"
    r"(?:\s*(\d{1,2})\s*[:：时]\s*(\d{1,2})(?:\s*[:：分]\s*(\d{1,2}))?)?"
    r"(?![T\d:：])"  # never a date whose time part it could not read
)
# "[Asia/Shanghai]" after an RFC 9557 timestamp, "(China Standard Time)" after a JavaScript one.
_ANNOTATION = re.compile(r"\s*(?:\[[^\]]*\]|\([^)]*\))$")
_LONGEST_OFFSET = timedelta(hours=24)
_MINUTE = timedelta(minutes=1)
_NO_YEAR = datetime(1, 1, 1)  # a sentinel: dateutil fills the fields a text lacks from it
# A word of two letters or more (a month or day name) and a year of four digits.
_WORDS_AND_YEAR = re.compile(r"(?=.*[^\W\d_]{2})(?=.*(?<!\d)\d{4}(?!\d))")
TITLE_FROM_TEXT = 80
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """What a feed gave: its entries, and one message per entry skipped or per recovery."""

    title: str | None
    link: str | None  # the site URL the feed names
    entries: tuple[Entry, ...]
    problems: tuple[str, ...]
    parser: str  # "lxml" | "feedparser" | "json"


@dataclass(slots=True)
class RawEntry:
    """An entry as a format reader found it, before the shared rules run."""

    guid: str | None = None
    title: str | None = None
    # The title may hold markup and entities (Atom type="html", an RSS title that looks like
    # HTML); False: it is text as published, a literal "<b>" or "&amp;" included.
    title_is_html: bool = True
    link: str | None = None  # absolute
    published: str | None = None  # date texts, parsed by the shared rules
    updated: str | None = None
    author: str | None = None
    tags: list[str] = field(default_factory=list)
    contents: list[str] = field(default_factory=list)  # HTML bodies; the fullest one wins
    image: str | None = None


def plain_text(value: str | None) -> str:
    """Markup stripped, entities decoded, ASCII whitespace collapsed; CJK left byte-exact."""
    if not value:
        return ""
    value = html_text(value) if _TAG.search(value) else html.unescape(value)
    return _SPACES.sub(" ", value).strip()


def looks_like_html(text: str) -> bool:
    """Whether a title that may be either (RSS says nothing) is HTML: a closing tag or an
    entity reference, the test mature readers apply."""
    return bool(_LOOKS_LIKE_HTML.search(text))


def html_text(fragment: str) -> str:
    """Text of an HTML fragment; "" when there is none."""
    if not fragment.strip():
        return ""
    try:
        root = lxml_html.fragment_fromstring(fragment, create_parent="div")
    except _LXML_REFUSALS:
        return html.unescape(_TAGS.sub("", fragment))
    return str(root.text_content())


def text_to_html(text: str) -> str:
    """A plain-text body as HTML paragraphs, blank lines separating them."""
    paragraphs = (part.strip() for part in re.split(r"\n\s*\n", text.strip()))
    return "".join(f"<p>{html.escape(part, quote=False)}</p>" for part in paragraphs if part)


def absolutize_html(fragment: str, base: str | None) -> str:
    """Relative href/src made absolute; untouched (and unparsed) when there is none."""
    if not base or not _has_relative_link(fragment):
        return fragment
    try:
        root = lxml_html.fragment_fromstring(fragment, create_parent="div")
        root.make_links_absolute(base, resolve_base_href=False, handle_failures="ignore")
    except _LXML_REFUSALS:  # the clean stage resolves what is left relative
        return fragment
    inner = "".join(lxml_html.tostring(child, encoding="unicode") for child in root)
    return html.escape(root.text or "", quote=False) + inner


def _has_relative_link(fragment: str) -> bool:
    for match in _RELATIVE_VALUE.finditer(fragment):
        before = fragment[max(0, match.start() - 9) : match.start()].rstrip().lower()
        # The whole attribute name: data-src or data-original-href are no links lxml rewrites
        # (the clean stage resolves those), so they are no reason to parse the body here.
        if _LINK_NAME.search(before):
            return True
    return False


def author_name(value: str | None) -> str | None:
    """`jane@example.org (Jane Doe)` -> Jane Doe; a bare address stays, having nothing better."""
    text = plain_text(value)
    name = re.sub(r"\S+@\S+\.\w+", "", text).replace("()", "").replace("<>", "").strip()
    name = name.removeprefix("(").removesuffix(")").strip()
    return name or text or None


def string_or_none(value: object) -> str | None:
    """A JSON or JSON-LD value that should be a string: stripped, or None."""
    return value.strip() or None if isinstance(value, str) else None


def unique(values: Iterable[str | None]) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for value in values:
        name = plain_text(value)
        if name:
            found.setdefault(name, None)
    return tuple(found)


class ForeignDates:
    """How many dates of one document dateparser may still fail on. It reads other languages,
    and a date in the language that worked last is fast; but a text that is no date costs it a
    tenth of a second over two hundred locales. A feed's dates are in one language: once two
    have failed, the rest will too."""

    def __init__(self, failures: int = 2) -> None:
        self.failures = failures

    def parse(self, text: str) -> datetime | None:
        if self.failures <= 0 or len(text) > 64 or not _WORDS_AND_YEAR.search(text):
            return None
        parsed = _foreign_parser().get_date_data(text).date_obj
        if parsed is None:
            self.failures -= 1
        return parsed


@lru_cache(maxsize=1)
def _foreign_parser() -> DateDataParser:
    from dateparser.date import DateDataParser  # noqa: PLC0415 - most feeds never need it

    settings = {"REQUIRE_PARTS": ["day", "month", "year"], "STRICT_PARSING": True}
    return DateDataParser(settings=settings, try_previous_locales=True)


def parse_date(
    text: str | None, default_zone: tzinfo, foreign: ForeignDates | None = None
) -> datetime | None:
    """ISO 8601/RFC 3339, RFC 822 or a CJK `2024年1月5日 10:00`; None when it is no date.

    RFC 822 zone names mean what that RFC says (CST is -06:00), except a name the source's
    configured zone itself uses at that moment: with Asia/Shanghai configured, CST is +08:00.
    An unknown zone name counts as no zone; no zone means the configured zone. `foreign`:
    dates in other languages (`Seg, 24 Set 2018`), read by dateparser within that budget.
    """
    text = " ".join((text or "").split())
    if not text:
        return None
    text = _ANNOTATION.sub("", text)
    text = _GMT_OFFSET.sub(lambda m: f" {m[1]}{int(m[2]):02d}{m[3] or '00'}", text)
    parsed = _parse(text, default_zone)
    if parsed is None and foreign is not None:
        parsed = foreign.parse(text)
    if parsed is None:
        return None
    try:
        offset = parsed.utcoffset()
    except ValueError:  # dateutil makes zones Python's datetime then refuses to use
        offset = None
    if offset is None or abs(offset) >= _LONGEST_OFFSET or offset % _MINUTE:
        # No zone, or one no place has (`+3000`): the time as written, in the source's zone.
        return parsed.replace(tzinfo=default_zone)
    return parsed


def _parse(text: str, default_zone: tzinfo) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace(" Z", "Z"))
    except ValueError:
        pass
    zone = _ZONE_NAME.search(text)
    parsed = None
    if _RFC822.match(text):  # the email parser reads far looser texts, often wrongly
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            parsed = None
    if parsed is not None:
        if zone and zone.group(1).upper() == default_zone.tzname(parsed.replace(tzinfo=None)):
            return parsed.replace(tzinfo=default_zone)
        return parsed
    cjk = _CJK_DATE.search(text)
    if cjk:
        year, month, day, hour, minute, second = (int(part or 0) for part in cjk.groups())
        try:
            return datetime(year, month, day, hour, minute, second)
        except ValueError:
            return None
    # dateutil, the last resort, is imported on first use: few real feeds need it, and a
    # worker (or a daemon's main process) that never does is spared its import.
    from dateutil import parser as date_parser  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dateutil warns about every zone name it does not know
        try:
            parsed = date_parser.parse(text, default=_NO_YEAR)
        except (ValueError, OverflowError, TypeError):
            return None
    return None if parsed.year == _NO_YEAR.year else parsed


def first_seen() -> datetime:
    """The date of an entry that has none: now, in whole seconds (what feeds can say)."""
    return datetime.now(UTC).replace(microsecond=0)


def content_key(title: str, text: str) -> str:
    basis = f"{title}\n{' '.join(text.split())}"
    return "sha256:" + hashlib.sha256(basis.encode()).hexdigest()


def build_entry(
    raw: RawEntry,
    *,
    source: str,
    origin: str,
    feed_date: datetime | None,
    default_zone: tzinfo,
    foreign: ForeignDates | None = None,
) -> Entry:
    """The shared rules. Title: the entry's, else the first 80 characters of its text, else
    "(untitled)". Dates: published, else updated, else the feed's own date; an entry with none
    is dated when first seen (`dated` False). Key: guid, else canonical link (fragment kept),
    else a content hash."""
    content = max(raw.contents, key=len, default="").strip()
    link = raw.link.strip() if raw.link and is_web_url(raw.link.strip()) else None
    guid = (raw.guid or "").strip()
    title = raw.title or ""
    title = plain_text(title) if raw.title_is_html else _SPACES.sub(" ", title).strip()
    text = ""
    if not title or not (guid or link):
        text = _SPACES.sub(" ", html_text(content)).strip()
    if not (guid or link or text or title):
        raise EntryError(origin, "no title, no link, no guid and no content")
    if not title:
        title = _shorten(text) if text else "(untitled)"
    published = parse_date(raw.published, default_zone, foreign)
    updated = parse_date(raw.updated, default_zone, foreign)
    published = published or updated or feed_date
    dated = published is not None
    if published is None:
        published = first_seen()
    updated = max(updated or published, published)
    return Entry(
        source=source,
        origin=origin,
        key=guid or (_link_key(link) if link else content_key(title, text)),
        title=title,
        link=link,
        published=published,
        updated=updated,
        author=author_name(raw.author),
        tags=unique(raw.tags),
        content_html=content,
        image=raw.image if raw.image and is_web_url(raw.image) else None,
        dated=dated,
    )


def _link_key(link: str) -> str:
    """The canonical URL, with the fragment: posts of one page (`26.html#a080605`,
    `26.html#a120000`) are different entries."""
    fragment = link.partition("#")[2]
    return canonical_url(link) + (f"#{fragment}" if fragment else "")


def _shorten(text: str) -> str:
    return text if len(text) <= TITLE_FROM_TEXT else text[:TITLE_FROM_TEXT].rstrip() + "…"


def assemble_feed(
    document: Document,
    head: RawEntry,
    items: Iterable[T],
    read: Callable[[T], RawEntry],
    *,
    feed_author: str | None,
    default_zone: tzinfo,
    parser: str,
    problems: Iterable[str] = (),
) -> ParsedFeed:
    """Entries from a feed's items, each read into a RawEntry by `read`, whichever parser found
    them: the same rules, so the fast path and the fallback give the same Entries. An entry
    that fails, however it fails, becomes a problem naming it; the others are kept."""
    foreign = ForeignDates()
    feed_date = parse_date(head.updated, default_zone, foreign)
    feed_date = feed_date or parse_date(head.published, default_zone, foreign)
    entries: list[Entry] = []
    found = list(problems)
    for number, item in enumerate(items, start=1):
        origin = f"{document.origin} entry {number}"
        try:
            raw = read(item)
            raw.author = raw.author or feed_author
            entries.append(
                build_entry(
                    raw,
                    source=document.source,
                    origin=origin,
                    feed_date=feed_date,
                    default_zone=default_zone,
                    foreign=foreign,
                )
            )
        except EntryError as error:
            found.append(f"{origin}: {error.reason}")
        except Exception as error:  # a reader's or a library's fault: this entry only
            found.append(f"{origin}: {describe(error)}")
    return ParsedFeed(
        title=plain_text(head.title) or None,
        link=head.link if head.link and is_web_url(head.link) else None,
        entries=tuple(entries),
        problems=tuple(found),
        parser=parser,
    )
