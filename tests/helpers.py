"""Helpers the end-to-end tests share."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from aggregator.models import Entry


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
