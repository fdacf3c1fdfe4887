"""Serving: requests/s of the real daemon on loopback, and its idle RSS holding 100k articles.

    .venv/bin/python benchmarks/serve.py                       # 100k articles, 10 s per run
    .venv/bin/python benchmarks/serve.py --articles 20000 --seconds 5 --client python

1. A SQLite store filled straight through Store.save_articles with --articles generated articles
   (100 sources, 20 tags, a few hundred bytes of text each), and a config naming those sources
   disabled, plus --feeds enabled feeds served by the local feed farm (tests/farm.py) on
   127.0.0.1, so the daemon runs real passes: fetch, parse (in worker processes once a pass has
   more than INLINE_JOBS documents), clean, store, render.
2. `aggregator run` as a child process; after its first pass, and a second one over feeds that
   each gained an item, it idles --settle seconds with its interval's 304 passes going on, and
   the memory of its whole process tree (the daemon and every descendant, e.g. the
   multiprocessing resource tracker) is sampled from /proc: RSS summed, and PSS summed (shared
   pages split between the processes that share them, so not counted twice).
3. Load on a 50-item tag feed (tags/tag-00.atom): conditional GETs answered 304, full GETs
   (identity) and full GETs with Accept-Encoding: gzip, with wrk (Debian's, when installed) or
   a Python load generator (httpx over asyncio, several keep-alive connections).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aggregator.models import Article, SourceState  # noqa: E402
from aggregator.store import Store  # noqa: E402
from tests.daemonproc import Daemon, free_port  # noqa: E402
from tests.farm import Farm, FarmConfig  # noqa: E402
from tests.helpers import save_articles  # noqa: E402

SOURCES = 100
TAGS = 20
FEED = "/tags/tag-00.atom"
WHEN = datetime(2024, 1, 1, tzinfo=UTC)
WORDS = [
    "the",
    "council",
    "said",
    "new",
    "rail",
    "line",
    "would",
    "open",
    "after",
    "years",
    "of",
    "delay",
    "and",
    "cost",
]


def fill_store(url: str, articles: int) -> None:
    store = Store(url)
    store.migrate()
    per_source = articles // SOURCES
    for number in range(SOURCES):
        source = f"source-{number:03d}"
        batch = []
        for index in range(per_source):
            key = f"https://news.example.org/{number}/{index}.html"
            ident = hashlib.sha256(f"{source}\0{key}".encode()).hexdigest()[:32]
            text = " ".join(WORDS[(index + k) % len(WORDS)] for k in range(60))
            when = WHEN + timedelta(minutes=index * SOURCES + number)
            batch.append(
                Article(
                    id=ident,
                    source=source,
                    key=key,
                    title=f"Story {index} from {source}",
                    link=key,
                    published=when,
                    updated=when,
                    author="Desk",
                    tags=(f"tag-{(number + index) % TAGS:02d}",),
                    content_html=f"<p>{text}</p>",
                    summary=text[:140],
                    raw_html=f"<p>{text}</p>",
                    content_hash=hashlib.sha256(f"{ident}{text}".encode()).hexdigest(),
                    cluster_id=ident,
                )
            )
        save_articles(store, source, batch, SourceState(name=source))
    store.close()


def write_config(folder: Path, port: int, feeds: list[str], interval: str) -> Path:
    lines = [
        'store: {url: "sqlite:///state/agg.db"}',
        f'output: {{dir: public, base_url: "http://127.0.0.1:{port}/"}}',
        f"server: {{host: 127.0.0.1, port: {port}}}",
        f"defaults: {{interval: {interval}}}",
        "sources:",
    ]
    for number, url in enumerate(feeds):
        lines += [
            f"  - name: farm-{number}",
            "    kind: feed",
            f"    url: {url}",
            f"    tags: [tag-{number % TAGS:02d}]",
        ]
    for number in range(SOURCES):
        lines += [
            f"  - name: source-{number:03d}",
            "    kind: feed",
            f"    url: http://127.0.0.1:9/{number}.xml",
            "    enabled: false",
        ]
    path = folder / "aggregator.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants, from the parent pid field of /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # exited meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def tree_memory(pid: int) -> tuple[float, float, list[str]]:
    """Summed RSS and PSS (MB) of `pid`'s process tree, and one line per process."""
    rss = pss = 0.0
    lines = []
    for member in tree(pid):
        try:
            rollup = Path(f"/proc/{member}/smaps_rollup").read_text()
            command = Path(f"/proc/{member}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        values = {
            key: int(re.search(rf"^{key}:\s+(\d+) kB", rollup, re.M).group(1)) / 1024  # type: ignore[union-attr]
            for key in ("Rss", "Pss")
        }
        rss += values["Rss"]
        pss += values["Pss"]
        lines.append(
            f"pid {member}: RSS {values['Rss']:.0f} MB, PSS {values['Pss']:.0f} MB: {command[:90]}"
        )
    return rss, pss, lines


def wait_for_pass(daemon: Daemon, count: int, timeout: float = 300) -> None:
    """Until the daemon has logged `count` passes that fetched something."""
    deadline = time.monotonic() + timeout
    while len(re.findall(r"^INFO pass: ", daemon.stderr(), re.M)) < count:
        assert time.monotonic() < deadline, daemon.stderr()[-3000:]
        time.sleep(0.2)


def rss_mb(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    values = {
        key: int(re.search(rf"{key}:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
        for key in ("VmRSS", "VmHWM")
    }
    return values["VmRSS"], values["VmHWM"]


def wrk(url: str, seconds: int, connections: int, headers: dict[str, str]) -> tuple[float, str]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+(\S+)", output)
    return rate, p99.group(1) if p99 else "?"


async def _python_load(
    url: str, seconds: int, connections: int, headers: dict[str, str], expect: int
) -> tuple[float, str]:
    done = 0
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, headers=headers) as client:

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                started = time.perf_counter()
                response = await client.get(url)
                latencies.append(time.perf_counter() - started)
                assert response.status_code == expect, response.status_code
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.monotonic() - started
    latencies.sort()
    return done / elapsed, f"{latencies[int(len(latencies) * 0.99)] * 1000:.2f}ms"


def load(
    client: str, url: str, seconds: int, connections: int, headers: dict[str, str], expect: int
) -> tuple[float, str]:
    # A request first, so a wrong answer (200 instead of 304) is caught before timing.
    assert httpx.get(url, headers=headers).status_code == expect
    if client == "wrk":
        return wrk(url, seconds, connections, headers)
    return asyncio.run(_python_load(url, seconds, connections, headers, expect))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--feeds", type=int, default=8, help="enabled feeds on the local farm")
    parser.add_argument("--interval", default="3s", help="the enabled feeds' interval")
    parser.add_argument("--client", choices=("wrk", "python"), default=None)
    args = parser.parse_args()
    client = args.client or ("wrk" if shutil.which("wrk") else "python")

    with (
        tempfile.TemporaryDirectory(prefix="aggregator-serve-") as folder,
        Farm(FarmConfig(feeds=args.feeds, churn=1.0, bad_citizens=False)) as farm,
    ):
        root = Path(folder)
        (root / "state").mkdir()
        started = time.monotonic()
        fill_store(f"sqlite:///{root / 'state' / 'agg.db'}", args.articles)
        print(f"store: {args.articles} articles in {time.monotonic() - started:.1f} s")
        port = free_port()
        config = write_config(root, port, farm.feed_urls(), args.interval)
        with Daemon(config, port) as daemon:
            started = time.monotonic()
            daemon.wait_healthy(timeout=300)
            print(f"daemon up (start-up render included) in {time.monotonic() - started:.1f} s")
            wait_for_pass(daemon, 1)
            farm.next_pass()  # every feed gains an item: the next pass parses them all again
            wait_for_pass(daemon, 2)
            passes = re.findall(r"^INFO (pass: .*)$", daemon.stderr(), re.M)
            print(f"{args.feeds} farm feeds every {args.interval}; {passes[0]}; then {passes[1]}")
            assert daemon.process is not None
            samples = []
            deadline = time.monotonic() + args.settle
            while time.monotonic() < deadline:
                time.sleep(0.5)
                samples.append(tree_memory(daemon.process.pid))
            rss, pss, lines = samples[-1]
            print(
                f"idle daemon holding {args.articles} articles, process tree over {args.settle:.0f}"
                f" s of {args.interval} passes: RSS summed {rss:.0f} MB (highest sample"
                f" {max(s[0] for s in samples):.0f} MB), PSS summed {pss:.0f} MB (highest"
                f" {max(s[1] for s in samples):.0f} MB)"
            )
            for line in lines:
                print(f"  {line}")
            own, peak = rss_mb(daemon.process.pid)
            print(f"  the daemon alone: VmRSS {own:.0f} MB, VmHWM (its peak so far) {peak:.0f} MB")

            url = daemon.url + FEED
            first = httpx.get(url, headers={"Accept-Encoding": "identity"})
            items = first.text.count("<entry>")
            etag = first.headers["etag"]
            print(
                f"{FEED}: {items} items, {len(first.content)} bytes; client {client}, "
                f"{args.connections} connections, {args.seconds} s each, 2 CPUs shared"
            )
            runs = [
                ("304 conditional GET", {"If-None-Match": etag}, 304),
                ("200 full GET (identity)", {"Accept-Encoding": "identity"}, 200),
                ("200 full GET (gzip)", {"Accept-Encoding": "gzip"}, 200),
            ]
            print("| request | req/s | p99 latency |")
            print("|---|---|---|")
            for name, headers, expect in runs:
                rate, p99 = load(client, url, args.seconds, args.connections, headers, expect)
                print(f"| {name} | {rate:.0f} | {p99} |")
            rss, pss, _ = tree_memory(daemon.process.pid)
            print(f"after the load: process tree RSS summed {rss:.0f} MB, PSS summed {pss:.0f} MB")
            status, _ = daemon.stop()
            print(f"daemon exit status: {status}")


if __name__ == "__main__":
    main()
