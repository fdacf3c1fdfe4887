"""LSH band keys: the one banding the dedupe stage and the store's index agree on.

A MinHash signature (128 values, then the 32 of the lead) is cut into bands of ROWS_PER_BAND
values. Each band, with its number, is hashed to one signed 64-bit key (signed: SQLite's
INTEGER). Two articles are near-duplicate candidates when they share a key.

The hash is computed in the worker processes for every article, so it is vectorised: the
band number and values are folded with a polynomial and mixed with MurmurHash3's fmix64, the
same construction the shingle hashes use. It depends on nothing but the values, so keys stay
comparable across machines and restarts (the store keeps them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ROWS_PER_BAND = 4

_FOLD = np.uint64(0x100000001B3)
_MIX1 = np.uint64(0xFF51AFD7ED558CCD)
_MIX2 = np.uint64(0xC4CEB9FE1A85EC53)
_SHIFT33 = np.uint64(33)


def band_keys(minhash: Sequence[int], lead: Sequence[int] = ()) -> tuple[int, ...]:
    """One key per whole band of the signature followed by the lead, in band order."""
    values = np.array((*minhash, *lead), dtype=np.uint64)
    bands = len(values) // ROWS_PER_BAND
    if not bands:
        return ()
    rows = values[: bands * ROWS_PER_BAND].reshape(bands, ROWS_PER_BAND)
    with np.errstate(over="ignore"):
        key = np.arange(1, bands + 1, dtype=np.uint64)
        for column in range(ROWS_PER_BAND):
            key *= _FOLD
            key += rows[:, column]
        key ^= key >> _SHIFT33
        key *= _MIX1
        key ^= key >> _SHIFT33
        key *= _MIX2
        key ^= key >> _SHIFT33
    return tuple(key.view(np.int64).tolist())
