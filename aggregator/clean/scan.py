"""Does a text hold any of a set of strings? One pass of Rust's regex engine answers.

Several clean steps ask it of a whole article (a hint of a text rule, whitespace to collapse,
a spot tidy must look at). Python answers with a scan of the text per string (fifty for the
hints), or with re, whose alternations try every branch at every position; Rust's regex crate
turns an alternation of literals into one multi-substring search. It is reached through
pydantic-core (already here as pydantic's engine): a string validator with a pattern, asked
isinstance_python, tells whether the pattern occurs anywhere in the text, without building a
result or raising.

A text holding a lone surrogate is not UTF-8 and reads as a miss: text that lxml produced
never holds one (it decodes UTF-8 from libxml2, and the input's surrogates became "?").
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic_core import SchemaValidator, core_schema


class Scan:
    """A Rust regex, searched anywhere in a text."""

    __slots__ = ("_validator", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._validator = SchemaValidator(
            core_schema.str_schema(pattern=pattern, regex_engine="rust-regex")
        )

    def __call__(self, text: str) -> bool:
        return self._validator.isinstance_python(text)


def any_of(words: Iterable[str], *, ascii_case: bool = False, also: Iterable[str] = ()) -> Scan:
    """A scan for any of `words`, ASCII letters in either case with `ascii_case` (other
    characters as they are), or any of the strings `also`, matched exactly."""
    alternatives = "|".join(escape(word, ascii_case) for word in words)
    if ascii_case:
        alternatives = f"(?i-u:{alternatives})"  # -u: ASCII case only, as in "A".lower()
    return Scan("|".join([alternatives, *(escape(word) for word in also)]))


def escape(text: str, ascii_case: bool = False) -> str:
    """`text` as a literal in a Rust regex: other than ASCII letters and digits, each character
    as a \\x{...} escape, save non-ASCII ones under ascii_case, where such an escape would
    name a byte and they are literal characters as they are."""
    return "".join(
        char if (char.isascii() and char.isalnum()) or (ascii_case and not char.isascii())
        else f"\\x{{{ord(char):x}}}"
        for char in text
    )  # fmt: skip
