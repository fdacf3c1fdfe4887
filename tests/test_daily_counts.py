"""Items per day for the index page's charts, on SQLite and PostgreSQL (see conftest.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

from aggregator.models import DailyCounts
from aggregator.store import Store
from tests.test_store import UTC8, make, save


def _series(**days: int) -> tuple[int, ...]:
    """30 days, 2024-02-01 to 2024-03-01: day index -> count, e.g. d29=2."""
    counts = [0] * 30
    for key, count in days.items():
        counts[int(key.removeprefix("d"))] = count
    return tuple(counts)


def test_an_empty_store_has_no_window(store: Store) -> None:
    assert store.daily_counts(date(2024, 3, 10)) == DailyCounts(None, 30, {}, {})


def test_counts_per_utc_day_ending_on_the_newest_day(store: Store) -> None:
    late_evening = make("a", "1", when=datetime(2024, 3, 1, 0, 30, tzinfo=UTC8), tags=["x"])
    story = make("a", "2", when=datetime(2024, 3, 1, 12, 0, tzinfo=UTC8), tags=["China"])
    same_story = make("b", "1", when=datetime(2024, 3, 1, 13, 0, tzinfo=UTC8), cluster=story)
    old = make("b", "2", when=datetime(2024, 1, 31, 23, 0, tzinfo=UTC), tags=["China"])
    first_day = make("b", "3", when=datetime(2024, 2, 1, 0, 0, tzinfo=UTC))
    future = make("c", "1", when=datetime(2030, 1, 1, tzinfo=UTC), tags=["China"])
    save(store, "a", late_evening, story)
    save(store, "b", replace(same_story, tags=("china",)), old, first_day)
    save(store, "c", future)

    counts = store.daily_counts(date(2024, 3, 10))

    # 2024-03-01 00:30 +08:00 is 2024-02-29 in UTC; the item of 2030 is after the pass's day.
    assert counts.last == date(2024, 3, 1)
    assert counts.days == 30
    assert counts.sources == {"a": _series(d28=1, d29=1), "b": _series(d0=1, d29=1)}
    # Two articles of one story on the same day are one story.
    assert counts.tags == {"china": _series(d29=1), "x": _series(d28=1)}
    assert store.daily_counts(date(2031, 1, 1)).last == date(2030, 1, 1)
