"""Feed sources end to end: the real CLI against the local feed farm and its bad citizens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.farm import Farm, FarmConfig
from tests.helpers import run_aggregator, status_rows

FAILING = {  # bad citizen -> (health after one failure, words its error must carry)
    "500": ("backing off", "HTTP 500"),
    "404": ("backing off", "HTTP 404"),
    "410": ("disabled", "410"),
    "429": ("backing off", "HTTP 429"),
    "hang": ("backing off", "timed out"),
    "dribble": ("backing off", "timed out"),
    "huge": ("backing off", "larger than"),
    "huge_declared": ("backing off", "larger than"),
    "redirect_loop": ("backing off", "redirect loop"),
    "ftp_redirect": ("backing off", "redirect"),
}
# Read all the same: a wrong charset, a permanent redirect, and a truncated feed whose two
# entries (neither dated, one with only a title) a mature reader keeps.
RECOVERED = ("wrong_charset", "moved", "malformed")


@pytest.fixture(scope="module")
def farm() -> Iterator[Farm]:
    with Farm(FarmConfig(feeds=8, items=5, gbk_fraction=0.5, churn=0.25, hang=30)) as running:
        yield running


def _config(tmp_path: Path, farm: Farm) -> Path:
    lines = [
        'store: {url: "sqlite:///state/agg.db"}',
        'output: {dir: public, base_url: "http://127.0.0.1:9/"}',
        "defaults: {interval: 15m, timeout: 2s, max_bytes: 1MB}",
        "sources:",
    ]
    for number, url in enumerate(farm.feed_urls()):
        lines += [
            f"  - name: good-{number}",
            "    kind: feed",
            f"    url: {url}",
            f"    tags: [farm-{number}]",
        ]
    for kind, url in farm.bad_urls().items():
        lines += [
            f"  - name: bad-{kind}",
            "    kind: feed",
            f"    url: {url}",
            f"    tags: [bad-{kind}]",
        ]
    path = tmp_path / "aggregator.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _titles(path: Path) -> set[str]:
    return {item["title"] for item in json.loads(path.read_text(encoding="utf-8"))["items"]}


def test_bad_citizens_fail_alone_and_good_feeds_are_stored(tmp_path: Path, farm: Farm) -> None:
    config = _config(tmp_path, farm)
    started = datetime.now(UTC)
    first = run_aggregator(config, "run", "--once")
    assert first.returncode == 0, first.stderr
    status = status_rows(config)

    for kind, (health, words) in FAILING.items():
        row = status[f"bad-{kind}"]
        assert row["health"] == health, (kind, row)
        assert words in (row["last_error"] or ""), (kind, row)
        assert f"bad-{kind}" in first.stderr
    # Every kind of failure has its own message: a user can tell them apart.
    distinct = ("500", "404", "410", "429", "hang", "huge", "redirect_loop")
    errors = [status[f"bad-{kind}"]["last_error"] for kind in distinct]
    assert len(set(errors)) == len(errors)

    retry_after = datetime.fromisoformat(status["bad-429"]["next_due"])
    assert retry_after >= started + timedelta(seconds=119)
    backoff = datetime.fromisoformat(status["bad-500"]["next_due"])
    assert backoff >= started + timedelta(minutes=30)

    for kind in RECOVERED:
        assert status[f"bad-{kind}"]["health"] == "ok", status[f"bad-{kind}"]
    assert status["bad-moved"]["moved_to"]
    assert status["bad-malformed"]["items"] == 2
    assert status["bad-malformed"]["undated"] == 2

    public = tmp_path / "public"
    for number, url in enumerate(farm.feed_urls()):
        assert status[f"good-{number}"]["items"] == len(farm.items(url))
        # GBK and UTF-8 titles alike come through byte-exact.
        assert _titles(public / "tags" / f"farm-{number}.json") == {
            item.title for item in farm.items(url)
        }
    assert any(farm.feed_meta(url).encoding == "GBK" for url in farm.feed_urls())

    # The cut happened early: far less than 50 MB crossed the wire.
    assert farm.huge_bytes_sent < 25_000_000


def test_second_pass_is_conditional_and_skips_sources_backing_off(
    tmp_path: Path, farm: Farm
) -> None:
    config = _config(tmp_path, farm)
    assert run_aggregator(config, "run", "--once").returncode == 0
    farm.reset_stats()
    second = run_aggregator(config, "run", "--once")
    assert second.returncode == 0, second.stderr
    good_paths = {url.removeprefix(farm.base_url) for url in farm.feed_urls()}
    seen = [log for log in farm.requests if log.path in good_paths]
    assert {log.path for log in seen} == good_paths
    for log in seen:
        assert log.if_none_match and log.if_modified_since, log
        assert log.status == 304, log
    assert not [log for log in farm.requests if log.path.startswith("/bad/500")]
    assert "bad-500: backing off" in second.stderr
    assert "bad-410: disabled" in second.stderr
    assert "pass: 0 new" in second.stderr

    farm.next_pass()
    farm.reset_stats()
    third = run_aggregator(config, "run", "--once", "--retry-failed", "--strict")
    assert third.returncode == 1, "--strict: sources failed"
    assert [log for log in farm.requests if log.path.startswith("/bad/500")]
    assert "pass: 2 new" in third.stderr or "new" in third.stderr
    changed = [log for log in farm.requests if log.path in good_paths and log.status == 200]
    assert changed, "churned feeds answer 200 and are stored again"


def test_a_body_resent_without_validators_is_not_processed_again(
    tmp_path: Path, farm: Farm
) -> None:
    """The wrong-charset citizen sends no ETag or Last-Modified: every poll is a 200 with the
    same bytes, which are seen to be the same and not parsed, cleaned or saved again, until
    the source's settings change what processing would make of them."""
    config = _config(tmp_path, farm)
    first = run_aggregator(config, "-v", "run", "--once")
    assert first.returncode == 0, first.stderr
    assert "bad-wrong_charset: 1 new" in first.stderr

    farm.reset_stats()
    second = run_aggregator(config, "-v", "run", "--once")
    assert second.returncode == 0, second.stderr
    [poll] = [log for log in farm.requests if log.path == "/bad/wrong-charset"]
    assert poll.status == 200 and not poll.if_none_match and not poll.if_modified_since
    assert "bad-wrong_charset: same body as last time" in second.stderr
    assert "bad-wrong_charset: 0 new" not in second.stderr
    assert status_rows(config)["bad-wrong_charset"]["health"] == "ok"

    # A new tag for the source: the same bytes now make something else, so they are read.
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("tags: [bad-wrong_charset]", "tags: [bad-wrong_charset, gbk]"))
    third = run_aggregator(config, "-v", "run", "--once")
    assert third.returncode == 0, third.stderr
    assert "bad-wrong_charset: same body as last time" not in third.stderr
    assert "bad-wrong_charset: 0 new, 1 changed" in third.stderr


def test_a_permanent_redirect_is_followed_straight_to_its_target_from_then_on(
    tmp_path: Path, farm: Farm
) -> None:
    """bad-moved answers 301 to a good feed: the next poll asks the target directly (with its
    validators, so a 304), and an edited URL in the config is asked again as configured."""
    config = _config(tmp_path, farm)
    assert run_aggregator(config, "run", "--once").returncode == 0
    moved_to = status_rows(config)["bad-moved"]["moved_to"]
    assert moved_to and moved_to.endswith("/feeds/0000.xml")

    farm.reset_stats()
    second = run_aggregator(config, "run", "--once")
    assert second.returncode == 0, second.stderr
    assert not [log for log in farm.requests if log.path == "/bad/moved"]
    assert status_rows(config)["bad-moved"]["health"] == "ok"

    # The config now names another URL for the source: it is asked, not the old target.
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("/bad/moved", "/bad/wrong-charset"), encoding="utf-8")
    farm.reset_stats()
    third = run_aggregator(config, "run", "--once")
    assert third.returncode == 0, third.stderr
    assert len([log for log in farm.requests if log.path == "/bad/wrong-charset"]) == 2
