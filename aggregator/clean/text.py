"""Text-level rules of the clean stage (credit lines, page tools, related headings...), and
the helpers that remove elements and measure their text."""

from __future__ import annotations

import re
from collections.abc import Sequence

from lxml import etree

from aggregator.clean import rules as cr
from aggregator.clean.audit import Audit
from aggregator.clean.text_rules import TEXT_RULES, TextRule

_Element = etree._Element
_HINTS = tuple(sorted({hint for rule in TEXT_RULES for hint in rule.hints}))
_ASCII_HINTS = tuple((hint, hint.encode()) for hint in _HINTS if hint.isascii())
_CJK_HINTS = tuple(
    (first, tuple(hint for hint in _HINTS if not hint.isascii() and hint[0] == first))
    for first in sorted({hint[0] for hint in _HINTS if not hint.isascii()})
)
_NON_ASCII_BYTES = bytes(range(0x80, 0x100))
_TEXT_NODES = etree.XPath(".//text()")


def active_text_rules(root: _Element) -> tuple[tuple[TextRule, ...], tuple[str, ...]]:
    """The generic text rules whose hints occur in the article's text, and those hints. Checked
    on the text left after the junk walk, not on the raw HTML: a third of the size, no markup."""
    present = _present_hints(etree.tostring(root, method="text", encoding="utf-8"))
    if not present:
        return (), ()
    rules = tuple(rule for rule in TEXT_RULES if present.intersection(rule.hints))
    return rules, tuple(sorted(present))


def _present_hints(flat: bytes) -> set[str]:
    """The hints in the lowercased text, found without lowercasing all of it: hints hold no
    cased letter but ASCII ones, so ASCII lowercasing (bytes.lower) finds the same ones, save
    for the two letters str.lower turns into ASCII (checked). Each hint is a full scan of the
    text, so in CJK text the ASCII hints are looked for in its few ASCII characters first and
    the CJK hints only when their first character (a fast one-character scan) occurs."""
    lowered = flat.lower()
    if lowered.isascii():
        return {hint for hint, key in _ASCII_HINTS if key in lowered}
    text = lowered.decode()
    if "\u0130" in text or "\u212a" in text:  # İ and the Kelvin sign: str.lower gives i, k
        text = text.lower()
        return {hint for hint in _HINTS if hint in text}
    ascii_only = lowered.translate(None, _NON_ASCII_BYTES)
    present = {hint for hint, key in _ASCII_HINTS if key in ascii_only and hint in text}
    for first, hints in _CJK_HINTS:
        if first in text:
            present.update(hint for hint in hints if hint in text)
    return present


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
