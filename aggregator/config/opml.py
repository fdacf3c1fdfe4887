"""Sources from and to OPML (1.0 and 2.0), the format every feed reader imports and exports.

Folders (outlines without a feed URL) and OPML 2.0 `category` attributes become tags. The parser
never resolves entities, loads a DTD or touches the network, so an OPML file cannot read local
files or URLs (XXE) or blow up memory (billion laughs).

Also how a source named elsewhere (an outline's title, a feed's own title) becomes a config
`name` (a short ASCII slug typed on the command line) and a display `title` (the name as
people chose it, shown to readers).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aggregator.errors import AggregatorError
from aggregator.redact import mask_text, mask_url
from aggregator.urls import is_web_url

if TYPE_CHECKING:  # lxml is imported by the functions that read or write OPML: every command
    # of the CLI imports this module, and `run` or `status` need no XML.
    from lxml import etree

# Types readers give feed outlines; others (FreshRSS "HTML+XPath", "link", "include") are not
# feeds we can poll as they are.
_FEED_TYPES = frozenset({"", "rss", "atom", "feed", "json"})
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
# An aside in brackets, innermost first: "nataliepo (posts on 'nataliepo' (rss 2.0))" is
# nataliepo's feed, and the slug is typed on the command line.
_ASIDE = re.compile(r"[(\[{（【「『][^()\[\]{}（）【】「」『』]*[)\]}）】」』]")
MAX_SLUG = 40
# The longest `title` the config takes (config.model.DisplayTitle).
MAX_TITLE = 300
# What a feed's host and path say about it no more than "feed" does.
_URL_NOISE = frozenset(
    {"www", "feeds", "feed", "rss", "rss2", "atom", "xml", "index", "default", "m", "api"}
)
# Control characters and YAML's line breaks: the config's `title` refuses them.
_NOT_IN_TITLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class OpmlError(AggregatorError):
    """An OPML file could not be read at all."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """One feed of an OPML file."""

    title: str
    url: str
    html_url: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OpmlFeeds:
    feeds: tuple[Subscription, ...]
    repeated: int  # feed outlines whose URL came earlier in the file (their tags were merged)
    skipped: tuple[str, ...]  # one message per outline that is not a feed we can poll


def _attribute(outline: etree._Element, name: str) -> str:
    # Readers disagree on case (xmlUrl, xmlurl, XMLURL); OPML is case-sensitive, exports are not.
    wanted = name.lower()
    for key, value in outline.attrib.items():
        if isinstance(key, str) and key.lower() == wanted:
            return str(value).strip()
    return ""


def _categories(value: str) -> list[str]:
    """OPML 2.0: comma-separated, slash-delimited category strings; every part is a tag."""
    return [part.strip() for text in value.split(",") for part in text.split("/") if part.strip()]


def _unique(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value for value in values if value))


def _walk(
    parent: etree._Element, folders: tuple[str, ...]
) -> Iterator[tuple[etree._Element, tuple[str, ...]]]:
    for outline in parent:
        # The local name: "{namespace}outline" is an outline too.
        if not isinstance(outline.tag, str) or outline.tag.rpartition("}")[2] != "outline":
            continue
        if _attribute(outline, "xmlUrl"):
            yield outline, folders
            continue
        label = _attribute(outline, "title") or _attribute(outline, "text")
        yield from _walk(outline, (*folders, label) if label else folders)


def read_opml(data: bytes, origin: str) -> OpmlFeeds:
    """Every feed outline of an OPML document, in order, with its folders and categories as
    tags. Raises OpmlError when the bytes are no OPML at all."""
    from lxml import etree  # noqa: PLC0415 - see the import block

    parser = etree.XMLParser(
        resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False, recover=True
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as error:
        raise OpmlError(f"{origin}: not XML: {error}") from None
    if root is None or etree.QName(root).localname.lower() != "opml":
        raise OpmlError(f"{origin}: not an OPML document (no <opml> root element)")
    body = next((child for child in root if etree.QName(child).localname == "body"), None)
    if body is None:
        raise OpmlError(f"{origin}: the OPML document has no <body>")
    found: dict[str, Subscription] = {}
    repeated = 0
    skipped: list[str] = []
    for outline, folders in _walk(body, ()):
        url = _attribute(outline, "xmlUrl")
        named = display_title(_attribute(outline, "title")) or display_title(
            _attribute(outline, "text")
        )
        title = named or url
        kind = _attribute(outline, "type").lower()
        if kind not in _FEED_TYPES or not is_web_url(url):
            why = f"type {kind!r} is not a feed" if kind not in _FEED_TYPES else "not http(s)"
            skipped.append(mask_text(f"{title} ({mask_url(url)}): {why}"))
            continue
        tags = _unique([*folders, *_categories(_attribute(outline, "category"))])
        if url in found:
            repeated += 1
            earlier = found[url]
            found[url] = Subscription(
                earlier.title, url, earlier.html_url, _unique([*earlier.tags, *tags])
            )
            continue
        home = _attribute(outline, "htmlUrl")
        found[url] = Subscription(title, url, home if is_web_url(home) else None, tags)
    return OpmlFeeds(tuple(found.values()), repeated, tuple(skipped))


def display_title(text: str | None) -> str | None:
    """A title as the config's `title` takes it: one line, spaces collapsed, at most
    MAX_TITLE characters; None when nothing readable is left."""
    if not text:
        return None
    title = " ".join(_NOT_IN_TITLE.sub(" ", text).split())
    if len(title) > MAX_TITLE:
        title = title[: MAX_TITLE - 1].rstrip() + "…"
    return title or None


def _slug(text: str) -> str:
    # Accents come off (é is e plus a combining mark); letters with no ASCII form go.
    decomposed = unicodedata.normalize("NFKD", text)
    letters = "".join(char for char in decomposed if not unicodedata.combining(char))
    return _NOT_SLUG.sub("-", letters.lower()).strip("-")


def _short(slug: str) -> str:
    if len(slug) <= MAX_SLUG:
        return slug
    cut = slug[: MAX_SLUG + 1].rpartition("-")[0]
    # A word of more than half the limit is cut mid-word rather than dropped.
    return cut if len(cut) >= MAX_SLUG // 2 else slug[:MAX_SLUG].rstrip("-")


def _mostly_ascii(title: str) -> bool:
    letters = [char for char in title if char.isalnum()]
    return sum(char.isascii() for char in letters) * 2 >= len(letters) > 0


def _title_slug(title: str) -> str:
    if not _mostly_ascii(title):
        return ""  # 联合早报 中国 Online would be "online": the URL says more
    plain = title
    while (shorter := _ASIDE.sub(" ", plain)) != plain:
        plain = shorter
    return _slug(plain) or _slug(title)


def _url_slug(url: str) -> str:
    """`rss.sina.com.cn/finance/china.xml` gives sina-finance-china: the site's own label (no
    top-level domain, no www or feeds) and what the path adds."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return ""
    labels = [label for label in host.split(".") if label]
    if len(labels) > 1 and not labels[-1].isdigit():
        labels.pop()  # the top-level domain
        if len(labels) > 1 and len(labels[-1]) <= 3:
            labels.pop()  # com of sina.com.cn, co of bbc.co.uk
        labels = [label for label in labels if label not in _URL_NOISE][-1:]
    words = [
        _slug(segment.rpartition(".")[0] or segment) for segment in parts.path.split("/") if segment
    ]
    words = [word for word in words if word and word not in _URL_NOISE][:2]
    return _slug("-".join([*labels, *words]))


def source_name(title: str, taken: set[str], url: str | None = None) -> str:
    """A config `name` for a source people call `title`: lowercase ASCII letters, digits and
    `-`, at most MAX_SLUG characters, without asides in brackets; from the URL when the title
    is mostly in letters ASCII has not (CJK); `-2`, `-3`... when the name is taken."""
    base = _short(_title_slug(title) or (_url_slug(url) if url else "")) or "feed"
    name, number = base, 2
    while name in taken:
        name, number = f"{base}-{number}", number + 1
    return name


def write_opml(title: str, feeds: Sequence[Subscription]) -> bytes:
    """OPML 2.0: one folder per first tag, every tag also in `category`, so that reading the
    file back gives each feed its tags in the same order.

    Every xmlUrl and htmlUrl goes through redact.mask_url: an export is shown and shared, so
    it carries no password or API key. A URL that needed them is exported masked
    (`http://***@host/feed?api_key=***`) and no longer works: it has to be completed by hand
    wherever the file is imported."""
    from lxml import etree  # noqa: PLC0415 - see the import block

    root = etree.Element("opml", {"version": "2.0"})
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = title
    body = etree.SubElement(root, "body")
    folders: dict[str, etree._Element] = {}
    for feed in feeds:
        parent = body
        if feed.tags:
            first = feed.tags[0]
            if first not in folders:
                folders[first] = etree.SubElement(body, "outline", {"text": first, "title": first})
            parent = folders[first]
        attributes = {
            "type": "rss",
            "text": feed.title,
            "title": feed.title,
            "xmlUrl": mask_url(feed.url),
        }
        if feed.html_url:
            attributes["htmlUrl"] = mask_url(feed.html_url)
        if feed.tags:
            # Commas and slashes would split a tag on the way back in.
            attributes["category"] = ",".join(re.sub(r"[,/]", "-", tag) for tag in feed.tags)
        etree.SubElement(parent, "outline", attributes)
    data: bytes = etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True)
    return data
