"""The shipped systemd unit: valid to systemd-analyze, hardened, and wired to the daemon."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aggregator.config import load_config
from aggregator.config.preflight import preflight
from aggregator.serve.resources import MAX_CONNECTIONS, connection_cap

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "systemd" / "aggregator.service"
EXAMPLE = REPO / "config" / "aggregator.example.yaml"
INSTALLED = "/opt/aggregator/.venv/bin/aggregator"
MAX_EXPOSURE = 2.0

# Every test here asks systemd's own checker; a machine without it cannot answer.
pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


@pytest.fixture
def testable_unit(tmp_path: Path) -> Path:
    """The unit with its binary pointed at one that exists here; verify checks ExecStart paths."""
    text = UNIT.read_text(encoding="utf-8")
    assert INSTALLED in text
    copy = tmp_path / "aggregator.service"
    copy.write_text(text.replace(INSTALLED, "/bin/true"), encoding="utf-8")
    return copy


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_unit_verifies_without_a_single_warning(testable_unit: Path) -> None:
    result = _analyze("verify", str(testable_unit))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
    assert result.stderr.strip() == ""


def test_the_unit_is_hardened(testable_unit: Path) -> None:
    result = _analyze("security", "--offline=true", str(testable_unit))
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", output)
    assert match, output
    assert float(match.group(1)) <= MAX_EXPOSURE, output


def test_a_broken_unit_is_caught(tmp_path: Path) -> None:
    # Guards the verify test: a misspelt directive exits 0 with only a warning, which the test
    # above must see as output.
    broken = tmp_path / "broken.service"
    broken.write_text("[Service]\nExecStart=/bin/true\nProtectSystme=yes\n", "utf-8")
    result = _analyze("verify", str(broken))
    assert "ProtectSystme" in result.stdout + result.stderr


def test_the_unit_runs_the_installed_daemon_under_systemd_supervision() -> None:
    lines = [line.strip() for line in UNIT.read_text(encoding="utf-8").splitlines()]
    assert f"ExecStart={INSTALLED} run" in lines
    assert "Type=notify" in lines
    assert "NotifyAccess=main" in lines
    assert "Restart=on-failure" in lines
    assert any(line.startswith("WatchdogSec=") for line in lines)
    reload = [line.removeprefix("ExecReload=") for line in lines if line.startswith("ExecReload=")]
    assert reload == [f"{INSTALLED} check", "/bin/kill -HUP $MAINPID"]
    assert "Environment=AGGREGATOR_CONFIG=/etc/aggregator/aggregator.yaml" in lines
    assert {"StateDirectory=aggregator", "ConfigurationDirectory=aggregator"} <= set(lines)


def test_the_unit_gives_the_server_room_for_its_full_connection_cap() -> None:
    """The server sizes its connection cap from the open-files limit the unit sets."""
    lines = [line.strip() for line in UNIT.read_text(encoding="utf-8").splitlines()]
    limits = [
        line.removeprefix("LimitNOFILE=") for line in lines if line.startswith("LimitNOFILE=")
    ]
    assert len(limits) == 1, limits
    assert connection_cap(int(limits[0])) == MAX_CONNECTIONS


# --- the README's install steps, followed ------------------------------------------------------

# Where the steps write on a real machine; here each is moved into a scratch root.
MOVED = ("/etc/", "/opt/", "/var/lib/")
# What only a real machine (its network, its running systemd) can do: each must be in the
# steps all the same.
NOT_HERE = ("git", "cd", "python3", "systemctl", "journalctl")


def _install_steps() -> list[list[str]]:
    """The commands of the README's "Installing as a service" block, comments dropped, `&&`
    chains split."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Installing as a service", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    steps: list[list[str]] = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            steps.append(words[:cut])
            words = words[cut + 1 :]
    return steps


def test_the_readme_steps_give_a_unit_systemd_accepts_and_a_config_check_passes(
    tmp_path: Path,
) -> None:
    """The README's steps, run one by one in a scratch root: each path under /etc, /opt or
    /var/lib is moved into it. What the machine would have is made first: /etc/systemd/system,
    the venv that `pip install .` makes in /opt/aggregator (a link to this checkout's), and
    /var/lib/aggregator, which systemd makes for the unit (StateDirectory=) before it starts.
    Two files are then pointed into the scratch root as well: the installed config's
    /var/lib/aggregator (so that `check` looks at the folder the service would write), and the
    installed unit's /opt/aggregator (verify insists that ExecStart= names a real program)."""
    root = tmp_path / "root"
    (root / "etc" / "systemd" / "system").mkdir(parents=True)
    venv = root / "opt" / "aggregator" / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "aggregator").symlink_to(Path(sys.executable).parent / "aggregator")
    state = root / "var" / "lib" / "aggregator"
    state.mkdir(parents=True)
    config = root / "etc" / "aggregator" / "aggregator.yaml"
    unit = root / "etc" / "systemd" / "system" / "aggregator.service"

    def moved(word: str) -> str:
        return f"{root}{word}" if word.startswith(MOVED) else word

    done: list[str] = []
    for step in _install_steps():
        program = step[0]
        if program in NOT_HERE or program.endswith("/pip"):
            done.append(program)
            continue
        if program == "systemd-analyze":
            # The unit as installed, its program the venv of the scratch root.
            unit.write_text(
                unit.read_text(encoding="utf-8").replace(
                    "/opt/aggregator/", f"{root}/opt/aggregator/"
                ),
                encoding="utf-8",
            )
        command = [moved(word) for word in step]
        if program.endswith("aggregator"):  # .venv/bin/aggregator, from /opt/aggregator
            command[0] = str(venv / "aggregator")
        result = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, (step, result.stdout, result.stderr)
        done.append(" ".join(step[:2]))
        if program == "systemd-analyze":
            assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stderr
        if program.endswith("aggregator"):
            # Absolute paths only: not a warning, let alone an error.
            assert result.stderr == ""
            assert result.stdout == f"{config}: ok (1 sources, 1 enabled)\n"
        if step[-1] == "/etc/aggregator/aggregator.yaml" and program == "install":
            assert config.read_text(encoding="utf-8") == EXAMPLE.read_text(encoding="utf-8")
            assert "/var/lib/aggregator/" in config.read_text(encoding="utf-8")
            config.write_text(
                config.read_text(encoding="utf-8").replace("/var/lib/aggregator/", f"{state}/"),
                encoding="utf-8",
            )
    assert done == [
        "git",
        "cd",
        "python3",
        ".venv/bin/pip",
        "install -d",
        "install -m",
        ".venv/bin/aggregator -c",
        "install -m",
        "systemd-analyze verify",
        "systemctl",
        "systemctl",
        "systemctl",
        "systemctl",
        "journalctl",
    ]
    assert unit.exists()


def test_the_example_config_is_for_a_systemd_install() -> None:
    """Absolute paths, state where the unit lets the daemon write, and at least one source."""
    text = EXAMPLE.read_text(encoding="utf-8")
    assert 'url: "sqlite:////var/lib/aggregator/aggregator.db"' in text
    assert "dir: /var/lib/aggregator/public" in text
    assert "StateDirectory=aggregator" in UNIT.read_text(encoding="utf-8")
    # No relative path (which `check` would warn of: it moves with the file).
    assert preflight(load_config(EXAMPLE)).warnings == []
