"""Near-duplicate fingerprints: MinHash over the character 5-grams of the normalised text.

The text is normalised the way the exact layer hashes it (NFKC, casefold, word characters
only), so spacing, punctuation, width and case never matter, and shingles are characters,
not words: Chinese and English are cut alike, with no word segmentation.

    text ─▶ normalise ─▶ 5-grams, each hashed to 32 bits ─▶ 128 MinHash values
                        └▶ 5-grams of its first 150 characters ─▶ 32 MinHash values (the lead)

Each of the 128 permutations is h(x) = (a·x + b) mod 2³² with a odd, a bijection of the
32-bit shingle hashes; the shingle hashes are already well mixed (a 64-bit finaliser), which
is what makes this cheap family behave like random permutations (measured: estimates of the
Jaccard similarity are unbiased, with the binomial spread √(J(1−J)/128)).

Two implementations give the same values: a C kernel (_kernel.c), built at install when a C
compiler is at hand, which also cuts the LSH band keys; and numpy, vectorised: a
(128 × shingles) multiply-add and a row minimum, a few rows at a time. numpy is imported only
when the kernel is missing, so a worker with the kernel never loads it.

The lead signature exists for the LSH index only: an excerpt (a summary feed's first paragraphs)
shares too few 5-grams with the full text for its bands to meet the full signature's, but it
begins like the full text, so their leads are (nearly) the same set.

The parameters come from a fixed hash, never from a random generator, so the signatures the
store keeps stay comparable across machines, numpy versions and restarts.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
import sys
import unicodedata
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, NamedTuple

from aggregator.dedupe.clusters import NearFingerprint
from aggregator.dedupe.lsh import ROWS_PER_BAND, band_keys_of

if TYPE_CHECKING:  # see _numpy_constants
    import numpy as np
    import numpy.typing as npt

SHINGLE_CHARS = 5
PERMUTATIONS = 128
LEAD_CHARS = 150  # normalised characters of the lead
LEAD_PERMUTATIONS = 32  # the first 32 of the same permutations
LEAD_SHINGLES = LEAD_CHARS - SHINGLE_CHARS + 1
# Below this many normalised characters a text is too short to tell stories apart (both layers).
MIN_CHARS = 50

_NON_WORD = re.compile(r"[\W_]+")
# Products per block of the (permutations × shingles) matrix: 512 KiB, which stays in a core's
# L2 cache, where the whole 2 MiB matrix at once does not.
_BLOCK = 1 << 17
_FOLD = 0x100000001B3  # 5-grams of code points are folded with this polynomial, then fmix64
# Where a uint64's high 32 bits sit when it is viewed as two uint32.
_HIGH_WORD = 1 if sys.byteorder == "little" else 0
_BUFFER_ELEMENTS = 64  # see _unbuffered


def _words(name: bytes) -> list[int]:
    return [
        int.from_bytes(
            hashlib.blake2b(name + i.to_bytes(2, "little"), digest_size=4).digest(), "big"
        )
        for i in range(PERMUTATIONS)
    ]


class _Parameters(NamedTuple):
    a: list[int]  # odd: each permutation is a bijection
    b: list[int]


@functools.cache
def _parameters() -> _Parameters:
    return _Parameters(
        [word | 1 for word in _words(b"aggregator.minhash.a")], _words(b"aggregator.minhash.b")
    )


# ASCII bytes that are no word characters: deleted from the UTF-8 bytes at C speed (an ASCII
# byte is never part of a longer UTF-8 sequence).
_ASCII_NON_WORD = bytes(code for code in range(128) if _NON_WORD.fullmatch(chr(code)))
# Where the other spaces and punctuation live: Latin-1, general, CJK and full-width. Removed
# by a regular expression that tests a bitmap, they spare NFKC its slow path (CJK text is
# NFKC-stable but for its full-width punctuation) and the Unicode-aware non-word pass its work.
_STRIPPED_RANGES = (
    (0x0080, 0x00BF),  # no-break space, Latin-1 punctuation
    (0x2000, 0x206F),  # general punctuation
    (0x3000, 0x303F),  # CJK symbols and punctuation
    (0xFE10, 0xFE1F),  # vertical forms
    (0xFE30, 0xFE6F),  # CJK compatibility and small forms
    (0xFF00, 0xFFEF),  # half-width and full-width forms
)


@functools.cache
def _strippable() -> re.Pattern[str]:
    """Those characters of _STRIPPED_RANGES whose NFKC form holds no word character."""
    runs: list[list[int]] = []  # [first, last] code points of consecutive strippable ones
    for low, high in _STRIPPED_RANGES:
        for code in range(low, high + 1):
            char = chr(code)
            if (
                _NON_WORD.fullmatch(char)
                and _NON_WORD.fullmatch(unicodedata.normalize("NFKC", char))
                and not unicodedata.category(char).startswith("M")
            ):
                if runs and runs[-1][1] == code - 1:
                    runs[-1][1] = code
                else:
                    runs.append([code, code])
    # Ranges, not single characters: the regex engine then tests a few bounds per character.
    ranges = "".join(f"{re.escape(chr(first))}-{re.escape(chr(last))}" for first, last in runs)
    return re.compile(f"[{ranges}]+")


def normalise(text: str) -> str:
    """NFKC, casefold, word characters only: what both dedupe layers compare.

    Spaces and punctuation whose NFKC form holds no word character are dropped before NFKC
    (which then has far less to read); this equals NFKC-first except for degenerate input such as a
    combining accent right after a punctuation mark.
    """
    data = text.encode("utf-8", "surrogatepass").translate(None, _ASCII_NON_WORD)
    stripped = data.decode("utf-8", "surrogatepass")
    if not stripped.isascii():
        stripped = _strippable().sub("", stripped)
    folded = unicodedata.normalize("NFKC", stripped).casefold()
    return folded if folded.isalnum() else _NON_WORD.sub("", folded)


class NearValues(NamedTuple):
    """A text's near fingerprint as the store keeps it: plain ints (see NearFingerprint)."""

    minhash: tuple[int, ...]
    shingles: int  # distinct 5-gram hashes
    lead: tuple[int, ...]
    bands: tuple[int, ...]  # LSH band keys of minhash followed by lead (dedupe.lsh)


_Compiled = Callable[[str], NearValues]


@functools.cache
def _compiled() -> _Compiled | None:
    """The kernel with the parameters bound; None where it was not built."""
    try:
        from aggregator.dedupe._kernel import fingerprint  # noqa: PLC0415 - not built everywhere
    except ImportError:
        return None
    a, b = (b"".join(word.to_bytes(4, sys.byteorder) for word in words) for words in _parameters())

    def compiled(normalised: str) -> NearValues:
        return NearValues(
            *fingerprint(normalised, a, b, LEAD_SHINGLES, LEAD_PERMUTATIONS, ROWS_PER_BAND)
        )

    return compiled


def near_values(normalised: str) -> NearValues | None:
    """The MinHash values of a normalised text and of its lead, and their band keys; None when
    it is too short."""
    compiled = _compiled()
    if compiled is None:
        return _numpy_values(normalised)
    return compiled(normalised) if len(normalised) >= MIN_CHARS else None


def fingerprint_normalised(normalised: str) -> NearFingerprint | None:
    near = near_values(normalised)
    if near is None:
        return None
    return NearFingerprint(near.minhash, near.shingles, near.lead)


def near_fingerprint(text: str) -> NearFingerprint | None:
    """MinHash signature and shingle count of a text; None when it is too short to compare."""
    return fingerprint_normalised(normalise(text))


# --- numpy: the same values where the kernel was not built ---


class _NumpyConstants(NamedTuple):
    fold: np.uint64
    fold_squared: np.uint64
    mix1: np.uint64
    mix2: np.uint64
    shift33: np.uint64
    a_column: npt.NDArray[np.uint32]  # the parameters, one permutation a row
    b_column: npt.NDArray[np.uint32]


@functools.cache
def _numpy_constants() -> _NumpyConstants:
    # numpy is imported on first use, not with this module: a process that has the kernel
    # never pays numpy's import and memory.
    import numpy as np  # noqa: PLC0415

    a, b = (np.array(words, dtype=np.uint32)[:, np.newaxis] for words in _parameters())
    return _NumpyConstants(
        fold=np.uint64(_FOLD),
        fold_squared=np.uint64(_FOLD**2 % 2**64),
        mix1=np.uint64(0xFF51AFD7ED558CCD),
        mix2=np.uint64(0xC4CEB9FE1A85EC53),
        shift33=np.uint64(33),
        a_column=a,
        b_column=b,
    )


def _positional_hashes(normalised: str) -> npt.NDArray[np.uint32]:
    """The 32-bit hash of the 5-gram starting at each character, in text order (a view)."""
    import numpy as np  # noqa: PLC0415 - see _numpy_constants

    count = len(normalised) - SHINGLE_CHARS + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint32)
    c = _numpy_constants()
    codes = np.frombuffer(normalised.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    # c0·F⁴ + c1·F³ + c2·F² + c3·F + c4 in three multiply-adds instead of four: pairs
    # c·F + c′ first, then pair·F² + the pair two characters on, then ·F + the fifth.
    pairs = codes[:-1] * c.fold
    pairs += codes[1:]
    folded = pairs[:count] * c.fold_squared
    folded += pairs[2 : count + 2]
    folded *= c.fold
    folded += codes[SHINGLE_CHARS - 1 :]
    shifted = folded >> c.shift33
    folded ^= shifted
    folded *= c.mix1
    np.right_shift(folded, c.shift33, out=shifted)
    folded ^= shifted
    folded *= c.mix2
    # fmix64 ends with x ^= x >> 33, which never reaches the high 32 bits: they are the hash.
    return folded.view(np.uint32)[_HIGH_WORD::2]


def _distinct(hashes: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    import numpy as np  # noqa: PLC0415 - see _numpy_constants

    # Sort and drop repeats: for a few thousand values, faster than np.unique.
    ordered = np.sort(hashes)
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def shingle_hashes(normalised: str) -> npt.NDArray[np.uint32]:
    """The distinct 32-bit hashes of the character 5-grams, sorted."""
    return _distinct(_positional_hashes(normalised))


def _min_hashes(
    hashes: npt.NDArray[np.uint32],
    permutations: int,
    lead: npt.NDArray[np.uint32] | None = None,
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32]]:
    """Each permutation's minimum of a·x + b over `hashes`, and, when `lead` has hashes, each
    of the first LEAD_PERMUTATIONS' minimum over those: call within _unbuffered()."""
    import numpy as np  # noqa: PLC0415 - see _numpy_constants

    c = _numpy_constants()
    count = len(hashes)
    lead_count = 0 if lead is None else len(lead)
    # The lead's columns ride along in the blocks of its permutations: no calls of their own.
    columns = np.concatenate((hashes, lead)) if lead is not None and lead_count else hashes
    lead_minimum = np.empty(LEAD_PERMUTATIONS if lead_count else 0, dtype=np.uint32)
    minimum = np.empty(permutations, dtype=np.uint32)
    # A block of whole rows (permutations), written in place: it stays in the core's cache
    # between the multiply, the add and the minimum, and needs no temporaries.
    rows = max(1, min(permutations, _BLOCK // len(columns)))
    block = np.empty((rows, len(columns)), dtype=np.uint32)
    for start in range(0, permutations, rows):
        stop = min(start + rows, permutations)
        leading = max(0, min(stop, len(lead_minimum)) - start)  # lead rows in this block
        products = block[: stop - start, : len(columns) if leading else count]
        np.multiply(c.a_column[start:stop], columns[: products.shape[1]], out=products)
        products += c.b_column[start:stop]  # the multiply and this add wrap mod 2**32
        np.minimum.reduce(products[:, :count], axis=1, out=minimum[start:stop])
        if leading:
            lead_rows = slice(start, start + leading)
            np.minimum.reduce(products[:leading, count:], axis=1, out=lead_minimum[lead_rows])
    return minimum, lead_minimum


@contextlib.contextmanager
def _unbuffered() -> Iterator[None]:
    """Numpy's ufuncs iterate the (permutations × shingles) block row by row, in place.

    With the default buffer (8,192 elements) numpy copies rows shorter than about a third of it
    through the buffer instead, a copy per row for a text's few thousand shingles. The
    setting is numpy's own scoped state (restored on exit)."""
    import numpy as np  # noqa: PLC0415 - see _numpy_constants

    with np.errstate():
        np.setbufsize(_BUFFER_ELEMENTS)
        yield


def signature(
    hashes: npt.NDArray[np.uint32], permutations: int = PERMUTATIONS
) -> npt.NDArray[np.uint32]:
    """The MinHash signature of a non-empty set of shingle hashes."""
    if not len(hashes):
        raise ValueError("a MinHash signature needs at least one shingle")
    with _unbuffered():
        return _min_hashes(hashes, permutations)[0]


class Signatures(NamedTuple):
    """A text's near fingerprint as numpy arrays (see NearFingerprint)."""

    minhash: npt.NDArray[np.uint32]
    shingles: int
    lead: npt.NDArray[np.uint32]


def signatures(normalised: str) -> Signatures | None:
    """The MinHash values of a normalised text and of its lead, with numpy; None when it is too
    short."""
    if len(normalised) < MIN_CHARS:
        return None
    positional = _positional_hashes(normalised)
    hashes = _distinct(positional)
    # A minimum does not care about repeats: the lead's positions need no dedupe.
    lead = positional[:LEAD_SHINGLES]
    with _unbuffered():
        minhash, lead_minhash = _min_hashes(hashes, PERMUTATIONS, lead)
    return Signatures(minhash, len(hashes), lead_minhash)


def _numpy_values(normalised: str) -> NearValues | None:
    import numpy as np  # noqa: PLC0415 - see _numpy_constants

    near = signatures(normalised)
    if near is None:
        return None
    return NearValues(
        tuple(near.minhash.tolist()),
        near.shingles,
        tuple(near.lead.tolist()),
        band_keys_of(np.concatenate((near.minhash, near.lead))),
    )
