"""Several nodes on one PostgreSQL store: real daemons against a feed farm, and a simulation of
the lease protocol at 20k-50k sources.

    .venv/bin/python benchmarks/multinode.py                       # both parts, defaults
    .venv/bin/python benchmarks/multinode.py --daemons 3 --feeds 300 --minutes 5
    .venv/bin/python benchmarks/multinode.py --simulate --sources 20000 50000 --nodes 3 5

Part 1 (`--daemons N`, on unless only --simulate is given): N real daemons
(`python -m aggregator --config X run`, tests/daemonproc.py), each with its own config, output
folder and port, all on the same PostgreSQL store URL (a fresh schema, dropped at the end),
against one local feed farm (tests/farm.py, in a process of its own, --feeds feeds over 10
ports, 50 ms latency, no bad citizens). `--doubled` of the farm feeds are configured twice,
under two source names (the second URL carries `?copy=2`, which the farm ignores), so every
story of theirs is carried by two sources and must end in one cluster. Every --interval the farm
publishes (farm.next_pass(): 10% of its feeds gain an item). At 1/3 of the run one daemon is
SIGKILLed (its whole process group) and restarted 30 s later with a new pid; at 1/2 another is
SIGSTOPped (process group) for --stop-seconds, then SIGCONTed. After the run the farm stays
quiet until every source has been fetched since its last change (at most --settle-max s), then
one more tick; each node's all.json is compared with the others' and with the store's newest
stories, then every daemon gets SIGTERM and its exit code is recorded.

Printed: GETs the farm saw per (feed URL, interval window since the start), over all windows and
over the undisturbed ones (windows touching the kill, the restart or the stop excluded);
re-fetches of one URL less than half an interval apart; lock errors, deadlocks, lost leases in
the daemons' stderr; cluster splits of the doubled feeds; published items missing from the
store; node feed equality; exit codes.

Part 2 (`--simulate`): no HTTP. For each size in --sources and each node count in --nodes (paired
in order: 20000 with 3, 50000 with 5), a fresh schema gets that many source_state rows with
next_fetch_at spread uniformly over one --sim-interval; N node processes then loop like daemons
for --sim-seconds, each --tick doing what the daemon's tick does with the store: claim at most
--batch due sources no live lease holds (Store.claim_due, most overdue first; another batch as
long as they come back full), "fetch" each claimed source (asyncio.sleep of 10-50 ms,
--concurrency at once), save `succeeded(...)` in a transaction of its own fenced by the claim
token, read the claimed sources' states back, read the health and node summaries every
SUMMARY_SECONDS (Store.troubled_states, Store.node_counts) and the changes to render; a pass
finishes before the next tick starts, as in the daemon. One node is SIGKILLed
at half time, abandoning its leases. Node names are `simhost-<i>:<pid>`, one "machine" each, so
the killed node's leases run out rather than being freed at once by a node of the same host
(--same-host tests that path). Printed per size: lateness (fetch start - next_fetch_at) of live
nodes, duplicate fetches (one source twice within half an interval), claim and read times, lost
leases, and how long the killed node's sources waited to be fetched again against its lease.
Before the nodes start, one claim of every source by name is timed (`run --once` over all).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import heapq
import itertools
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from aggregator.daemon.loop import SUMMARY_SECONDS  # noqa: E402
from aggregator.errors import LeaseLostError  # noqa: E402
from aggregator.models import SourceState  # noqa: E402
from aggregator.sources.schedule import succeeded  # noqa: E402
from aggregator.store import Store  # noqa: E402

PG_URL = os.environ.get(
    "AGGREGATOR_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
FARM_HOSTS = 10
RESTART_AFTER_S = 30.0
# Lines of the daemons' stderr worth counting, by what they say.
PATTERNS = {
    "deadlock detected": re.compile(r"deadlock detected", re.I),
    "lock timeout": re.compile(r"lock timeout", re.I),
    "idle-in-transaction timeout": re.compile(r"idle.in.transaction", re.I),
    "lease lost / not saved": re.compile(r"LeaseLost|not saved|lease", re.I),
    "store error": re.compile(r"store: |StoreError", re.I),
    "traceback": re.compile(r"Traceback"),
    # The level follows the time, which journald's format leaves out.
    "ERROR lines": re.compile(r"^(\S+ )?ERROR "),
    "WARNING lines": re.compile(r"^(\S+ )?WARNING "),
}


# --- shared helpers ---------------------------------------------------------------------------


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1).split("?", 1)[0]


@contextmanager
def fresh_schema(prefix: str) -> Iterator[tuple[str, str]]:
    """A new PostgreSQL schema, dropped afterwards: the store URL and the schema's name."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(PG_URL), autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{separator}options=-csearch_path%3D{schema}", schema
    finally:
        with psycopg.connect(_libpq(PG_URL), autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def sql(schema: str, query: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(_libpq(PG_URL), autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        cursor = conn.execute(query, tuple(parameters))
        return list(cursor.fetchall()) if cursor.description is not None else []


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)"


# --- part 1: the farm, in a process of its own --------------------------------------------------


def _farm_main(conn: Connection, feeds: int, latency: float, seed: int) -> None:
    from tests.farm import Farm, FarmConfig, Receive, Scope, Send  # noqa: PLC0415

    class TimedFarm(Farm):
        """The farm, noting when each request arrived and its query (the farm logs neither)."""

        def __init__(self, config: FarmConfig) -> None:
            super().__init__(config)
            self.arrivals: list[tuple[float, str]] = []

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                query = scope.get("query_string", b"").decode("latin-1")
                self.arrivals.append((time.time(), scope["path"] + (f"?{query}" if query else "")))
            await super().__call__(scope, receive, send)

    config = FarmConfig(
        feeds=feeds,
        items=20,
        latency=latency,
        churn=0.1,
        hosts=FARM_HOSTS,
        bad_citizens=False,
        seed=seed,
    )
    farm = TimedFarm(config)
    farm.start()
    try:
        urls = farm.feed_urls()
        for url in urls:
            farm.body(url)  # rendered up front

        def items() -> dict[str, list[str]]:
            return {url: [item.title for item in farm.items(url)] for url in urls}

        conn.send((urls, items()))
        while True:
            command = conn.recv()
            if command == "publish":
                farm.next_pass()
                conn.send(items())
            elif command == "arrivals":
                conn.send(list(farm.arrivals))
            else:
                break
    finally:
        farm.stop()


# --- part 1: the daemons ------------------------------------------------------------------------


@dataclass
class Node:
    number: int
    folder: Path
    config: Path
    port: int
    daemons: list[Any] = field(default_factory=list)  # tests.daemonproc.Daemon, one per start

    @property
    def current(self) -> Any:
        return self.daemons[-1]


@dataclass
class Phase:
    label: str
    at: float  # time.time()
    logs: dict[str, int]  # log file -> its size then


def _log_sizes(nodes: Sequence[Node]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for node in nodes:
        for daemon in node.daemons:
            path: Path = daemon.log
            sizes[str(path)] = path.stat().st_size if path.exists() else 0
    return sizes


def _window_counts(
    arrivals: Sequence[tuple[float, str]], start: float, interval: float, windows: int
) -> dict[str, list[int]]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * windows)
    for moment, path in arrivals:
        index = int((moment - start) // interval)
        if 0 <= index < windows:
            counts[path][index] += 1
    return counts


def part_one(args: argparse.Namespace) -> None:
    from tests.daemonproc import Daemon, free_port, write_config  # noqa: PLC0415

    interval = float(args.interval)
    run_seconds = args.minutes * 60.0
    print(
        f"== part 1: {args.daemons} daemons, {args.feeds} farm feeds ({args.doubled} configured"
        f" twice: {args.feeds + args.doubled} sources), interval {interval:.0f} s, timeout"
        f" {args.timeout}, run {run_seconds:.0f} s; {load()}",
        flush=True,
    )
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    farm = context.Process(
        target=_farm_main, args=(theirs, args.feeds, args.latency, args.seed), daemon=True
    )
    farm.start()
    work = Path(tempfile.mkdtemp(prefix="bench-multinode-"))
    nodes: list[Node] = []
    phases: list[Phase] = []
    try:
        with fresh_schema("bench_mn") as (store_url, schema):
            Store(store_url).migrate()
            farm_urls, first_items = ours.recv()
            published: dict[str, set[str]] = {
                url: set(titles) for url, titles in first_items.items()
            }
            sources: list[tuple[str, str, str]] = []  # name, url, tag
            url_of_source: dict[str, str] = {}
            for number, url in enumerate(farm_urls):
                sources.append((f"farm-{number:04d}", url, f"t{number % 10}"))
                url_of_source[f"farm-{number:04d}"] = url
            doubled = list(range(args.doubled))
            for number in doubled:
                url = farm_urls[number]
                sources.append((f"farm-{number:04d}-b", f"{url}?copy=2", f"t{number % 10}"))
                url_of_source[f"farm-{number:04d}-b"] = url
            for number in range(args.daemons):
                folder = work / f"node{number}"
                folder.mkdir()
                port = free_port()
                config = write_config(
                    folder,
                    port,
                    sources,
                    interval=f"{interval:.0f}s",
                    timeout=args.timeout,
                    title="Multinode",
                    items_per_feed=args.items_per_feed,
                    store_url=store_url,
                )
                nodes.append(Node(number, folder, config, port))

            def start(node: Node) -> None:
                node.daemons.append(Daemon(node.config, node.port).start())

            def mark(label: str) -> None:
                phases.append(Phase(label, time.time(), _log_sizes(nodes)))
                print(f"  {time.time() - started:6.1f} s  {label}", flush=True)

            started = time.time()
            for node in nodes:
                start(node)
            mark("started")
            pending = [(interval * k, "publish") for k in range(1, int(run_seconds // interval))]
            pending += [(run_seconds / 3, "kill"), (run_seconds / 2, "stop")]
            heapq.heapify(pending)
            killed = stopped = nodes[0]
            last_change = started

            def busy(avoid: Node | None) -> tuple[Node, int]:
                """The node holding leases now (mid-pass), waiting up to an interval for one;
                else any node but `avoid`. With how many leases."""
                deadline = time.time() + interval + 10
                while True:
                    held = sql(
                        schema,
                        "SELECT claimed_by, count(*) FROM source_state"
                        " WHERE claimed_until > now() GROUP BY 1",
                    )
                    for holder, count in held:
                        for node in nodes:
                            pid = node.current.process.pid
                            if node is not avoid and str(holder).endswith(f":{pid}"):
                                return node, int(count)
                    if time.time() > deadline:
                        return next(node for node in nodes if node is not avoid), 0
                    time.sleep(0.05)

            while pending:
                offset, what = heapq.heappop(pending)
                time.sleep(max(0.0, started + offset - time.time()))
                if what == "publish":
                    ours.send("publish")
                    for url, titles in ours.recv().items():
                        published[url].update(titles)
                    last_change = time.time()
                    mark("farm published")
                elif what == "kill":
                    killed, count = busy(None)
                    killed.current.kill()
                    mark(
                        f"SIGKILL node{killed.number} (pid {killed.current.process.pid},"
                        f" holding {count} leases)"
                    )
                    heapq.heappush(pending, (time.time() - started + RESTART_AFTER_S, "restart"))
                elif what == "restart":
                    start(killed)
                    mark(f"restarted node{killed.number} (pid {killed.current.process.pid})")
                elif what == "stop":
                    stopped, count = busy(killed if len(nodes) > 1 else None)
                    os.killpg(stopped.current.process.pid, signal.SIGSTOP)
                    mark(f"SIGSTOP node{stopped.number} (process group, holding {count} leases)")
                    heapq.heappush(pending, (time.time() - started + args.stop_seconds, "cont"))
                elif what == "cont":
                    os.killpg(stopped.current.process.pid, signal.SIGCONT)
                    mark(f"SIGCONT node{stopped.number}")
            time.sleep(max(0.0, started + run_seconds - time.time()))
            mark("end of run: farm quiet from here")
            settle_deadline = time.time() + args.settle_max
            names = [name for name, _, _ in sources]
            lagging: list[str] = names
            while time.time() < settle_deadline:
                rows = sql(schema, "SELECT name, last_success_at FROM source_state")
                fetched = {
                    name: when
                    for name, when in rows
                    if when is not None and when.timestamp() > last_change
                }
                lagging = [name for name in names if name not in fetched]
                if not lagging:
                    break
                time.sleep(2)
            time.sleep(15)  # a tick (5 s) and the renders of every node
            mark(
                f"settled ({len(lagging)} sources not fetched since the last change)"
                if lagging
                else "settled: every source fetched since the last change"
            )
            ours.send("arrivals")
            arrivals: list[tuple[float, str]] = ours.recv()
            report_one(
                args,
                schema,
                store_url,
                nodes,
                phases,
                arrivals,
                started,
                interval,
                published,
                url_of_source,
                doubled,
                lagging,
            )
            exits: list[list[str]] = [["node", "pid", "signal", "exit code", "seconds"]]
            for node in nodes:
                daemon = node.current
                try:
                    status, seconds = daemon.stop(timeout=20)
                    exits.append(
                        [
                            f"node{node.number}",
                            str(daemon.process.pid),
                            "SIGTERM",
                            str(status),
                            f"{seconds:.1f}",
                        ]
                    )
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    exits.append(
                        [f"node{node.number}", str(daemon.process.pid), "SIGTERM", "hung", ">20"]
                    )
            print("\nExit on SIGTERM:\n" + table(exits))
            after = _log_sizes(nodes)
            tail_lines = []
            for node in nodes:
                log: Path = node.current.log
                text = log.read_text(errors="replace")
                tail_lines += [
                    f"  node{node.number}: {line}"
                    for line in text[phases[-1].logs.get(str(log), 0) : after[str(log)]]
                    .strip()
                    .splitlines()[-3:]
                ]
            print("last lines of each daemon's stderr:\n" + "\n".join(tail_lines))
            print(f"\n{load()}")
    finally:
        for node in nodes:
            for daemon in node.daemons:
                if daemon.process is not None and daemon.process.poll() is None:
                    with _suppress():
                        os.killpg(daemon.process.pid, signal.SIGCONT)
                    daemon.kill()
        ours.send("stop")
        farm.join(timeout=15)
        if farm.is_alive():
            farm.terminate()
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _suppress() -> contextlib.suppress:
    return contextlib.suppress(ProcessLookupError, PermissionError)


def report_one(
    args: argparse.Namespace,
    schema: str,
    store_url: str,
    nodes: Sequence[Node],
    phases: Sequence[Phase],
    arrivals: Sequence[tuple[float, str]],
    started: float,
    interval: float,
    published: dict[str, set[str]],
    url_of_source: dict[str, str],
    doubled: Sequence[int],
    lagging: Sequence[str],
) -> None:
    # Requests per (feed URL, interval window).
    end = phases[-1].at
    windows = int((end - started) // interval)
    counts = _window_counts(arrivals, started, interval, windows)
    paths = sorted({path for _, path in arrivals})
    disturbed: set[int] = set()
    stop = next((p.at for p in phases if p.label.startswith("SIGSTOP")), None)
    cont = next((p.at for p in phases if p.label.startswith("SIGCONT")), None)
    for phase in phases:
        if phase.label.startswith(("SIGKILL", "restarted")):
            disturbed.add(int((phase.at - started) // interval))
    if stop is not None and cont is not None:
        disturbed.update(
            range(int((stop - started) // interval), int((cont - started) // interval) + 2)
        )
    run_windows = int((args.minutes * 60.0) // interval)
    rows = [["windows", "(feed, window) pairs", "mean GETs", "max", "pairs with >1", "with 0"]]
    for label, chosen in (
        (f"all {windows} (run + quiet)", range(windows)),
        (f"run only, first {run_windows}", range(min(run_windows, windows))),
        (
            f"undisturbed (without {sorted(disturbed)})",
            [w for w in range(windows) if w not in disturbed],
        ),
    ):
        cells = [counts[path][w] for path in paths for w in chosen]
        if not cells:
            continue
        rows.append(
            [
                label,
                str(len(cells)),
                f"{sum(cells) / len(cells):.2f}",
                str(max(cells)),
                str(sum(c > 1 for c in cells)),
                str(sum(c == 0 for c in cells)),
            ]
        )
    print(f"\nGETs per feed URL per {interval:.0f} s window (windows from the daemons' start):")
    print(table(rows))
    per_window = [["window", "start s", "GETs", "URLs with >1", "disturbed"]]
    for w in range(windows):
        per_window.append(
            [
                str(w),
                f"{w * interval:.0f}",
                str(sum(counts[p][w] for p in paths)),
                str(sum(counts[p][w] > 1 for p in paths)),
                "yes" if w in disturbed else "",
            ]
        )
    print(table(per_window))
    # Re-fetches: the same URL again less than half an interval later.
    by_path: dict[str, list[float]] = defaultdict(list)
    for moment, path in arrivals:
        by_path[path].append(moment)
    close: list[tuple[float, str, float]] = []
    for path, moments in by_path.items():
        moments.sort()
        for before, after in itertools.pairwise(moments):
            if after - before < interval / 2:
                close.append((after - started, path, after - before))
    print(
        f"re-fetches of one URL < {interval / 2:.0f} s after the previous GET: {len(close)}"
        + "".join(f"\n  at {t:6.1f} s {p} (gap {g:.1f} s)" for t, p, g in sorted(close)[:15])
    )

    # The daemons' stderr.
    found: dict[str, Counter[str]] = defaultdict(Counter)
    examples: dict[str, list[str]] = defaultdict(list)
    by_phase: dict[str, Counter[str]] = defaultdict(Counter)
    for node in nodes:
        for daemon in node.daemons:
            log: Path = daemon.log
            text = log.read_text(errors="replace")
            offset = 0
            for line in text.splitlines(keepends=True):
                when = "before start"
                for candidate in phases:
                    if candidate.logs.get(str(log), 0) <= offset:
                        when = candidate.label.split(" (")[0]
                offset += len(line.encode("utf-8", errors="replace"))
                for label, pattern in PATTERNS.items():
                    if pattern.search(line):
                        found[label][f"node{node.number}"] += 1
                        by_phase[label][when] += 1
                        short = re.sub(r"farm-\d{4}(-b)?", "farm-N", line.strip())[:220]
                        if short not in examples[label] and len(examples[label]) < 4:
                            examples[label].append(short)
    rows = [["stderr lines", *[f"node{n.number}" for n in nodes], "after (phase: count)"]]
    for label in PATTERNS:
        rows.append(
            [
                label,
                *[str(found[label][f"node{n.number}"]) for n in nodes],
                "; ".join(f"{p}: {c}" for p, c in by_phase[label].items()) or "-",
            ]
        )
    print("\nDaemons' stderr (every start of each node):")
    print(table(rows))
    for label, lines in examples.items():
        if label in ("WARNING lines", "ERROR lines", "traceback"):
            continue
        for line in lines:
            print(f"  [{label}] {line}")

    # Cluster splits, missing items.
    articles = sql(schema, "SELECT source, title, cluster_id FROM article")
    titles: dict[str, set[str]] = defaultdict(set)
    clusters: dict[tuple[int, str], set[str]] = defaultdict(set)
    doubled_names = {f"farm-{n:04d}": n for n in doubled} | {f"farm-{n:04d}-b": n for n in doubled}
    for source, title, cluster_id in articles:
        titles[source].add(title)
        if source in doubled_names:
            clusters[(doubled_names[source], title)].add(cluster_id)
    splits = [(key, ids) for key, ids in clusters.items() if len(ids) > 1]
    missing: list[tuple[str, str]] = []
    for source, url in url_of_source.items():
        missing += [(source, title) for title in sorted(published[url] - titles[source])]
    total_published = sum(len(published[url]) for url in url_of_source.values())
    print(
        f"\nArticles stored: {len(articles)}; published items (per source): {total_published};"
        f" missing from the store: {len(missing)}"
        + "".join(f"\n  missing: {source}: {title}" for source, title in missing[:10])
    )
    print(
        f"Doubled feeds: {len(clusters)} stories, {len(splits)} in more than one cluster"
        + "".join(f"\n  split: farm-{k[0]:04d}: {k[1]}: {sorted(v)}" for k, v in splits[:10])
    )
    if lagging:
        print(f"Sources not fetched since the last farm change: {len(lagging)}: {lagging[:10]}")
    holders = sql(
        schema,
        "SELECT coalesce(fetched_by, '-'), count(*) FROM source_state GROUP BY 1 ORDER BY 1",
    )
    failing = sql(
        schema,
        "SELECT name, error_streak, last_error, next_fetch_at FROM source_state"
        " WHERE error_streak > 0 ORDER BY name",
    )
    print(
        "last fetched by: "
        + ", ".join(f"{holder}: {count}" for holder, count in holders)
        + f"; sources with an error streak now: {len(failing)}"
        + "".join(f"\n  {name}: streak {s}: {str(e)[:160]}" for name, s, e, _ in failing[:5])
    )

    # Node feeds against each other and the store.
    store = Store(store_url)
    try:
        newest = [members[0].cluster_id for members in store.clusters(None, args.items_per_feed)]
    finally:
        store.close()
    expected = [f"urn:uuid:{story}" for story in newest]
    rows = [["node", "items in all.json", "same list as the store", "same set", "missing", "extra"]]
    lists: list[list[str]] = []
    for node in nodes:
        feed = node.folder / "public" / "all.json"
        try:
            served = [item["id"] for item in json.loads(feed.read_bytes())["items"]]
        except (OSError, ValueError, KeyError) as error:
            rows.append([f"node{node.number}", f"unreadable: {error}", "-", "-", "-", "-"])
            continue
        lists.append(served)
        rows.append(
            [
                f"node{node.number}",
                str(len(served)),
                "yes" if served == expected else "NO",
                "yes" if set(served) == set(expected) else "NO",
                str(len(set(expected) - set(served))),
                str(len(set(served) - set(expected))),
            ]
        )
    print(f"\nEach node's all.json against the store's newest {args.items_per_feed} stories:")
    print(table(rows))
    print(
        "every node's all.json equal: "
        + ("yes" if lists and all(served == lists[0] for served in lists) else "NO")
    )


# --- part 2: the simulation ---------------------------------------------------------------------


@dataclass(frozen=True)
class SimNode:
    url: str
    number: int
    host: str  # "" for simhost-<number>
    interval: float
    lease: float
    tick: float
    concurrency: int
    batch: int
    fetch_ms: tuple[float, float]
    savers: int
    events: str
    start_at: float
    end_at: float


def _sim_node_main(spec: SimNode) -> None:
    asyncio.run(_sim_node(spec))


async def _sim_node(spec: SimNode) -> None:
    host = spec.host or f"simhost-{spec.number}"
    node = f"{host}:{os.getpid()}"
    store = Store(spec.url)
    chooser = random.Random(spec.number)
    interval = timedelta(seconds=spec.interval)
    lease = timedelta(seconds=spec.lease)
    loop = asyncio.get_running_loop()
    savers = ThreadPoolExecutor(spec.savers, thread_name_prefix="save")
    turns = asyncio.Semaphore(spec.concurrency)
    with open(spec.events, "w", buffering=1, encoding="utf-8") as out:
        out.write(f"N\t{node}\n")

        def save(state: SourceState) -> tuple[bool, float]:
            began = time.perf_counter()
            try:
                with store.transaction() as transaction:
                    transaction.save_state(state)
            except LeaseLostError:
                return False, time.perf_counter() - began
            return True, time.perf_counter() - began

        async def fetch(state: SourceState, now: datetime) -> None:
            async with turns:
                moment = time.time()
                due = state.next_fetch_at.timestamp() if state.next_fetch_at else ""
                out.write(f"F\t{moment:.3f}\t{state.name}\t{due}\n")
                await asyncio.sleep(chooser.uniform(*spec.fetch_ms) / 1000)
            try:
                saved, seconds = await loop.run_in_executor(
                    savers, save, succeeded(state, now, interval)
                )
            except Exception as error:
                out.write(f"E\t{time.time():.3f}\t{state.name}\t{error!r}\n")
                return
            out.write(f"{'S' if saved else 'L'}\t{time.time():.3f}\t{state.name}\t{seconds:.4f}\n")

        # Daemons started by hand or by systemd on several machines tick in no common phase.
        phase = chooser.uniform(0, spec.tick)
        await asyncio.sleep(max(0.0, spec.start_at + phase - time.time()))
        summarised = -SUMMARY_SECONDS
        while time.time() < spec.end_at:
            tick = time.time()
            now = datetime.now(UTC)
            # As the daemon's tick does (pipeline/run.py run_pass_async, pipeline/claims.py
            # claim_due, daemon/loop.py _one_pass): bounded batches of due sources, another as
            # long as they come back full; the claimed sources' states read back (did a health
            # move?); the health and node summaries every SUMMARY_SECONDS; the changes to render.
            jobs: list[asyncio.Task[None]] = []
            while True:
                began = time.perf_counter()
                claimed = await loop.run_in_executor(
                    savers,
                    functools.partial(store.claim_due, node, datetime.now(UTC), lease, spec.batch),
                )
                seconds = time.perf_counter() - began
                out.write(f"C\t{time.time():.3f}\t{seconds:.4f}\t{spec.batch}\t{len(claimed)}\n")
                batch = [asyncio.create_task(fetch(state, datetime.now(UTC))) for state in claimed]
                jobs += batch
                if batch:
                    await asyncio.gather(*batch)
                    names = [state.name for state in claimed]
                    await loop.run_in_executor(savers, store.source_states, names)
                if len(claimed) < spec.batch:
                    break
            if time.monotonic() - summarised >= SUMMARY_SECONDS:
                began = time.perf_counter()
                await loop.run_in_executor(savers, store.troubled_states)
                await loop.run_in_executor(savers, store.node_counts, now)
                read = time.perf_counter() - began
                out.write(f"R\t{tick:.3f}\t{read:.4f}\t0\t{len(jobs)}\n")
                summarised = time.monotonic()
            await loop.run_in_executor(savers, store.changes_to_render, node)
            out.write(f"P\t{time.time():.3f}\t{time.time() - tick:.3f}\t{len(jobs)}\n")
            await asyncio.sleep(max(0.0, tick + spec.tick - time.time()))
        out.write(f"U\t{time.process_time():.2f}\n")
    savers.shutdown()
    store.close()


@dataclass
class NodeEvents:
    name: str = ""
    reads: list[tuple[float, float, int, int]] = field(default_factory=list)  # t, s, rows, due
    claims: list[tuple[float, float, int, int]] = field(default_factory=list)  # t, s, asked, got
    fetches: list[tuple[float, str, float | None]] = field(default_factory=list)  # t, name, due
    saves: list[float] = field(default_factory=list)  # seconds
    lost: list[tuple[float, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    passes: list[tuple[float, float, int]] = field(default_factory=list)  # t, seconds, sources
    cpu: float | None = None


def _read_events(path: Path) -> NodeEvents:
    events = NodeEvents()
    for line in path.read_text(encoding="utf-8").splitlines():
        kind, *rest = line.split("\t")
        try:
            if kind == "N":
                events.name = rest[0]
            elif kind == "R":
                events.reads.append((float(rest[0]), float(rest[1]), int(rest[2]), int(rest[3])))
            elif kind == "C":
                events.claims.append((float(rest[0]), float(rest[1]), int(rest[2]), int(rest[3])))
            elif kind == "F":
                events.fetches.append(
                    (float(rest[0]), rest[1], float(rest[2]) if rest[2] else None)
                )
            elif kind == "S":
                events.saves.append(float(rest[2]))
            elif kind == "L":
                events.lost.append((float(rest[0]), rest[1]))
            elif kind == "E":
                events.errors.append(rest[2])
            elif kind == "P":
                events.passes.append((float(rest[0]), float(rest[1]), int(rest[2])))
            elif kind == "U":
                events.cpu = float(rest[0])
        except (IndexError, ValueError):
            continue  # a line cut by the kill
    return events


def _populate(schema: str, count: int, start: float, interval: float) -> list[str]:
    names = [f"src-{number:06d}" for number in range(count)]
    chooser = random.Random(count)
    with psycopg.connect(_libpq(PG_URL), autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        with (
            conn.cursor() as cursor,
            cursor.copy(
                "COPY source_state (name, next_fetch_at, new_items, error_streak) FROM STDIN"
            ) as copy,
        ):
            for name in names:
                due = datetime.fromtimestamp(start + chooser.uniform(0, interval), UTC)
                copy.write_row((name, due, 0, 0))
        conn.execute("ANALYZE source_state")
    return names


def _big_claim(store_url: str, schema: str, names: list[str]) -> tuple[float, int]:
    """One claim of every source by name at once (`run --once` over all of them): its seconds
    and how many it got; then given back."""
    store = Store(store_url)
    try:
        now = datetime.now(UTC)
        began = time.perf_counter()
        claimed = store.claim("bigclaim-host:1", names, now, timedelta(minutes=5), due_only=False)
        seconds = time.perf_counter() - began
    finally:
        store.close()
    sql(schema, "UPDATE source_state SET claimed_by = NULL, claimed_until = NULL")
    return seconds, len(claimed)


@dataclass
class SimResult:
    sources: int
    nodes: int
    rows: list[list[str]]
    notes: list[str]


def simulate(args: argparse.Namespace, sources: int, node_count: int) -> SimResult:
    interval = float(args.sim_interval)
    notes: list[str] = []
    print(
        f"== part 2: {sources} sources x {node_count} nodes, interval {interval:.0f} s, lease"
        f" {args.lease:.0f} s, tick {args.tick:.1f} s, run {args.sim_seconds:.0f} s; {load()}",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="bench-multinode-sim-"))
    context = multiprocessing.get_context("spawn")
    try:
        with fresh_schema("bench_sim") as (store_url, schema):
            Store(store_url).migrate()
            start_at = time.time() + 12.0
            if not args.no_big_claim:
                names = _populate(schema, sources, start_at, interval)
                seconds, got = _big_claim(store_url, schema, names)
                notes.append(
                    f"one claim of all {sources} sources by name (run --once): {seconds:.1f} s"
                    f" ({got} claimed)"
                )
                print(f"  {notes[-1]}", flush=True)
                sql(schema, "TRUNCATE source_state")
            start_at = time.time() + 12.0  # spawn and import the node processes first
            _populate(schema, sources, start_at, interval)
            end_at = start_at + args.sim_seconds
            processes = []
            for number in range(node_count):
                spec = SimNode(
                    url=store_url,
                    number=number,
                    host=os.uname().nodename if args.same_host else "",
                    interval=interval,
                    lease=args.lease,
                    tick=args.tick,
                    concurrency=args.concurrency,
                    batch=args.batch,
                    fetch_ms=(10.0, 50.0),
                    savers=args.savers,
                    events=str(work / f"node{number}.tsv"),
                    start_at=start_at,
                    end_at=end_at,
                )
                process = context.Process(target=_sim_node_main, args=(spec,), daemon=True)
                process.start()
                processes.append(process)
            kill_at = start_at + args.sim_seconds / 2
            time.sleep(max(0.0, kill_at - time.time()))
            victim = processes[-1]
            assert victim.pid is not None
            victim_name = ""
            for line in (work / f"node{node_count - 1}.tsv").read_text().splitlines()[:1]:
                victim_name = line.split("\t")[1]
            # Killed in the middle of a pass: once it holds leases (10 s at most).
            deadline = time.time() + 10
            while time.time() < deadline and not sql(
                schema, "SELECT 1 FROM source_state WHERE claimed_by = %s LIMIT 1", (victim_name,)
            ):
                time.sleep(0.01)
            os.kill(victim.pid, signal.SIGKILL)
            killed_at = time.time()
            held = sql(
                schema,
                "SELECT name, claimed_until FROM source_state WHERE claimed_by = %s",
                (victim_name,),
            )
            print(
                f"  {killed_at - start_at:6.1f} s  SIGKILL {victim_name}: {len(held)} leases"
                " abandoned",
                flush=True,
            )
            for process in processes[:-1]:
                process.join(timeout=args.sim_seconds + 120)
                if process.is_alive():
                    notes.append(f"node process {process.pid} did not finish: terminated")
                    process.terminate()
            victim.join(timeout=5)
            finished = time.time()
            stuck = sql(
                schema,
                "SELECT count(*) FROM source_state WHERE next_fetch_at < %s",
                (datetime.fromtimestamp(end_at - args.lease - 2 * args.tick, UTC),),
            )[0][0]
            events = [_read_events(work / f"node{n}.tsv") for n in range(node_count)]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    live = events[:-1]
    dead = events[-1]
    lateness = [
        moment - due
        for node in live
        for moment, _, due in node.fetches
        if due is not None and moment < end_at
    ]
    steady = [
        moment - due
        for node in live
        for moment, _, due in node.fetches
        if due is not None and start_at + 10 < moment < end_at
    ]
    claim_seconds = [seconds for node in events for _, seconds, _, _ in node.claims]
    read_seconds = [seconds for node in events for _, seconds, _, _ in node.reads]
    save_seconds = [seconds for node in events for seconds in node.saves]
    pass_seconds = [seconds for node in events for _, seconds, _ in node.passes]
    fetched: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for node in events:
        for moment, name, _ in node.fetches:
            fetched[name].append((moment, node.name))
    duplicates = 0
    duplicates_with_dead = 0
    for moments in fetched.values():
        moments.sort()
        for (before, who_before), (after, who_after) in itertools.pairwise(moments):
            if after - before < interval / 2:
                if dead.name in (who_before, who_after):
                    duplicates_with_dead += 1
                else:
                    duplicates += 1
    total_fetches = sum(len(moments) for moments in fetched.values())
    # The killed node's sources: when another node fetched each again.
    refetch: list[float] = []
    never = 0
    lease_left = [until.timestamp() - killed_at for _, until in held if until is not None]
    for name, _ in held:
        again = [
            moment
            for moment, who in fetched.get(name, [])
            if who != dead.name and moment > killed_at
        ]
        if again:
            refetch.append(min(again) - killed_at)
        else:
            never += 1
    lost = sum(len(node.lost) for node in events)
    errors = [error for node in events for error in node.errors]
    cpu = [node.cpu for node in live if node.cpu is not None]
    rows = [
        [f"{sources} x {node_count}", "fetches (all nodes)", str(total_fetches)],
        ["", "expected (sources x run / interval)", f"{sources * args.sim_seconds / interval:.0f}"],
        ["", "lateness p50 / p99 / max (live nodes), s", _p(lateness)],
        ["", "  from 10 s after the start, s", _p(steady)],
        ["", "duplicate fetches (< interval/2 apart)", str(duplicates)],
        ["", "  of which involve the killed node", str(duplicates_with_dead)],
        ["", "lost leases (save refused)", str(lost)],
        ["", "other save errors", str(len(errors))],
        ["", "claim call p50 / p99 / max, s", _p(claim_seconds)],
        [
            "",
            "  batch asked / sources got per claim call, mean",
            _mean([a for n in events for _, _, a, _ in n.claims])
            + " / "
            + _mean([g for n in events for _, _, _, g in n.claims]),
        ],
        ["", "tick's health and node summaries p50 / p99 / max, s", _p(read_seconds)],
        ["", "save (one transaction) p50 / p99 / max, s", _p(save_seconds)],
        ["", "pass (read+claim+fetch+save) p50 / p99 / max, s", _p(pass_seconds)],
        ["", "passes per live node", "/".join(str(len(node.passes)) for node in live)],
        ["", "killed node's leases at the kill", str(len(held))],
        ["", "  their lease left at the kill, max s", f"{max(lease_left, default=0):.1f}"],
        ["", "  fetched again after p50 / max, s", _p(refetch, 2)],
        ["", "  never fetched again before the end", str(never)],
        ["", "sources overdue at the end (> lease + 2 ticks)", str(stuck)],
        ["", "CPU s per live node process", "/".join(f"{c:.0f}" for c in cpu)],
        ["", "wall of the run, s", f"{finished - start_at:.0f}"],
    ]
    if errors:
        notes.append(f"save errors, first: {errors[0][:200]}")
    print(f"  {load()}", flush=True)
    return SimResult(sources, node_count, rows, notes)


def _p(values: Sequence[float], kind: int = 3) -> str:
    if not values:
        return "-"
    if kind == 2:
        return f"{percentile(values, 0.5):.2f} / {max(values):.2f}"
    return f"{percentile(values, 0.5):.3f} / {percentile(values, 0.99):.3f} / {max(values):.3f}"


def _mean(values: Sequence[int]) -> str:
    return f"{sum(values) / len(values):.0f}" if values else "-"


# --- main ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--daemons", type=int, help="part 1 with this many daemons (3)")
    parser.add_argument("--feeds", type=int, default=300)
    parser.add_argument("--doubled", type=int, default=30, help="farm feeds configured twice")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--interval", type=float, default=60.0, help="seconds (part 1)")
    parser.add_argument("--timeout", default="20s", help="the daemons' fetch timeout")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--stop-seconds", type=float, default=90.0)
    parser.add_argument("--settle-max", type=float, default=240.0)
    parser.add_argument("--items-per-feed", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep part 1's work folder")
    parser.add_argument("--simulate", action="store_true", help="run part 2")
    parser.add_argument("--sources", type=int, nargs="+", default=[20000, 50000])
    parser.add_argument("--nodes", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--sim-interval", type=float, default=60.0)
    parser.add_argument("--sim-seconds", type=float, default=150.0)
    parser.add_argument("--lease", type=float, default=40.0, help="seconds (2 x the 20 s timeout)")
    parser.add_argument("--tick", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--batch",
        type=int,
        default=200,
        help="sources per claim (the daemon's: 4 x defaults.concurrency)",
    )
    parser.add_argument("--savers", type=int, default=4, help="store threads per node")
    parser.add_argument("--same-host", action="store_true", help="sim nodes on one hostname")
    parser.add_argument("--no-big-claim", action="store_true")
    args = parser.parse_args()
    run_one = args.daemons is not None or not args.simulate
    if args.daemons is None:
        args.daemons = 3
    if run_one:
        part_one(args)
    if args.simulate:
        if len(args.sources) != len(args.nodes):
            parser.error("--sources and --nodes pair up: give as many of each")
        results = [simulate(args, s, n) for s, n in zip(args.sources, args.nodes, strict=True)]
        print("\nSimulation (no HTTP):")
        rows: list[list[str]] = [["size", "measure", "value"]]
        for result in results:
            rows += result.rows
        print(table(rows))
        for result in results:
            for note in result.notes:
                print(f"{result.sources} x {result.nodes}: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
