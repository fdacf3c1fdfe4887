"""A pass settles the garbage collector (aggregator/heap.py) in the main process and in every
worker process: what was loaded before is frozen, and the young generation is larger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from aggregator.pipeline.heap import YOUNG_GENERATION
from tests.farm import Farm, FarmConfig
from tests.helpers import farm_config

ROOT = Path(__file__).resolve().parent.parent

# One `run --once` in a fresh interpreter (the test process's own collector stays as it is),
# then the main process's settings, and a worker's, asked through a new pool of the same kind.
_PROBE = """
import gc, json, sys
from aggregator.cli import main
from aggregator.pipeline import run
before = [gc.get_threshold()[0], gc.get_freeze_count()]
code = main(["--config", sys.argv[1], "run", "--once"], standalone_mode=False)
pool = run._worker_pool()
worker = [pool.submit(gc.get_threshold).result()[0], pool.submit(gc.get_freeze_count).result()]
loaded = pool.submit(eval, "'aggregator.pipeline.process' in __import__('sys').modules").result()
run._stop_workers()
print(json.dumps({"exit": code or 0, "before": before,
                  "main": [gc.get_threshold()[0], gc.get_freeze_count()],
                  "worker": worker, "worker_loaded_stages": loaded}))
"""


def test_a_pass_freezes_what_is_loaded_and_enlarges_the_young_generation(
    tmp_path: Path,
) -> None:
    with Farm(FarmConfig(feeds=2, items=2, bad_citizens=False)) as farm:
        config = farm_config(tmp_path, farm.feed_urls())
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, str(config)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=tmp_path,
            timeout=120,
            check=True,
        )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["exit"] == 0
    assert report["before"] == [700, 0]  # CPython's defaults until a pass starts
    young, frozen = report["main"]
    assert young == YOUNG_GENERATION
    assert frozen > 10_000  # the imports' objects: SQLAlchemy, pydantic, httpx
    # A worker freezes after loading the stages its jobs need, before its first job.
    assert report["worker"][0] == YOUNG_GENERATION
    assert report["worker"][1] > 10_000
    assert report["worker_loaded_stages"] is True
