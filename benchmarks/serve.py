"""Serving: requests/s of the real daemon on loopback, and its idle RSS holding 100k articles.

    .venv/bin/python benchmarks/serve.py                       # 100k articles, 10 s per run
    .venv/bin/python benchmarks/serve.py --articles 20000 --seconds 5 --client python

1. A SQLite store filled straight through Store.save_articles with --articles generated articles
   (100 sources, 20 tags, a few hundred bytes of text each), and a config naming those sources
   disabled (so nothing is fetched: the daemon only serves and holds the store).
2. `aggregator run` as a child process; once /healthz answers and the start-up render is done,
   the daemon idles --settle seconds and its VmRSS (and VmHWM) is read from /proc.
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
        store.save_articles(source, batch, SourceState(name=source))
    store.close()


def write_config(folder: Path, port: int) -> Path:
    lines = [
        'store: {url: "sqlite:///state/agg.db"}',
        f'output: {{dir: public, base_url: "http://127.0.0.1:{port}/"}}',
        f"server: {{host: 127.0.0.1, port: {port}}}",
        "sources:",
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
    parser.add_argument("--client", choices=("wrk", "python"), default=None)
    args = parser.parse_args()
    client = args.client or ("wrk" if shutil.which("wrk") else "python")

    with tempfile.TemporaryDirectory(prefix="aggregator-serve-") as folder:
        root = Path(folder)
        (root / "state").mkdir()
        started = time.monotonic()
        fill_store(f"sqlite:///{root / 'state' / 'agg.db'}", args.articles)
        print(f"store: {args.articles} articles in {time.monotonic() - started:.1f} s")
        port = free_port()
        with Daemon(write_config(root, port), port) as daemon:
            started = time.monotonic()
            daemon.wait_healthy(timeout=300)
            print(f"daemon up (start-up render included) in {time.monotonic() - started:.1f} s")
            time.sleep(args.settle)
            assert daemon.process is not None
            rss, peak = rss_mb(daemon.process.pid)
            print(f"idle daemon holding {args.articles} articles: VmRSS {rss:.0f} MB")
            print(f"  (VmHWM, its peak so far, start-up render included: {peak:.0f} MB)")

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
            rss, _ = rss_mb(daemon.process.pid)
            print(f"VmRSS after the load: {rss:.0f} MB")
            status, _ = daemon.stop()
            print(f"daemon exit status: {status}")


if __name__ == "__main__":
    main()
