"""Tag names and their URL slugs, and the config's `rules` that add tags from text."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_SEPARATOR_RUN = re.compile(r"-{2,}")
MAX_SLUG_BYTES = 120  # of UTF-8: with `tags/` and `.atom`, far below any file system's limit


def slugify(tag: str) -> str:
    """NFKC, lowercase, each run of spaces and punctuation becomes '-'; letters of every script
    stay as they are, so `新浪财经－国內` becomes `新浪财经-国內`."""
    normalised = unicodedata.normalize("NFKC", tag).lower()
    chars = [char if unicodedata.category(char)[0] in "LNM" else "-" for char in normalised]
    slug = _SEPARATOR_RUN.sub("-", "".join(chars)).strip("-")
    if not slug:
        # A tag of punctuation only still needs a file name of its own.
        return f"tag-{_digest(normalised)}"
    if len(slug) * 4 > MAX_SLUG_BYTES and len(slug.encode()) > MAX_SLUG_BYTES:
        # A file name has 255 bytes: a long tag keeps its start, and its hash keeps it apart.
        head = slug.encode()[: MAX_SLUG_BYTES - 11].decode(errors="ignore").rstrip("-")
        return f"{head}-{_digest(normalised)}"
    return slug


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:10]  # noqa: S324 - a name, no secret


def unique_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Keep the first spelling of each tag (by slug), dropping blanks."""
    seen: set[str] = set()
    result: list[str] = []
    for tag in tags:
        name = " ".join(tag.split())
        if not name:
            continue
        slug = slugify(name)
        if slug not in seen:
            seen.add(slug)
            result.append(name)
    return tuple(result)


@dataclass(frozen=True, slots=True)
class TagRule:
    tag: str
    pattern: re.Pattern[str]


def rule_tags(rules: Sequence[TagRule], *texts: str) -> tuple[str, ...]:
    """Tags of every rule whose pattern matches any of the texts."""
    return tuple(rule.tag for rule in rules if any(rule.pattern.search(text) for text in texts))
