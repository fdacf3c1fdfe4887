"""Hostile configs: control characters, absurd numbers, alias bombs, output folders that are not
ours, unknown stores. Each is refused by `aggregator check` (and by every other load: run,
reload) with located errors and exit 2, in bounded time and memory, never with a traceback."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from aggregator.config import load_config, parse_duration, parse_size
from aggregator.config.bounds import MAX_CONFIG_BYTES, MAX_VALUES
from aggregator.config.model import STORE_SCHEMES
from aggregator.config.output_dir import OUTPUT_MARKER, OUTPUT_TEMP_PREFIX, output_dir_problem
from aggregator.daemon.reload import reloaded
from aggregator.errors import AggregatorError, ConfigError
from aggregator.render.files import remove_leftovers, write_atomic
from tests.daemonproc import Daemon, free_port, write_config
from tests.helpers import run_aggregator, run_measured

FIXTURES = Path(__file__).parent / "fixtures" / "config_hostile"
CASES = sorted(FIXTURES.glob("*.yaml"))
ROOT = Path(__file__).resolve().parent.parent

# What a refused config must never print.
CRASHES = ("Traceback", "Task exception was never retrieved")


def _errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert not [crash for crash in CRASHES if crash in result.stderr], result.stderr
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    return result.stderr.splitlines()


def _write(tmp_path: Path, text: str, name: str = "aggregator.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _refused(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    return str(raised.value).splitlines()


# -- fixtures through the real CLI -----------------------------------------------------------


def test_every_hostile_fixture_has_its_expected_errors() -> None:
    assert len(CASES) >= 10
    assert all(case.with_suffix(".errors").exists() for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.stem)
def test_check_refuses_the_fixture_with_located_errors_and_exit_2(case: Path) -> None:
    expected = case.with_suffix(".errors").read_text(encoding="utf-8").splitlines()
    assert _errors(run_aggregator(case, "check")) == [f"{case.parent}/{line}" for line in expected]


# -- control characters -----------------------------------------------------------------------


def test_a_nul_byte_is_located_and_named_by_its_key(tmp_path: Path) -> None:
    path = tmp_path / "nul.yaml"
    path.write_bytes(b'store: {url: "sqlite:///x.db"}\noutput:\n  title: "Fee\x00ds"\n')
    assert _errors(run_aggregator(path, "check")) == [
        f"{path}:3:14: output.title: control character U+0000 is not allowed in YAML; delete it"
    ]


@pytest.mark.parametrize(
    ("character", "shown"),
    [("\x07", "U+0007"), ("\x1b", "U+001B"), ("\x7f", "U+007F"), ("\x9b", "U+009B"),
     ("\ufffe", "U+FFFE")],
)  # fmt: skip
def test_every_control_character_yaml_forbids_is_refused(
    tmp_path: Path, character: str, shown: str
) -> None:
    path = _write(tmp_path, f"sources:\n  - name: a{character}\n    kind: feed\n")
    assert _refused(path) == [
        f"{path}:2:12: sources[0].name: control character {shown} is not allowed in YAML; delete it"
    ]


def test_a_binary_file_lists_ten_characters_then_counts_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"# \x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\n")
    problems = _refused(path)
    assert len(problems) == 11
    assert problems[0] == f"{path}:1:3: control character U+0001 is not allowed in YAML; delete it"
    assert problems[-1].endswith("and 4 more control characters (is this a binary file?)")


def test_tabs_line_breaks_and_nel_are_not_control_characters(tmp_path: Path) -> None:
    path = _write(tmp_path, '# next line\x85\r\noutput: {title: "a\tb"}\r\n')
    assert load_config(path).output.title == "a\tb"


def test_bytes_that_are_not_utf8_are_located(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("output:\n  title: Café\n".encode("latin-1"))
    assert _refused(path) == [
        f"{path}:2:13: byte 0xe9 is not UTF-8; save the config as UTF-8 (is this a binary file?)"
    ]


def test_a_config_larger_than_the_cap_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"# " + b"x" * MAX_CONFIG_BYTES + b"\n")
    assert _refused(path) == [
        f"{path}:1:1: the config is larger than 4 MB; that is no list of feeds"
        " (is this the right file?)"
    ]


# -- alias bombs --------------------------------------------------------------------------------


# Runs the CLI in a child of its own, so that RUSAGE_CHILDREN is that one run's peak, not the
# largest of every child the test session has started.
def _laughs(levels: int, width: int) -> str:
    lines = ['lol0: &lol0 "lol"']
    lines += [
        f"lol{level}: &lol{level} [" + ", ".join([f"*lol{level - 1}"] * width) + "]"
        for level in range(1, levels)
    ]
    return "\n".join([*lines, f"sources: *lol{levels - 1}"]) + "\n"


def test_a_kilobyte_billion_laughs_is_refused_fast_in_little_memory() -> None:
    bomb = FIXTURES / "billion_laughs.yaml"
    assert bomb.stat().st_size <= 1024
    measured = run_measured(bomb, "check", timeout=60)
    result = subprocess.CompletedProcess(["check"], measured.returncode, "", measured.stderr)
    (problem,) = _errors(result)
    assert f"more than {MAX_VALUES} values" in problem
    # The whole process: interpreter, imports and the check.
    assert measured.seconds < 5, measured.seconds
    assert measured.peak_rss_mb < 300, measured.peak_rss_mb


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(_laughs(30, 2), id="deep-narrow"),
        pytest.param(_laughs(4, 200), id="shallow-wide"),
        pytest.param(
            "x: &x [" + ",".join("a" * 2000) + "]\ny: [" + ",".join(["*x"] * 2000) + "]\n",
            id="one-anchor-many-aliases",
        ),
        pytest.param(
            "base: &b {" + ", ".join(f"k{n}: v" for n in range(300)) + "}\n"
            "sources:\n" + "  - <<: *b\n" * 3000,
            id="merge-keys",
        ),
    ],
)
def test_every_shape_of_alias_bomb_is_refused_without_expanding_it(
    tmp_path: Path, text: str
) -> None:
    path = _write(tmp_path, text)
    started = time.monotonic()
    (problem,) = _refused(path)
    assert time.monotonic() - started < 1
    assert f"makes the config more than {MAX_VALUES} values" in problem


def test_aliases_within_the_budget_still_load(tmp_path: Path) -> None:
    sources = [f"  - {{name: s{n}, kind: feed, url: 'https://e.example/{n}', tags: *tags}}"
               for n in range(1, 50)]  # fmt: skip
    path = _write(
        tmp_path,
        "sources:\n  - {name: s0, kind: feed, url: 'https://e.example/0', tags: &tags [a, b]}\n"
        + "\n".join(sources)
        + "\n",
    )
    assert [source.tags for source in load_config(path).sources] == [("a", "b")] * 50


def test_more_values_than_the_budget_are_refused_without_aliases(tmp_path: Path) -> None:
    path = _write(tmp_path, "rules: [" + ",".join(["a"] * MAX_VALUES) + "]\n")
    (problem,) = _refused(path)
    assert problem.endswith(
        f"the config has more than {MAX_VALUES} values; that is no list of feeds"
    )


# -- many problems, placed ----------------------------------------------------------------------


def test_a_generated_config_lists_a_hundred_problems_then_counts_the_rest(tmp_path: Path) -> None:
    path = _write(tmp_path, "rules:\n" + "  - just text\n" * 500)
    problems = _refused(path)
    assert len(problems) == 101
    assert (
        problems[0] == f"{path}:2:5: rules[0]: 'just text' is not a mapping; write `key: value`"
        " lines under `0`"
    )
    assert problems[99].startswith(f"{path}:101:5: rules[99]: ")
    assert problems[100] == f"{path}:101:5: and 400 more problems"


def test_a_large_config_with_one_mistake_is_placed_without_the_slow_loader(tmp_path: Path) -> None:
    sources = "".join(
        f"  - {{name: s{n}, kind: feed, url: 'https://e.example/{n}', tags: [a, b]}}\n"
        for n in range(5000)
    )
    path = _write(tmp_path, f"sources:\n{sources}  - {{name: last, kind: rss}}\n")
    started = time.monotonic()
    problems = _refused(path)
    assert time.monotonic() - started < 10
    assert problems[0].startswith(f"{path}:5002:24: sources[5000].kind: 'rss' is not a valid kind")


def test_an_empty_value_is_placed_on_its_own_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "sources:\n  - name:\n    kind: feed\n    url: https://a.example/\n")
    assert _refused(path) == [f"{path}:2:10: sources[0].name: None is not text; put it in quotes"]


def test_an_unknown_tag_is_refused_not_ignored(tmp_path: Path) -> None:
    path = _write(tmp_path, "!!python/object/apply:os.system ['touch pwned']\n")
    (problem,) = _refused(path)
    assert "could not determine a constructor for the tag" in problem
    assert not (tmp_path / "pwned").exists()


# -- durations and sizes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["99999999999999999d", "366d", "53w", "9" * 400 + "s", 10**30, float("inf"), 365 * 86400 + 1],
)
def test_durations_past_a_year_are_refused_not_overflowed(value: object) -> None:
    with pytest.raises(ValueError, match="too long for a duration; use at most 365d"):
        parse_duration(value)


@pytest.mark.parametrize("value", [float("nan"), float("-inf"), -(10**30)])
def test_durations_that_are_no_length_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match=r"duration|longer than zero"):
        parse_duration(value)


def test_a_year_is_still_a_duration() -> None:
    assert parse_duration("365d").days == 365
    assert parse_duration("52w").days == 364


@pytest.mark.parametrize("value", ["9" * 400 + "GB", "2GB", 10**40])
def test_sizes_past_a_gigabyte_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="too large for a size; use at most 1GB"):
        parse_size(value)


# -- output folders ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("folder", "problem"),
    [
        ("/", "is the root folder"),
        ("/root", "is a home folder"),
        ("/home/x", "is a home folder"),
        ("/etc", "is a system folder"),
        ("/usr", "is a system folder"),
        ("/var/lib", "is a system folder"),
        ("/etc/aggregator", "is inside /etc, a system folder"),
        ("/usr/lib/aggregator", "is inside /usr/lib, a system folder"),
        ("/proc/self", "is inside /proc, a system folder"),
    ],
)
def test_root_home_and_system_folders_are_never_an_output_folder(folder: str, problem: str) -> None:
    assert output_dir_problem(Path(folder)) == problem


def test_the_users_own_home_is_refused_however_it_is_spelled(tmp_path: Path) -> None:
    home = Path.home()
    assert output_dir_problem(home) == "is a home folder"
    problems = _refused(_write(tmp_path, 'output: {dir: "~"}\n'))
    assert problems[0].startswith(f"{tmp_path}/aggregator.yaml:1:15: output.dir: '~' ({home})")


def test_a_link_to_the_root_is_the_root(tmp_path: Path) -> None:
    (tmp_path / "public").symlink_to("/")
    (problem,) = _refused(_write(tmp_path, "output: {dir: public}\n"))
    assert "output.dir: 'public' (/) is the root folder" in problem


def test_a_folder_of_other_files_is_refused_through_the_cli(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    for name in ("index.html", "notes.txt", ".env"):
        (site / name).write_text("mine", encoding="utf-8")
    config = _write(tmp_path, "output: {dir: site}\n")
    assert _errors(run_aggregator(config, "check")) == [
        f"{config}:1:15: output.dir: 'site' ({site}) holds files the aggregator did not write"
        " (.env, index.html, notes.txt); the aggregator writes its feeds there and deletes its"
        " own temp files, so give it a new or empty folder of its own,"
        " e.g. /var/lib/aggregator/public"
    ]


@pytest.mark.parametrize(
    "content",
    [
        pytest.param([], id="missing"),
        pytest.param(["."], id="empty"),
        pytest.param([OUTPUT_MARKER, "robots.txt", "favicon.ico"], id="marked"),
        pytest.param(["all.atom", "index.html", "robots.txt"], id="rendered-before-the-marker"),
        pytest.param(["feeds.opml", "notes.txt"], id="opml-of-ours"),
        pytest.param(
            ["items/a.html", "all.rss", f"{OUTPUT_TEMP_PREFIX}all.atom.k2j3.tmp"],
            id="first-render-cut-short",
        ),
        pytest.param(["items/a.html", ".all.atom.k2j3.tmp"], id="cut-short-before-the-prefix"),
    ],
)
def test_a_folder_that_is_ours_is_accepted(tmp_path: Path, content: list[str]) -> None:
    public = tmp_path / "public"
    for name in content:
        (public / name).parent.mkdir(parents=True, exist_ok=True)
        if name != ".":
            (public / name).write_text("x", encoding="utf-8")
    config = load_config(_write(tmp_path, "output: {dir: public}\n"))
    assert config.output.dir == public


def test_a_lone_index_html_is_not_taken_for_ours(tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("<h1>mine</h1>", encoding="utf-8")
    assert output_dir_problem(tmp_path / "www") == (
        "holds files the aggregator did not write (index.html)"
    )


def test_a_file_is_not_a_folder(tmp_path: Path) -> None:
    (tmp_path / "public").write_text("x", encoding="utf-8")
    assert output_dir_problem(tmp_path / "public") == "is a file, not a folder"


def test_the_default_output_folder_is_checked_too(tmp_path: Path) -> None:
    # ../public beside a config in a folder of its own: here, a folder of someone else's files.
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "thesis.pdf").write_bytes(b"%PDF")
    (tmp_path / "config").mkdir()
    (problem,) = _refused(_write(tmp_path / "config", "sources: []\n"))
    assert f"output.dir: '../public' ({tmp_path / 'public'}) holds files" in problem
    assert problem.startswith(f"{tmp_path}/config/aggregator.yaml:1:1: ")


def test_a_huge_foreign_folder_costs_no_more_than_a_small_one(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    for number in range(5000):
        (big / f"f{number}").touch()
    started = time.monotonic()
    problem = output_dir_problem(big)
    assert time.monotonic() - started < 0.5
    assert problem is not None and problem.endswith(", ...)")


# -- stores ------------------------------------------------------------------------------------


def test_an_unknown_store_scheme_is_refused_through_the_cli(tmp_path: Path) -> None:
    config = _write(tmp_path, 'store: {url: "nosuchdb://x"}\n')
    assert _errors(run_aggregator(config, "check")) == [
        f"{config}:1:14: store.url: 'nosuchdb://x': 'nosuchdb' is not a database the store can"
        " use; use sqlite:///path/to/file.db or postgresql+psycopg://user@host/database"
    ]


STORE_URLS = [
    "sqlite:///a.db",
    "sqlite:////srv/a.db",
    "sqlite://",
    "sqlite+pysqlite:///a.db?timeout=5",
    "postgresql://u@h/db",
    "postgresql+psycopg://u:p%40ss@[::1]:5432/db?sslmode=require",
    "postgresql+psycopg://u@h:/db",
    "postgresql+psycopg2://u@h/db",
    "postgres://u@h/db",
    "mysql://u@h/db",
    "nosuchdb://x",
    "SQLITE:///a.db",
    "postgresql://h:abc/db",
    "postgresql://h:5432x/db",
    "sqlite:/a.db",
    "a.db",
    "",
    "://x",
]


@pytest.mark.parametrize("url", STORE_URLS)
def test_the_store_check_agrees_with_sqlalchemy(tmp_path: Path, url: str) -> None:
    """A URL passes `check` exactly when SQLAlchemy parses it and names a database we use."""
    try:
        parsed = make_url(url)
        usable = parsed.drivername in STORE_SCHEMES
    except (ArgumentError, ValueError):
        usable = False
    path = _write(tmp_path, f"store: {{url: {json.dumps(url)}}}\n")
    if usable:
        load_config(path)
    else:
        (problem,) = _refused(path)
        assert f"{path}:1:14: store.url: " in problem


def test_a_store_password_never_reaches_the_message(tmp_path: Path) -> None:
    (problem,) = _refused(_write(tmp_path, 'store: {url: "mysql://u:s3cret@db/feeds"}\n'))
    assert "s3cret" not in problem
    assert "'mysql://u:***@db/feeds'" in problem


# -- every error is ours ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        'output: {dir: "a\\0b"}\n',
        "defaults: {timezone: " + "x" * 5000 + "}\n",
        "rules: [{tag: t, match: '" + "(" * 5000 + ")" * 5000 + "'}]\n",
        "sources: [{name: a, kind: feed, url: 'https://a.example/', interval: -.inf}]\n",
        "server: {port: 1e400}\n",
        "dedupe: {jaccard: .nan}\n",
        "--- a\n--- b\n",
        "a: *undefined\n",
        "? [a, b]\n: c\n",
        "<<: 5\n",
    ],
)
def test_no_hostile_value_escapes_as_anything_but_a_config_error(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(AggregatorError):
        load_config(path)


# -- leftover temp files ------------------------------------------------------------------------


def test_write_atomic_names_its_temp_files_with_our_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renamed: list[str] = []
    real_replace = os.replace

    def replace(source: str, target: Path) -> None:
        renamed.append(Path(source).name)
        real_replace(source, target)

    monkeypatch.setattr("aggregator.render.files.os.replace", replace)
    write_atomic(tmp_path / "tags" / "a.atom", b"<feed/>")
    (name,) = renamed
    writer = f"{socket.gethostname()}+{os.getpid()}+"
    assert name.startswith(f"{OUTPUT_TEMP_PREFIX}{writer}a.atom.") and name.endswith(".tmp")


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x", encoding="utf-8")
    return path


def test_only_our_temp_files_in_our_folders_are_removed(tmp_path: Path) -> None:
    public = tmp_path / "public"
    ours = [
        public / f"{OUTPUT_TEMP_PREFIX}index.html.ab12_x.tmp",
        public / "tags" / f"{OUTPUT_TEMP_PREFIX}china.atom.zz9.tmp",
        public / "items" / f"{OUTPUT_TEMP_PREFIX}0123abcd.html.q1w2e3.tmp",
        # Named as render named them before the prefix, for the files it writes there.
        public / ".all.atom.k2j3l4.tmp",
        public / "tags" / ".alpha.json.x1y2z3.tmp",
        public / "items" / ".0123abcd.html.r4t5y6.tmp",
    ]
    theirs = [
        public / ".notes.txt.tmp",
        public / ".vim.swp.tmp",
        public / "tags" / ".draft.md.abc.tmp",
        public / "items" / ".upload.pdf.abc.tmp",
        # Deeper than our folders: not ours even when it looks so.
        public / "tags" / "deeper" / f"{OUTPUT_TEMP_PREFIX}a.atom.x.tmp",
        public / "archive" / ".all.atom.k2j3l4.tmp",
        public / "archive" / f"{OUTPUT_TEMP_PREFIX}a.atom.x.tmp",
    ]
    for path in [*ours, *theirs]:
        _touch(path)
    elsewhere = _touch(tmp_path / "precious.tmp")
    link = public / f"{OUTPUT_TEMP_PREFIX}link.tmp"
    link.symlink_to(elsewhere)
    folder = public / f"{OUTPUT_TEMP_PREFIX}folder.tmp"
    folder.mkdir()

    removed = remove_leftovers(public)

    assert sorted(removed) == sorted(ours)
    assert not [path for path in ours if path.exists()]
    assert all(path.exists() for path in theirs)
    assert elsewhere.exists() and link.is_symlink() and folder.is_dir()


def test_a_shared_output_folder_keeps_the_temp_files_of_writes_in_progress(
    tmp_path: Path,
) -> None:
    """Several nodes may render into one folder: a node starting up removes what crashed writes
    left, never a temp file another live process (here or on another machine) is writing."""
    public = tmp_path / "public"
    here = socket.gethostname()
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as alive:
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        live_here = _touch(public / f"{OUTPUT_TEMP_PREFIX}{here}+{alive.pid}+all.atom.k2.tmp")
        dead_here = _touch(public / f"{OUTPUT_TEMP_PREFIX}{here}+{dead.pid}+all.rss.k3.tmp")
        elsewhere = _touch(public / "tags" / f"{OUTPUT_TEMP_PREFIX}node-b+77+x.atom.k4.tmp")
        stale = _touch(public / "items" / f"{OUTPUT_TEMP_PREFIX}node-b+78+0a.html.k5.tmp")
        two_hours_ago = time.time() - 7200
        os.utime(stale, (two_hours_ago, two_hours_ago))
        try:
            removed = remove_leftovers(public)
        finally:
            alive.kill()
    assert sorted(removed) == sorted([dead_here, stale])
    assert live_here.exists() and elsewhere.exists()


def test_leftovers_of_a_missing_folder_are_none(tmp_path: Path) -> None:
    assert remove_leftovers(tmp_path / "nowhere") == []


def test_start_up_never_walks_a_tree_mounted_in_the_output_folder(tmp_path: Path) -> None:
    public = tmp_path / "public"
    (public / "tags").mkdir(parents=True)
    mounted = tmp_path / "mounted"
    victim = _touch(mounted / "deep" / "down" / ".all.atom.k2j3l4.tmp")
    (public / "mirror").symlink_to(mounted)
    assert remove_leftovers(public) == []
    assert victim.exists()


# -- reload ------------------------------------------------------------------------------------


HOSTILE_RELOADS: dict[str, Callable[[Path], object]] = {
    "nul": lambda path: path.write_bytes(path.read_bytes() + b"# \x00\n"),
    "huge-duration": lambda path: path.write_text(
        path.read_text("utf-8").replace("interval: 2s", "interval: 99999999999999999d"), "utf-8"
    ),
    "alias-bomb": lambda path: path.write_text(
        (FIXTURES / "billion_laughs.yaml").read_text("utf-8"), "utf-8"
    ),
    "root-output": lambda path: path.write_text(
        path.read_text("utf-8").replace("output: {dir: public", "output: {dir: /"), "utf-8"
    ),
}


@pytest.mark.parametrize("breakage", sorted(HOSTILE_RELOADS))
def test_a_hostile_reload_is_refused_and_logged(
    tmp_path: Path, breakage: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_config(tmp_path, free_port(), [])
    running = load_config(path)
    HOSTILE_RELOADS[breakage](path)
    with caplog.at_level(logging.ERROR, logger="aggregator"):
        assert reloaded(running) is None
    assert "reload: keeping the running config" in caplog.text


def test_a_reload_that_fails_unexpectedly_is_refused_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    running = load_config(write_config(tmp_path, free_port(), []))

    def broken(path: Path) -> None:
        raise RuntimeError("a bug in the loader")

    monkeypatch.setattr("aggregator.daemon.reload.load_config", broken)
    with caplog.at_level(logging.ERROR, logger="aggregator"):
        assert reloaded(running) is None
    assert "a bug in the loader" in caplog.text


def test_sighup_with_hostile_configs_keeps_the_daemon_and_counts_each_refusal(
    tmp_path: Path,
) -> None:
    port = free_port()
    path = write_config(tmp_path, port, [])
    good = path.read_bytes()
    with Daemon(path, port) as daemon:
        daemon.wait_healthy()
        for count, breakage in enumerate(sorted(HOSTILE_RELOADS), start=1):
            path.write_bytes(good)
            HOSTILE_RELOADS[breakage](path)
            daemon.signal(signal.SIGHUP)
            deadline = time.monotonic() + 15
            while _reload_errors(daemon) < count:
                assert time.monotonic() < deadline, daemon.stderr()
                time.sleep(0.05)
        time.sleep(0.5)  # a task exception would be logged once the task is collected
        assert _reload_errors(daemon) == len(HOSTILE_RELOADS)
        assert httpx.get(f"{daemon.url}/healthz", timeout=5).json()["ok"] is True
        status, _ = daemon.stop()
    log = daemon.stderr()
    assert status == 0, log
    assert not [crash for crash in CRASHES if crash in log], log


def _reload_errors(daemon: Daemon) -> float:
    text = httpx.get(f"{daemon.url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "aggregator_config_reloads_total"
                and sample.labels.get("result") == "error"
            ):
                return float(sample.value)
    raise AssertionError(f"no reload errors in /metrics:\n{text}")
