"""Tidying of block edges in the clean stage: whitespace and <br> runs trimmed at the edges of
blocks, blocks left empty dropped."""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree

from aggregator.clean import rules as cr
from aggregator.clean.audit import Audit
from aggregator.clean.scan import Scan, escape
from aggregator.clean.text import drop

_Element = etree._Element
_EMPTY_TAGS = frozenset(cr.EMPTY_BLOCK_TAGS)
_TIDY_TAGS = tuple(sorted(_EMPTY_TAGS | cr.TRIM_TAGS))
_EDGE = frozenset(cr.EDGE_WHITESPACE)
# In a serialization, where tidy may find work: whitespace, a <br> or an end tag right after
# the start tag of an element it trims, empties or strips the text of, whitespace or an end
# tag right after a <br>; whitespace right before any end tag. Two scans: each starts with
# a literal ("<", "</") that Rust's regex finds at memchr speed, which their union does not.
_WS = "".join(escape(char) for char in cr.EDGE_WHITESPACE)
_UNTIDY_START = Scan(
    "<(?:(?:{names})(?:>|\\s[^>]*>)(?:[{ws}]|<br|</)|br>(?:[{ws}]|</))".format(
        names="|".join(sorted({*_TIDY_TAGS, *cr.INLINE_TAGS})), ws=_WS
    )
)
_UNTIDY_END = Scan(f"[{_WS}]</")


def tidy(root: _Element, rules: Audit, markup: str | None = None) -> bool:
    """Trim block edges, then drop blocks left empty; True when the tree changed. Reverse
    document order visits children before their parents, so one pass removes nested empties.
    `markup`, root's serialization, lets a tidy tree skip the walk (see untidy)."""
    if markup is not None and not untidy(markup):
        return False
    edge = _EDGE
    changed = False
    for el in reversed(list(root.iter(*_TIDY_TAGS))):
        text = el.text
        if text and text[0] not in edge and text[-1] not in edge and not len(el):
            continue  # text with clean edges and no children: nothing to trim, not empty
        tag = el.tag
        if tag in cr.TRIM_TAGS:
            text, trimmed = trim(el)
            changed = changed or trimmed
        if tag in _EMPTY_TAGS and not (text and text.strip(cr.EDGE_WHITESPACE)) and not len(el):
            rules.add("empty-block")
            drop(el, keep_text=tag in cr.INLINE_TAGS)  # keeps a lone space between words
            changed = True
    return changed


def untidy(markup: str) -> bool:
    """Whether tidy may find work in the tree serialized as `markup`: whitespace, a <br> or
    an end tag right after the start tag of an element it trims, empties or strips the text
    of, whitespace or an end tag right after a <br>, whitespace right before an end tag, or an
    empty <li> (libxml2 writes it without its end tag). On an input before parsing, only a
    guess at whether its tree will be."""
    if _UNTIDY_START(markup) or _UNTIDY_END(markup):
        return True
    return "<li" in markup and markup.count("<li>") + markup.count("<li ") != markup.count("</li>")


def trim(el: _Element) -> tuple[str | None, bool]:
    """Strip whitespace (U+3000 indentation included) and <br> runs at both edges of a block,
    and indentation after each <br>. Returns the new leading text (lxml decodes .text on every
    access, so it is read once) and whether anything changed."""
    ws = cr.EDGE_WHITESPACE
    original = el.text
    text = original.lstrip(ws) if original else ""
    changed = False
    while not text and len(el) and el[0].tag == "br":
        text = (el[0].tail or "").lstrip(ws)
        el.remove(el[0])
        changed = True
    if not text and len(el) and el[0].tag in cr.INLINE_TAGS and not len(el[0]) and el[0].text:
        changed = _set(el[0], "text", str.lstrip) or changed
    for child in el:
        if child.tag == "br" and child.tail:
            changed = _set(child, "tail", str.lstrip) or changed
    while len(el) and el[-1].tag == "br" and not (el[-1].tail or "").strip(ws):
        el.remove(el[-1])
        changed = True
    if not len(el):
        text = text.rstrip(ws)
    elif el[-1].tail:
        changed = _set(el[-1], "tail", str.rstrip) or changed
    elif el[-1].tag in cr.INLINE_TAGS and not len(el[-1]) and el[-1].text:
        changed = _set(el[-1], "text", str.rstrip) or changed
    if text != (original or ""):
        el.text = text or None
        changed = True
    return text or None, changed


def _set(el: _Element, name: str, strip: Callable[[str, str], str]) -> bool:
    """Strip el's text or tail; whether it changed."""
    value: str = getattr(el, name)
    stripped = strip(value, cr.EDGE_WHITESPACE)
    setattr(el, name, stripped or None if name == "tail" else stripped)
    return stripped != value
