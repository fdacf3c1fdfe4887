"""The shipped systemd unit: valid to systemd-analyze, hardened, and wired to the daemon."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from aggregator.serve.resources import MAX_CONNECTIONS, connection_cap

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "aggregator.service"
INSTALLED = "/opt/aggregator/.venv/bin/aggregator"
MAX_EXPOSURE = 2.0


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
