"""The fingerprints against a plain-Python reference of what they are defined to be.

The store keeps minhash values, shingle counts, lead values and band keys, so both ways of
computing them (the compiled kernel, and numpy where it was not built) and every speed-up of
either must give the same numbers for every text: short ones, ones around the lead's 150
characters, long ones cut into many blocks, CJK, Latin and repeats, one byte, two or four a
character.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
import sys
import sysconfig
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.dedupe import article_id, identify, minhash
from aggregator.dedupe.lsh import ROWS_PER_BAND, band_keys
from aggregator.dedupe.minhash import (
    LEAD_CHARS,
    LEAD_PERMUTATIONS,
    MIN_CHARS,
    PERMUTATIONS,
    SHINGLE_CHARS,
    near_fingerprint,
    normalise,
    shingle_hashes,
    signature,
)
from aggregator.models import Article, CleanedHtml, Entry

WORD = 2**32
LONG = 2**64
FOLD = 0x100000001B3
WHEN = datetime(2024, 1, 1, tzinfo=UTC)


def _fmix64(value: int) -> int:
    value ^= value >> 33
    value = value * 0xFF51AFD7ED558CCD % LONG
    value ^= value >> 33
    value = value * 0xC4CEB9FE1A85EC53 % LONG
    return value ^ (value >> 33)


def _shingles(normalised: str) -> list[int]:
    hashes = []
    for start in range(len(normalised) - SHINGLE_CHARS + 1):
        folded = 0
        for char in normalised[start : start + SHINGLE_CHARS]:
            folded = (folded * FOLD + ord(char)) % LONG
        hashes.append(_fmix64(folded) >> 32)
    return hashes


def _parameters(name: bytes) -> list[int]:
    return [
        int.from_bytes(hashlib.blake2b(name + i.to_bytes(2, "little"), digest_size=4).digest())
        for i in range(PERMUTATIONS)
    ]


A = [a | 1 for a in _parameters(b"aggregator.minhash.a")]
B = _parameters(b"aggregator.minhash.b")


def _signature(hashes: set[int], permutations: int) -> tuple[int, ...]:
    return tuple(
        min((a * x + b) % WORD for x in hashes) for a, b in zip(A[:permutations], B, strict=False)
    )


def _bands(values: tuple[int, ...]) -> tuple[int, ...]:
    keys = []
    for band in range(len(values) // ROWS_PER_BAND):
        key = band + 1
        for value in values[band * ROWS_PER_BAND : (band + 1) * ROWS_PER_BAND]:
            key = (key * FOLD + value) % LONG
        key = _fmix64(key)
        keys.append(key - LONG if key >= LONG // 2 else key)
    return tuple(keys)


def _texts() -> list[str]:
    rng = random.Random(7)
    alphabet = "abcdefghijklmnopqrstuvwxyz  ,.中文字符测试新闻报道。、ÄÖÜßé１２"
    lengths = [MIN_CHARS, MIN_CHARS + 3, LEAD_CHARS - 1, LEAD_CHARS, LEAD_CHARS + 7, 900, 6000]
    texts = ["".join(rng.choice(alphabet) for _ in range(length)) for length in lengths]
    astral = "".join(rng.choice("𠀀𠀁𪚥中文ab") for _ in range(400))
    return [*texts, astral, "café crème brûlée " * 30, "repeat " * 400, "中文" * 300]


def _article(text: str) -> Article:
    entry = Entry(
        source="s",
        origin="o",
        key="k",
        title="t",
        link=None,
        published=WHEN,
        updated=WHEN,
        author=None,
        tags=(),
        content_html=text,
    )
    return identify(entry, CleanedHtml(html=text, text=text, summary="", images=(), rules=()), ())


def _use(implementation: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if implementation == "numpy":
        monkeypatch.setattr(minhash, "_compiled", lambda: None)
    elif minhash._compiled() is None:
        compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
        if shutil.which(compiler) is None:
            pytest.skip("no C compiler: the kernel cannot be built here")
        pytest.fail("the kernel was not built though a C compiler is here: run make install")


@pytest.mark.parametrize(
    ("implementation", "block"), [("kernel", None), ("numpy", None), ("numpy", 700), ("numpy", 1)]
)
def test_identify_matches_the_reference(
    monkeypatch: pytest.MonkeyPatch, implementation: str, block: int | None
) -> None:
    _use(implementation, monkeypatch)
    if block is not None:  # small blocks: many of them, and the lead spread over several
        monkeypatch.setattr(minhash, "_BLOCK", block)
    for text in _texts():
        normalised = normalise(text)
        if len(normalised) < MIN_CHARS:
            continue
        positional = _shingles(normalised)
        hashes = set(positional)
        lead_hashes = set(positional[: LEAD_CHARS - SHINGLE_CHARS + 1])
        expected = _signature(hashes, PERMUTATIONS)
        expected_lead = _signature(lead_hashes, LEAD_PERMUTATIONS)
        article = _article(text)
        assert article.minhash == expected
        assert article.lead_minhash == expected_lead
        assert article.shingles == len(hashes)
        assert article.bands == _bands(expected + expected_lead)
        fingerprint = near_fingerprint(text)
        assert fingerprint is not None
        assert (fingerprint.minhash, fingerprint.shingles, fingerprint.lead) == (
            expected,
            len(hashes),
            expected_lead,
        )
        assert shingle_hashes(normalised).tolist() == sorted(hashes)
        assert tuple(signature(shingle_hashes(normalised), 16).tolist()) == expected[:16]


def test_band_keys_of_any_length_match_the_reference() -> None:
    rng = random.Random(3)
    for length in (0, 3, 4, 5, 82, 160):
        values = tuple(rng.randrange(WORD) for _ in range(length))
        assert band_keys(values[:50], values[50:]) == _bands(values)


@pytest.mark.parametrize("implementation", ["kernel", "numpy"])
def test_types_are_plain_python(monkeypatch: pytest.MonkeyPatch, implementation: str) -> None:
    _use(implementation, monkeypatch)
    article = _article(_texts()[-1])
    for value in (*article.minhash, *article.lead_minhash, *article.bands):
        assert type(value) is int


def test_the_kernel_refuses_what_it_cannot_read_safely(monkeypatch: pytest.MonkeyPatch) -> None:
    _use("kernel", monkeypatch)
    from aggregator.dedupe._kernel import fingerprint  # noqa: PLC0415 - built or not

    words = bytes(4 * PERMUTATIONS)
    for text, a, b, lead_shingles, lead_permutations, rows in (
        ("abcd", words, words, 146, 32, 4),  # no 5-gram
        ("abcdef", words, words[4:], 146, 32, 4),  # a and b of different lengths
        ("abcdef", words[1:], words[1:], 146, 32, 4),  # not whole uint32
        ("abcdef", words, words, 146, PERMUTATIONS + 1, 4),  # more lead values than values
        ("abcdef", words, words, 0, 32, 4),
        ("abcdef", words, words, 146, 32, 0),
    ):
        with pytest.raises(ValueError, match="fingerprint needs"):
            fingerprint(text, a, b, lead_shingles, lead_permutations, rows)


def test_a_worker_with_the_kernel_never_loads_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    _use("kernel", monkeypatch)
    script = (
        "import sys\n"
        "from tests.test_minhash_reference import _article, _texts\n"
        "assert _article(_texts()[-1]).bands\n"
        "assert 'numpy' not in sys.modules, 'numpy was imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr


def test_article_ids_are_uuid5_of_source_and_key() -> None:
    namespace = uuid.UUID("5b0c3b4e-6a53-4d0b-9a4e-6a1f0c1d2e3f")
    rng = random.Random(5)
    for _ in range(500):
        source = "".join(rng.choice("ab中\x00é-") for _ in range(rng.randrange(6)))
        key = "".join(rng.choice("https://x.org/?=&中") for _ in range(rng.randrange(40)))
        assert article_id(source, key) == str(uuid.uuid5(namespace, f"{source}\x00{key}"))
