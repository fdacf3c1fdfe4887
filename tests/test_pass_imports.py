"""What the main process of a pass loads: a pass of 304s, and a large pass whose CPU work goes
to the worker processes, never pay for the parse and clean stages in the main process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.farm import Farm, FarmConfig

ROOT = Path(__file__).resolve().parent.parent
FEEDS = 70  # more than ingest.LARGE_PASS: the pass starts its workers at its first document

# Runs one `run --once` in-process and prints which heavy modules the process loaded.
_PROBE = """
import json, sys
from aggregator.cli import main
code = main(["--config", sys.argv[1], "run", "--once"], standalone_mode=False)
names = ["aggregator.clean", "aggregator.parse", "aggregator.dedupe", "aggregator.render",
         "lxml", "numpy", "feedparser"]
print(json.dumps({"exit": code or 0, "loaded": [n for n in names if n in sys.modules]}))
"""


def _run(config: Path) -> dict[str, object]:
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
    report: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def test_large_pass_and_pass_of_304s_keep_the_cpu_stages_out_of_the_main_process(
    tmp_path: Path,
) -> None:
    with Farm(FarmConfig(feeds=FEEDS, items=2, churn=0.0, bad_citizens=False)) as farm:
        lines = [
            'store: {url: "sqlite:///state/agg.db"}',
            'output: {dir: public, base_url: "http://127.0.0.1:9/"}',
            "sources:",
        ]
        for number, url in enumerate(farm.feed_urls()):
            lines += [f"  - name: feed-{number}", "    kind: feed", f"    url: {url}"]
        config = tmp_path / "aggregator.yaml"
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")

        first = _run(config)
        assert first["exit"] == 0
        # The workers parsed and cleaned; the main process clustered (dedupe) and rendered.
        assert not {"aggregator.clean", "aggregator.parse", "feedparser"} & set(first["loaded"])  # type: ignore[arg-type]
        assert "aggregator.render" in first["loaded"]  # type: ignore[operator]

        again = _run(config)
        assert again["exit"] == 0
        assert again["loaded"] == []
        assert {request.status for request in farm.requests[-FEEDS:]} == {304}
