"""When and where a source is fetched next, and what its health is: pure functions over
SourceState.

After a success the source is due again one interval later and its error streak resets; a
permanent redirect is asked straight at its target from then on. After a failure it backs off:
interval x 2^streak with jitter, capped at 24 h, and never before a server's Retry-After.
410 Gone disables the source; a 404 that lasts 7 days marks it dead.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta

from aggregator.models import FetchResult, SourceState

MAX_BACKOFF = timedelta(hours=24)
DEAD_AFTER = timedelta(days=7)
JITTER = 0.1


def backoff(interval: timedelta, streak: int) -> timedelta:
    """interval x 2^streak with up to 10% jitter, capped at 24 h."""
    doubling: int = 2 ** min(streak, 20)
    base = min(interval * doubling, MAX_BACKOFF)
    jittered: timedelta = base * (1 + random.uniform(0, JITTER))
    return min(jittered, MAX_BACKOFF)


def poll_url(configured: str, state: SourceState) -> str:
    """Where a permanent redirect of the configured URL led, while the config still names that
    URL (RFC 9110: later requests should use the new one); else the configured URL."""
    if state.permanent_url and state.moved_from == configured:
        return state.permanent_url
    return configured


def succeeded(
    state: SourceState,
    now: datetime,
    interval: timedelta,
    *,
    result: str = "ok",
    new_items: int = 0,
    fetch: FetchResult | None = None,
    configured_url: str | None = None,
) -> SourceState:
    """`configured_url`: the source's URL in the config, which a permanent redirect seen now
    is recorded as moved from (default: the URL fetched)."""
    moved = fetch is not None and fetch.permanent_url is not None
    return replace(
        state,
        etag=fetch.etag if fetch else state.etag,
        last_modified=fetch.last_modified if fetch else state.last_modified,
        permanent_url=fetch.permanent_url if fetch and moved else state.permanent_url,
        moved_from=(configured_url or fetch.url) if fetch and moved else state.moved_from,
        last_status=fetch.status if fetch else None,
        last_fetch_at=now,
        last_success_at=now,
        last_result=result,
        last_error=None,
        new_items=new_items,
        error_streak=0,
        failing_since=None,
        next_fetch_at=now + interval,
        fetched_by=state.claimed_by or state.fetched_by,
    )


def failed(
    state: SourceState,
    now: datetime,
    interval: timedelta,
    error: str,
    *,
    fetch: FetchResult | None = None,
) -> SourceState:
    streak = state.error_streak + 1
    next_fetch_at = now + backoff(interval, streak)
    if fetch and fetch.retry_after and fetch.retry_after > next_fetch_at:
        next_fetch_at = fetch.retry_after
    disabled_reason = state.disabled_reason
    if fetch and fetch.error_kind == "gone":
        disabled_reason = f"the server says the feed is gone for good ({error}); re-enable by hand"
    return replace(
        state,
        last_status=fetch.status if fetch else None,
        last_fetch_at=now,
        last_result="error",
        last_error=error,
        new_items=0,
        error_streak=streak,
        failing_since=state.failing_since or now,
        next_fetch_at=next_fetch_at,
        disabled_reason=disabled_reason,
        fetched_by=state.claimed_by or state.fetched_by,
    )


def is_due(state: SourceState, now: datetime) -> bool:
    return state.disabled_reason is None and (
        state.next_fetch_at is None or state.next_fetch_at <= now
    )


def is_backing_off(state: SourceState, now: datetime) -> bool:
    return bool(state.error_streak and state.next_fetch_at and state.next_fetch_at > now)


def health(state: SourceState | None, now: datetime, *, enabled: bool = True) -> str:
    """ok, failing, backing off, dead, disabled or never fetched: what status pages show."""
    if not enabled:
        return "disabled"
    if state is None or state.last_fetch_at is None:
        return "never fetched"
    if state.disabled_reason:
        return "disabled"
    if not state.error_streak:
        return "ok"
    if state.last_status == 404 and state.failing_since and now - state.failing_since >= DEAD_AFTER:
        return "dead"
    return "backing off" if is_backing_off(state, now) else "failing"
