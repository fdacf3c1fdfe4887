"""HTML pages: the article links of a listing page, one article page as an Entry, and the
feeds a page announces."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any

from cssselect import SelectorError
from lxml import etree
from lxml import html as lxml_html

from aggregator.errors import EntryError
from aggregator.models import Document, Entry
from aggregator.urls import absolute_url, canonical_url, is_web_url

from .charsets import decode_html
from .common import (
    absolutize_html,
    first_seen,
    parse_date,
    plain_text,
    string_or_none,
    unique,
)

# Beautiful Soup and soupsieve, heavy to import, read listing pages and the feeds a page
# announces, and nothing else: imported where those first need them, so a worker process
# that only parses feeds never loads them.
if TYPE_CHECKING:
    from bs4 import BeautifulSoup

_FEED_TYPES = frozenset(
    {
        "application/rss+xml",
        "application/atom+xml",
        "application/rdf+xml",
        "application/feed+json",
        "application/json",
    }
)
_PUBLISHED_META = (
    "article:published_time",
    "og:published_time",
    "datepublished",
    "pubdate",
    "publishdate",
    "publish_date",
    "dc.date.issued",
    "dc.date",
    "date",
)
_MODIFIED_META = ("article:modified_time", "og:updated_time", "datemodified")
_TITLE_META = ("og:title", "twitter:title")
_AUTHOR_META = ("author", "article:author", "dc.creator")
_IMAGE_META = ("og:image", "og:image:url", "twitter:image")


def find_article_links(document: Document, selector: str) -> list[str]:
    """Absolute http(s) links the selector picks, in page order, each article once; the
    selector may pick the <a> elements or containers holding one. Any CSS selector soupsieve
    reads (`:has()`, `:is()`, `:nth-child(2 of .x)`, `:-soup-contains("text")`) works."""
    from soupsieve import SelectorSyntaxError  # noqa: PLC0415 - see TYPE_CHECKING above

    soup, base = _soup(document)
    try:
        picked = soup.select(selector)
    except SelectorSyntaxError as error:
        # A status is one line; soupsieve's message goes on to draw the selector with a caret.
        reason = str(error).splitlines()[0]
        raise EntryError(document.origin, f"bad CSS selector {selector!r}: {reason}") from None
    found: dict[str, str] = {}
    for element in picked:
        anchor = element if element.name == "a" else element.find("a")
        href = _attribute(anchor, "href")
        if not href:
            continue
        url = absolute_url(href, base).split("#", 1)[0]
        if is_web_url(url):
            found.setdefault(canonical_url(url), url)
    return list(found.values())


def discover_feeds(document: Document) -> list[str]:
    """The feeds a page announces with <link rel="alternate" type="...">, absolute, in order."""
    soup, base = _soup(document)
    found: dict[str, None] = {}
    for link in soup.find_all("link"):
        rel = [value.lower() for value in link.get_attribute_list("rel")]
        kind = _attribute(link, "type").split(";")[0].strip().lower()
        href = _attribute(link, "href").strip()
        # A WordPress page announces its REST API record as application/json; it is no feed.
        rest_api = kind == "application/json" and "/wp-json/" in href
        if "alternate" in rel and kind in _FEED_TYPES and href and not rest_api:
            url = absolute_url(href, base)
            if is_web_url(url):
                found.setdefault(url, None)
    return list(found)


def _soup(document: Document) -> tuple[BeautifulSoup, str | None]:
    """A listing page as Beautiful Soup reads it (lxml's parser underneath), and the URL its
    links resolve against."""
    from bs4 import BeautifulSoup, Tag  # noqa: PLC0415 - see TYPE_CHECKING above

    text = decode_html(document.data, document.content_type, document.origin)
    soup = BeautifulSoup(text, "lxml")
    base = document.base_url or (document.origin if is_web_url(document.origin) else None)
    declared = soup.find("base", href=True)
    if isinstance(declared, Tag):
        base = absolute_url(_attribute(declared, "href"), base)
    return soup, base


def _attribute(element: object, name: str) -> str:
    from bs4 import Tag  # noqa: PLC0415 - see TYPE_CHECKING above

    value = element.get(name) if isinstance(element, Tag) else None
    return value if isinstance(value, str) else ""


def extract_article(
    document: Document,
    *,
    content_selector: str | None = None,
    title_selector: str | None = None,
    date_selector: str | None = None,
    default_zone: tzinfo = UTC,
) -> Entry:
    """One article page as an Entry. The date comes from the page or the Entry is refused
    ("no publication date"): a fetch time is never passed off as a publication date."""
    origin = document.origin
    root, base = _page(document)
    url = document.base_url or origin
    meta = _meta(root)
    linked = _json_ld(root)
    title = _selected_text(root, title_selector, origin) or _first(meta, _TITLE_META)
    title = plain_text(title or string_or_none(linked.get("headline")) or root.findtext(".//title"))
    if not title:
        raise EntryError(origin, "no title")
    published = _published(
        root, date_selector, meta=meta, linked=linked, zone=default_zone, origin=origin
    )
    dated = published is not None
    published = published or first_seen()
    modified = _first(meta, _MODIFIED_META) or string_or_none(linked.get("dateModified"))
    updated = parse_date(modified, default_zone)
    content = _content(root, content_selector, document, title, base)
    keywords = [*meta.get("keywords", []), *meta.get("news_keywords", [])]
    return Entry(
        source=document.source,
        origin=origin,
        key=canonical_url(url),
        title=title,
        link=url,
        published=published,
        updated=max(updated or published, published),
        author=_author(meta, linked),
        tags=unique([*meta.get("article:tag", []), *_split_keywords(keywords)]),
        content_html=content,
        image=_image(meta, linked, base),
        dated=dated,
    )


def _page(document: Document) -> tuple[lxml_html.HtmlElement, str | None]:
    text = decode_html(document.data, document.content_type, document.origin)
    try:
        root = lxml_html.document_fromstring(text)
    except (etree.ParserError, ValueError) as error:
        raise EntryError(document.origin, f"not an HTML page: {error}") from None
    base = document.base_url or (document.origin if is_web_url(document.origin) else None)
    declared = root.find(".//base[@href]")
    if declared is not None:
        base = absolute_url(declared.get("href", ""), base)
    return root, base


def _select(root: lxml_html.HtmlElement, selector: str, origin: str) -> list[Any]:
    try:
        return list(root.cssselect(selector))
    except SelectorError as error:
        raise EntryError(origin, f"bad CSS selector {selector!r}: {error}") from None


def _selected_text(root: lxml_html.HtmlElement, selector: str | None, origin: str) -> str:
    if not selector:
        return ""
    picked = _select(root, selector, origin)
    if not picked:
        return ""
    element = picked[0]
    for attribute in ("datetime", "content"):
        if element.get(attribute):
            return str(element.get(attribute))
    return str(element.text_content())


def _meta(root: lxml_html.HtmlElement) -> dict[str, list[str]]:
    """<meta property|name|itemprop=... content=...>, every value of each name, in order."""
    found: dict[str, list[str]] = {}
    for element in root.iter("meta"):
        name = element.get("property") or element.get("name") or element.get("itemprop")
        content = element.get("content")
        if name and content and content.strip():
            found.setdefault(name.strip().lower(), []).append(content.strip())
    return found


def _first(meta: dict[str, list[str]], names: tuple[str, ...]) -> str | None:
    return next((meta[name][0] for name in names if meta.get(name)), None)


def _json_ld(root: lxml_html.HtmlElement) -> dict[str, Any]:
    """The first schema.org Article-like object of the page's JSON-LD, {} when there is none."""
    for script in root.iter("script"):
        if (script.get("type") or "").strip().lower() != "application/ld+json":
            continue
        try:
            data = json.loads(script.text or "")
        except ValueError:
            continue
        for node in _ld_nodes(data):
            if "headline" in node or "datePublished" in node:
                return node
    return {}


def _ld_nodes(data: object) -> Iterator[dict[str, Any]]:
    if isinstance(data, list):
        for item in data:
            yield from _ld_nodes(item)
    elif isinstance(data, dict):
        yield data
        yield from _ld_nodes(data.get("@graph"))


def _published(
    root: lxml_html.HtmlElement,
    selector: str | None,
    *,
    meta: dict[str, list[str]],
    linked: dict[str, Any],
    zone: tzinfo,
    origin: str,
) -> datetime | None:
    """The selector's date, then the meta tags, then JSON-LD, then a <time datetime>: a
    <time> may as well date a comment or a sidebar link, so it comes last."""
    candidates = [_selected_text(root, selector, origin), _first(meta, _PUBLISHED_META)]
    candidates.append(string_or_none(linked.get("datePublished")))
    for path in ("//article//time[@datetime]", "//time[@datetime]"):
        found = root.xpath(path)
        elements = found if isinstance(found, list) else []
        candidates += [str(e.get("datetime")) for e in elements if isinstance(e, etree._Element)]
    return next((date for text in candidates if (date := parse_date(text, zone))), None)


def _content(
    root: lxml_html.HtmlElement,
    selector: str | None,
    document: Document,
    title: str,
    base: str | None,
) -> str:
    """The selector's inner HTML (several matches: their outer HTML, joined), else the main
    content trafilatura finds."""
    if selector:
        picked = _select(root, selector, document.origin)
        if not picked:
            raise EntryError(document.origin, f"content selector {selector!r} matched nothing")
        if len(picked) == 1:
            inner = [lxml_html.tostring(child, encoding="unicode") for child in picked[0]]
            body = (picked[0].text or "") + "".join(inner)
        else:
            body = "".join(
                lxml_html.tostring(element, encoding="unicode", with_tail=False)
                for element in picked
            )
        return absolutize_html(body.strip(), base)
    import trafilatura  # noqa: PLC0415 - a heavy import, needed only for pages without a selector

    extracted = trafilatura.extract(
        lxml_html.tostring(root, encoding="unicode"),
        url=base,
        output_format="html",
        include_images=True,
        include_links=True,
        include_comments=False,
        include_tables=True,
    )
    if not extracted:
        raise EntryError(document.origin, "no main content found")
    return _trafilatura_body(extracted, title, base)


def _trafilatura_body(extracted: str, title: str, base: str | None) -> str:
    """The <body> trafilatura wraps its output in, less a leading heading repeating the title."""
    body = lxml_html.document_fromstring(extracted).find("body")
    if body is None:
        return ""
    first = body[0] if len(body) else None
    if first is not None and first.tag in ("h1", "h2"):
        heading = etree.tostring(first, method="text", encoding="unicode", with_tail=False)
        if plain_text(heading) == title:
            body.remove(first)
    inner = "".join(lxml_html.tostring(child, encoding="unicode") for child in body)
    return absolutize_html(((body.text or "") + inner).strip(), base)


def _author(meta: dict[str, list[str]], linked: dict[str, Any]) -> str | None:
    """The first author that is a name: article:author is often a profile URL."""
    author = linked.get("author")
    if isinstance(author, list):
        author = author[0] if author else None
    if isinstance(author, dict):
        author = author.get("name")
    names = [value for name in _AUTHOR_META for value in meta.get(name, [])]
    names.append(string_or_none(author) or "")
    return next(
        (plain_text(name) for name in names if plain_text(name) and not is_web_url(name)), None
    )


def _image(meta: dict[str, list[str]], linked: dict[str, Any], base: str | None) -> str | None:
    image = _first(meta, _IMAGE_META) or linked.get("image")
    if isinstance(image, list):
        image = image[0] if image else None
    if isinstance(image, dict):
        image = image.get("url")
    url = absolute_url(image, base) if isinstance(image, str) and image.strip() else None
    return url if url and is_web_url(url) else None


def _split_keywords(values: list[str]) -> list[str]:
    unified = (value.replace("，", ",").replace("、", ",") for value in values)
    return [part for value in unified for part in value.split(",")]
