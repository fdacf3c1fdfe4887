"""Config loading: one fixture per bad case, each with the exact errors a user would see.

A fixture `NAME.yaml` comes with `NAME.errors` (what `check` refuses it for: the loader's
problems, or for a config that loads, what a run would hit: runtime_*.yaml) and/or
`NAME.warnings` (what `check` warns of and lets pass). Each line is one problem, as `check`
prints it, less the fixtures' folder in front; `{here}` stands for the fixtures' folder and
`{fixtures}` for its parent, where a message names a resolved path.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from aggregator.config import config_path, load_config, parse_duration, parse_size
from aggregator.config.preflight import preflight
from aggregator.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures" / "config"
BAD_CASES = sorted(path for path in FIXTURES.glob("*.yaml") if path.with_suffix(".errors").exists())
WARNED_CASES = sorted(
    path for path in FIXTURES.glob("*.yaml") if path.with_suffix(".warnings").exists()
)


def expected_lines(case: Path, suffix: str) -> list[str]:
    """The problems `check` prints for the fixture `case`, as its `suffix` file lists them."""
    text = case.with_suffix(suffix).read_text(encoding="utf-8")
    text = text.replace("{here}", str(case.parent)).replace("{fixtures}", str(case.parent.parent))
    return [f"{case.parent}/{line}" for line in text.splitlines()]


def test_every_fixture_says_what_check_says_of_it() -> None:
    assert len(BAD_CASES) >= 10
    runtime = [case for case in BAD_CASES if case.name.startswith("runtime_")]
    assert len(runtime) >= 5  # no sources, empty, missing folder, unwritable, system folder
    cases = {*BAD_CASES, *WARNED_CASES}
    assert not [p for p in FIXTURES.glob("*.yaml") if p.name != "good.yaml" and p not in cases]


@pytest.mark.parametrize("case", BAD_CASES, ids=lambda path: path.stem)
def test_bad_config_names_file_line_column_and_key(case: Path) -> None:
    try:
        config = load_config(case)
    except ConfigError as raised:
        problems = str(raised).splitlines()
    else:  # valid as a file: what a run of it would hit
        problems = [str(problem) for problem in preflight(config).errors]
    assert problems == expected_lines(case, ".errors")


@pytest.mark.parametrize("case", WARNED_CASES, ids=lambda path: path.stem)
def test_what_may_be_fine_is_a_warning(case: Path) -> None:
    found = preflight(load_config(case))
    assert [str(problem) for problem in found.warnings] == expected_lines(case, ".warnings")


def test_the_good_fixture_has_nothing_a_run_would_hit() -> None:
    found = preflight(load_config(FIXTURES / "good.yaml"))
    assert found.errors == []


def test_good_config_resolves_relative_paths_against_its_folder() -> None:
    config = load_config(FIXTURES / "good.yaml")
    assert config.output.dir == (FIXTURES / "../out").resolve()
    assert config.output.base_url == "http://localhost:9000/feeds/"
    assert config.store.url == f"sqlite:///{(FIXTURES / '../var/test.db').resolve()}"
    samples, zaobao = config.sources
    assert samples.path == FIXTURES.parent / "posts"
    assert samples.tags == ("samples", "联合早报")
    assert zaobao.enabled is False
    assert config.interval(samples) == timedelta(hours=1, minutes=30)
    assert config.interval(zaobao) == timedelta(minutes=10)
    assert config.defaults.max_bytes == 5_000_000
    assert config.rules[0].tag == "外交"


def test_the_shipped_config_is_valid_and_reads_the_seeds() -> None:
    root = Path(__file__).resolve().parent.parent
    config = load_config(root / "config" / "aggregator.yaml")
    (samples,) = [source for source in config.sources if source.enabled]
    assert samples.kind == "posts"
    assert samples.path == root / "seeds"
    assert config.output.dir == root / "public"
    assert config.store.url == f"sqlite:///{root / 'var' / 'aggregator.db'}"


def test_postgresql_and_absolute_sqlite_urls_are_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text('store: {url: "postgresql+psycopg://u@db:5432/feeds"}\n')
    assert load_config(path).store.url == "postgresql+psycopg://u@db:5432/feeds"
    path.write_text('store: {url: "sqlite:////srv/a.db"}\n')
    assert load_config(path).store.url == "sqlite:////srv/a.db"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml:1:1: cannot read config"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15m", 900), ("1h", 3600), ("1h30m", 5400), ("20s", 20), ("1d", 86400), (90, 90)],
)
def test_durations(text: str | int, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["10 minutes", "m", "", "15x", "-5m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"), [("5MB", 5_000_000), ("512KiB", 524_288), ("100", 100), (2048, 2048)]
)
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


def test_config_path_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGGREGATOR_CONFIG", raising=False)
    assert config_path(None) == Path("config/aggregator.yaml")
    monkeypatch.setenv("AGGREGATOR_CONFIG", "/etc/aggregator/a.yaml")
    assert config_path(None) == Path("/etc/aggregator/a.yaml")
    assert config_path("mine.yaml") == Path("mine.yaml")


def test_a_listing_selector_may_use_what_soupsieve_reads(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    source = "{name: city, kind: page, url: 'https://news.example.org/', selector: %s}"
    path.write_text("sources:\n  - " + source % "'li:-soup-contains(\"Live\") > a'" + "\n")
    (city,) = load_config(path).sources
    assert city.selector == 'li:-soup-contains("Live") > a'
    path.write_text("sources:\n  - " + source % "'li:has('" + "\n")
    with pytest.raises(ConfigError, match="is not a CSS selector"):
        load_config(path)
