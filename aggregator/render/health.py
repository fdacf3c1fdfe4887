"""Source health for people: the banner on top of the index (which sources fail, by name) and
sources.html, every source with its health, fetch times, error streak and last error, the
failing ones first.

The banner names only which sources fail, so index.html changes when that set changes, not on
every fetch. The times are on sources.html, as of the last render: a page is written when
stories or a source's health change, never on a clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from urllib.parse import quote

from aggregator.models import DailyCounts, SiteSettings, SourceHealth
from aggregator.redact import mask_text
from aggregator.render.layout import (
    SOURCES_PAGE,
    chart_cell,
    chart_window,
    head,
    utc_time_html,
)

# Health labels (sources.schedule.health) that mean a source is not delivering.
FAILING = frozenset({"failing", "backing off", "dead"})
_HEALTH_CLASS = {"ok": "ok", "failing": "bad", "dead": "bad", "backing off": "warn"}
_NAMED_IN_BANNER = 10


def _label(source: SourceHealth, health: Mapping[str, str] | None) -> str:
    """The source's health as the schedule names it, or, without one, what its state says."""
    if health and source.name in health:
        return health[source.name]
    if not source.enabled:
        return "disabled"
    state = source.state
    if state is None:
        return "never fetched"
    return "failing" if state.error_streak > 0 else (state.last_result or "ok")


def is_failing(source: SourceHealth, health: Mapping[str, str] | None) -> bool:
    """Whether a source the config enables is not delivering: failing, backing off, dead, or
    stopped by the aggregator itself (a feed that answered 410 Gone)."""
    if not source.enabled:
        return False
    stopped = source.state is not None and source.state.disabled_reason is not None
    return stopped or _label(source, health) in FAILING


def anchor(name: str) -> str:
    """The id of a source's row on sources.html."""
    return f"source-{name}"


def banner_html(
    site: SiteSettings,
    sources: Sequence[SourceHealth],
    health: Mapping[str, str] | None,
    *,
    on_sources_page: bool = False,
) -> str:
    """The banner: "2 of 16 sources failing: a, b", each name linking to its row on
    sources.html; a quiet line when none fails."""
    if not sources:
        return ""
    enabled = [source for source in sources if source.enabled]
    failing = [source for source in sources if is_failing(source, health)]
    page = "" if on_sources_page else SOURCES_PAGE
    more = "" if on_sources_page else f' <a href="{page}">Source health</a>'
    if not failing:
        counted = f"{len(enabled)} sources"
        if len(enabled) < len(sources):
            counted = f"{len(enabled)} of {len(sources)} sources enabled"
        return f'<p class="all-well muted" id="health">{counted}, none failing.{more}</p>\n'
    names = ", ".join(
        f'<a href="{page}#{escape(quote(anchor(source.name), safe=""))}">'
        f"{escape(site.source_label(source.name))}</a>"
        for source in failing[:_NAMED_IN_BANNER]
    )
    rest = len(failing) - _NAMED_IN_BANNER
    if rest > 0:
        names += f" and {rest} more"
    return (
        '<section class="alert" id="health" aria-label="Source health">\n'
        f"<p><strong>{len(failing)} of {len(enabled)} sources failing</strong>: {names}.{more}"
        "</p>\n</section>\n"
    )


def _order(sources: Sequence[SourceHealth], health: Mapping[str, str] | None) -> list[int]:
    """Failing sources first, disabled ones last, each group in config order."""

    def rank(index: int) -> tuple[int, int]:
        source = sources[index]
        if is_failing(source, health):
            return (0, index)
        return (2 if _label(source, health) == "disabled" else 1, index)

    return sorted(range(len(sources)), key=rank)


def _row(
    site: SiteSettings,
    source: SourceHealth,
    daily: DailyCounts | None,
    health: Mapping[str, str] | None,
) -> str:
    label = _label(source, health)
    css = _HEALTH_CLASS.get(label, "muted")
    state = source.state
    shown = site.source_label(source.name)
    about = source.kind if shown == source.name else f"{source.name} · {source.kind}"
    last_fetch = next_due = last_success = "—"
    streak = "0"
    error = ""
    if state is not None:
        last_fetch = utc_time_html(state.last_fetch_at)
        if label != "disabled":
            next_due = utc_time_html(state.next_fetch_at)
        streak = str(state.error_streak)
        last_success = utc_time_html(state.last_success_at) if state.last_success_at else "never"
        reason = state.last_error if state.error_streak else state.disabled_reason
        # The page is public and an error often quotes the source's URL, credentials and all.
        error = escape(mask_text(reason)) if reason else ""
    chart = chart_cell(
        daily,
        daily.sources if daily else {},
        daily.source_ends if daily else {},
        source.name,
        f"Items from {shown} per day",
    )
    return (
        f'<tr><th scope="row" id="{escape(anchor(source.name))}">{escape(shown)}'
        f'<span class="source-name muted">{escape(about)}</span></th>'
        f'<td data-label="Health"><span class="{css}">{escape(label)}</span></td>'
        f'<td class="when" data-label="Last fetch">{last_fetch}</td>'
        f'<td class="when" data-label="Next due">{next_due}</td>'
        f'<td class="num" data-label="Error streak">{streak}</td>'
        f'<td class="error" data-label="Last error">{error}</td>'
        f'<td class="when" data-label="Last success">{last_success}</td>'
        f'<td class="num" data-label="Items">{source.items}</td>'
        f'<td class="chart-cell" data-label="Items per day">{chart}</td></tr>\n'
    )


def sources_html(
    site: SiteSettings,
    sources: Sequence[SourceHealth],
    *,
    daily: DailyCounts | None = None,
    health: Mapping[str, str] | None = None,
) -> bytes:
    """sources.html. `health` names each source's state (ok, failing, backing off, dead,
    disabled, never fetched); without it a source with errors shows as failing."""
    rows = "".join(
        _row(site, sources[index], daily, health) for index in _order(sources, health)
    ) or ('<tr><td colspan="9" class="muted">No sources configured.</td></tr>\n')
    fetched = [s.state.last_fetch_at for s in sources if s.state and s.state.last_fetch_at]
    as_of = ""
    if fetched:
        as_of = (
            f" Fetch times as of the newest fetch shown, {utc_time_html(max(fetched))}: this page"
            " is written again when stories arrive or a source's health changes"
            " (<code>aggregator status</code> shows the state now)."
        )
    window = chart_window(daily, ("items", "item"), "source")
    window = " " + window if window else ""
    page = (
        head(f"Sources · {site.title}")
        + "<body>\n<header>\n"
        + f'<p class="crumbs"><a href="index.html">{escape(site.title)}</a></p>\n'
        + "<h1>Sources</h1>\n"
        + "</header>\n"
        + banner_html(site, sources, health, on_sources_page=True)
        + "<main>\n"
        + f'<p class="window muted">Times in UTC.{as_of}{window}</p>\n'
        + '<div class="scroll">\n<table class="cards sources">\n<thead><tr>'
        + '<th scope="col">Source</th><th scope="col">Health</th>'
        + '<th scope="col">Last fetch</th><th scope="col">Next due</th>'
        + '<th scope="col" class="num">Error streak</th><th scope="col">Last error</th>'
        + '<th scope="col">Last success</th><th scope="col" class="num">Items</th>'
        + '<th scope="col">Per day</th></tr></thead>\n'
        + f"<tbody>\n{rows}</tbody>\n</table>\n</div>\n"
        + "</main>\n</body>\n</html>\n"
    )
    return page.encode("utf-8")
