"""Helpers the end-to-end tests share."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aggregator.models import Article, Entry, KnownCopy, NearCandidate, SourceState
from aggregator.store import SaveResult, Store

ROOT = Path(__file__).resolve().parents[1]


def run_aggregator(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "aggregator", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def entry_fields(entry: Entry) -> dict[str, Any]:
    """The fields of an Entry that fixture expectations pin, in JSON-friendly form."""
    return {
        "key": entry.key,
        "title": entry.title,
        "link": entry.link,
        # An entry without a date is dated when it is first seen: no fixed value to pin.
        "published": entry.published.isoformat() if entry.dated else "first seen",
        "updated": entry.updated.isoformat() if entry.dated else "first seen",
        "author": entry.author,
        "tags": list(entry.tags),
        "image": entry.image,
    }


def farm_config(folder: Path, urls: list[str]) -> Path:
    """aggregator.yaml in `folder`: a SQLite store and output beside it, one `feed` source per
    URL, named feed-0, feed-1, ..."""
    lines = [
        'store: {url: "sqlite:///state/agg.db"}',
        'output: {dir: public, base_url: "http://127.0.0.1:9/"}',
        "sources:",
    ]
    for number, url in enumerate(urls):
        lines += [f"  - name: feed-{number}", "    kind: feed", f"    url: {url}"]
    path = folder / "aggregator.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def feeds_config(
    folder: Path, feeds: Iterable[tuple[str, str]], *, output: str = "", defaults: str = ""
) -> Path:
    """aggregator.yaml in `folder`: a SQLite store and output beside it, and one `feed` source
    per (name, URL), tagged with its name. `output` and `defaults`: more keys for those."""
    lines = [
        f'store: {{url: "sqlite:///{folder / "store.db"}"}}',
        f"output: {{dir: {folder / 'public'}{', ' + output if output else ''}}}",
        *([f"defaults: {{{defaults}}}"] if defaults else []),
        "sources:",
    ]
    for name, url in feeds:
        lines += [f"  - name: {name}", "    kind: feed", f'    url: "{url}"', f"    tags: [{name}]"]
    path = folder / "aggregator.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def status_rows(config: Path) -> dict[str, dict[str, Any]]:
    """`aggregator status --json`, by source name."""
    done = run_aggregator(config, "status", "--json")
    assert done.returncode == 0, done.stderr
    return {row["name"]: row for row in json.loads(done.stdout)}


@contextmanager
def serving(handler: Callable[..., BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded HTTP server on 127.0.0.1 with this handler; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Measured:
    returncode: int
    stderr: str
    seconds: float
    peak_rss_mb: float  # of the command's largest process, its children included


# Runs the command it is given and prints the largest RSS of it and its descendants, in KB.
_MEASURE = (
    "import resource, subprocess, sys; "
    "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=sys.stderr); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
    "sys.exit(done.returncode)"
)


def run_measured(config: Path, *args: str, timeout: float = 300) -> Measured:
    """The real CLI under a process of its own, so the peak RSS measured is the command's."""
    command = [sys.executable, "-m", "aggregator", "--config", str(config), *args]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )
    seconds = time.perf_counter() - started
    printed = done.stdout.split()
    return Measured(
        done.returncode, done.stderr, seconds, int(printed[-1]) / 1024 if printed else 0
    )


# Writes go through a transaction (Store.transaction), as the pipeline's do; one each here.


def save_articles(
    store: Store, source: str, articles: Sequence[Article], state: SourceState
) -> SaveResult:
    with store.transaction(f"saving {source}") as transaction:
        return transaction.save_articles(source, articles, state)


def save_state(store: Store, state: SourceState) -> None:
    with store.transaction(f"saving the state of {state.name}") as transaction:
        transaction.save_state(state)


def near_candidates(
    store: Store, articles: Sequence[Article], window: timedelta
) -> dict[str, list[NearCandidate]]:
    with store.transaction() as transaction:
        return transaction.near_candidates(articles, window)


def find_clusters(
    store: Store, canonical_urls: Sequence[str], content_hashes: Sequence[str]
) -> dict[str, tuple[KnownCopy, ...]]:
    with store.transaction() as transaction:
        return transaction.find_clusters(canonical_urls, content_hashes)
