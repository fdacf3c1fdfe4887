"""Items per day for the pages' charts, on SQLite and PostgreSQL (see conftest.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

from aggregator.models import DailyCounts
from aggregator.store import Store
from tests.test_store import UTC8, make, save


def _series(**days: int) -> tuple[int, ...]:
    """30 days: day index (0 the oldest, 29 the window's last day) -> count, e.g. d29=2."""
    counts = [0] * 30
    for key, count in days.items():
        counts[int(key.removeprefix("d"))] = count
    return tuple(counts)


def test_an_empty_store_has_no_window(store: Store) -> None:
    assert store.daily_counts(date(2024, 3, 10)) == DailyCounts(None, 30, {}, {})


def test_counts_per_utc_day_ending_today(store: Store) -> None:
    late_evening = make("a", "1", when=datetime(2024, 3, 1, 0, 30, tzinfo=UTC8), tags=["x"])
    story = make("a", "2", when=datetime(2024, 3, 1, 12, 0, tzinfo=UTC8), tags=["China"])
    same_story = make("b", "1", when=datetime(2024, 3, 1, 13, 0, tzinfo=UTC8), cluster=story)
    old = make("b", "2", when=datetime(2024, 2, 9, 23, 0, tzinfo=UTC), tags=["China"])
    first_day = make("b", "3", when=datetime(2024, 2, 10, 0, 0, tzinfo=UTC))
    future = make("c", "1", when=datetime(2030, 1, 1, tzinfo=UTC), tags=["China"])
    save(store, "a", late_evening, story)
    save(store, "b", replace(same_story, tags=("china",)), old, first_day)
    save(store, "c", future)

    counts = store.daily_counts(date(2024, 3, 10))

    # The window is 2024-02-10 to 2024-03-10, the day of the pass, whatever the newest item:
    # 2024-03-01 00:30 +08:00 is 2024-02-29 in UTC (d19); the item of 2030 is after the pass.
    assert counts.last == date(2024, 3, 10)
    assert counts.days == 30
    assert counts.sources == {"a": _series(d19=1, d20=1), "b": _series(d0=1, d20=1)}
    # Two articles of one story on the same day are one story.
    assert counts.tags == {"china": _series(d20=1), "x": _series(d19=1)}
    assert counts.source_ends == {} and counts.tag_ends == {}
    assert store.daily_counts(date(2031, 1, 1)).last == date(2031, 1, 1)


def test_a_quiet_source_or_tag_is_charted_up_to_its_own_newest_item(store: Store) -> None:
    # The shipped samples are from 2021: charted on today's window, they would show nothing.
    newest = make("samples", "1", when=datetime(2021, 10, 30, 7, 34, tzinfo=UTC), tags=["old"])
    earlier = make("samples", "2", when=datetime(2021, 10, 2, 9, 0, tzinfo=UTC), tags=["old"])
    too_old = make("samples", "3", when=datetime(2021, 9, 30, 9, 0, tzinfo=UTC), tags=["old"])
    recent = make("live", "1", when=datetime(2024, 3, 9, 12, 0, tzinfo=UTC), tags=["live"])
    save(store, "samples", newest, earlier, too_old)
    save(store, "live", recent)

    counts = store.daily_counts(date(2024, 3, 10))

    assert counts.last == date(2024, 3, 10)
    # Its own 30 days end on 2021-10-30 (d29) and start on 2021-10-01 (d0): the item of
    # 2021-09-30 is outside them.
    assert counts.source_ends == {"samples": date(2021, 10, 30)}
    assert counts.sources["samples"] == _series(d1=1, d29=1)
    assert counts.tag_ends == {"old": date(2021, 10, 30)}
    assert counts.tags["old"] == _series(d1=1, d29=1)
    # A source active lately keeps the window that ends today.
    assert counts.sources["live"] == _series(d28=1)
    assert "live" not in counts.source_ends and "live" not in counts.tag_ends
