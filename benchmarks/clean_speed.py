"""Clean stage speed: the whole of `clean_html` per article (lxml parse, every rule, the text
and summary, nh3 last), on one core.

    .venv/bin/python benchmarks/clean_speed.py [--repeat 200]

Samples: every gold input under tests/fixtures/clean/ (their own base URL and per-source rules)
plus the bodies of the posts in seeds/. Each sample is cleaned --repeat times; its time is the
median of those runs. Prints the median over the samples and articles/s on one core (the
process is pinned to one CPU where the OS allows), and the throughput over the whole sample
set. Target (issue 4): at least 2000 articles/s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aggregator.clean import clean_html  # noqa: E402

GOLD = ROOT / "tests" / "fixtures" / "clean"
SEEDS = ROOT / "seeds"
TARGET = 2000


def samples() -> list[tuple[str, str, str | None, dict[str, Any]]]:
    found: list[tuple[str, str, str | None, dict[str, Any]]] = []
    for case in sorted(path for path in GOLD.iterdir() if (path / "input.html").is_file()):
        base_file = case / "base_url.txt"
        options_file = case / "options.json"
        found.append(
            (
                f"gold/{case.name}",
                (case / "input.html").read_text(encoding="utf-8"),
                base_file.read_text(encoding="utf-8").strip() if base_file.exists() else None,
                json.loads(options_file.read_text(encoding="utf-8"))
                if options_file.exists()
                else {},
            )
        )
    for post in sorted(SEEDS.glob("*.txt")):
        # The body after the front matter, as the posts source hands it to the clean stage.
        body = post.read_text(encoding="utf-8").split("\n---\n", 1)[-1]
        found.append((f"seeds/{post.name}", body, None, {}))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=200, help="Runs per sample.")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    runs: list[float] = []
    sizes: list[int] = []
    for _name, html, base, options in samples():
        drop = options.get("drop_selectors", ())
        drop_text = options.get("drop_text", ())
        clean_html(html, base, drop_selectors=drop, drop_text=drop_text)  # warm caches
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            clean_html(html, base, drop_selectors=drop, drop_text=drop_text)
            times.append(time.perf_counter() - start)
        runs.append(statistics.median(times))
        sizes.append(len(html.encode("utf-8")))
    median = statistics.median(runs)
    print(
        f"{len(runs)} samples, {statistics.median(sizes) / 1000:.1f} kB median body "
        f"({max(sizes) / 1000:.1f} kB largest), {args.repeat} runs each, one core"
    )
    print(f"per article: median {median * 1e6:.0f} us, slowest sample {max(runs) * 1e6:.0f} us")
    print(f"median article: {1 / median:,.0f} articles/s (target {TARGET:,})")
    print(f"whole sample set: {len(runs) / sum(runs):,.0f} articles/s")


if __name__ == "__main__":
    main()
