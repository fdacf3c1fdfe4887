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

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # numpy is imported on first use: the store imports this module, and a
    # pass of 304s (or `aggregator status`) should not pay numpy's import for it.
    import numpy as np
    import numpy.typing as npt

ROWS_PER_BAND = 4

_FOLD = 0x100000001B3


class _Constants(NamedTuple):
    mix1: np.uint64
    mix2: np.uint64
    shift33: np.uint64
    powers: npt.NDArray[np.uint64]
    band_fold: np.uint64


@functools.cache
def _constants() -> _Constants:
    import numpy as np  # noqa: PLC0415 - see above

    return _Constants(
        mix1=np.uint64(0xFF51AFD7ED558CCD),
        mix2=np.uint64(0xC4CEB9FE1A85EC53),
        shift33=np.uint64(33),
        powers=np.array(
            [pow(_FOLD, ROWS_PER_BAND - 1 - row, 2**64) for row in range(ROWS_PER_BAND)],
            dtype=np.uint64,
        ),
        band_fold=np.uint64(pow(_FOLD, ROWS_PER_BAND, 2**64)),
    )


@functools.lru_cache(maxsize=8)
def _band_terms(bands: int) -> npt.NDArray[np.uint64]:
    """band·F⁴ for the bands 1 … `bands`: the same few counts come every time."""
    import numpy as np  # noqa: PLC0415 - see above

    terms = np.arange(1, bands + 1, dtype=np.uint64) * _constants().band_fold
    terms.flags.writeable = False
    return terms


def band_keys(minhash: Sequence[int], lead: Sequence[int] = ()) -> tuple[int, ...]:
    """One key per whole band of the signature followed by the lead, in band order."""
    values = (*minhash, *lead)
    if len(values) < ROWS_PER_BAND:
        # No band: a text too short to compare. The store's clustering asks for the keys of
        # each such article it saves; numpy need not load into the main process for it.
        return ()
    import numpy as np  # noqa: PLC0415 - see above

    return band_keys_of(np.array(values, dtype=np.uint64))


def band_keys_of(values: npt.NDArray[np.unsignedinteger[Any]]) -> tuple[int, ...]:
    """band_keys of the signature's and the lead's values, already in one array."""
    bands = len(values) // ROWS_PER_BAND
    if not bands:
        return ()
    import numpy as np  # noqa: PLC0415 - see above

    c = _constants()
    rows = values[: bands * ROWS_PER_BAND].reshape(bands, ROWS_PER_BAND).astype(np.uint64)
    key = rows @ c.powers  # wraps mod 2**64, as the fold does
    key += _band_terms(bands)
    shifted = key >> c.shift33
    key ^= shifted
    key *= c.mix1
    np.right_shift(key, c.shift33, out=shifted)
    key ^= shifted
    key *= c.mix2
    np.right_shift(key, c.shift33, out=shifted)
    key ^= shifted
    return tuple(key.view(np.int64).tolist())
