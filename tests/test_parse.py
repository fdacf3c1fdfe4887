"""Post parsing, feedparser-style: one fixture file per case, one test walks them all.

A case is `<name>.<ext>` with either `<name>.json` (the Entry it must give) or `<name>.error`
(the message the EntryError must carry; the file name is always named too).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from aggregator.errors import EntryError
from aggregator.models import Document
from aggregator.parse import parse_post, strip_archiver_leftovers

FIXTURES = Path(__file__).parent / "fixtures" / "posts"
SEEDS = Path(__file__).resolve().parent.parent / "seeds"
CASES = sorted(path for path in FIXTURES.iterdir() if path.suffix not in (".json", ".error"))


def _document(path: Path) -> Document:
    return Document(source="test", origin=str(path), data=path.read_bytes())


def test_every_case_has_an_expectation() -> None:
    assert len(CASES) >= 13
    for case in CASES:
        assert case.with_suffix(".json").exists() or case.with_suffix(".error").exists(), case


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.stem)
def test_post_fixture(case: Path) -> None:
    error_file = case.with_suffix(".error")
    if error_file.exists():
        with pytest.raises(EntryError) as raised:
            parse_post(_document(case))
        assert str(case) in str(raised.value)
        assert error_file.read_text(encoding="utf-8").strip() in str(raised.value)
        return
    expected = json.loads(case.with_suffix(".json").read_text(encoding="utf-8"))
    entry = parse_post(_document(case))
    assert entry.title == expected["title"]
    assert entry.link == expected["link"]
    assert entry.published == datetime.fromisoformat(expected["published"])
    assert entry.published.utcoffset() == datetime.fromisoformat(expected["published"]).utcoffset()
    assert entry.updated == entry.published
    assert entry.author == expected["author"]
    assert list(entry.tags) == expected["tags"]
    assert entry.image == expected["image"]
    if "key" in expected:
        assert entry.key == expected["key"]
    else:
        assert entry.key.startswith(expected["key_prefix"])
    assert entry.content_html.startswith(expected["content_starts"])
    for present in expected.get("content_has", []):
        assert present in entry.content_html
    for absent in expected.get("content_lacks", []):
        assert absent not in entry.content_html


def test_identity_without_a_link_is_stable_and_distinct() -> None:
    case = FIXTURES / "block_lists_rfc822_no_from.txt"
    first, second = parse_post(_document(case)), parse_post(_document(case))
    assert first.key == second.key
    other = parse_post(_document(FIXTURES / "date_without_zone.txt"))
    assert other.key != first.key


@pytest.mark.parametrize("seed", sorted(SEEDS.iterdir()), ids=lambda path: path.stem)
def test_every_seed_parses_without_archiver_leftovers(seed: Path) -> None:
    entry = parse_post(_document(seed))
    assert entry.title
    assert entry.published.tzinfo is not None
    assert not entry.content_html.startswith("<!--")
    assert "------" not in entry.content_html
    assert f"[{entry.title}]" not in entry.content_html


def test_a_title_link_line_that_is_not_the_title_is_kept() -> None:
    body = "[Another article](https://x.org/a)\n------\n<p>text</p>"
    assert strip_archiver_leftovers(body, "The real title") == body
