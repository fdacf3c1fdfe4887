"""The clean stage: strip junk from an article body, sanitize it and derive its plain text.

One lxml parse, every rule applied to that tree, one serialization (two when tidying turned
out to have work), the plain text read from it, then nh3 as the last and unconditional step:
whatever fails before it, nothing leaves here that nh3 has not sanitized. Patterns and tables
live in rules.py, per-element rules in links.py, text rules in
text.py, block edges in edges.py, the plain text in lines.py, Rust regex scans in scan.py.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from functools import lru_cache
from html import unescape

import nh3
from lxml import etree
from lxml.cssselect import CSSSelector

from aggregator.clean import rules as cr
from aggregator.clean.audit import Audit
from aggregator.clean.depth import MAX_DEPTH, bound_depth
from aggregator.clean.edges import tidy, untidy
from aggregator.clean.lines import markup_lines, summary, text_lines
from aggregator.clean.links import attribute_rule, clean_url, fix_image, fix_link
from aggregator.clean.text import active_text_rules, apply_text_rules, drop, text_length
from aggregator.models import CleanedHtml
from aggregator.urls import is_web_url

__all__ = ["clean_html"]

_Element = etree._Element
_NO_ATTRIBUTES: frozenset[str] = frozenset()
# Rules judged by class, id or style: an element holding most of the text is never dropped by
# them (WeChat, for one, hides the whole article until a script reveals it).
_CONTAINER_RULES = frozenset(
    {*cr.JUNK_TOKENS.values(), *(rule for _, rule in cr.JUNK_PREFIXES), "hidden"}
)
# Elements the walk must look at even without attributes.
_WALK_TAGS = frozenset({*cr.DROP_TAGS, "img", "a"})
_FORM_FEED_TO_SPACE = bytes.maketrans(b"\x0c", b" ")
# A character reference to a C0 control that is not whitespace (dropped like the raw byte), or
# to a form feed (a space): decimal 0-8, 11, 12, 14-31; hex 0-8, b, c, e, f, 10-1f.
_CONTROL_REFERENCE = re.compile(
    r"&#(?:0*([0-8]|1[124-9]|2[0-9]|3[01])(?![0-9])"
    r"|[xX]0*([0-8bBcCeEfF]|1[0-9a-fA-F])(?![0-9a-fA-F]));?"
)
_SANITIZER = nh3.Cleaner(**cr.NH3_OPTIONS)
_local = threading.local()  # lxml parsers must not be shared between threads


def clean_html(
    html: str,
    base_url: str | None,
    *,
    drop_selectors: Sequence[str] = (),
    drop_text: Sequence[str] = (),
    max_depth: int = MAX_DEPTH,
) -> CleanedHtml:
    """Clean one article body. `base_url` resolves relative links and images (None: relative
    images are dropped). `drop_selectors` are extra CSS selectors to remove; `drop_text` are
    regexes: a leaf block (one holding no other block) whose text matches one is removed.
    Tags nested deeper than `max_depth` are dropped, their text kept (rule "depth-limit").
    Raises ValueError for an invalid selector or regex, never for bad HTML."""
    selectors, patterns = _compile(tuple(drop_selectors), tuple(drop_text))
    if not html or html.isspace():
        return CleanedHtml(html="", text="", summary="", images=(), rules=())
    rules = Audit()
    html, too_deep = bound_depth(html, max_depth)
    if too_deep:
        rules.add("depth-limit")
    # Whether the input looks untidy: then tidy walks before the one serialization, instead of
    # after a first one showing it has work. (Rust's scan, first, also leaves on the string the
    # UTF-8 the parser's encode then reuses.)
    walk_tidy = untidy(html)
    try:
        root = _parse(html)
        if "<!--" in html:
            rules.add("comment")  # the parser dropped them
        for selector in selectors:
            found = selector(root)
            for el in found if isinstance(found, list) else []:
                if isinstance(el, _Element) and el is not root:
                    rules.add("drop-selector", el)
                    drop(el)
        _walk(root, base_url, rules)
        active, hints = active_text_rules(root)
        if patterns or active:
            apply_text_rules(root, active, hints, patterns, rules)
        if walk_tidy:
            tidy(root, rules)
            markup = etree.tostring(root, encoding="unicode", method="html")
        else:
            markup = etree.tostring(root, encoding="unicode", method="html")
            if tidy(root, rules, markup):
                markup = etree.tostring(root, encoding="unicode", method="html")
        images = tuple(img.get("src") or "" for img in root.iter("img"))
        lines = text_lines(root) if root.tail else markup_lines(markup)
        safe = _SANITIZER.clean(markup).strip()
    except Exception as exc:  # any failure still ends in nh3, on the original input
        return _fallback(html, base_url, exc)
    return CleanedHtml(
        safe, "\n".join(lines), summary(lines), images, rules.names(), removed=rules.hits()
    )


@lru_cache(maxsize=256)
def _compile(
    selectors: tuple[str, ...], patterns: tuple[str, ...]
) -> tuple[tuple[CSSSelector, ...], tuple[re.Pattern[str], ...]]:
    try:
        compiled_selectors = tuple(CSSSelector(selector) for selector in selectors)
    except Exception as exc:  # cssselect raises its own SelectorError family
        raise ValueError(f"invalid drop selector: {exc}") from exc
    try:
        return compiled_selectors, tuple(re.compile(pattern) for pattern in patterns)
    except re.error as exc:
        raise ValueError(f"invalid drop_text pattern {exc.pattern!r}: {exc}") from exc


def _control_replacement(match: re.Match[str]) -> str:
    decimal, hexadecimal = match.groups()
    code = int(decimal) if decimal is not None else int(hexadecimal, 16)
    return " " if code == 0x0C else ""


def _parse(html: str) -> _Element:
    parser = getattr(_local, "parser", None)
    if parser is None:
        # huge_tree: unclosed <font>/<b> runs in old CMS output nest past libxml2's default depth
        # limit of 256, which would silently cut the article; input size is bounded upstream.
        parser = _local.parser = etree.HTMLParser(
            encoding="utf-8",
            remove_comments=True,
            remove_pis=True,
            no_network=True,
            collect_ids=False,
            huge_tree=True,
        )
    # Bytes parse faster (lxml encodes str anyway), and control bytes never occur inside UTF-8
    # sequences, so one translate drops them (faster than a scan for them, even on a text free
    # of them); lone surrogates become "?". A form feed, which HTML counts as
    # whitespace, becomes a space. libxml2 keeps both in text, raw or as a reference, and lxml
    # refuses to set a text holding one: any later edit of that text (dropping a neighbour,
    # trimming an edge) would fail, and the article fall back to bare sanitizing.
    if "&#" in html:
        html = _CONTROL_REFERENCE.sub(_control_replacement, html)
    data = b"<html><body>" + html.encode("utf-8", "replace") + b"</body></html>"
    data = data.translate(_FORM_FEED_TO_SPACE, cr.CONTROL_BYTES)
    document = etree.fromstring(data, parser)
    body: _Element | None = next(document.iterchildren("body"), None)  # find() parses a path
    error = parser.error_log.last_error
    if body is None or (error is not None and error.level == etree.ErrorLevels.FATAL):
        raise ValueError(f"libxml2 gave up: {error}")  # e.g. nesting deeper than 2048
    return body


def _walk(root: _Element, base: str | None, rules: Audit) -> None:
    """One pass: junk elements dropped (their subtrees never visited), image and link URLs
    fixed, attributes reduced to the allow-list."""
    drops: list[_Element] = []
    link_blocks: list[tuple[_Element, str]] = []
    total_text = -1
    dropped: _Element | None = None  # the last drop: its subtree follows it in document order
    for el in root.iter():
        tag = el.tag
        if tag in cr.PASS_TAGS:  # left for nh3 to unwrap, attributes and all
            continue
        if tag not in _WALK_TAGS and not el.attrib and isinstance(tag, str):
            continue  # a plain element no rule looks at: the common case, kept cheap
        if dropped is not None:
            if _inside(el, dropped, root):
                continue
            dropped = None
        if el is root:
            continue
        keys = el.keys()
        rule = cr.DROP_TAGS.get(tag) if isinstance(tag, str) else "comment"
        if rule is None and keys:
            rule = attribute_rule(el, keys)
            if rule in _CONTAINER_RULES and (size := text_length(el)) >= cr.WRAPPER_MIN_CHARS:
                total_text = text_length(root) if total_text < 0 else total_text
                # A wrapper of the article itself, whatever its class says: it holds most of
                # a long text, or all of a short one.
                if size >= total_text or (
                    size >= cr.JUNK_MIN_CHARS and size > total_text * cr.JUNK_MAX_SHARE
                ):
                    rule = None
            too_long = rule == "cta-button" and text_length(el) > cr.CTA_MAX_CHARS
            if too_long or (rule in cr.BLOCK_ONLY_RULES and tag in cr.INLINE_TAGS):
                rule = None
        if rule is None and tag == "img":
            rule = fix_image(el, base, rules)
            keys = el.keys()  # it may have removed some (an unsafe src)
        elif rule is None and tag == "a":
            rule = fix_link(el, base, rules)
            keys = el.keys()  # it may have removed some (an unsafe href, an unwrapped link)
            if rule in cr.LINK_BLOCK_RULES and (block := _link_block(el, root)) is not None:
                link_blocks.append((block, rule))
        if rule is not None:
            rules.add(rule, el)
            drops.append(el)
            dropped = el
            continue
        if keys:
            allowed = cr.ALLOWED_ATTRIBUTES.get(tag, _NO_ATTRIBUTES)
            if not allowed:
                el.attrib.clear()  # nothing read or changed them since `keys`: one call
                continue
            for name in keys:
                if name not in allowed:
                    del el.attrib[name]
    for el in drops:
        drop(el)
    for block, rule in link_blocks:
        if block.getparent() is not None and text_length(block) <= cr.LINK_BLOCK_RULES[rule]:
            rules.add(rule, block)
            drop(block)


def _inside(el: _Element, ancestor: _Element, root: _Element) -> bool:
    parent = el.getparent()
    while parent is not None and parent is not root:
        if parent is ancestor:
            return True
        parent = parent.getparent()
    return False


def _link_block(a: _Element, root: _Element) -> _Element | None:
    """The nearest block around a link, below the root."""
    el = a.getparent()
    while el is not None and el is not root:
        if el.tag in cr.LINK_BLOCK_TAGS:
            return el
        el = el.getparent()
    return None


def _fallback(html: str, base_url: str | None, exc: Exception) -> CleanedHtml:
    """Degraded path: nh3 alone on the original input, URLs still made absolute."""

    def fix_url(tag: str, attribute: str, value: str) -> str | None:
        if attribute not in ("href", "src"):
            return value
        url = clean_url(value, base_url)[0]
        return url if url and (attribute == "href" or is_web_url(url)) else None

    try:
        safe = nh3.Cleaner(attribute_filter=fix_url, **cr.NH3_OPTIONS).clean(html).strip()
    except Exception:  # nothing unsanitized may leave, so nothing at all
        safe = ""
    try:
        root = _parse(safe)
        lines = text_lines(root)
        images = tuple(src for img in root.iter("img") if is_web_url(src := img.get("src") or ""))
    except Exception:  # libxml2 gave up on it too: the text without its structure
        lines = [" ".join(unescape(nh3.clean(safe, tags=set())).split())] if safe else []
        images = ()
    return CleanedHtml(
        safe, "\n".join(lines), summary(lines), images, (f"error:{type(exc).__name__}",)
    )
