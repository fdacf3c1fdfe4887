"""Several nodes on one store: each source is leased to one node at a time, a node that lost its
lease cannot overwrite the new holder's work, one story stays one cluster whichever nodes save
its copies, and a failed save leaves no transaction open. On the real PostgreSQL and SQLite."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from aggregator.config import load_config
from aggregator.errors import LeaseLostError
from aggregator.models import Article, SourceState
from aggregator.pipeline.cluster import cluster
from aggregator.pipeline.run import open_store, run_pass
from aggregator.store import Store
from tests.conftest import libpq_url
from tests.farm import Farm, FarmConfig
from tests.helpers import farm_config, run_aggregator, save_state
from tests.test_store import make

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=40)
NAMES = [f"feed-{number:03d}" for number in range(200)]


def _claimed(store: Store, node: str, at: datetime, names: list[str] = NAMES) -> set[str]:
    return {state.name for state in store.claim(node, names, at, LEASE, due_only=True)}


def _nodes_at_once(
    store_url: str,
    count: int,
    node: Callable[[Store, int], None],
    prepare: Callable[[Store], None] | None = None,
) -> None:
    """`node(store, number)` in `count` threads released at the same moment, each with a Store
    of its own (one node each)."""
    stores = [Store(store_url) for _ in range(count)]
    stores[0].migrate()
    if prepare is not None:
        prepare(stores[0])
    start = threading.Barrier(count)

    def run(number: int) -> None:
        start.wait()
        node(stores[number], number)

    threads = [threading.Thread(target=run, args=(number,)) for number in range(count)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        for opened in stores:
            opened.close()


def test_nodes_claiming_at_once_take_disjoint_sets(store_url: str) -> None:
    taken: dict[int, set[str]] = {}

    def node(store: Store, number: int) -> None:
        taken[number] = set()
        for _ in range(4):  # several rounds each, as ticks would
            taken[number] |= _claimed(store, f"host-{number}:1", T0)

    _nodes_at_once(store_url, 3, node)
    assert set().union(*taken.values()) == set(NAMES)
    assert sum(len(names) for names in taken.values()) == len(NAMES)  # no source twice


def test_a_lease_that_ran_out_is_claimed_again_with_a_new_token(store: Store) -> None:
    first = {state.name: state for state in store.claim("a:1", NAMES[:3], T0, LEASE, due_only=True)}
    assert _claimed(store, "b:1", T0 + LEASE / 2, NAMES[:3]) == set()
    again = {
        state.name: state
        for state in store.claim("b:1", NAMES[:3], T0 + LEASE * 1.5, LEASE, due_only=True)
    }
    assert set(again) == set(NAMES[:3])
    assert all(again[name].claim_token > first[name].claim_token for name in again)
    assert {state.claimed_by for state in store.source_states()} == {"b:1"}


def test_a_source_fetched_since_is_not_claimed_while_not_due(store: Store) -> None:
    (state,) = store.claim("a:1", NAMES[:1], T0, LEASE, due_only=True)
    with store.transaction() as transaction:
        transaction.save_state(replace(state, last_fetch_at=T0, next_fetch_at=T0 + LEASE * 3))
    assert _claimed(store, "b:1", T0 + LEASE, NAMES[:1]) == set()
    # `run --once` asks for every source, due or not, and gets it once the lease is given back.
    forced = store.claim("b:1", NAMES[:1], T0 + LEASE, LEASE, due_only=False)
    assert [claimed.name for claimed in forced] == NAMES[:1]


def test_a_save_under_a_lost_lease_is_refused_and_rolled_back(store: Store) -> None:
    (old,) = store.claim("a:1", ["s"], T0, LEASE, due_only=True)
    (new,) = store.claim("b:1", ["s"], T0 + LEASE * 2, LEASE, due_only=True)
    article = make("s", "1")
    with pytest.raises(LeaseLostError, match="b:1"), store.transaction() as transaction:
        transaction.save_articles("s", [article], replace(old, last_result="ok"))
    assert store.article_count() == 0
    with store.transaction() as transaction:
        transaction.save_articles("s", [article], replace(new, last_result="ok"))
    saved = store.source_state("s")
    assert store.article_count() == 1
    assert saved is not None and saved.claimed_by is None  # the save gave the lease back
    assert saved.claim_token == new.claim_token


def test_leases_a_node_did_not_use_are_given_back(store: Store) -> None:
    claimed = store.claim("a:1", NAMES[:5], T0, LEASE, due_only=True)
    store.release("a:1", claimed[2:])
    assert _claimed(store, "b:1", T0 + timedelta(seconds=1), NAMES[:5]) == set(NAMES[2:5])


def test_leases_of_a_dead_process_of_this_machine_are_free_at_once(store: Store) -> None:
    here = socket.gethostname()
    dead_pid = 2**22 + 17  # above pid_max's default: no such process
    store.claim(f"{here}:{dead_pid}", NAMES[:2], T0, LEASE, due_only=True)
    assert _claimed(store, "elsewhere:1", T0, NAMES[:2]) == set()
    assert _claimed(store, f"{here}:{os.getpid()}", T0, NAMES[:2]) == set(NAMES[:2])


def _story(source: str) -> Article:
    article = make(source, "quake", link="https://news.example.org/2026/quake")
    return replace(article, content_hash="same-text")


def test_one_story_saved_by_two_nodes_at_once_is_one_cluster(
    store_url: str, tmp_path: Path
) -> None:
    config_file = tmp_path / "c.yaml"
    config_file.write_text("sources: []\n")
    config = load_config(config_file)
    stores = [Store(store_url) for _ in range(2)]
    stores[0].migrate()
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def node(number: int) -> None:
        source = f"source-{number}"
        (state,) = stores[number].claim(f"n{number}:1", [source], T0, LEASE, due_only=True)
        try:
            start.wait()
            with stores[number].transaction() as transaction:
                clustered = cluster(config, transaction, [_story(source)])
                transaction.save_articles(source, clustered, replace(state, last_result="ok"))
                time.sleep(0.3)  # still uncommitted while the other node looks
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=node, args=(number,)) for number in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert not errors, errors
        stories = stores[0].clusters(None, 10)
        assert len(stories) == 1
        assert {member.source for member in stories[0]} == {"source-0", "source-1"}
    finally:
        for opened in stores:
            opened.close()


@pytest.mark.postgres
def test_a_failed_save_leaves_no_session_idle_in_transaction(store_url: str) -> None:
    if not store_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's sessions")
    # Its own sessions only: other runs may share the database.
    label = f"lease-test-{os.getpid()}"
    store = Store(f"{store_url}&application_name={label}")
    store.migrate()
    (old,) = store.claim("a:1", ["s"], T0, LEASE, due_only=True)
    store.claim("b:1", ["s"], T0 + LEASE * 2, LEASE, due_only=True)
    try:
        with pytest.raises(LeaseLostError), store.transaction() as transaction:
            transaction.save_state(replace(old, last_result="ok"))
        with psycopg.connect(
            libpq_url(store_url.split("?", maxsplit=1)[0]), autocommit=True
        ) as admin:
            states = [
                state
                for (state,) in admin.execute(
                    "SELECT state FROM pg_stat_activity WHERE application_name = %s", (label,)
                )
            ]
        assert states  # the store's pooled session is there to be looked at
        assert not [state for state in states if state.startswith("idle in transaction")]
    finally:
        store.close()


def test_states_never_claimed_carry_no_lease(store: Store) -> None:
    with store.transaction() as transaction:
        transaction.save_state(SourceState(name="plain", last_result="ok"))
    saved = store.source_state("plain")
    assert saved is not None
    assert (saved.claimed_by, saved.claimed_until, saved.claim_token) == (None, None, 0)


def test_run_once_beside_a_node_skips_what_that_node_holds_and_says_so(tmp_path: Path) -> None:
    feeds = tmp_path / "posts"
    feeds.mkdir()
    config_file = tmp_path / "aggregator.yaml"
    config_file.write_text(
        "store: {url: 'sqlite:///state.db'}\n"
        "output: {dir: public}\n"
        "sources:\n"
        "  - {name: mine, kind: posts, path: posts}\n"
        "  - {name: theirs, kind: posts, path: posts}\n"
    )
    config = load_config(config_file)
    store = Store(config.store.url)
    store.migrate()
    now = datetime.now(UTC)
    store.claim("other-machine:4242", ["theirs"], now, timedelta(minutes=5), due_only=False)
    store.close()
    done = run_aggregator(config_file, "run", "--once")
    assert done.returncode == 0, done.stderr
    assert "left to other-machine:4242: theirs (it is fetching it)" in done.stderr
    store = Store(config.store.url)
    try:
        states = {state.name: state for state in store.source_states()}
    finally:
        store.close()
    assert states["mine"].last_fetch_at is not None
    assert states["theirs"].last_fetch_at is None
    assert states["theirs"].claimed_by == "other-machine:4242"


def test_a_pass_longer_than_its_leases_renews_them(tmp_path: Path) -> None:
    """Leases last twice the time-out (here 4 s) and the pass renews those of the sources it
    has not finished: another node asking all along for due sources never gets one, though
    the pass outlasts a lease; and once it is over, nothing is held."""
    slow = FarmConfig(feeds=6, items=1, latency=1.5, churn=0.0, bad_citizens=False)
    with Farm(slow) as farm:
        config_file = farm_config(tmp_path, farm.feed_urls())
        text = config_file.read_text()
        config_file.write_text(
            text.replace("sources:", "defaults: {timeout: 2s, concurrency: 1}\nsources:")
        )
        config = load_config(config_file)
        store = open_store(config)
        other = Store(config.store.url)
        names = [source.name for source in config.sources]
        taken: list[str] = []
        done = threading.Event()

        def ask() -> None:
            # From the moment the pass has claimed its sources.
            while not done.is_set() and not any(s.claimed_by for s in other.source_states()):
                time.sleep(0.05)
            while not done.is_set():
                claimed = other.claim("other:1", names, datetime.now(UTC), LEASE, due_only=True)
                taken.extend(state.name for state in claimed)
                time.sleep(0.3)

        asker = threading.Thread(target=ask)
        try:
            asker.start()
            started = time.monotonic()
            run_pass(config, store)
            took = time.monotonic() - started
        finally:
            done.set()
            asker.join(timeout=30)
            other.close()
        held = {state.name: state.claimed_by for state in store.source_states()}
        store.close()
        fetched = Counter(log.path for log in farm.requests)
    assert took > 2 * 4, took  # it outlasted a lease, and then some
    assert taken == []
    assert sorted(fetched.values()) == [1] * len(names)
    assert held == dict.fromkeys(names)


def _due_at(store: Store, schedule: dict[str, datetime | None], **fields: object) -> None:
    for name, due in schedule.items():
        save_state(store, SourceState(name=name, next_fetch_at=due, **fields))  # type: ignore[arg-type]


def test_a_tick_claims_due_sources_most_overdue_first_up_to_its_batch(store: Store) -> None:
    _due_at(
        store,
        {
            "late": T0 - timedelta(minutes=5),
            "later": T0 - timedelta(minutes=9),
            "just": T0,
            "future": T0 + timedelta(seconds=1),
            "new": None,  # never fetched: due at once
        },
    )
    _due_at(store, {"switched-off": T0 - timedelta(hours=1)}, disabled_reason="HTTP 410")
    first = store.claim_due("a:1", T0, LEASE, limit=3)
    assert [state.name for state in first] == ["new", "later", "late"]
    assert {state.claimed_by for state in first} == {"a:1"}
    # The next tick, by another node: the rest of what is due, nothing held, nothing disabled.
    assert [state.name for state in store.claim_due("b:1", T0, LEASE, limit=3)] == ["just"]
    assert store.claim_due("c:1", T0, LEASE, limit=3) == []
    # A lease that ran out is due again.
    late = [state.name for state in store.claim_due("c:1", T0 + LEASE, LEASE, limit=10)]
    assert late == ["new", "later", "late", "just", "future"]


def test_nodes_ticking_at_once_take_disjoint_batches(store_url: str) -> None:
    taken: dict[int, list[str]] = {}

    def node(store: Store, number: int) -> None:
        taken[number] = []
        while batch := store.claim_due(f"host-{number}:1", T0, LEASE, limit=7):
            taken[number] += [state.name for state in batch]

    _nodes_at_once(store_url, 3, node, prepare=lambda store: store.add_sources(NAMES))
    everything = [name for names in taken.values() for name in names]
    assert sorted(everything) == sorted(NAMES)  # each source once, none left


def test_the_daemon_pass_hands_back_sources_its_config_does_not_enable(tmp_path: Path) -> None:
    feeds = tmp_path / "posts"
    feeds.mkdir()
    config_file = tmp_path / "aggregator.yaml"
    config_file.write_text(
        "store: {url: 'sqlite:///state.db'}\n"
        "output: {dir: public}\n"
        "defaults: {interval: 10m}\n"
        "sources:\n"
        "  - {name: kept, kind: posts, path: posts}\n"
        "  - {name: paused, kind: posts, path: posts, enabled: false}\n"
    )
    config = load_config(config_file)
    store = open_store(config)
    try:
        _due_at(store, {"removed": None, "paused": None})
        before = datetime.now(UTC)
        report = run_pass(config, store, due_only=True)
        assert [source.name for source in report.sources] == ["kept"]
        states = {state.name: state for state in store.source_states()}
    finally:
        store.close()
    assert states["kept"].last_fetch_at is not None
    for name in ("removed", "paused"):
        state = states[name]
        assert state.last_fetch_at is None and state.claimed_by is None
        # Not due again until an interval has passed: no tick claims it over and over.
        assert state.next_fetch_at is not None
        assert state.next_fetch_at >= before + timedelta(minutes=10)


def test_a_health_change_on_one_node_renders_every_node_index(tmp_path: Path) -> None:
    """Node A's source starts failing: node B, whose own pass fetched nothing, renders its
    index again (the status page shows the failure on every node)."""
    posts = tmp_path / "posts"
    posts.mkdir()
    (posts / "2026-12-01-hello.md").write_text("---\ntitle: Hello\n---\nHello there.\n")
    configs = []
    for node in ("a", "b"):
        config_file = tmp_path / f"{node}.yaml"
        config_file.write_text(
            "store: {url: 'sqlite:///state.db'}\n"
            f"output: {{dir: public-{node}}}\n"
            "sources:\n"
            "  - {name: notes, kind: posts, path: posts}\n"
        )
        configs.append(load_config(config_file))
    mine, theirs = configs
    store = open_store(mine)
    try:
        run_pass(mine, store)
        run_pass(theirs, store, due_only=True)  # nothing due: renders what A stored
        index = theirs.output.dir / "index.html"
        first = index.read_bytes()
        posts.rename(tmp_path / "gone")
        run_pass(mine, store)  # A: the source fails
        assert run_pass(theirs, store, due_only=True).sources == ()  # B fetched nothing
        assert index.read_bytes() != first
        assert b"failing" in index.read_bytes()
    finally:
        store.close()


@pytest.mark.postgres
def test_a_node_stopped_past_its_leases_does_not_fetch_what_others_took(
    store_url: str, tmp_path: Path
) -> None:
    """`run --once` frozen (SIGSTOP) for longer than its leases while another node claims the
    sources it had not fetched yet: once resumed, it fetches none of them."""
    if not store_url.startswith("postgresql"):
        pytest.skip("a frozen SQLite writer would hold the file")
    slow = FarmConfig(feeds=4, items=1, latency=0.5, churn=0.0, bad_citizens=False)
    with Farm(slow) as farm:
        config_file = farm_config(tmp_path, farm.feed_urls())
        text = config_file.read_text().replace('"sqlite:///state/agg.db"', f'"{store_url}"')
        # Leases of 2 s (twice the time-out), one fetch at a time.
        config_file.write_text(
            text.replace("sources:", "defaults: {timeout: 1s, concurrency: 1}\nsources:")
        )
        child = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "--config", str(config_file), "run", "--once"],
            stderr=subprocess.PIPE,
            text=True,
        )
        # Stopped while it waits for an answer (the farm takes 0.5 s to give one), never
        # between a lease check and the request it allows: one fetch at a time, so the next
        # source's check comes only after this answer.
        deadline = time.monotonic() + 60
        while not farm.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        child.send_signal(signal.SIGSTOP)
        try:
            time.sleep(3)  # past the 2 s leases; no renewal can run meanwhile
            other = Store(store_url)
            try:
                taken = other.claim_due("other:1", datetime.now(UTC), LEASE, limit=10)
            finally:
                other.close()
            asked = len(farm.requests)
        finally:
            child.send_signal(signal.SIGCONT)
        _, stderr = child.communicate(timeout=120)
    first = farm.requests[0].path
    theirs = {state.name for state in taken}
    assert len(theirs) >= 3, (theirs, stderr)  # the ones it had not reached yet
    after = [request.path for request in farm.requests[asked:]]
    assert [path for path in after if path != first] == [], stderr
    assert "its lease ran out before its turn" in stderr
