"""What one source's work in a pass comes to: its report, and what it left with the store."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class SourceReport:
    name: str
    new: int = 0
    changed: int = 0
    skipped: tuple[str, ...] = ()  # one message per post or entry that was skipped
    error: str | None = None  # the whole source failed
    backing_off_until: datetime | None = None  # not fetched this pass
    not_modified: bool = False
    touched_tags: frozenset[str] = frozenset()  # slugs whose feeds this source's save changed
    held_by: str | None = None  # left to the node holding its lease (several nodes, one store)


@dataclass(frozen=True, slots=True)
class Saved:
    """What the log says of a source's saved articles, beside the save's own counts."""

    notes: tuple[str, ...]
    undated: int


@dataclass(frozen=True, slots=True)
class Submitted:
    """What a source's work left with the store: its report, final once `committed` is."""

    report: SourceReport
    committed: asyncio.Future[Any] | None = None  # None: nothing to save (left for next pass)
    saved: Saved | None = None  # articles were saved: the counts come with the commit
    next_try: datetime | None = None  # a failure: when the source is tried again
