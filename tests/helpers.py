"""Helpers the end-to-end tests share."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_aggregator(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "aggregator", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
