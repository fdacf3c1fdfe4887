"""Near-duplicate layer: labeled-set quality, fingerprint speed, and the LSH index at scale.

    .venv/bin/python benchmarks/dedupe.py                      # 100k and 1M stored articles
    .venv/bin/python benchmarks/dedupe.py --sizes 100000 --queries 500

1. Pair precision and recall on tests/fixtures/dedupe/ through the real decision path
   (dedupe.assign_clusters: LSH bands propose, the Jaccard/containment rule decides), and the
   same without the lead bands, to show what they add.
2. Fingerprint throughput on one core: what `identify` adds per article (normalise once, the
   exact hash, the 128 + 32 MinHash values), over the labeled set's texts; then the whole of
   `identify` on the same texts (with the id, the canonical link and the band keys).
3. For each size: a real SQLite file (in --db-dir) migrated by the Store, filled with that many
   generated articles (random signatures and band keys, dates spread over a year, 1 in
   100 articles having a planted near-duplicate to find), then Store.near_candidates for one
   new article at a time: latency p50/p99 for copies of stored articles and for new stories,
   and the index's bytes per article measured with SQLite's dbstat.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aggregator.dedupe import assign_clusters, identify  # noqa: E402
from aggregator.dedupe.lsh import band_keys  # noqa: E402
from aggregator.dedupe.minhash import (  # noqa: E402
    LEAD_PERMUTATIONS,
    PERMUTATIONS,
    fingerprint_normalised,
    normalise,
)
from aggregator.models import Article, CleanedHtml, Entry  # noqa: E402
from aggregator.store import Store  # noqa: E402

LABELED = ROOT / "tests" / "fixtures" / "dedupe"
WHEN = datetime(2024, 1, 1, tzinfo=UTC)
WINDOW = timedelta(days=7)
BANDS = (PERMUTATIONS + LEAD_PERMUTATIONS) // 4
PLANTED_EVERY = 100  # one stored article in 100 gets a near-duplicate query
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DateTime on SQLite


# --- 1. labeled set ---


def _article(source: str, key: str, text: str, when: datetime) -> Article:
    entry = Entry(
        source=source,
        origin=key,
        key=key,
        title=key,
        link=None,
        published=when,
        updated=when,
        author=None,
        tags=(),
        content_html=text,
    )
    cleaned = CleanedHtml(html=text, text=text, summary="", images=(), rules=())
    return identify(entry, cleaned, ())


def labeled_set() -> None:
    pairs = []
    for folder in sorted(LABELED.iterdir()):
        label = (folder / "label").read_text(encoding="utf-8").split("\n", 1)[0]
        first = _article("a", folder.name, (folder / "a.txt").read_text(encoding="utf-8"), WHEN)
        later = WHEN + timedelta(hours=3)
        second = _article("b", folder.name, (folder / "b.txt").read_text(encoding="utf-8"), later)
        pairs.append((folder.name, label == "dup", first, second))
    print(f"labeled set: {len(pairs)} pairs, {sum(dup for _, dup, _, _ in pairs)} duplicates")
    for title, strip_lead in (("LSH 32x4 + lead 8x4", False), ("LSH 32x4 only", True)):
        true_pos = false_pos = false_neg = 0
        missed = []
        for name, dup, one, other in pairs:
            first, second = one, other
            if strip_lead:
                first, second = replace(one, lead_minhash=()), replace(other, lead_minhash=())
            found = assign_clusters([first, second], {})[1].cluster_id == first.id
            true_pos += found and dup
            false_pos += found and not dup
            false_neg += dup and not found
            if found != dup:
                missed.append(name)
        precision = true_pos / (true_pos + false_pos) if true_pos + false_pos else 1.0
        recall = true_pos / (true_pos + false_neg) if true_pos + false_neg else 1.0
        wrong = f"  wrong: {', '.join(missed)}" if missed else ""
        print(f"  {title:22s} precision {precision:.3f}  recall {recall:.3f}{wrong}")


# --- 2. fingerprint throughput ---


def throughput(seconds: float = 3.0) -> None:
    texts = [path.read_text(encoding="utf-8") for path in sorted(LABELED.glob("*/*.txt"))]
    english = [path.read_text(encoding="utf-8") for path in sorted(LABELED.glob("en_*/a.txt"))]
    # Long English stories: three different wire stories end to end, about 4,000 characters.
    long = ["\n".join(english[first : first + 3]) for first in range(0, len(english) - 2, 3)]
    for title, sample in (("labeled texts", texts), ("long English texts", long)):
        for text in sample:  # warm-up: the punctuation table, numpy
            fingerprint_normalised(normalise(text))
        done = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            for text in sample:
                normalised = normalise(text)
                hashlib.sha256(normalised.encode()).hexdigest()
                fingerprint_normalised(normalised)
            done += len(sample)
        rate = done / (time.perf_counter() - start)
        chars = sum(map(len, sample)) / len(sample)
        print(
            f"fingerprints: {rate:6,.0f} articles/s on one core "
            f"({len(sample)} {title}, {chars:,.0f} characters on average)"
        )
        print(f"  identify, all of it: {_identify_rate(sample, seconds):6,.0f} articles/s")


def _identify_rate(texts: list[str], seconds: float) -> float:
    """The whole of `identify` (id, canonical link, band keys, the Article too) per second."""
    pairs = []
    for number, text in enumerate(texts):
        link = f"https://news.example.org/{number}.html?utm_source=rss&id={number}"
        entry = Entry(
            source="bench",
            origin=link,
            key=link,
            title="t",
            link=link,
            published=WHEN,
            updated=WHEN,
            author=None,
            tags=(),
            content_html=text,
        )
        pairs.append((entry, CleanedHtml(html=text, text=text, summary="", images=(), rules=())))
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for entry, cleaned in pairs:
            identify(entry, cleaned, ())
        done += len(pairs)
    return done / (time.perf_counter() - start)


# --- 3. the index at scale ---


def _random_signatures(rng: np.random.Generator, count: int, width: int) -> np.ndarray:
    return rng.integers(0, 2**32, size=(count, width), dtype=np.uint32)


def _sqlite_time(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).strftime(SQLITE_TIME)


def _published(index: int, size: int) -> datetime:
    return WHEN + timedelta(seconds=index * 365 * 86400 / size)


def _batches(size: int, batch: int) -> Iterator[range]:
    for start in range(0, size, batch):
        yield range(start, min(start + batch, size))


_INSERT_ARTICLE = (
    "INSERT INTO article (id, source, key, title, cluster_id, published,"
    " published_offset_minutes, updated, updated_offset_minutes, content_html, raw_html,"
    " summary, first_seen, signature)"
    " VALUES (?, 'bench', ?, 't', ?, ?, 0, ?, 0, '', '', '', ?, '-')"
)
_INSERT_NEAR = (
    "INSERT INTO article_near (seq, article_id, published, shingles, minhash, lead_minhash)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_BAND = "INSERT INTO article_band (band_key, article_seq) VALUES (?, ?)"
# Band keys of the other articles: SQLite's random() is a uniform 64-bit integer, as a hashed
# band is; made in article order, so the B-tree fills and splits as it does in a live store.
_RANDOM_BANDS = (
    "INSERT OR IGNORE INTO article_band (band_key, article_seq)"
    " WITH RECURSIVE band(number) AS"
    f" (SELECT 1 UNION ALL SELECT number + 1 FROM band WHERE number < {BANDS})"
    " SELECT random(), seq FROM article_near, band"
    " WHERE seq BETWEEN ? AND ? AND (seq - 1) % ? != 0"
)


def build(path: Path, size: int, seed: int = 1) -> tuple[float, dict[int, tuple[bytes, bytes]]]:
    """A migrated store with `size` articles; returns build seconds and the planted signatures."""
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    store = Store(f"sqlite:///{path}")
    store.migrate()
    store.close()
    rng = np.random.default_rng(seed)
    planted: dict[int, tuple[bytes, bytes]] = {}
    started = time.perf_counter()
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = DELETE")
    connection.execute("PRAGMA synchronous = OFF")
    connection.execute("PRAGMA cache_size = -4000000")  # 4 GB: the build is not what we time
    connection.execute("BEGIN")
    for rows in _batches(size, 20_000):
        signatures = _random_signatures(rng, len(rows), PERMUTATIONS)
        leads = _random_signatures(rng, len(rows), LEAD_PERMUTATIONS)
        articles: list[tuple[object, ...]] = []
        near: list[tuple[object, ...]] = []
        planted_bands: list[tuple[int, int]] = []
        for offset, index in enumerate(rows):
            article_id = f"bench-{index:09d}"
            when = _sqlite_time(_published(index, size))
            articles.append((article_id, str(index), article_id, when, when, when))
            minhash, lead = signatures[offset].tobytes(), leads[offset].tobytes()
            near.append((index + 1, article_id, when, 800, minhash, lead))
            if index % PLANTED_EVERY == 0:
                planted[index] = (minhash, lead)
                keys = band_keys(_unpack(minhash), _unpack(lead))
                planted_bands.extend((key, index + 1) for key in keys)
        connection.executemany(_INSERT_ARTICLE, articles)
        connection.executemany(_INSERT_NEAR, near)
        connection.execute(_RANDOM_BANDS, (rows.start + 1, rows.stop, PLANTED_EVERY))
        connection.executemany(_INSERT_BAND, planted_bands)
    connection.execute("COMMIT")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.close()
    return time.perf_counter() - started, planted


def _unpack(blob: bytes) -> tuple[int, ...]:
    return tuple(np.frombuffer(blob, dtype="<u4").tolist())


def sizes(path: Path) -> dict[str, int]:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall()
    finally:
        connection.close()
    return {name: total for name, total in rows}


def _query(
    index: int, size: int, planted: dict[int, tuple[bytes, bytes]], rng: np.random.Generator
) -> Article:
    """A new article: a copy of stored article `index` with a quarter of its MinHash values
    changed (Jaccard about 0.75), or, when `index` is not planted, an unrelated story."""
    if index in planted:
        minhash, lead = planted[index]
        values = np.frombuffer(minhash, dtype="<u4").copy()
        changed = rng.choice(PERMUTATIONS, size=PERMUTATIONS // 4, replace=False)
        values[changed] = rng.integers(0, 2**32, size=len(changed), dtype=np.uint32)
        signature, lead_values = tuple(values.tolist()), _unpack(lead)
    else:
        signature = tuple(_random_signatures(rng, 1, PERMUTATIONS)[0].tolist())
        lead_values = tuple(_random_signatures(rng, 1, LEAD_PERMUTATIONS)[0].tolist())
    when = _published(index, size) + timedelta(days=1)
    return Article(
        id=f"query-{index}",
        source="query",
        key=str(index),
        title="q",
        link=None,
        published=when,
        updated=when,
        author=None,
        tags=(),
        content_html="",
        summary="",
        raw_html="",
        content_hash=None,
        minhash=signature,
        shingles=800,
        lead_minhash=lead_values,
    )


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {p50 * 1000:.2f} ms  p99 {p99 * 1000:.2f} ms"


def _planted(path: Path) -> dict[int, tuple[bytes, bytes]]:
    """The planted articles of a kept database."""
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(
            "SELECT seq - 1, minhash, lead_minhash FROM article_near WHERE (seq - 1) % ? = 0",
            (PLANTED_EVERY,),
        ).fetchall()
    finally:
        connection.close()
    return {index: (minhash, lead) for index, minhash, lead in rows}


def scale(size: int, queries: int, folder: Path, reuse: bool) -> None:
    path = folder / f"aggregator-dedupe-bench-{size}.db"
    if reuse and path.exists():
        seconds, planted = 0.0, _planted(path)
    else:
        seconds, planted = build(path, size)
    pages = sizes(path)
    band = pages.get("article_band", 0)
    near = pages.get("article_near", 0) + pages.get("sqlite_autoindex_article_near_1", 0)
    built = f"built in {seconds:.0f} s" if seconds else "kept from an earlier run"
    print(f"{size:>9,} stored articles ({built}, file {path.stat().st_size / 2**20:,.0f} MiB):")
    print(
        f"  index bytes per article: LSH bands {band / size:,.0f} "
        f"({BANDS} rows, primary key only, WITHOUT ROWID); "
        f"signatures row + its unique index {near / size:,.0f}; "
        f"together {(band + near) / size:,.0f}"
    )
    store = Store(f"sqlite:///{path}")
    rng = np.random.default_rng(2)
    hits: list[float] = []
    misses: list[float] = []
    found = 0
    try:
        planted_ids = list(planted)
        for round_ in range(2):  # the first round warms the caches and is not counted
            for number in range(queries):
                if number % 2 == 0:
                    index = planted_ids[int(rng.integers(len(planted_ids)))]
                else:
                    index = int(rng.integers(size)) | 1  # odd: never planted
                article = _query(index, size, planted, rng)
                with store.transaction("querying") as transaction:  # as clustering does
                    start = time.perf_counter()
                    result = transaction.near_candidates([article], WINDOW)
                    elapsed = time.perf_counter() - start
                if round_ == 0:
                    continue
                if index in planted:
                    hits.append(elapsed)
                    found += any(
                        c.article_id == f"bench-{index:09d}" for c in result.get(article.id, ())
                    )
                else:
                    misses.append(elapsed)
    finally:
        store.close()
    print(f"  query, copy of a stored article:  {_percentiles(hits)}  (found {found}/{len(hits)})")
    print(f"  query, a new story:               {_percentiles(misses)}")
    print(f"  query, all:                       {_percentiles(hits + misses)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--db-dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")))
    parser.add_argument("--keep", action="store_true", help="Keep the generated databases.")
    parser.add_argument(
        "--reuse", action="store_true", help="Query databases kept by --keep, do not rebuild."
    )
    args = parser.parse_args()
    labeled_set()
    throughput()
    for size in args.sizes:
        scale(size, args.queries, args.db_dir, args.reuse)
        if not args.keep:
            path = args.db_dir / f"aggregator-dedupe-bench-{size}.db"
            for leftover in (
                path,
                path.with_name(path.name + "-wal"),
                path.with_name(path.name + "-shm"),
            ):
                leftover.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
