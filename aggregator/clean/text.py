"""Text-level rules of the clean stage: credit lines, tidying of block edges, plain text and
summary."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import cast

from lxml import etree

from aggregator.clean import rules as cr
from aggregator.clean.audit import Audit
from aggregator.clean.text_rules import TEXT_RULES, TextRule

_Element = etree._Element
# lxml-stubs only know iterwalk through __getattr__
_iterwalk = cast(Callable[..., Iterator[tuple[str, _Element]]], etree.iterwalk)
_EMPTY_TAGS = frozenset(cr.EMPTY_BLOCK_TAGS)
_TIDY_TAGS = tuple(sorted(_EMPTY_TAGS | cr.TRIM_TAGS))
_HINTS = tuple(sorted({hint for rule in TEXT_RULES for hint in rule.hints}))
_TEXT_NODES = etree.XPath(".//text()")
_BREAK = "\x00"  # block boundary while building text; the parser never yields NUL


def active_text_rules(root: _Element) -> tuple[tuple[TextRule, ...], tuple[str, ...]]:
    """The generic text rules whose hints occur in the article's text, and those hints. Checked
    on the text left after the junk walk, not on the raw HTML: a third of the size, no markup."""
    flat = str(etree.tostring(root, method="text", encoding="unicode")).lower()
    present = {hint for hint in _HINTS if hint in flat}
    if not present:
        return (), ()
    rules = tuple(rule for rule in TEXT_RULES if present.intersection(rule.hints))
    return rules, tuple(sorted(present))


def apply_text_rules(
    root: _Element,
    active: Sequence[TextRule],
    hints: tuple[str, ...],
    patterns: Sequence[re.Pattern[str]],
    audit: Audit,
) -> None:
    """Drop leaf blocks matched by an active generic rule or a per-source `drop_text` pattern.
    Patterns and rules see the block's text with whitespace collapsed and edges trimmed, so
    `^来源：` matches an indented paragraph too."""
    candidates = root.iter(*cr.TEXT_RULE_TAGS) if patterns else _candidates(root, hints)
    matches: list[tuple[_Element, str]] = []
    for el in candidates:
        if next(el.iterdescendants(*cr.STRUCTURAL_TAGS), None) is not None:
            continue  # a wrapper of paragraphs never goes, only the paragraph itself
        text = " ".join(text_of(el).split())
        rule = next(
            (r for r in active if len(text) <= r.max_chars and r.pattern.search(text)), None
        )
        if rule is not None:
            matches.append((el, rule.name))
            if rule.and_list and (following := _list_after(el, root)) is not None:
                matches.append((following, rule.name))
        elif any(pattern.search(text) for pattern in patterns):
            matches.append((el, "drop-text"))
    for el, name in matches:
        audit.add(name, el)
        drop(el)


def _list_after(heading: _Element, root: _Element) -> _Element | None:
    """The list right after a heading, or after the wrappers that hold only that heading."""
    el = heading
    while el.getnext() is None and (parent := el.getparent()) is not None and parent is not root:
        if len(parent) != 1:
            return None
        el = parent
    following = el.getnext()
    return following if following is not None and following.tag in ("ul", "ol") else None


def _candidates(root: _Element, hints: tuple[str, ...]) -> list[_Element]:
    """Without per-source patterns only blocks around a hint can match: found by one XPath
    query instead of rendering the text of every block."""
    found: dict[_Element, None] = {}  # ordered, and membership in O(1)
    for hit in _TEXT_NODES(root):  # type: ignore[union-attr]
        if not isinstance(hit, etree._ElementUnicodeResult):
            continue
        lowered = hit.lower()
        if not any(hint in lowered for hint in hints):
            continue
        el = hit.getparent()
        el = el.getparent() if el is not None and hit.is_tail else el
        while el is not None and el is not root and el not in found:
            if el.tag in cr.TEXT_RULE_TAGS:
                found[el] = None
            el = el.getparent()
    return list(found)


def tidy(root: _Element, rules: Audit) -> None:
    """Trim block edges, then drop blocks left empty. Reverse document order visits children
    before their parents, so one pass removes nested empties."""
    for el in reversed(list(root.iter(*_TIDY_TAGS))):
        tag = el.tag
        text = trim(el) if tag in cr.TRIM_TAGS else el.text
        if tag in _EMPTY_TAGS and not (text and text.strip(cr.EDGE_WHITESPACE)) and not len(el):
            rules.add("empty-block")
            drop(el, keep_text=tag in cr.INLINE_TAGS)  # keeps a lone space between words


def trim(el: _Element) -> str | None:
    """Strip whitespace (U+3000 indentation included) and <br> runs at both edges of a block,
    and indentation after each <br>. Returns the new leading text: lxml decodes .text on every
    access, so it is read once."""
    ws = cr.EDGE_WHITESPACE
    original = el.text
    text = original.lstrip(ws) if original else ""
    while not text and len(el) and el[0].tag == "br":
        text = (el[0].tail or "").lstrip(ws)
        el.remove(el[0])
    if not text and len(el) and el[0].tag in cr.INLINE_TAGS and not len(el[0]) and el[0].text:
        el[0].text = el[0].text.lstrip(ws)
    for child in el:
        if child.tag == "br" and child.tail:
            child.tail = child.tail.lstrip(ws) or None
    while len(el) and el[-1].tag == "br" and not (el[-1].tail or "").strip(ws):
        el.remove(el[-1])
    if not len(el):
        text = text.rstrip(ws)
    elif el[-1].tail:
        el[-1].tail = el[-1].tail.rstrip(ws) or None
    elif el[-1].tag in cr.INLINE_TAGS and not len(el[-1]) and el[-1].text:
        el[-1].text = el[-1].text.rstrip(ws)
    if text != (original or ""):
        el.text = text or None
    return text or None


def drop(el: _Element, keep_text: bool = False) -> None:
    """Remove `el` and its subtree, keeping its tail (and with keep_text, for a childless
    element, its text) in place."""
    parent = el.getparent()
    if parent is None:
        return
    kept = ((el.text or "") if keep_text else "") + (el.tail or "")
    if kept:
        append_text(parent, el.getprevious(), kept)
    parent.remove(el)


def append_text(parent: _Element, previous: _Element | None, text: str) -> None:
    existing = (parent.text if previous is None else previous.tail) or ""
    if text.isspace() and (not existing or existing[-1].isspace()):
        return  # whitespace next to whitespace: removed junk must not leave blank runs behind
    if previous is None:
        parent.text = existing + text
    else:
        previous.tail = existing + text


def text_of(el: _Element) -> str:
    return str(etree.tostring(el, method="text", encoding="unicode", with_tail=False))


def text_length(el: _Element) -> int:
    return len("".join(text_of(el).split()))


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
    lines = []
    for raw in "".join(parts).split(_BREAK):
        if "\u3000" in raw:  # a visible CJK space inside a line, which str.split() would eat
            line = cr.INNER_WHITESPACE.sub(" ", raw).strip(cr.EDGE_WHITESPACE)
        else:
            line = " ".join(raw.split()).strip(cr.EDGE_WHITESPACE)
        if line:
            lines.append(line)
    return lines


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
