"""`aggregator sources ...`: the real CLI editing a hand-written, commented config in place."""

from __future__ import annotations

import difflib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from aggregator.config import format_duration, load_config, parse_duration
from aggregator.config.edit import ConfigEditError, add_sources, remove_source, set_enabled
from tests.helpers import run_aggregator, serving

FIXTURES = Path(__file__).parent / "fixtures"
COMMENTED = FIXTURES / "configedit" / "commented.yaml"
FEED = FIXTURES / "feeds" / "dates_iso.xml"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    copy = tmp_path / "config" / "aggregator.yaml"
    copy.parent.mkdir()
    shutil.copyfile(COMMENTED, copy)
    return copy


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1: a blog page announcing its feed, the feed, a page
    announcing nothing."""
    root = tmp_path / "www"
    root.mkdir()
    shutil.copyfile(FEED, root / "feed.atom")
    (root / "blog.html").write_text(
        "<!DOCTYPE html><html><head><title>Blog</title>"
        '<link rel="alternate" type="application/atom+xml" title="Posts" href="/feed.atom">'
        "</head><body><h1>Blog</h1></body></html>"
    )
    (root / "plain.html").write_text("<!DOCTYPE html><html><body><p>no feed</p></body></html>")
    with serving(partial(_CountingHandler, directory=str(root))) as base_url:
        yield base_url


@pytest.fixture
def counted_site(tmp_path: Path, site: str) -> tuple[str, list[str]]:
    """The same site, and the paths it has been asked for since."""
    del tmp_path
    _CountingHandler.seen.clear()
    return site, _CountingHandler.seen


class _CountingHandler(_QuietHandler):
    seen: list[str] = []  # noqa: RUF012 - one list the fixture hands out and clears

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        super().do_GET()


def _inserted_only(before: str, after: str) -> list[str]:
    """The lines `after` adds to `before`; fails if any line of `before` changed or went."""
    added: list[str] = []
    matcher = difflib.SequenceMatcher(a=before.splitlines(), b=after.splitlines(), autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        assert tag in ("equal", "insert"), f"{tag}: {before.splitlines()[i1:i2]}"
        if tag == "insert":
            added += after.splitlines()[j1:j2]
    return added


def test_add_then_remove_gives_back_the_same_bytes(config: Path) -> None:
    before = config.read_bytes()
    added = run_aggregator(
        config,
        "sources", "add", "新闻-feed", "https://example.org/feed.xml",
        "--tag", "联合早报", "--tag", "world news", "--interval", "10m", "--no-check",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "SIGHUP" in added.stdout
    after = config.read_text(encoding="utf-8")
    new_lines = _inserted_only(before.decode("utf-8"), after)
    assert new_lines == [
        "- name: 新闻-feed",
        "  kind: feed",
        "  url: https://example.org/feed.xml",
        "  tags: [联合早报, world news]",
        "  interval: 10m",
    ]
    source = load_config(config).sources[-1]
    assert (source.name, source.tags, source.url) == (
        "新闻-feed",
        ("联合早报", "world news"),
        "https://example.org/feed.xml",
    )
    removed = run_aggregator(config, "sources", "remove", "新闻-feed")
    assert removed.returncode == 0, removed.stderr
    assert "SIGHUP" in removed.stdout
    assert config.read_bytes() == before


@pytest.mark.parametrize("name", ["zaobao-china", "archive", "hn"])
def test_disable_then_enable_gives_back_the_same_bytes(config: Path, name: str) -> None:
    before = config.read_bytes()
    disabled = run_aggregator(config, "sources", "disable", name)
    assert disabled.returncode == 0, disabled.stderr
    assert "SIGHUP" in disabled.stdout
    assert load_config(config).source(name).enabled is False  # type: ignore[union-attr]
    if name != "hn":  # hn is a one-line {...} mapping: its line changes
        assert len(_inserted_only(before.decode(), config.read_text())) <= 1
    enabled = run_aggregator(config, "sources", "enable", name)
    assert enabled.returncode == 0, enabled.stderr
    assert config.read_bytes() == before


def test_enable_keeps_the_comment_on_the_enabled_line(config: Path) -> None:
    result = run_aggregator(config, "sources", "enable", "sina-finance")
    assert result.returncode == 0, result.stderr
    assert "  enabled: true          # flaky since March\n" in config.read_text()
    assert load_config(config).source("sina-finance").enabled is True  # type: ignore[union-attr]


def test_removing_a_middle_source_keeps_the_others_and_the_comments(config: Path) -> None:
    before = config.read_text()
    result = run_aggregator(config, "sources", "remove", "sina-finance")
    assert result.returncode == 0, result.stderr
    after = config.read_text()
    assert [s.name for s in load_config(config).sources] == ["zaobao-china", "archive", "hn"]
    assert _inserted_only(after, before) == [
        "- name: sina-finance",
        "  kind: feed",
        '  url: "https://rss.sina.com.cn/finance/china.xml"',
        "  tags:",
        "      - 新浪财经",
        '      - "finance"',
        "  enabled: false          # flaky since March",
        "  # timeout: 60s",
        "",  # one of the two blank lines around it
    ]
    assert "# --- the archive ---" in after


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["zaobao-china", "https://example.org/other.xml"], "a source named 'zaobao-china'"),
        (["again", "https://www.zaobao.com/realtime/china/rss.xml"], "already in the config"),
        (["again", "https://news.ycombinator.com/rss?utm_source=x"], "already in the config"),
    ],
)
def test_a_duplicate_name_or_url_is_refused(config: Path, args: list[str], message: str) -> None:
    before = config.read_bytes()
    result = run_aggregator(config, "sources", "add", *args, "--no-check")
    assert result.returncode == 1
    assert message in result.stderr
    assert "nothing changed" in result.stderr
    assert config.read_bytes() == before


def test_a_bad_interval_is_refused_by_its_option_with_a_hint(config: Path) -> None:
    before = config.read_bytes()
    result = run_aggregator(
        config, "sources", "add", "x", "https://example.org/x.xml", "--interval", "10 minutes",
        "--no-check",
    )  # fmt: skip
    assert result.returncode == 1
    # Named by the option typed, not by a line of a file that does not have it.
    assert result.stderr.splitlines() == [
        "error: --interval: '10 minutes' is not a duration; use 10m or 1h",
        "nothing changed",
    ]
    assert config.read_bytes() == before


@pytest.mark.parametrize(
    ("args", "errors"),
    [
        (["--interval", "often"], ["error: --interval: 'often' is not a duration; use 10m or 1h"]),
        (
            ["--kind", "page", "--selector", "a[href", "--interval", "0s"],
            [
                "error: --interval: must be longer than zero",
                "error: --selector: 'a[href' is not a CSS selector: Malformed attribute selector"
                " at position 1",
            ],
        ),
        (
            ["--title", " "],
            ["error: --title: is blank; leave `title` out to show the source's name"],
        ),
    ],
    ids=["interval", "page", "title"],
)
def test_every_option_is_checked_before_the_url_is_fetched(
    config: Path, counted_site: tuple[str, list[str]], args: list[str], errors: list[str]
) -> None:
    site, requests = counted_site
    before = config.read_bytes()
    result = run_aggregator(config, "sources", "add", "blog", f"{site}/blog.html", *args)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [*errors, "nothing changed"]
    assert requests == [], "nothing is fetched for a source that cannot be added"
    assert config.read_bytes() == before


def test_a_failed_check_names_the_url_once(config: Path, site: str) -> None:
    result = run_aggregator(config, "sources", "add", "gone", f"{site}/missing.xml")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: {site}/missing.xml: HTTP 404 Not Found; nothing changed"
        " (--no-check adds it without checking)"
    ]


def test_a_new_tag_close_to_one_in_use_gets_a_note(config: Path) -> None:
    result = run_aggregator(
        config, "sources", "add", "x", "https://example.org/x.xml", "--tag", "finance",
        "--tag", "chinaa", "--no-check",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "note: no source has the tag 'chinaa' yet; did you mean 'china'?"
    ]
    assert load_config(config).source("x").tags == ("finance", "chinaa")  # type: ignore[union-attr]


def test_a_page_announcing_a_feed_adds_the_feed(config: Path, site: str) -> None:
    result = run_aggregator(config, "sources", "add", "blog", f"{site}/blog.html", "--tag", "b")
    assert result.returncode == 0, result.stderr
    assert f"it announces the feed {site}/feed.atom" in result.stdout
    assert "with 3 entries" in result.stdout
    source = load_config(config).source("blog")
    assert source is not None
    assert (source.kind, source.url, source.tags) == ("feed", f"{site}/feed.atom", ("b",))


def test_a_feed_url_is_checked_and_added_as_it_is(config: Path, site: str) -> None:
    result = run_aggregator(config, "sources", "add", "iso", f"{site}/feed.atom")
    assert result.returncode == 0, result.stderr
    assert "checked: a feed (ISO dates) with 3 entries" in result.stdout
    assert load_config(config).source("iso").url == f"{site}/feed.atom"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("path", "message"),
    [("/missing.xml", "404"), ("/plain.html", "an HTML page, not a feed")],
)
def test_a_source_that_fails_its_check_is_not_added(
    config: Path, site: str, path: str, message: str
) -> None:
    before = config.read_bytes()
    result = run_aggregator(config, "sources", "add", "broken", site + path)
    assert result.returncode == 1
    assert message in result.stderr
    assert "--no-check" in result.stderr
    assert config.read_bytes() == before


def test_a_page_source_is_checked_with_its_selector(config: Path, site: str) -> None:
    args = ["sources", "add", "front", f"{site}/blog.html", "--kind", "page"]
    refused = run_aggregator(config, *args, "--selector", "ul.news a")
    assert refused.returncode == 1
    assert "picks no article link" in refused.stderr
    assert run_aggregator(config, *args).returncode == 1  # no --selector at all


def test_list_shows_every_source(config: Path) -> None:
    result = run_aggregator(config, "sources", "list")
    assert result.returncode == 0, result.stderr
    for name in ("zaobao-china", "sina-finance", "archive", "hn", "联合早报, china"):
        assert name in result.stdout
    listed = run_aggregator(config, "sources", "list", "--json")
    assert '"enabled": false' in listed.stdout


def test_list_shows_intervals_as_the_config_writes_them(config: Path) -> None:
    added = run_aggregator(
        config, "sources", "add", "slow", "https://example.org/slow.xml", "--interval", "1h30m",
        "--no-check",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    table = run_aggregator(config, "sources", "list")
    assert table.returncode == 0, table.stderr
    rows = {line.split()[1]: line for line in table.stdout.splitlines() if "│" in line}
    assert rows["zaobao-china"].rstrip(" │").endswith("10m")  # its own interval
    assert rows["hn"].rstrip(" │").endswith("30m")  # defaults.interval
    assert rows["slow"].rstrip(" │").endswith("1h30m")
    assert ":00" not in table.stdout
    listed = json.loads(run_aggregator(config, "sources", "list", "--json").stdout)
    assert {row["name"]: row["interval"] for row in listed}["slow"] == "1h30m"


@pytest.mark.parametrize(
    ("spelled", "shown"),
    [("15m", "15m"), ("90m", "1h30m"), ("1d", "1d"), ("2w3d", "2w3d"), ("45s", "45s"),
     ("1.5s", "1s500ms"), ("0s", "0s"), ("1h0m5s", "1h5s"), ("36h", "1d12h")],
)  # fmt: skip
def test_durations_are_formatted_so_the_config_reads_them_back(spelled: str, shown: str) -> None:
    assert format_duration(parse_duration(spelled)) == shown
    assert parse_duration(shown) == parse_duration(spelled)


def test_unknown_source_names_are_errors(config: Path) -> None:
    before = config.read_bytes()
    for command in ("remove", "enable", "disable"):
        result = run_aggregator(config, "sources", command, "nope")
        assert result.returncode == 1
        assert result.stderr == (
            f"error: no source named 'nope' in {config}; the sources are "
            "archive, hn, sina-finance, zaobao-china\n"
        )
    assert config.read_bytes() == before


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("zaobao-chna", "'zaobao-china'"), ("HN", "'hn'"), ("sina", "'sina-finance'")],
)
def test_a_mistyped_source_name_gets_a_did_you_mean(config: Path, typed: str, meant: str) -> None:
    for command in ("remove", "enable", "disable"):
        result = run_aggregator(config, "sources", command, typed)
        assert result.returncode == 1
        assert result.stderr == (
            f"error: no source named {typed!r} in {config}; did you mean {meant}?\n"
        )


# ---- the editing functions on their own ----------------------------------------------------


def test_crlf_files_stay_crlf() -> None:
    text = "sources:\r\n  - name: a\r\n    kind: feed\r\n    url: https://a.example/f\r\n"
    added = add_sources(text, [{"name": "b", "kind": "feed", "url": "https://b.example/f"}])
    assert added == text + "  - name: b\r\n    kind: feed\r\n    url: https://b.example/f\r\n"
    assert remove_source(added, "b") == text


def test_a_config_without_sources_gets_a_list() -> None:
    text = "# only output\noutput: {dir: ../public}"
    added = add_sources(text, [{"name": "b", "kind": "feed", "url": "https://b.example/f"}])
    assert added == text + "\nsources:\n  - name: b\n    kind: feed\n    url: https://b.example/f\n"


def test_an_empty_flow_list_round_trips() -> None:
    text = "sources: []   # none yet\nrules: []\n"
    added = add_sources(text, [{"name": "b", "kind": "feed", "url": "https://b.example/f"}])
    assert added.startswith("sources:   # none yet\n  - name: b\n")
    assert remove_source(add_sources("sources: []\n", [{"name": "b"}]), "b") == "sources: []\n"
    assert remove_source(added, "b") == text


def test_a_flow_list_of_sources_is_refused_clearly() -> None:
    with pytest.raises(ConfigEditError, match="write it as a block list"):
        flow = "sources: [{name: a, kind: feed, url: 'https://a.example/'}]\n"
        add_sources(flow, [{"name": "b"}])
    with pytest.raises(ConfigEditError, match="no source named 'x'"):
        set_enabled("sources:\n  - name: a\n", "x", False)


def test_a_folder_of_posts_is_stored_relative_to_the_config(config: Path, tmp_path: Path) -> None:
    posts = tmp_path / "archive" / "_posts"
    posts.mkdir(parents=True)
    result = subprocess.run(
        [sys.executable, "-m", "aggregator", "--config", str(config), "sources", "add", "arch",
         "archive/_posts", "--kind", "posts"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "  path: ../archive/_posts\n" in config.read_text()
    assert load_config(config).source("arch").path == posts  # type: ignore[union-attr]
    missing = run_aggregator(
        config, "sources", "add", "nope", str(tmp_path / "nope"), "--kind", "posts"
    )
    assert missing.returncode == 1
    assert "is not a folder" in missing.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--config", "{config}", "sources", "list", "--json"],
        ["-c", "{config}", "sources", "list", "--json"],
        ["sources", "list", "--json", "--config", "{config}"],
        ["sources", "list", "--json", "-c", "{config}"],
        ["sources", "list", "--config={config}", "--json"],
    ],
    ids=["long-first", "short-first", "long-after", "short-after", "equals-after"],
)
def test_the_config_option_is_taken_before_or_after_the_subcommand(
    config: Path, args: list[str]
) -> None:
    command = [arg.replace("{config}", str(config)) for arg in args]
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=config.parent.parent,  # no config/aggregator.yaml here: only the option finds it
    )
    assert done.returncode == 0, done.stderr
    names = [source["name"] for source in json.loads(done.stdout)]
    assert names == [source.name for source in load_config(config).sources]
