"""Each hostile-upstream case through its own `aggregator run --once`, beside a good feed.

    .venv/bin/python benchmarks/hostile.py

Every case of tests/hostile.py (a title that is `<html>`, a control character in a link, HTML
nested 20k and 200k deep, 1,000 categories, a 300-character category, a 1 MB title, a link urllib
rejects, a 30-hour offset, a gzip-of-gzip bomb, bytes that are no feed) is served from
127.0.0.1 and read in a pass of its own. Printed per case: the pass's exit code and wall time,
the peak RSS of its largest process (workers included), and what became of the source and of
the good feed beside it. The issue's bar: under 5 s and 300 MB each, the good feed stored.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import status_rows
from tests.hostile import CASES, run_once, serve, write_config


def main() -> None:
    print("| case | exit | seconds | peak RSS (MB) | the case | the good feed |")
    print("|---|---|---|---|---|---|")
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp, serve([case]) as base_url:
            config = write_config(Path(tmp), [case], base_url)
            measured = run_once(config)
            rows = status_rows(config)
        mine, good = rows[case.name], rows["good"]
        outcome = (
            f"{mine['items']} item(s), limited {mine['limited']}"
            if mine["health"] == "ok"
            else f"{mine['health']}: {(mine['last_error'] or '')[:60]}"
        )
        print(
            f"| {case.name} | {measured.returncode} | {measured.seconds:.2f} "
            f"| {measured.peak_rss_mb:.0f} | {outcome} | {good['health']}, {good['items']} items |"
        )


if __name__ == "__main__":
    main()
