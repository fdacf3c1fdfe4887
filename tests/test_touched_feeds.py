"""A daemon pass rewrites the feeds of the tags its new articles touched, and no others; a
restart after a crash cleans up interrupted writes and renders what a dead pass left unrendered."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import html as lxml_html

import aggregator.pipeline.publish as publish_module
from aggregator.config import Config, load_config
from aggregator.pipeline.publish import recover
from aggregator.pipeline.run import open_store, run_pass
from aggregator.store import Store

FORMATS = ("rss", "atom", "json")
LATER = datetime.now(UTC) + timedelta(days=1)  # every source is due by then


def _post(folder: Path, number: int, tag: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    body = " ".join(f"word{number}x{index} text{index * number}" for index in range(80))
    (folder / f"{number:03d}.md").write_text(
        "---\n"
        f"title: Story {number} about {tag}\n"
        f"date: 2024-05-0{number % 9 + 1}T10:00:00+08:00\n"
        f"from: https://example.org/{tag}/{number}.html\n"
        "---\n"
        f"{body}\n",
        encoding="utf-8",
    )


def _config(tmp_path: Path) -> Config:
    lines = [
        'store: {url: "sqlite:///state/agg.db"}',
        'output: {dir: public, base_url: "http://127.0.0.1:8080/"}',
        "sources:",
    ]
    for tag in ("alpha", "beta"):
        lines += [f"  - name: {tag}", "    kind: posts", f"    path: {tag}", f"    tags: [{tag}]"]
        _post(tmp_path / tag, 1 if tag == "alpha" else 2, tag)
    path = tmp_path / "aggregator.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_config(path)


@contextmanager
def _after_a_first_pass(tmp_path: Path) -> Iterator[tuple[Config, Store]]:
    """The two-source config and its store, after a `run --once` pass rendered everything."""
    config = _config(tmp_path)
    store = open_store(config)
    try:
        run_pass(config, store)
        yield config, store
    finally:
        store.close()


def _stamps(public: Path, slug: str) -> dict[str, int]:
    return {kind: (public / "tags" / f"{slug}.{kind}").stat().st_mtime_ns for kind in FORMATS}


def test_a_pass_rewrites_only_the_feeds_of_the_tags_it_touched(tmp_path: Path) -> None:
    config = _config(tmp_path)
    public = config.output.dir
    store = open_store(config)
    try:
        run_pass(config, store)  # --once: renders everything
        beta_before = _stamps(public, "beta")
        alpha_before = _stamps(public, "alpha")
        # Edited by hand since: a render of beta would put its real bytes back.
        (public / "tags" / "beta.json").write_text("left alone", encoding="utf-8")
        beta_before["json"] = (public / "tags" / "beta.json").stat().st_mtime_ns
        index_before = (public / "index.html").read_bytes()

        _post(tmp_path / "alpha", 3, "alpha")
        report = run_pass(config, store, due_only=True, now=LATER)

        assert report.new == 1
        assert report.touched_tags == {"alpha"}
        assert _stamps(public, "beta") == beta_before
        assert (public / "tags" / "beta.json").read_text(encoding="utf-8") == "left alone"
        after = _stamps(public, "alpha")
        assert all(after[kind] != alpha_before[kind] for kind in FORMATS)
        assert "Story 3 about alpha" in (public / "tags" / "alpha.json").read_text("utf-8")
        assert "Story 3 about alpha" in (public / "all.json").read_text("utf-8")
        assert (public / "index.html").read_bytes() != index_before  # alpha's count went up

        # Nothing new: nothing is rendered at all.
        quiet = run_pass(config, store, due_only=True, now=LATER + timedelta(days=1))
        assert quiet.written == ()
    finally:
        store.close()


def test_a_copy_joining_a_story_rewrites_the_feeds_of_the_storys_earlier_tags(
    tmp_path: Path,
) -> None:
    # The merged item of a story carries every member's tags and sources: when a beta copy
    # joins alpha's story, alpha's feed shows the new tag and source too, so it is rewritten.
    with _after_a_first_pass(tmp_path) as (config, store):
        public = config.output.dir
        alpha_before = (public / "tags" / "alpha.json").read_text("utf-8")
        copy = (tmp_path / "alpha" / "001.md").read_text("utf-8")
        copy = copy.replace("https://example.org/alpha/1.html", "https://example.net/beta/1")
        (tmp_path / "beta" / "009.md").write_text(copy, encoding="utf-8")

        report = run_pass(config, store, due_only=True, now=LATER)

        assert report.new == 1
        assert report.touched_tags == {"alpha", "beta"}
        alpha_after = json.loads((public / "tags" / "alpha.json").read_text("utf-8"))
        assert alpha_after != json.loads(alpha_before)
        assert set(alpha_after["items"][0]["tags"]) == {"alpha", "beta"}


def test_a_source_that_recovers_shows_ok_on_the_index_without_new_items(tmp_path: Path) -> None:
    with _after_a_first_pass(tmp_path) as (config, store):
        moved = tmp_path / "beta-away"
        (tmp_path / "beta").rename(moved)
        failing = run_pass(config, store, due_only=True, now=LATER)
        assert failing.failed and _beta_health(config) == "backing off"
        moved.rename(tmp_path / "beta")

        recovered = run_pass(config, store, due_only=True, now=LATER + timedelta(days=2))

        assert recovered.new == 0 and not recovered.failed
        assert config.output.dir / "index.html" in recovered.written
        assert _beta_health(config) == "ok"


def test_an_edited_config_brings_every_feed_up_to_date_on_the_next_pass(tmp_path: Path) -> None:
    # Nothing new arrives, but the config changed (here the output title, shown by every feed):
    # the untouched tags' feeds must not keep the old one.
    with _after_a_first_pass(tmp_path) as (config, store):
        path = config.path
        text = path.read_text("utf-8").replace("output: {", 'output: {title: "Renamed", ')
        path.write_text(text, encoding="utf-8")
        index = config.output.dir / "index.html"
        earlier = path.stat().st_mtime - 5
        os.utime(index, (earlier, earlier))  # rendered before the edit, even on a coarse clock
        edited = load_config(path)

        report = run_pass(edited, store, due_only=True, now=LATER)

        assert report.new == 0
        public = edited.output.dir
        for slug in ("alpha", "beta"):
            assert public / "tags" / f"{slug}.atom" in report.written
        assert "Renamed" in (public / "all.atom").read_text("utf-8")


def test_a_config_edit_that_changes_no_output_is_rendered_once_not_every_pass(
    tmp_path: Path,
) -> None:
    with _after_a_first_pass(tmp_path) as (config, store):
        index = config.output.dir / "index.html"
        with config.path.open("a", encoding="utf-8") as file:
            file.write("# a comment: every output file keeps its bytes\n")
        earlier = config.path.stat().st_mtime - 5
        os.utime(index, (earlier, earlier))  # rendered before the edit, even on a coarse clock

        report = run_pass(config, store, due_only=True, now=LATER)

        # Everything rendered, nothing changed but the fetch times the sources page shows.
        assert report.written == (config.output.dir / "sources.html",)
        # Marked up to date all the same, or every later pass would render everything again.
        assert index.stat().st_mtime >= config.path.stat().st_mtime


def _beta_health(config: Config) -> str:
    """The Health cell of beta's row in the table of sources.html."""
    page = lxml_html.fromstring((config.output.dir / "sources.html").read_bytes())
    found = page.xpath("//tr[th[@id='source-beta']]/td[@data-label='Health']")
    assert isinstance(found, list)
    cells = [cell for cell in found if isinstance(cell, lxml_html.HtmlElement)]
    assert len(cells) == 1
    return str(cells[0].text_content())


def test_startup_recovery_removes_temp_files_and_renders_what_a_crash_left(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    public = config.output.dir
    store = open_store(config)
    try:
        run_pass(config, store)
        stale = (public / "tags" / "alpha.json").read_bytes()
        _post(tmp_path / "alpha", 4, "alpha")
        run_pass(config, store)
        # As if that pass had committed the story and died before rendering, in the middle of
        # writing a feed file.
        (public / "tags" / "alpha.json").write_bytes(stale)
        leftover = public / "tags" / ".alpha.json.x1y2z3.tmp"
        leftover.write_text('{"items": [', encoding="utf-8")

        recover(config, store)

        assert not leftover.exists()
        assert "Story 4 about alpha" in (public / "tags" / "alpha.json").read_text("utf-8")
    finally:
        store.close()


def _output(public: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(public)): path.read_bytes()
        for path in sorted(public.rglob("*"))
        if path.is_file()
    }


def test_a_render_a_kill_prevented_is_made_good_by_the_next_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _after_a_first_pass(tmp_path) as (config, store):
        _post(tmp_path / "alpha", 3, "alpha")

        # Killed after the commit, in the middle of the render: nothing more is written.
        def killed(*args: object, **kwargs: object) -> tuple[Path, ...]:
            raise KeyboardInterrupt

        with monkeypatch.context() as patched:
            patched.setattr(publish_module, "publish", killed)
            with pytest.raises(KeyboardInterrupt):
                run_pass(config, store, due_only=True, now=LATER)
        assert "Story 3 about alpha" not in (config.output.dir / "all.json").read_text("utf-8")

        # The next pass fetches nothing new (the post was stored), yet renders what is owed.
        healed = run_pass(config, store, due_only=True, now=LATER + timedelta(days=1))
        assert healed.new == 0
        assert "Story 3 about alpha" in (config.output.dir / "all.json").read_text("utf-8")
        assert "Story 3 about alpha" in (config.output.dir / "tags/alpha.json").read_text("utf-8")

        # What it left equals a render of the whole store from scratch.
        fresh = tmp_path / "fresh"
        fresh_config = config.model_copy(
            update={"output": config.output.model_copy(update={"dir": fresh})}
        )
        publish_module.publish(fresh_config, store)
        mine, theirs = _output(config.output.dir), _output(fresh)
        assert mine.keys() == theirs.keys()
        assert [name for name in mine if mine[name] != theirs[name]] == []
