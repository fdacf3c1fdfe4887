"""aggregator: pulls articles from many sources, cleans and dedupes them, republishes feeds."""

import sys

__version__ = "0.1.0"

# httpx imports its own command line (click, rich, pygments) whenever they are installed, and
# rich is ours: 50 ms of every start and 3 MB for a CLI we never run. A None entry makes that
# import fail, and httpx then defines a stub `main` instead (its documented fallback).
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
