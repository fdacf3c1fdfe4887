"""Clean stage speed: the whole of `clean_html` per article (lxml parse, every rule, the text
and summary, nh3 last), on one core.

    .venv/bin/python benchmarks/clean_speed.py [--repeat 200]

Samples: every gold input under tests/fixtures/clean/ (their own base URL and per-source rules)
plus the bodies of the posts in seeds/. Each sample is cleaned --repeat times; its time is the
median of those runs. Prints the median over the samples and articles/s on one core (the
process is pinned to one CPU where the OS allows), and the throughput over the whole sample
set. Target (issue 4): at least 2000 articles/s. The gold inputs are short (about 1.3 kB), so
a second round times long bodies: runs of 6 consecutive samples joined into one (~8-12 kB,
the size of a long news article with its junk).
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


def long_samples(
    short: list[tuple[str, str, str | None, dict[str, Any]]], join: int = 6
) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    return [
        (f"joined/{index}", "\n".join(html for _, html, _, _ in short[index : index + join]),
         short[index][2], {})
        for index in range(0, len(short) - join + 1, join)
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=200, help="Runs per sample.")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    short = samples()
    measure("article bodies", short, args.repeat)
    measure("long bodies", long_samples(short), args.repeat)


def measure(
    title: str, bodies: list[tuple[str, str, str | None, dict[str, Any]]], repeat: int
) -> None:
    runs: list[float] = []
    sizes: list[int] = []
    for _name, html, base, options in bodies:
        drop = options.get("drop_selectors", ())
        drop_text = options.get("drop_text", ())
        clean_html(html, base, drop_selectors=drop, drop_text=drop_text)  # warm caches
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            clean_html(html, base, drop_selectors=drop, drop_text=drop_text)
            times.append(time.perf_counter() - start)
        runs.append(statistics.median(times))
        sizes.append(len(html.encode("utf-8")))
    median = statistics.median(runs)
    print(
        f"{title}: {len(runs)} samples, {statistics.median(sizes) / 1000:.1f} kB median "
        f"({max(sizes) / 1000:.1f} kB largest), {repeat} runs each, one core"
    )
    print(f"per article: median {median * 1e6:.0f} us, slowest sample {max(runs) * 1e6:.0f} us")
    print(f"median article: {1 / median:,.0f} articles/s (target {TARGET:,})")
    print(f"whole sample set: {len(runs) / sum(runs):,.0f} articles/s\n")


if __name__ == "__main__":
    main()
