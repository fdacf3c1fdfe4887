"""The real-world corpus (`../shared/realworld`): one `feed` source per file, served from
127.0.0.1, one real `run --once`, and each source's tag feed compared with what a mature reader
finds in the same file (feedparser for XML, the JSON Feed spec for JSON).

Used by tests/test_realworld.py and benchmarks/realworld.py. The corpus is read where it lies,
never copied into the repository.
"""

from __future__ import annotations

import functools
import html
import json
import os
import re
import subprocess
import sys
import unicodedata
from collections import Counter
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import feedparser

from tests.helpers import ROOT, feeds_config, serving

CORPUS = Path(os.environ.get("AGGREGATOR_REALWORLD", ROOT.parent / "shared" / "realworld"))
SETS = ("real", "edge", "repro")
FEED_SUFFIXES = frozenset({".xml", ".rss", ".atom", ".rdf", ".json", ".feed", ".txt", ""})


@dataclass(frozen=True, slots=True)
class CorpusFile:
    set: str  # real | edge | repro
    path: Path  # relative to CORPUS
    name: str  # the source's name and tag

    @property
    def url_path(self) -> str:
        return "/" + quote(self.path.as_posix())


def corpus_files(sets: tuple[str, ...] = SETS) -> list[CorpusFile]:
    files: list[CorpusFile] = []
    for set_name in sets:
        for number, path in enumerate(sorted((CORPUS / set_name).rglob("*")), start=1):
            if path.is_file() and path.suffix.lower() in FEED_SUFFIXES:
                files.append(
                    CorpusFile(set_name, path.relative_to(CORPUS), f"{set_name}-{number:04d}")
                )
    return files


class _Quiet(SimpleHTTPRequestHandler):
    extensions_map = {  # noqa: RUF012 - the base class's attribute
        ".xml": "application/xml",
        ".rss": "application/rss+xml",
        ".atom": "application/atom+xml",
        ".rdf": "application/rdf+xml",
        ".json": "application/json",
        "": "application/octet-stream",
    }

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_corpus() -> AbstractContextManager[str]:
    """The corpus folder over HTTP on 127.0.0.1; yields the base URL."""
    return serving(functools.partial(_Quiet, directory=str(CORPUS)))


def write_config(folder: Path, files: list[CorpusFile], base_url: str) -> Path:
    return feeds_config(
        folder,
        ((file.name, base_url + file.url_path) for file in files),
        output="items_per_feed: 10000",
        defaults="timeout: 20s, per_host: 16, concurrency: 64",
    )


def run_once(config: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggregator", "--config", str(config), "run", "--once"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )


# --- the reference reader ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefEntry:
    title: str
    link: str
    guid: str


def reference_entries(file: CorpusFile) -> list[RefEntry] | None:
    """What a mature reader finds in the file; None when it is not a feed to that reader."""
    data = (CORPUS / file.path).read_bytes()
    if file.path.suffix.lower() == ".json" or data.lstrip()[:1] in (b"{", b"["):
        return _json_entries(data)
    parsed = feedparser.parse(data, sanitize_html=False, resolve_relative_uris=False)
    if not parsed.entries and parsed.get("bozo"):
        return None
    if not parsed.get("version") and not parsed.entries:
        return None
    return [
        RefEntry(
            title=_title(entry),
            link=entry.get("link", "") or "",
            guid=entry.get("id", "") or "",
        )
        for entry in parsed.entries
    ]


def _title(entry: Any) -> str:
    """The entry's title as text: feedparser keeps an HTML title as HTML."""
    title = str(entry.get("title", "") or "")
    detail = entry.get("title_detail") or {}
    if detail.get("type") in ("text/html", "application/xhtml+xml"):
        title = html.unescape(re.sub(r"<[^>]*>", "", title))
    return _SPACE.sub(" ", title).strip()


def _json_entries(data: bytes) -> list[RefEntry] | None:
    try:
        document = json.loads(data)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("items"), list):
        return None
    entries = []
    for item in document["items"]:
        if not isinstance(item, dict):
            continue
        entries.append(
            RefEntry(
                title=_SPACE.sub(" ", str(item.get("title") or "")).strip(),
                link=str(item.get("url") or item.get("external_url") or ""),
                guid=str(item.get("id") or ""),
            )
        )
    return entries


_SPACE = re.compile(r"\s+")


def _plain(text: str) -> str:
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def _link_key(url: str) -> str:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url.strip()
    query = "&".join(
        pair for pair in parts.query.split("&") if pair and not pair.lower().startswith("utm_")
    )
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, query, ""))


# --- the comparison ---------------------------------------------------------------------------

# Why an entry the reference finds is not an item of its source, when that is right by design.
EMPTY = "an entry with no title, link, id or content: skipped with a message"
SAME_ENTRY = "the same entry twice in one feed (same id, or same link without one): one item"
NOT_READ = "the source failed with a clear reason (deliberately broken or not a feed)"
UNEXPLAINED = "unexplained"
_SKIPPED = re.compile(r"(?P<source>\S+): skipped (?P<message>.*)$")


@dataclass
class Outcome:
    file: CorpusFile
    reference: int | None  # entries the reference finds; None: not a feed to it
    kept: int = 0  # reference entries matched by an item of the source's tag feed
    items: int = 0  # items in the source's tag feed
    error: str | None = None  # the source failed, with this reason
    skipped: list[str] = field(default_factory=list)  # our messages, one per skipped entry
    missing: list[tuple[RefEntry, str]] = field(default_factory=list)  # with its class


def skipped_messages(stderr: str) -> dict[str, list[str]]:
    """The pass's log: per source, the message of each entry it skipped."""
    found: dict[str, list[str]] = {}
    for line in stderr.splitlines():
        match = _SKIPPED.search(line)
        if match:
            found.setdefault(match["source"], []).append(match["message"])
    return found


def compare(
    folder: Path,
    files: list[CorpusFile],
    status: dict[str, dict[str, Any]],
    skipped: dict[str, list[str]],
) -> list[Outcome]:
    outcomes = []
    for file in files:
        reference = reference_entries(file)
        row = status.get(file.name, {})
        outcome = Outcome(
            file,
            None if reference is None else len(reference),
            error=row.get("last_error") if row.get("health") != "ok" else None,
            skipped=skipped.get(file.name, []),
        )
        items = _tag_items(folder, file.name)
        outcome.items = len(items)
        if reference:
            _match(outcome, reference, items)
        outcomes.append(outcome)
    return outcomes


def _tag_items(folder: Path, tag: str) -> list[dict[str, Any]]:
    path = folder / "public" / "tags" / f"{tag}.json"
    if not path.exists():
        return []
    items: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["items"]
    return items


def _match(outcome: Outcome, reference: list[RefEntry], items: list[dict[str, Any]]) -> None:
    """Each reference entry to an item of its own: by link, then by title, then what is left
    by position (titles the reference reads differently: base64, a charset it guessed)."""
    by_link: dict[str, list[int]] = {}
    by_title: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        by_link.setdefault(_link_key(item.get("url", "")), []).append(index)
        by_title.setdefault(_plain(item.get("title", "")), []).append(index)
    used: set[int] = set()
    unmatched: list[RefEntry] = []
    for entry in reference:
        found = None
        for candidates in (
            by_link.get(_link_key(entry.link)) if entry.link else None,
            by_title.get(entry.title) if entry.title else None,
        ):
            found = next((i for i in candidates or () if i not in used), None)
            if found is not None:
                break
        if found is None:
            unmatched.append(entry)
        else:
            used.add(found)
    left = [index for index in range(len(items)) if index not in used]
    outcome.kept = len(used) + min(len(left), len(unmatched))
    for entry in unmatched[len(left) :]:
        outcome.missing.append((entry, _why_missing(outcome, entry, reference)))


def _why_missing(outcome: Outcome, entry: RefEntry, reference: list[RefEntry]) -> str:
    messages = " ".join([*outcome.skipped, outcome.error or ""])
    if not (entry.title or entry.link or entry.guid) and "no title, no link" in messages:
        return EMPTY
    if outcome.error:
        return NOT_READ
    twins = [
        other
        for other in reference
        if other is not entry
        and (
            (entry.guid and other.guid == entry.guid)
            or (other.link == entry.link and other.title == entry.title)
        )
    ]
    if (twins or not entry.guid) and "same story as an earlier entry" in messages:
        return SAME_ENTRY
    return UNEXPLAINED


def summary(outcomes: list[Outcome]) -> dict[str, Counter[str]]:
    table: dict[str, Counter[str]] = {}
    for outcome in outcomes:
        row = table.setdefault(outcome.file.set, Counter())
        row["feeds"] += 1
        row["not a feed to the reference"] += outcome.reference is None
        row["entries (reference)"] += outcome.reference or 0
        row["kept"] += outcome.kept
        row["sources failed"] += outcome.error is not None
        row["feeds with entries but no items"] += bool(outcome.reference) and not outcome.items
        for _, why in outcome.missing:
            row[why] += 1
    return table
