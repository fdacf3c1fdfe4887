"""The real-world corpus through one real pass, compared with a mature reader.

    .venv/bin/python benchmarks/realworld.py                 # real/, edge/ and repro/
    .venv/bin/python benchmarks/realworld.py --sets real     # one set
    .venv/bin/python benchmarks/realworld.py --details       # every unexplained missing entry

One `feed` source per file of ../shared/realworld (served from 127.0.0.1), one
`aggregator run --once`, then each source's tag feed against feedparser (XML) or the JSON Feed
spec (JSON). Prints the pass's exit code and wall time, and per set: feeds, entries the
reference finds, entries kept, missing, sources failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import status_rows
from tests.realworld import (
    EMPTY,
    NOT_READ,
    SAME_ENTRY,
    SETS,
    UNEXPLAINED,
    compare,
    corpus_files,
    run_once,
    serve_corpus,
    skipped_messages,
    summary,
    write_config,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    parser.add_argument("--details", action="store_true")
    args = parser.parse_args()
    files = corpus_files(tuple(args.sets))
    with tempfile.TemporaryDirectory() as tmp, serve_corpus() as base_url:
        folder = Path(tmp)
        config = write_config(folder, files, base_url)
        started = time.perf_counter()
        done = run_once(config)
        wall = time.perf_counter() - started
        print(f"run --once: exit {done.returncode} in {wall:.1f} s, {len(files)} sources")
        if done.returncode != 0:
            print(done.stderr[-4000:])
            return
        outcomes = compare(folder, files, status_rows(config), skipped_messages(done.stderr))
    columns = [
        "feeds",
        "not a feed to the reference",
        "entries (reference)",
        "kept",
        "sources failed",
        "feeds with entries but no items",
    ]
    classes = [EMPTY, SAME_ENTRY, NOT_READ, UNEXPLAINED]
    table = summary(outcomes)
    print("| set | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for set_name, row in table.items():
        print(f"| {set_name} | " + " | ".join(str(row[column]) for column in columns) + " |")
    print("\nEntries the reference finds that are not items, by why:")
    print("| set | " + " | ".join(classes) + " |")
    print("|---" * (len(classes) + 1) + "|")
    for set_name, row in table.items():
        print(f"| {set_name} | " + " | ".join(str(row[why]) for why in classes) + " |")
    if not args.details:
        return
    for outcome in outcomes:
        if not any(why in (UNEXPLAINED, NOT_READ) for _, why in outcome.missing):
            continue
        print(
            f"\n{outcome.file.name} {outcome.file.path}: reference {outcome.reference}, "
            f"kept {outcome.kept}, items {outcome.items}, error {outcome.error}"
        )
        for entry, why in outcome.missing[:5]:
            print(f"    {why}: {entry.title[:60]!r} {entry.link[:80]} {entry.guid[:60]}")


if __name__ == "__main__":
    main()
