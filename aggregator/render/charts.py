"""Small inline SVG bar charts of items per day, for index.html.

Plain SVG in the page (no script, no image file): it draws without JavaScript, scales with the
text, takes its colours from the stylesheet (so dark mode applies), and says what it shows in
its <title> for screen readers. Coordinates are integers computed from the counts only, so the
same counts always give the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from html import escape

BAR = 4  # width of one day's bar
GAP = 1
HEIGHT = 24  # of the tallest bar
BASELINE = 1


def chart_window(last: date, days: int) -> str:
    first = last - timedelta(days=days - 1)
    return f"{first.isoformat()} to {last.isoformat()}"


def day_chart(counts: Sequence[int], last: date, what: str) -> str:
    """One bar per day, oldest first; `what` names the series ("stories tagged x")."""
    days = len(counts)
    width = days * (BAR + GAP) - GAP
    height = HEIGHT + BASELINE
    total = sum(counts)
    peak = max(counts, default=0)
    busiest = ""
    if peak:
        day = last - timedelta(days=days - 1 - counts.index(peak))
        busiest = f", at most {peak} on {day.isoformat()}"
    label = f"{what}: {total} in the {days} days {chart_window(last, days)}{busiest}"
    bars = []
    for index, count in enumerate(counts):
        if not count:
            continue
        # Any day with an item shows at least 2 px, so a single item is never invisible.
        tall = max(2, round(HEIGHT * count / peak))
        bars.append(
            f'<rect x="{index * (BAR + GAP)}" y="{HEIGHT - tall}" width="{BAR}" height="{tall}"/>'
        )
    return (
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}"'
        f' height="{height}" preserveAspectRatio="none" aria-label="{escape(label)}">'
        f"<title>{escape(label)}</title>"
        f'<rect class="base" x="0" y="{HEIGHT}" width="{width}" height="{BASELINE}"/>'
        + "".join(bars)
        + "</svg>"
    )
