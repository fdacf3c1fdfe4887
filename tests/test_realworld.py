"""The real-world corpus (../shared/realworld) through one real pass: every source's tag feed
against a mature reader, every difference in a class that is right by design, and each repro
file doing what its class says. See tests/realworld.py for how the pass is run and compared.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
import pytest

from tests.helpers import status_rows
from tests.realworld import (
    CORPUS,
    EMPTY,
    NOT_READ,
    SAME_ENTRY,
    UNEXPLAINED,
    CorpusFile,
    Outcome,
    compare,
    corpus_files,
    run_once,
    serve_corpus,
    skipped_messages,
    write_config,
)

pytestmark = pytest.mark.skipif(
    not (CORPUS / "real").is_dir(), reason=f"the real-world corpus is not at {CORPUS}"
)


@dataclass(frozen=True)
class Run:
    folder: Path
    files: list[CorpusFile]
    exit_code: int
    stderr: str
    status: dict[str, dict[str, Any]]
    outcomes: dict[str, Outcome]

    def outcome(self, path: str) -> Outcome:
        return next(o for o in self.outcomes.values() if o.file.path.as_posix() == path)

    def items(self, path: str) -> list[dict[str, Any]]:
        """The source's own articles as stored: title, link (as `url`) and date. Its tag feed
        may show a story in another source's words, when that source carried it first."""
        name = self.outcome(path).file.name
        with sqlite3.connect(self.folder / "store.db") as db:
            rows = db.execute(
                "SELECT title, link, published FROM article WHERE source = ? ORDER BY key",
                (name,),
            ).fetchall()
        return [{"title": title, "url": link, "published": when} for title, link, when in rows]


def _run(folder: Path, files: list[CorpusFile]) -> Run:
    with serve_corpus() as base_url:
        config = write_config(folder, files, base_url)
        done = run_once(config)
    status = status_rows(config)
    outcomes = compare(folder, files, status, skipped_messages(done.stderr))
    return Run(
        folder,
        files,
        done.returncode,
        done.stderr,
        status,
        {outcome.file.name: outcome for outcome in outcomes},
    )


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """real/, edge/ and repro/ in one pass, as a new user would try them."""
    return _run(tmp_path_factory.mktemp("realworld"), corpus_files())


@pytest.fixture(scope="module")
def repro_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """repro/ alone: in the whole corpus, other files' copies of example.com URLs are the same
    stories by design, and would speak for these."""
    return _run(tmp_path_factory.mktemp("repro"), corpus_files(("repro",)))


def test_one_pass_over_the_whole_corpus_completes(corpus_run: Run) -> None:
    assert corpus_run.exit_code == 0, corpus_run.stderr[-3000:]
    assert "Traceback" not in corpus_run.stderr


def test_every_failing_source_says_why(corpus_run: Run) -> None:
    for name, row in corpus_run.status.items():
        assert row["health"] in ("ok", "failing", "backing off"), (name, row)
        if row["health"] != "ok":
            assert row["last_error"], name
            assert "Traceback" not in row["last_error"]


def test_real_feeds_keep_what_feedparser_finds(corpus_run: Run) -> None:
    real = [o for o in corpus_run.outcomes.values() if o.file.set == "real"]
    found = sum(o.reference or 0 for o in real)
    kept = sum(o.kept for o in real)
    assert kept >= 0.99 * found, f"{kept} of {found}"
    for outcome in real:
        assert outcome.error is None, (outcome.file.path, outcome.error)
        if outcome.reference:
            assert outcome.items, f"{outcome.file.path}: no items"


@pytest.mark.parametrize("set_name", ["real", "edge", "repro"])
def test_every_difference_is_one_that_is_right_by_design(corpus_run: Run, set_name: str) -> None:
    accepted = {EMPTY, SAME_ENTRY} | ({NOT_READ} if set_name == "edge" else set())
    unexplained = [
        (outcome.file.path.as_posix(), why, entry)
        for outcome in corpus_run.outcomes.values()
        if outcome.file.set == set_name
        for entry, why in outcome.missing
        if why not in accepted
    ]
    assert not unexplained, unexplained[:10]
    assert UNEXPLAINED not in {why for _, why, _ in unexplained}


# --- each repro file does what its class says -----------------------------------------------


def test_a_bad_host_in_a_link_keeps_the_entry(repro_run: Run) -> None:
    (item,) = repro_run.items("repro/crash_bad_host_link.xml")
    assert item["title"] == "Broken link"


def test_an_offset_of_24_hours_or_more_keeps_the_entry(repro_run: Run) -> None:
    (item,) = repro_run.items("repro/crash_offset_3000.xml")
    assert item["title"] == "Offset +3000"
    assert item["published"].startswith("2016-03-11")


def test_a_bare_ampersand_is_read(repro_run: Run) -> None:
    (item,) = repro_run.items("repro/crash_podcast_bare_ampersand.xml")
    assert item["title"] == "Salt & pepper"


def test_posts_a_fragment_apart_stay_posts(repro_run: Run) -> None:
    items = repro_run.items("repro/fragment_links.xml")
    assert sorted(item["url"] for item in items) == [
        "http://example.com/2017/06/26.html#a080605",
        "http://example.com/2017/06/26.html#a120000",
        "http://example.com/2017/06/26.html#a193000",
    ]


def test_episodes_linking_to_their_show_stay_episodes(repro_run: Run) -> None:
    items = repro_run.items("repro/shared_link_podcast.xml")
    assert sorted(item["title"] for item in items) == [
        "Episode 1: Welcome",
        "Episode 2: Dragons",
        "Episode 3: Beer",
    ]


def test_links_keep_their_query_and_fragment(repro_run: Run) -> None:
    links = {item["title"]: item["url"] for item in repro_run.items("repro/link_rewrite.xml")}
    assert links == {
        "Valueless query parameter": "http://c.example.com/click/here.pl?r123",
        "Fragment": "http://example.com/page.html#section-2",
    }


def test_plain_text_titles_stay_text(repro_run: Run) -> None:
    titles = {item["title"] for item in repro_run.items("repro/plaintext_titles.xml")}
    assert titles == {"The return of <i> and <b>", "Escaping 101: write &amp; for &"}


def test_a_json_feed_with_an_http_version_is_read(repro_run: Run) -> None:
    (item,) = repro_run.items("repro/jsonfeed_http_version.json")
    assert item["title"] == "Hello"


def test_a_feed_without_dates_is_dated_when_first_seen(repro_run: Run) -> None:
    items = repro_run.items("repro/rss090_no_dates.rdf")
    assert {item["title"] for item in items} == {"New Status Updates", "Bugzilla Reorganized"}
    name = repro_run.outcome("repro/rss090_no_dates.rdf").file.name
    assert repro_run.status[name]["undated"] == 2


# --- what the pass published ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["all.rss", "all.atom"])
def test_the_merged_feeds_are_well_formed_with_uri_links_and_whole_second_dates(
    corpus_run: Run, name: str
) -> None:
    data = (corpus_run.folder / "public" / name).read_bytes()
    parsed = feedparser.parse(data)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert len(parsed.entries) > 1000
    for entry in parsed.entries:
        link = entry.link
        assert link.isascii() and " " not in link, link
        assert urlsplit(link).scheme in ("http", "https"), link
    for line in data.decode().splitlines():
        if "<pubDate>" in line or "<updated>" in line or "<published>" in line:
            assert "." not in line.split(">")[1].split("<")[0], line


def test_the_merged_json_feed_dates_are_whole_seconds(corpus_run: Run) -> None:
    document = json.loads((corpus_run.folder / "public" / "all.json").read_text())
    for item in document["items"]:
        assert datetime.fromisoformat(item["date_published"]).microsecond == 0
        assert item["url"].isascii()
