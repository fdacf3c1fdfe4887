"""Sources from and to OPML (1.0 and 2.0), the format every feed reader imports and exports.

Folders (outlines without a feed URL) and OPML 2.0 `category` attributes become tags. The parser
never resolves entities, loads a DTD or touches the network, so an OPML file cannot read local
files or URLs (XXE) or blow up memory (billion laughs).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aggregator.errors import AggregatorError
from aggregator.redact import mask_text, mask_url
from aggregator.urls import is_web_url

if TYPE_CHECKING:  # lxml is imported by the functions that read or write OPML: every command
    # of the CLI imports this module, and `run` or `status` need no XML.
    from lxml import etree

# Types readers give feed outlines; others (FreshRSS "HTML+XPath", "link", "include") are not
# feeds we can poll as they are.
_FEED_TYPES = frozenset({"", "rss", "atom", "feed", "json"})
_NAME_UNSAFE = re.compile(r"[\s/\\]+")


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
        title = _attribute(outline, "title") or _attribute(outline, "text") or url
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
        found[url] = Subscription(title, url, _attribute(outline, "htmlUrl") or None, tags)
    return OpmlFeeds(tuple(found.values()), repeated, tuple(skipped))


def source_name(title: str, taken: set[str]) -> str:
    """A config `name` from a feed title: spaces and slashes become `-`, other letters stay;
    `-2`, `-3`... when the name is taken."""
    base = _NAME_UNSAFE.sub("-", title.strip()).strip("-") or "feed"
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
