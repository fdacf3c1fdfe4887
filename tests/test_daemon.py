"""`aggregator run` end to end: the real daemon in a child process against the local feed farm,
driven by signals as systemd drives it, watched through HTTP and a notify socket."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import signal
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aggregator.config import load_config
from aggregator.daemon.loop import STUCK_PASS_SECONDS
from aggregator.daemon.loop import Daemon as DaemonLoop
from aggregator.daemon.metrics import DaemonMetrics
from aggregator.daemon.notify import Notifier
from aggregator.pipeline.run import PassReport
from tests.daemonproc import Daemon, free_port, write_config
from tests.farm import Farm, FarmConfig
from tests.helpers import run_aggregator

INTERVAL = 2.0  # seconds, the sources' interval in these tests
SLACK = 4.0  # a tick, the pass itself and rendering, on a busy machine


@pytest.fixture(scope="module")
def farm() -> Iterator[Farm]:
    with Farm(FarmConfig(feeds=3, items=4, churn=1.0, bad_citizens=False, seed=6)) as running:
        yield running


def _titles(daemon: Daemon, path: str) -> set[str]:
    response = httpx.get(f"{daemon.url}{path}", timeout=5)
    if response.status_code != 200:
        return set()
    return {item["title"] for item in response.json()["items"]}


def _wait_for(condition: object, timeout: float, what: str) -> float:
    """Polls `condition()` until true; how long that took."""
    assert callable(condition)
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def _feed(farm: Farm, number: int) -> tuple[str, str, str]:
    return (f"farm-{number}", farm.feed_urls()[number], f"tag-{number}")


def _metric(daemon: Daemon, name: str, **labels: str) -> float:
    text = httpx.get(f"{daemon.url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"{name} {labels} not in /metrics:\n{text}")


def test_new_items_are_served_within_one_interval_then_sigterm_exits_0(
    tmp_path: Path, farm: Farm
) -> None:
    port = free_port()
    config = write_config(tmp_path, port, [_feed(farm, 0), _feed(farm, 1)])
    with Daemon(config, port) as daemon:
        daemon.wait_healthy()
        first = {item.title for item in farm.items(farm.feed_urls()[0])}
        _wait_for(lambda: first <= _titles(daemon, "/tags/tag-0.json"), SLACK + INTERVAL, "ingest")

        farm.next_pass()  # every feed gains one item
        newest = farm.items(farm.feed_urls()[1])[0].title
        took = _wait_for(
            lambda: newest in _titles(daemon, "/all.json"), INTERVAL + SLACK, "the new item"
        )
        assert took <= INTERVAL + SLACK
        # A pass is counted once it returns, a moment after it wrote its feeds: on a busy
        # machine the new item can be read before that.
        _wait_for(
            lambda: _metric(daemon, "aggregator_fetches_total", result="ok") >= 3,
            SLACK,
            "the pass counted in the metrics",
        )

        health = httpx.get(f"{daemon.url}/healthz", timeout=5)
        assert health.status_code == 200
        body = health.json()
        assert body["ok"] is True
        assert body["failing_sources"] == []
        assert body["last_pass"]["seconds"] >= 0
        assert _metric(daemon, "aggregator_items_total", kind="new") >= 2 * 4 + 2
        assert _metric(daemon, "aggregator_pass_duration_seconds_count") >= 2

        status, took = daemon.stop()
        assert status == 0, daemon.stderr()
        assert took < 10
        log = daemon.stderr()
        assert "Traceback" not in log
        assert "SIGTERM" in log
        # One line per event, with its time (to the second), its level and the source it
        # concerns.
        lines = log.splitlines()
        event = re.compile(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) "
        )
        assert all(event.match(line) for line in lines), log
        assert any(re.search(r" INFO farm-1: ", line) for line in lines)


def test_sighup_adds_a_source_live_and_a_bad_config_changes_nothing(
    tmp_path: Path, farm: Farm
) -> None:
    port = free_port()
    config = write_config(tmp_path, port, [_feed(farm, 0)])
    with Daemon(config, port) as daemon, httpx.Client(base_url=daemon.url, timeout=5) as client:
        daemon.wait_healthy()
        assert client.get("/healthz").json()["sources"] == 1
        # Both reload results are exported at 0 before any reload, so alerts can watch them.
        assert _metric(daemon, "aggregator_config_reloads_total", result="ok") == 0
        assert _metric(daemon, "aggregator_config_reloads_total", result="error") == 0
        good = config.read_text(encoding="utf-8")

        config.write_text(good + "  - name: broken\n    kind: feed\n", encoding="utf-8")
        daemon.signal(signal.SIGHUP)
        _wait_for(lambda: "reload: keeping" in daemon.stderr(), 10, "the reload error")
        # The broken source is located in the file, and the old config keeps running.
        assert re.search(rf"{re.escape(str(config))}:\d+:\d+: sources\[1\]", daemon.stderr())
        assert client.get("/healthz").json()["sources"] == 1
        # Counted when the reload returns to the event loop, just after it logged.
        _wait_for(
            lambda: _metric(daemon, "aggregator_config_reloads_total", result="error") == 1,
            10,
            "the reload error counted",
        )

        write_config(tmp_path, port, [_feed(farm, 0), _feed(farm, 2)])
        daemon.signal(signal.SIGHUP)
        titles = {item.title for item in farm.items(farm.feed_urls()[2])}
        _wait_for(
            lambda: titles <= _titles(daemon, "/tags/tag-2.json"), INTERVAL + SLACK, "new source"
        )
        assert client.get("/healthz").json()["sources"] == 2
        assert daemon.process is not None and daemon.process.poll() is None

        # A longer interval moves the next fetch to the last fetch plus the new interval.
        text = config.read_text(encoding="utf-8")
        config.write_text(
            text.replace("tags: [tag-0]", "tags: [tag-0]\n    interval: 1h"), encoding="utf-8"
        )
        daemon.signal(signal.SIGHUP)
        _wait_for(lambda: "farm-0: interval now 1h" in daemon.stderr(), 10, "new interval")
        status = run_aggregator(config, "status", "--json")
        row = next(row for row in json.loads(status.stdout) if row["name"] == "farm-0")
        due = datetime.fromisoformat(row["next_due"]) - datetime.fromisoformat(row["last_fetch"])
        assert timedelta(minutes=59) < due <= timedelta(hours=1)

        # The keep-alive connection opened before the reloads still answers.
        assert client.get("/all.json").status_code == 200
        code, _ = daemon.stop()
        assert code == 0


def test_metrics_show_every_known_labelled_series_at_0_from_the_start() -> None:
    text = DaemonMetrics(title="Aggregator").exposition()[0].decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    expected = [
        ("aggregator_config_reloads_total", "result", "ok"),
        ("aggregator_config_reloads_total", "result", "error"),
        ("aggregator_fetches_total", "result", "ok"),
        ("aggregator_fetches_total", "result", "not_modified"),
        ("aggregator_fetches_total", "result", "error"),
        ("aggregator_items_total", "kind", "new"),
        ("aggregator_items_total", "kind", "changed"),
        ("aggregator_errors_total", "where", "source"),
        ("aggregator_errors_total", "where", "pass"),
    ]
    for name, label, value in expected:
        assert samples.get((name, ((label, value),))) == 0, (name, value, text)


def _requests(farm: Farm, url: str) -> int:
    path = httpx.URL(url).path
    return sum(request.path == path for request in list(farm.requests))


def test_sighup_after_removing_a_source_stops_its_fetches(tmp_path: Path) -> None:
    with Farm(FarmConfig(feeds=2, items=2, bad_citizens=False, seed=7)) as own:
        kept, removed = own.feed_urls()
        port = free_port()
        config = write_config(tmp_path, port, [_feed(own, 0), _feed(own, 1)])
        with Daemon(config, port) as daemon:
            daemon.wait_healthy()
            _wait_for(lambda: _requests(own, removed) >= 2, 2 * INTERVAL + SLACK, "two fetches")

            write_config(tmp_path, port, [_feed(own, 0)])
            daemon.signal(signal.SIGHUP)
            _wait_for(lambda: "(0 added, 1 removed)" in daemon.stderr(), 10, "the reload")
            # Two passes after the reload: a pass begun under the old config is over by then.
            after = _requests(own, kept)
            _wait_for(lambda: _requests(own, kept) >= after + 2, 2 * INTERVAL + SLACK, "passes")
            before = _requests(own, removed)
            fetches = _requests(own, kept)
            _wait_for(lambda: _requests(own, kept) >= fetches + 3, 3 * INTERVAL + SLACK, "passes")
            assert _requests(own, removed) == before  # three passes without it
            assert httpx.get(f"{daemon.url}/healthz", timeout=5).json()["sources"] == 1
            code, _ = daemon.stop()
            assert code == 0, daemon.stderr()


def test_the_watchdog_is_not_pinged_while_a_pass_is_stuck(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process: a real stuck pass takes STUCK_PASS_SECONDS (30 min) to count as stuck, so the
    pass start is set back that far instead; the rest is the daemon's own watchdog loop."""
    config = load_config(write_config(tmp_path, free_port(), []))
    with (
        tempfile.TemporaryDirectory(prefix="agg-") as folder,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
    ):
        sock.bind(f"{folder}/notify")
        monkeypatch.setenv("NOTIFY_SOCKET", f"{folder}/notify")
        monkeypatch.setenv("WATCHDOG_USEC", "200000")  # a ping every 0.1 s while healthy

        async def watch() -> tuple[int, int]:
            daemon = DaemonLoop(config)
            daemon._scheduler.start()
            watchdog = asyncio.create_task(daemon._watchdog())
            await asyncio.sleep(0.55)
            healthy = _drain(sock)
            daemon.metrics.pass_started = time.monotonic() - STUCK_PASS_SECONDS - 1
            await asyncio.sleep(0.55)
            stuck = _drain(sock)
            watchdog.cancel()
            daemon._scheduler.shutdown(wait=False)
            return healthy, stuck

        healthy, stuck = asyncio.run(watch())
        assert healthy >= 3
        assert stuck == 0


def _drain(sock: socket.socket) -> int:
    """WATCHDOG=1 datagrams waiting on `sock`."""
    sock.setblocking(False)
    count = 0
    while True:
        try:
            count += b"WATCHDOG=1" in sock.recv(4096)
        except BlockingIOError:
            return count


def test_a_second_sigterm_exits_at_once_while_the_first_waits_for_work_in_flight(
    tmp_path: Path,
) -> None:
    with Farm(FarmConfig(feeds=1, items=1, hang=30)) as slow:
        port = free_port()
        hang = slow.bad_urls()["hang"]
        config = write_config(tmp_path, port, [("hanging", hang, "slow")], timeout="20s")
        with Daemon(config, port) as daemon:
            daemon.wait_healthy()
            time.sleep(1)  # the first pass starts with the server; the farm logs on answering
            daemon.signal(signal.SIGTERM)
            time.sleep(0.5)
            assert daemon.process is not None
            assert daemon.process.poll() is None  # the hanging fetch is still in flight
            started = time.monotonic()
            daemon.signal(signal.SIGTERM)
            assert daemon.process.wait(timeout=5) == 1
            assert time.monotonic() - started < 1.5
            assert "SIGTERM again: exiting now" in daemon.stderr()


Message = tuple[float, dict[str, str]]  # when it arrived, its KEY=value fields


def _messages(sock: socket.socket, until: str, timeout: float) -> list[Message]:
    received: list[Message] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(4096)
        except TimeoutError:
            break
        fields = dict(line.split("=", 1) for line in data.decode("utf-8").splitlines())
        received.append((time.monotonic(), fields))
        if until in fields:
            break
    return received


def test_systemd_hears_ready_watchdog_and_stopping(tmp_path: Path, farm: Farm) -> None:
    port = free_port()
    title = "联合早报聚合"
    config = write_config(tmp_path, port, [_feed(farm, 0)], title=title)
    # A short folder: AF_UNIX paths are limited to 108 bytes, and pytest's tmp_path is long.
    with (
        tempfile.TemporaryDirectory(prefix="agg-") as folder,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
    ):
        address = f"{folder}/notify"
        sock.bind(address)
        env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"}  # WatchdogSec=1
        with Daemon(config, port, env=env) as daemon:
            ready = _messages(sock, "READY", 30)
            assert ready, daemon.stderr()
            _, first = ready[-1]
            assert first["READY"] == "1"
            assert title in first["STATUS"]  # CJK survives the trip intact

            pets = [at for at, fields in _messages(sock, "never", 2.6) if "WATCHDOG" in fields]
            assert len(pets) >= 3  # every WatchdogSec/2 = 0.5 s
            gaps = [later - earlier for earlier, later in itertools.pairwise(pets)]
            assert all(0.3 < gap < 0.8 for gap in gaps), gaps

            daemon.signal(signal.SIGTERM)
            stopping = _messages(sock, "STOPPING", 10)
            assert stopping and stopping[-1][1]["STOPPING"] == "1"
            assert daemon.process is not None
            assert daemon.process.wait(timeout=10) == 0


def test_notify_reaches_an_abstract_socket_in_utf8() -> None:
    name = f"aggregator-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(5)
        notifier = Notifier(f"@{name}")
        assert notifier.status("联合早报: 3 new\nsecond line")
        assert sock.recv(4096).decode("utf-8") == "STATUS=联合早报: 3 new second line"
        notifier.close()


def test_notify_is_a_no_op_outside_systemd() -> None:
    assert not Notifier(None).ready("ok")
    assert not Notifier("relative/path").enabled


def test_a_port_in_use_exits_1(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, port, [])
        daemon = Daemon(config, port).start()
        assert daemon.process is not None
        assert daemon.process.wait(timeout=30) == 1
        assert "cannot serve on 127.0.0.1" in daemon.stderr()


def test_healthz_is_degraded_after_a_failed_pass_or_two_intervals_without_one(
    tmp_path: Path,
) -> None:
    """In process, on the daemon's own health: a pass that raised, or none completed for two
    intervals of the most frequent source, is degraded (200); stopping is failing (503)."""
    config = load_config(
        write_config(tmp_path, free_port(), [("a", "http://127.0.0.1:9/a.xml", "t")])
    )

    async def check() -> None:
        daemon = DaemonLoop(config)
        daemon._count_sources(config)
        daemon._scheduler.start()  # healthy() wants it running, and it needs a running loop
        try:
            _check_health(daemon)
        finally:
            daemon._scheduler.shutdown(wait=False)

    asyncio.run(check())


def _check_health(daemon: DaemonLoop) -> None:
    metrics = daemon.metrics
    assert metrics.interval == INTERVAL
    status, body = daemon.health()
    assert (status, body["ok"], body["problems"]) == ("ok", True, [])

    metrics.started -= 2 * INTERVAL + 1  # no pass since the daemon started
    status, body = daemon.health()
    assert status == "degraded" and body["ok"] is True
    assert body["problems"][0].startswith("no pass has completed for 5 s")
    metrics.passed(PassReport(), 0.1, [])  # a tick that found nothing due
    assert daemon.health()[0] == "ok"

    metrics.pass_failed(OSError(28, "No space left on device"))
    status, body = daemon.health()
    assert status == "degraded"
    assert body["problems"] == ["the last pass failed: [Errno 28] No space left on device"]
    # Every field /healthz had before is still there.
    assert {"ok", "sources", "failing_sources", "pass_running", "last_pass"} <= set(body)
    metrics.passed(PassReport(), 0.1, [])
    assert daemon.health()[0] == "ok"

    daemon._stopping.set()
    status, body = daemon.health()
    assert (status, body["ok"]) == ("failing", False)


def test_no_enabled_source_is_never_stale() -> None:
    metrics = DaemonMetrics(title="Aggregator")
    metrics.started -= 3600
    assert metrics.problems() == []


def test_the_daemon_serves_behind_the_connection_guard(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, port, [])
    with Daemon(config, port) as daemon:
        daemon.wait_healthy()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            padding = b"X-Padding: " + b"a" * 20_000 + b"\r\n"
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + padding + b"\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 431 ")
        body = httpx.get(f"{daemon.url}/healthz", timeout=5).json()
        assert (body["status"], body["problems"]) == ("ok", [])
        assert _metric(daemon, "aggregator_http_connections_max") >= 16
        assert (
            _metric(daemon, "aggregator_http_connections_closed_total", reason="head_too_large")
            == 1
        )
        assert _metric(daemon, "aggregator_http_accept_errors_total") == 0
        assert re.search(r"serving .* \(at most \d+ connections\)", daemon.stderr())
        code, _ = daemon.stop()
        assert code == 0, daemon.stderr()


def test_a_pass_longer_than_the_interval_says_so_once_in_its_own_words(tmp_path: Path) -> None:
    """Ticks that find the last pass still running are skipped quietly; the pass that overran
    its interval gets one line of ours instead of the scheduler's warning per skipped tick."""
    slow = FarmConfig(feeds=1, items=2, latency=3.0, churn=0.0, bad_citizens=False)
    with Farm(slow) as farm:
        port = free_port()
        config = write_config(tmp_path, port, [_feed(farm, 0)], interval="1s", timeout="10s")
        with Daemon(config, port) as daemon:
            daemon.wait_healthy()
            _wait_for(lambda: "longer than the shortest interval" in daemon.stderr(), 30, "it")
            stderr = daemon.stderr()
    assert re.search(r"pass took \d+s, longer than the shortest interval \(1s\)", stderr), stderr
    assert "maximum number of running instances" not in stderr
