"""The log as a user reads it: one line per event with its time, level and source; JSON lines
with --log-format json; no time under journald (it stamps lines itself); a progress bar on a
terminal that moves with every source finished, and nothing of it when stderr is not one."""

from __future__ import annotations

import io
import json
import logging
import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from aggregator.daemon.logs import log_handler, name_sources
from tests.helpers import run_aggregator, serving

TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d"
TEXT_LINE = re.compile(rf"^{TIME} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S")
FEEDS = 6


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _rss(number: int) -> str:
    item = (
        f"<item><title>Story {number}</title><link>http://127.0.0.1/{number}</link>"
        f"<pubDate>Wed, 01 May 2024 10:00:00 GMT</pubDate><description>Text {number}."
        "</description></item>"
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>F</title>{item}</channel></rss>'
    )


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Path]:
    """FEEDS feeds on 127.0.0.1, one source missing (404), and a posts folder that is gone."""
    root = tmp_path / "www"
    root.mkdir()
    for number in range(FEEDS):
        (root / f"f{number}.xml").write_text(_rss(number), encoding="utf-8")
    with serving(partial(_Quiet, directory=str(root))) as url:
        lines = [
            f'store: {{url: "sqlite:///{tmp_path / "agg.db"}"}}',
            f"output: {{dir: {tmp_path / 'public'}}}",
            "sources:",
            *(f"  - {{name: f{n}, kind: feed, url: '{url}/f{n}.xml'}}" for n in range(FEEDS)),
            f"  - {{name: missing, kind: feed, url: '{url}/missing.xml'}}",
        ]
        path = tmp_path / "aggregator.yaml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        yield path


def test_every_line_has_its_time_level_and_source(config: Path) -> None:
    result = run_aggregator(config, "run", "--once")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    logged = [line for line in lines if TEXT_LINE.match(line)]
    # The summary of --once is the command's answer, not a log event: the rest are events.
    summary = [line for line in lines if line not in logged]
    assert len(summary) == 2, lines
    assert summary[0].startswith("pass: 6 new, 0 skipped, 0 not modified, 1 failed, ")
    assert summary[1] == "failed: missing: HTTP 404 Not Found"
    assert any(re.match(rf"^{TIME} INFO f3: 1 new, 0 changed", line) for line in logged)
    assert any(
        re.match(rf"^{TIME} ERROR missing: failed: HTTP 404 Not Found", line) for line in logged
    )


def test_json_logs_are_one_object_per_line_with_the_source_as_a_field(config: Path) -> None:
    result = run_aggregator(config, "--log-format", "json", "run", "--once")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]  # every line is JSON
    for record in records:
        assert set(record) <= {"time", "level", "logger", "source", "message", "exception"}
        assert re.fullmatch(TIME, record["time"]), record
        assert record["level"] in ("DEBUG", "INFO", "WARNING", "ERROR")
    by_source = {record["source"]: record for record in records if "source" in record}
    assert by_source["f3"]["message"].startswith("1 new, 0 changed")
    assert by_source["f3"]["logger"] == "aggregator"
    assert by_source["missing"]["level"] == "ERROR"
    assert by_source["missing"]["message"].startswith("failed: HTTP 404 Not Found")
    assert records[-2]["message"].startswith("pass: 6 new")
    assert "source" not in records[-2]


def test_the_log_format_may_follow_the_command_and_come_from_the_environment(
    config: Path,
) -> None:
    after = run_aggregator(config, "check", "--log-format=json")
    assert after.returncode == 0, after.stderr
    environment = {**os.environ, "AGGREGATOR_LOG_FORMAT": "json"}
    broken = config.with_name("broken.yaml")
    broken.write_text("sources: 3\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", "-c", str(broken), "check"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    (record,) = [json.loads(line) for line in done.stderr.splitlines()]
    assert record["level"] == "ERROR"
    assert record["message"].startswith(f"{broken}:1:10: sources: 3 is not a list")


def test_under_journald_the_lines_leave_the_time_to_the_journal(
    config: Path, tmp_path: Path
) -> None:
    with (tmp_path / "journal").open("w+", encoding="utf-8") as journal:
        status = os.fstat(journal.fileno())
        done = subprocess.run(
            [sys.executable, "-m", "aggregator", "-c", str(config), "run", "--once"],
            stdout=subprocess.DEVNULL,
            stderr=journal,
            env={**os.environ, "JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"},
            timeout=120,
            check=False,
        )
        journal.seek(0)
        lines = journal.read().splitlines()
    assert done.returncode == 0
    assert "ERROR missing: failed: HTTP 404 Not Found (next try" in "\n".join(lines)
    assert not [line for line in lines if re.match(TIME, line)]


def test_a_line_is_about_a_source_only_when_the_config_has_it() -> None:
    name_sources(["hn", "zaobao"])
    stream = io.StringIO()
    log = logging.getLogger("aggregator.test-logs")
    log.addHandler(log_handler(stream, "json"))
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        log.info("%s: %d new", "hn", 3)
        log.info("%s: finishing the sources in flight", "SIGTERM")
        log.warning("serving %s", "http://u:secret@h/")
    finally:
        log.handlers.clear()
        log.propagate = True
        name_sources([])
    hn, signal, serving_line = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (hn["source"], hn["message"], hn["level"]) == ("hn", "3 new", "INFO")
    assert hn["logger"] == "aggregator.test-logs"
    assert "source" not in signal
    assert signal["message"] == "SIGTERM: finishing the sources in flight"
    assert (serving_line["level"], serving_line["message"]) == ("WARNING", "serving http://***@h/")


def _on_a_terminal(config: Path, *args: str) -> tuple[int, str]:
    """The real CLI with a terminal as its stdout and stderr: its exit status and every byte
    it wrote there."""
    primary, secondary = pty.openpty()
    environment = {**os.environ, "COLUMNS": "120", "LINES": "40", "TERM": "xterm"}
    child = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "-c", str(config), *args],
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
        env=environment,
        close_fds=True,
    )
    os.close(secondary)
    written = bytearray()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            written += chunk
        elif child.poll() is not None:
            break
    os.close(primary)
    return child.wait(timeout=10), written.decode("utf-8", "replace")


def test_the_progress_bar_moves_with_every_source_finished(config: Path) -> None:
    status, screen = _on_a_terminal(config, "run", "--once")
    assert status == 0, screen
    total = FEEDS + 1
    counts = [int(done) for done in re.findall(rf"(\d+)/{total}\b", screen)]
    assert counts, screen
    # Each count drawn in order as its source finishes, from none to all: never stuck while
    # sources finish and their lines scroll by above the bar.
    firsts = list(dict.fromkeys(counts))
    assert firsts == list(range(total + 1)), firsts


def test_no_progress_bar_when_stderr_is_not_a_terminal(config: Path) -> None:
    result = run_aggregator(config, "run", "--once")
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stderr
    assert not re.search(rf"\d+/{FEEDS + 1}\b", result.stderr)
