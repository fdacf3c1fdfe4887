"""Every file of the real-world corpus, and mutated copies of it (truncated, bytes flipped,
entities and dates garbled), through each CPU stage and the renderer: nothing may escape the
source boundary as an exception. What a source cannot read is its own error; what an entry
cannot be is a skipped entry with a message naming it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from aggregator.dedupe import assign_clusters, merge_cluster
from aggregator.models import Document, SiteSettings
from aggregator.pipeline.process import process_feed, run_job
from aggregator.pipeline.recipe import Processed, Recipe
from aggregator.render.common import FeedPaths
from aggregator.render.feeds import FeedSpec, atom_bytes, json_bytes, rss_bytes
from tests.realworld import CORPUS, corpus_files

pytestmark = pytest.mark.skipif(
    not (CORPUS / "real").is_dir(), reason=f"the real-world corpus is not at {CORPUS}"
)

_DATE = re.compile(
    rb"(<(?:pubDate|updated|published|dc:date|lastBuildDate)>)([^<]*)(<)"
    rb'|("date_(?:published|modified)"\s*:\s*")([^"]*)(")'
)
_GARBLED_DATES = [
    b"Fri, 11 Mar 2016 01:15:00 +3000",
    b"9999-99-99T99:99:99Z",
    b"",
    b"Seg, 31 Fev 20181 25:61:00 -9999",
    b"0000-00-00",
    b"1" * 300,
    b"Tue, 02 Jan 99999999999 08:00:00 GMT",
]
_ENTITIES = [b"&", b"&#1;", b"&#xD800;", b"&bogus;", b"&#99999999;", b"&amp", b"<![CDATA["]


def _truncated(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def _flipped(data: bytes, rng: random.Random) -> bytes:
    mutable = bytearray(data)
    for _ in range(max(1, len(data) // 500)):
        if mutable:
            mutable[rng.randrange(len(mutable))] = rng.randrange(256)
    return bytes(mutable)


def _entities(data: bytes, rng: random.Random) -> bytes:
    data = data.replace(b"&amp;", rng.choice(_ENTITIES)).replace(b"&lt;", b"<")
    spots = sorted(rng.randrange(len(data) + 1) for _ in range(5))
    pieces = [data[start:end] for start, end in zip([0, *spots], [*spots, len(data)], strict=True)]
    return b"".join(piece + rng.choice(_ENTITIES) for piece in pieces[:-1]) + pieces[-1]


def _dates(data: bytes, rng: random.Random) -> bytes:
    def garble(match: re.Match[bytes]) -> bytes:
        groups = match.groups()
        opening, closing = (groups[0], groups[2]) if groups[0] else (groups[3], groups[5])
        return opening + rng.choice(_GARBLED_DATES) + closing

    return _DATE.sub(garble, data)


MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "truncated": _truncated,
    "flipped": _flipped,
    "entities": _entities,
    "dates": _dates,
}
SITE = SiteSettings(dir=Path("unused"), base_url="http://127.0.0.1:8080/", title="t")


def _through_every_stage(name: str, data: bytes) -> Processed:
    document = Document(name, f"http://127.0.0.1/{name}", data, "http://127.0.0.1/feed")
    processed = run_job(process_feed, document, Recipe(name, tags=("t",)))
    assert isinstance(processed, Processed)
    if processed.error is not None:
        assert processed.error.strip(), "a source's error says why"
        return processed
    for problem in processed.problems:
        assert "entry" in problem, f"a skipped entry is named: {problem}"
    clustered = assign_clusters(list(processed.articles), {})
    stories: dict[str, list[object]] = {}
    for article in clustered:
        stories.setdefault(article.cluster_id, []).append(article)
    items = tuple(merge_cluster(members) for members in stories.values())  # type: ignore[arg-type]
    spec = FeedSpec(SITE, FeedPaths.of("t"), "t", "d", items)
    for render in (rss_bytes, atom_bytes, json_bytes):
        assert render(spec)
    return processed


@pytest.mark.parametrize("set_name", ["real", "edge", "repro"])
def test_every_file_and_its_mutations_stay_inside_the_source(set_name: str) -> None:
    files = corpus_files((set_name,))
    # The real feeds are few and large: every mutation of each; the edge cases are many and
    # small: one mutation each, in turn.
    kinds = list(MUTATIONS)
    for number, file in enumerate(files):
        data = (CORPUS / file.path).read_bytes()
        rng = random.Random(f"{file.path}")  # the same copies on every run
        _through_every_stage(file.name, data)
        chosen = kinds if set_name != "edge" else [kinds[number % len(kinds)]]
        for kind in chosen:
            _through_every_stage(f"{file.name}-{kind}", MUTATIONS[kind](data, rng))
