"""What a render asks the store, against the store's size: the queries behind every pass that
writes feeds (publish: the tag list, the daily chart, the story lists of the touched tags).

    .venv/bin/python benchmarks/render_queries.py                        # 20k and 100k articles
    .venv/bin/python benchmarks/render_queries.py --sizes 20000 --keep /tmp/render
    .venv/bin/python benchmarks/render_queries.py --reuse /tmp/render    # measure again

A real SQLite file migrated by the Store and filled through save_articles, in transactions of
60 sources of 20 articles as a pass writes them: about 8 KB of cleaned and of raw HTML each
(rows as large as the farm's), published over a year, one story in ten joined by a later copy.
Tags: `all` on every article (a source tag a whole config shares), 20 topics on about 5% each,
and `rare` on one article in 2000. Printed: the best of 3 wall times of each query, in ms.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aggregator.models import Article, SourceState  # noqa: E402
from aggregator.store import Store  # noqa: E402

PER_SOURCE = 20
SOURCES_PER_TRANSACTION = 60
LIMIT = 50  # output.items_per_feed's default
NEWEST = datetime(2026, 11, 1, tzinfo=UTC)
_BODY = "<p>" + "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 140 + "</p>"


def _article(number: int, rng: random.Random, stories: list[str]) -> Article:
    source = f"source-{number // PER_SOURCE}"
    identity = hashlib.sha1(f"{source}/{number}".encode()).hexdigest()
    tags = ["all"]
    if rng.random() < 0.05 * 2:
        tags.append(f"topic-{rng.randrange(20)}")
    if number % 2000 == 7:
        tags.append("rare")
    published = NEWEST - timedelta(minutes=rng.randrange(365 * 24 * 60))
    # One story in ten is a later copy of an earlier one.
    cluster = rng.choice(stories) if stories and rng.random() < 0.1 else identity
    if cluster == identity:
        stories.append(identity)
    return Article(
        id=identity,
        source=source,
        key=str(number),
        title=f"Story {number}",
        link=f"https://example.org/{source}/{number}",
        published=published,
        updated=published,
        author=None,
        tags=tuple(tags),
        content_html=_BODY,
        summary="Lorem ipsum dolor sit amet.",
        raw_html=_BODY,
        content_hash=hashlib.sha256(identity.encode()).hexdigest(),
        cluster_id=cluster,
    )


def build(store: Store, first: int, count: int, rng: random.Random, stories: list[str]) -> None:
    sources = range(first // PER_SOURCE, (first + count) // PER_SOURCE)
    for start in range(sources.start, sources.stop, SOURCES_PER_TRANSACTION):
        with store.transaction() as transaction:
            for source in range(start, min(start + SOURCES_PER_TRANSACTION, sources.stop)):
                numbers = range(source * PER_SOURCE, (source + 1) * PER_SOURCE)
                articles = [_article(n, rng, stories) for n in numbers]
                name = f"source-{source}"
                transaction.save_articles(name, articles, SourceState(name=name))


def _best(call: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def measure(store: Store) -> dict[str, float]:
    today = date(2026, 11, 1)
    return {
        "tag_summaries": _best(store.tag_summaries),
        "daily_counts": _best(lambda: store.daily_counts(today)),
        "clusters(all stories)": _best(lambda: store.clusters(None, LIMIT)),
        "clusters(tag on every article)": _best(lambda: store.clusters("all", LIMIT)),
        "clusters(tag on 5%)": _best(lambda: store.clusters("topic-3", LIMIT)),
        "clusters(tag on 1 in 2000)": _best(lambda: store.clusters("rare", LIMIT)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--keep", type=Path, help="build the stores in this folder and keep them")
    parser.add_argument("--reuse", type=Path, help="measure the stores a --keep run left here")
    args = parser.parse_args()
    folder = args.reuse or args.keep or Path(tempfile.mkdtemp(prefix="render-queries-"))
    folder.mkdir(parents=True, exist_ok=True)
    store = Store(f"sqlite:///{folder / 'store.db'}")
    store.migrate()
    rng = random.Random(1)
    stories: list[str] = []
    rows: list[tuple[int, dict[str, float]]] = []
    stored = store.article_count()
    for size in sorted(args.sizes):
        if args.reuse is None and size > stored:
            started = time.perf_counter()
            build(store, stored, size - stored, rng, stories)
            print(f"stored {size} articles ({time.perf_counter() - started:.0f} s)", flush=True)
            stored = size
        rows.append((store.article_count(), measure(store)))
        if args.reuse is not None:
            break
    store.close()
    names = list(rows[0][1])
    print("\n| query (ms, best of 3) | " + " | ".join(f"{n} articles" for n, _ in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{figures[name]:.1f}" for _, figures in rows) + " |")


if __name__ == "__main__":
    main()
