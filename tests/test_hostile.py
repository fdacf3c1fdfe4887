"""Hostile upstreams through a real `run --once`: every case of tests/hostile.py is served from
127.0.0.1 beside a good feed; none takes the pass down, eats the machine or stops the others."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import status_rows
from tests.hostile import CASES, Case, Measured, run_once, serve, write_config


@dataclass(frozen=True)
class HostileRun:
    folder: Path
    status: dict[str, dict[str, Any]]
    measured: Measured


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> HostileRun:
    folder = tmp_path_factory.mktemp("hostile")
    with serve(CASES) as base_url:
        config = write_config(folder, CASES, base_url)
        measured = run_once(config)
    assert measured.returncode == 0, measured.stderr[-3000:]
    return HostileRun(folder, status_rows(config), measured)


def test_the_pass_stays_up_bounded_in_time_and_memory(hostile: HostileRun) -> None:
    assert "Traceback" not in hostile.measured.stderr
    assert hostile.measured.seconds < 5 * len(CASES)
    assert 0 < hostile.measured.peak_rss_mb < 300


def test_the_good_source_is_stored_and_published(hostile: HostileRun) -> None:
    assert hostile.status["good"]["health"] == "ok"
    assert hostile.status["good"]["items"] == 2
    published = json.loads((hostile.folder / "public" / "all.json").read_text("utf-8"))
    assert {"Good one", "Good two"} <= {item["title"] for item in published["items"]}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_each_case_is_kept_within_its_limits_or_fails_alone(
    hostile: HostileRun, case: Case
) -> None:
    row = hostile.status[case.name]
    if case.stored:
        assert row["health"] == "ok", row
        assert row["items"] == 1, row
    else:
        assert row["health"] != "ok", row
        assert row["last_error"], row


def test_tags_stay_few_and_their_file_names_short(hostile: HostileRun) -> None:
    names = [path.name for path in (hostile.folder / "public" / "tags").iterdir()]
    assert all(len(name.encode()) < 255 for name in names)
    assert len(names) < 3 * 100, "a thousand categories do not make a thousand tags"
    limited = {name for name, row in hostile.status.items() if row["limited"]}
    assert {"categories_1000", "category_300_chars", "title_1mb", "nested_200k"} <= limited
