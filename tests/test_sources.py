"""The sources package's schedule: backoff, Retry-After, 410 and 404 policy, what `status` shows
and when a source is next due."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from aggregator.models import FetchResult, SourceState
from aggregator.sources.schedule import (
    MAX_BACKOFF,
    backoff,
    failed,
    health,
    is_backing_off,
    is_due,
    poll_url,
    succeeded,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
INTERVAL = timedelta(minutes=15)


def _fetch(status: int, kind: str, retry_after: datetime | None = None) -> FetchResult:
    return FetchResult(
        source="s",
        url="http://127.0.0.1/f",
        final_url="http://127.0.0.1/f",
        status=status,
        error=f"HTTP {status}",
        error_kind=kind,
        retry_after=retry_after,
    )


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    for streak in range(1, 6):
        delay = backoff(INTERVAL, streak)
        assert INTERVAL * 2**streak <= delay <= INTERVAL * 2**streak * 1.1
    assert backoff(INTERVAL, 30) == MAX_BACKOFF


def test_failures_back_off_and_a_success_resets_the_streak() -> None:
    state = SourceState(name="s")
    for streak in (1, 2, 3):
        state = failed(state, NOW, INTERVAL, "HTTP 500", fetch=_fetch(500, "http"))
        assert state.error_streak == streak
        assert state.next_fetch_at is not None
        assert state.next_fetch_at >= NOW + INTERVAL * 2**streak
    assert state.failing_since == NOW
    assert is_backing_off(state, NOW) and not is_due(state, NOW)
    assert health(state, NOW) == "backing off"
    later = NOW + timedelta(days=1)
    assert health(state, later) == "failing"
    state = succeeded(state, later, INTERVAL, new_items=3)
    assert (state.error_streak, state.last_error, state.failing_since) == (0, None, None)
    assert state.next_fetch_at == later + INTERVAL
    assert health(state, later) == "ok"


def test_retry_after_wins_over_a_shorter_backoff() -> None:
    retry = NOW + timedelta(hours=2)
    state = failed(
        SourceState(name="s"), NOW, INTERVAL, "HTTP 429", fetch=_fetch(429, "http", retry)
    )
    assert state.next_fetch_at == retry


def test_gone_disables_the_source() -> None:
    state = failed(SourceState(name="s"), NOW, INTERVAL, "HTTP 410 Gone", fetch=_fetch(410, "gone"))
    assert state.disabled_reason and "410" in state.disabled_reason
    assert not is_due(state, NOW + timedelta(days=30))
    assert health(state, NOW) == "disabled"


def test_a_404_lasting_seven_days_is_dead() -> None:
    state = SourceState(name="s")
    day = NOW
    for _ in range(8):
        state = failed(state, day, INTERVAL, "HTTP 404", fetch=_fetch(404, "not_found"))
        day += timedelta(days=1)
    assert health(state, NOW + timedelta(days=6)) != "dead"
    assert health(state, NOW + timedelta(days=7)) == "dead"


def test_never_fetched_and_disabled_in_config() -> None:
    assert health(None, NOW) == "never fetched"
    assert health(SourceState(name="s"), NOW, enabled=False) == "disabled"


def test_a_permanent_redirect_is_asked_directly_while_the_config_names_its_origin() -> None:
    fetch = FetchResult(
        source="s",
        url="http://old.example/feed",
        final_url="http://new.example/feed",
        status=200,
        permanent_url="http://new.example/feed",
    )
    state = succeeded(SourceState(name="s"), NOW, INTERVAL, fetch=fetch)
    assert state.moved_from == "http://old.example/feed"
    assert poll_url("http://old.example/feed", state) == "http://new.example/feed"
    assert poll_url("http://edited.example/feed", state) == "http://edited.example/feed"
    # Asked directly, the target answers without a redirect: the move stays recorded.
    direct = replace(fetch, url="http://new.example/feed", permanent_url=None)
    again = succeeded(state, NOW, INTERVAL, fetch=direct)
    assert poll_url("http://old.example/feed", again) == "http://new.example/feed"
