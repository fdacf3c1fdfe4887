"""The garbage collector's settings for passes: what a process has loaded is frozen, and the
young generation is collected less often.

CPython's cyclic collector examines the young generation after every 700 net allocations of
container objects, and now and then walks every object the process holds, including the
70,000 or so its imports made (SQLAlchemy, pydantic, httpx: classes, functions, and
constants), which are never garbage. A pass allocates millions of short-lived containers
(parsed entries, rows, band tuples) that reference counting frees on its own. Measured on the
20k-article first pass of benchmarks/fetch.py, the main process spent 1.45 s of its 21 s of
CPU in collections; frozen and with a young generation of 20,000, 0.36 s; a re-pass of 1000
304s took 2.37 s against 2.63 s on average, four runs each in turns.

Cyclic garbage still gets collected, only in larger batches: at most 20,000 young containers
wait for it, a few MB at worst.
"""

from __future__ import annotations

import gc
import importlib

YOUNG_GENERATION = 20_000  # CPython's default is 700

_settled = False


def settle(*preload: str) -> None:
    """Freeze everything the process holds now out of the collector's reach and enlarge the
    young generation; once per process. `preload`: modules to import first, so that they are
    frozen too (a worker process, before its first job)."""
    global _settled  # noqa: PLW0603 - one setting per process
    if _settled:
        return
    for module in preload:
        importlib.import_module(module)
    # No collection first: what the imports left as cyclic garbage is a few KB, and a full
    # collection would cost a command as much as the freeze saves it.
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION, middle, old)
    _settled = True
