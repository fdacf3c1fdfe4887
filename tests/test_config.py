"""Config loading: one fixture per bad case, each with the exact errors a user would see."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from aggregator.config import config_path, load_config, parse_duration, parse_size
from aggregator.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures" / "config"
BAD_CASES = sorted(path for path in FIXTURES.glob("*.yaml") if path.with_suffix(".errors").exists())


def test_every_bad_fixture_has_expected_errors() -> None:
    assert len(BAD_CASES) >= 10
    assert not [p for p in FIXTURES.glob("*.yaml") if p.name != "good.yaml" and p not in BAD_CASES]


@pytest.mark.parametrize("case", BAD_CASES, ids=lambda path: path.stem)
def test_bad_config_names_file_line_column_and_key(case: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(case)
    expected = [
        f"{case.parent}/{line}" for line in case.with_suffix(".errors").read_text().splitlines()
    ]
    assert str(raised.value).splitlines() == expected


def test_good_config_resolves_relative_paths_against_its_folder() -> None:
    config = load_config(FIXTURES / "good.yaml")
    assert config.output.dir == (FIXTURES / "../out").resolve()
    assert config.output.base_url == "http://localhost:9000/feeds/"
    assert config.store.url == f"sqlite:///{(FIXTURES / '../var/test.db').resolve()}"
    samples, zaobao = config.sources
    assert samples.path == FIXTURES / "posts"
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
