"""`aggregator check`: every problem at once, each located and with what to write instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.config import Config
from aggregator.config.hints import unknown_key
from tests.helpers import run_aggregator

FIXTURES = Path(__file__).parent / "fixtures" / "config"


def test_check_prints_every_problem_with_a_hint_and_exits_2() -> None:
    config = FIXTURES / "typos.yaml"
    result = run_aggregator(config, "check")
    assert result.returncode == 2
    expected = (FIXTURES / "typos.errors").read_text(encoding="utf-8").splitlines()
    assert result.stderr.splitlines() == [f"{FIXTURES}/{line}" for line in expected]
    assert len(expected) == 10


@pytest.mark.parametrize(
    ("location", "hint"),
    [
        (("sources", 0, "urll"), "did you mean `url`?"),
        (("sources", 3, "selecter"), "did you mean `selector`?"),
        (("sources", 0, "clean", "dorp"), "did you mean `drop`?"),
        (("defaults", "timout"), "did you mean `timeout`?"),
        (("dedup",), "did you mean `dedupe`?"),
        (("server", "colour"), "the keys here are `host`, `port`"),
    ],
)
def test_unknown_keys_suggest_the_nearest_key(location: tuple[object, ...], hint: str) -> None:
    assert unknown_key(Config, location).endswith(hint)


def test_check_accepts_a_good_config() -> None:
    result = run_aggregator(FIXTURES / "good.yaml", "check")
    assert result.returncode == 0, result.stderr
    assert "ok (2 sources, 1 enabled)" in result.stdout
