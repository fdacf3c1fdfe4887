"""The plain text of a cleaned article, line by line, and its summary."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from html import unescape
from typing import cast

from lxml import etree

from aggregator.clean import rules as cr

_Element = etree._Element
# lxml-stubs only know iterwalk through __getattr__
_iterwalk = cast(Callable[..., Iterator[tuple[str, _Element]]], etree.iterwalk)
_BREAK = "\x00"  # block boundary while building text; the parser never yields NUL
_BREAK_TAG = re.compile(
    "<(?:/?(?:" + "|".join(sorted(cr.TEXT_BLOCK_TAGS)) + ")|br)(?=[\\s/>])[^>]*>"
)
_ANY_TAG = re.compile("<[^>]*>")
_ASCII_ODD_SPACES = tuple(space for space in cr.ODD_SPACES if space.isascii())


def text_lines(root: _Element) -> list[str]:
    parts: list[str] = []
    blocks = cr.TEXT_BLOCK_TAGS
    for event, el in _iterwalk(root, events=("start", "end")):
        if event == "start":
            if el.tag in blocks or el.tag == "br":
                parts.append(_BREAK)
            if el.text:
                parts.append(el.text)
        else:
            if el.tag in blocks:
                parts.append(_BREAK)
            if el.tail and el is not root:
                parts.append(el.tail)
    return _lines("".join(parts))


def markup_lines(markup: str) -> list[str]:
    """text_lines of the element lxml serialized (HTML method, without a tail) as `markup`.
    That serialization adds only tags and the escapes of &, < and > (also inside attribute
    values), so two substitutions and an unescape recover the text at C speed, where walking
    the tree costs a Python step and a string decode per node. (It leaves out the end tag of
    an empty <li>, whose break would stand next to its start tag's.)"""
    flat = _ANY_TAG.sub("", _BREAK_TAG.sub(_BREAK, markup))
    return _lines(unescape(flat) if "&" in flat else flat)


def _lines(flat: str) -> list[str]:
    edge = cr.EDGE_WHITESPACE
    if not _collapsible(flat):
        # Single spaces only (the usual case): nothing to collapse, only line edges to strip.
        return [line for raw in flat.split(_BREAK) if (line := raw.strip(edge))]
    if "\u3000" not in flat:
        # Whitespace runs collapse alike on the whole text, and a run left at a line's edge
        # is stripped with it.
        return [line for raw in " ".join(flat.split()).split(_BREAK) if (line := raw.strip(edge))]
    lines = []
    for raw in flat.split(_BREAK):
        if "\u3000" in raw:  # a visible CJK space inside a line, which str.split() would eat
            line = cr.INNER_WHITESPACE.sub(" ", raw).strip(edge)
        else:
            line = " ".join(raw.split()).strip(edge)
        if line:
            lines.append(line)
    return lines


def _collapsible(flat: str) -> bool:
    """Whether " ".join(flat.split()) would change anything but the edges of lines, by
    one-character scans (memchr), far cheaper than splitting the text into words."""
    spaces = _ASCII_ODD_SPACES if flat.isascii() else cr.ODD_SPACES
    return "  " in flat or any(space in flat for space in spaces)


def summary(lines: Sequence[str]) -> str:
    """About SUMMARY_LENGTH characters, cut between words in spaced scripts, anywhere in CJK."""
    flat, limit = " ".join(lines), cr.SUMMARY_LENGTH
    if len(flat) <= limit:
        return flat
    cut = flat[:limit]
    if cr.SPACED_LETTER.match(flat[limit - 1 : limit + 1]):
        space = cut.rfind(" ")
        cut = cut[:space] if space > limit // 2 else cut  # a giant token (a URL) is cut anywhere
    return cut.rstrip(cr.EDGE_WHITESPACE + ",;:、，；：") + cr.ELLIPSIS
