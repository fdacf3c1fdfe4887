"""`aggregator check`: every problem at once, each located and with what to write instead."""

from __future__ import annotations

import multiprocessing
import os
import pwd
import shutil
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from aggregator.cli import main
from aggregator.config import Config
from aggregator.config.hints import unknown_key
from tests.helpers import run_aggregator
from tests.test_config import expected_lines

FIXTURES = Path(__file__).parent / "fixtures" / "config"


def test_check_prints_every_problem_with_a_hint_and_exits_2() -> None:
    config = FIXTURES / "typos.yaml"
    result = run_aggregator(config, "check")
    assert result.returncode == 2
    expected = (FIXTURES / "typos.errors").read_text(encoding="utf-8").splitlines()
    assert result.stderr.splitlines() == [f"{FIXTURES}/{line}" for line in expected]
    assert len(expected) == 10


@pytest.mark.parametrize(
    ("location", "hint"),
    [
        (("sources", 0, "urll"), "did you mean `url`?"),
        (("sources", 3, "selecter"), "did you mean `selector`?"),
        (("sources", 0, "clean", "dorp"), "did you mean `drop`?"),
        (("defaults", "timout"), "did you mean `timeout`?"),
        (("dedup",), "did you mean `dedupe`?"),
        (("server", "colour"), "the keys here are `host`, `port`"),
    ],
)
def test_unknown_keys_suggest_the_nearest_key(location: tuple[object, ...], hint: str) -> None:
    assert unknown_key(Config, location).endswith(hint)


def test_check_accepts_a_good_config() -> None:
    result = run_aggregator(FIXTURES / "good.yaml", "check")
    assert result.returncode == 0, result.stderr
    # Its paths climb out of its folder (../var, ../out, ../posts): fine here, warned of.
    assert result.stdout == f"{FIXTURES / 'good.yaml'}: ok (2 sources, 1 enabled; 3 warnings)\n"
    assert all(": warning: " in line for line in result.stderr.splitlines())


RUNTIME_CASES = sorted(FIXTURES.glob("runtime_*.yaml"))


def _printed(case: Path) -> list[str]:
    """What `check` prints on stderr for the fixture: its errors and warnings, in file order."""
    lines = [
        (line, number)
        for suffix in (".errors", ".warnings")
        if case.with_suffix(suffix).exists()
        for number, line in enumerate(expected_lines(case, suffix))
    ]
    return [line for line, _ in sorted(lines, key=lambda pair: _place(pair[0]))]


def _place(line: str) -> tuple[int, int]:
    _, row, column = line.split(": ", 1)[0].rsplit(":", 2)
    return int(row), int(column)


@pytest.mark.parametrize("case", RUNTIME_CASES, ids=lambda path: path.stem)
def test_check_catches_what_a_run_would_hit(case: Path) -> None:
    """A config that loads but would fail at run time: exit 2, each problem at its line."""
    result = run_aggregator(case, "check")
    refused = case.with_suffix(".errors").exists()
    assert result.returncode == (2 if refused else 0), result.stderr
    assert result.stderr.splitlines() == _printed(case)
    if not refused:
        warned = len(case.with_suffix(".warnings").read_text().splitlines())
        assert ": ok (" in result.stdout and f"; {warned} warning" in result.stdout


def _check_as_nobody(config: Path) -> tuple[int, str]:
    """`check` on `config` as a user who owns none of its folders: root writes anywhere, so
    as root the command runs in a child process that has become `nobody` first."""
    if os.geteuid() != 0:
        done = run_aggregator(config, "check")
        return done.returncode, done.stderr
    context = multiprocessing.get_context("fork")
    results: multiprocessing.Queue[tuple[int, str]] = context.Queue()
    child = context.Process(target=_check_in_child, args=(config, results))
    child.start()
    outcome = results.get(timeout=60)
    child.join(timeout=60)
    return outcome


def _check_in_child(config: Path, results: multiprocessing.Queue[tuple[int, str]]) -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    result = CliRunner().invoke(main, ["-c", str(config), "check"])
    results.put((result.exit_code, result.stderr))


NOBODY = 65534


def test_check_refuses_folders_the_daemon_user_cannot_use() -> None:
    # Outside pytest's own tmp folder, which only its owner may enter.
    base = Path(tempfile.mkdtemp(prefix="aggregator-check-"))
    try:
        base.chmod(0o755)
        (base / "locked").mkdir(mode=0o555)
        (base / "posts").mkdir(mode=0o000)
        config = base / "aggregator.yaml"
        config.write_text(
            'store: {url: "sqlite:///locked/agg.db"}\n'
            "output: {dir: locked/public}\n"
            "sources:\n"
            "  - {name: mine, kind: posts, path: posts}\n",
            encoding="utf-8",
        )
        config.chmod(0o644)
        status, stderr = _check_as_nobody(config)
        assert status == 2, stderr
        lines = stderr.splitlines()
        assert len(lines) == 3, stderr
        store, output, posts = lines
        assert store.startswith(f"{config}:1:14: store.url: {base}/locked/agg.db: {base}/locked")
        assert store.endswith(" cannot be written by " + _who())
        assert output.startswith(f"{config}:2:15: output.dir: {base}/locked/public: {base}/locked")
        assert output.endswith(" cannot be written by " + _who())
        assert posts.startswith(f"{config}:4:37: sources[0].path: {base}/posts cannot be read by")
    finally:
        for folder in (base / "locked", base / "posts"):
            folder.chmod(0o755)
        shutil.rmtree(base)


def _who() -> str:
    uid = NOBODY if os.geteuid() == 0 else os.geteuid()
    return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
