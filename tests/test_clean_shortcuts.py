"""The clean stage's shortcuts give the answers of the long way round, on generated trees:
tidy skips only trees where its walk changes nothing, the text read from the serialized markup
equals the text read from the tree, the Rust scans find the hints lowercasing finds."""

from __future__ import annotations

import copy
import random

import pytest
from lxml import etree

from aggregator.clean import _parse, clean_html
from aggregator.clean import rules as clean_rules
from aggregator.clean.audit import Audit
from aggregator.clean.edges import tidy
from aggregator.clean.lines import markup_lines, text_lines
from aggregator.clean.scan import any_of
from aggregator.clean.text import _HINTS, active_text_rules
from aggregator.clean.text_rules import TEXT_RULES

_TAGS = [
    "p", "div", "span", "a", "b", "em", "font", "li", "ul", "h2", "blockquote", "td", "code",
    "figure", "figcaption", "section", "pre", "sub", "dl", "dt", "center", "o:p", "table",
]  # fmt: skip
_TEXT = ["x", "word", "二维码", "a & b", "1 < 2", "&nbsp;", "\u3000", " ", "\n", "\xa0y", "\u200b"]


def _markup(rng: random.Random, depth: int = 0) -> str:
    parts = []
    for _ in range(rng.randint(0, 3 if depth < 4 else 1)):
        roll = rng.random()
        if roll < 0.4 or depth > 5:
            # Mostly words without whitespace: trees tidy has nothing to do in are the point.
            parts.append(rng.choice(_TEXT) if rng.random() < 0.2 else rng.choice(_TEXT[:4]))
        elif roll < 0.5:
            parts.append(rng.choice(["<br>", "<img src='https://e.com/a.png'>", "<hr>"]))
        else:
            tag = rng.choice(_TAGS)
            parts.append(f"<{tag}>{_markup(rng, depth + 1)}</{tag}>")
    return "".join(parts)


@pytest.mark.parametrize("seed", range(3))
def test_tidy_skips_only_what_its_walk_leaves_alone(seed: int) -> None:
    rng = random.Random(seed)
    skipped = 0
    for _ in range(700):
        root = _parse(_markup(rng) or "x")
        walked = copy.deepcopy(root)
        markup = etree.tostring(root, encoding="unicode", method="html")
        audit, walked_audit = Audit(), Audit()
        changed = tidy(root, audit, markup)
        walked_changed = tidy(walked, walked_audit, None)
        after = etree.tostring(walked, encoding="unicode", method="html")
        assert etree.tostring(root, encoding="unicode", method="html") == after, markup
        assert changed == walked_changed == (after != markup), markup
        assert audit.hits() == walked_audit.hits()
        skipped += not changed
    assert skipped > 100


@pytest.mark.parametrize("seed", range(3))
def test_text_from_markup_equals_text_from_tree(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(700):
        root = _parse(_markup(rng) or "x")
        markup = etree.tostring(root, encoding="unicode", method="html")
        assert markup_lines(markup) == text_lines(root), markup


def test_ascii_lowercase_hints_see_what_str_lower_sees() -> None:
    # The Kelvin sign lowercases to "k" and U+0130 to "i" + a dot: hints match as before.
    text = "<p>A long enough article paragraph to keep.</p><p>If you li\u212aed this, follow me</p>"
    result = clean_html(text, None)
    assert result.text == "A long enough article paragraph to keep."
    assert "follow-prompt" in result.rules


def test_odd_spaces_are_what_str_split_splits_on_besides_the_space() -> None:
    spaces = {chr(code) for code in range(0x110000) if chr(code).isspace()}
    assert set(clean_rules.ODD_SPACES) == spaces - {" "}


def test_scans_match_ascii_case_and_nothing_else() -> None:
    scan = any_of(["read more", "广告", "a.b"], ascii_case=True, also=["\u212a"])
    assert scan("x READ More y") and scan("x广告") and scan("A.B") and scan("\u212a")
    assert not scan("read  more") and not scan("axb") and not scan("广 告") and not scan("k")


@pytest.mark.parametrize("seed", range(3))
def test_active_rules_are_the_rules_whose_hints_the_lowercased_text_holds(seed: int) -> None:
    rng = random.Random(seed)
    pieces = [*_HINTS, "if you li\u212aed", "\u0130f you found", "\u212a", "x", " ", "\u3000"]
    pieces += ["读", "<b>", "</b>", "&amp;", "READ <i>more</i>"]
    for _ in range(400):
        words = [rng.choice(pieces) for _ in range(rng.randint(1, 6))]
        markup = "".join(word.upper() if rng.random() < 0.3 else word for word in words)
        root = _parse(f"<p>{markup}</p>")
        lowered = etree.tostring(root, method="text", encoding="unicode").lower()
        expected = [rule for rule in TEXT_RULES if any(hint in lowered for hint in rule.hints)]
        rules, hints = active_text_rules(root)
        assert list(rules) == expected, markup
        assert {hint for hint in _HINTS if hint in lowered} <= set(hints)


def test_control_characters_go_with_or_without_a_lone_surrogate() -> None:
    # A lone surrogate (no UTF-8) beside them changes nothing: they go, it becomes "?".
    assert clean_html("<p>a\x01b\x7fc</p>", None).text == "abc"
    assert clean_html("<p>a\ud800b\x01c</p>", None).text == "a?bc"
    assert clean_html("<p>a\ud800b</p>", None).text == "a?b"


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        (
            '<p>Words before. <a href="/rel" class="y">the link text</a> after.</p>',
            "relative-link-unwrapped",
        ),
        (
            '<p>Words before. <a href="javascript:x()" class="y">the link text</a> after.</p>',
            "unsafe-link",
        ),
    ],
)
def test_a_link_rule_that_removes_attributes_leaves_the_others_to_the_walk(
    body: str, rule: str
) -> None:
    # The walk read the element's attributes before the link rule removed some: deleting a
    # removed one raised, and the whole article fell back to bare sanitizing.
    cleaned = clean_html(body, None)
    assert 'class="y"' not in cleaned.html
    assert "the link text" in cleaned.html
    assert rule in {hit.rule for hit in cleaned.removed}
