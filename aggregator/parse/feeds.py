"""`parse_feed`, and its fast path: RSS 0.9x/1.0/2.0 and Atom with a strict lxml parser.

feedparser costs about 90 times an lxml parse, so well-formed feeds never reach it; only a
document lxml refuses goes to the feedparser fallback. The parser never loads a DTD, never
substitutes an entity and never touches the network, so XXE and entity bombs stay inert.
"""

from __future__ import annotations

import copy
import html
import re
from collections.abc import Callable
from datetime import UTC, tzinfo
from html.entities import html5

from lxml import etree

from aggregator.errors import EntryError
from aggregator.models import Document
from aggregator.urls import absolute_url

from .charsets import decode_xml
from .common import (
    ParsedFeed,
    RawEntry,
    absolutize_html,
    assemble_feed,
    looks_like_html,
    text_to_html,
)
from .jsonfeed import looks_like_json, parse_json_feed
from .pages import discover_feeds

_PREFIXES = {
    "http://www.w3.org/2005/atom": "atom",
    "http://purl.org/atom/ns#": "atom",
    "http://purl.org/rss/1.0/modules/content/": "content",
    "http://purl.org/dc/elements/1.1/": "dc",
    "http://purl.org/dc/terms/": "dcterms",
    "http://search.yahoo.com/mrss/": "media",
    "http://search.yahoo.com/mrss": "media",
    "http://www.w3.org/1999/02/22-rdf-syntax-ns#": "rdf",
    "http://www.itunes.com/dtds/podcast-1.0.dtd": "itunes",
}
# RSS has been published under all of these; inside them an element is named by its local name.
_RSS_NAMESPACES = frozenset(
    {
        "",
        "http://purl.org/rss/1.0/",
        "http://my.netscape.com/rdf/simple/0.9/",
        "http://backend.userland.com/rss2",
        "http://blogs.law.harvard.edu/tech/rss",
    }
)
_RSS_ITEMS = tuple(f"{{{namespace}}}item" if namespace else "item" for namespace in _RSS_NAMESPACES)
_RDF_ABOUT = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}about"
_HTML_TYPES = ("", "text/html", "application/xhtml+xml", "html")
_TITLES = frozenset({"title", "atom:title", "dc:title"})
_PUBLISHED = frozenset({"pubDate", "atom:published", "atom:issued", "dcterms:issued"})
_UPDATED = frozenset(
    {"atom:updated", "atom:modified", "dcterms:modified", "dc:date", "lastBuildDate"}
)
_AUTHORS = frozenset({"author", "dc:creator", "itunes:author", "atom:author"})
_CATEGORIES = frozenset({"category", "dc:subject", "media:category"})
_BODIES = frozenset({"description", "dc:description", "content:encoded"})
_FIRST_ELEMENT = re.compile(r"<[A-Za-z_]")
_EMBEDDED_FEED = re.compile(r"<(?:feed|rss|rdf:RDF)[\s>]")
_names: dict[str, str] = {}


def parse_feed(document: Document, default_zone: tzinfo = UTC) -> ParsedFeed:
    """Every entry of an RSS, Atom or JSON feed; bad entries are skipped and named in
    `problems`. Raises EntryError only when nothing can be read at all."""
    text = decode_xml(document.data, document.content_type, document.origin)
    if looks_like_json(text, document.content_type):
        return parse_json_feed(text, document, default_zone)
    if text[:1024].lower().lstrip().startswith(("<!doctype html", "<html")):
        return _html_page(text, document, default_zone)
    first_element = _FIRST_ELEMENT.search(text)
    if "<!ENTITY" in text[: first_element.start() if first_element else len(text)]:
        # The strict path leaves entities unexpanded; feedparser expands the harmless ones
        # (plain text values) and drops the rest, which is the better reading of such a feed.
        why = "the DOCTYPE declares entities, which the fast path does not expand"
        return _feedparser()(text, document, default_zone, why=why)
    try:
        return parse_xml_feed(text, document, default_zone)
    except etree.XMLSyntaxError as error:
        return _feedparser()(text, document, default_zone, why=error.msg)
    except _UnknownRootError as unknown:
        # Atom or RSS without its namespace, a lone Atom entry: what feedparser makes of it.
        why = f"the document is a <{unknown.name}>"
        return _feedparser()(text, document, default_zone, why=why)


class _UnknownRootError(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _html_page(text: str, document: Document, default_zone: tzinfo) -> ParsedFeed:
    """An HTML page is no feed, unless a feed is written inside it (some blogs serve their
    Atom feed in an XHTML body): then feedparser reads that. Either way the error names the
    feeds the page announces."""
    if _EMBEDDED_FEED.search(text):
        try:
            return _feedparser()(text, document, default_zone, why="a feed inside an HTML page")
        except EntryError:
            pass
    raise EntryError(document.origin, _not_a_feed(text, document))


def parse_xml_feed(text: str, document: Document, default_zone: tzinfo) -> ParsedFeed:
    """The lxml path; raises XMLSyntaxError for anything not well-formed."""
    parser = etree.XMLParser(
        encoding="utf-8",
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        huge_tree=False,
        recover=False,
        remove_comments=True,
        remove_pis=True,
    )
    feed_url = document.base_url or document.origin
    root = etree.fromstring(text.encode("utf-8"), parser, base_url=feed_url)
    kind = _name(root.tag)
    if kind in ("rss", "rdf:RDF"):
        channel = next((child for child in root if _name(child.tag) == "channel"), root)
        # Wherever they are: feeds in the wild nest items in items, or in their channel
        # (RSS 1.0 puts them beside it).
        items = list(root.iter(*_RSS_ITEMS))
    elif kind == "atom:feed":
        channel = root
        items = [child for child in root if _name(child.tag) == "atom:entry"]
    elif kind.endswith("html"):
        return _html_page(text, document, default_zone)
    else:
        raise _UnknownRootError(etree.QName(root).localname)
    head = _read(channel)
    # Atom entries inherit the feed's author; RSS has no such rule (and feedparser would offer
    # the managingEditor there).
    feed_author = head.author if kind == "atom:feed" else None
    return assemble_feed(
        document,
        head,
        items,
        _read,
        feed_author=feed_author,
        default_zone=default_zone,
        parser="lxml",
    )


def _not_a_feed(text: str, document: Document) -> str:
    page = Document(document.source, document.origin, text.encode("utf-8"), document.base_url)
    try:
        feeds = discover_feeds(page)
    except EntryError:
        feeds = []
    named = f"; it names these feeds: {', '.join(feeds)}" if feeds else ""
    return f"an HTML page, not a feed{named}"


def _name(tag: object) -> str:
    """`{namespace}local` as `prefix:local`, or the bare local name inside RSS namespaces."""
    if not isinstance(tag, str):
        return ""
    name = _names.get(tag)
    if name is None:
        namespace, _, local = tag[1:].rpartition("}") if tag.startswith("{") else ("", "", tag)
        if namespace in _RSS_NAMESPACES:
            name = local
        else:
            prefix = _PREFIXES.get(namespace.lower())
            name = f"{prefix}:{local}" if prefix else f"?:{local}"
        if len(_names) < 4096:  # a hostile feed could invent names without end
            _names[tag] = name
    return name


def _read(node: etree._Element) -> RawEntry:
    """One item, entry, channel or feed head; the first of each repeated element wins."""
    raw = RawEntry(guid=node.get(_RDF_ABOUT))
    link = alternate = permalink = None
    images: dict[str, str] = {}
    for child in node:
        name = _name(child.tag)
        if name in _TITLES:
            if raw.title is None:
                raw.title, raw.title_is_html = _title(child, name)
        elif name == "link" and not link and _text(child).strip():
            link = absolute_url(_text(child), _base(child))
        elif name == "atom:link" and (target := child.get("href") or _text(child).strip()):
            # Some feeds write the URL as the element's text, as RSS does; readers take it.
            rel, kind = child.get("rel", "alternate"), child.get("type", "").lower()
            href = absolute_url(target, _base(child))
            if rel == "alternate" and kind in _HTML_TYPES:
                alternate = alternate or href
            elif rel == "enclosure" and kind.startswith("image/"):
                images.setdefault("enclosure", href)
        elif name in ("guid", "atom:id"):
            raw.guid = _text(child).strip()
            if child.get("isPermaLink", "true").strip().lower() == "true":
                permalink = raw.guid
        elif name in _BODIES or name in ("atom:content", "atom:summary"):
            raw.contents.append(_body(child, name))
        elif name in _PUBLISHED:
            raw.published = raw.published or _text(child)
        elif name in _UPDATED:
            raw.updated = raw.updated or _text(child)
        elif name in _AUTHORS:
            raw.author = raw.author or _author(child)
        elif name in _CATEGORIES:
            raw.tags.append(_text(child))
        elif name == "atom:category":
            raw.tags.append(child.get("term") or child.get("label") or "")
        elif name == "media:keywords":
            raw.tags.extend(_text(child).split(","))
        elif name == "media:description":  # YouTube's, and other video feeds' only text
            raw.contents.append(_body(child, name))
        elif name in ("media:thumbnail", "media:content", "media:group", "enclosure"):
            _images(child, name, images)
            if name == "media:group":
                raw.contents.extend(
                    _body(part, "media:description")
                    for part in child
                    if _name(part.tag) == "media:description"
                )
    raw.link = link or alternate or permalink
    raw.image = images.get("media:thumbnail") or images.get("media:content")
    raw.image = raw.image or images.get("enclosure")
    return raw


def _images(node: etree._Element, name: str, images: dict[str, str]) -> None:
    if name == "media:group":
        for child in node:
            _images(child, _name(child.tag), images)
        return
    url = node.get("url")
    if not url:
        return
    is_image = node.get("medium") == "image" or node.get("type", "").startswith("image/")
    if name == "media:thumbnail" or is_image:
        images.setdefault(name, absolute_url(url, _base(node)))


def _text(node: etree._Element) -> str:
    """Text content; a (never substituted) entity reference becomes its HTML character, or stays
    written out when HTML does not know it."""
    if len(node) == 0:
        return node.text or ""
    parts = [node.text or ""]
    for child in node:
        if isinstance(child.tag, str):
            parts.append(_text(child))
        else:
            reference = child.text or ""
            parts.append(html5.get(reference[1:], reference))
        parts.append(child.tail or "")
    return "".join(parts)


def _title(node: etree._Element, name: str) -> tuple[str, bool]:
    """The title and whether it is HTML: Atom says so in `type` (text by default); RSS does
    not, so a title is HTML when it looks like HTML."""
    text = _text(node)
    if name == "atom:title":
        kind = node.get("type", "text").lower()
        return text, "html" in kind and "xhtml" not in kind
    return text, looks_like_html(text)


def _author(node: etree._Element) -> str:
    if _name(node.tag) != "atom:author":
        return _text(node)
    parts = {_name(child.tag): _text(child).strip() for child in node}
    return parts.get("atom:name") or parts.get("atom:email") or ""


def _body(node: etree._Element, name: str) -> str:
    """A body as HTML: escaped HTML, inline XHTML, or plain text made into paragraphs."""
    kind = node.get("type", "html" if name in _BODIES else "text").lower()
    if node.get("src") or node.get("mode") == "base64":
        return ""
    has_markup = any(isinstance(child.tag, str) for child in node)
    if "xhtml" in kind or has_markup:
        div = node[0] if len(node) == 1 and _name(node[0].tag).endswith(":div") else node
        body = _xhtml(div)
    elif "html" in kind:
        body = _text(node)
    elif kind.startswith(("text", "plain")):  # Media RSS says "plain"
        body = text_to_html(_text(node))
    else:
        return ""
    base = _base(node)
    return absolutize_html(body, base) if base else body


def _xhtml(node: etree._Element) -> str:
    """Inner markup of an element, namespaces dropped, serialized as HTML."""
    node = copy.deepcopy(node)
    for element in node.iter():
        if isinstance(element.tag, str) and element.tag.startswith("{"):
            element.tag = etree.QName(element).localname
    etree.cleanup_namespaces(node)
    inner = (etree.tostring(child, encoding="unicode", method="html") for child in node)
    return html.escape(node.text or "", quote=False) + "".join(inner)


def _base(node: etree._Element) -> str | None:
    """The element's xml:base, resolved against its ancestors' and the feed URL."""
    base = getattr(node, "base", None)
    return base if isinstance(base, str) else None


def _feedparser() -> Callable[..., ParsedFeed]:
    # Imported when a feed first needs it: feedparser adds ten megabytes to every worker
    # process, and well-formed feeds never reach it.
    from .fallback import parse_with_feedparser  # noqa: PLC0415

    return parse_with_feedparser
