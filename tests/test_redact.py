"""Credentials in source URLs never reach what people and subscribers see (aggregator.redact)."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from aggregator.config.opml import Subscription, read_opml, write_opml
from aggregator.models import SiteSettings, SourceHealth, SourceState
from aggregator.redact import (
    SECRET_WORDS,
    MaskingFormatter,
    is_secret_name,
    mask_text,
    mask_url,
)
from aggregator.render.health import sources_html
from tests.farm import Farm, FarmConfig
from tests.helpers import farm_config, run_aggregator

# --- mask_url --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("http://user:pass@host/feed", "http://***@host/feed"),
        ("https://user@host/feed", "https://***@host/feed"),  # a name alone is masked too
        ("http://u:p@host:8080/f", "http://***@host:8080/f"),
        ("http://u%40x:p%3Aw@host/", "http://***@host/"),
        ("http://u:p@ss@host/", "http://***@host/"),  # up to the last @ of the authority
        ("http://u:p@[2001:db8::1]:81/f", "http://***@[2001:db8::1]:81/f"),
        ("//u:p@host/f", "//***@host/f"),
        ("ftp://u:p@host/f", "ftp://***@host/f"),
        ("http://@host/", "http://@host/"),  # nothing to hide
        # An @ after the authority is no userinfo: Mastodon feeds, e-mail addresses.
        ("https://mastodon.social/@Gargron.rss", "https://mastodon.social/@Gargron.rss"),
        ("http://host/?email=a@b.example", "http://host/?email=a@b.example"),
        ("http://host#x@y", "http://host#x@y"),
    ],
)
def test_userinfo_is_masked(url: str, masked: str) -> None:
    assert mask_url(url) == masked


SECRET_NAMES = [
    "key",
    "api_key",
    "apikey",
    "apiKey",
    "API_KEY",
    "api-key",
    "api%5Fkey",
    "token",
    "access_token",
    "accessToken",
    "private_token",
    "auth",
    "password",
    "passwd",
    "secret",
    "client_secret",
    "signature",
    "X-Amz-Signature",
    "sig",
    "session",
    "sid",
    "sessionId",
    "session_id",
    "PHPSESSID",
    "oauth_token",
    "sort_key",  # "names ending in _key": over-masking is the safe side
    "key[]",
]
PLAIN_NAMES = ["page", "q", "keyword", "monkey", "tokens_left", "format", "id", "user", "sigma"]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_query_values_are_masked(name: str) -> None:
    assert is_secret_name(name)
    url = f"https://h.example/feed?page=2&{name}=S3cr%2Ft&fmt=rss"
    assert mask_url(url) == f"https://h.example/feed?page=2&{name}=***&fmt=rss"


@pytest.mark.parametrize("name", PLAIN_NAMES)
def test_other_query_values_are_kept(name: str) -> None:
    assert not is_secret_name(name)
    url = f"https://h.example/feed?{name}=value&b=1"
    assert mask_url(url) == url


def test_every_secret_word_is_a_secret_name_in_any_spelling() -> None:
    for word in SECRET_WORDS:
        for name in (word, word.upper(), f"x_{word}", f"x-{word}", f"x{word.capitalize()}"):
            assert is_secret_name(name), name


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        # A `;` inside a secret value leaves no tail in view; the next `&` ends it.
        ("http://h/?token=ab;cd&x=1", "http://h/?token=***&x=1"),
        ("http://h/?a=1;token=ab;cd&x=1", "http://h/?a=1;token=***&x=1"),
        ("http://h/?token=&x=1", "http://h/?token=&x=1"),  # empty: nothing to hide
        ("http://h/?token&x=1", "http://h/?token&x=1"),  # no value at all
        ("http://h/?x=a=b&token=c=d", "http://h/?x=a=b&token=***"),
        # A URL nested unencoded in a value gets its own masking.
        ("http://p/?next=http://u:p@h/f?sig=1&b=2", "http://p/?next=http://***@h/f?sig=***&b=2"),
        ("?token=x", "?token=***"),  # a relative URL
        ("http://u:p@h/f?api_key=SECRET&x=1#frag", "http://***@h/f?api_key=***&x=1#frag"),
    ],
)
def test_query_edge_cases(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    "url",
    [
        "http://h/feed#token=abc",  # a fragment is never sent: kept
        "http://h/feed#a?token=abc",  # a `?` in the fragment starts no query
        "https://例え.テスト/フィード?q=中文&x=%E4%B8%AD#章",
        "http://h/a%20b/./../c?x=1&&y=2;z=3&=4&%zz=5#%",
        "HTTP://H.EXAMPLE:0080/Feed.XML?Page=2",
        "/srv/archive/_posts",
        "",
    ],
)
def test_everything_else_is_kept_byte_for_byte(url: str) -> None:
    assert mask_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1",  # urllib raises "Invalid IPv6 URL"
        "http://u:p@[::1/f?token=1",
        "http://u:p@host:port:more/f",
        "http://\x00u:p\n@h/\x7f?sig=\ud800",
        "::::////@@@@????####&&&&====;;;;",
        "http",
        "://",
        "//",
        "?",
        "=",
    ],
)
def test_urls_urllib_cannot_parse_never_raise(url: str) -> None:
    masked = mask_url(url)
    assert "u:p" not in masked
    assert mask_url(masked) == masked


def test_urllib_really_refuses_one_of_them() -> None:
    with pytest.raises(ValueError):
        urlsplit("http://[::1")
    assert mask_url("http://u:p@[::1") == "http://***@[::1"


def test_masking_twice_changes_nothing() -> None:
    for url in ["http://u:p@h/?token=a;b&sig=c", "//u@h/?k%65y=1", "http://p/?n=http://u:p@h/"]:
        once = mask_url(url)
        assert mask_url(once) == once
        assert mask_text(once) == once


# --- mask_text -------------------------------------------------------------------------------


def test_every_url_in_a_message_is_masked() -> None:
    text = (
        "redirect loop: http://user:pass@h.example/a?api_key=SECRET -> "
        "https://u:pw@h.example/b?page=2&token=SECRET2, then (see 'ftp://x:y@z/f'). "
        "http://u:p@h/feed: HTTP 404"
    )
    assert mask_text(text) == (
        "redirect loop: http://***@h.example/a?api_key=*** -> "
        "https://***@h.example/b?page=2&token=***, then (see 'ftp://***@z/f'). "
        "http://***@h/feed: HTTP 404"
    )


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("(moved to http://h/?token=abc).", "(moved to http://h/?token=***)."),
        ('"http://u:p@h/x?sig=1"', '"http://***@h/x?sig=***"'),
        ("<http://u:p@h/>", "<http://***@h/>"),
        ("at http://h/#x?token=a", "at http://h/#x?token=***"),  # in a message # may join two
        ("what? http://h/ ok?", "what? http://h/ ok?"),
        ("no URL: user:pass@host, token=abc", "no URL: user:pass@host, token=abc"),
        ("connection refused", "connection refused"),
        ("", ""),
    ],
)
def test_text_edges(text: str, masked: str) -> None:
    assert mask_text(text) == masked


# --- linear time -----------------------------------------------------------------------------

MB = 1_000_000


def _log_lines() -> str:
    line = (
        "ERROR feed-{n}: failed: redirect loop: http://user:pw@news.example.org/feed.xml"
        "?api_key=abc{n}&page=2&lang=zh -> http://news.example.org/rss?sid={n}#top\n"
    )
    text = "".join(line.format(n=number) for number in range(MB // len(line) + 1))
    return text[:MB]


ONE_MB_INPUTS: dict[str, Callable[[], str]] = {
    "log lines full of URLs": _log_lines,
    "scheme separators": lambda: "://" * (MB // 3),
    "separators and @": lambda: "://@" * (MB // 4),
    "one authority of @": lambda: "http://" + "@" * MB,
    "one long query name": lambda: "http://h/?" + "aB" * (MB // 2) + "_key=1",
    "percent signs": lambda: "http://h/?" + "%" * MB + "=1",
    "ampersands": lambda: "http://h/?" + "&" * MB,
    "closing punctuation": lambda: "see http://h/?token=x" + ")" * MB,
    "no break at all": lambda: "x" * MB,
}


@pytest.mark.parametrize("shape", sorted(ONE_MB_INPUTS))
def test_a_megabyte_is_masked_well_under_a_second(shape: str) -> None:
    text = ONE_MB_INPUTS[shape]()
    for mask in (mask_text, mask_url):
        started = time.perf_counter()
        mask(text)
        elapsed = time.perf_counter() - started
        assert elapsed < 0.5, f"{mask.__name__} took {elapsed:.2f} s on {shape}"


def test_the_megabyte_of_log_lines_is_masked_throughout() -> None:
    masked = mask_text(_log_lines())
    assert "user:pw" not in masked
    assert "api_key=abc" not in masked
    assert "?sid=1" not in masked
    assert masked.count("api_key=***") > 5000


def test_the_log_formatter_masks_messages_and_tracebacks() -> None:
    formatter = MaskingFormatter("%(levelname)s %(message)s")
    try:
        raise ValueError("cannot read http://u:pass@h/f?token=SECRET")
    except ValueError:
        record = logging.getLogger("t").makeRecord(
            "t",
            logging.ERROR,
            __file__,
            1,
            "%s: failed: %s",
            ("feed", "http://u:pass@h/"),
            sys.exc_info(),
            None,
        )
    line = formatter.format(record)
    assert line.startswith("ERROR feed: failed: http://***@h/\nTraceback")
    assert "token=***" in line
    assert "SECRET" not in line and "pass@" not in line


# --- where URLs are shown --------------------------------------------------------------------


def test_the_sources_page_masks_the_last_error(tmp_path: Path) -> None:
    state = SourceState(
        name="private",
        last_fetch_at=datetime(2024, 5, 1, tzinfo=UTC),
        last_result="error",
        last_error="redirect loop: http://u:pass@h.example/f?api_key=SECRET -> http://h/",
        error_streak=2,
    )
    site = SiteSettings(dir=tmp_path, base_url="http://127.0.0.1:8080/", title="Aggregator")
    page = sources_html(site, [SourceHealth("private", "feed", True, 0, state)]).decode()
    assert "SECRET" not in page
    assert "pass@" not in page
    assert "http://***@h.example/f?api_key=***" in page


def test_opml_export_masks_and_import_messages_mask() -> None:
    feed = Subscription(
        "private", "https://u:pass@h.example/f?token=SECRET", "https://u:pass@h.example/?sid=S"
    )
    data = write_opml("Mine", [feed]).decode()
    assert 'xmlUrl="https://***@h.example/f?token=***"' in data
    assert 'htmlUrl="https://***@h.example/?sid=***"' in data
    opml = (
        b'<opml version="2.0"><body><outline type="HTML+XPath" text="scrape"'
        b' xmlUrl="https://u:pass@h.example/news?key=SECRET"/></body></opml>'
    )
    (skipped,) = read_opml(opml, "x.opml").skipped
    assert skipped == "scrape (https://***@h.example/news?key=***): type 'html+xpath' is not a feed"


# --- end to end: a failing private source, through every output ------------------------------

LEAKS = ("SECRET", "pass@")


def _closed_port() -> int:
    # Bound, never listened on, closed: connecting is refused at once.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass(frozen=True)
class Outputs:
    folder: Path
    run: subprocess.CompletedProcess[str]
    commands: dict[str, subprocess.CompletedProcess[str]]


COMMANDS = {
    "status": ("status",),
    "status --json": ("status", "--json"),
    "sources list": ("sources", "list"),
    "sources list --json": ("sources", "list", "--json"),
    "opml export": ("opml", "export"),
}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Outputs:
    folder = tmp_path_factory.mktemp("private")
    with Farm(FarmConfig(feeds=1, items=2, churn=0.0)) as farm:
        port = urlsplit(farm.feed_urls()[0]).port
        secret = "user:pass@127.0.0.1:{port}/{path}?api_key=SECRET&x=1"
        config = farm_config(
            folder,
            [
                # Refused: the error names no URL.
                "http://" + secret.format(port=_closed_port(), path="feed.xml"),
                # Refused too, and the error quotes every URL of the loop.
                "http://" + secret.format(port=port, path="bad/loop/a"),
                # Moved for good: `status` shows where to, userinfo kept by the redirect.
                "http://" + secret.format(port=port, path="bad/moved"),
            ],
        )
        run = run_aggregator(config, "run", "--once")
    assert run.returncode == 0, run.stderr
    commands = {name: run_aggregator(config, *args) for name, args in COMMANDS.items()}
    return Outputs(folder, run, commands)


def test_the_sources_really_failed_and_moved(outputs: Outputs) -> None:
    # Without this the other tests could pass on sources that never said anything.
    assert "redirect loop" in outputs.run.stderr
    rows = {row["name"]: row for row in json.loads(outputs.commands["status --json"].stdout)}
    assert rows["feed-0"]["last_error"] == "connection refused"
    assert rows["feed-1"]["last_error"].startswith("redirect loop: http://***@127.0.0.1:")
    assert "api_key=***&x=1" in rows["feed-1"]["last_error"]
    assert rows["feed-2"]["moved_to"].startswith("http://***@127.0.0.1:")
    listed = json.loads(outputs.commands["sources list --json"].stdout)
    assert listed[0]["location"].endswith("/feed.xml?api_key=***&x=1")


def test_no_output_file_holds_a_credential(outputs: Outputs) -> None:
    files = [path for path in (outputs.folder / "public").rglob("*") if path.is_file()]
    assert outputs.folder / "public" / "index.html" in files
    for path in files:
        data = path.read_bytes()
        for leak in LEAKS:
            assert leak.encode() not in data, f"{leak} in {path}"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_no_command_output_holds_a_credential(outputs: Outputs, command: str) -> None:
    result = outputs.commands[command]
    assert result.returncode == 0, result.stderr
    for leak in LEAKS:
        assert leak not in result.stdout, f"{leak} in the output of {command}"
        assert leak not in result.stderr, f"{leak} in the errors of {command}"


def test_the_run_logs_hold_no_credential(outputs: Outputs) -> None:
    for leak in LEAKS:
        assert leak not in outputs.run.stderr
        assert leak not in outputs.run.stdout
