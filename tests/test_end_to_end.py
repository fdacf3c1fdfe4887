"""The whole pipeline through the real CLI on the sample posts, as a user runs it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import quote, urlsplit

import feedparser
import httpx
import pytest
from lxml import html as lxml_html

from aggregator.models import Document
from aggregator.parse import parse_post
from tests.farm import Farm, FarmConfig
from tests.helpers import run_aggregator, serving

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
CLEAN_FIXTURES = Path(__file__).parent / "fixtures" / "clean"
JUNK = (
    "subscribe.sph.com.sg",
    "dfp-ad",
    "innity",
    "责任编辑",
    "海量资讯",
    "appendQr",
    "<style",
    "<script",
    "referrerpolicy",
    "pinger-seen",
    "utm_",
)
EXPECTED_TAGS = {"联合早报": 4, "新浪财经": 1, "金融": 1, "新浪财经-国內": 1, "samples": 5}


def _site(tmp_path: Path, *, port: int = 8080) -> Path:
    """A copy of the shipped layout: config/aggregator.yaml next to seeds/."""
    shutil.copytree(SEEDS, tmp_path / "seeds")
    (tmp_path / "config").mkdir()
    shipped = (ROOT / "config" / "aggregator.yaml").read_text(encoding="utf-8")
    config = tmp_path / "config" / "aggregator.yaml"
    config.write_text(
        shipped.replace("port: 8080", f"port: {port}").replace(
            "127.0.0.1:8080", f"127.0.0.1:{port}"
        ),
        encoding="utf-8",
    )
    return config


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {
        str(path.relative_to(folder)): (
            hashlib.sha256(path.read_bytes()).hexdigest(),
            path.stat().st_mtime_ns,
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def published(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    config = _site(tmp_path_factory.mktemp("site"))
    return config, run_aggregator(config, "run", "--once")


def test_first_pass_succeeds_and_writes_the_spec_paths(
    published: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    config, result = published
    assert result.returncode == 0, result.stderr
    out = config.parent.parent / "public"
    for name in ("index.html", "feeds.opml", "all.rss", "all.atom", "all.json"):
        assert (out / name).is_file(), name
    for tag in EXPECTED_TAGS:
        for ext in ("rss", "atom", "json"):
            assert (out / "tags" / f"{tag}.{ext}").is_file(), f"{tag}.{ext}"


def test_five_samples_give_five_items_and_the_tag_counts(
    published: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    config, _ = published
    out = config.parent.parent / "public"
    assert len(feedparser.parse((out / "all.atom").read_bytes()).entries) == 5
    found = {path.stem: path for path in (out / "tags").glob("*.atom")}
    assert set(found) == set(EXPECTED_TAGS)
    for tag, count in EXPECTED_TAGS.items():
        for ext in ("rss", "atom", "json"):
            assert len(_entries(out / "tags" / f"{tag}.{ext}")) == count, (tag, ext)


def test_every_feed_is_valid_and_every_entry_complete(
    published: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    config, _ = published
    out = config.parent.parent / "public"
    titles = {_seed_title(seed) for seed in SEEDS.iterdir()}
    feeds = [*out.glob("all.*"), *(out / "tags").glob("*")]
    feeds = [path for path in feeds if path.suffix in (".rss", ".atom", ".json")]
    assert len(feeds) == 3 * (1 + len(EXPECTED_TAGS))
    for path in feeds:
        entries = _entries(path)
        ids = [entry["id"] for entry in entries]
        assert len(ids) == len(set(ids)), path
        for entry in entries:
            assert entry["id"] and entry["title"] in titles, (path, entry["title"])
            parts = urlsplit(entry["link"])
            assert parts.scheme in ("http", "https") and parts.netloc, entry["link"]
            assert entry["date"].endswith(("Z", "+0000", "+00:00", "GMT")), (path, entry["date"])
            assert len(entry["content"]) > 100, (path, entry["title"])


def test_ids_and_links_are_the_same_story_in_every_format(
    published: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    config, _ = published
    out = config.parent.parent / "public"
    by_format = [
        {entry["id"]: entry["link"] for entry in _entries(out / f"all.{ext}")}
        for ext in ("rss", "atom", "json")
    ]
    assert by_format[0] == by_format[1] == by_format[2]


def test_no_junk_reaches_any_output_file(
    published: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    config, _ = published
    out = config.parent.parent / "public"
    files = [path for path in out.rglob("*") if path.is_file()]
    assert len(files) >= 20
    for path in files:
        text = path.read_text(encoding="utf-8")
        for junk in JUNK:
            assert junk not in text, (path, junk)


@pytest.mark.parametrize("seed", sorted(SEEDS.iterdir()), ids=lambda path: path.stem)
def test_every_paragraph_of_real_text_is_kept(
    published: tuple[Path, subprocess.CompletedProcess[str]], seed: Path
) -> None:
    config, _ = published
    out = config.parent.parent / "public"
    feed = feedparser.parse((out / "all.atom").read_bytes())
    (entry,) = [entry for entry in feed.entries if entry.title == _seed_title(seed)]
    text = "".join(map(str, lxml_html.fromstring(entry.content[0].value).itertext()))
    expected = (CLEAN_FIXTURES / seed.stem / "expected.txt").read_text(encoding="utf-8")
    paragraphs = [line.strip() for line in expected.splitlines() if line.strip()]
    assert paragraphs
    for paragraph in paragraphs:
        assert paragraph in text, paragraph[:40]


def test_second_pass_adds_nothing_and_rewrites_nothing(tmp_path: Path) -> None:
    config = _site(tmp_path)
    assert run_aggregator(config, "run", "--once").returncode == 0
    out = tmp_path / "public"
    before = _snapshot(out)
    second = run_aggregator(config, "run", "--once")
    assert second.returncode == 0, second.stderr
    assert "pass: 0 new" in second.stderr
    assert _snapshot(out) == before


def test_broken_posts_are_named_and_skipped(tmp_path: Path) -> None:
    config = _site(tmp_path)
    seeds = tmp_path / "seeds"
    (seeds / "bad_front_matter.txt").write_text("---\ntitle: [unclosed\n---\n<p>x</p>\n")
    (seeds / "empty.txt").write_bytes(b"")
    (seeds / "undecodable.txt").write_bytes(bytes(range(256)) * 8)
    result = run_aggregator(config, "run", "--once")
    assert result.returncode == 0, result.stderr
    for name in ("bad_front_matter.txt", "empty.txt", "undecodable.txt"):
        assert name in result.stderr
    assert "3 skipped" in result.stderr
    feed = feedparser.parse((tmp_path / "public" / "all.atom").read_bytes())
    assert len(feed.entries) == 5
    strict = run_aggregator(config, "run", "--once", "--strict")
    assert strict.returncode == 0, "skipped posts are not source failures"


def test_a_failing_source_is_named_and_strict_exits_1(tmp_path: Path) -> None:
    config = _site(tmp_path)
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace(
            "sources:\n", "sources:\n  - name: gone\n    kind: posts\n    path: ../nowhere\n", 1
        ),
        encoding="utf-8",
    )
    result = run_aggregator(config, "run", "--once")
    assert result.returncode == 0
    assert "gone" in result.stderr and "nowhere" in result.stderr
    assert len(feedparser.parse((tmp_path / "public" / "all.atom").read_bytes()).entries) == 5
    strict = run_aggregator(config, "run", "--once", "--strict", "--retry-failed")
    assert strict.returncode == 1
    backing_off = run_aggregator(config, "run", "--once")
    assert "gone: backing off" in backing_off.stderr


def test_a_bad_config_exits_2_names_the_place_and_changes_nothing(tmp_path: Path) -> None:
    config = _site(tmp_path)
    assert run_aggregator(config, "run", "--once").returncode == 0
    before = _snapshot(tmp_path / "public")
    database = (tmp_path / "var" / "aggregator.db").read_bytes()
    good = config.read_text(encoding="utf-8")
    config.write_text(good.replace("interval: 15m", "interval: 15 minutes"), encoding="utf-8")
    (tmp_path / "seeds" / "new.txt").write_text(
        "---\ntitle: New\ndate: 2024-01-01\n---\n<p>new</p>\n"
    )
    for command in (("run", "--once"), ("check",)):
        result = run_aggregator(config, *command)
        assert result.returncode == 2
        line = next(line for line in good.splitlines() if "interval: 15m" in line)
        column = line.index("15m") + 1
        row = good.splitlines().index(line) + 1
        assert f"{config}:{row}:{column}: defaults.interval:" in result.stderr
    assert _snapshot(tmp_path / "public") == before
    assert (tmp_path / "var" / "aggregator.db").read_bytes() == database


def test_check_accepts_the_shipped_config() -> None:
    result = run_aggregator(ROOT / "config" / "aggregator.yaml", "check")
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_the_daemon_serves_the_feeds(tmp_path: Path) -> None:
    port = _free_port()
    config = _site(tmp_path, port=port)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "--config", str(config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        feed = _poll(f"{base}/all.atom")
        assert len(feedparser.parse(feed.content).entries) == 5
        assert feed.headers["content-type"].startswith("application/atom+xml")
        zaobao = _poll(f"{base}/tags/{quote('联合早报')}.atom")
        assert len(feedparser.parse(zaobao.content).entries) == 4
        sina = _poll(f"{base}/tags/{quote('新浪财经')}.atom")
        assert len(feedparser.parse(sina.content).entries) == 1
        assert _poll(f"{base}/").headers["content-type"].startswith("text/html")
    finally:
        daemon.terminate()
        daemon.wait(timeout=15)


def test_make_run_starts_the_daemon_on_the_shipped_config() -> None:
    dry = subprocess.run(
        ["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "aggregator --config config/aggregator.yaml run" in dry.stdout


def _entries(path: Path) -> list[dict[str, str]]:
    """Entries of an RSS, Atom or JSON feed as id/title/link/date/content; feedparser 6 reads
    RSS and Atom (asserting bozo 0), JSON Feed is read as the JSON it is."""
    if path.suffix == ".json":
        document = json.loads(path.read_text(encoding="utf-8"))
        assert document["version"] == "https://jsonfeed.org/version/1.1"
        return [
            {
                "id": item["id"],
                "title": item["title"],
                "link": item["url"],
                "date": item["date_published"],
                "content": item["content_html"],
            }
            for item in document["items"]
        ]
    feed = feedparser.parse(path.read_bytes())
    assert feed.bozo == 0, (path, feed.get("bozo_exception"))
    return [
        {
            "id": entry.id,
            "title": entry.title,
            "link": entry.link,
            "date": entry.get("published") or entry.get("updated"),
            "content": entry.content[0].value if "content" in entry else "",
        }
        for entry in feed.entries
    ]


def _seed_title(seed: Path) -> str:
    return parse_post(Document("samples", str(seed), seed.read_bytes())).title


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _poll(url: str, seconds: float = 30) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} not served within {seconds}s")
        time.sleep(0.2)


def test_sources_are_asked_with_the_configured_user_agent(tmp_path: Path) -> None:
    """By default requests name this instance's site, so a publisher can see who polls it;
    `defaults.user_agent` and a source's own `user_agent` replace it."""
    with Farm(FarmConfig(feeds=3, items=1, bad_citizens=False)) as farm:
        first, second, third = farm.feed_urls()
        config = tmp_path / "aggregator.yaml"
        config.write_text(
            "store: {url: 'sqlite:///state.db'}\n"
            "output: {dir: public, base_url: 'https://news.example.org/'}\n"
            "sources:\n"
            f"  - {{name: plain, kind: feed, url: '{first}'}}\n"
            f"  - {{name: own, kind: feed, url: '{second}',"
            " user_agent: 'Reader/1 (+mailto:a@b.c)'}\n"
        )
        assert run_aggregator(config, "run", "--once").returncode == 0
        configured = config.read_text().replace(
            "sources:\n", "defaults: {user_agent: 'Planet Example/1.0'}\nsources:\n"
        )
        config.write_text(configured + f"  - {{name: third, kind: feed, url: '{third}'}}\n")
        assert run_aggregator(config, "run", "--once").returncode == 0
        agents = [(log.path, log.user_agent) for log in farm.requests]
    by_path: dict[str, list[str | None]] = {}
    for path, agent in agents:
        by_path.setdefault(path, []).append(agent)
    paths = [urlsplit(url).path for url in (first, second, third)]
    default = by_path[paths[0]][0] or ""
    assert default.startswith("aggregator/") and default.endswith("(+https://news.example.org/)")
    assert by_path[paths[0]][1] == "Planet Example/1.0"
    assert set(by_path[paths[1]]) == {"Reader/1 (+mailto:a@b.c)"}
    assert by_path[paths[2]] == ["Planet Example/1.0"]


def test_logs_name_times_to_the_second_and_say_when_a_source_recovers(tmp_path: Path) -> None:
    feed = (Path(__file__).parent / "fixtures" / "feeds" / "atom_text_content.xml").read_bytes()
    broken = True

    class Flaky(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(500 if broken else 200)
            self.send_header("Content-Type", "application/atom+xml")
            self.end_headers()
            self.wfile.write(b"" if broken else feed)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Flaky) as base_url:
        config = tmp_path / "aggregator.yaml"
        config.write_text(
            "store: {url: 'sqlite:///state.db'}\noutput: {dir: public}\n"
            f"sources:\n  - {{name: flaky, kind: feed, url: '{base_url}/feed'}}\n"
        )
        failed = run_aggregator(config, "run", "--once")
        broken = False
        recovered = run_aggregator(config, "run", "--once", "--retry-failed")
    line = next(line for line in failed.stderr.splitlines() if "flaky: failed" in line)
    assert re.search(r"next try \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00\)$", line), line
    assert re.search(
        r"flaky: recovered after 1 failures \(failing since [0-9T:+-]+\)", recovered.stderr
    ), recovered.stderr
