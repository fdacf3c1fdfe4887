"""Text-level rules of the clean stage (credit lines, page tools, related headings...), and
the helpers that remove elements and measure their text."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from lxml import etree

from aggregator.clean import rules as cr
from aggregator.clean.audit import Audit
from aggregator.clean.scan import Scan, any_of
from aggregator.clean.text_rules import TEXT_RULES, TextRule

_Element = etree._Element
_HINTS = tuple(sorted({hint for rule in TEXT_RULES for hint in rule.hints}))
# Hints hold no cased letter but ASCII ones, so matching them with ASCII letters in either case
# is finding them in the lowercased text, save where str.lower turns a letter outside ASCII
# into an ASCII one: İ (U+0130) and the Kelvin sign (U+212A), which the scans also report so
# their text takes the lowercasing path.
_ODD_LOWER = ("\u0130", "\u212a")
_ANY_HINT = any_of(_HINTS, ascii_case=True, also=_ODD_LOWER)
_RULE_HINTS = tuple((rule, any_of(rule.hints, ascii_case=True)) for rule in TEXT_RULES)
_TEXT_NODES = etree.XPath(".//text()")
_STRUCTURAL = frozenset(cr.STRUCTURAL_TAGS)


def active_text_rules(root: _Element) -> tuple[tuple[TextRule, ...], tuple[str, ...]]:
    """The generic text rules whose hints occur in the article's text, and hints to find the
    blocks they may match (a hint absent from the text is in none of its blocks). Checked on
    the text left after the junk walk, not on the raw HTML: a third of the size, no markup."""
    flat = str(etree.tostring(root, method="text", encoding="unicode"))
    if not _ANY_HINT(flat):
        return (), ()
    if any(letter in flat for letter in _ODD_LOWER):
        lowered = flat.lower()
        present = {hint for hint in _HINTS if hint in lowered}
        rules = tuple(rule for rule in TEXT_RULES if present.intersection(rule.hints))
        return rules, tuple(sorted(present))
    rules = tuple(rule for rule, has_hint in _RULE_HINTS if has_hint(flat))
    return rules, tuple(sorted({hint for rule in rules for hint in rule.hints}))


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
        # A wrapper of paragraphs never goes, only the paragraph itself. (iterdescendants with
        # tags sets up a matcher for them on every call, which costs more than this loop.)
        if any(child.tag in _STRUCTURAL for child in el.iterdescendants()):
            continue
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
    may_hold = _hint_scan(hints)  # a quick filter: only its hits are lowercased and checked
    for hit in _TEXT_NODES(root):  # type: ignore[union-attr]
        if not isinstance(hit, etree._ElementUnicodeResult) or not may_hold(hit):
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


@lru_cache(maxsize=64)
def _hint_scan(hints: tuple[str, ...]) -> Scan:
    return any_of(hints, ascii_case=True, also=_ODD_LOWER)


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
