"""The store's write path of a first pass: per-article cost of the lookups and of the saves.

    .venv/bin/python benchmarks/store_save.py                      # empty store, then ~50k stored
    .venv/bin/python benchmarks/store_save.py --stored 20000 --sources 100
    .venv/bin/python benchmarks/store_save.py --keep /tmp/s.db     # build the 50k store once...
    .venv/bin/python benchmarks/store_save.py --reuse /tmp/s.db    # ...measure it again
    .venv/bin/python benchmarks/store_save.py --profile /tmp/save.prof
    .venv/bin/python benchmarks/store_save.py --stored 0 --url postgresql+psycopg://...  # empty

A real SQLite file migrated by the Store, filled the way a pass fills it: sources of 20 new
articles each, `--group` sources per transaction (pipeline/writer.py's group commit), each
source's job exactly pipeline/cluster.py's then save_articles. Articles come from
aggregator.dedupe.identify on generated text (the farm's kind: ~8 KB of body and of raw HTML,
Chinese or Latin-script, 128 + 32 MinHash values, 40 band keys), 2-3 tags each, a clean audit;
`--copies` of them are copies of stored stories (half the same link, half a near-duplicate
text), so clusters are joined and story tags looked up as in real feeds.

Printed per phase, ms per article: the store's lookups (find_clusters + near_candidates), the
saves (save_articles), the commits (with what a transaction writes at its end: the LSH band
rows it held back), their total, and the CPU time the thread spent on them (the machine is
shared: the wall times swing with its load, the CPU time much less). Article generation and
assign_clusters are not counted. Phases: an empty store, a re-save of the same sources with
nothing changed, and a store already holding `--stored` articles. Between them, a re-pass of
unchanged feeds (each source's state alone, in its savepoint, as pipeline/writer.py runs every
job), in us per source.
"""

from __future__ import annotations

import argparse
import cProfile
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aggregator.dedupe import NearSettings, assign_clusters, identify  # noqa: E402
from aggregator.models import Article, CleanedHtml, Entry, RuleHit, SourceState  # noqa: E402
from aggregator.store import Store, StoreTransaction  # noqa: E402

PER_SOURCE = 20
PARAGRAPHS = 25  # about 8 KB of HTML, as the farm's `paragraphs=25` items
FINGERPRINTED = 5
BASE = datetime(2024, 3, 1, tzinfo=UTC)
SETTINGS = NearSettings()
_CJK = [chr(code) for code in range(0x4E00, 0x4E00 + 3000)]
_SYLLABLES = [c + v for c in "bcdfghklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ou", "ai")]
_WORDS = ["".join(random.Random(n).choices(_SYLLABLES, k=1 + n % 3)) for n in range(5000)]
_TAGS = [f"话题{n}" for n in range(60)] + [f"Topic {n}" for n in range(60)]
_AUDIT = (
    RuleHit("generic:ads", 1, ("广告 Advertisement",)),
    RuleHit("generic:share", 1, ("分享 Share",)),
)


@dataclass
class Phase:
    name: str
    articles: int = 0
    lookups: float = 0.0
    saves: float = 0.0
    commits: float = 0.0
    cpu: float = 0.0  # of this thread, lookups + saves + commits: the rest is waiting
    new: int = 0
    changed: int = 0

    def line(self) -> str:
        n = max(self.articles, 1)
        per = 1000 / n
        total = self.lookups + self.saves + self.commits
        return (
            f"{self.name:<34} {self.articles:>6} articles  lookups {self.lookups * per:6.3f}"
            f"  saves {self.saves * per:6.3f}  commit {self.commits * per:6.3f}"
            f"  total {total * per:6.3f} ms/article (CPU {self.cpu * per:6.3f})"
            f"  (new {self.new}, changed {self.changed})"
        )


@dataclass
class Generator:
    """Sources of farm-like articles; remembers some stored ones to copy later."""

    rng: random.Random = field(default_factory=lambda: random.Random(7))
    sources: int = 0
    stored: list[Article] = field(default_factory=list)

    def text(self, chinese: bool) -> list[str]:
        if chinese:
            return ["".join(self.rng.choices(_CJK, k=110)) + "。" for _ in range(PARAGRAPHS)]
        return [" ".join(self.rng.choices(_WORDS, k=45)) + "." for _ in range(PARAGRAPHS)]

    def source(self, copies: float) -> list[Article]:
        number = self.sources
        self.sources += 1
        name = f"source-{number:05d}"
        chinese = number % 2 == 0
        own_tags = tuple(self.rng.sample(_TAGS, 2))
        articles = []
        for item in range(PER_SOURCE):
            when = BASE + timedelta(minutes=7 * number + 10 * item)
            link = f"https://news{number % 50}.example.org/{number}/{item}.html"
            paragraphs = self.text(chinese)
            roll = self.rng.random()
            if self.stored and roll < copies:
                original = self.rng.choice(self.stored)
                if roll < copies / 2:
                    link = original.link or link  # the same story at the same canonical URL
                else:  # a near-duplicate: one of the fingerprinted paragraphs replaced
                    paragraphs = _paragraphs_of(original)
                    paragraphs[1] = self.text(chinese)[0]
                when = original.published + timedelta(hours=1)
            tags = (*own_tags, self.rng.choice(_TAGS)) if item % 2 else own_tags
            articles.append(_identify(name, item, link, when, paragraphs, tags))
        if len(self.stored) < 5000:
            self.stored.extend(articles[:2])
        return articles


def _paragraphs_of(article: Article) -> list[str]:
    return article.content_html.removeprefix("<p>").removesuffix("</p>").split("</p><p>")


def _identify(
    source: str, item: int, link: str, when: datetime, paragraphs: list[str], tags: tuple[str, ...]
) -> Article:
    html = "".join(f"<p>{paragraph}</p>" for paragraph in paragraphs)
    raw = (
        '<div class="share-bar"><a href="https://share.example.com/">分享 Share</a></div>'
        + html
        + '<div class="ad">广告 Advertisement</div>'
    )
    entry = Entry(
        source=source,
        origin=f"{source}#{item}",
        key=f"urn:{source}:{item}",
        title=f"{source} story {item}",
        link=link + "?utm_source=rss",
        published=when,
        updated=when,
        author="Reporter",
        tags=(),
        content_html=raw,
        image=f"https://img.example.org/{source}/{item}.jpg",
    )
    # Only the first paragraphs are fingerprinted: building 50k articles stays quick, and the
    # store sees the same 128 + 32 values and 40 band keys whatever text they came from.
    text = "\n".join(paragraphs[:FINGERPRINTED])
    cleaned = CleanedHtml(html, text, text[:200] + "…", (entry.image or "",), (), _AUDIT)
    return identify(entry, cleaned, tags)


def _state(source: str) -> SourceState:
    now = datetime.now(UTC)
    return SourceState(
        name=source,
        etag='"abc"',
        last_modified="Fri, 01 Mar 2024 00:00:00 GMT",
        last_fetch_at=now,
        last_success_at=now,
        last_result="ok",
        next_fetch_at=now + timedelta(minutes=15),
        last_status=200,
    )


def _job(transaction: StoreTransaction, articles: list[Article], phase: Phase) -> None:
    """pipeline/cluster.py then save_articles, timed apart."""
    cpu = time.thread_time()
    started = time.perf_counter()
    known = transaction.find_clusters(
        [article.link for article in articles if article.link],
        [article.content_hash for article in articles if article.content_hash],
    )
    near = transaction.near_candidates(articles, SETTINGS.window)
    looked = time.perf_counter()
    cpu -= time.thread_time()
    clustered = assign_clusters(articles, known, near, SETTINGS)
    cpu += time.thread_time()
    assigned = time.perf_counter()
    result = transaction.save_articles(articles[0].source, clustered, _state(articles[0].source))
    phase.lookups += looked - started
    phase.saves += time.perf_counter() - assigned
    phase.cpu += time.thread_time() - cpu
    phase.articles += len(articles)
    phase.new += len(result.new)
    phase.changed += len(result.changed)


def _run(
    store: Store,
    batches: Iterator[list[list[Article]]],
    phase: Phase,
    profile: cProfile.Profile | None = None,
) -> None:
    for batch in batches:  # generated before the clock starts
        if profile:
            profile.enable()
        with store.transaction() as transaction:
            for articles in batch:
                _job(transaction, articles, phase)
            committing = time.perf_counter()
            cpu = time.thread_time()
        phase.commits += time.perf_counter() - committing
        phase.cpu += time.thread_time() - cpu
        if profile:
            profile.disable()


def _states_only(store: Store, names: list[str], group: int) -> str:
    """A re-pass of unchanged feeds: each source's job is its state alone, in the savepoint
    the pipeline's writer (pipeline/writer.py) gives every job."""
    cpu = time.thread_time()
    started = time.perf_counter()
    for start in range(0, len(names), group):
        with store.transaction() as transaction:
            for name in names[start : start + group]:
                with transaction.savepoint():
                    transaction.save_state(_state(name))
    per = 1e6 / max(len(names), 1)
    wall, cpu = time.perf_counter() - started, time.thread_time() - cpu
    return (
        f"{'unchanged sources, state only':<34} {len(names):>6} sources   total"
        f" {wall * per:6.0f} us/source (CPU {cpu * per:6.0f})"
    )


def _batches(
    generator: Generator, sources: int, group: int, copies: float, keep: list[list[Article]] | None
) -> Iterator[list[list[Article]]]:
    for start in range(0, sources, group):
        batch = [generator.source(copies) for _ in range(min(group, sources - start))]
        if keep is not None:
            keep.extend(batch)
        yield batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--sources", type=int, default=128, help="sources measured per phase")
    parser.add_argument("--stored", type=int, default=50_000, help="articles before the last")
    parser.add_argument("--group", type=int, default=64, help="sources per transaction")
    parser.add_argument("--copies", type=float, default=0.05, help="share of copied stories")
    parser.add_argument("--keep", type=Path, help="keep the filled store at this path")
    parser.add_argument("--reuse", type=Path, help="a store --keep built: skip to the last phase")
    parser.add_argument("--profile", type=Path, help="cProfile the measured phases to this file")
    parser.add_argument("--url", help="an empty store to use instead (e.g. a PostgreSQL schema)")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="store_save-"))
    profile = cProfile.Profile() if args.profile else None
    try:
        generator = Generator()
        path = folder / "store.db"
        if args.reuse:
            shutil.copyfile(args.reuse, path)
            kept = Store(f"sqlite:///{path}")
            generator.sources = kept.article_count() // PER_SOURCE + 1
            generator.stored = kept.articles_page(None, "", 2000)  # stories to copy
            kept.close()
        store = Store(args.url or f"sqlite:///{path}")
        store.migrate()

        def measure(phase: Phase, batches: Iterator[list[list[Article]]]) -> None:
            _run(store, batches, phase, profile)
            print(phase.line(), flush=True)

        if not args.reuse:
            first: list[list[Article]] = []
            batches = _batches(generator, args.sources, args.group, args.copies, first)
            measure(Phase("empty store, new"), batches)
            unchanged = (first[i : i + args.group] for i in range(0, len(first), args.group))
            measure(Phase("same sources again, unchanged"), unchanged)
            names = [articles[0].source for articles in first]
            print(_states_only(store, names * 8, args.group), flush=True)
            del first
            filling = Phase(f"filling to {args.stored:,}")
            left = max(args.stored - store.article_count(), 0) // PER_SOURCE
            began = time.perf_counter()
            _run(store, _batches(generator, left, args.group, args.copies, None), filling)
            print(f"{filling.line()}  [{time.perf_counter() - began:.0f} s wall]", flush=True)
            if args.keep:
                store.close()
                shutil.copyfile(path, args.keep)
        else:  # a cold copy: one unmeasured group first, as the filling warms a fresh store
            _run(store, _batches(generator, args.group, args.group, args.copies, None), Phase(""))
        stored = store.article_count()
        batches = _batches(generator, args.sources, args.group, args.copies, None)
        measure(Phase(f"{stored:,} stored, new"), batches)
        store.close()
        if profile and args.profile:
            profile.dump_stats(args.profile)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
