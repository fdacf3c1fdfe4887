"""Near-duplicate fingerprints: MinHash over the character 5-grams of the normalised text.

The text is normalised the way the exact layer hashes it (NFKC, casefold, word characters
only), so spacing, punctuation, width and case never matter, and shingles are characters,
not words: Chinese and English are cut alike, with no word segmentation.

    text ─▶ normalise ─▶ 5-grams, each hashed to 32 bits ─▶ 128 MinHash values
                        └▶ 5-grams of its first 150 characters ─▶ 32 MinHash values (the lead)

Each of the 128 permutations is h(x) = (a·x + b) mod 2³² with a odd, a bijection of the
32-bit shingle hashes; the shingle hashes are already well mixed (a 64-bit finaliser), which
is what makes this cheap family behave like random permutations (measured: estimates of the
Jaccard similarity are unbiased, with the binomial spread √(J(1−J)/128)). Everything runs
vectorised in numpy: one (128 × shingles) multiply-add and a row minimum.

The lead signature exists for the LSH index only: an excerpt (a summary feed's first paragraphs)
shares too few 5-grams with the full text for its bands to meet the full signature's, but it
begins like the full text, so their leads are (nearly) the same set.

The parameters come from a fixed hash, never from a random generator, so the signatures the
store keeps stay comparable across machines, numpy versions and restarts.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SHINGLE_CHARS = 5
PERMUTATIONS = 128
LEAD_CHARS = 150  # normalised characters of the lead
LEAD_PERMUTATIONS = 32  # the first 32 of the same permutations
# Below this many normalised characters a text is too short to tell stories apart (both layers).
MIN_CHARS = 50

_NON_WORD = re.compile(r"[\W_]+")
# Shingles per block of the (permutations × shingles) matrix: bounds memory on long texts.
_BLOCK = 4096
# 5-grams of code points are folded with a polynomial, then mixed (MurmurHash3's fmix64).
_FOLD = np.uint64(0x100000001B3)
_MIX1 = np.uint64(0xFF51AFD7ED558CCD)
_MIX2 = np.uint64(0xC4CEB9FE1A85EC53)
_SHIFT33 = np.uint64(33)
_SHIFT32 = np.uint64(32)
_MAX_HASH = np.uint32(0xFFFFFFFF)


def _parameters(name: bytes) -> npt.NDArray[np.uint32]:
    words = [
        int.from_bytes(
            hashlib.blake2b(name + i.to_bytes(2, "little"), digest_size=4).digest(), "big"
        )
        for i in range(PERMUTATIONS)
    ]
    return np.array(words, dtype=np.uint32)


_A = _parameters(b"aggregator.minhash.a") | np.uint32(1)  # odd: each permutation is a bijection
_B = _parameters(b"aggregator.minhash.b")
_A_COLUMN, _B_COLUMN = _A[:, np.newaxis], _B[:, np.newaxis]


@dataclass(frozen=True, slots=True)
class NearFingerprint:
    minhash: tuple[int, ...]  # PERMUTATIONS values, each < 2**32
    shingles: int  # distinct 5-grams of the normalised text
    lead: tuple[int, ...] = ()  # LEAD_PERMUTATIONS values over the first LEAD_CHARS


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
    (many times faster); this equals NFKC-first except for degenerate input such as a
    combining accent right after a punctuation mark.
    """
    data = text.encode("utf-8", "surrogatepass").translate(None, _ASCII_NON_WORD)
    stripped = data.decode("utf-8", "surrogatepass")
    if not stripped.isascii():
        stripped = _strippable().sub("", stripped)
    folded = unicodedata.normalize("NFKC", stripped).casefold()
    return folded if folded.isalnum() else _NON_WORD.sub("", folded)


def _positional_hashes(normalised: str) -> npt.NDArray[np.uint32]:
    """The 32-bit hash of the 5-gram starting at each character, in text order."""
    codes = np.frombuffer(normalised.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    count = len(codes) - SHINGLE_CHARS + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint32)
    folded = codes[:count].copy()
    for offset in range(1, SHINGLE_CHARS):
        folded *= _FOLD
        folded += codes[offset : offset + count]
    folded ^= folded >> _SHIFT33
    folded *= _MIX1
    folded ^= folded >> _SHIFT33
    folded *= _MIX2
    folded ^= folded >> _SHIFT33
    return (folded >> _SHIFT32).astype(np.uint32)


def _distinct(hashes: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
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


def signature(
    hashes: npt.NDArray[np.uint32], permutations: int = PERMUTATIONS
) -> npt.NDArray[np.uint32]:
    """The MinHash signature of a non-empty set of shingle hashes."""
    if not len(hashes):
        raise ValueError("a MinHash signature needs at least one shingle")
    a, b = _A_COLUMN[:permutations], _B_COLUMN[:permutations]
    minimum = np.full(permutations, _MAX_HASH, dtype=np.uint32)
    for start in range(0, len(hashes), _BLOCK):
        block = a * hashes[start : start + _BLOCK]  # (permutations × shingles), wraps mod 2**32
        block += b
        np.minimum(minimum, block.min(axis=1), out=minimum)
    return minimum


def fingerprint_normalised(normalised: str) -> NearFingerprint | None:
    if len(normalised) < MIN_CHARS:
        return None
    positional = _positional_hashes(normalised)
    hashes = _distinct(positional)
    lead = signature(_distinct(positional[: LEAD_CHARS - SHINGLE_CHARS + 1]), LEAD_PERMUTATIONS)
    return NearFingerprint(tuple(signature(hashes).tolist()), len(hashes), tuple(lead.tolist()))


def near_fingerprint(text: str) -> NearFingerprint | None:
    """MinHash signature and shingle count of a text; None when it is too short to compare."""
    return fingerprint_normalised(normalise(text))


def estimate_jaccard(first: Sequence[int], second: Sequence[int]) -> float:
    """Share of equal MinHash values: an unbiased estimate of |A∩B| / |A∪B|."""
    if len(first) != len(second) or not first:
        raise ValueError("signatures of different lengths cannot be compared")
    return sum(1 for one, other in zip(first, second, strict=True) if one == other) / len(first)


def estimate_containment(jaccard: float, size: int, other_size: int) -> float:
    """|A∩B| / min(|A|, |B|) from the Jaccard similarity and the two set sizes."""
    smaller = min(size, other_size)
    if smaller <= 0:
        return 0.0
    return min(1.0, jaccard * (size + other_size) / ((1 + jaccard) * smaller))
