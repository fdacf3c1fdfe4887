"""What the main process of a pass loads: a pass of 304s, and a large pass whose CPU work goes
to the worker processes, never pay for the parse, clean and fingerprint stages (lxml, numpy)
in the main process; a re-pass with a few changed feeds does their work in-process rather than
start a worker process for them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.farm import Farm, FarmConfig
from tests.helpers import farm_config

ROOT = Path(__file__).resolve().parent.parent
FEEDS = 70  # more than ingest.LARGE_PASS: a first pass starts its workers at its first document

# Runs one `run --once` in-process and prints which heavy modules the process loaded.
_PROBE = """
import json, sys
from aggregator.cli import main
code = main(["--config", sys.argv[1], "run", "--once"], standalone_mode=False)
names = ["aggregator.clean", "aggregator.parse", "aggregator.dedupe", "aggregator.render",
         "lxml", "numpy", "feedparser"]
print(json.dumps({"exit": code or 0, "loaded": [n for n in names if n in sys.modules]}))
"""


def _run(config: Path) -> tuple[int, list[str]]:
    """The exit code of `run --once` and the heavy modules its process loaded."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(config)],
        capture_output=True,
        text=True,
        env=env,
        cwd=config.parent,
        timeout=120,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return int(report["exit"]), list(report["loaded"])


def test_large_pass_and_pass_of_304s_keep_the_cpu_stages_out_of_the_main_process(
    tmp_path: Path,
) -> None:
    with Farm(FarmConfig(feeds=FEEDS, items=2, churn=0.01, bad_citizens=False)) as farm:
        config = farm_config(tmp_path, farm.feed_urls())

        code, loaded = _run(config)
        assert code == 0
        # The workers parsed, cleaned and fingerprinted (numpy); the main process clustered
        # (pure Python) and rendered.
        assert not {"aggregator.clean", "aggregator.parse", "feedparser", "numpy"} & set(loaded)
        assert "aggregator.dedupe" in loaded
        assert "aggregator.render" in loaded

        code, loaded = _run(config)
        assert code == 0
        assert loaded == []
        assert {request.status for request in farm.requests[-FEEDS:]} == {304}

        farm.next_pass()  # one feed gains an item
        code, loaded = _run(config)
        assert code == 0
        assert [request.status for request in farm.requests[-FEEDS:]].count(200) == 1
        # Its parse and clean ran here: no worker process was worth starting for one feed.
        assert {"aggregator.clean", "aggregator.parse", "numpy"} <= set(loaded)
